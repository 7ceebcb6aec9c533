"""The 发布记录台账: every warning of a period with who issued and approved it, when, to whom, and how far it got.

Read from the warning records, their audit streams (who did what when) and the coverage counters; nothing is kept
apart for it, so the register always agrees with the warnings' own records.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

from warning.audit import AuditLog
from warning.coverage import coverage
from warning.delivery_store import DeliveryStore
from warning.record import WarningRecord
from warning.warning_store import WarningStore

BEIJING = timezone(timedelta(hours=8))
#: the longest period one register covers (a year and a day: a calendar year, whatever the leap)
MAX_PERIOD_DAYS = 366
#: warnings read per page of the index
PAGE = 200
STATE_ZH = {"draft": "草稿", "pending_approval": "待审签", "dispatching": "发送中", "active": "生效中",
            "superseded": "已更新", "cancelled": "已解除", "expired": "已过期", "rejected": "已退回"}
ORIGIN_ZH = {"manual": "人工起草", "feed": "数据源", "api": "接口"}
MEASURES = ("目标人数、确认人数按人计；发送、送达、失败按条计（一人可收多条：短信、语音、更新、解除）。"
            "送达率 = 送达条数 ÷ 发送条数；确认率 = 确认人数 ÷ 目标人数。")
#: the audit actions the register reads; the rest (sends, replies, receipts) are the delivery record's business
_ACTIONS = {"draft", "ingest", "approve", "override", "issue", "update", "cancel", "expire", "reject"}


@dataclass(frozen=True, slots=True)
class IssueLogRow:
    """One warning in the register; times in Beijing time, rates as fractions (None when nothing to divide by)."""

    id: str
    identifier: str
    level: str
    level_zh: str
    event: str
    headline: str
    exercise: bool
    origin: str
    state: str
    issuer: str
    approver: str
    created: str
    approved: str
    issued: str
    closed: str
    expires: str
    areas: str
    roles: str
    versions: int
    targeted: int
    sent: int
    delivered: int
    failed: int
    acked: int
    acked_5m: int

    @property
    def delivery_rate(self) -> float | None:
        """Messages delivered of messages sent (条)."""
        return self.delivered / self.sent if self.sent else None

    @property
    def ack_rate(self) -> float | None:
        """People who confirmed of people targeted (人)."""
        return self.acked / self.targeted if self.targeted else None

    @property
    def ack_5m_rate(self) -> float | None:
        return self.acked_5m / self.targeted if self.targeted else None


def period_bounds(first: date, last: date) -> tuple[datetime, datetime]:
    """The period from the start of `first` to the end of `last`, Beijing days, as UTC-aware datetimes."""
    return (datetime.combine(first, time(0), BEIJING),
            datetime.combine(last + timedelta(days=1), time(0), BEIJING))


def local(at: datetime | str | None) -> str:
    """`2026-07-01 08:00:00` in Beijing time, '' for none."""
    if not at:
        return ""
    when = datetime.fromisoformat(at) if isinstance(at, str) else at
    return when.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M:%S")


async def warnings_between(store: WarningStore, start: datetime, end: datetime) -> list[WarningRecord]:
    """The warnings created in [start, end), oldest first."""
    out: list[WarningRecord] = []
    cursor: float | None = end.timestamp()
    while cursor is not None:
        records, cursor = await store.list(limit=PAGE, before=cursor)
        for record in records:
            if record.created_at < start:
                return out[::-1]
            if record.created_at < end:
                out.append(record)
    return out[::-1]


@dataclass(frozen=True, slots=True)
class _Story:
    """What the audit stream says of a warning: who approved it and when, when it went out and when it closed."""

    approvers: tuple[str, ...]
    approved: str
    issued: str
    closed: str


async def _story(audit: AuditLog, warning_id: str) -> _Story:
    approvers: list[str] = []
    approved = issued = closed = ""
    for entry in await audit.entries(warning_id):
        if entry.action not in _ACTIONS:
            continue
        if entry.action in ("approve", "override"):
            mark = "（紧急放行）" if entry.action == "override" else ""
            if entry.actor + mark not in approvers:
                approvers.append(entry.actor + mark)
            approved = approved or entry.at
        elif entry.action == "issue" and entry.detail.get("sent", True) is not False:
            issued = issued or entry.at
        elif entry.action in ("cancel", "expire"):
            closed = closed or entry.at
    return _Story(tuple(approvers), approved, issued, closed)


def _issuer(record: WarningRecord) -> str:
    drafter = record.drafter or ""
    if drafter.startswith("feed:"):
        sender = record.content.info.sender_name if record.content.info else ""
        return f"{sender or drafter[5:]}（数据源 {drafter[5:]}）"
    return drafter


async def issue_log(records: Sequence[WarningRecord], *, audit: AuditLog, deliveries: DeliveryStore,
                    names: Mapping[str, str], role_label: Callable[[str], str],
                    needs_approval: Callable[[str], bool]) -> list[IssueLogRow]:
    """The register's rows for these warnings, in their order."""
    rows = []
    for record in records:
        story = await _story(audit, record.id)
        doc = coverage(await deliveries.counts(record.id))
        info = record.content.info
        approver = "、".join(story.approvers) or ("无需审签" if not needs_approval(record.level.value) else "")
        rows.append(IssueLogRow(
            id=record.id, identifier=record.identifiers[0] if record.identifiers else record.content.identifier,
            level=record.level.value, level_zh=record.level.zh, event=(info.event if info else "") or "",
            headline=(info.headline if info else "") or "", exercise=record.is_exercise,
            origin=ORIGIN_ZH.get(record.origin, record.origin), state=STATE_ZH.get(record.state.value,
                                                                                   record.state.value),
            issuer=_issuer(record), approver=approver, created=local(record.created_at), approved=local(story.approved),
            issued=local(story.issued), closed=local(story.closed), expires=local(record.expires_at),
            areas="、".join(names.get(code, code) for code in record.content.region_codes),
            roles="全部" if record.roles is None else "、".join(role_label(r) for r in record.roles),
            versions=record.version, targeted=doc["targeted"], sent=doc["sent"], delivered=doc["delivered"],
            failed=doc["failed"], acked=doc["acked"], acked_5m=doc["acked_5m"]))
    return rows


#: the register's columns: header (Chinese, English), the row's value, and the cell's number format
COLUMNS: tuple[tuple[str, str, Callable[[IssueLogRow], Any], str], ...] = (
    ("序号", "No.", lambda r: None, "0"),
    ("预警编号", "identifier", lambda r: r.identifier, "@"),
    ("级别", "level", lambda r: r.level_zh, "@"),
    ("事件", "event", lambda r: r.event, "@"),
    ("标题", "headline", lambda r: r.headline, "@"),
    ("演练", "exercise", lambda r: "是" if r.exercise else "否", "@"),
    ("来源", "origin", lambda r: r.origin, "@"),
    ("状态", "state", lambda r: r.state, "@"),
    ("发布人", "issuer", lambda r: r.issuer, "@"),
    ("审签人", "approver", lambda r: r.approver, "@"),
    ("起草时间", "drafted", lambda r: r.created, "@"),
    ("审签时间", "approved", lambda r: r.approved, "@"),
    ("发布时间", "issued", lambda r: r.issued, "@"),
    ("解除/失效时间", "ended", lambda r: r.closed, "@"),
    ("有效期至", "expires", lambda r: r.expires, "@"),
    ("发布范围", "areas", lambda r: r.areas, "@"),
    ("接收角色", "roles", lambda r: r.roles, "@"),
    ("版本数", "versions", lambda r: r.versions, "0"),
    ("目标人数（人）", "targeted (people)", lambda r: r.targeted, "0"),
    ("发送（条）", "sent (messages)", lambda r: r.sent, "0"),
    ("送达（条）", "delivered (messages)", lambda r: r.delivered, "0"),
    ("失败（条）", "failed (messages)", lambda r: r.failed, "0"),
    ("送达率", "delivery rate", lambda r: r.delivery_rate, "0.0%"),
    ("确认人数（人）", "confirmed (people)", lambda r: r.acked, "0"),
    ("确认率", "confirmation rate", lambda r: r.ack_rate, "0.0%"),
    ("5分钟内确认率", "confirmed ≤ 5 min", lambda r: r.ack_5m_rate, "0.0%"),
)


def issue_log_xlsx(rows: Sequence[IssueLogRow], first: date, last: date, made_at: datetime) -> bytes:
    """The register as a workbook: one row per warning under a Chinese header; counts and rates are numbers."""
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "发布记录台账"
    for c, (zh, _, _, _) in enumerate(COLUMNS, start=1):
        cell = sheet.cell(row=1, column=c, value=zh)
        cell.font, cell.alignment = Font(bold=True), Alignment(wrap_text=True, vertical="center")
        sheet.column_dimensions[cell.column_letter].width = max(8, min(40, 2 * len(zh) + 4))
    for r, row in enumerate(rows, start=2):
        for c, (_, _, value_of, fmt) in enumerate(COLUMNS, start=1):
            value = r - 1 if c == 1 else value_of(row)
            cell = sheet.cell(row=r, column=c, value=value)
            if isinstance(value, str):
                cell.data_type = "s"  # a headline from a feed that starts with "=" stays text
            cell.number_format = fmt
    sheet.freeze_panes = "B2"
    about = book.create_sheet("说明")
    for line in (("台账期间（北京时间）", f"{first.isoformat()} 至 {last.isoformat()}"),
                 ("生成时间（北京时间）", local(made_at)), ("预警数", str(len(rows))),
                 ("口径", MEASURES)):
        about.append(list(line))
    about.column_dimensions["A"].width, about.column_dimensions["B"].width = 24, 90
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
