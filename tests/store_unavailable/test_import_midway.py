"""An import the store stops midway (Redis gone, or full at its maxmemory) says which rows were written and which
were not — in the API's answer and in the command's report — and what it says is what the store holds."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
import redis as syncredis
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient

from contacts.importer import ImportReport, import_contacts, row_ranges
from contacts.store import RedisRegistry
from tests.conftest import auth
from tests.contacts.helpers import EN_HEADER, NOW, ROOT, csv_bytes, reference
from warning.cli import main
from warning.contacts_cli import EXIT_INTERRUPTED
from warning.redis_server import PrivateRedis

pytestmark = pytest.mark.timeout(120)
N = 2000


def _rows(n: int = N) -> list[list[str]]:
    """People on rows 2..n+1; row 3 is refused (a bad phone) so the report has all four kinds of row."""
    rows = [[f"联系人{i}", f"139{i:08d}", "cadre", "510722100001", "", "", "", "", ""] for i in range(n)]
    rows[1][1] = "12345"
    return [EN_HEADER, *rows]


def _expand(runs: list[list[int]]) -> list[int]:
    return [r for a, b in runs for r in range(a, b + 1)]


async def _stored_rows(redis: aioredis.Redis, rows: list[list[str]]) -> set[int]:
    """The spreadsheet rows whose phone the store holds."""
    phones = [f"+86{r[1]}" for r in rows[1:]]
    found = await redis.hmget("ew:contacts:phone", phones)
    return {i + 2 for i, cid in enumerate(found) if cid}


async def _fill_to_maxmemory(redis: aioredis.Redis, headroom: int) -> None:
    used = int((await redis.info("memory"))["used_memory"])
    await redis.config_set("maxmemory-policy", "noeviction")
    await redis.config_set("maxmemory", str(used + headroom))


def _check_partition(report: dict[str, Any], stored: set[int]) -> None:
    written, not_written = _expand(report["written"]), _expand(report["not_written"])
    unconfirmed = _expand(report["unconfirmed"])
    rejected = [r["row"] for r in report["rejected"]]
    assert rejected == [3]
    assert sorted(written + not_written + unconfirmed + rejected) == list(range(2, N + 2))  # every row, once
    assert 0 < len(written) < N - 1 and not_written
    assert set(written) <= stored <= set(written) | set(unconfirmed)  # what it says is what the store holds
    assert report["accepted"] == len(written)


async def test_api_import_stopped_by_a_full_store_says_which_rows(app_client: TestClient[Any, Any],
                                                                 admin_redis: aioredis.Redis) -> None:
    rows = _rows()
    await _fill_to_maxmemory(admin_redis, 300 * 1024)
    try:
        resp = await app_client.post("/api/v1/contacts/import", data=csv_bytes(rows),
                                     headers={**auth("admin"), "Content-Type": "text/csv"})
        assert resp.status == 503, await resp.text()
        assert int(resp.headers["Retry-After"]) > 0
        body = await resp.json()
        assert "import stopped midway" in body["error"] and "out of memory" not in body["error"]
        report = body["detail"]
        assert "OutOfMemoryError" in report["interrupted"]
        _check_partition(report, await _stored_rows(admin_redis, rows))
    finally:
        await admin_redis.config_set("maxmemory", "0")
    resp = await app_client.post("/api/v1/contacts/import", data=csv_bytes(rows),
                                 headers={**auth("admin"), "Content-Type": "text/csv"})
    again = await resp.json()  # the same file again finishes the job, doubling nobody
    assert resp.status == 200 and again["accepted"] + again["updated"] == N - 1
    assert await _stored_rows(admin_redis, rows) == set(range(2, N + 2)) - {3}


async def test_import_with_redis_gone_at_row_500(own_redis: PrivateRedis, admin_redis: aioredis.Redis) -> None:
    rows = _rows()
    stopped = []

    def progress(phase: str, done: int, total: int | None) -> None:
        if phase == "write" and done >= 500 and not stopped:
            own_redis.stop()  # a clean shutdown: what it acknowledged is on disk
            stopped.append(done)

    report = await import_contacts(io.BytesIO(csv_bytes(rows)), "csv", RedisRegistry(admin_redis), reference(),
                                   now=NOW, batch_rows=100, progress=progress)
    assert stopped == [500]
    assert "ConnectionError" in (report.interrupted or "")
    assert row_ranges(report.written) == [[2, 2], [4, 502]]  # 500 people; row 3 was refused
    assert row_ranges(report.unconfirmed) == [[503, 602]]  # the batch in flight when it went
    assert row_ranges(report.not_written) == [[603, N + 1]]
    own_redis.start()
    stored = await _stored_rows(admin_redis, rows)
    assert set(report.written) <= stored <= set(report.written) | set(report.unconfirmed)


def test_cli_import_stopped_by_a_full_store_prints_the_rows(tmp_path: Path, own_redis: PrivateRedis,
                                                           monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    rows = _rows()
    path = tmp_path / "people.csv"
    path.write_bytes(csv_bytes(rows))
    config = tmp_path / "c.toml"
    config.write_text(f'[registry]\nregions_csv = "{ROOT / "config" / "demo_regions.csv"}"\n', encoding="utf-8")
    monkeypatch.setenv("WARNING_REDIS_URL", own_redis.url)
    sync = syncredis.Redis.from_url(own_redis.url, decode_responses=True)
    try:
        used = int(sync.info("memory")["used_memory"])
        sync.config_set("maxmemory-policy", "noeviction")
        sync.config_set("maxmemory", str(used + 300 * 1024))
        try:
            status = main(["contacts", "import", str(path), "--config", str(config)])
        finally:
            sync.config_set("maxmemory", "0")
        found = sync.hmget("ew:contacts:phone", [f"+86{r[1]}" for r in rows[1:]])
    finally:
        sync.close()
    stored = {i + 2 for i, cid in enumerate(found) if cid}
    assert status == EXIT_INTERRUPTED
    out = capsys.readouterr().out
    assert "import stopped midway" in out and "OutOfMemoryError" in out
    written = next(line for line in out.splitlines() if line.startswith("已写入的行 rows written"))
    not_written = next(line for line in out.splitlines() if line.startswith("未写入的行 rows not written"))
    valid = set(range(2, N + 2)) - {3}

    def runs(rows: set[int]) -> str:
        return ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in row_ranges(sorted(rows)))

    assert stored and stored != valid  # some rows went in before the store was full, not all
    assert written == f"已写入的行 rows written ({len(stored)}): {runs(stored)}"
    assert not_written == f"未写入的行 rows not written ({len(valid - stored)}): {runs(valid - stored)}"


def test_report_ranges_and_the_complete_case_stay_as_before() -> None:
    assert row_ranges([9, 2, 3, 4, 7]) == [[2, 4], [7, 7], [9, 9]]
    done = ImportReport(accepted=2).as_dict()
    assert set(done) == {"accepted", "updated", "unchanged", "rejected", "warnings"}
