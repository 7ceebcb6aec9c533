"""Polled CAP feeds against a real local HTTP server serving rotating documents: new and repeated entries, 304s,
500s, timeouts, oversized, malformed and hostile documents, an Update and a Cancel, alerts outside our area, and the
health figures each leaves."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import auth
from tests.feeds.conftest import FeedServer, WorldWithFeeds, alert, atom, poller, ref_of
from tests.warnings.conftest import LUXI, VILLAGE_A, VILLAGE_B, World, person
from warning.clock import FakeClock

HOSTILE = (Path(__file__).resolve().parent.parent / "data" / "cap" / "hostile_billion_laughs.xml").read_bytes()
OUTSIDE_CODE = "510726"  # 北川 (another county of 绵阳)


async def health(world: World, name: str) -> dict[str, Any]:
    resp = await world.client.get("/api/v1/feeds", headers=auth("viewer"))
    assert resp.status == 200
    items: list[dict[str, Any]] = (await resp.json())["items"]
    return next(i for i in items if i["name"] == name)


async def warnings_of(world: World, feed: str) -> list[dict[str, Any]]:
    resp = await world.client.get("/api/v1/warnings", headers=auth("viewer"))
    return [w for w in (await resp.json())["items"] if w["feed"] == feed]


def met(server: FeedServer, **kw: Any) -> dict[str, Any]:
    return {"name": "met", "kind": "atom", "url": server.base + "/met.atom", "interval_s": 60,
            "auto_issue": ["blue", "yellow"], "stale_after_s": 3600, "timeout_s": 0.5, **kw}


async def test_new_entries_are_taken_once_ours_only_with_reasons(feeds_world: WorldWithFeeds,
                                                                 feed_server: FeedServer) -> None:
    world = await feeds_world([met(feed_server)])
    await world.seed([person(1, VILLAGE_A), person(2, VILLAGE_B)])  # someone in 芦溪镇 for A3
    s = feed_server
    s.set("/a1.xml", alert(world, "A1", severity="Yellow"))
    s.set("/a2.xml", alert(world, "A2", severity="Red"))
    s.set("/far.xml", alert(world, "F1", area=OUTSIDE_CODE))
    s.set("/odd.xml", alert(world, "X1", event="外星人入侵"))
    s.set("/met.atom", atom([("A1", "/a1.xml"), ("A2", "/a2.xml"), ("F1", "/far.xml"), ("X1", "/odd.xml")]))
    p = poller(world, "met")
    assert await p.poll() is True
    mine = {w["identifier"]: w for w in await warnings_of(world, "met")}
    # yellow is relayed at once (auto_issue), red waits for a person; both carry the feed's name
    assert mine["A1"]["state"] == "dispatching" and mine["A2"]["state"] == "pending_approval"
    assert {w["feed"] for w in mine.values()} == {"met"} and set(mine) == {"A1", "A2"}
    h = await health(world, "met")
    assert (h["seen"], h["issued"], h["held"], h["skipped"]) == (4, 1, 1, 2)
    assert set(h["skipped_by_reason"]) == {"不在本辖区 outside our area", "未知事件类型 unknown event type"}
    assert {r["reason"] for r in h["recent_skips"]} >= {"未知事件类型 unknown event type: 外星人入侵"}
    assert {r["entry"] for r in h["recent_skips"]} == {"F1", "X1"}
    assert h["last_success"] is not None and h["last_error"] is None and h["lag_s"] == 0.0
    metrics = await (await world.client.get("/metrics")).text()
    for line in ('ew_feed_polls_total{feed="met",outcome="ok"} 1.0', 'ew_feed_lag_seconds{feed="met"} 0.0',
                 'ew_feed_entries_total{feed="met",outcome="seen"} 4.0',
                 'ew_feed_entries_total{feed="met",outcome="issued"} 1.0',
                 'ew_feed_entries_total{feed="met",outcome="held"} 1.0',
                 'ew_feed_entries_total{feed="met",outcome="skipped"} 2.0'):
        assert line in metrics, line

    # the same index again: answered 304 (ETag), nothing fetched again, nothing new
    assert await p.poll() is True
    assert s.hits[-1][1].get("If-None-Match") and s.count("/a1.xml") == 1
    # the index changes (an entry added) but old entries are not fetched again
    s.set("/a3.xml", alert(world, "A3", severity="Blue", area=LUXI))
    s.set("/met.atom", atom([("A3", "/a3.xml"), ("A1", "/a1.xml"), ("A2", "/a2.xml"), ("F1", "/far.xml")]))
    assert await p.poll() is True
    assert (s.count("/a1.xml"), s.count("/a2.xml"), s.count("/far.xml"), s.count("/a3.xml")) == (1, 1, 1, 1)
    h = await health(world, "met")
    assert (h["seen"], h["issued"], h["held"], h["skipped"]) == (5, 2, 1, 2)


async def test_an_update_and_a_cancel_follow_their_alerts(feeds_world: WorldWithFeeds, feed_server: FeedServer,
                                                          clock: FakeClock) -> None:
    world = await feeds_world([met(feed_server, auto_issue=["blue", "yellow", "orange"])])
    await world.seed([person(1, VILLAGE_A)])
    s, p = feed_server, poller(world, "met")
    sent = clock.now()
    s.set("/a1.xml", alert(world, "A1", severity="Yellow"))
    s.set("/b1.xml", alert(world, "B1", severity="Blue"))
    s.set("/met.atom", atom([("A1", "/a1.xml"), ("B1", "/b1.xml")]))
    await p.poll()
    clock.advance(600)
    # the update of A1 names no area of ours: it still follows A1 (ours); the cancel of B1 lifts it
    s.set("/u1.xml", alert(world, "U1", msg="Update", severity="Orange", refs=ref_of(world, "A1", sent),
                           area=OUTSIDE_CODE))
    s.set("/c1.xml", alert(world, "C1", msg="Cancel", refs=ref_of(world, "B1", sent)))
    s.set("/met.atom", atom([("U1", "/u1.xml"), ("C1", "/c1.xml"), ("A1", "/a1.xml"), ("B1", "/b1.xml")]))
    await p.poll()
    mine = {w["identifiers"][0]: w for w in await warnings_of(world, "met")}
    assert (mine["A1"]["version"], mine["A1"]["level"], mine["A1"]["state"]) == (2, "orange", "dispatching")
    assert mine["B1"]["state"] == "cancelled"
    h = await health(world, "met")
    assert (h["seen"], h["issued"], h["held"], h["skipped"]) == (4, 4, 0, 0)
    # a cancel of an alert we never had is skipped with its reason
    s.set("/c9.xml", alert(world, "C9", msg="Cancel", refs=ref_of(world, "NEVER", sent)))
    s.set("/met.atom", atom([("C9", "/c9.xml")]))
    await p.poll()
    assert "ignored" in (await health(world, "met"))["skipped_by_reason"]


async def test_failures_are_recorded_and_backed_off(feeds_world: WorldWithFeeds, feed_server: FeedServer) -> None:
    world = await feeds_world([met(feed_server, max_bytes=4096)])
    s, p = feed_server, poller(world, "met")
    cases = [("http_500", {"status": 500}, "HTTP 500"), ("timeout", {"hang": True}, "超时"),
             ("malformed", {"body": b"<feed><entry>"}, "not well-formed"),
             ("unsafe_xml", {"body": HOSTILE}, "refused unsafe XML"),
             ("too_large", {"body": b"<feed>" + b" " * 5000 + b"</feed>"}, "文档过大"),
             ("not_an_index", {"body": b"<html/>"}, "not an Atom or RSS index")]
    for n, (reason, reply, text) in enumerate(cases, 1):
        s.set("/met.atom", **reply)
        assert await p.poll() is False, reason
        h = await health(world, "met")
        assert text in h["last_error"] and h["failures"] == n and h["last_success"] is None
    # each failure in a row waits longer (jittered, never below the interval, never above the cap)
    waits = [await p.cycle() for _ in range(3)]
    assert all(60 <= w <= 900 for w in waits) and p.failures == len(cases) + 3
    metrics = await (await world.client.get("/metrics")).text()
    for reason, _, _ in cases:  # the last one failed three more times in the cycles
        n = 4 if reason == "not_an_index" else 1
        assert f'ew_feed_polls_total{{feed="met",outcome="{reason}"}} {n}.0' in metrics
    # it answers again: the failures are over, the wait is the interval
    s.set("/met.atom", atom([]))
    assert await p.poll() is True and await p.cycle() == 60.0
    assert (await health(world, "met"))["failures"] == 0


async def test_bad_entries_are_skipped_and_a_busy_one_fetched_again(feeds_world: WorldWithFeeds,
                                                                    feed_server: FeedServer) -> None:
    world = await feeds_world([met(feed_server, max_bytes=4096)])
    await world.seed([person(1, VILLAGE_A)])  # the alert that gets through reaches someone
    s, p = feed_server, poller(world, "met")
    s.set("/hostile.xml", HOSTILE)
    s.set("/broken.xml", b"<alert xmlns='urn:oasis:names:tc:emergency:cap:1.2'><identifier>")
    s.set("/huge.xml", b"<alert>" + b" " * 5000 + b"</alert>")
    s.set("/busy.xml", status=503)
    s.set("/met.atom", atom([("H", "/hostile.xml"), ("B", "/broken.xml"), ("L", "/huge.xml"), ("S", "/busy.xml"),
                             ("E", "ftp://elsewhere.example/x.xml")]))
    assert await p.poll() is True  # the index was fine
    h = await health(world, "met")
    assert set(h["skipped_by_reason"]) == {"unsafe XML", "malformed", "too large", "link not allowed"}
    assert h["skipped"] == 4 and h["seen"] == 4 and "HTTP 503" in h["last_error"]
    # the busy entry was not marked seen: fetched again at the next poll, taken once it answers
    s.set("/busy.xml", alert(world, "S1"))
    s.set("/met.atom", atom([("H", "/hostile.xml"), ("S", "/busy.xml")]))
    assert await p.poll() is True
    assert s.count("/busy.xml") == 2 and s.count("/hostile.xml") == 1
    assert (await health(world, "met"))["issued"] == 1


async def test_dedup_across_feeds_and_push_and_the_area_by_shape(feeds_world: WorldWithFeeds,
                                                                 feed_server: FeedServer) -> None:
    s = feed_server
    world = await feeds_world([met(s), {"name": "prov", "kind": "cap", "url": s.base + "/prov.xml", "interval_s": 30}])
    # the registry's extent: people around 31.09 N 105.09 E
    await world.seed([person(1, VILLAGE_A, loc=(31.05, 105.05)), person(2, LUXI, loc=(31.15, 105.15))])
    same = alert(world, "D1", severity="Blue")
    near = alert(world, "P1", severity="Blue", area=None, circle="31.2,105.3 25")
    far = alert(world, "P2", severity="Blue", area=None,
                polygon="30.0,100.0 30.0,100.5 30.5,100.5 30.5,100.0 30.0,100.0")
    inside = alert(world, "P3", severity="Blue", area=None,
                   polygon="31.0,105.0 31.0,105.2 31.2,105.2 31.2,105.0 31.0,105.0")
    s.set("/d1.xml", same)
    s.set("/met.atom", atom([("D1", "/d1.xml")]))
    s.set("/prov.xml", b"<alerts>" + b"".join(d.split(b"?>", 1)[1] for d in (same, near, far, inside)) + b"</alerts>")
    await poller(world, "met").poll()
    await poller(world, "prov").poll()
    prov = await health(world, "prov")
    # D1 came by both feeds: taken once; P1 (a circle reaching the registry) and P3 (a polygon over it) are ours
    assert (prov["seen"], prov["issued"], prov["skipped"]) == (4, 2, 2)
    assert sorted(prov["skipped_by_reason"]) == ["duplicate", "不在本辖区 outside our area"]
    assert {w["identifier"] for w in await warnings_of(world, "prov")} == {"P1", "P3"}
    # the same document pushed by a feed token later is a duplicate too
    resp = await world.client.post("/api/v1/cap", data=same, headers={**auth("feed"), "Content-Type": "application/xml"})
    assert (await resp.json())["duplicate"] is True


async def test_exercise_and_test_statuses_go_as_pushed_ones_do(feeds_world: WorldWithFeeds,
                                                               feed_server: FeedServer) -> None:
    world = await feeds_world([met(feed_server)])
    await world.seed([person(1, VILLAGE_A)])
    s = feed_server
    s.set("/e.xml", alert(world, "E1", status="Exercise"))
    s.set("/t.xml", alert(world, "T1", status="Test"))
    s.set("/met.atom", atom([("E1", "/e.xml"), ("T1", "/t.xml")]))
    await poller(world, "met").poll()
    mine = {w["identifier"]: w for w in await warnings_of(world, "met")}
    assert mine["E1"]["exercise"] is True and mine["E1"]["state"] == "dispatching"
    assert mine["T1"]["status"] == "Test" and mine["T1"]["state"] == "active"  # recorded, never sent
    await world.drain()
    assert world.channels["sms"].sent and all("演练" in o.body for o in world.channels["sms"].sent)


async def test_secrets_are_never_shown_and_rss_works(feeds_world: WorldWithFeeds, feed_server: FeedServer,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    s = feed_server
    secret = "Bearer sk-feed-secret-123456"
    world = await feeds_world([{"name": "rss", "kind": "atom", "url": s.base + "/rss.xml?token=abcdef123456",
                                "headers": {"Authorization": secret}}])
    await world.seed([person(1, VILLAGE_A)])
    s.set("/a.xml", alert(world, "R1", severity="Blue"))
    s.set("/b.xml", alert(world, "R2", severity="Blue"))
    elsewhere = s.base.replace("127.0.0.1", "localhost")  # the same server under another host name
    s.set("/rss.xml", f"""<rss version="2.0"><channel><title>t</title>
        <item><guid>R1</guid><link>{s.base}/a.xml</link></item>
        <item><guid>R2</guid><link>{elsewhere}/b.xml</link></item></channel></rss>""")
    caplog.set_level(logging.DEBUG)
    assert await poller(world, "rss").poll() is True
    sent = {path: headers.get("Authorization") for path, headers in s.hits}
    # the feed's header goes to the feed's host, never to another host an entry links to
    assert sent == {"/rss.xml": secret, "/a.xml": secret, "/b.xml": None}
    h = await health(world, "rss")
    assert h["issued"] == 2 and h["headers"] == ["Authorization"] and "abcdef123456" not in h["url"]
    s.set("/rss.xml", status=500)
    await poller(world, "rss").poll()
    page = await (await world.client.get("/api/v1/feeds", headers=auth("admin"))).text()
    assert "sk-feed-secret" not in page and "abcdef123456" not in page
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("warning"))
    assert "feed rss" in ours and "sk-feed-secret" not in ours and "abcdef123456" not in ours


async def test_a_process_that_does_not_hold_the_feed_does_not_poll_it(feeds_world: WorldWithFeeds,
                                                                      feed_server: FeedServer) -> None:
    world = await feeds_world([met(feed_server)])
    feed_server.set("/met.atom", atom([]))
    first, second = poller(world, "met", owner="one"), poller(world, "met", owner="two")
    await first.cycle()
    await second.cycle()
    assert feed_server.count("/met.atom") == 1
