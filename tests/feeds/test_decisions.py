"""The feeds' pure decisions, as tables: whose area an alert touches, a gauge site's next step, the backoff, index
and readings parsing, the chart, and `file://` feeds for offline use."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from pathlib import Path

import aiohttp
import pytest

from contacts.model import Thresholds
from warning.cap import parse_cap
from warning.feeds.area import circle_touches, polygon_touches, skip_reason, touches_county
from warning.feeds.chart import charts
from warning.feeds.config import DEFAULT_GAUGE_LEVELS
from warning.feeds.crossing import SiteState, crossings, decide, sentence, top, trend
from warning.feeds.fetch import FetchError, fetch
from warning.feeds.index import FeedDocumentError, parse_index, split_alerts
from warning.feeds.poller import MAX_BACKOFF_S, backoff_s
from warning.feeds.readings import CN_TZ, Reading, parse_readings
from warning.model import Level

EXTENT = (31.0, 105.0, 31.2, 105.2)
T0 = datetime(2026, 12, 1, 14, 0, tzinfo=CN_TZ)
TH = Thresholds(5.0, 6.5, (("1h", 30.0), ("3h", 50.0)), (("1h", 50.0), ("3h", 80.0)))


@pytest.mark.parametrize(("code", "ours"), [
    ("510722", True), ("510722101", True), ("510722101001", True), ("510700", True), ("510000", True),
    ("510726", False), ("510726100", False), ("520000", False), ("abc", False),
])
def test_region_codes_of_the_county(code: str, ours: bool) -> None:
    assert touches_county(code, "510722") is ours


@pytest.mark.parametrize(("lat", "lon", "radius_km", "touches"), [
    (31.1, 105.1, 1, True), (31.3, 105.1, 12, True), (31.3, 105.1, 10, False), (30.0, 100.0, 100, False),
])
def test_circles_against_the_extent(lat: float, lon: float, radius_km: float, touches: bool) -> None:
    assert circle_touches(lat, lon, radius_km, EXTENT) is touches


def test_polygons_against_the_extent() -> None:
    square = ((30.9, 104.9), (30.9, 105.05), (31.05, 105.05), (31.05, 104.9), (30.9, 104.9))
    assert polygon_touches(square, EXTENT)
    assert not polygon_touches(tuple((a - 1, b) for a, b in square), EXTENT)
    bowtie = ((31.1, 105.1), (31.15, 105.15), (31.1, 105.15), (31.15, 105.1), (31.1, 105.1))
    assert polygon_touches(bowtie, EXTENT)  # a self-crossing ring still says where it is


def test_an_alert_is_ours_by_code_or_shape_and_a_known_event() -> None:
    data = (Path(__file__).resolve().parent.parent / "data" / "cap" / "circle_reservoir.xml").read_bytes()
    alert = parse_cap(data)  # 水库险情 within 5 km of 31.0586 N 105.2413 E, no region code
    assert alert.region_codes == () and alert.event_type is not None
    assert skip_reason(alert, county="510722", extent=EXTENT) is None  # 4 km from the box's east edge
    assert skip_reason(alert, county="510722", extent=(31.0, 105.0, 31.2, 105.1)).startswith("不在本辖区")
    assert skip_reason(alert, county="510722", extent=None).startswith("不在本辖区")
    assert skip_reason(alert.with_(event_type=None), county="510722", extent=EXTENT).startswith("未知事件类型")


def _r(minutes: int, level: float | None = None, rain: float | None = None) -> Reading:
    return Reading("s1", T0 + timedelta(minutes=minutes), level, rain)


@pytest.mark.parametrize(("series", "expected"), [
    ([_r(0, 4.9)], []),
    ([_r(0, 5.0)], [("warning_level_m", None, "orange")]),
    ([_r(0, 6.6)], [("guarantee_level_m", None, "red")]),
    ([_r(-60, 6.6), _r(0, 5.2)], [("warning_level_m", None, "orange")]),  # the latest reading decides
    ([_r(-50 + 10 * i, rain=6.0) for i in range(6)], [("rain_prepare_mm", "1h", "orange")]),
    ([_r(-170 + 10 * i, rain=5.0) for i in range(18)], [("rain_evacuate_mm", "3h", "red")]),
    ([_r(-200, rain=100.0), _r(0, rain=1.0)], []),  # rain outside every window
    ([_r(0, 5.5, rain=55.0)], [("warning_level_m", None, "orange"), ("rain_evacuate_mm", "1h", "red")]),
])
def test_crossings(series: list[Reading], expected: list[tuple[str, str | None, str]]) -> None:
    found = crossings(TH, series, DEFAULT_GAUGE_LEVELS)
    assert [(c.threshold, c.window, c.level.value) for c in found] == expected
    if found:
        assert top(found) == max(found, key=lambda c: c.level.rank)


def test_the_sentence_people_read() -> None:
    series = [_r(-60, 5.10), _r(0, 5.32)]
    [c] = crossings(TH, series, DEFAULT_GAUGE_LEVELS)
    assert sentence("潼川水位站", c, series) == "潼川水位站12月1日14时水位5.32米，超警戒水位0.32米（警戒水位5.00米），呈上涨趋势"
    assert trend([_r(-60, 5.5), _r(0, 5.3)]) == "呈回落趋势" and trend([_r(-60, 5.3), _r(0, 5.3)]) == "基本平稳"
    [at] = crossings(TH, [_r(30, 5.0)], DEFAULT_GAUGE_LEVELS)
    assert sentence("站", at, [_r(30, 5.0)]) == "站12月1日14时30分水位5.00米，达到警戒水位（警戒水位5.00米）"


ORANGE, RED = Level.ORANGE.rank, Level.RED.rank
OPEN = SiteState(feed="hydro", warning_id="w1", rank=ORANGE)
_CROSS = {None: None, **{lv: c for lv, c in (("orange", crossings(TH, [_r(0, 5.5)], DEFAULT_GAUGE_LEVELS)[0]),
                                             ("red", crossings(TH, [_r(0, 7.0)], DEFAULT_GAUGE_LEVELS)[0]))}}


@pytest.mark.parametrize(("state", "crossing", "is_open", "now", "action", "after"), [
    (None, None, False, 0, "none", None),
    (None, "orange", False, 0, "draft", None),
    (OPEN, "orange", True, 0, "none", OPEN),
    (OPEN, "red", True, 0, "raise", SiteState("hydro", "w1", RED)),
    (OPEN, None, True, 100, "none", SiteState("hydro", "w1", ORANGE, below_since=100)),
    (SiteState("hydro", "w1", ORANGE, below_since=100), None, True, 3699, "none",
     SiteState("hydro", "w1", ORANGE, below_since=100)),
    (SiteState("hydro", "w1", ORANGE, below_since=100), None, True, 3700, "propose",
     SiteState("hydro", "w1", ORANGE, below_since=100, proposed_at=3700)),
    (SiteState("hydro", "w1", ORANGE, below_since=100, proposed_at=3700), "orange", True, 4000, "withdraw", OPEN),
    (SiteState("hydro", "w1", ORANGE, below_since=100, dismissed=True), None, True, 9000, "none",
     SiteState("hydro", "w1", ORANGE, below_since=100, dismissed=True)),
    (OPEN, "orange", False, 0, "none", SiteState("hydro", "w1", ORANGE, closed=True)),
    (OPEN, "red", False, 0, "draft", None),
    (OPEN, None, False, 0, "clear", None),
    (SiteState("hydro", "w1", ORANGE, below_since=100), "orange", False, 200, "draft", None),
])
def test_a_sites_next_step(state: SiteState | None, crossing: str | None, is_open: bool, now: float, action: str,
                           after: SiteState | None) -> None:
    decision = decide(state, _CROSS[crossing], warning_open=is_open, now=now, clear_after_s=3600)
    assert (decision.action, decision.state) == (action, after)


def test_backoff_grows_with_jitter_between_the_interval_and_the_cap() -> None:
    rnd = random.Random(1)
    waits = [backoff_s(60, n, rnd) for n in range(1, 12)]
    assert all(60 <= w <= MAX_BACKOFF_S for w in waits) and waits[0] <= 120 and min(waits[5:]) >= MAX_BACKOFF_S / 2
    assert backoff_s(3600, 5, rnd) == 3600  # a feed polled hourly never waits less than its interval
    assert len({round(backoff_s(60, 8, random.Random(i))) for i in range(20)}) > 10  # jittered


def test_indexes_rss_embedded_alerts_and_lists() -> None:
    rss = b"""<rss><channel><item><guid>g1</guid><link>/cap/1.xml</link></item>
        <item><link>https://other.example/2.xml</link><enclosure url="https://x.example/2.cap" type="application/cap+xml"/></item>
        <item><guid>g3</guid><link>javascript:alert(1)</link></item></channel></rss>"""
    entries = parse_index(rss, "https://met.example.cn/rss.xml")
    assert [(e.key, e.link) for e in entries] == [("g1", "https://met.example.cn/cap/1.xml"),
                                                  ("https://x.example/2.cap", "https://x.example/2.cap"),
                                                  ("g3", None)]
    embedded = b"""<feed xmlns="http://www.w3.org/2005/Atom"><entry><id>e1</id><content type="text/xml">
        <alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>X</identifier></alert></content></entry></feed>"""
    [e] = parse_index(embedded, "https://x.example/")
    assert e.alert is not None and b":identifier>X</" in e.alert and e.link is None
    assert parse_index(b"<feed xmlns='http://www.w3.org/2005/Atom'><entry><link href='file:///etc/passwd'/></entry>"
                       b"</feed>", "https://x.example/")[0].link is None  # no file: from a web feed
    two = b"<alerts><alert xmlns='urn:oasis:names:tc:emergency:cap:1.2'/><alert/><note/></alerts>"
    assert len(split_alerts(two)) == 2 and split_alerts(b"<alert/>") == [b"<alert/>"]
    with pytest.raises(FeedDocumentError) as err:
        split_alerts(b"<nothing/>")
    assert err.value.reason == "not_cap"


def test_readings_json_and_csv() -> None:
    good, bad = parse_readings(b'[{"station": "s1", "time": "2026-12-01T14:00:00+08:00", "water_level_m": 5.1},'
                               b' {"station": "s1", "time": "2026-12-01 14:10", "rain_mm": "2.5"},'
                               b' {"station": "s1", "time": "x", "water_level_m": 1}, 3,'
                               b' {"station": "s 1", "time": "2026-12-01T14:00:00Z", "rain_mm": 1},'
                               b' {"station": "s1", "time": "2026-12-01T14:00:00Z", "rain_mm": -1},'
                               b' {"station": "s1", "time": "2026-12-01T14:00:00Z", "water_level_m": true}]')
    assert [(r.time, r.water_level_m, r.rain_mm) for r in good] == [(T0, 5.1, None),
                                                                   (T0 + timedelta(minutes=10), None, 2.5)]
    assert [row for row, _ in bad] == ["row 3", "row 4", "row 5", "row 6", "row 7"]
    csv_good, _ = parse_readings("\ufeff测站编码,时间,水位,雨量\ns1,2026-12-01T14:00:00+08:00,5.1,0\n".encode())
    assert csv_good == [Reading("s1", T0, 5.1, 0.0)]
    with pytest.raises(FeedDocumentError):
        parse_readings(b'{"readings": []}')


def test_the_chart_draws_the_series_and_the_thresholds() -> None:
    series = [_r(-60 * i, 4.0 + 0.1 * i, rain=2.0) for i in range(6)][::-1]
    water, one_hour, three_hours = charts(series, TH, start=T0 - timedelta(hours=6), end=T0)
    assert len(water.points.split()) == 6 and [ln.label for ln in water.lines] == ["警戒水位 5米", "保证水位 6.5米"]
    assert all(0 <= float(p.split(",")[1]) <= water.height for p in water.points.split())
    assert water.x_ticks and water.x_ticks[0][1].startswith("12/1") and not water.empty
    assert [ln.label for ln in one_hour.lines] == ["准备转移 30毫米", "立即转移 50毫米"]
    assert "3小时" in three_hours.title
    assert charts([], None, start=T0, end=T0) == []


async def test_file_feeds_for_offline_use(tmp_path: Path) -> None:
    path = tmp_path / "latest.json"
    path.write_text("[]", encoding="utf-8")
    async with aiohttp.ClientSession() as http:
        first = await fetch(http, path.as_uri())
        assert first.status == 200 and first.body == b"[]"
        again = await fetch(http, path.as_uri(), last_modified=first.last_modified)
        assert again.not_modified
        path.write_text("[1]", encoding="utf-8")
        assert (await fetch(http, path.as_uri(), last_modified=first.last_modified)).body == b"[1]"
        with pytest.raises(FetchError) as err:
            await fetch(http, path.as_uri(), max_bytes=2)
        assert err.value.reason == "too_large"
        with pytest.raises(FetchError) as err:
            await fetch(http, (tmp_path / "nope").as_uri())
        assert err.value.reason == "file"
