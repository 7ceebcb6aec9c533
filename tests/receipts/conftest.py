"""Fixtures for receipts, replies and escalation: the dispatch rig (Twilio-protocol stand-in) and signed callbacks."""

from __future__ import annotations

from typing import Any

from tests.conftest import auth
from tests.dispatch.conftest import Rig, make_rig
from tests.fakes.twilio import AUTH_TOKEN, sign
from tests.warnings.conftest import TONGCHUAN
from warning.delivery_store import Row

__all__ = ["BASE", "BLUE", "Rig", "coverage", "issue", "make_rig", "post_signed", "rows", "settled_sends"]
BASE = "http://testserver.example"
BLUE = {"event": "rainstorm", "level": "blue", "headline": "潼川镇暴雨蓝色预警", "instruction": "注意防范。",
        "areas": [TONGCHUAN]}


async def settled_sends(rig: Rig, warning_id: str) -> bool:
    """Nothing of the warning left to send (escalation timers may still be set)."""
    counts = await rig.services.deliveries.counts(warning_id)
    retries = [m for m in await rig.services.redis.zrange("ew:due", 0, -1) if m.startswith("retry|")]
    return counts.get("queued", 0) == 0 and counts.get("n:queued", 0) == 0 and not retries


async def issue(rig: Rig, body: dict[str, Any], *, approve: bool = False) -> dict[str, Any]:
    resp = await rig.client.post("/api/v1/warnings", json=body, headers=auth("issuer"))
    assert resp.status == 201, await resp.text()
    w: dict[str, Any] = await resp.json()
    if approve:
        resp = await rig.client.post(f"/api/v1/warnings/{w['id']}/approve", json={}, headers=auth("approver"))
        assert resp.status == 200, await resp.text()
    return w


async def post_signed(rig: Rig, url: str, params: dict[str, str], *, token: str = AUTH_TOKEN,
                      signature: str | None = None) -> Any:
    """POST a callback to `url` (absolute, as Twilio knows it) with Twilio's signature."""
    assert url.startswith(BASE)
    headers = {"X-Twilio-Signature": signature if signature is not None else sign(url, params, token)}
    return await rig.client.post(url[len(BASE):], data=params, headers=headers)


async def rows(rig: Rig, wid: str) -> list[Row]:
    store = rig.services.deliveries
    return await store.rows(wid, await store.ids(wid))


async def coverage(rig: Rig, wid: str) -> dict[str, Any]:
    resp = await rig.client.get(f"/api/v1/warnings/{wid}/coverage", headers=auth("viewer"))
    assert resp.status == 200
    return await resp.json()  # type: ignore[no-any-return]
