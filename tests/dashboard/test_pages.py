"""Dashboard pages after a real fan-out: the numbers by township, village, role and channel, drills, masking, exports."""

from __future__ import annotations

import re

from tests.conftest import auth
from tests.dashboard.conftest import BLUE, World, fan_out, figure, login
from tests.warnings.conftest import LUXI, TONGCHUAN, VILLAGE_A


async def test_warning_page_shows_exact_coverage(world: World) -> None:
    w = await fan_out(world)
    assert (await login(world.client, "admin")).status == 303
    resp = await world.client.get(f"/dashboard/warnings/{w['id']}")
    assert resp.status == 200
    html = await resp.text()
    totals = {k: figure(html, k) for k in ("targeted", "queued", "sent", "delivered", "failed", "acked", "acked_5m",
                                           "acked_15m")}
    assert totals == {"targeted": 7, "queued": 0, "sent": 7, "delivered": 4, "failed": 0, "acked": 2, "acked_5m": 2,
                      "acked_15m": 2}
    assert [figure(html, f"by_region.{TONGCHUAN}.{k}") for k in ("targeted", "sent", "delivered", "acked")] == [4, 4, 3, 1]
    assert [figure(html, f"by_region.{VILLAGE_A}.{k}") for k in ("targeted", "delivered", "acked")] == [3, 3, 1]
    assert [figure(html, f"by_region.{LUXI}.{k}") for k in ("targeted", "delivered", "acked")] == [3, 1, 1]
    assert [figure(html, f"by_role.cadre.{k}") for k in ("targeted", "sent", "acked")] == [2, 2, 0]
    assert [figure(html, f"by_role.village_monitor.{k}") for k in ("targeted", "acked")] == [5, 2]
    assert figure(html, "by_channel.sms.delivered") == 4  # a confirmation counts as delivered
    # names from the region tree, role and channel labels in Chinese with English beside them
    for text in ("潼川镇", "东街社区", "芦溪镇", "白鹤村", "党政干部", "村社区中心户", "短信", "SMS", "按乡镇", "By township"):
        assert text in html, text
    # the unconfirmed: five people, full phones for an admin; and the exports
    unreached = html.split('id="unreached"')[1].split("</table>")[0]
    assert unreached.count("<tr data-person=") == 5 and "联系人1<" not in unreached and "联系人5<" not in unreached
    assert 'data-count="5"' in html  # the unconfirmed count beside the heading
    assert "+8613800000002" in unreached
    for what, fmt in (("deliveries", "csv"), ("deliveries", "xlsx"), ("unreached", "xlsx"), ("record", "json")):
        assert f"/dashboard/warnings/{w['id']}/export/{what}?format={fmt}" in html


async def test_live_page_in_english(world: World) -> None:
    w = await fan_out(world)
    await login(world.client, "viewer")
    html = await (await world.client.get(f"/dashboard/warnings/{w['id']}?lang=en")).text()
    assert '<html lang="en">' in html and 'By township and village <small class="alt" lang="zh-CN">按乡镇' in html


async def test_viewer_sees_phones_masked_page_and_export(world: World) -> None:
    w = await fan_out(world)
    await login(world.client, "viewer")
    html = await (await world.client.get(f"/dashboard/warnings/{w['id']}")).text()
    phones = re.findall(r'<td class="phone">([^<]*)</td>', html)
    assert len(phones) == 5 and all(re.fullmatch(r"\+?(86)?138\*{4}\d{4}", p) for p in phones), phones
    assert "+8613800000002" not in html
    csv = await (await world.client.get(f"/dashboard/warnings/{w['id']}/export/unreached?format=csv")).text()
    assert "13800000002" not in csv and "****0002" in csv
    deliveries = await world.client.get(f"/dashboard/warnings/{w['id']}/export/deliveries?format=csv")
    assert deliveries.status == 200 and "13800000002" not in await deliveries.text()
    record = await world.client.get(f"/dashboard/warnings/{w['id']}/export/record?format=csv")
    assert record.status == 403  # the full record is for issuers and approvers
    assert "export/record" not in html


async def test_exports_for_an_issuer_and_bad_export_requests(world: World) -> None:
    w = await fan_out(world)
    await login(world.client, "issuer")
    base = f"/dashboard/warnings/{w['id']}/export"
    resp = await world.client.get(f"{base}/unreached?format=csv")
    assert resp.status == 200 and "+8613800000002" in await resp.text()
    resp = await world.client.get(f"{base}/deliveries?format=xlsx")
    assert resp.status == 200 and (await resp.read())[:2] == b"PK"
    resp = await world.client.get(f"{base}/record?format=json")
    assert resp.status == 200 and (await resp.json())["warning"]["id"] == w["id"]
    assert (await world.client.get(f"{base}/deliveries?format=pdf")).status == 400
    assert (await world.client.get(f"{base}/secrets?format=csv")).status == 404
    assert (await world.client.get("/dashboard/warnings/nope/export/deliveries?format=csv")).status == 404
    assert (await world.client.get("/dashboard/warnings/nope")).status == 404


async def test_list_marks_drills_and_shows_coverage(world: World) -> None:
    live = await fan_out(world)
    resp = await world.client.post("/api/v1/warnings", headers=auth("issuer"),
                                   json={**BLUE, "headline": "全县暴雨演练", "status": "Exercise"})
    drill = await resp.json()
    await world.drain()
    await login(world.client, "approver")
    html = await (await world.client.get("/dashboard")).text()
    rows = {m.group(1): m.group(0) for m in re.finditer(r'<tr class="[^"]*" data-id="([^"]+)">.*?</tr>', html, re.DOTALL)}
    assert set(rows) == {live["id"], drill["id"]}
    assert "【演练】" in rows[drill["id"]] and 'class="exercise"' in rows[drill["id"]]
    assert "【演练】" not in rows[live["id"]]
    nums = re.findall(r'<td class="n">(\d+)</td>', rows[live["id"]])
    assert nums == ["7", "7", "4", "2"]  # targeted, sent, delivered, acked
    assert 'class="acked" style="width:29%"' in rows[live["id"]]  # 2 of 7
    assert "蓝色" in rows[live["id"]] and "生效中" in rows[live["id"]]


async def test_field_reports_mask_phones_for_viewers(world: World) -> None:
    from warning.channel import InboundMessage

    w = await fan_out(world)
    report = "桥被冲断了，请联系13912345678"
    await world.services.replies.handle(InboundMessage(channel="sms", sender="+8613800000003", to="10086",
                                                       text=report))
    await login(world.client, "viewer")
    html = await (await world.client.get(f"/dashboard/warnings/{w['id']}")).text()
    assert "桥被冲断了" in html and "13912345678" not in html and "139****5678" in html
    await world.client.post("/logout", data={})
    world.client.session.cookie_jar.clear()
    await login(world.client, "issuer")
    html = await (await world.client.get(f"/dashboard/warnings/{w['id']}")).text()
    assert "13912345678" in html
