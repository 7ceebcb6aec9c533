"""Hazard sites watched by a gauge: the station code, thresholds and villages downstream, checked in the sites API
and in the sites sheet; the station index finds them."""

from __future__ import annotations

from typing import Any

import pytest

from contacts.fields import FieldErrors, parse_site
from contacts.model import Thresholds
from contacts.store import RedisRegistry
from tests.conftest import auth
from tests.contacts.helpers import csv_bytes, reference
from tests.contacts.test_api import client, imported, make_client
from tests.warnings.conftest import VILLAGE_A, VILLAGE_B

__all__ = ["client", "make_client"]
THRESHOLDS = {"warning_level_m": 5.0, "guarantee_level_m": 6.5, "rain_prepare_mm": {"1h": 30, "3h": 50},
              "rain_evacuate_mm": {"1h": 50, "3h": 80}}
SITE = {"name": "潼川水位站", "kind": "river_station", "region": "510722101", "location": {"lat": 31.1, "lon": 105.1},
        "station": "60112345", "thresholds": THRESHOLDS, "downstream": [VILLAGE_A, VILLAGE_B]}


@pytest.mark.parametrize(("change", "field", "words"), [
    ({"thresholds": {**THRESHOLDS, "guarantee_level_m": 4.0}}, "thresholds", "below warning_level_m"),
    ({"thresholds": {**THRESHOLDS, "rain_evacuate_mm": {"1h": 20}}}, "thresholds", "below rain_prepare_mm.1h"),
    ({"thresholds": {**THRESHOLDS, "warning_level_m": -1}}, "thresholds", "positive"),
    ({"thresholds": {**THRESHOLDS, "warning_level_m": True}}, "thresholds", "positive"),
    ({"thresholds": {**THRESHOLDS, "rain_prepare_mm": {"2d": 30}}}, "thresholds", "window"),
    ({"thresholds": {**THRESHOLDS, "rain_prepare_mm": {"48h": 30}}}, "thresholds", "window"),
    ({"thresholds": {**THRESHOLDS, "rain_prepare_mm": {"1h": "lots"}}}, "thresholds", "positive"),
    ({"thresholds": {**THRESHOLDS, "flood_m": 3}}, "thresholds", "unknown threshold"),
    ({"thresholds": [5.0]}, "thresholds", "object"),
    ({"station": ""}, "thresholds", "station code"),
    ({"station": "60 11"}, "station", "invalid station code"),
    ({"downstream": ["510722199999"]}, "downstream", "not in the region tree"),
    ({"downstream": ["5107"]}, "downstream", "invalid region code"),
    ({"downstream": [510722101001]}, "downstream", "list of region codes"),
])
def test_bad_gauge_fields_are_refused_with_the_field(change: dict[str, Any], field: str, words: str) -> None:
    with pytest.raises(FieldErrors) as err:
        parse_site({**SITE, **change}, reference())
    assert field in err.value.errors and words in err.value.errors[field]


def test_gauge_fields_are_parsed() -> None:
    site = parse_site({**SITE, "downstream": "510722101001、510722137202, 510722101001"}, reference())
    assert site.station == "60112345" and site.downstream == (VILLAGE_A, VILLAGE_B)
    assert site.thresholds == Thresholds(5.0, 6.5, (("1h", 30.0), ("3h", 50.0)), (("1h", 50.0), ("3h", 80.0)))
    plain = parse_site({**SITE, "station": "", "thresholds": None, "downstream": []}, reference())
    assert (plain.station, plain.thresholds, plain.downstream) == ("", None, ())


async def test_sites_api_keeps_gauge_fields_and_finds_sites_by_station(client: Any, redis: Any) -> None:
    resp = await client.post("/api/v1/sites", json=SITE, headers=auth("admin"))
    assert resp.status == 201, await resp.text()
    site = await resp.json()
    assert site["station"] == "60112345" and site["thresholds"] == {
        "warning_level_m": 5.0, "guarantee_level_m": 6.5, "rain_prepare_mm": {"1h": 30.0, "3h": 50.0},
        "rain_evacuate_mm": {"1h": 50.0, "3h": 80.0}} and site["downstream"] == [VILLAGE_A, VILLAGE_B]
    bad = await client.post("/api/v1/sites", json={**SITE, "thresholds": {"guarantee_level_m": 1, "warning_level_m": 2}},
                            headers=auth("admin"))
    assert bad.status == 400 and "thresholds" in (await bad.json())["detail"]
    registry = RedisRegistry(redis)
    assert [s.id for s in await registry.sites_of_station("60112345")] == [site["id"]]
    # a PATCH of another field keeps them; moving the station moves the index
    patched = await client.patch(f"/api/v1/sites/{site['id']}", json={"name": "潼川站"}, headers=auth("admin"))
    assert (await patched.json())["thresholds"] == site["thresholds"]
    await client.patch(f"/api/v1/sites/{site['id']}", json={"station": "60119999"}, headers=auth("admin"))
    assert await registry.sites_of_station("60112345") == []
    assert [s.id for s in await registry.sites_of_station("60119999")] == [site["id"]]
    assert (await client.get("/api/v1/sites", headers=auth("viewer"))).status == 200


async def test_the_sites_sheet_imports_gauges_and_reports_bad_rows(client: Any, redis: Any) -> None:
    await imported(client)  # 张伟 13800138000 among others
    header = ["名称", "类型", "行政区划代码", "纬度", "经度", "责任人", "测站编码", "警戒水位", "保证水位", "准备转移雨量1h",
              "立即转移雨量1h", "准备转移雨量3小时", "下游村"]
    rows = [header,
            ["潼川水位站", "水位站", "510722101", "31.1", "105.1", "13800138000", "60112345", "5.0", "6.5", "30", "50", "50",
             f"{VILLAGE_A}、{VILLAGE_B}"],
            ["坏水位站", "水位站", "510722101", "31.1", "105.1", "", "60112346", "5.0", "4.0", "", "", "", ""],
            ["无人站", "水位站", "510722101", "31.1", "105.1", "13900009999", "60112347", "", "", "", "", "", ""],
            ["雨量站", "其他", "510722101", "31.1", "105.1", "", "", "", "", "30", "", "", ""],
            ["重复站", "水位站", "510722101", "31.1", "105.1", "", "60112345", "5.0", "", "", "", "", ""]]
    resp = await client.post("/api/v1/sites/import", data=csv_bytes(rows),
                             headers={**auth("admin"), "Content-Type": "text/csv"})
    assert resp.status == 200, await resp.text()
    report = await resp.json()
    assert (report["accepted"], report["updated"]) == (1, 0)
    assert [r["row"] for r in report["rejected"]] == [3, 4, 5, 6]
    reasons = {r["row"]: r["error"] for r in report["rejected"]}
    assert "guarantee_level_m" in reasons[3] and "phone not in the registry" in reasons[4]
    assert "station code" in reasons[5] and "row 2" in reasons[6]
    site = (await RedisRegistry(redis).sites_of_station("60112345"))[0]
    assert site.thresholds == Thresholds(5.0, 6.5, (("1h", 30.0), ("3h", 50.0)), (("1h", 50.0),))
    assert site.downstream == (VILLAGE_A, VILLAGE_B) and len(site.contacts) == 1
    # the same sheet again updates the site watching the station, adds nothing
    again = await (await client.post("/api/v1/sites/import", data=csv_bytes(rows[:2]),
                                     headers={**auth("admin"), "Content-Type": "text/csv"})).json()
    assert (again["accepted"], again["updated"]) == (0, 1)
    bad = await client.post("/api/v1/sites/import", data=csv_bytes([["名称", "颜色"], ["x", "y"]]),
                            headers={**auth("admin"), "Content-Type": "text/csv"})
    assert bad.status == 400 and "颜色" in (await bad.json())["detail"]
    assert (await client.post("/api/v1/sites/import", data=b"x", headers=auth("viewer"))).status == 403
