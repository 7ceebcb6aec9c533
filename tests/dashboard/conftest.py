"""Dashboard fixtures: the `world` app of the warning tests, and signing in through the form."""

from __future__ import annotations

import re
from typing import Any

from aiohttp.test_utils import TestClient

from tests.conftest import TOKENS
from tests.warnings.conftest import World, world
from warning.channel import ReceiptEvent
from warning.delivery import DeliveryState
from warning.delivery_store import Row

__all__ = ["World", "delivered", "figure", "login", "login_csrf", "world"]
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
