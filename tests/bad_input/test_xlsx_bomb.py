"""An XLSX that unpacks to far more than it weighs is refused before openpyxl reads it, in bounded memory; the
files are generated here (a 300 KB workbook that unpacks to 300 MB), none is committed."""

from __future__ import annotations

import io
import struct
import tracemalloc
import zipfile
from typing import Any

import pytest

from contacts.importer import import_contacts
from contacts.store import RedisRegistry
from contacts.tabular import MAX_XLSX_UNPACKED_BYTES, FileProblem, check_unpacked_size
from tests.bad_input.conftest import World, answered_while_healthy
from tests.conftest import auth
from tests.contacts.helpers import EN_HEADER, NOW, reference, xlsx_bytes

pytestmark = pytest.mark.timeout(120)
SST = "xl/sharedStrings.xml"
ROWS = [EN_HEADER, ["张伟", "13800138000", "cadre", "510722100", None, None, None, None, None]]


def _with_part(book: bytes, name: str, size: int, *, fill: bytes = b"a") -> bytes:
    """The workbook with part `name` replaced by `size` bytes of shared strings (streamed in, never held whole)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(book)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED,
                                                                  compresslevel=9) as dst:
        for info in src.infolist():
            if info.filename != name:
                dst.writestr(info, src.read(info))
        with dst.open(name, "w", force_zip64=True) as part:
            head = b'<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><si><t>'
            part.write(head)
            chunk = fill * (1 << 20)
            for _ in range(size // len(chunk)):
                part.write(chunk)
            part.write(b"</t></si></sst>")
    return out.getvalue()


def _declaring(data: bytes, name: str, declared: int) -> bytes:
    """The zip with `name`'s uncompressed size forged to `declared` in its local and central headers."""
    buf = bytearray(data)
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        info = z.getinfo(name)
    struct.pack_into("<I", buf, info.header_offset + 22, declared)  # local file header
    pos = buf.find(b"PK\x01\x02")  # the central directory's entries
    while pos != -1:
        (name_len,) = struct.unpack_from("<H", buf, pos + 28)
        if bytes(buf[pos + 46:pos + 46 + name_len]).decode() == name:
            struct.pack_into("<I", buf, pos + 24, declared)
        pos = buf.find(b"PK\x01\x02", pos + 4)
    return bytes(buf)


@pytest.fixture(scope="module")
def bomb() -> bytes:
    """A ~300 KB workbook whose shared strings unpack to 300 MB (the case of the issue)."""
    data = _with_part(xlsx_bytes(ROWS), SST, 300 * 1024 * 1024)
    assert len(data) < 1024 * 1024
    return data


async def test_the_bomb_is_refused_in_bounded_memory(redis: Any, bomb: bytes) -> None:
    tracemalloc.start()
    try:
        with pytest.raises(FileProblem, match="128 MiB"):
            await import_contacts(io.BytesIO(bomb), "xlsx", RedisRegistry(redis), reference(), now=NOW)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 32 * 1024 * 1024
    assert await RedisRegistry(redis).count() == 0


async def test_over_http_the_bomb_is_a_400_and_nothing_is_imported(world: World, bomb: bytes) -> None:
    resp = await answered_while_healthy(world.client, "POST", "/api/v1/contacts/import", data=io.BytesIO(bomb),
                                        headers={**auth("admin"), "Content-Type": "application/vnd.openxmlformats-"
                                                 "officedocument.spreadsheetml.sheet"})
    assert resp.status == 400
    assert "unpacks to more than" in (await resp.json())["detail"]
    assert (await (await world.client.get("/api/v1/contacts", headers=auth("admin"))).json())["items"] == []


def test_sizes_declared_small_do_not_let_a_big_part_through() -> None:
    big = _with_part(xlsx_bytes(ROWS), SST, 8 * 1024 * 1024)
    forged = _declaring(big, SST, 1000)
    with zipfile.ZipFile(io.BytesIO(forged)) as z:
        assert sum(i.file_size for i in z.infolist()) < 1024 * 1024  # what the file claims
    tracemalloc.start()
    try:
        with pytest.raises(FileProblem):
            check_unpacked_size(io.BytesIO(forged), 4 * 1024 * 1024)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * 1024 * 1024


def test_the_limit_counts_every_part_and_a_normal_workbook_passes() -> None:
    book = xlsx_bytes(ROWS)
    with zipfile.ZipFile(io.BytesIO(book)) as z:
        unpacked = sum(i.file_size for i in z.infolist())
    check_unpacked_size(io.BytesIO(book), unpacked)
    with pytest.raises(FileProblem, match="unpacks to more than"):
        check_unpacked_size(io.BytesIO(book), unpacked - 1)
    assert unpacked < MAX_XLSX_UNPACKED_BYTES


async def test_a_duty_roster_bomb_is_a_400_too(world: World, bomb: bytes) -> None:
    resp = await answered_while_healthy(world.client, "POST", "/api/v1/duty", data=io.BytesIO(bomb),
                                        headers={**auth("issuer"), "Content-Type": "application/vnd.openxmlformats-"
                                                 "officedocument.spreadsheetml.sheet"})
    assert resp.status == 400
    assert "unpacks to more than" in (await resp.json())["detail"]
