"""演练评估: the evaluation of a drill (or of any warning) for its archive — coverage, how long people took to confirm,
and who never answered, by township and village (the source document asks every drill to be evaluated and the report
filed within 10 days of it)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import redis.asyncio as aioredis

from warning import keys
from warning.coverage import coverage
from warning.delivery import DeliveryState
from warning.delivery_store import DeliveryStore, Row
from warning.followup import by_place, people_rows, unconfirmed_of
from warning.record import WarningRecord
from warning.retention import warning_end

#: the time-to-confirm histogram: (upper bound in seconds or None, Chinese label, English label)
BUCKETS: tuple[tuple[int | None, str, str], ...] = (
    (60, "1分钟内", "≤ 1 min"), (180, "1–3分钟", "1–3 min"), (300, "3–5分钟", "3–5 min"),
    (600, "5–10分钟", "5–10 min"), (900, "10–15分钟", "10–15 min"), (1800, "15–30分钟", "15–30 min"),
    (3600, "30–60分钟", "30–60 min"), (None, "60分钟以上", "> 60 min"))
#: the windows the county counts: confirmed within 5 and within 15 minutes of the send
WINDOWS_S = (300, 900)


@dataclass(frozen=True, slots=True)
class Labels:
    """How the report names things: divisions by the region tree, roles by their Chinese label, phones (masked)."""

    regions: Mapping[str, str]
    role: Callable[[str], str] = str
    phone: Callable[[str], str] = str


def median_s(times: Sequence[float]) -> float | None:
    """The middle time (the mean of the two middle ones for an even count); None when nobody confirmed."""
    return float(statistics.median(times)) if times else None


def percentile_s(times: Sequence[float], p: float) -> float | None:
    """The nearest-rank percentile: the shortest time within which at least p % of those who confirmed had."""
    if not times:
        return None
    ordered = sorted(times)
    return float(ordered[max(1, math.ceil(p / 100 * len(ordered))) - 1])


def histogram(times: Sequence[float]) -> list[dict[str, Any]]:
    """How many confirmed within each bucket of BUCKETS."""
    out = []
    lower = -1.0
    for upper, zh, en in BUCKETS:
        n = sum(1 for t in times if lower < t <= (upper if upper is not None else math.inf))
        out.append({"upto_s": upper, "label_zh": zh, "label_en": en, "count": n})
        lower = float(upper) if upper is not None else lower
    return out


def _share(part: int, whole: int) -> float | None:
    return round(100 * part / whole, 1) if whole > 0 else None


def _issued_marks(raw: Mapping[str, str]) -> dict[int, datetime]:
    out = {}
    for name, value in raw.items():
        kind, _, version = name.partition(":")
        if kind == "issued" and version.isdigit():
            out[int(version)] = datetime.fromisoformat(value)
    return out


def _when(value: str) -> datetime | None:
    """An acknowledgment's time as the acked hash keeps it (ISO 8601)."""
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def confirm_times(by_person: Mapping[str, Sequence[Row]], acked: Mapping[str, str], issued: Mapping[int, datetime],
                  fallback: datetime) -> dict[str, float]:
    """Seconds from the send to each person's confirmation.

    The send is when the version their confirmation was counted on went out (the acked_5m / acked_15m counters
    measure from the same instant): the version of their acknowledged delivery, else the first they were sent.
    """
    out: dict[str, float] = {}
    for rid, at_text in acked.items():
        rows = by_person.get(rid)
        at = _when(at_text)
        if not rows or at is None:
            continue
        carried = [r.delivery.version for r in rows if r.delivery.state is DeliveryState.ACKNOWLEDGED]
        version = min(carried) if carried else min(r.delivery.version for r in rows)
        out[rid] = max(0.0, (at - issued.get(version, fallback)).total_seconds())
    return out


def _areas(record: WarningRecord, names: Mapping[str, str]) -> list[dict[str, str]]:
    codes = list(record.content.region_codes)
    if codes:
        return [{"code": c, "name": names.get(c, "")} for c in codes]
    return [{"code": "", "name": a.desc} for a in record.content.areas if a.desc]


def _summary(record: WarningRecord, issued: Mapping[int, datetime], names: Mapping[str, str]) -> dict[str, Any]:
    info = record.content.info
    first = min(issued.values()) if issued else None
    return {"id": record.id, "headline": (info.headline if info else None) or "", "event": info.event if info else "",
            "event_type": record.content.event_type, "level": record.level.value, "level_zh": record.level.zh,
            "status": record.content.status.value, "state": record.state.value, "version": record.version,
            "areas": _areas(record, names), "created_at": record.created_at.isoformat(),
            "issued_at": first.isoformat() if first else None, "ends_at": warning_end(record).isoformat()}


def _timing(times: Mapping[str, float], targeted: int) -> dict[str, Any]:
    values = sorted(times.values())
    within = {w: sum(1 for t in values if t <= w) for w in WINDOWS_S}
    return {"confirmed": len(values), "targeted": targeted, "median_s": median_s(values),
            "p90_s": percentile_s(values, 90), "within_5m": within[300], "within_15m": within[900],
            "share_within_5m": _share(within[300], targeted), "share_within_15m": _share(within[900], targeted),
            "histogram": histogram(values)}


def _places(doc: Mapping[str, Any], names: Mapping[str, str]) -> list[dict[str, Any]]:
    """Coverage by township, each followed by its villages: targeted, confirmed, within 5 and 15 minutes, rate."""
    rows = []
    for code, f in sorted(doc.get("by_region", {}).items()):
        if len(code) not in (9, 12):
            continue
        targeted, acked = int(f.get("targeted", 0)), int(f.get("acked", 0))
        rows.append({"code": code, "name": names.get(code, ""), "level": "township" if len(code) == 9 else "village",
                     "targeted": targeted, "delivered": int(f.get("delivered", 0)), "failed": int(f.get("failed", 0)),
                     "acked": acked, "acked_5m": int(f.get("acked_5m", 0)), "acked_15m": int(f.get("acked_15m", 0)),
                     "ack_rate": _share(acked, targeted)})
    return rows


async def evaluate(store: DeliveryStore, redis: aioredis.Redis, record: WarningRecord, *, labels: Labels,
                   now: datetime) -> dict[str, Any]:
    """The evaluation document of a warning (any warning; `drill` says whether it was an exercise)."""
    r: Any = redis  # decode_responses=True: the replies are str
    issued = _issued_marks(await r.hgetall(keys.escalation_key(record.id)))
    acked = await store.acked(record.id)
    by_person = people_rows(await store.rows(record.id, await store.ids(record.id)))
    doc = coverage(await store.counts(record.id), region_names=labels.regions)
    # people whose number was flagged needs_check count apart (coverage's `needs_check`): not in the times either
    counted = {rid: rows for rid, rows in by_person.items() if not any(r.needs_check for r in rows)}
    times = confirm_times(counted, acked, issued, record.created_at)
    people = unconfirmed_of(by_person, set(acked), phone=labels.phone)
    for p in people:
        p["role_zh"] = labels.role(p["role"])
    drill = record.is_exercise
    return {
        "id": record.id, "drill": drill,
        "title_zh": "演练评估报告" if drill else "预警发布评估报告",
        "title_en": "Drill evaluation" if drill else "Warning evaluation",
        "generated_at": now.isoformat(), "warning": _summary(record, issued, labels.regions),
        "coverage": doc, "confirm_times": _timing(times, int(doc.get("targeted", 0))),
        "places": _places(doc, labels.regions),
        "unconfirmed": {"total": len(people), "townships": by_place(people, labels.regions)},
    }


def duration_zh(seconds: float | None) -> str:
    """A duration as people read it: 4分12秒, 58秒, 1小时3分; "—" when there is none."""
    if seconds is None:
        return "—"
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}小时{minutes}分"
    return f"{minutes}分{secs}秒" if minutes else f"{secs}秒"


KIND_ZH = {"sms": "短信", "voice": "语音"}
STATE_ZH = {"pending": "待发送", "sending": "发送中", "retry_wait": "等待重试", "accepted": "已提交", "sent": "已发送",
            "delivered": "已送达", "acknowledged": "已确认", "failed": "失败", "undelivered": "未送达",
            "expired": "已过期", "cancelled": "已取消"}


#: why a send failed (warning.errors.Reason, and the voice statuses), in Chinese
REASON_ZH = {"invalid_address": "号码无效", "opted_out": "已退订", "provider_rejected": "服务商拒收",
             "client_error": "请求被拒", "server_error": "服务商故障", "timeout": "超时", "rate_limited": "限流",
             "auth_error": "通道认证失败", "expired": "已过期", "cancelled": "已取消", "busy": "占线",
             "no-answer": "无人接听", "failed": "呼叫失败", "acknowledged": "已确认", "gave up after": "多次重试失败"}


def _error_zh(error: str) -> str:
    """A delivery's error with its reason word in Chinese first: 号码无效（twilio 21211 (HTTP 400)）."""
    for word, zh in REASON_ZH.items():
        if error.startswith(word):
            rest = error[len(word):].lstrip(": ").strip()
            return f"{zh}（{rest[:40]}）" if rest else zh
    return error[:40]


def tried_zh(tried: Sequence[Mapping[str, Any]]) -> str:
    """What was tried for a person, in Chinese: 短信：已送达；语音：失败，无人接听."""
    parts = []
    for t in tried:
        text = f"{KIND_ZH.get(str(t['kind']), t['kind'])}：{STATE_ZH.get(str(t['state']), t['state'])}"
        if t.get("error") and t["state"] in ("failed", "undelivered", "expired"):
            text += f"，{_error_zh(str(t['error']))}"
        parts.append(text)
    return "；".join(parts)


def sheets(doc: Mapping[str, Any], local_time: Callable[[str | None], str]) -> list[tuple[str, list[list[Any]]]]:
    """The report as workbook sheets (title, rows), Chinese first: summary, by place, time to confirm, unconfirmed."""
    w, cov, times = doc["warning"], doc["coverage"], doc["confirm_times"]
    areas = "、".join(a["name"] or a["code"] for a in w["areas"])
    summary: list[list[Any]] = [
        ["项目 item", "数值 value"], ["报告 report", f"{doc['title_zh']} {doc['title_en']}"],
        ["预警 warning", w["headline"]], ["编号 id", w["id"]], ["级别 level", w["level_zh"]],
        ["演练 drill", "是 yes" if doc["drill"] else "否 no"], ["区域 area", areas],
        ["发布时间（北京时间） issued (Beijing time)", local_time(w["issued_at"])],
        ["结束时间 ends", local_time(w["ends_at"])], ["生成时间 generated", local_time(doc["generated_at"])],
        ["目标人数 targeted", cov["targeted"]], ["已发送 sent", cov["sent"]], ["已送达 delivered", cov["delivered"]],
        ["失败 failed", cov["failed"]], ["已确认 confirmed", cov["acked"]],
        ["5分钟内确认 within 5 min", times["within_5m"]], ["15分钟内确认 within 15 min", times["within_15m"]],
        ["确认用时中位数 median time to confirm", duration_zh(times["median_s"])],
        ["90%确认用时 90th percentile", duration_zh(times["p90_s"])],
        ["未确认人数 never confirmed", doc["unconfirmed"]["total"]],
        ["待核实号码（不计入覆盖） numbers to check (counted apart)", cov.get("needs_check", {}).get("targeted", 0)]]
    places: list[list[Any]] = [["区划 division", "代码 code", "目标 targeted", "已送达 delivered", "失败 failed",
                                "已确认 confirmed", "5分钟内 ≤5 min", "15分钟内 ≤15 min", "确认率 % rate"]]
    for p in doc["places"]:
        indent = "" if p["level"] == "township" else "　"
        places.append([indent + (p["name"] or p["code"]), p["code"], p["targeted"], p["delivered"], p["failed"],
                       p["acked"], p["acked_5m"], p["acked_15m"], p["ack_rate"] if p["ack_rate"] is not None else ""])
    spread: list[list[Any]] = [["确认用时 time to confirm", "人数 people"]]
    spread += [[f"{b['label_zh']} {b['label_en']}", b["count"]] for b in times["histogram"]]
    people: list[list[Any]] = [["乡镇 township", "村/社区 village", "姓名 name", "角色 role", "电话 phone",
                                "已尝试 tried"]]
    for t in doc["unconfirmed"]["townships"]:
        for v in t["villages"]:
            for p in v["people"]:
                people.append([t["name"] or t["code"], v["name"] or v["code"], p["name"], p.get("role_zh", p["role"]),
                               p["phone"], tried_zh(p["tried"])])
    return [("评估摘要", summary), ("按乡镇村", places), ("确认用时", spread), ("未确认人员", people)]
