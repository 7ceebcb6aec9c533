"""Message templates: golden outputs, exercise marker, cancel wording, reply codes, short forms, sandbox, TwiML."""

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
    assert r.text == ("【三台县应急管理局】暴雨红色预警：预计未来3小时三台县北部降雨量将达100毫米以上。"
                      "请立即转移至安全地点。回复1确认")
    assert (r.encoding, r.chars, r.parts, r.form, r.too_long) == ("ucs2", 58, 1, "long", False)


def test_sms_alert_english_golden() -> None:
    r = render("sms", ctx(lang="en", description="Over 100 mm of rain in 3 hours", instruction="Move to safety now"))
    assert r.text == ("【三台县应急管理局】Rainstorm red warning: Over 100 mm of rain in 3 hours. Move to safety now. "
                      "Reply 1 to confirm.")


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
@pytest.mark.parametrize("msg_type", ["alert", "update", "cancel"])
def test_exercise_marker_right_after_signature(lang: str, msg_type: str) -> None:
    text = render("sms", ctx(exercise=True, lang=lang, msg_type=msg_type)).text
    assert text.startswith("【三台县应急管理局】【演练】")
    assert "【演练】" not in render("sms", ctx(lang=lang, msg_type=msg_type)).text


@pytest.mark.parametrize("kind", ["voice", "escreen", "broadcast"])
def test_exercise_marked_on_every_channel(kind: str) -> None:
    text = render(kind, ctx(exercise=True)).text
    assert text.startswith(("【演练】", "这是演练。"))


def test_cancel_names_what_is_lifted_and_asks_no_reply() -> None:
    text = render("sms", ctx(msg_type="cancel", description="降雨已明显减弱")).text
    assert text == "【三台县应急管理局】三台县应急管理局解除芦溪镇、北坝镇暴雨红色预警。降雨已明显减弱。"
    assert "解除" in render("voice", ctx(msg_type="cancel")).text
    assert "CANCELLED" in render("sms", ctx(msg_type="cancel", lang="en")).text


def test_update_is_marked() -> None:
    assert "预警（更新）：" in render("sms", ctx(msg_type="update")).text


def test_reply_code_only_when_several_open() -> None:
    assert render("sms", CTX).text.endswith("回复1确认")
    assert "K7Q" not in render("sms", CTX).text
    assert render("sms", ctx(several_open=True)).text.endswith("回复1 K7Q确认")
    assert render("sms", ctx(several_open=True, lang="en")).text.endswith("Reply 1 K7Q to confirm.")


@pytest.mark.parametrize("level", ["red", "orange"])
def test_urgent_sms_uses_the_short_form_beyond_two_parts(level: str) -> None:
    long_description = "预计未来6小时三台县北部降雨量将达150毫米以上，山洪、滑坡、泥石流等地质灾害风险极高" * 3
    r = render("sms", ctx(level=level, description=long_description))
    assert r.form == "short" and r.parts <= 2 and not r.too_long
    assert r.text == f"【三台县应急管理局】芦溪镇、北坝镇暴雨{CTX.level_zh}预警：请立即转移至安全地点。回复1确认"


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
    assert r.text == "三台县应急管理局发布芦溪镇、北坝镇暴雨红色预警。请立即转移至安全地点。请按1确认收到。"
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
