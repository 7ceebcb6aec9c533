"""The demo county's registry: generated people, devices and hazard sites across 三台县's villages."""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import date, datetime, time, timedelta

from contacts.duty import DutyEntry
from contacts.model import DEFAULT_CHANNELS, Contact, Device, HazardSite, Location
from contacts.regions import RegionTree
from contacts.store import RedisRegistry

SURNAMES = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗梁宋郑谢韩唐冯于董程曹袁邓许傅沈曾彭吕苏卢蒋蔡贾丁魏薛叶余潘杜戴夏钟汪田任姜范方石姚谭廖邹熊金陆郝孔白崔康毛邱秦江史顾侯邵孟龙万段钱汤尹黎易常武乔贺赖龚文"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰建国志红梅兵林波辉鹏飞云春燕德福贵文荣"
#: mobile prefixes of the generated numbers; the leading zeros after them keep them in one recognisable range
PREFIXES = ("138", "139", "150", "151", "158", "159", "187", "188")
#: share of each role among generated people (village-level roles dominate, as in a real county)
ROLE_WEIGHTS = {"village_monitor": 34, "grid_informant": 20, "village_committee": 15, "cadre": 10, "monitor": 8,
                "hazard_monitor": 8, "enterprise_head": 5, "reservoir_keeper": 4, "duty_officer": 4,
                "village_liaison_cadre": 4, "weather_informant": 3, "broadcast_admin": 3, "flash_flood_monitor": 3,
                "shelter_manager": 2, "school_head": 2, "forest_ranger": 2, "hospital_head": 1, "care_home_head": 1,
                "scenic_spot_head": 1, "construction_site_head": 1, "reservoir_admin_head": 1,
                "reservoir_tech_head": 1, "reservoir_patrol_head": 1}
#: who keeps each demo hazard site: the reservoir's keeper and its three responsible persons, the slope's monitor
SITE_ROLES = {"reservoir": ("reservoir_keeper", "reservoir_admin_head", "reservoir_tech_head", "reservoir_patrol_head"),
              "landslide": ("hazard_monitor",)}
#: roles registered at the township office rather than in a village
TOWNSHIP_ROLES = ("cadre", "duty_officer")
#: positions (职务) the demo hands out: by role, and to the first and second cadre of each township (主要负责人,
#: 分管负责人) and the first village committee member of each village (村（社区）负责人)
ROLE_POSITIONS = {"village_liaison_cadre": "village_liaison_cadre", "duty_officer": "duty_officer",
                  "grid_informant": "grid_worker"}
CENTRE = (31.09, 105.09)  # 三台县, roughly


def demo_phone(i: int) -> str:
    """The i-th generated number, e.g. `+8613800000001` (unique for any i below 8 × 10^8)."""
    return f"+86{PREFIXES[i % len(PREFIXES)]}{i // len(PREFIXES) + 1:08d}"


def _place(code: str) -> Location:
    rnd = random.Random(code)  # the same village lies in the same place every run
    return Location(round(CENTRE[0] + rnd.uniform(-0.15, 0.15), 5), round(CENTRE[1] + rnd.uniform(-0.15, 0.15), 5))


def _near(loc: Location, rnd: random.Random) -> Location:
    return Location(round(loc.lat + rnd.uniform(-0.01, 0.01), 6), round(loc.lon + rnd.uniform(-0.01, 0.01), 6))


def demo_contacts(regions: RegionTree, n: int, roles: Sequence[str], county: str = "510722",
                  seed: int = 2026) -> list[Contact]:
    """n generated people: Chinese names, numbers from `demo_phone`, roles by ROLE_WEIGHTS."""
    rnd = random.Random(seed)
    villages = regions.leaves(county) or [county]
    weights = {r: w for r, w in ROLE_WEIGHTS.items() if r in roles} or {r: 1 for r in roles}
    keys, shares = list(weights), list(weights.values())
    out = []
    for i in range(n):
        role = rnd.choices(keys, shares)[0]
        village = rnd.choice(villages)
        region = village[:9] if role in TOWNSHIP_ROLES and len(village) == 12 else village
        name = rnd.choice(SURNAMES) + "".join(rnd.choice(GIVEN) for _ in range(rnd.choice((1, 2))))
        out.append(Contact(id="", name=name, phone=demo_phone(i), phone_kind="mobile", role=role, region=region,
                           location=_near(_place(village), rnd), channels=DEFAULT_CHANNELS["mobile"]))
    return out


def with_positions(people: Sequence[Contact], positions: Sequence[str]) -> list[Contact]:
    """The demo's positions (ROLE_POSITIONS, each township's first two cadres, each village's first committee
    member), where the configuration has them."""
    known = set(positions)
    seen: dict[tuple[str, str], int] = {}
    out = []
    for c in people:
        place = c.region[:9] if c.role == "cadre" else c.region
        nth = seen[(c.role, place)] = seen.get((c.role, place), 0) + 1
        position = ROLE_POSITIONS.get(c.role, "none")
        if c.role == "cadre" and nth <= 2:
            position = ("principal", "deputy")[nth - 1]
        elif c.role == "village_committee" and nth == 1 and len(c.region) == 12:
            position = "village_head"
        out.append(c.with_changes(position=position) if position in known else c)
    return out


async def seed_demo(registry: RedisRegistry, regions: RegionTree, n: int, *, now: datetime,
                    roles: Sequence[str], county: str = "510722", positions: Sequence[str] = ()) -> dict[str, int]:
    """Write the demo registry (idempotent: people by phone, devices and sites by fixed id)."""
    people = with_positions(demo_contacts(regions, n, roles, county), positions)
    cadres = [c for c in people if c.role == "cadre"]
    first = await registry.upsert_contacts(cadres, now)
    cadre_of = {c.region[:9]: r.id for c, r in zip(cadres, first, strict=True)}
    others = [c.with_changes(supervisor=cadre_of.get(c.region[:9])) for c in people if c.role != "cadre"]
    written = await registry.upsert_contacts(others, now)
    ids = {c.phone: r.id for c, r in zip(others, written, strict=True)}
    devices = 0
    for town in regions.children(county):
        loc = _place(town.code)
        for kind, address in (("escreen", f"http://escreen.demo.invalid/{town.code}"),
                              ("broadcast", f"mqtt://broker.demo.invalid/santai/{town.code}/speaker")):
            device = Device(id=f"d{kind[:2]}{town.code}", name=f"{town.name}{'电子屏' if kind == 'escreen' else '应急广播'}",
                            kind=kind, region=town.code, address=address, location=loc,
                            token=f"demo-{kind}-{town.code}-token")
            if await registry.device(device.id) is None:
                await registry.put_device(device, now, create=True)
                devices += 1
    sites = 0
    for sid, name, kind, town_name in (("sreservoir01", "鲁班水库", "reservoir", "鲁班镇"),
                                       ("slandslide01", "牛头山滑坡隐患点", "landslide", "潼川镇")):
        codes = [r.code for r in regions.find(town_name)] or [county]
        per_role = 3 if len(SITE_ROLES[kind]) == 1 else 1  # three monitors of a slope; one of each for a reservoir
        keepers: list[Contact] = []
        for role in SITE_ROLES[kind]:
            here = [c for c in others if c.role == role and c.region.startswith(codes[0])]
            keepers += (here or [c for c in others if c.role == role])[:per_role]
        where = keepers[0].location if keepers else Location(*CENTRE)
        region = keepers[0].region if keepers else county
        site = HazardSite(id=sid, name=name, kind=kind, region=region, location=where,
                          contacts=tuple(ids[c.phone] for c in keepers))
        if await registry.site(sid) is None:
            await registry.put_site(site, now, create=True)
            sites += 1
    return {"contacts": len(people), "devices": devices, "sites": sites}


#: the demo roster's two shifts a day (Beijing time): day and night
DEMO_SHIFTS = ((time(8, 0), time(20, 0)), (time(20, 0), time(8, 0)))


def demo_roster(county: str, towns: Sequence[str], officers: Sequence[Contact], leaders: Sequence[Contact],
                first: date, days: int) -> list[DutyEntry]:
    """Two shifts a day for the county and each township. The 值班员 take turns: the place's duty officers, then its
    cadres (a township rarely has two registered duty officers); the 带班领导 is one of its cadres, a day each, never
    the officer of the same shift (a county cadre when the place has no other). The county draws on everyone."""
    out: list[DutyEntry] = []
    for region in (county, *towns):
        heads = [c for c in leaders if c.region.startswith(region)] or list(leaders)
        pool = [c for c in officers if c.region.startswith(region)] + [c for c in heads if c not in officers]
        if not pool:
            continue
        for d in range(days):
            for n, (start, end) in enumerate(DEMO_SHIFTS):
                # each day moves everyone on by one; the night shift is half the pool ahead of the day's
                officer = pool[(d + n * ((len(pool) + 1) // 2)) % len(pool)]
                others = ([h for h in heads if h.id != officer.id]
                          or [h for h in leaders if h.id != officer.id])  # the county's, when the place has no other
                head = others[d % len(others)] if others else None
                out.append(DutyEntry(region, first + timedelta(days=d), start, end, contact_id=officer.id,
                                     name=officer.name, leader=head.name if head else "",
                                     leader_phone=head.phone if head else ""))
    return out
