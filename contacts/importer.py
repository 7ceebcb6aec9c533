"""Contact import from CSV/XLSX: every valid row upserted by phone, every bad row reported by number.

Two streaming passes over the file. The first checks every row and notes each valid phone with its
row (for the in-file duplicate check and for supervisors named later in the file); the second writes
the valid rows in pipelined batches. Nothing but the phone map is held for the whole file.

When the store fails midway (gone, out of memory, read-only), the import stops there and its report says
which rows were written, which were not, and which were in flight when the connection broke (written or
not: importing the same file again settles them, rows are matched by phone).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Generator, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Any

from redis.exceptions import RedisError

from contacts.fields import FieldErrors, parse_contact
from contacts.model import Contact
from contacts.phone import InvalidPhoneNumber, mask_phone, normalize_e164
from contacts.reference import Reference
from contacts.store import RedisRegistry
from contacts.tabular import IGNORED, MAX_XLSX_UNPACKED_BYTES, iter_rows, map_header

#: progress(phase, rows done, rows in all or None while still counting); phase is "check" or "write"
Progress = Callable[[str, int, int | None], None]
PROGRESS_EVERY_ROWS = 5000


@dataclass(frozen=True, slots=True)
class RowProblem:
    """A row number as the spreadsheet shows it (header = row 1) and what is wrong or worth knowing."""

    row: int
    message: str


@dataclass
class ImportReport:
    """The outcome of an import.

    `accepted` counts rows that added a new contact; `updated` counts rows whose phone was already
    registered (changed or re-confirmed); `unchanged` is the part of `updated` that changed nothing.
    accepted + updated + len(rejected) is the number of data rows (blank rows are skipped).
    """

    accepted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: list[RowProblem] = field(default_factory=list)
    warnings: list[RowProblem] = field(default_factory=list)
    #: why the store stopped the import midway; None when it ran to the end
    interrupted: str | None = None
    #: rows written (valid rows only), rows not written, rows whose write is unknown (the connection broke)
    written: list[int] = field(default_factory=list)
    not_written: list[int] = field(default_factory=list)
    unconfirmed: list[int] = field(default_factory=list)
    #: written rows whose supervisor, named later in the file, could not be linked before the store failed
    supervisor_not_linked: list[int] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return self.accepted + self.updated + len(self.rejected)

    def as_dict(self) -> dict[str, Any]:
        """The JSON form of DESIGN §4, plus `unchanged` and `warnings`; after a store failure, what was written."""
        out: dict[str, Any] = {
            "accepted": self.accepted, "updated": self.updated, "unchanged": self.unchanged,
            "rejected": [{"row": p.row, "error": p.message} for p in sorted(self.rejected, key=_row)],
            "warnings": [{"row": p.row, "warning": p.message} for p in sorted(self.warnings, key=_row)]}
        if self.interrupted is not None:
            out.update(interrupted=self.interrupted, written=row_ranges(self.written),
                       not_written=row_ranges(self.not_written), unconfirmed=row_ranges(self.unconfirmed),
                       supervisor_not_linked=row_ranges(self.supervisor_not_linked))
        return out


def row_ranges(rows: list[int]) -> list[list[int]]:
    """Row numbers as inclusive [first, last] runs: [2, 3, 4, 9] → [[2, 4], [9, 9]]."""
    runs: list[list[int]] = []
    for r in sorted(rows):
        if runs and r == runs[-1][1] + 1:
            runs[-1][1] = r
        else:
            runs.append([r, r])
    return runs


class _StoreFailed(Exception):
    """The store refused or lost a batch; the writer has recorded what it knows."""


def _row(p: RowProblem) -> int:
    return p.row


@dataclass
class _Checked:
    """What the first pass learnt: each valid row's phone, supervisors to resolve, refusals."""

    columns: dict[str, int]
    phones: dict[int, tuple[str, str]] = field(default_factory=dict)  # row → (e164, kind)
    row_of: dict[str, int] = field(default_factory=dict)  # e164 → first valid row
    supervisor_of: dict[int, str] = field(default_factory=dict)  # row → supervisor e164
    rejected: dict[int, str] = field(default_factory=dict)
    refused_row_of: dict[str, int] = field(default_factory=dict)  # e164 → a refused row with it
    warnings: list[RowProblem] = field(default_factory=list)
    rows: int = 0


def _records(stream: IO[bytes], fmt: str, max_unpacked_bytes: int | None) -> Generator[tuple[int, list[str]]]:
    rows = iter_rows(stream, fmt, max_unpacked_bytes)
    try:
        yield from enumerate(rows, start=1)
    finally:
        rows.close()  # leave the file as found, even when stopped early


def _record(cells: list[str], columns: dict[str, int]) -> dict[str, str]:
    # a leading apostrophe is a spreadsheet's mark for "text" (and our export's formula guard)
    return {f: (cells[i].strip().removeprefix("'") if i < len(cells) else "")
            for f, i in columns.items() if f not in IGNORED}


def _check(stream: IO[bytes], fmt: str, ref: Reference, progress: Progress | None,
           max_unpacked_bytes: int) -> _Checked:
    with closing(_records(stream, fmt, max_unpacked_bytes)) as rows:
        return _check_rows(rows, ref, progress)


def _check_rows(rows: Generator[tuple[int, list[str]]], ref: Reference, progress: Progress | None) -> _Checked:
    header = next(rows, None)
    columns, unknown = map_header(header[1] if header else [])
    checked = _Checked(columns)
    if unknown:
        checked.warnings.append(RowProblem(1, f"未识别的列已忽略 ignored unknown columns: {', '.join(unknown)}"))
    for number, cells in rows:
        if not any(c.strip() for c in cells):
            continue
        checked.rows += 1
        _check_row(checked, number, _record(cells, columns), ref)
        if progress and checked.rows % PROGRESS_EVERY_ROWS == 0:
            progress("check", checked.rows, None)
    return checked


def _check_row(checked: _Checked, number: int, record: dict[str, str], ref: Reference) -> None:
    try:
        contact, notes = parse_contact(record, ref)
        supervisor = record.get("supervisor_phone", "")
        sup_e164 = normalize_e164(supervisor, ref.default_phone_region)[0] if supervisor else ""
    except FieldErrors as exc:
        checked.rejected[number] = "; ".join(exc.errors.values())
        if "phone" not in exc.errors:
            checked.refused_row_of.setdefault(normalize_e164(record["phone"], ref.default_phone_region)[0], number)
        return
    except InvalidPhoneNumber as exc:
        checked.rejected[number] = f"上级手机号码无效 invalid supervisor phone number: {exc.raw}"
        return
    earlier = checked.row_of.get(contact.phone)
    if earlier is not None:
        checked.rejected[number] = (f"手机号码与第 {earlier} 行重复 phone number repeats row {earlier}: "
                                    f"{mask_phone(contact.phone)}")
        return
    if sup_e164 == contact.phone:
        checked.rejected[number] = "上级不能是本人 a contact cannot be their own supervisor"
        return
    checked.row_of[contact.phone] = number
    checked.phones[number] = (contact.phone, contact.phone_kind)
    if sup_e164:
        checked.supervisor_of[number] = sup_e164
    checked.warnings.extend(RowProblem(number, n) for n in notes)


async def _resolve_supervisors(checked: _Checked, registry: RedisRegistry) -> dict[str, str]:
    """Registered ids of supervisors. A row naming a supervisor neither registered nor on a valid row of
    the file is refused, and so, down the chain, are the rows naming that row's person."""
    wanted = sorted(set(checked.supervisor_of.values()))
    known: dict[str, str] = {}
    for i in range(0, len(wanted), 1000):
        chunk = wanted[i:i + 1000]
        known.update((p, cid) for p, cid in zip(chunk, await registry.ids_by_phones(chunk), strict=True) if cid)
    changed = True
    while changed:
        changed = False
        for number, sup in checked.supervisor_of.items():
            if number in checked.rejected or sup in known or sup in checked.row_of:
                continue
            sup_row = checked.refused_row_of.get(sup)
            checked.rejected[number] = (
                f"上级（第 {sup_row} 行）未导入 the supervisor's row {sup_row} was refused" if sup_row else
                f"上级手机号码未登记（本文件和联系人库中都没有） supervisor phone not registered "
                f"(neither in this file nor in the registry): {mask_phone(sup)}")
            phone = checked.phones.pop(number)[0]
            del checked.row_of[phone]
            checked.refused_row_of[phone] = number
            changed = True
    return known


class _Writer:
    """The second pass: batches of contacts upserted, supervisors linked at the end."""

    def __init__(self, registry: RedisRegistry, report: ImportReport, now: datetime,
                 known: dict[str, str], has_supervisor_column: bool, has_position_column: bool = True) -> None:
        self.registry, self.report, self.now, self.known = registry, report, now, known
        self.has_supervisor_column = has_supervisor_column
        #: a sheet without a 职务 column leaves stored positions as they are
        self.has_position_column = has_position_column
        self.batch: list[tuple[int, Contact, str]] = []  # row, contact, supervisor e164 ("" none)
        self.deferred: list[tuple[int, str, str, bool]] = []  # row, contact id, supervisor e164, was unchanged

    async def add(self, row: int, contact: Contact, sup: str, batch_rows: int) -> None:
        self.batch.append((row, contact, sup))
        if len(self.batch) >= batch_rows:
            await self.flush()

    async def flush(self) -> None:
        if not self.batch:
            return
        contacts, keep = [], []
        for _, contact, sup in self.batch:
            sup_id = self.known.get(sup, "") if sup else ""
            contacts.append(contact.with_changes(supervisor=sup_id or None))
            # no column: leave what is stored; a supervisor new in this file: linked after the pass
            keep.append(not self.has_supervisor_column or bool(sup and not sup_id))
        batch, self.batch = self.batch, []
        try:
            results = await self.registry.try_upsert_contacts(contacts, self.now, keep,
                                                              keep_position=not self.has_position_column)
        except RedisError as exc:
            self.report.unconfirmed += [row for row, _, _ in batch]
            raise _StoreFailed(_reason(exc)) from exc
        failure: Exception | None = None
        for (row, _, sup), result in zip(batch, results, strict=True):
            if isinstance(result, Exception):
                self.report.not_written.append(row)
                failure = failure or result
                continue
            self.report.written.append(row)
            if result.status == "created":
                self.report.accepted += 1
            else:
                self.report.updated += 1
                self.report.unchanged += result.status == "unchanged"
            if sup and sup not in self.known:
                self.deferred.append((row, result.id, sup, result.status == "unchanged"))
        if failure is not None:
            raise _StoreFailed(_reason(failure)) from failure

    async def link_supervisors(self) -> None:
        for i in range(0, len(self.deferred), 1000):
            chunk = self.deferred[i:i + 1000]
            try:
                ids = await self.registry.ids_by_phones([sup for _, _, sup, _ in chunk])
                links = [(cid, sup_id or "") for (_, cid, _, _), sup_id in zip(chunk, ids, strict=True)]
                outcomes = await self.registry.set_supervisors(links, self.now)
            except RedisError as exc:
                self.report.supervisor_not_linked += [row for row, _, _, _ in self.deferred[i:]]
                raise _StoreFailed(_reason(exc)) from exc
            self.report.unchanged -= sum(1 for (_, _, _, was), o in zip(chunk, outcomes, strict=True)
                                         if was and o == 1)


def _reason(exc: Exception) -> str:
    return f"{type(exc).__name__}: {str(exc)[:200]}"


async def import_contacts(stream: IO[bytes], fmt: str, registry: RedisRegistry, ref: Reference, *,
                          now: datetime, batch_rows: int = 1000, progress: Progress | None = None,
                          max_unpacked_bytes: int = MAX_XLSX_UNPACKED_BYTES) -> ImportReport:
    """Import a seekable CSV/XLSX stream; raises FileProblem when the file as a whole is unusable."""
    checked = await asyncio.to_thread(_check, stream, fmt, ref, progress, max_unpacked_bytes)
    known = await _resolve_supervisors(checked, registry)
    report = ImportReport(rejected=[RowProblem(r, m) for r, m in checked.rejected.items()],
                          warnings=checked.warnings)
    writer = _Writer(registry, report, now, known, "supervisor_phone" in checked.columns,
                     "position" in checked.columns)
    try:
        with closing(_records(stream, fmt, None)) as rows:  # the same stream, checked in the first pass
            next(rows, None)
            await _write_rows(rows, writer, checked, ref, batch_rows, progress)
        await writer.flush()
    except _StoreFailed as exc:
        report.interrupted = str(exc)
        done = {*report.written, *report.not_written, *report.unconfirmed}
        report.not_written += [row for row in checked.phones if row not in done]
        report.supervisor_not_linked = [row for row, _, _, _ in writer.deferred]
        return report
    try:
        await writer.link_supervisors()
    except _StoreFailed as exc:
        report.interrupted = str(exc)
        return report
    if progress:
        progress("write", len(checked.phones), len(checked.phones))
    return report


async def _write_rows(rows: Iterator[tuple[int, list[str]]], writer: _Writer, checked: _Checked, ref: Reference,
                      batch_rows: int, progress: Progress | None) -> None:
    done = 0
    for number, cells in rows:
        phone = checked.phones.get(number)
        if phone is None:
            continue  # blank or refused
        contact, _ = parse_contact(_record(cells, checked.columns), ref, phone=phone)
        await writer.add(number, contact, checked.supervisor_of.get(number, ""), batch_rows)
        done += 1
        if progress and done % batch_rows == 0:
            progress("write", done, len(checked.phones))
