"""设备 and 隐患点 pages over HTTP: list, add, edit; roles, CSRF and bad input change nothing; credentials stay
with admins; a site links to its own readings page when the service has one."""

from __future__ import annotations

from dataclasses import replace

from aiohttp import web

from contacts.model import Device, Location
from tests.conftest import AppFactory
from tests.dashboard.conftest import World
from tests.dashboard.desk import post, rows_of, sign_in
from tests.warnings.conftest import LUXI, TONGCHUAN, VILLAGE_A, person
from warning.web.keys import registry_key
from warning.web.routing import ApiRoutes

DEVICE = {"name": "潼川镇电子屏", "kind": "escreen", "region": TONGCHUAN,
          "address": "https://user:s3cret@screens.example.cn/tc?token=abc", "lat": "31.1", "lon": "105.1", "token": "",
          "active": "on"}
SITE = {"name": "牛头山滑坡", "kind": "landslide", "region": TONGCHUAN, "lat": "31.2", "lon": "105.0", "keepers": ""}


async def test_an_admin_adds_and_edits_a_device(world: World) -> None:
    csrf = await sign_in(world.client, "admin")
    resp = await post(world.client, "/dashboard/devices/new", DEVICE, csrf)
    assert resp.status == 303, await resp.text()
    did = resp.headers["Location"].split("/")[3]
    registry = world.client.app[registry_key]
    added = await registry.device(did)
    assert added is not None and (added.kind, added.region, added.location) == ("escreen", TONGCHUAN,
                                                                                 Location(31.1, 105.1))
    assert len(added.token) >= 16  # made when none is given
    form = await (await world.client.get(f"/dashboard/devices/{did}/edit")).text()
    assert f'value="{added.token}"' in form and "s3cret" in form
    resp = await post(world.client, f"/dashboard/devices/{did}/edit",
                      {**DEVICE, "name": "潼川镇广播", "kind": "广播", "token": added.token, "active": ""}, csrf)
    assert resp.status == 303
    after = await registry.device(did)
    assert after is not None and (after.name, after.kind, after.active, after.token) == (
        "潼川镇广播", "broadcast", False, added.token)
    rows = rows_of(await (await world.client.get("/dashboard/devices")).text(), "devices")
    assert rows[0][:2] == ["潼川镇广播", "应急广播"] and "已停用" in rows[0][4]


async def test_device_credentials_and_actions_are_for_admins_only(world: World) -> None:
    device = Device(id="", name="芦溪镇电子屏", kind="escreen", region=LUXI,
                    address="https://user:s3cret@screens.example.cn/lx", token="device-token-0000000001")
    stored = await world.client.app[registry_key].put_device(device, world.services.clock.now(), create=True)
    assert stored is not None
    for who in ("viewer", "issuer", "approver"):
        csrf = await sign_in(world.client, who)
        html = await (await world.client.get("/dashboard/devices")).text()
        assert "芦溪镇电子屏" in html and "s3cret" not in html and "device-token" not in html
        assert "/dashboard/devices/new" not in html and "/edit" not in html
        resp = await post(world.client, f"/dashboard/devices/{stored.id}/edit", {**DEVICE, "name": "改"}, csrf)
        assert resp.status == 403
        assert (await post(world.client, "/dashboard/devices/new", DEVICE, csrf)).status == 403
    assert await world.client.app[registry_key].all_devices() == [stored]


async def test_bad_device_input_is_shown_with_reasons_and_changes_nothing(world: World) -> None:
    csrf = await sign_in(world.client, "admin")
    for field, value, words in (("address", "ftp://x", "地址无效"), ("address", "http://127.0.0.1/x", "本机"),
                                ("kind", "fax", "类型未知"), ("region", "abc", "行政区划代码无效"),
                                ("token", "short", "设备令牌过短"), ("lat", "", "纬度和经度须同时填写")):
        resp = await post(world.client, "/dashboard/devices/new", {**DEVICE, field: value}, csrf)
        assert resp.status == 400 and words in await resp.text(), (field, value)
    assert (await post(world.client, "/dashboard/devices/new", DEVICE, None)).status == 403
    assert await world.client.app[registry_key].all_devices() == []
    assert (await world.client.get("/dashboard/devices/dnothing/edit")).status == 404


async def test_an_admin_adds_a_site_with_keepers_by_phone_and_edits_it(world: World) -> None:
    ids = await world.seed([replace(person(1, VILLAGE_A, "hazard_monitor"), name="监测员甲"),
                            replace(person(2, VILLAGE_A, "hazard_monitor"), name="监测员乙")])
    csrf = await sign_in(world.client, "admin")
    resp = await post(world.client, "/dashboard/sites/new", {**SITE, "keepers": "138 0000 0001\n\n" + ids[1]}, csrf)
    assert resp.status == 303, await resp.text()
    sid = resp.headers["Location"].split("/")[3]
    registry = world.client.app[registry_key]
    site = await registry.site(sid)
    assert site is not None and site.contacts == tuple(ids) and site.kind == "landslide"
    assert [s.id for s in await registry.sites_of_contact(ids[0])] == [sid]
    form = await (await world.client.get(f"/dashboard/sites/{sid}/edit")).text()
    assert "+8613800000001\n+8613800000002" in form
    resp = await post(world.client, f"/dashboard/sites/{sid}/edit",
                      {**SITE, "name": "鲁班水库", "kind": "水库", "keepers": "13800000002"}, csrf)
    assert resp.status == 303
    site = await registry.site(sid)
    assert site is not None and (site.name, site.kind, site.contacts) == ("鲁班水库", "reservoir", (ids[1],))
    assert await registry.sites_of_contact(ids[0]) == []
    row = rows_of(await (await world.client.get("/dashboard/sites")).text(), "sites")[0]
    assert row[:2] == ["鲁班水库", "水库"] and "监测员乙 +8613800000002" in row[4]


async def test_bad_site_input_and_unknown_keepers_change_nothing(world: World) -> None:
    await world.seed([person(1, VILLAGE_A, "hazard_monitor")])
    csrf = await sign_in(world.client, "admin")
    for body, words in (({**SITE, "keepers": "138 0000 0001\n139 9999 9999\ncnotacontact1"}, "不是已登记的联系人"),
                        ({**SITE, "lat": "", "lon": ""}, "隐患点须有位置"), ({**SITE, "kind": "volcano"}, "类型未知"),
                        ({**SITE, "name": ""}, "姓名为空")):
        resp = await post(world.client, "/dashboard/sites/new", body, csrf)
        html = await resp.text()
        assert resp.status == 400 and words in html, body
        if body.get("keepers"):
            assert "139 9999 9999, cnotacontact1" in html  # each unknown line named
    viewer = await sign_in(world.client, "viewer")
    assert (await post(world.client, "/dashboard/sites/new", SITE, viewer)).status == 403
    assert await world.client.app[registry_key].all_sites() == []


async def test_a_viewer_sees_sites_with_masked_keepers_and_no_actions(world: World) -> None:
    ids = await world.seed([person(1, VILLAGE_A, "hazard_monitor")])
    csrf = await sign_in(world.client, "admin")
    assert (await post(world.client, "/dashboard/sites/new", {**SITE, "keepers": ids[0]}, csrf)).status == 303
    await sign_in(world.client, "viewer")
    html = await (await world.client.get("/dashboard/sites")).text()
    assert "138****0001" in html and "+8613800000001" not in html
    assert "/dashboard/sites/new" not in html and "/edit" not in html


def _readings_page() -> ApiRoutes:
    """A stand-in for the per-site readings page another part of the service provides."""
    routes = ApiRoutes("test")

    @routes.get("/dashboard/sites/{id}", summary="readings", roles=None)
    async def readings(request: web.Request) -> web.Response:
        return web.Response(text="readings")

    return routes


async def test_the_site_list_links_to_a_sites_readings_page_only_when_there_is_one(world: World,
                                                                                  make_client: AppFactory) -> None:
    ids = await world.seed([person(1, VILLAGE_A, "hazard_monitor")])
    csrf = await sign_in(world.client, "admin")
    resp = await post(world.client, "/dashboard/sites/new", {**SITE, "keepers": ids[0]}, csrf)
    sid = resp.headers["Location"].split("/")[3]
    assert f'href="/dashboard/sites/{sid}"' not in await (await world.client.get("/dashboard/sites")).text()
    other = await make_client(routes=[_readings_page()])
    await sign_in(other, "admin")
    html = await (await other.get("/dashboard/sites")).text()
    assert f'href="/dashboard/sites/{sid}"' in html and f'href="/dashboard/sites/{sid}/edit"' in html
    # the add form keeps its own path beside a page at /dashboard/sites/{id}
    assert 'id="site-form"' in await (await other.get("/dashboard/sites/new")).text()
