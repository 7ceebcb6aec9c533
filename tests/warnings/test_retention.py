"""Every key a warning creates expires at the warning's end plus `[retention] days`; the registry's keys, and a few
keys every warning shares (listed below with the reason), are the only ones kept without an expiry."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from contacts import duty
from contacts import keys as registry_keys
from tests.conftest import auth, make_settings
from tests.dispatch.conftest import Rig, make_rig
from tests.fakes.twilio import call_status_params, message_status_params
from tests.receipts.conftest import BASE, post_signed, rows, settled_sends
from tests.receipts.test_escalation import RED, at, red_world, reply
from tests.warnings.conftest import World, person
from tests.warnings.test_cap_api import SAMPLE_TIME, push
from warning import keys
from warning.clock import FakeClock
from warning.errors import ConfigError
from warning.housekeeping import forget_expired, retain
from warning.receipts import VOICE_RETRY_S
from warning.settings import load_settings

__all__ = ["make_rig"]
DAY_S = 86400
#: what a key may lack an expiry for, besides the registry
SHARED = {
    keys.DUE_KEY: "every warning's timers; a timer leaves once its handler succeeded",
    keys.DUE_LEASES: "timers being handled; a lease leaves with its timer",
    keys.DUE_TRIES: "how often a timer being handled was taken; cleared with its lease",
    keys.RETRYING: "ids of warnings with deliveries waiting for a retry; housekeeping drops one once none waits",
    keys.RETENTION_PENDING: "ids of warnings whose keys' expiry is being moved; emptied when that is done",
    keys.WARNINGS_INDEX: "ids and creation times of warnings to list them; housekeeping drops one whose record expired",
    keys.ACTIVE_INDEX: "ids of open warnings; a warning leaves it when it closes",
    keys.CHECKS_OPEN: "ids of open registry checks; a check leaves it when it closes (its due timer)",
    keys.AUDIT_ALL: "every warning's audit entries in one stream, capped at audit.GLOBAL_MAXLEN entries",
}
#: work queues: one stream (and consumer group) per channel and priority, shared by every warning; an entry is deleted
#: as soon as it was handled
SHARED_PREFIXES = (keys.queue_key("", 0).rsplit(":", 2)[0] + ":",)
#: the registry (contacts/): people, devices, hazard sites, their indexes, the duty roster; kept until changed
REGISTRY_PREFIXES = (registry_keys.CONTACT_PREFIX, registry_keys.CONTACT_ROUTES, registry_keys.CONTACT_IDS,
                     registry_keys.CONTACT_PHONES, registry_keys.CONTACT_GEO, registry_keys.DEVICE_PREFIX,
                     registry_keys.DEVICE_IDS, registry_keys.DEVICE_TOKENS, registry_keys.DEVICE_GEO,
                     registry_keys.SITE_PREFIX, registry_keys.SITE_IDS, registry_keys.SITE_GEO,
                     registry_keys.PREFIX + "idx:", duty.PREFIX)


async def every_key(redis: Any) -> dict[str, int]:
    """Every key in the store and its TTL in seconds (-1: none)."""
    out = {}
    async for name in redis.scan_iter(count=1000):
        out[name] = await redis.ttl(name)
    return out


def without_expiry(ttls: dict[str, int]) -> list[str]:
    return sorted(k for k, ttl in ttls.items() if ttl < 0 and k not in SHARED
                  and not k.startswith(SHARED_PREFIXES + REGISTRY_PREFIXES))


async def of_warning(redis: Any, wid: str, ttls: dict[str, int]) -> dict[str, int]:
    """The keys that belong to one warning: its own (hash-tagged), and the global maps whose value is its id."""
    out = {k: t for k, t in ttls.items() if keys.tag(wid) in k}
    for name, ttl in ttls.items():
        if name.startswith((keys.PREFIX + "ref:", keys.PREFIX + "cap:", keys.PREFIX + "reply:")):
            value = await redis.get(name)
            if value and value.split(":")[0] == wid:
                out[name] = ttl
    return out


async def approve_if_pending(rig: Rig, answer: dict[str, Any]) -> None:
    if answer["state"] == "pending_approval":
        resp = await rig.client.post(f"/api/v1/warnings/{answer['id']}/approve", json={"version": answer["version"]},
                                     headers=auth("approver"))
        assert resp.status == 200, await resp.text()


async def busy_then_answered(rig: Rig, wid: str, phone: str) -> None:
    """The call to `phone` is busy; it is placed again and answered (two provider ids for one delivery)."""
    fake = rig.fakes["primary"]
    [call] = [c for c in fake.accepted("Calls") if c.to == phone]
    resp = await post_signed(rig, call.form["StatusCallback"], call_status_params(call.sid or "", "busy", to=phone))
    assert resp.status in (200, 204)
    rig.clock.advance(VOICE_RETRY_S)
    await rig.pump(lambda: settled_sends(rig, wid))
    again = [c for c in fake.accepted("Calls") if c.to == phone][-1]
    assert again.sid != call.sid
    await post_signed(rig, again.form["StatusCallback"], call_status_params(again.sid or "", "completed", to=phone))


async def live_red_warning(rig: Rig) -> tuple[dict[str, Any], list[Any]]:
    """A red warning through receipts, a reply, a field report, a busy call placed again and escalation notices."""
    rig.clock_offset = 0  # type: ignore[attr-defined]
    w, people, _ = await red_world(rig)
    fake = rig.fakes["primary"]
    sms = {r.to: r for r in fake.accepted()}
    resp = await post_signed(rig, sms[people[1].phone].form["StatusCallback"],
                             message_status_params(sms[people[1].phone].sid or "", "delivered", to=people[1].phone))
    assert resp.status == 204
    await reply(rig, people[2].phone, "收到")
    await reply(rig, people[1].phone, "村口积水，路已经断了")  # a field report
    await at(rig, 300, w["id"])  # the call step
    await busy_then_answered(rig, w["id"], people[0].phone)
    await at(rig, 600, w["id"])  # the supervisor / duty officer step
    return w, people


async def test_after_a_warnings_whole_life_every_key_expires_but_the_registrys(make_rig: Any) -> None:
    rig = await make_rig()
    redis = rig.services.redis
    w, _ = await live_red_warning(rig)
    # a receipt for a provider id never recorded waits (held) for it
    resp = await post_signed(rig, f"{BASE}/hooks/twilio/status?c=sms",
                             message_status_params("SM" + "f" * 32, "delivered"))
    assert resp.status == 204
    expires = (rig.clock.now() + timedelta(days=2)).isoformat()
    resp = await rig.client.post(f"/api/v1/warnings/{w['id']}/update", headers=auth("issuer"),
                                 json={**RED, "expires": expires, "headline": "潼川镇暴雨红色预警（更新）"})
    assert resp.status == 200, await resp.text()
    await approve_if_pending(rig, await resp.json())
    await rig.pump(lambda: settled_sends(rig, w["id"]))
    resp = await rig.client.post(f"/api/v1/warnings/{w['id']}/cancel", json={"reason": "雨停"}, headers=auth("issuer"))
    assert resp.status == 200
    cancelled_at = rig.clock.now()
    await rig.pump(lambda: settled_sends(rig, w["id"]))
    assert await retain(rig.services) == [w["id"]]  # housekeeping: the end moved (cancelled), so do the keys
    ttls = await every_key(redis)
    assert without_expiry(ttls) == []
    mine = await of_warning(redis, w["id"], ttls)
    # deliveries (with phone numbers), counters, events, acknowledgments, reports, escalation state, provider-id maps,
    # audit, versions, CAP identifiers: each expires when the warning ended (its cancellation) + 400 days
    kinds = {k.split("}:")[1].split(":")[0] if keys.tag(w["id"]) in k else k.split(":")[1] for k in mine}
    assert {"warning", "d", "deliveries", "recipients", "counts", "acked", "events", "esc", "reports", "audit", "v",
            "ref", "cap"} <= kinds
    keep_s = 400 * DAY_S - (rig.clock.now() - cancelled_at).total_seconds()
    assert all(keep_s - 60 <= ttl <= 400 * DAY_S for ttl in mine.values()), mine
    refs = [k for k in mine if k.startswith(keys.PREFIX + "ref:voice:")]
    assert len(refs) >= 3  # both provider ids of the call placed twice follow the warning


async def test_a_live_warnings_keys_do_not_expire_before_its_end_plus_retention(make_rig: Any) -> None:
    rig = await make_rig()
    redis = rig.services.redis
    w, _ = await live_red_warning(rig)
    # the update moves the end 30 days on: keys written from now on follow at once, the others with housekeeping
    ends = rig.clock.now() + timedelta(days=30)
    resp = await rig.client.post(f"/api/v1/warnings/{w['id']}/update", headers=auth("issuer"),
                                 json={**RED, "expires": ends.isoformat()})
    assert resp.status == 200, await resp.text()
    await approve_if_pending(rig, await resp.json())
    await rig.pump(lambda: settled_sends(rig, w["id"]))
    least = (ends + timedelta(days=400) - rig.clock.now()).total_seconds() - 60
    assert await redis.smembers(keys.RETENTION_PENDING) == {w["id"]}
    new = [keys.delivery_key(w["id"], r.delivery.id) for r in await rows(rig, w["id"]) if r.delivery.version == 2]
    assert new and all(ttl >= least for ttl in [await redis.ttl(name) for name in new])
    assert await retain(rig.services) == [w["id"]] and await retain(rig.services) == []
    ttls = await every_key(redis)
    mine = await of_warning(redis, w["id"], ttls)
    reply_code = keys.reply_code_key(w["reply_code"])
    assert mine.pop(reply_code) >= (ends - rig.clock.now()).total_seconds()  # freed at close, never before the end
    assert len(mine) > 20 and {k: t for k, t in mine.items() if t < least} == {}


async def test_a_cap_warning_its_dedup_and_identifier_keys_expire_with_it(world_at_sample_time: World) -> None:
    world = world_at_sample_time
    redis = world.services.redis
    await world.seed([person(1, "510726100001")])
    status, first = await push(world, "cma_rainstorm_red.xml")
    assert status == 202
    await world.drain()
    for name in ("cn_update.xml", "cn_cancel.xml"):
        status, _ = await push(world, name)
        assert status == 202
    await world.drain()
    assert await retain(world.services) == [first["id"]]
    ttls = await every_key(redis)
    assert without_expiry(ttls) == []
    record = await world.services.lifecycle.get(first["id"])
    assert record.state.value == "cancelled"
    dedup = [k for k in ttls if k.startswith(keys.PREFIX + "cap:seen:")]
    idents = [keys.cap_identifier_key(i) for i in record.identifiers]
    assert len(dedup) == 3 and len(idents) == 3
    keep_s = 400 * DAY_S - (world.services.clock.now() - record.updated_at).total_seconds()
    assert all(keep_s - 60 <= ttls[k] <= keep_s + 5 for k in dedup + idents), {k: ttls[k] for k in dedup + idents}


async def test_the_list_of_warnings_forgets_those_whose_record_expired(make_rig: Any) -> None:
    rig = await make_rig()
    redis = rig.services.redis
    body = {"event": "rainstorm", "level": "blue", "headline": "暴雨蓝色预警", "areas": ["510722100001"]}
    old = (await (await rig.client.post("/api/v1/warnings", headers=auth("issuer"), json=body)).json())["id"]
    rig.clock.advance(2 * DAY_S)
    kept = (await (await rig.client.post("/api/v1/warnings", headers=auth("issuer"), json=body)).json())["id"]
    await redis.delete(keys.warning_key(old))  # as Redis does once end + retention has passed
    assert await forget_expired(rig.services) == []  # not yet past the retention period since creation
    rig.clock.advance(400 * DAY_S - DAY_S)
    assert await forget_expired(rig.services) == [old]
    assert await redis.zrange(keys.WARNINGS_INDEX, 0, -1) == [kept]
    assert await forget_expired(rig.services) == []


@pytest.fixture
async def world_at_sample_time(aiohttp_client: Any, redis_server: Any, redis: Any, tmp_path: Path) -> World:
    from tests.fakes.channels import RecordingChannel
    from warning.web.app import create_app
    from warning.web.keys import Deps

    channels = {"sms": RecordingChannel("sms", "sms"), "voice": RecordingChannel("voice", "voice", max_batch=1)}
    app = create_app(make_settings(tmp_path), deps=Deps(clock=FakeClock(start=SAMPLE_TIME), redis_url=redis_server.url,
                                                        extra={"channels": channels, "background": False}))
    return World(await aiohttp_client(app), channels)


async def test_retention_days_come_from_the_configuration(make_rig: Any) -> None:
    rig = await make_rig(retention={"days": 2})
    await rig.seed([person(1, "510722100001")])
    resp = await rig.client.post("/api/v1/warnings", headers=auth("issuer"), json={
        "event": "rainstorm", "level": "blue", "headline": "暴雨蓝色预警", "areas": ["510722100001"],
        "expires": (rig.clock.now() + timedelta(hours=6)).isoformat()})
    wid = (await resp.json())["id"]
    await rig.pump(lambda: rig.settled(wid))
    mine = await of_warning(rig.services.redis, wid, await every_key(rig.services.redis))
    assert mine.pop(keys.reply_code_key((await resp.json())["reply_code"])) <= 7 * 3600  # the code: until its end
    assert len(mine) >= 8 and all(2 * DAY_S + 6 * 3600 - 60 <= t <= 2 * DAY_S + 6 * 3600 for t in mine.values()), mine


@pytest.mark.parametrize("value", [0, -3, 1.5, "400", True])
def test_retention_days_must_be_a_positive_whole_number(tmp_path: Path, value: object) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(None, env={}, overrides={"retention": {"days": value}})
    assert err.value.key == "retention.days"


def test_retention_days_default_and_environment() -> None:
    assert load_settings(None, env={}).retention.days == 400
    assert load_settings(None, env={"WARNING_RETENTION_DAYS": "30"}).retention.days == 30
    with pytest.raises(ConfigError) as err:
        load_settings(None, env={"WARNING_RETENTION_DAYS": "0"})
    assert err.value.key == "retention.days"
