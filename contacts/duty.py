"""The duty roster (值班表): who is on duty for a township or the county, by date and shift; stored and imported."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from typing import IO, Any

import redis.asyncio as aioredis

from contacts.directory import ContactDirectory
from contacts.phone import InvalidPhoneNumber, normalize_e164
from contacts.reference import Reference
from contacts.tabular import FileProblem, iter_rows

PREFIX = "ew:duty:"
INDEX = PREFIX + "index"  #: ZSET "<region>|<date>" (score: the date's ordinal), what GET /api/v1/duty lists
#: shifts are written in local time; the county offices this serves keep Beijing time
LOCAL_TZ = timezone(timedelta(hours=8))
#: roster days are kept this long after they end
RETENTION_S = 400 * 86400
COLUMNS: dict[str, tuple[str, ...]] = {
    "region": ("region", "code", "region_code", "township", "行政区划代码", "区划代码", "乡镇代码", "乡镇", "区划"),
    "date": ("date", "日期", "值班日期"),
    "start": ("start", "shift_start", "from", "开始时间", "开始", "上班时间"),
    "end": ("end", "shift_end", "to", "结束时间", "结束", "下班时间"),
    "phone": ("phone", "mobile", "电话", "手机", "手机号码", "联系电话"),
    "contact_id": ("contact_id", "contact", "联系人编号", "人员编号"),
    "name": ("name", "姓名", "值班人员", "值班人", "值班员"),
    "leader": ("leader", "带班领导", "带班领导姓名", "带班"),
    "leader_phone": ("leader_phone", "带班领导电话", "带班领导手机", "带班领导手机号码"),
}
_REGION = re.compile(r"^\d{6}(\d{3})?$")


def day_key(region: str, day: date) -> str:
    """Hash: the roster of one township (9 digits) or county (6 digits) on one day, shift id → entry JSON."""
    return f"{PREFIX}{region}:{day.isoformat()}"


@dataclass(frozen=True, slots=True)
class DutyEntry:
    """One shift: who (a phone, or a registry contact) is on duty for `region` on `day` from `start` to `end`,
    and the leader in charge of it (带班领导: a name, and a mobile number when given)."""

    region: str
    day: date
    start: time
    end: time  # not after start: the shift runs past midnight
    phone: str = ""
    contact_id: str = ""
    name: str = ""
    leader: str = ""
    leader_phone: str = ""

    @property
    def shift_id(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}|{self.contact_id or self.phone}"

    def covers(self, local: datetime) -> bool:
        """True when the shift includes this local time."""
        begin = datetime.combine(self.day, self.start, LOCAL_TZ)
        finish = datetime.combine(self.day + timedelta(days=1 if self.end <= self.start else 0), self.end, LOCAL_TZ)
        return begin <= local < finish

    def to_json(self) -> dict[str, str]:
        return {"region": self.region, "date": self.day.isoformat(), "start": f"{self.start:%H:%M}",
                "end": f"{self.end:%H:%M}", "phone": self.phone, "contact_id": self.contact_id, "name": self.name,
                "leader": self.leader, "leader_phone": self.leader_phone}

    @classmethod
    def from_json(cls, d: dict[str, str]) -> DutyEntry:
        return cls(region=d["region"], day=date.fromisoformat(d["date"]), start=time.fromisoformat(d["start"]),
                   end=time.fromisoformat(d["end"]), phone=d.get("phone", ""), contact_id=d.get("contact_id", ""),
                   name=d.get("name", ""), leader=d.get("leader", ""), leader_phone=d.get("leader_phone", ""))


@dataclass
class DutyReport:
    """What an import did; rows numbered as a spreadsheet shows them (the header is row 1)."""

    accepted: int = 0
    updated: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"accepted": self.accepted, "updated": self.updated, "rejected": self.rejected}


def _date(raw: str) -> date:
    text = raw.strip().replace("/", "-").replace(".", "-")
    text = text.split(" ")[0].split("T")[0]
    parts = text.split("-")
    problem = f"日期无效 invalid date: {raw[:20]!r} (YYYY-MM-DD)"
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        raise ValueError(problem)
    try:
        return date(int(parts[0]), int(parts[1]), int(parts[2]))
    except ValueError:  # 2026-02-30: Python's own message is not for a clerk
        raise ValueError(problem) from None


def _time(raw: str, what: str) -> time:
    text = raw.strip().replace("：", ":")
    m = re.fullmatch(r"(\d{1,2}):(\d{2})(?::\d{2})?", text)
    if not m or int(m.group(1)) > 24 or int(m.group(2)) > 59 or (int(m.group(1)) == 24 and int(m.group(2))):
        raise ValueError(f"{what}无效 invalid {'start' if what == '开始时间' else 'end'} time: {raw[:20]!r} (HH:MM)")
    hour = int(m.group(1))
    return time(0, int(m.group(2))) if hour == 24 else time(hour, int(m.group(2)))


def parse_entry(cells: dict[str, str], default_phone_region: str = "CN") -> DutyEntry:
    """One roster row as an entry; ValueError with a clerk-readable reason (Chinese first)."""
    region = cells.get("region", "").strip()
    if not _REGION.match(region):
        raise ValueError(f"区划代码应为6位（县）或9位（乡镇） region must be 6 or 9 digits: {region[:20]!r}")
    day = _date(cells.get("date", ""))
    start, end = _time(cells.get("start", ""), "开始时间"), _time(cells.get("end", ""), "结束时间")
    phone, cid = cells.get("phone", "").strip(), cells.get("contact_id", "").strip()
    if not phone and not cid:
        raise ValueError("需要电话或联系人编号 phone or contact_id is required")
    if phone:
        phone = _mobile(phone, default_phone_region, ("值班电话", "the duty phone"))
    leader, leader_phone = cells.get("leader", "").strip()[:40], cells.get("leader_phone", "").strip()
    if leader_phone:
        leader_phone = _mobile(leader_phone, default_phone_region, ("带班领导电话", "the leader's phone"), named=True)
        if not leader:
            raise ValueError("填写了带班领导电话，但没有带班领导姓名 the leader's phone is given without the leader's name")
    return DutyEntry(region, day, start, end, phone, cid, cells.get("name", "").strip()[:40], leader, leader_phone)


def _mobile(raw: str, default_phone_region: str, what: tuple[str, str], *, named: bool = False) -> str:
    """The E.164 form of a mobile number; ValueError (naming the column when `named`) otherwise."""
    try:
        phone, kind = normalize_e164(raw, default_phone_region)
    except InvalidPhoneNumber as exc:
        raise ValueError(f"{what[0]}：{exc}" if named else str(exc)) from None
    if kind != "mobile":  # escalation notices go by SMS
        raise ValueError(f"{what[0]}须为手机号码（通知以短信发送） {what[1]} must be a mobile (notices go by SMS)")
    return phone


def _header(cells: Sequence[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for i, cell in enumerate(cells):
        name = cell.strip().lstrip("\ufeff").lower()
        for key, names in COLUMNS.items():
            if name in names and key not in found:
                found[key] = i
    return found


def read_roster(stream: IO[bytes], fmt: str, default_phone_region: str = "CN"
                ) -> tuple[list[tuple[int, DutyEntry]], list[dict[str, Any]]]:
    """Every row of a roster file: (row number, entry) for good rows, {row, error} for the rest."""
    rows = iter_rows(stream, fmt)
    head = next(rows, None)
    if head is None:
        raise FileProblem("文件为空 the file is empty")
    cols = _header(head)
    missing = [c for c in ("region", "date", "start", "end") if c not in cols]
    if missing or ("phone" not in cols and "contact_id" not in cols):
        raise FileProblem(f"缺少列 missing columns: {', '.join(missing or ['phone|contact_id'])}")
    good, bad = [], []
    seen: dict[tuple[str, date, str], int] = {}
    for n, row in enumerate(rows, start=2):
        if not any(c.strip() for c in row):
            continue
        cells = {k: (row[i] if i < len(row) else "") for k, i in cols.items()}
        try:
            entry = parse_entry(cells, default_phone_region)
        except ValueError as exc:
            bad.append({"row": n, "error": str(exc)})
            continue
        earlier = seen.setdefault((entry.region, entry.day, entry.shift_id), n)
        if earlier != n:
            bad.append({"row": n, "error": f"与第 {earlier} 行重复 repeats row {earlier}"})
        else:
            good.append((n, entry))
    return good, bad


async def check_roster(stream: IO[bytes], fmt: str, *, ref: Reference | None, directory: ContactDirectory,
                       default_phone_region: str = "CN") -> tuple[list[DutyEntry], list[dict[str, Any]]]:
    """A roster file read and checked as a whole: its entries, and every refused row ({row, error}, in row order)
    — a region not in the region tree, a contact id not in the registry, and what `read_roster` refuses.

    The roster is all or nothing: callers write the entries only when nothing was refused.
    """
    # off the event loop: a big workbook takes a while to unpack and parse, and nothing else may wait on it
    good, bad = await asyncio.to_thread(read_roster, stream, fmt, default_phone_region)
    if ref is not None and len(ref.regions):
        bad += [{"row": n, "error": f"区划代码不在区划表中 region code not in the region tree: {e.region}"}
                for n, e in good if e.region not in ref.regions]
    ids = sorted({e.contact_id for _, e in good if e.contact_id})
    known = {c.id for c in await directory.get_many(ids)} if ids else set()
    bad += [{"row": n, "error": f"联系人不存在 unknown contact: {e.contact_id}"} for n, e in good
            if e.contact_id and e.contact_id not in known]
    return [e for _, e in good], sorted(bad, key=lambda b: int(b["row"]))


class DutyRoster:
    """The roster in Redis: one hash per region and day, and an index of the days held."""

    def __init__(self, redis: aioredis.Redis) -> None:
        # redis-py's annotations do not follow decode_responses=True; the replies here are str
        self.redis: Any = redis

    async def put(self, entries: Iterable[DutyEntry], now: datetime) -> tuple[int, int]:
        """Store shifts (the same region, day, times and person replace the earlier row); (new, replaced)."""
        batch = list(entries)
        async with self.redis.pipeline(transaction=True) as pipe:
            for e in batch:
                key = day_key(e.region, e.day)
                pipe.hset(key, e.shift_id, json.dumps(e.to_json(), ensure_ascii=False))
                ends = datetime.combine(e.day + timedelta(days=2), time(0), LOCAL_TZ)
                pipe.expire(key, max(86400, int((ends - now).total_seconds()) + RETENTION_S))
                pipe.zadd(INDEX, {f"{e.region}|{e.day.isoformat()}": e.day.toordinal()})
            results = await pipe.execute()
        new = sum(1 for r in results[0::3] if r)
        return new, len(batch) - new

    async def day(self, region: str, day: date) -> list[DutyEntry]:
        raw = await self.redis.hvals(day_key(region, day))
        return sorted((DutyEntry.from_json(json.loads(v)) for v in raw), key=lambda e: (e.start, e.end, e.name))

    async def on_duty(self, region: str, at: datetime) -> list[DutyEntry]:
        """Who is on duty for exactly this region (a township or the county) at `at`."""
        local = at.astimezone(LOCAL_TZ)
        found = []
        for day in (local.date() - timedelta(days=1), local.date()):
            found += [e for e in await self.day(region, day) if e.covers(local)]
        return found

    async def between(self, first: date, last: date) -> list[DutyEntry]:
        """Every shift from `first` to `last` (both included), of every region, by day, region and start."""
        members = await self.redis.zrangebyscore(INDEX, first.toordinal(), last.toordinal())
        async with self.redis.pipeline(transaction=False) as pipe:
            for member in members:
                code, iso = member.split("|")
                pipe.hvals(day_key(code, date.fromisoformat(iso)))
            replies = await pipe.execute()
        entries = [DutyEntry.from_json(json.loads(v)) for raw in replies for v in raw]
        return sorted(entries, key=lambda e: (e.day, e.region, e.start, e.end, e.name))

    async def listing(self, *, region: str = "", day: date | None = None, limit: int = 500) -> list[DutyEntry]:
        """Roster rows, by day then region; filtered by a region prefix and a day."""
        lo, hi = (day.toordinal(), day.toordinal()) if day else ("-inf", "+inf")
        members = await self.redis.zrangebyscore(INDEX, lo, hi)
        out: list[DutyEntry] = []
        for member in sorted(members, key=lambda m: (m.split("|")[1], m.split("|")[0])):
            code, iso = member.split("|")
            if region and not code.startswith(region):
                continue
            out += await self.day(code, date.fromisoformat(iso))
            if len(out) >= limit:
                break
        return out[:limit]
