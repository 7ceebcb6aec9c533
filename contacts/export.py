"""Contact export to CSV or XLSX, in the import's own columns so an export can be imported back."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Sequence
from datetime import datetime, timedelta, timezone

from contacts.directory import ContactFilter
from contacts.model import CheckFlag, Contact
from contacts.reference import Reference
from contacts.store import RedisRegistry
from contacts.tabular import TITLE_ZH

FIELDS = ("id", "name", "phone", "role", "position", "region", "region_name", "lat", "lon", "channels", "lang",
          "supervisor_phone", "active", "needs_check", "needs_check_reason")
_CHANNEL_ZH = {"sms": "短信", "voice": "语音"}
#: why a number needs checking, as the sheet says it
CHECK_REASON_ZH = {"no_reply": "核查短信未回复", "failed": "发送失败（号码无效或停机）", "manual": "人工标记"}
BEIJING = timezone(timedelta(hours=8), "CST")
#: a spreadsheet treats a cell starting with one of these as a formula (CSV/formula injection)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def header(lang: str = "zh") -> list[str]:
    """Column titles: Chinese (default) or English."""
    return list(FIELDS) if lang.startswith("en") else [TITLE_ZH[f] for f in FIELDS]


def guard(cell: str) -> str:
    """Make a cell inert for spreadsheets: a leading apostrophe before formula characters
    (the importer strips it again)."""
    return "'" + cell if cell.startswith(_FORMULA_START) else cell


def check_note(flag: CheckFlag | None, lang: str = "zh") -> str:
    """Why a number needs checking, for a sheet: reason, since when (Beijing time), what raised it."""
    if flag is None:
        return ""
    if lang.startswith("en"):
        return " ".join(x for x in (flag.reason, flag.at, flag.detail) if x)
    when = ""
    if flag.at:
        try:
            when = datetime.fromisoformat(flag.at).astimezone(BEIJING).strftime("%Y-%m-%d %H:%M")
        except ValueError:
            when = flag.at
    return "；".join(x for x in (CHECK_REASON_ZH.get(flag.reason, flag.reason), when, flag.detail) if x)


def _yes(value: bool, en: bool) -> str:
    return ("true" if value else "false") if en else ("是" if value else "否")


def _row(c: Contact, ref: Reference, lang: str, supervisor_phone: str) -> list[str]:
    en = lang.startswith("en")
    return [c.id, guard(c.name), guard(c.phone), ref.roles.label(c.role, lang) if not en else c.role,
            ref.positions.label(c.position, lang) if not en else c.position, c.region,
            ref.regions.full_name(c.region) if len(ref.regions) else "",
            repr(c.location.lat) if c.location else "", repr(c.location.lon) if c.location else "",
            ",".join(c.channels if en else (_CHANNEL_ZH.get(ch, ch) for ch in c.channels)), c.lang,
            guard(supervisor_phone), _yes(c.active, en), _yes(c.needs_check is not None, en),
            guard(check_note(c.needs_check, lang))]


async def export_rows(registry: RedisRegistry, ref: Reference, filters: ContactFilter | None = None,
                      lang: str = "zh", batch: int = 1000) -> AsyncIterator[list[str]]:
    """The header, then one row per contact in id order, a page at a time."""
    yield header(lang)
    cursor: str | None = None
    while True:
        contacts, cursor = await registry.page(cursor, batch, filters)
        sup_ids = sorted({c.supervisor for c in contacts if c.supervisor})
        phones = {s.id: s.phone for s in await registry.get_many(sup_ids)}
        for c in contacts:
            yield _row(c, ref, lang, phones.get(c.supervisor or "", ""))
        if cursor is None:
            return


def csv_text(rows: Sequence[Sequence[str]]) -> str:
    """Rows as CSV text (CRLF line ends, as spreadsheets write them)."""
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    return out.getvalue()


async def xlsx_bytes(rows: AsyncIterator[list[str]], title: str = "联系人") -> bytes:
    """Rows as an XLSX workbook written in openpyxl's streaming (write-only) mode; every cell is text."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell

    book = Workbook(write_only=True)
    sheet = book.create_sheet(title)
    async for row in rows:
        cells = []
        for value in row:
            cell = WriteOnlyCell(sheet, value=value)
            cell.data_type = "s"  # never a formula, never a number that loses a leading zero
            cells.append(cell)
        sheet.append(cells)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
