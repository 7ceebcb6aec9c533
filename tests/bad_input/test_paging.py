"""Every paging parameter is checked (400 naming it), and every paging loop ends: no request spins the event loop."""

from __future__ import annotations

from typing import Any

import pytest

from tests.bad_input.conftest import World, answered_while_healthy
from tests.conftest import auth
from tests.warnings.conftest import VILLAGE_A, VILLAGE_B, person

# a spinning handler never yields: pytest-timeout's alarm is what ends the test on code that spins
pytestmark = pytest.mark.timeout(60)
BLUE = {"event": "rainstorm", "level": "blue", "headline": "暴雨蓝色预警", "areas": ["510722"]}


async def _warning(world: World, n: int) -> str:
    await world.seed([person(i, VILLAGE_A if i % 2 else VILLAGE_B) for i in range(n)])
    resp = await world.client.post("/api/v1/warnings", json=BLUE, headers=auth("issuer"))
    assert resp.status == 201, await resp.text()
    return str((await resp.json())["id"])


@pytest.mark.parametrize("query", ["cursor=-100000", "cursor=-1", "cursor=1.5", "cursor=nan", "cursor=%201",
                                   "cursor=99999999999999999999", "limit=0", "limit=-5", "limit=1001", "limit=abc"])
@pytest.mark.parametrize("deliveries", [0, 6])
async def test_bad_delivery_paging_is_400_and_nothing_spins(world: World, query: str, deliveries: int) -> None:
    wid = await _warning(world, deliveries)  # one SMS each
    resp = await answered_while_healthy(world.client, "GET", f"/api/v1/warnings/{wid}/deliveries?{query}",
                                        headers=auth("viewer"))
    assert resp.status == 400
    body = await resp.json()
    assert body["error"] and set(body["detail"]) == {query.split("=")[0]}


@pytest.mark.parametrize("query", ["cursor=nan", "cursor=inf", "cursor=-1", "cursor=1e400", "cursor=abc",
                                   "limit=0", "limit=201", "limit=x"])
async def test_bad_warning_list_paging_is_400(world: World, query: str) -> None:
    await _warning(world, 1)
    resp = await answered_while_healthy(world.client, "GET", f"/api/v1/warnings?{query}", headers=auth("viewer"))
    assert resp.status == 400, await resp.text()
    assert set((await resp.json())["detail"]) == {query.split("=")[0]}


@pytest.mark.parametrize("query", ["cursor=a%20b", "cursor=(c1", "cursor=" + "c" * 65, "limit=-1", "limit=1.0"])
async def test_bad_contact_paging_is_400(world: World, query: str) -> None:
    resp = await answered_while_healthy(world.client, "GET", f"/api/v1/contacts?{query}", headers=auth("viewer"))
    assert resp.status == 400, await resp.text()
    assert set((await resp.json())["detail"]) == {query.split("=")[0]}


async def _all_pages(world: World, path: str, limit: int) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    for _ in range(100):
        resp = await world.client.get(f"{path}{'&' if '?' in path else '?'}limit={limit}"
                                      f"{f'&cursor={cursor}' if cursor else ''}", headers=auth("admin"))
        assert resp.status == 200, await resp.text()
        page = await resp.json()
        assert len(page["items"]) <= limit
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items
    raise AssertionError("paging did not end")


@pytest.mark.parametrize("query", ["", "?kind=sms", "?kind=voice", "?region=510722101", "?state=cancelled"])
@pytest.mark.parametrize("limit", [1, 4, 7])
async def test_delivery_pages_hold_at_most_limit_and_visit_each_once(world: World, query: str, limit: int) -> None:
    wid = await _warning(world, 9)
    everything = await _all_pages(world, f"/api/v1/warnings/{wid}/deliveries", 1000)
    assert len(everything) == 9  # one SMS each (a blue warning)
    want = [d for d in everything if (not query.startswith("?kind") or d["kind"] == query.split("=")[1])
            and (not query.startswith("?region") or d["region"].startswith("510722101"))
            and (not query.startswith("?state") or d["state"] == "cancelled")]
    paged = await _all_pages(world, f"/api/v1/warnings/{wid}/deliveries{query}", limit)
    assert [d["delivery"] for d in paged] == [d["delivery"] for d in want]


@pytest.mark.parametrize("version", ["0", "-1", "1.0", "١", "9" * 5000, "x"])
async def test_a_bad_cap_version_is_400(world: World, version: str) -> None:
    wid = await _warning(world, 1)
    resp = await answered_while_healthy(world.client, "GET", f"/api/v1/warnings/{wid}/cap?version={version}",
                                        headers=auth("viewer"))
    assert resp.status == 400, await resp.text()
    assert set((await resp.json())["detail"]) == {"version"}
    assert (await world.client.get(f"/api/v1/warnings/{wid}/cap?version=1", headers=auth("viewer"))).status == 200
