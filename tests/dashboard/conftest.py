"""Dashboard fixtures: the `world` app of the warning tests, and signing in through the form."""

from __future__ import annotations

import re
from typing import Any

from aiohttp.test_utils import TestClient

from tests.conftest import TOKENS, auth
from tests.warnings.conftest import TONGCHUAN, VILLAGE_A, VILLAGE_B, World, person, world
from warning.channel import ReceiptEvent
from warning.delivery import DeliveryState
from warning.delivery_store import Row

__all__ = ["BLUE", "World", "delivered", "fan_out", "figure", "login", "login_csrf", "world"]
BLUE = {"event": "rainstorm", "level": "blue", "headline": "全县暴雨蓝色预警", "instruction": "注意防范。",
        "areas": ["510722"]}


async def fan_out(world: World, body: dict[str, Any] | None = None) -> dict[str, Any]:
    """Seven people in two townships; a blue warning to the county, sent; three SMS delivered, two people confirmed."""
    people = [person(1, VILLAGE_A), person(2, VILLAGE_A), person(3, VILLAGE_A, "cadre"), person(4, TONGCHUAN),
              person(5, VILLAGE_B), person(6, VILLAGE_B, "cadre"), person(7, VILLAGE_B)]
    ids = await world.seed(people)
    resp = await world.client.post("/api/v1/warnings", json=body or BLUE, headers=auth("issuer"))
    assert resp.status == 201, await resp.text()
    w: dict[str, Any] = await resp.json()
    await world.drain()
    rows = sorted(await world.deliveries(w["id"]), key=lambda r: r.name)
    assert len(rows) == 7 and {r.delivery.state.value for r in rows} == {"accepted"}
    await delivered(world, rows[:3])  # 联系人1..3, all in village A
    record = await world.services.lifecycle.get(w["id"])
    for rid in (ids[0], ids[4]):  # 联系人1 (village A) and 联系人5 (village B) reply
        await world.services.ledger.acknowledge(record, rid, via="sms")
    return w


_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


async def login_csrf(client: TestClient[Any, Any]) -> str:
    """Open the sign-in form (which sets the pre-login cookie) and return its CSRF token."""
    resp = await client.get("/login")
    assert resp.status == 200
    found = _CSRF.search(await resp.text())
    assert found is not None
    return found.group(1)


async def login(client: TestClient[Any, Any], who: str, *, next_path: str = "/dashboard") -> Any:
    """Sign in as a test token through the form; the answer (a 303 on success)."""
    csrf = await login_csrf(client)
    return await client.post("/login", data={"token": TOKENS[who], "csrf": csrf, "next": next_path},
                             allow_redirects=False)


def figure(html: str, key: str) -> int:
    """The number a page shows for a `data-k` path (`sent`, `by_region.510722100.acked`, ...)."""
    found = re.search(rf'data-k="{re.escape(key)}">(\d+)<', html)
    assert found is not None, key
    return int(found.group(1))


async def delivered(world: World, rows: list[Row]) -> None:
    """Delivery receipts for these rows, as a provider would send them."""
    events = [ReceiptEvent(channel=r.delivery.channel, provider_ref=r.delivery.provider_ref, delivery_id=r.delivery.id,
                           state=DeliveryState.DELIVERED, at=None, error_code=None, raw_status="delivered")
              for r in rows]
    outcomes = await world.services.receipts.apply(events)
    assert set(outcomes) == {"applied"}, outcomes
