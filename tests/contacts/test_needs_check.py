"""The registry's `needs_check` flag: numbers to follow up (no answer to a registry check, a send that failed for
good, or marked by a person) — kept through imports, shown and filtered in the API, exported in the sheet."""

from __future__ import annotations

import csv
import io
from typing import Any

from contacts import keys
from contacts.model import CheckFlag, Contact
from contacts.store import RedisRegistry
from tests.conftest import auth
from tests.contacts.helpers import NOW, ZH_HEADER, csv_bytes
from tests.contacts.test_api import client, make_client
from tests.warnings.conftest import TONGCHUAN, VILLAGE_A
from warning.web.keys import registry_key

__all__ = ["client", "make_client"]
ROWS = [["张一", "13800000001", "党政干部", TONGCHUAN, "", "", "", "", ""],
        ["张二", "13800000002", "网格员", VILLAGE_A, "", "", "", "", ""],
        ["张三", "13800000003", "中心户", VILLAGE_A, "", "", "", "", ""]]
FLAG = CheckFlag("no_reply", "2026-07-01T08:00:00+00:00", "chk20260701aaaaaaaa")


def person(i: int) -> Contact:
    return Contact(id="", name=f"人{i}", phone=f"+86138{i:08d}", phone_kind="mobile", role="cadre", region=VILLAGE_A)


async def test_a_flag_is_set_once_kept_by_upserts_and_taken_off(redis: Any) -> None:
    reg = RedisRegistry(redis)
    [a, b] = await reg.upsert_contacts([person(1), person(2)], NOW)
    assert await reg.flag_needs_check([(a.id, FLAG), ("c-gone", FLAG)]) == [1, -1]
    later = CheckFlag("failed", "2026-07-02T08:00:00+00:00", "w1: 30005")
    assert await reg.flag_needs_check([(a.id, later)]) == [0]  # the first reason stays
    await reg.upsert_contacts([person(1)], NOW)  # an import of the same row neither clears nor changes it
    got = await reg.get(a.id)
    assert got is not None and got.needs_check == FLAG
    assert await reg.needs_check_ids() == {a.id}
    assert await reg.clear_needs_check([a.id, b.id]) == [1, 0]
    got = await reg.get(a.id)
    assert got is not None and got.needs_check is None and await reg.needs_check_ids() == set()


async def test_erasing_a_contact_takes_it_off_the_list(redis: Any) -> None:
    reg = RedisRegistry(redis)
    [a] = await reg.upsert_contacts([person(1)], NOW)
    await reg.flag_needs_check([(a.id, FLAG)])
    assert await reg.delete_contact(a.id)
    assert await redis.smembers(keys.CONTACT_NEEDS_CHECK) == set()


async def _imported(client: Any) -> dict[str, str]:
    resp = await client.post("/api/v1/contacts/import", data=csv_bytes([ZH_HEADER, *ROWS]), headers=auth("admin"))
    assert (await resp.json())["accepted"] == 3
    items = (await (await client.get("/api/v1/contacts", headers=auth("admin"))).json())["items"]
    return {c["name"]: c["id"] for c in items}


async def test_the_api_shows_filters_and_changes_the_flag(client: Any) -> None:
    ids = await _imported(client)
    reg = client.app[registry_key]
    await reg.flag_needs_check([(ids["张二"], FLAG)])
    got = await (await client.get(f"/api/v1/contacts/{ids['张二']}", headers=auth("viewer"))).json()
    assert got["needs_check"] is True and got["needs_check_reason"] == FLAG.as_dict()
    flagged = await (await client.get("/api/v1/contacts?needs_check=true", headers=auth("viewer"))).json()
    assert [c["name"] for c in flagged["items"]] == ["张二"]
    others = await (await client.get("/api/v1/contacts?needs_check=false&active=false", headers=auth("viewer"))).json()
    assert others["items"] == []
    others = await (await client.get("/api/v1/contacts?needs_check=false", headers=auth("viewer"))).json()
    assert sorted(c["name"] for c in others["items"]) == ["张一", "张三"]
    # a person marks one by hand, and takes the flag off another once they called it
    resp = await client.patch(f"/api/v1/contacts/{ids['张一']}", json={"needs_check": True}, headers=auth("admin"))
    assert resp.status == 200
    marked = await resp.json()
    assert marked["needs_check"] is True and marked["needs_check_reason"]["reason"] == "manual"
    assert marked["needs_check_reason"]["detail"] == "admin"
    resp = await client.patch(f"/api/v1/contacts/{ids['张二']}", json={"needs_check": False}, headers=auth("admin"))
    assert (await resp.json())["needs_check"] is False
    flagged = await (await client.get("/api/v1/contacts?needs_check=true", headers=auth("viewer"))).json()
    assert [c["name"] for c in flagged["items"]] == ["张一"]


async def test_a_corrected_number_takes_the_flag_off(client: Any) -> None:
    ids = await _imported(client)
    await client.patch(f"/api/v1/contacts/{ids['张三']}", json={"needs_check": True}, headers=auth("admin"))
    resp = await client.patch(f"/api/v1/contacts/{ids['张三']}", json={"name": "张叁"}, headers=auth("admin"))
    assert (await resp.json())["needs_check"] is True  # another change leaves it
    resp = await client.patch(f"/api/v1/contacts/{ids['张三']}", json={"phone": "13900000003"}, headers=auth("admin"))
    assert (await resp.json())["needs_check"] is False


async def test_bad_flag_values_are_refused_and_change_nothing(client: Any) -> None:
    ids = await _imported(client)
    resp = await client.patch(f"/api/v1/contacts/{ids['张一']}", json={"needs_check": "yes", "name": "改名"},
                              headers=auth("admin"))
    assert resp.status == 400 and "needs_check" in (await resp.json())["detail"]
    got = await (await client.get(f"/api/v1/contacts/{ids['张一']}", headers=auth("admin"))).json()
    assert (got["name"], got["needs_check"]) == ("张一", False)
    resp = await client.get("/api/v1/contacts?needs_check=maybe", headers=auth("viewer"))
    assert resp.status == 400 and "needs_check" in (await resp.json())["detail"]
    resp = await client.patch(f"/api/v1/contacts/{ids['张一']}", json={"needs_check": True}, headers=auth("viewer"))
    assert resp.status == 403


async def test_the_sheet_shows_the_flag_and_an_import_of_it_keeps_it(client: Any) -> None:
    ids = await _imported(client)
    reg = client.app[registry_key]
    await reg.flag_needs_check([(ids["张二"], FLAG)])
    text = (await (await client.get("/api/v1/contacts/export?needs_check=true", headers=auth("admin"))).read()
            ).decode("utf-8-sig")
    header, *lines = list(csv.reader(io.StringIO(text)))
    assert len(lines) == 1
    cells = dict(zip(header, lines[0], strict=True))
    assert cells["姓名"] == "张二" and cells["待核实"] == "是"
    assert cells["核实原因"] == "核查短信未回复；2026-07-01 16:00；chk20260701aaaaaaaa"  # Beijing time
    full = (await (await client.get("/api/v1/contacts/export", headers=auth("admin"))).read())
    again = await (await client.post("/api/v1/contacts/import", data=full, headers=auth("admin"))).json()
    assert (again["unchanged"], again["rejected"]) == (3, [])
    got = await (await client.get(f"/api/v1/contacts/{ids['张二']}", headers=auth("admin"))).json()
    assert got["needs_check"] is True
