"""Who of a warning's people has not confirmed, with what was tried, grouped by township and village: the list for
door-to-door follow-up (逐级报告), shared by the follow-up API, the dashboard and the drill evaluation."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from warning.delivery_store import NOTICE, DeliveryStore, Row

#: delivery kinds that reach a person (devices never confirm)
PERSON_KINDS = ("sms", "voice")


def tried(rows: Sequence[Row]) -> list[dict[str, Any]]:
    """What was tried for one person: each delivery's kind, state, version, wave, error and when, in order."""
    return [{"kind": r.delivery.kind, "state": r.delivery.state.value, "version": r.delivery.version,
             "wave": r.delivery.wave, "error": r.delivery.error,
             "at": r.delivery.updated_at.isoformat() if r.delivery.updated_at else None}
            for r in sorted(rows, key=lambda r: (r.delivery.version, r.delivery.wave, r.delivery.kind))]


def people_rows(rows: Sequence[Row]) -> dict[str, list[Row]]:
    """A warning's deliveries to its people (not devices, not notices to supervisors), by person."""
    out: dict[str, list[Row]] = {}
    for row in rows:
        if row.delivery.kind in PERSON_KINDS and row.msg_type != NOTICE:
            out.setdefault(row.delivery.recipient_id, []).append(row)
    return out


async def unconfirmed(store: DeliveryStore, warning_id: str, *, phone: Callable[[str], str] = str
                      ) -> list[dict[str, Any]]:
    """Every person of the warning who has not confirmed (id, name, role, region, phone, tried), by region and name.

    `phone` shows a number (the masked form for viewers)."""
    acked = set(await store.acked(warning_id))
    rows = await store.rows(warning_id, await store.ids(warning_id))
    return unconfirmed_of(people_rows(rows), acked, phone=phone)


def unconfirmed_of(by_person: Mapping[str, Sequence[Row]], acked: set[str], *, phone: Callable[[str], str] = str
                   ) -> list[dict[str, Any]]:
    """As `unconfirmed`, from rows already read (people_rows) and the set of those who confirmed."""
    people = []
    for rid, rows in by_person.items():
        if rid in acked:
            continue
        first = rows[0]
        people.append({"id": rid, "name": first.name, "role": first.role, "region": first.region,
                       "phone": phone(first.delivery.address), "tried": tried(rows),
                       "needs_check": any(r.needs_check for r in rows)})
    return sorted(people, key=lambda p: (p["region"], p["name"]))


def by_place(people: Sequence[Mapping[str, Any]], names: Mapping[str, str]) -> list[dict[str, Any]]:
    """People grouped by township (the first 9 digits of their region), then village (12 digits; "" for people
    registered at the township or above), each with its name from the region tree and its count."""
    townships: dict[str, dict[str, Any]] = {}
    for p in people:
        code = str(p["region"])[:9]
        t = townships.setdefault(code, {"code": code, "name": names.get(code, ""), "count": 0, "villages": {}})
        t["count"] += 1
        vcode = str(p["region"])[:12] if len(str(p["region"])) >= 12 else ""
        v = t["villages"].setdefault(vcode, {"code": vcode, "name": names.get(vcode, ""), "people": []})
        v["people"].append(p)
    return [{**t, "villages": list(t["villages"].values())} for t in townships.values()]
