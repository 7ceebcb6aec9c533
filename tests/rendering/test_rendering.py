"""Message templates: golden outputs, drill marks, cancel and update wording, reply hints, short forms, sandbox,
TwiML."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import jinja2
import pytest
from jinja2.sandbox import SecurityError

from warning.channel import GATHER_URL_SLOT
from warning.rendering import DEFAULT_TEMPLATES_DIR, MessageContext, Renderer, TemplateMissing, render
from warning.sms_text import measure

CTX = MessageContext(
    signature="【三台县应急管理局】", level="red", level_zh="红色", event_zh="暴雨", event_en="Rainstorm",
    headline="三台县气象台发布暴雨红色预警", description="预计未来3小时三台县北部降雨量将达100毫米以上",
    instruction="请立即转移至安全地点", area_names=("芦溪镇", "北坝镇"), msg_type="alert", exercise=False,
    reply_code="K7Q", several_open=False, issued_at="7月1日10时", issuer_name="三台县应急管理局",
)


def ctx(**kw: Any) -> MessageContext:
    return dataclasses.replace(CTX, **kw)


def test_sms_alert_golden() -> None:
    r = render("sms", CTX)
    assert r.text == ("【三台县应急管理局】三台县应急管理局7月1日10时发布芦溪镇、北坝镇暴雨红色预警："
                      "预计未来3小时三台县北部降雨量将达100毫米以上。请立即转移至安全地点。回复1确认")
    assert (r.encoding, r.chars, r.parts, r.form, r.too_long) == ("ucs2", 82, 2, "long", False)


def test_sms_alert_english_golden() -> None:
    r = render("sms", ctx(lang="en", description="Over 100 mm of rain in 3 hours", instruction="Move to safety now",
                          issued_at_en="1 Jul 10:00 (UTC+8)", level="yellow"))
    assert r.text == ("【三台县应急管理局】 三台县应急管理局 issued a Rainstorm yellow warning for 芦溪镇, 北坝镇 at 1 Jul 10:00 "
                      "(UTC+8): Over 100 mm of rain in 3 hours. Move to safety now. Reply 1 to confirm.")


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
@pytest.mark.parametrize("msg_type", ["alert", "update", "cancel"])
def test_exercise_marker_right_after_signature_and_no_other_bracket_pair(lang: str, msg_type: str) -> None:
    text = render("sms", ctx(exercise=True, lang=lang, msg_type=msg_type)).text
    assert text.startswith("【三台县应急管理局】（演练）" if lang == "zh-CN" else "【三台县应急管理局】(Exercise)")
    assert text.count("【") == text.count("】") == 1
    assert "演练" not in render("sms", ctx(lang=lang, msg_type=msg_type)).text


@pytest.mark.parametrize("msg_type", ["alert", "update", "cancel"])
@pytest.mark.parametrize("kind", ["voice", "broadcast"])
def test_a_drill_is_spoken_as_one_from_start_to_end(kind: str, msg_type: str) -> None:
    text = render(kind, ctx(exercise=True, msg_type=msg_type)).text
    assert text.startswith("演练") and text.endswith("演练结束。")
    assert "演练" not in render(kind, ctx(msg_type=msg_type)).text


def test_an_e_screen_marks_a_drill_first() -> None:
    assert render("escreen", ctx(exercise=True)).text.startswith("（演练）三台县应急管理局")


def test_cancel_says_what_by_whom_when_and_why_and_asks_no_reply() -> None:
    text = render("sms", ctx(msg_type="cancel", issued_at="12月1日18时", reason="降雨已明显减弱")).text
    assert text == ("【三台县应急管理局】三台县应急管理局12月1日18时解除芦溪镇、北坝镇暴雨红色预警。解除原因：降雨已明显减弱。"
                    "请继续关注天气变化。")
    assert CTX.description not in text and CTX.instruction not in text
    plain = render("sms", ctx(msg_type="cancel", met=False)).text
    assert plain.endswith("解除芦溪镇、北坝镇暴雨红色预警。危险已解除，请继续关注后续通知。")
    voice = render("voice", ctx(msg_type="cancel")).text
    assert "解除" in voice and "按1" not in voice
    assert "lifted" in render("sms", ctx(msg_type="cancel", lang="en")).text


@pytest.mark.parametrize(("change", "lead"), [
    ({"level_change": "up", "previous_level": "orange"}, "三台县应急管理局7月1日10时将芦溪镇、北坝镇暴雨橙色预警升级为红色预警："),
    ({"level_change": "down", "previous_level": "red", "level": "yellow", "level_zh": "黄色"},
     "三台县应急管理局7月1日10时将芦溪镇、北坝镇暴雨红色预警降级为黄色预警："),
    ({"area_change": "wider"}, "三台县应急管理局7月1日10时更新暴雨红色预警，范围扩大至芦溪镇、北坝镇："),
    ({"area_change": "narrower", "area_names": ("芦溪镇",)}, "三台县应急管理局7月1日10时更新暴雨红色预警，范围缩小为芦溪镇："),
    ({"area_change": "moved"}, "三台县应急管理局7月1日10时更新暴雨红色预警，范围调整为芦溪镇、北坝镇："),
    ({"level_change": "up", "previous_level": "orange", "area_change": "wider"},
     "三台县应急管理局7月1日10时将暴雨橙色预警升级为红色预警，范围扩大至芦溪镇、北坝镇："),
    ({}, "三台县应急管理局7月1日10时更新芦溪镇、北坝镇暴雨红色预警："),
])
def test_an_update_says_what_changed(change: dict[str, Any], lead: str) -> None:
    text = render("sms", ctx(msg_type="update", **change)).text
    assert text.startswith("【三台县应急管理局】" + lead), text
    assert render("voice", ctx(msg_type="update", **change)).text.startswith(lead[:-1] + "。")


def test_only_a_level_that_asks_for_confirmation_says_reply_1() -> None:
    assert "回复" not in render("sms", ctx(asks_ack=False)).text
    assert "按1" not in render("voice", ctx(asks_ack=False)).text
    assert "Reply" not in render("sms", ctx(asks_ack=False, lang="en")).text


def test_reply_code_only_when_several_open() -> None:
    assert render("sms", CTX).text.endswith("回复1确认")
    assert "K7Q" not in render("sms", CTX).text
    assert render("sms", ctx(several_open=True)).text.endswith("回复1 K7Q确认")
    assert render("sms", ctx(several_open=True, lang="en")).text.endswith("Reply 1 K7Q to confirm.")


@pytest.mark.parametrize("level", ["red", "orange"])
def test_urgent_sms_keeps_a_trimmed_description_beyond_two_parts(level: str) -> None:
    long_description = "预计未来6小时三台县北部降雨量将达150毫米以上，山洪、滑坡、泥石流等地质灾害风险极高。" * 3
    r = render("sms", ctx(level=level, description=long_description))
    assert r.form == "short" and r.parts <= 2 and not r.too_long
    assert r.text == (f"【三台县应急管理局】三台县应急管理局7月1日10时发布芦溪镇、北坝镇暴雨{CTX.level_zh}预警："
                      "预计未来6小时三台县北部降雨量将达150毫米以上，山洪、滑坡、泥石流等地质灾害风险极高。"
                      "请立即转移至安全地点。回复1确认")


def test_a_long_list_of_places_becomes_its_summary_in_the_short_form() -> None:
    many = tuple(f"{n}镇" for n in ("潼川", "芦溪", "石安", "富顺", "三元", "新德", "鲁班", "西平"))
    long_description = "预计未来6小时三台县北部降雨量将达150毫米以上，山洪、滑坡、泥石流等地质灾害风险极高。" * 3
    r = render("sms", ctx(area_names=many, area_summary="潼川镇等8个镇", description=long_description))
    assert r.form == "short" and r.parts <= 2 and "发布潼川镇等8个镇暴雨红色预警：" in r.text


def test_the_issuers_summary_replaces_the_description_in_sms_and_voice() -> None:
    r = render("sms", ctx(sms_summary="3小时内降雨将超100毫米"))
    assert "：3小时内降雨将超100毫米。请立即转移至安全地点。" in r.text and CTX.description not in r.text
    assert "3小时内降雨将超100毫米" in render("voice", ctx(sms_summary="3小时内降雨将超100毫米")).text
    assert CTX.description in render("escreen", ctx(sms_summary="3小时内降雨将超100毫米")).text


def test_yellow_sms_keeps_the_long_form() -> None:
    long_description = "预计未来6小时降雨量将达50毫米以上" * 6
    r = render("sms", ctx(level="yellow", level_zh="黄色", description=long_description))
    assert r.form == "long" and r.parts > 2 and long_description in r.text


def test_never_cut_when_even_the_short_form_is_too_long() -> None:
    instruction = "请沿河居民、地灾隐患点群众和在建工地人员立即转移至安全地点并听从村组干部指挥" * 3
    r = render("sms", ctx(description="很长" * 80, instruction=instruction))
    assert r.form == "short" and r.too_long and r.parts > 2
    assert instruction + "。" in r.text and r.text.endswith("回复1确认")  # whole, with the reply hint
    assert measure(r.text).parts == r.parts


def test_voice_script_and_twiml() -> None:
    r = render("voice", CTX)
    assert r.text == ("三台县应急管理局7月1日10时发布芦溪镇、北坝镇暴雨红色预警。预计未来3小时三台县北部降雨量将达100毫米以上。"
                      "请立即转移至安全地点。请按1确认收到。")
    twiml = r.meta["twiml"]
    assert GATHER_URL_SLOT in twiml
    root = ElementTree.fromstring(twiml.replace(GATHER_URL_SLOT, "https://x/hooks/twilio/gather?d=1").encode())
    says = root.findall("Gather/Say")
    assert len(says) == 2 and {s.text for s in says} == {r.text} and says[0].get("language") == "cmn-CN"


def test_twiml_escapes_markup_in_text() -> None:
    r = render("voice", ctx(instruction='不要相信<script>&"谣言"', area_names=("<b>镇",)))
    root = ElementTree.fromstring(r.meta["twiml"].replace(GATHER_URL_SLOT, "u").encode())
    said = root.find("Gather/Say")
    assert said is not None and '<script>&"谣言"' in (said.text or "") and "<b>镇" in (said.text or "")
    assert GATHER_URL_SLOT not in (said.text or "")


def test_a_headline_cannot_forge_the_gather_slot() -> None:
    r = render("voice", ctx(instruction=GATHER_URL_SLOT))
    assert r.meta["twiml"].count(GATHER_URL_SLOT) == 1  # only the attribute; the text one is escaped


def test_device_meta() -> None:
    r = render("escreen", CTX)
    assert r.meta["colour"] == "#E60012" and r.meta["level"] == "red"
    b = render("broadcast", CTX)
    assert b.meta["speak_text"] == b.text and b.text.startswith("各位村民请注意")


def test_english_falls_back_to_chinese_where_no_template() -> None:
    assert render("escreen", ctx(lang="en")).text == render("escreen", CTX).text


def write(tmp_path: Path, name: str, body: str) -> Renderer:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body, encoding="utf-8")
    return Renderer(tmp_path)


def test_missing_variable_fails_loudly(tmp_path: Path) -> None:
    r = write(tmp_path, "sms/alert.zh-CN.txt.j2", "{{ signature }}{{ no_such_thing }}")
    with pytest.raises(jinja2.UndefinedError):
        r.render("sms", CTX)


def test_sandbox_refuses_unsafe_attribute_access(tmp_path: Path) -> None:
    r = write(tmp_path, "sms/alert.zh-CN.txt.j2", "{{ signature.__class__.__mro__[1].__subclasses__() }}")
    with pytest.raises(SecurityError):
        r.render("sms", CTX)


def test_missing_template_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(TemplateMissing):
        Renderer(tmp_path).render("sms", CTX)


def test_unknown_message_type_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown message type"):
        render("sms", ctx(msg_type="drill"))


@pytest.mark.parametrize("path", sorted(p.relative_to(DEFAULT_TEMPLATES_DIR).as_posix()
                                        for p in DEFAULT_TEMPLATES_DIR.rglob("*.txt.j2")))
def test_every_template_renders(path: str) -> None:
    kind, name = path.split("/")
    msg_type, lang = name.split(".")[0], name.split(".")[1]
    text, _ = Renderer().text(kind, msg_type, ctx(lang=lang, msg_type=msg_type.replace("_short", "")))
    assert text and "{{" not in text and "\n" not in text
