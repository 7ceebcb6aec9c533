"""The follow-through panels of a warning's page (跟踪): the unconfirmed, 叫应, field reports, a chart, a map.

Everything comes from one read of the warning's deliveries and its audit log; the page renders it on load and
again (as HTML fragments) when the live coverage moves. The 叫应 panel's data has the shape a 叫应记录 API
(`GET /api/v1/warnings/{id}/calls`) would answer: `{"steps": [...], "calls": [...]}`; `calls_view` is the one
place to switch to it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from contacts.phone import mask_phone
from contacts.reference import Reference
from warning import keys
from warning.delivery import DeliveryState
from warning.delivery_store import NOTICE, Row
from warning.errors import ConfigError
from warning.logs import redact
from warning.record import WarningRecord
from warning.settings import Settings

S = DeliveryState
#: rows shown in the unconfirmed table and the 叫应 list on the page (the exports have everything)
MAX_PEOPLE_SHOWN = 500
MAX_CALLS_SHOWN = 200
MAX_REPORTS_SHOWN = 200
#: the map draws at most this many people (the first by region); the legend says when there are more
MAX_MAP_POINTS = 3000
#: confirmation windows marked on the chart, in minutes (the acked_5m / acked_15m counters)
CHART_MARKS_MIN = (5, 15)
FAILED = frozenset({S.FAILED, S.UNDELIVERED, S.EXPIRED})
PERSON_KINDS = ("sms", "voice")
ACTION_ZH = {"call": ("电话叫应", "call"), "sms_again": ("再发短信", "SMS again"),
             "notify_supervisor": ("告知上级或乡镇值班", "tell supervisors / township duty"),
             "notify_county_duty": ("报县值班", "tell the county duty officer")}


@dataclass(frozen=True, slots=True)
class ReportRules:
    """`[reports] action_keywords`: field reports naming one of these words need action and stand out."""

    action_keywords: tuple[str, ...]

    @classmethod
    def from_settings(cls, settings: Settings) -> ReportRules:
        """Checked at start: a list of words of 1 to 20 characters."""
        raw = settings.section("reports").get("action_keywords", [])
        source = settings.sources[-1] if settings.sources else "<config>"
        if not isinstance(raw, list) or not all(isinstance(w, str) and 0 < len(w.strip()) <= 20 for w in raw):
            raise ConfigError(source, "reports.action_keywords", "expected a list of words (1 to 20 characters each)")
        return cls(tuple(dict.fromkeys(w.strip() for w in raw)))

    def matches(self, text: str) -> list[str]:
        """The keywords found in a report's text."""
        return [w for w in self.action_keywords if w in text]


def person_state(rows: Sequence[Row], acked: bool) -> str:
    """confirmed, delivered, failed or pending: one person's state across their deliveries (for the map)."""
    if acked:
        return "confirmed"
    states = {r.delivery.state for r in rows}
    if states & {S.DELIVERED, S.ACKNOWLEDGED}:
        return "delivered"
    if states and states <= FAILED | {S.CANCELLED} and states & FAILED:
        return "failed"
    return "pending"


def _names(reference: Reference | None) -> dict[str, str]:
    return {r.code: r.name for r in reference.regions} if reference is not None else {}


def place(region: str, names: Mapping[str, str]) -> str:
    """A contact's township and village by name (潼川镇东街社区)."""
    town = names.get(region[:9], region[:9]) if len(region) >= 9 else names.get(region, region)
    village = names.get(region[:12], "") if len(region) >= 12 else ""
    return f"{town}{village}"


class FollowView:
    """One warning's follow-through, from a single read of its deliveries."""

    def __init__(self, services: Any, record: WarningRecord, *, reference: Reference | None, viewer: bool,
                 rules: ReportRules) -> None:
        self.services, self.record, self.reference = services, record, reference
        self.viewer, self.rules = viewer, rules
        self.names = _names(reference)

    async def build(self) -> dict[str, Any]:
        store = self.services.deliveries
        rows = await store.rows(self.record.id, await store.ids(self.record.id))
        acked = await store.acked(self.record.id)
        people: dict[str, list[Row]] = {}
        for row in rows:
            if row.delivery.kind in PERSON_KINDS and row.msg_type != NOTICE:
                people.setdefault(row.delivery.recipient_id, []).append(row)
        issued = await self._issued_at()
        now = self.services.clock.now()
        return {"unconfirmed": self._unconfirmed(people, acked), "chart": chart(acked.values(), issued, now,
                                                                                 targeted=len(people)),
                "map": await self._map(people, acked), "calls": await calls_view(self.services, self.record, rows,
                                                                                   issued, self.names),
                "reports": await self._reports(), "people": len(people)}

    async def _issued_at(self) -> datetime | None:
        ledger = self.services.ledger
        for version in range(1, self.record.version + 1):
            at: datetime | None = await ledger.issued_at(self.record.id, version)
            if at is not None:
                return at
        return None

    def _unconfirmed(self, people: Mapping[str, list[Row]], acked: Mapping[str, str]) -> dict[str, Any]:
        out = []
        for rid, rows in people.items():
            if rid in acked:
                continue
            first = rows[0]
            phone = first.delivery.address
            tried = sorted(rows, key=lambda r: (r.delivery.version, r.delivery.wave, r.delivery.kind))
            out.append({"id": rid, "name": first.name, "role": first.role, "region": first.region,
                        "place": place(first.region, self.names), "phone": mask_phone(phone) if self.viewer else phone,
                        "tried": [{"kind": r.delivery.kind, "state": r.delivery.state.value} for r in tried]})
        out.sort(key=lambda p: (p["region"], p["name"]))
        return {"total": len(out), "people": out[:MAX_PEOPLE_SHOWN]}

    async def _map(self, people: Mapping[str, list[Row]], acked: Mapping[str, str]) -> dict[str, Any]:
        ids = sorted(people, key=lambda i: (people[i][0].region, i))
        contacts = await self.services.directory.get_many(ids[:MAX_MAP_POINTS]) if ids else []
        points = [(c.location.lat, c.location.lon, person_state(people[c.id], c.id in acked), c.name)
                  for c in contacts if c.location is not None and c.id in people]
        return project(points, self.record, total=len(people))

    async def _reports(self) -> list[dict[str, Any]]:
        redis: Any = self.services.redis
        raw = await redis.xrevrange(keys.reports_key(self.record.id), count=MAX_REPORTS_SHOWN)
        recipients = await self.services.deliveries.recipients(self.record.id)
        out = []
        for rid, f in raw:
            text = f.get("text") or ""
            who = recipients.get(f.get("contact") or "", {})
            out.append({"id": rid, "at": f.get("at"), "name": f.get("name"), "role": who.get("role", ""),
                        "region": f.get("region") or "", "place": place(f.get("region") or "", self.names),
                        "text": redact(text) if self.viewer else text, "keywords": self.rules.matches(text)})
        # those that need action first, each group newest first
        return sorted(out, key=lambda r: not r["keywords"])


async def calls_view(services: Any, record: WarningRecord, rows: Iterable[Row], issued: datetime | None,
                     names: Mapping[str, str]) -> dict[str, Any]:
    """叫应: the policy's escalation steps (taken, with when and how many; or due when) and who was called or told."""
    level = services.policy.for_level(record.level.value)
    taken: dict[int, dict[str, Any]] = {}
    for entry in await services.audit.entries(record.id):
        if entry.action == "escalate" and isinstance(entry.detail.get("step"), int):
            taken[entry.detail["step"]] = {"at": entry.at, "unacked": entry.detail.get("unacked"),
                                           "messages": entry.detail.get("messages")}
    steps = []
    for i, step in enumerate(level.escalation):
        due = (issued.timestamp() + step.after_s) if issued is not None and level.ack_deadline_s > 0 else None
        steps.append({"index": i, "action": step.action, "after_s": step.after_s,
                      "due_at": datetime.fromtimestamp(due, tz=issued.tzinfo).isoformat() if due and issued else None,
                      **({"done": True, **taken[i]} if i in taken else {"done": False})})
    calls = []
    for row in rows:
        d = row.delivery
        if d.kind == "voice" or row.msg_type == NOTICE:
            calls.append({"at": d.updated_at.isoformat() if d.updated_at else None, "name": row.name,
                          "role": row.role, "place": place(row.region, names), "kind": d.kind, "wave": d.wave,
                          "notice": row.msg_type == NOTICE, "state": d.state.value})
    calls.sort(key=lambda c: c["at"] or "", reverse=True)
    return {"ack_deadline_s": level.ack_deadline_s, "steps": steps, "calls": calls[:MAX_CALLS_SHOWN],
            "calls_total": len(calls)}


def chart(acked_at: Iterable[str], issued: datetime | None, now: datetime, *, targeted: int) -> dict[str, Any]:
    """Confirmations over time as an SVG step line: minutes since issue → how many had confirmed."""
    w, h, left, bottom, top, right = 600, 240, 44, 28, 12, 12
    times = sorted(max(0.0, (datetime.fromisoformat(a) - issued).total_seconds() / 60) for a in acked_at) if issued else []
    elapsed = (now - issued).total_seconds() / 60 if issued else 0.0
    span = max(20.0, min(elapsed, 24 * 60.0), times[-1] if times else 0.0)
    ymax = max(1, targeted, len(times))

    def x(minutes: float) -> float:
        return round(left + (w - left - right) * min(minutes, span) / span, 1)

    def y(count: float) -> float:
        return round(h - bottom - (h - bottom - top) * count / ymax, 1)

    path = [f"M{x(0)},{y(0)}"]
    for i, minutes in enumerate(times, start=1):
        path += [f"H{x(minutes)}", f"V{y(i)}"]
    path.append(f"H{x(min(span, elapsed))}")
    step = next(s for s in (1, 2, 5, 10, 15, 30, 60, 120, 240, 480) if span / s <= 8)
    ticks = [{"x": x(m), "label": str(int(m))} for m in range(0, int(span) + 1, step)]
    marks = [{"x": x(m), "label": f"{m}", "count": sum(1 for t in times if t <= m)} for m in CHART_MARKS_MIN if m <= span]
    return {"w": w, "h": h, "left": left, "bottom": h - bottom, "top": top, "right": w - right, "path": " ".join(path),
            "ticks": ticks, "marks": marks, "ymax": ymax, "y_top": y(ymax), "total": len(times), "issued": issued,
            "targeted": targeted}


def project(points: Sequence[tuple[float, float, str, str]], record: WarningRecord, *, total: int) -> dict[str, Any]:
    """People as dots on an equirectangular frame fitted to them and the warning's own shapes (no map tiles)."""
    w, h, pad = 600, 420, 16
    outline = [[(lat, lon) for lat, lon in ring] for area in record.content.areas for ring in area.polygons]
    circles = [(c.lat, c.lon, c.radius_km) for area in record.content.areas for c in area.circles]
    lats = [p[0] for p in points] + [p[0] for ring in outline for p in ring] + [c[0] for c in circles]
    lons = [p[1] for p in points] + [p[1] for ring in outline for p in ring] + [c[1] for c in circles]
    counts = {s: 0 for s in ("confirmed", "delivered", "failed", "pending")}
    for p in points:
        counts[p[2]] += 1
    if not lats:
        return {"w": w, "h": h, "dots": [], "outline": [], "circles": [], "counts": counts, "shown": 0, "total": total}
    for lat, lon, r_km in circles:
        dlat = r_km / 111.32
        dlon = dlat / max(0.01, math.cos(math.radians(lat)))
        lats += [lat - dlat, lat + dlat]
        lons += [lon - dlon, lon + dlon]
    kx = math.cos(math.radians((min(lats) + max(lats)) / 2))
    span_x = max((max(lons) - min(lons)) * kx, 1e-3)
    span_y = max(max(lats) - min(lats), 1e-3)
    scale = min((w - 2 * pad) / span_x, (h - 2 * pad) / span_y)
    ox = pad + ((w - 2 * pad) - span_x * scale) / 2
    oy = pad + ((h - 2 * pad) - span_y * scale) / 2

    def xy(lat: float, lon: float) -> tuple[float, float]:
        return round(ox + (lon - min(lons)) * kx * scale, 1), round(oy + (max(lats) - lat) * scale, 1)

    dots = [{"x": xy(lat, lon)[0], "y": xy(lat, lon)[1], "state": state, "name": name}
            for lat, lon, state, name in points]
    rings = [" ".join(f"{a},{b}" for a, b in (xy(lat, lon) for lat, lon in ring)) for ring in outline]
    circ = [{"x": xy(lat, lon)[0], "y": xy(lat, lon)[1], "r": round(r_km / 111.32 * scale, 1)}
            for lat, lon, r_km in circles]
    return {"w": w, "h": h, "dots": dots, "outline": rings, "circles": circ, "counts": counts, "shown": len(dots),
            "total": total}
