"""River and rain gauges: a series rising past 警戒 then 保证 then falling, served by a real local HTTP server and
judged on the fake clock; what is drafted (and waits for a person), raised, proposed for cancellation and cancelled."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from typing import Any

from tests.conftest import auth
from tests.dashboard.conftest import login
from tests.feeds.conftest import FeedServer, WorldWithFeeds, poller
from tests.feeds.test_cap_poll import health, warnings_of
from tests.warnings.conftest import TONGCHUAN, VILLAGE_A, VILLAGE_B, World, person
from warning import keys
from warning.clock import FakeClock
from warning.feeds.readings import Reading

STATION = "60112345"
THRESHOLDS = {"warning_level_m": 5.0, "guarantee_level_m": 6.5, "rain_prepare_mm": {"1h": 30, "3h": 50},
              "rain_evacuate_mm": {"1h": 50, "3h": 80}}


def hydro(server: FeedServer, **kw: Any) -> dict[str, Any]:
    return {"name": "hydro", "kind": "observations", "url": server.base + "/latest.json", "interval_s": 300,
            "clear_after_s": 3600, "stale_after_s": 7200, **kw}


async def with_site(world: World, **site: Any) -> dict[str, Any]:
    """A river station site watched by the gauge, its keeper in 潼川镇, people in the villages downstream."""
    ids = await world.seed([person(1, TONGCHUAN, "reservoir_keeper"), person(2, VILLAGE_A), person(3, VILLAGE_B)])
    body = {"name": "潼川水位站", "kind": "river_station", "region": TONGCHUAN, "location": {"lat": 31.1, "lon": 105.1},
            "contacts": [ids[0]], "station": STATION, "thresholds": THRESHOLDS, "downstream": [VILLAGE_A], **site}
    resp = await world.client.post("/api/v1/sites", json=body, headers=auth("admin"))
    assert resp.status == 201, await resp.text()
    return await resp.json()  # type: ignore[no-any-return]


def reading(at: datetime, level: float | None = None, rain: float | None = None, station: str = STATION
            ) -> dict[str, Any]:
    return {"station": station, "time": at.isoformat(), "water_level_m": level, "rain_mm": rain}


async def step(world: World, server: FeedServer, clock: FakeClock, rows: list[dict[str, Any]] | None,
               advance_s: float = 300) -> list[dict[str, Any]]:
    """Time passes; the gauge feed serves `rows` (None: the same document, answered 304); one poll."""
    clock.advance(advance_s)
    if rows is not None:
        server.set("/latest.json", json.dumps(rows), content_type="application/json")
    assert await poller(world, "hydro").poll() is True
    return await warnings_of(world, "hydro")


async def approve(world: World, wid: str, version: int) -> None:
    resp = await world.client.post(f"/api/v1/warnings/{wid}/approve", json={"version": version},
                                   headers=auth("approver"))
    assert resp.status == 200, await resp.text()


async def test_a_river_rising_past_its_stages_then_falling(feeds_world: WorldWithFeeds, feed_server: FeedServer,
                                                           clock: FakeClock) -> None:
    s = feed_server
    world = await feeds_world([hydro(s)])
    site = await with_site(world)
    now = clock.now
    assert await step(world, s, clock, [reading(now(), 4.80)], 0) == []
    # 警戒 crossed: a draft by the feed, waiting for a person (orange needs approval)
    drafts = await step(world, s, clock, [reading(now() + timedelta(seconds=300), 5.32)])
    assert len(drafts) == 1
    w = drafts[0]
    assert (w["state"], w["level"], w["origin"], w["drafter"], w["feed"]) == (
        "pending_approval", "orange", "feed", "feed:hydro", "hydro")
    assert w["areas"] == [VILLAGE_A] and w["sites"] == [site["id"]] and w["headline"] == "潼川水位站洪水橙色预警"
    full = await (await world.client.get(f"/api/v1/warnings/{w['id']}/cap", headers=auth("viewer"))).text()
    assert "潼川水位站7月1日6时5分水位5.32米，超警戒水位0.32米（警戒水位5.00米），呈上涨趋势" in full
    # still above: no second draft
    assert [x["version"] for x in await step(world, s, clock, [reading(now() + timedelta(seconds=300), 5.60)])] == [1]
    await approve(world, w["id"], 1)
    await world.drain()
    sent = {r.delivery.recipient_id for r in await world.deliveries(w["id"])}
    assert len(sent) == 2  # the keeper and the village downstream; not the other village
    # 保证 crossed: the warning is raised to red, and the raise waits for a person
    [w] = await step(world, s, clock, [reading(now() + timedelta(seconds=300), 6.70)])
    assert (w["version"], w["level"], w["state"]) == (2, "red", "pending_approval")
    assert (await health(world, "hydro"))["held"] == 2
    await approve(world, w["id"], 2)
    # falling back below: nothing at once, nor after half an hour, nor with the same document (304)
    await step(world, s, clock, [reading(now() + timedelta(seconds=300), 4.90)])
    await step(world, s, clock, [reading(now() + timedelta(seconds=1800), 4.70)], 1800)
    await step(world, s, clock, None, 1500)
    assert (await (await world.client.get("/api/v1/gauges/proposals", headers=auth("viewer"))).json())["items"] == []
    # below for clear_after_s: a cancellation is proposed, never made by itself
    [w] = await step(world, s, clock, None, 300)
    proposals = (await (await world.client.get("/api/v1/gauges/proposals", headers=auth("viewer"))).json())["items"]
    assert [(p["site"], p["warning"]) for p in proposals] == [(site["id"], w["id"])]
    assert "读数已回落至各项预警指标以下超过1小时" in proposals[0]["note"] and w["state"] != "cancelled"
    audit = [e["action"] for e in (await (await world.client.get(f"/api/v1/warnings/{w['id']}/audit",
                                                                  headers=auth("viewer"))).json())["items"]]
    assert "cancel_proposed" in audit
    for who in ("viewer", "approver"):
        resp = await world.client.post(f"/api/v1/gauges/proposals/{site['id']}/confirm", headers=auth(who))
        assert resp.status == 403
    resp = await world.client.post(f"/api/v1/gauges/proposals/{site['id']}/confirm", headers=auth("issuer"))
    assert resp.status == 200 and (await resp.json())["state"] == "cancelled"
    assert (await (await world.client.get("/api/v1/gauges/proposals", headers=auth("viewer"))).json())["items"] == []
    again = await world.client.post(f"/api/v1/gauges/proposals/{site['id']}/confirm", headers=auth("issuer"))
    assert again.status == 404
    h = await health(world, "hydro")
    assert (h["seen"], h["issued"], h["held"], h["skipped"]) == (6, 0, 2, 0)


async def test_a_proposal_is_withdrawn_when_the_river_rises_and_a_person_may_keep_the_warning(
        feeds_world: WorldWithFeeds, feed_server: FeedServer, clock: FakeClock) -> None:
    s = feed_server
    world = await feeds_world([hydro(s, clear_after_s=600)])
    site = await with_site(world)
    now = clock.now
    [w] = await step(world, s, clock, [reading(now(), 5.5)], 0)
    await step(world, s, clock, [reading(now() + timedelta(seconds=60), 4.5)], 60)
    await step(world, s, clock, None, 600)
    proposals = (await (await world.client.get("/api/v1/gauges/proposals", headers=auth("viewer"))).json())["items"]
    assert len(proposals) == 1
    # the river rises again (not above a higher stage): the proposal is withdrawn, no second draft
    assert len(await step(world, s, clock, [reading(now() + timedelta(seconds=60), 5.1)], 60)) == 1
    assert (await (await world.client.get("/api/v1/gauges/proposals", headers=auth("viewer"))).json())["items"] == []
    await step(world, s, clock, [reading(now() + timedelta(seconds=60), 4.2)], 60)
    await step(world, s, clock, None, 600)
    # on the site's page an issuer keeps the warning (a form with its CSRF token)
    await login(world.client, "issuer")
    home = await (await world.client.get("/dashboard")).text()
    assert f'href="/dashboard/sites/{site["id"]}"' in home and "建议解除的预警" in home  # the panel lists it
    page = await (await world.client.get(f"/dashboard/sites/{site['id']}")).text()
    assert 'id="proposal"' in page and 'value="dismiss"' in page and "待审签" in page
    csrf = re.search(r'name="csrf" value="([^"]+)"', page)
    assert csrf is not None
    bad = await world.client.post(f"/dashboard/sites/{site['id']}/proposal", data={"csrf": "x", "action": "dismiss"},
                                  allow_redirects=False)
    assert bad.status == 403
    done = await world.client.post(f"/dashboard/sites/{site['id']}/proposal",
                                   data={"csrf": csrf.group(1), "action": "dismiss"}, allow_redirects=False)
    assert done.status == 303
    # kept: not proposed again while the readings stay below
    await step(world, s, clock, None, 1200)
    assert (await (await world.client.get("/api/v1/gauges/proposals", headers=auth("viewer"))).json())["items"] == []
    record = await world.services.lifecycle.get(w["id"])
    assert record.state.value == "pending_approval"
    # a person cancels it as any warning: the gauge forgets the site, and a new crossing drafts a new warning
    assert (await world.client.post(f"/api/v1/warnings/{w['id']}/cancel", json={"reason": "已处置"},
                                    headers=auth("issuer"))).status == 200
    drafts = await step(world, s, clock, [reading(now() + timedelta(seconds=60), 5.3)], 60)
    assert len(drafts) == 2 and {d["state"] for d in drafts} == {"cancelled", "pending_approval"}


async def test_rain_over_a_window_drafts_a_flash_flood_warning(feeds_world: WorldWithFeeds, feed_server: FeedServer,
                                                               clock: FakeClock) -> None:
    s = feed_server
    world = await feeds_world([hydro(s)])
    await with_site(world, name="芦溪雨量站", kind="flood_point",
                    thresholds={"rain_prepare_mm": {"1h": 30, "3h": 50}, "rain_evacuate_mm": {"1h": 50, "3h": 80}})
    start = clock.now()
    # ten-minute rainfall: 6 mm a step for two hours (36 mm an hour)
    rows = [reading(start + timedelta(minutes=10 * i), rain=6.0) for i in range(1, 7)]
    [w] = await step(world, s, clock, rows, 3600)
    assert (w["event"], w["level"], w["headline"]) == ("山洪", "orange", "芦溪雨量站山洪橙色预警")
    text = await (await world.client.get(f"/api/v1/warnings/{w['id']}/cap", headers=auth("viewer"))).text()
    assert "芦溪雨量站7月1日7时前1小时降雨量36.0毫米，达到准备转移雨量指标（1小时30毫米）" in text
    # the 3-hour total passes 80 mm: 立即转移, red
    rows = [reading(start + timedelta(minutes=10 * i), rain=6.0) for i in range(7, 15)]
    [w] = await step(world, s, clock, rows, 4800)
    assert (w["level"], w["version"]) == ("red", 2)
    listing = await (await world.client.get(f"/api/v1/sites/{w['sites'][0]}/readings?hours=6",
                                            headers=auth("viewer"))).json()
    assert len(listing["items"]) == 14 and listing["warning"] == w["id"]


async def test_bad_unknown_and_old_readings_draft_nothing(feeds_world: WorldWithFeeds, feed_server: FeedServer,
                                                          clock: FakeClock) -> None:
    s = feed_server
    world = await feeds_world([hydro(s)])
    await with_site(world)
    now = clock.now()
    csv = ("stcd,tm,z,drp\n"
           f"{STATION},{(now - timedelta(hours=3)).strftime('%Y-%m-%d %H:%M')},7.10,\n"  # old: says nothing of now
           f"99999999,{now.isoformat()},9.0,\n"  # a station no site watches
           f"{STATION},yesterday,5.0,\n"
           f"{STATION},{now.isoformat()},,\n")
    assert await step(world, s, clock, [], 0) == []
    s.set("/latest.json", csv, content_type="text/csv")
    assert await poller(world, "hydro").poll() is True
    assert await warnings_of(world, "hydro") == []
    h = await health(world, "hydro")
    assert h["seen"] == 1 and h["skipped"] == 3
    assert set(h["skipped_by_reason"]) == {"invalid reading", "unknown station"}
    # a document that is no readings at all is a failed poll
    s.set("/latest.json", "{not json", content_type="application/json")
    assert await poller(world, "hydro").poll() is False
    assert "station and time" in (await health(world, "hydro"))["last_error"]
    s.set("/latest.json", "[1, 2", content_type="application/json")
    assert await poller(world, "hydro").poll() is False
    assert "not valid JSON" in (await health(world, "hydro"))["last_error"]


async def test_the_site_page_draws_readings_against_thresholds(feeds_world: WorldWithFeeds, feed_server: FeedServer,
                                                               clock: FakeClock) -> None:
    s = feed_server
    world = await feeds_world([hydro(s)])
    site = await with_site(world)
    start = clock.now()
    rows = [reading(start + timedelta(minutes=30 * i), 4.0 + 0.2 * i, rain=3.0) for i in range(12)]
    await step(world, s, clock, rows, 6 * 3600)
    await login(world.client, "viewer")
    resp = await world.client.get(f"/dashboard/sites/{site['id']}")
    assert resp.status == 200
    page = await resp.text()
    svgs = re.findall(r"<svg class=\"chart\".*?</svg>", page, re.DOTALL)
    assert len(svgs) == 3  # water level, and rainfall over 1 h and over 3 h
    water = svgs[0]
    assert "警戒水位 5米" in water and "保证水位 6.5米" in water and water.count('class="threshold"') == 2
    assert len(re.search(r'points="([^"]+)"', water).group(1).split()) == 12  # type: ignore[union-attr]
    assert "时" in water and "http" not in water.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "准备转移 30毫米" in svgs[1] and "立即转移 80毫米" in svgs[2]
    assert 'value="confirm"' not in page  # a viewer gets no buttons
    assert "水文（水位）站" in page and "东街社区" in page  # kinds and places named, not coded
    assert (await world.client.get(f"/dashboard/sites/{site['id']}?hours=abc")).status == 400
    assert (await world.client.get("/dashboard/sites/nosuch")).status == 404


async def test_readings_are_kept_once_and_trimmed_to_the_retention(feeds_world: WorldWithFeeds,
                                                                   feed_server: FeedServer, clock: FakeClock) -> None:
    world = await feeds_world([hydro(feed_server, retention_s=90000)])
    feeds = world.services.feeds
    assert feeds is not None
    store, now = feeds.gauges, clock.now()
    first = Reading(STATION, now, 4.0)
    assert await store.add(first, now=now, retention_s=90000) is True
    assert await store.add(Reading(STATION, now, 4.5), now=now, retention_s=90000) is False  # one per time
    assert await store.add(Reading(STATION, now - timedelta(seconds=90001), 4.0), now=now, retention_s=90000) is False
    later = now + timedelta(seconds=90001)
    assert await store.add(Reading(STATION, later, 4.2), now=later, retention_s=90000) is True
    assert [r.water_level_m for r in await store.series(STATION, since=now - timedelta(days=9))] == [4.2]
    assert 0 < await world.services.redis.ttl(keys.gauge_series_key(STATION)) <= 90000
