"""Property: for any warning, parse_cap(emit_cap(w)) is w (CAP content; level and event type derived again).

Generated warnings are in the normal form the parser produces: text trimmed and free of characters XML
1.0 cannot carry, of CR, and of invisible and bidi-control characters (and of line breaks in the one-line
fields people are shown: event, headline, senderName, areaDesc), severities as CAP words, times to the
second and within 1970–2099, region codes derived from the region geocodes. Times are generated in several
offsets and compare equal as instants.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from warning.cap import parse_cap
from warning.cap_emit import emit_cap
from warning.model import (
    CATEGORIES,
    CERTAINTIES,
    RESPONSE_TYPES,
    SEVERITIES,
    URGENCIES,
    Area,
    Circle,
    EarlyWarning,
    Info,
    Level,
    MsgType,
    Reference,
    Resource,
    Scope,
    Status,
    choose_info,
)

SPECIAL = list("<&>\"'\n\t 暴雨红色预警解除演练村镇")
TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Cf", "Cn", "Co", "Zl", "Zp"),
                           blacklist_characters="\ufffe\uffff")
    | st.sampled_from(SPECIAL), min_size=1, max_size=24,
).map(str.strip).filter(bool)
OPT_TEXT = st.none() | TEXT
LINE = TEXT.map(lambda t: " ".join(t.split("\n")).replace("\t", " ").strip()).filter(bool)
OPT_LINE = st.none() | LINE
IDENT = st.text(alphabet="abcdefXYZ0123456789_-.:@", min_size=1, max_size=20)
OFFSETS = st.sampled_from([UTC, timezone(timedelta(hours=8)), timezone(timedelta(hours=-5)),
                           timezone(timedelta(hours=5, minutes=45))])
TIMES = st.builds(lambda naive, tz: naive.replace(tzinfo=tz),
                  st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2099, 12, 30)).map(
                      lambda d: d.replace(microsecond=0)), OFFSETS)
OPT_TIME = st.none() | TIMES
LAT = st.floats(min_value=-90, max_value=90, allow_nan=False)
LON = st.floats(min_value=-180, max_value=180, allow_nan=False)
PAIRS = st.lists(st.tuples(TEXT, TEXT), max_size=3).map(tuple)


def _canonical_code(digits: str) -> str:
    """6 digits; or 9 or 12 whose last three are not all zero (padded codes are shortened by the parser)."""
    return digits if len(digits) == 6 or not digits.endswith("000") else digits[:-3] + "001"


REGION = st.sampled_from([6, 9, 12]).flatmap(lambda n: st.text("0123456789", min_size=n, max_size=n)).map(
    _canonical_code)
OTHER_GEOCODE = st.tuples(st.sampled_from(["SAME", "UGC", "EMMA_ID", "FIPS6"]), TEXT)
REGION_GEOCODE = st.tuples(st.sampled_from(["GB2260", "ADCODE", "行政区划代码"]), REGION)


@st.composite
def areas(draw: st.DrawFn) -> Area:
    rings = draw(st.lists(st.lists(st.tuples(LAT, LON), min_size=3, max_size=6), max_size=2))
    geocodes = tuple(draw(st.lists(OTHER_GEOCODE | REGION_GEOCODE, max_size=4)))
    codes = tuple(dict.fromkeys(v for k, v in geocodes if k in ("GB2260", "ADCODE", "行政区划代码")))
    altitude = draw(st.none() | st.floats(-500, 9000, allow_nan=False))
    ceiling = draw(st.floats(-500, 20000, allow_nan=False)) if altitude is not None and draw(st.booleans()) else None
    return Area(
        desc=draw(LINE), polygons=tuple((*ring, ring[0]) for ring in map(tuple, rings)),
        circles=tuple(draw(st.lists(st.builds(Circle, LAT, LON, st.floats(0, 500, allow_nan=False)), max_size=2))),
        geocodes=geocodes, region_codes=codes, altitude=altitude, ceiling=ceiling,
    )


RESOURCES = st.builds(Resource, TEXT, st.sampled_from(["image/png", "audio/mpeg", "text/plain"]),
                      st.none() | st.integers(0, 10**9), OPT_TEXT, st.none(), OPT_TEXT)
INFOS = st.builds(
    Info, language=st.sampled_from(["zh-CN", "zh-TW", "en-US", "es-US", "de-DE"]),
    categories=st.lists(st.sampled_from(CATEGORIES), min_size=1, max_size=3).map(tuple), event=LINE,
    urgency=st.sampled_from(URGENCIES), severity=st.sampled_from(SEVERITIES), certainty=st.sampled_from(CERTAINTIES),
    response_types=st.lists(st.sampled_from(RESPONSE_TYPES), max_size=2).map(tuple), audience=OPT_TEXT,
    event_codes=PAIRS, effective=OPT_TIME, onset=OPT_TIME, expires=OPT_TIME, sender_name=OPT_LINE,
    headline=OPT_LINE, description=OPT_TEXT, instruction=OPT_TEXT, web=OPT_TEXT, contact=OPT_TEXT,
    parameters=PAIRS, areas=st.lists(areas(), max_size=3).map(tuple), resources=st.lists(RESOURCES, max_size=1).map(tuple),
)


@st.composite
def warnings(draw: st.DrawFn) -> EarlyWarning:
    scope = draw(st.sampled_from(Scope))
    return EarlyWarning(
        identifier=draw(IDENT), sender=draw(IDENT), sent=draw(TIMES), status=draw(st.sampled_from(Status)),
        msg_type=draw(st.sampled_from(MsgType)), scope=scope, infos=tuple(draw(st.lists(INFOS, max_size=3))),
        source=draw(OPT_TEXT), restriction=draw(TEXT if scope is Scope.RESTRICTED else OPT_TEXT),
        addresses=draw(TEXT if scope is Scope.PRIVATE else OPT_TEXT),
        codes=tuple(draw(st.lists(TEXT, max_size=2))), note=draw(OPT_TEXT),
        references=tuple(draw(st.lists(st.builds(Reference, IDENT, IDENT, TIMES), max_size=3))),
        incidents=draw(OPT_TEXT),
    )


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(warnings())
def test_emit_then_parse_is_the_identity(w: EarlyWarning) -> None:
    back = parse_cap(emit_cap(w), event_types={})
    assert back.with_(level=None) == w
    chosen = choose_info(w.infos)
    assert back.level == (Level.from_severity(chosen.severity) if chosen else None)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(warnings())
def test_json_form_round_trips(w: EarlyWarning) -> None:
    assert EarlyWarning.from_json(json.loads(json.dumps(w.to_json()))) == w
