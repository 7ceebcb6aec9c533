"""Spreadsheet files: CSV (UTF-8, UTF-8 with BOM, UTF-16, GB18030) and XLSX, read row by row."""

from __future__ import annotations

import codecs
import csv
import io
import re
import warnings
import zipfile
import zlib
from collections.abc import Generator, Sequence
from datetime import date, datetime
from typing import IO, Any

#: the fields of an import, each with the headers that name it (English, Chinese, common variants)
COLUMNS: dict[str, tuple[str, ...]] = {
    "name": ("name", "姓名", "名字", "联系人"),
    "phone": ("phone", "mobile", "手机号码", "手机号", "手机", "电话", "电话号码", "联系电话"),
    "role": ("role", "角色", "人员类别", "类别", "身份"),
    "position": ("position", "职务", "职位", "叫应职务"),
    "region": ("region", "region_code", "行政区划代码", "区划代码", "行政区划", "区划"),
    "lat": ("lat", "latitude", "纬度"),
    "lon": ("lon", "lng", "longitude", "经度"),
    "channels": ("channels", "channel", "渠道", "接收方式"),
    "lang": ("lang", "language", "语言"),
    "supervisor_phone": ("supervisor_phone", "上级手机号码", "上级手机号", "上级电话", "上级联系电话"),
    "active": ("active", "状态", "是否启用"),
    # exported for reference; an import ignores them (contacts are matched by phone)
    "id": ("id", "编号"),
    "region_name": ("region_name", "区划名称"),
    "needs_check": ("needs_check", "待核实"),
    "needs_check_reason": ("needs_check_reason", "核实原因"),
}
#: the Chinese title of each field, as exports write it
TITLE_ZH = {"id": "编号", "name": "姓名", "phone": "手机号码", "role": "角色", "position": "职务",
            "region": "行政区划代码", "region_name": "区划名称", "lat": "纬度", "lon": "经度", "channels": "渠道",
            "lang": "语言", "supervisor_phone": "上级手机号码", "active": "状态", "needs_check": "待核实",
            "needs_check_reason": "核实原因"}
REQUIRED = ("name", "phone", "role", "region")
#: exported for reference; an import leaves them (the needs_check flag is set by checks and sends, cleared by the API)
IGNORED = ("id", "region_name", "needs_check", "needs_check_reason")
_CHUNK = 1 << 20
#: an XLSX workbook whose parts unpack to more than this is refused before openpyxl reads it (a 300 KB
#: file can unpack to 300 MB; openpyxl holds the shared strings in memory). 100,000 contacts take ~60 MB.
MAX_XLSX_UNPACKED_BYTES = 128 * 1024 * 1024


class FileProblem(ValueError):
    """A file that cannot be imported at all (format, encoding, header); Chinese first."""


def _fold(header: str) -> str:
    text = re.sub(r"[（(【\[].*?[）)】\]]", "", str(header))  # "手机号码（必填）"
    return re.sub(r"[\s_\-*＊\ufeff]", "", text).casefold()


_LOOKUP = {_fold(alias): field for field, aliases in COLUMNS.items() for alias in aliases}


def map_header(cells: Sequence[str]) -> tuple[dict[str, int], list[str]]:
    """Column index of each known field, and the headers not understood; FileProblem when unusable."""
    found: dict[str, int] = {}
    unknown: list[str] = []
    for i, cell in enumerate(cells):
        if not str(cell).strip():
            continue
        field = _LOOKUP.get(_fold(cell))
        if field is None:
            unknown.append(str(cell).strip()[:40])
        elif field in found:
            raise FileProblem(f"第 1 行有重复的列 the header names a column twice: {str(cell).strip()[:40]}")
        else:
            found[field] = i
    missing = [f for f in REQUIRED if f not in found]
    if missing:
        names = ", ".join(f"{TITLE_ZH[f]}/{f}" for f in missing)
        raise FileProblem(f"缺少必填列 missing required columns: {names}")
    return found, unknown


def sniff_format(head: bytes, filename: str = "", content_type: str = "") -> str:
    """`xlsx` or `csv`, from the file's first bytes (then its name and type); FileProblem for .xls."""
    if head.startswith(b"PK\x03\x04"):
        return "xlsx"
    if head.startswith(b"\xd0\xcf\x11\xe0"):  # OLE2: an Excel 97-2003 workbook (a CSV named .xls is fine)
        raise FileProblem("不支持旧版 .xls 文件，请另存为 .xlsx 或 CSV  legacy .xls is not supported; "
                          "save as .xlsx or CSV")
    if "spreadsheetml" in content_type or filename.lower().endswith(".xlsx"):
        raise FileProblem("不是有效的 .xlsx 文件 not a valid .xlsx file")
    return "csv"


def detect_encoding(stream: IO[bytes]) -> str:
    """utf-8-sig / utf-16 by BOM, else utf-8 when every byte decodes, else GB18030 (Chinese Excel)."""
    stream.seek(0)
    head = stream.read(4)
    stream.seek(0)
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        while chunk := stream.read(_CHUNK):
            decoder.decode(chunk)
        decoder.decode(b"", final=True)
        return "utf-8"
    except UnicodeDecodeError:
        return "gb18030"
    finally:
        stream.seek(0)


def _delimiter(stream: IO[bytes], encoding: str) -> str:
    sample = stream.read(64 * 1024).decode(encoding, errors="ignore")
    stream.seek(0)
    first = sample.lstrip("\ufeff").splitlines()[0] if sample.strip() else ""
    return max((",", "\t", ";"), key=first.count) if first else ","


def iter_csv(stream: IO[bytes]) -> Generator[list[str]]:
    """Rows of a CSV file as lists of strings, the header first."""
    encoding = detect_encoding(stream)
    delimiter = _delimiter(stream, encoding)
    text = io.TextIOWrapper(stream, encoding=encoding, newline="")
    try:
        yield from csv.reader(text, delimiter=delimiter)
    except UnicodeDecodeError:
        raise FileProblem("文件编码无法识别（请用 UTF-8 或 GB18030） unreadable text encoding") from None
    except csv.Error as exc:
        raise FileProblem(f"CSV 格式错误 malformed CSV: {exc}") from None
    finally:
        if not stream.closed:
            text.detach()
            stream.seek(0)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "是" if value else "否"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))  # a phone or region code stored as a number
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def check_unpacked_size(stream: IO[bytes], limit: int) -> None:
    """FileProblem when the workbook's parts unpack to more than `limit` bytes.

    The sizes the zip declares come first (cheap); then every part is unpacked and counted as it is read,
    in chunks, since a forged header can declare less than the part holds.
    """
    too_big = (f"文件解压后过大 the workbook unpacks to more than {limit // (1024 * 1024)} MiB; "
               "split it or save it as CSV")
    stream.seek(0)
    try:
        with zipfile.ZipFile(stream) as book:
            if sum(info.file_size for info in book.infolist()) > limit:
                raise FileProblem(too_big)
            total = 0
            for info in book.infolist():
                with book.open(info) as part:
                    while chunk := part.read(_CHUNK):
                        total += len(chunk)
                        if total > limit:
                            raise FileProblem(too_big)
    except FileProblem:
        raise
    except (zipfile.BadZipFile, zlib.error, NotImplementedError, RuntimeError, EOFError, OSError, ValueError) as exc:
        raise FileProblem(f"不是有效的 .xlsx 文件 not a valid .xlsx file ({type(exc).__name__})") from None
    finally:
        stream.seek(0)


def iter_xlsx(stream: IO[bytes], max_unpacked_bytes: int | None = MAX_XLSX_UNPACKED_BYTES) -> Generator[list[str]]:
    """Rows of the first sheet of an XLSX workbook, streamed (read-only mode), the header first.

    `max_unpacked_bytes=None` skips the size check (for a second pass over a stream already checked).
    """
    from openpyxl import load_workbook
    from openpyxl.utils.exceptions import InvalidFileException

    if max_unpacked_bytes is not None:
        check_unpacked_size(stream, max_unpacked_bytes)
    stream.seek(0)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # openpyxl warns about styles and extensions it skips
            book = load_workbook(stream, read_only=True, data_only=True)
    except (InvalidFileException, zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise FileProblem(f"不是有效的 .xlsx 文件 not a valid .xlsx file ({type(exc).__name__})") from None
    try:
        sheet = book.worksheets[0]
        for row in sheet.iter_rows(values_only=True):
            yield [_cell(v) for v in row]
    finally:
        book.close()
        if not stream.closed:
            stream.seek(0)


def iter_rows(stream: IO[bytes], fmt: str,
              max_unpacked_bytes: int | None = MAX_XLSX_UNPACKED_BYTES) -> Generator[list[str]]:
    """Rows of a CSV or XLSX file (an XLSX unpacking to more than `max_unpacked_bytes` is refused)."""
    return iter_xlsx(stream, max_unpacked_bytes) if fmt == "xlsx" else iter_csv(stream)
