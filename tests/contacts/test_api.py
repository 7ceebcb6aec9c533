"""The registry API: auth, masking, paging, import, export, devices, sites, regions, roles."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import auth, make_settings
from tests.contacts.helpers import EN_HEADER, ZH_HEADER, csv_bytes, xlsx_bytes
from warning.web.app import create_app
from warning.web.keys import Deps

PEOPLE = [["张伟", "13800138000", "党政干部", "510722100", "31.09", "105.09", "", "", ""],
          ["李娜", "13900000001", "村监测员", "510722100001", "", "", "", "", "13800138000"],
          ["王强", "15000001234", "网格员", "510722101201", "", "", "", "", ""]]
CSV = csv_bytes([ZH_HEADER, *PEOPLE])
NEW = {"name": "赵敏", "phone": "158 0000 0001", "role": "hazard_monitor", "region": "510722103",
       "location": {"lat": 31.0, "lon": 105.1}}



@pytest.fixture
async def make_client(aiohttp_client: Any, redis_server: Any, redis: Any, clock: Any, tmp_path: Path) -> Any:
    """The app on the test Redis, without dispatch workers (the registry needs none)."""

    async def build(**overrides: Any) -> Any:
        deps = Deps(clock=clock, redis_url=redis_server.url, extra={"background": False})
        return await aiohttp_client(create_app(make_settings(tmp_path, **overrides), deps=deps))

    return build


@pytest.fixture
async def client(make_client: Any) -> Any:
    return await make_client()


async def imported(client: Any) -> dict[str, Any]:
    resp = await client.post("/api/v1/contacts/import", data=CSV, headers={**auth("admin"),
                                                                           "Content-Type": "text/csv"})
    assert resp.status == 200, await resp.text()
    return await resp.json()  # type: ignore[no-any-return]


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/api/v1/contacts"), ("POST", "/api/v1/contacts"), ("POST", "/api/v1/contacts/import"),
    ("GET", "/api/v1/contacts/export"), ("GET", "/api/v1/devices"), ("GET", "/api/v1/sites"),
    ("GET", "/api/v1/regions"), ("GET", "/api/v1/roles"), ("DELETE", "/api/v1/contacts/cx"),
])
@pytest.mark.parametrize(("who", "status"), [(None, 401), ("bad", 401)])
async def test_no_or_bad_token(client: Any, method: str, path: str, who: str | None, status: int) -> None:
    headers = {"Authorization": "Bearer not-a-real-token-x"} if who == "bad" else {}
    resp = await client.request(method, path, headers=headers)
    assert resp.status == status
    assert (await resp.json())["error"]


@pytest.mark.parametrize(("method", "path", "who"), [
    ("POST", "/api/v1/contacts", "viewer"), ("POST", "/api/v1/contacts/import", "issuer"),
    ("GET", "/api/v1/contacts/export", "approver"), ("GET", "/api/v1/contacts", "feed"),
    ("PATCH", "/api/v1/contacts/cx", "issuer"), ("DELETE", "/api/v1/contacts/cx", "viewer"),
    ("POST", "/api/v1/devices", "issuer"), ("POST", "/api/v1/sites", "viewer"),
])
async def test_wrong_role(client: Any, method: str, path: str, who: str) -> None:
    resp = await client.request(method, path, headers=auth(who), json={})
    assert resp.status == 403


async def test_import_then_list_with_masking(client: Any) -> None:
    report = await imported(client)
    assert (report["accepted"], report["updated"], report["rejected"]) == (3, 0, [])
    admin = await (await client.get("/api/v1/contacts", headers=auth("admin"))).json()
    viewer = await (await client.get("/api/v1/contacts", headers=auth("viewer"))).json()
    issuer = await (await client.get("/api/v1/contacts", headers=auth("issuer"))).json()
    assert sorted(c["phone"] for c in admin["items"]) == ["+8613800138000", "+8613900000001", "+8615000001234"]
    assert sorted(c["phone"] for c in viewer["items"]) == ["138****8000", "139****0001", "150****1234"]
    assert issuer["items"] == admin["items"]
    one = admin["items"][0]
    got = await (await client.get(f"/api/v1/contacts/{one['id']}", headers=auth("viewer"))).json()
    assert got["phone"].count("*") == 4 and got["name"] == one["name"]


async def test_filters(client: Any) -> None:
    await imported(client)

    async def names(query: str) -> list[str]:
        resp = await client.get(f"/api/v1/contacts?{query}", headers=auth("approver"))
        assert resp.status == 200
        return sorted(c["name"] for c in (await resp.json())["items"])

    assert await names("region=510722100") == ["张伟", "李娜"]
    assert await names("region=510722&role=网格员") == ["王强"]
    assert await names("region=510700&role=cadre") == ["张伟"]
    assert await names("channel=voice") == ["张伟", "李娜", "王强"]
    assert await names("active=false") == []
    for bad in ("region=51072", "role=村长", "channel=fax", "limit=0", "limit=1001", "active=maybe"):
        resp = await client.get(f"/api/v1/contacts?{bad}", headers=auth("admin"))
        assert resp.status == 400, bad
        assert (await resp.json())["detail"]


async def test_paging_with_cursor(client: Any) -> None:
    rows = [[f"人{i}", f"1390000{i:04d}", "cadre", "510722100001", "", "", "", "", ""] for i in range(250)]
    await client.post("/api/v1/contacts/import", data=csv_bytes([EN_HEADER, *rows]), headers=auth("admin"))
    seen, cursor, pages = [], None, 0
    while True:
        query = f"limit=100{f'&cursor={cursor}' if cursor else ''}"
        body = await (await client.get(f"/api/v1/contacts?{query}", headers=auth("viewer"))).json()
        seen += [c["id"] for c in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 3 and len(seen) == len(set(seen)) == 250 and seen == sorted(seen)


async def test_create_patch_delete(client: Any) -> None:
    await imported(client)
    resp = await client.post("/api/v1/contacts", json=NEW, headers=auth("admin"))
    assert resp.status == 201
    made = await resp.json()
    assert made["phone"] == "+8615800000001" and made["channels"] == ["sms", "voice"]
    dup = await client.post("/api/v1/contacts", json={**NEW, "name": "别人"}, headers=auth("admin"))
    assert dup.status == 409 and (await dup.json())["detail"] == {"phone": made["id"]}
    bad = await client.post("/api/v1/contacts", json={**NEW, "phone": "123", "region": "x", "role": "村长", "age": 3},
                            headers=auth("admin"))
    assert bad.status == 400 and set((await bad.json())["detail"]) == {"age"}
    bad = await client.post("/api/v1/contacts", json={**NEW, "phone": "123", "region": "x", "role": "村长"},
                            headers=auth("admin"))
    assert set((await bad.json())["detail"]) == {"phone", "region", "role"}
    path = f"/api/v1/contacts/{made['id']}"
    patched = await client.patch(path, json={"region": "510722104", "channels": ["voice"]}, headers=auth("admin"))
    assert patched.status == 200
    assert (await patched.json())["region"] == "510722104"
    assert (await client.patch(path, json={"supervisor": made["id"]}, headers=auth("admin"))).status == 400
    assert (await client.patch(path, json={"phone": "13800138000"}, headers=auth("admin"))).status == 409
    assert (await client.patch(path, data=b"{", headers=auth("admin"))).status == 400
    gone = await client.delete(path, headers=auth("admin"))
    assert (await gone.json())["active"] is False
    listed = await (await client.get("/api/v1/contacts?active=true", headers=auth("admin"))).json()
    assert made["id"] not in [c["id"] for c in listed["items"]]
    purged = await client.delete(f"{path}?purge=true", headers=auth("admin"))
    assert (await purged.json())["purged"] is True
    assert (await client.get(path, headers=auth("admin"))).status == 404


async def test_import_xlsx_and_multipart_and_bad_files(client: Any) -> None:
    data = xlsx_bytes([EN_HEADER, ["甲", 13800000001, "cadre", 510722100, None, None, None, None, None]])
    resp = await client.post("/api/v1/contacts/import", data=data, headers=auth("admin"))
    assert (await resp.json())["accepted"] == 1
    form = aiohttp.FormData()
    form.add_field("file", CSV, filename="联系人.csv", content_type="text/csv")
    resp = await client.post("/api/v1/contacts/import", data=form, headers=auth("admin"))
    assert (await resp.json())["accepted"] == 3
    for body in (b"", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1xxxx", b"name,phone\na,1\n"):
        resp = await client.post("/api/v1/contacts/import", data=body, headers=auth("admin"))
        assert resp.status == 400
        assert (await resp.json())["error"]


async def test_import_body_limit(make_client: Any) -> None:
    client = await make_client(server={"max_body_bytes": 2048})
    big = csv_bytes([EN_HEADER] + [[f"人{i}", f"1390000{i:04d}", "cadre", "510722", "", "", "", "", ""]
                                   for i in range(100)])
    assert len(big) > 2048
    resp = await client.post("/api/v1/contacts/import", data=big, headers=auth("admin"))
    assert resp.status == 413
    form = aiohttp.FormData()
    form.add_field("file", big + big, filename="big.csv", content_type="text/csv")
    resp = await client.post("/api/v1/contacts/import", data=form, headers=auth("admin"))
    assert resp.status == 413
    listed = await (await client.get("/api/v1/contacts", headers=auth("admin"))).json()
    assert listed["items"] == []


@pytest.mark.parametrize(("fmt", "lang"), [("csv", "zh"), ("csv", "en"), ("xlsx", "zh")])
async def test_export_round_trips(client: Any, fmt: str, lang: str) -> None:
    await imported(client)
    resp = await client.get(f"/api/v1/contacts/export?format={fmt}&lang={lang}", headers=auth("admin"))
    assert resp.status == 200
    data = await resp.read()
    if fmt == "csv":
        text = data.decode("utf-8-sig")
        assert text.splitlines()[0] == ("编号,姓名,手机号码,角色,职务,行政区划代码,区划名称,纬度,经度,渠道,语言,上级手机号码,"
                                        "状态,待核实,核实原因" if lang == "zh" else
                                        "id,name,phone,role,position,region,region_name,lat,lon,channels,lang,"
                                        "supervisor_phone,active,needs_check,needs_check_reason")
        assert ("党政干部" in text) == (lang == "zh") and "'+8613800138000" in text
    else:
        from openpyxl import load_workbook

        rows = list(load_workbook(io.BytesIO(data), read_only=True).worksheets[0].iter_rows(values_only=True))
        assert rows[0][:3] == ("编号", "姓名", "手机号码") and len(rows) == 4
    again = await client.post("/api/v1/contacts/import", data=data, headers=auth("admin"))
    report = await again.json()
    assert (report["accepted"], report["updated"], report["unchanged"], report["rejected"]) == (0, 3, 3, [])


async def test_export_bad_format(client: Any) -> None:
    resp = await client.get("/api/v1/contacts/export?format=pdf", headers=auth("admin"))
    assert resp.status == 400


async def test_devices(client: Any) -> None:
    body = {"name": "潼川镇电子屏", "kind": "电子屏", "region": "510722100", "address": "http://screen.example/1"}
    resp = await client.post("/api/v1/devices", json=body, headers=auth("admin"))
    assert resp.status == 201
    made = await resp.json()
    assert made["kind"] == "escreen" and len(made["token"]) >= 16
    viewer = await (await client.get(f"/api/v1/devices/{made['id']}", headers=auth("viewer"))).json()
    assert "token" not in viewer
    listed = await (await client.get("/api/v1/devices?region=510722", headers=auth("viewer"))).json()
    assert [d["id"] for d in listed["items"]] == [made["id"]] and "token" not in listed["items"][0]
    bad = await client.post("/api/v1/devices", json={**body, "address": "ftp://x", "kind": "fax"},
                            headers=auth("admin"))
    assert set((await bad.json())["detail"]) == {"address", "kind"}
    dup = await client.post("/api/v1/devices", json={**body, "token": made["token"]}, headers=auth("admin"))
    assert dup.status == 409
    patched = await client.patch(f"/api/v1/devices/{made['id']}", json={"kind": "broadcast",
                                                                       "address": "mqtt://broker.example/t"},
                                 headers=auth("admin"))
    assert (await patched.json())["kind"] == "broadcast"
    assert (await client.delete(f"/api/v1/devices/{made['id']}", headers=auth("admin"))).status == 200
    assert (await client.get(f"/api/v1/devices/{made['id']}", headers=auth("admin"))).status == 404


async def test_sites(client: Any) -> None:
    await imported(client)
    admin = await (await client.get("/api/v1/contacts?role=cadre", headers=auth("admin"))).json()
    keeper = admin["items"][0]["id"]
    body = {"name": "鲁班水库", "kind": "水库", "region": "510722107", "location": {"lat": 31.2, "lon": 105.0},
            "contacts": [keeper]}
    resp = await client.post("/api/v1/sites", json=body, headers=auth("admin"))
    assert resp.status == 201
    site = await resp.json()
    assert site["kind"] == "reservoir" and site["contacts"] == [keeper]
    bad = await client.post("/api/v1/sites", json={**body, "contacts": ["cnobody"], "location": None},
                            headers=auth("admin"))
    assert set((await bad.json())["detail"]) == {"location"}
    bad = await client.post("/api/v1/sites", json={**body, "contacts": ["cnobody"]}, headers=auth("admin"))
    assert "cnobody" in (await bad.json())["detail"]["contacts"]
    listed = await (await client.get("/api/v1/sites?region=510722107", headers=auth("viewer"))).json()
    assert [s["id"] for s in listed["items"]] == [site["id"]]
    patched = await client.patch(f"/api/v1/sites/{site['id']}", json={"contacts": []}, headers=auth("admin"))
    assert (await patched.json())["contacts"] == []
    assert (await client.delete(f"/api/v1/sites/{site['id']}", headers=auth("admin"))).status == 200


async def test_regions_and_roles(client: Any) -> None:
    top = await (await client.get("/api/v1/regions", headers=auth("viewer"))).json()
    assert [(r["code"], r["name"]) for r in top["items"]] == [("510000", "四川省")]
    for city in ("510700", "5107"):  # a city by its GB/T 2260 code or the prefix it stands for
        counties = await (await client.get(f"/api/v1/regions?parent={city}", headers=auth("viewer"))).json()
        assert [(r["code"], r["name"], r["parent"]) for r in counties["items"]] == [("510722", "三台县", "510700")]
    towns = await (await client.get("/api/v1/regions?parent=510722", headers=auth("viewer"))).json()
    assert "潼川镇" in [r["name"] for r in towns["items"]] and all(r["children"] >= 3 for r in towns["items"])
    assert (await client.get("/api/v1/regions?parent=999999", headers=auth("viewer"))).status == 404
    roles = await (await client.get("/api/v1/roles", headers=auth("viewer"))).json()
    assert {"key": "village_monitor", "label_zh": "村社区中心户"}.items() <= next(
        r for r in roles["items"] if r["key"] == "village_monitor").items()


async def test_demo_registry_is_seeded(make_client: Any, redis: Any) -> None:
    client = await make_client(demo={"enabled": True, "contacts": 120})
    listed = await (await client.get("/api/v1/contacts?limit=1000", headers=auth("admin"))).json()
    assert len(listed["items"]) == 120
    assert all(len(c["region"]) in (9, 12) and c["region"].startswith("510722") for c in listed["items"])
    devices = await (await client.get("/api/v1/devices", headers=auth("admin"))).json()
    sites = await (await client.get("/api/v1/sites", headers=auth("admin"))).json()
    assert len(devices["items"]) >= 16 and len(sites["items"]) == 2
