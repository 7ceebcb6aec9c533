"""名录 pages over HTTP: search, masking, and every action checked by role and CSRF, bad input refused with nothing
changed; the sheet upload's row report; the template sheet (Chinese headers, an example row that imports)."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

from contacts.model import Contact
from tests.contacts.helpers import csv_bytes, xlsx_bytes
from tests.dashboard.conftest import World
from tests.dashboard.desk import post, rows_of, sign_in, upload, workbook
from tests.warnings.conftest import LUXI, TONGCHUAN, VILLAGE_A, VILLAGE_B, person
from warning.clock import FakeClock
from warning.web.keys import registry_key

FORM = {"name": "王新", "phone": "139 0000 0001", "role": "cadre", "region": TONGCHUAN, "lat": "", "lon": "",
        "channels": "sms", "lang": "zh-CN", "supervisor": "", "active": "on"}


async def _people(world: World) -> list[str]:
    return await world.seed([replace(person(1, VILLAGE_A), name="王伟"), replace(person(2, VILLAGE_B), name="李娜"),
                             replace(person(3, TONGCHUAN, "cadre"), name="王芳"),
                             replace(person(4, LUXI, "duty_officer"), name="赵强", active=False)])


async def _get(world: World, cid: str) -> Contact:
    contact = await world.client.app[registry_key].get(cid)
    assert contact is not None
    return contact


async def test_search_by_name_phone_region_role_and_status(world: World) -> None:
    await _people(world)
    await sign_in(world.client, "admin")

    async def names(query: str) -> list[str]:
        resp = await world.client.get(f"/dashboard/contacts{query}")
        assert resp.status == 200, await resp.text()
        return [r[0] for r in rows_of(await resp.text(), "contacts") if len(r) > 1]

    assert sorted(await names("")) == ["李娜", "王伟", "王芳", "赵强"]
    assert await names("?q=王") == ["王芳", "王伟"]  # by region, then name
    assert await names("?q=0002") == ["李娜"]  # the end of a phone number
    assert await names("?q=138 0000 0003") == ["王芳"]  # a whole number, as people type it
    assert await names("?q=%2B8613800000001") == ["王伟"]
    assert sorted(await names(f"?region={TONGCHUAN}")) == ["王伟", "王芳"]
    assert await names("?role=cadre") == ["王芳"]
    assert await names("?role=党政干部") == ["王芳"]  # the Chinese label works too
    assert await names("?active=false") == ["赵强"]
    assert await names(f"?q=王&region={VILLAGE_A}") == ["王伟"]
    assert await names("?q=钱") == []
    bad = await world.client.get("/dashboard/contacts?region=51x")
    assert bad.status == 400 and "行政区划代码无效" in await bad.text()
    html = await (await world.client.get("/dashboard/contacts?q=王")).text()
    assert 'id="match-count"' in html and "+8613800000003" in html


async def test_a_viewer_sees_masked_phones_no_actions_and_cannot_search_by_a_hidden_number(world: World) -> None:
    await _people(world)
    await sign_in(world.client, "viewer")
    html = await (await world.client.get("/dashboard/contacts")).text()
    phones = re.findall(r'class="phone">([^<]*)<', html)
    assert sorted(phones) == ["138****0001", "138****0002", "138****0003", "138****0004"]
    assert "+86138" not in html
    for action in ("/dashboard/contacts/new", "/edit", "/active", "/dashboard/contacts/import", "template.xlsx"):
        assert action not in html, action
    assert html.count('method="post"') == 1  # only signing out
    # a viewer finds people by what a viewer sees of a number, never by the hidden middle
    hits = await (await world.client.get("/dashboard/contacts?q=0001")).text()
    assert [r[0] for r in rows_of(hits, "contacts")] == ["王伟"]
    whole = await (await world.client.get("/dashboard/contacts?q=13800000001")).text()
    assert rows_of(whole, "contacts") == [["没有符合条件的联系人 No contacts match"]] and "138****0001" not in whole
    for path in ("/dashboard/contacts/new", "/dashboard/contacts/import", "/dashboard/contacts/template.xlsx"):
        resp = await world.client.get(path)
        assert resp.status == 403 and "您的角色不能执行此操作" in await resp.text(), path


async def test_an_admin_edits_a_contact_and_every_field_is_checked(world: World) -> None:
    ids = await _people(world)
    wang = await _get(world, ids[0])
    csrf = await sign_in(world.client, "admin")
    form = await (await world.client.get(f"/dashboard/contacts/{wang.id}/edit")).text()
    assert 'value="王伟"' in form and 'value="+8613800000001"' in form and f'value="{wang.updated}"' in form
    changed = {**FORM, "name": "王伟（村主任）", "phone": "13800000001", "region": VILLAGE_B, "role": "village_committee",
               "channels": "voice", "supervisor": "138 0000 0003", "updated": wang.updated}
    resp = await post(world.client, f"/dashboard/contacts/{wang.id}/edit", changed, csrf)
    assert resp.status == 303 and resp.headers["Location"] == f"/dashboard/contacts/{wang.id}/edit?done=saved"
    after = await _get(world, wang.id)
    assert (after.name, after.region, after.role, after.channels, after.supervisor) == (
        "王伟（村主任）", VILLAGE_B, "village_committee", ("voice",), ids[2])
    assert "已保存" in await (await world.client.get(resp.headers["Location"])).text()


@pytest.mark.parametrize(("field", "value", "words"), [
    ("phone", "12345", "手机号码无效"),
    ("name", "", "姓名为空"),
    ("region", "51072", "行政区划代码无效"),
    ("role", "mayor", "角色未知"),
    ("lat", "95", "纬度和经度须同时填写"),
    ("supervisor", "139 0000 9999", "上级须为已登记的其他联系人"),
    ("supervisor", "138 0000 0001", "上级须为已登记的其他联系人"),  # oneself
])
async def test_bad_input_shows_the_form_again_with_the_reason_and_changes_nothing(world: World, field: str,
                                                                                  value: str, words: str) -> None:
    ids = await _people(world)
    before = await _get(world, ids[0])
    csrf = await sign_in(world.client, "admin")
    body = {**FORM, "name": before.name, "phone": before.phone, "region": before.region, "updated": before.updated,
            field: value}
    resp = await post(world.client, f"/dashboard/contacts/{before.id}/edit", body, csrf)
    html = await resp.text()
    assert resp.status == 400 and words in html and 'id="form-problem"' in html
    if field != "role":  # a select offers only the roles there are
        assert f'value="{value}"' in html  # what was typed is kept, to be corrected
    assert await _get(world, ids[0]) == before


async def test_actions_are_refused_without_the_role_or_the_csrf_token_and_change_nothing(world: World) -> None:
    ids = await _people(world)
    before = await _get(world, ids[0])
    edit = {**FORM, "name": "改名", "phone": before.phone, "region": before.region, "updated": before.updated}
    for who in ("viewer", "issuer", "approver"):
        csrf = await sign_in(world.client, who)
        for path, body in ((f"/dashboard/contacts/{before.id}/edit", edit),
                           (f"/dashboard/contacts/{before.id}/active", {"active": "false"}),
                           ("/dashboard/contacts/new", FORM)):
            resp = await post(world.client, path, body, csrf)
            assert resp.status == 403 and "您的角色不能执行此操作" in await resp.text(), (who, path)
    admin = await sign_in(world.client, "admin")
    for csrf in (None, "forged", admin[:-2] + "xx"):
        resp = await post(world.client, f"/dashboard/contacts/{before.id}/active", {"active": "false"}, csrf)
        assert resp.status == 403 and "表单已过期或无效" in await resp.text()
        resp = await post(world.client, f"/dashboard/contacts/{before.id}/edit", edit, csrf)
        assert resp.status == 403
    world.client.session.cookie_jar.clear()
    resp = await post(world.client, f"/dashboard/contacts/{before.id}/edit", edit, admin)
    html = await resp.text()
    assert resp.status == 401 and "表单未提交" in html and 'id="sign-in" href="/login"' in html  # nothing done
    assert (await world.client.get("/dashboard/contacts/new", allow_redirects=False)).headers["Location"] == (
        "/login?next=/dashboard/contacts/new")
    resp = await post(world.client, f"/dashboard/contacts/{before.id}/active", {"active": "false", "csrf": "签名"},
                      None)
    assert resp.status == 401  # a CSRF field that is not ASCII is a refusal, not an error
    assert await _get(world, ids[0]) == before
    assert await world.client.app[registry_key].count() == 4


async def test_deactivate_and_reactivate_from_the_list(world: World) -> None:
    ids = await _people(world)
    csrf = await sign_in(world.client, "admin")
    resp = await post(world.client, f"/dashboard/contacts/{ids[0]}/active",
                      {"active": "false", "back": "/dashboard/contacts?q=王&done=saved"}, csrf)
    assert resp.status == 303 and resp.headers["Location"] == "/dashboard/contacts?q=%E7%8E%8B&done=deactivated"
    assert (await _get(world, ids[0])).active is False
    html = await (await world.client.get(resp.headers["Location"])).text()
    assert "已停用" in html and f'action="/dashboard/contacts/{ids[0]}/active"' in html
    resp = await post(world.client, f"/dashboard/contacts/{ids[0]}/active",
                      {"active": "true", "back": "https://evil.example/dashboard/contacts"}, csrf)
    assert resp.headers["Location"] == "/dashboard/contacts?done=activated"  # only back to this site's list
    assert (await _get(world, ids[0])).active is True
    resp = await post(world.client, f"/dashboard/contacts/{ids[0]}/active", {"active": "maybe"}, csrf)
    assert resp.status == 400 and (await _get(world, ids[0])).active is True
    resp = await post(world.client, "/dashboard/contacts/cnobody000000/active", {"active": "false"}, csrf)
    assert resp.status == 404


async def test_add_a_contact_and_a_registered_phone_is_a_conflict(world: World) -> None:
    await _people(world)
    csrf = await sign_in(world.client, "admin")
    resp = await post(world.client, "/dashboard/contacts/new", FORM, csrf)
    assert resp.status == 303
    cid = resp.headers["Location"].split("/")[3]
    added = await _get(world, cid)
    assert (added.name, added.phone, added.role, added.channels) == ("王新", "+8613900000001", "cadre", ("sms",))
    again = await post(world.client, "/dashboard/contacts/new", {**FORM, "name": "另一人"}, csrf)
    assert again.status == 409 and "手机号码已登记" in await again.text()
    assert await world.client.app[registry_key].count() == 5


async def test_a_form_saved_over_a_newer_change_is_refused(world: World, clock: FakeClock) -> None:
    ids = await _people(world)
    stale = await _get(world, ids[0])
    csrf = await sign_in(world.client, "admin")
    first = {**FORM, "name": "甲", "phone": stale.phone, "region": stale.region, "updated": stale.updated}
    clock.advance(60)
    assert (await post(world.client, f"/dashboard/contacts/{stale.id}/edit", first, csrf)).status == 303
    second = {**first, "name": "乙"}  # made from the same, older form
    resp = await post(world.client, f"/dashboard/contacts/{stale.id}/edit", second, csrf)
    html = await resp.text()
    assert resp.status == 409 and "已被他人修改" in html and 'value="甲"' in html
    assert (await _get(world, stale.id)).name == "甲"


async def test_a_sheet_with_bad_rows_imports_the_good_ones_and_lists_the_others(world: World) -> None:
    await world.seed([replace(person(9, TONGCHUAN, "cadre"), name="上级")])
    header = ["姓名", "手机号码", "角色", "行政区划代码", "上级手机号码"]
    sheet = csv_bytes([header, ["张一", "13900000011", "村社区中心户", VILLAGE_A, "13800000009"],
                       ["张二", "12345", "村社区中心户", VILLAGE_A, ""],
                       ["张三", "13900000013", "镇长", VILLAGE_A, ""],
                       ["张四", "13900000014", "网格员", VILLAGE_B, ""],
                       ["张五", "13900000015", "网格员", "5107221", ""]])
    csrf = await sign_in(world.client, "admin")
    resp = await upload(world.client, "/dashboard/contacts/import", sheet, "名单.csv", csrf)
    html = await resp.text()
    assert resp.status == 200
    assert [re.search(rf'data-k="{k}">(\d+)<', html).group(1) for k in ("accepted", "updated", "rejected")] == [  # type: ignore[union-attr]
        "2", "0", "3"]
    rejected = rows_of(html, "rejected")
    assert [r[0] for r in rejected] == ["3", "4", "6"]
    assert "手机号码无效" in rejected[0][1] and "角色未知" in rejected[1][1] and "行政区划代码无效" in rejected[2][1]
    registry = world.client.app[registry_key]
    assert {c.name for c in await registry.get_many(sorted(await registry.ids_in_regions(["510722"])))} == {
        "上级", "张一", "张四"}
    again = await upload(world.client, "/dashboard/contacts/import", sheet, "名单.csv", csrf)
    assert re.search(r'data-k="updated">2<', await again.text())  # the same sheet twice doubles nobody


@pytest.mark.parametrize(("body", "name", "words"), [
    (b"", "empty.csv", "文件为空"),
    (b"\xd0\xcf\x11\xe0" + b"\0" * 64, "old.xls", "不支持旧版 .xls"),
    ("姓名,电话\r\n张一,13900000011\r\n".encode(), "x.csv", "缺少必填列"),
])
async def test_an_unusable_file_is_refused_with_the_reason(world: World, body: bytes, name: str, words: str) -> None:
    csrf = await sign_in(world.client, "admin")
    resp = await upload(world.client, "/dashboard/contacts/import", body, name, csrf)
    assert resp.status == 400 and words in await resp.text()
    assert await world.client.app[registry_key].count() == 0


async def test_an_upload_without_the_role_or_the_csrf_token_imports_nothing(world: World) -> None:
    sheet = csv_bytes([["姓名", "手机号码", "角色", "行政区划代码"], ["张一", "13900000011", "网格员", VILLAGE_A]])
    csrf = await sign_in(world.client, "issuer")
    assert (await upload(world.client, "/dashboard/contacts/import", sheet, "a.csv", csrf)).status == 403
    await sign_in(world.client, "admin")
    assert (await upload(world.client, "/dashboard/contacts/import", sheet, "a.csv", None)).status == 403
    assert await world.client.app[registry_key].count() == 0


async def test_the_template_has_chinese_headers_and_an_example_row_that_imports(world: World) -> None:
    csrf = await sign_in(world.client, "admin")
    resp = await world.client.get("/dashboard/contacts/template.xlsx")
    assert resp.status == 200 and "attachment" in resp.headers["Content-Disposition"]
    body = await resp.read()
    book = workbook(body)
    assert book.sheetnames == ["联系人", "填写说明", "角色"]
    sheet = book["联系人"]
    header = [c.value for c in sheet[1]]
    assert header[:4] == ["姓名（必填）", "手机号码（必填）", "角色（必填）", "行政区划代码（必填）"]
    assert all(re.search(r"[\u4e00-\u9fff]", h) for h in header)
    example = [c.value for c in sheet[2]]
    assert example[:4] == ["张三", "13800138000", "村社区中心户", "510722101001"]
    assert all(c.data_type == "s" for c in sheet[2] if c.value is not None)  # text: a phone keeps its digits, a code its zeros
    assert "村社区中心户" in [c.value for c in book["角色"]["A"]]
    resp = await upload(world.client, "/dashboard/contacts/import", body, "联系人导入模板.xlsx", csrf)
    html = await resp.text()
    assert resp.status == 200 and 'data-k="accepted">1<' in html and 'id="all-imported"' in html
    imported = await world.client.app[registry_key].by_phone("+8613800138000")
    assert imported is not None and (imported.name, imported.region) == ("张三", "510722101001")
    csv_body = await (await world.client.get("/dashboard/contacts/template.csv")).read()
    assert csv_body.startswith("\ufeff姓名（必填）,手机号码（必填）".encode())
    resp = await upload(world.client, "/dashboard/contacts/import", csv_body, "t.csv", csrf)
    assert 'data-k="updated">1<' in await resp.text()  # the same example again: one person, updated
    assert (await world.client.get("/dashboard/contacts/template.pdf")).status == 404


async def test_an_xlsx_with_typed_cells_imports_through_the_page(world: World) -> None:
    csrf = await sign_in(world.client, "admin")
    sheet = xlsx_bytes([["姓名", "手机号码", "角色", "行政区划代码"], ["钱一", 13900000021, "网格员", int(VILLAGE_A)]])
    resp = await upload(world.client, "/dashboard/contacts/import", sheet, "a.xlsx", csrf)
    assert resp.status == 200 and 'data-k="accepted">1<' in await resp.text()


async def test_the_pages_speak_english_with_lang_en(world: World) -> None:
    await _people(world)
    await sign_in(world.client, "admin")
    html = await (await world.client.get("/dashboard/contacts?lang=en")).text()
    assert '<html lang="en">' in html and "Contacts <small" in html and 'href="/dashboard/contacts/new?lang=en"' in html
    assert "Party and government cadre" in html



async def test_a_form_with_a_non_ascii_csrf_token_or_a_broken_body_is_refused_not_an_error(world: World) -> None:
    ids = await _people(world)
    before = await _get(world, ids[0])
    await sign_in(world.client, "admin")
    resp = await post(world.client, f"/dashboard/contacts/{ids[0]}/active", {"active": "false", "csrf": "签名"}, None)
    assert resp.status == 403 and "表单已过期或无效" in await resp.text()
    broken = await world.client.post(f"/dashboard/contacts/{ids[0]}/active", data=b"--x\r\nContent-Disposition: bad",
                                     headers={"Content-Type": "multipart/form-data"}, allow_redirects=False)
    assert broken.status == 400 and "表单无效" in await broken.text()
    assert await _get(world, ids[0]) == before
