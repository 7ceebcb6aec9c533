"""Messages for a warning version: the rendering context built once, texts cached per (version, kind, language);
and the sentences other messages share (the warning's title in notices and auto-replies, the signature)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from warning.issuer import Issuer, load_issuer
from warning.model import EarlyWarning, Info
from warning.places import Places
from warning.policy import Policy
from warning.record import WarningRecord
from warning.reference import EventType
from warning.rendering import MessageContext, Renderer
from warning.settings import Settings
from warning.wording import CHANGE_PARAM, SUMMARY_PARAM, Change, en_time, param, zh_time

MSG_TYPES = {"Alert": "alert", "Update": "update", "Cancel": "cancel"}
#: a drill's mark, right after the signature of every SMS (the signature is the only 【】 pair)
DRILL_MARK = "（演练）"
_CJK = re.compile(r"[\u3400-\u9fff]")
_LATIN = re.compile(r"[A-Za-z]")
_CODE = re.compile(r"\d{6}")
_EVENT_TAIL = re.compile(r"(红色|橙色|黄色|蓝色)?(预警信号|预警)$")


def _event_zh(info: Info | None) -> str:
    """A feed's own event name when no event type matched: 暴雨 of 暴雨红色预警; "" when it is not Chinese."""
    event = (info.event if info else "").strip()
    return _EVENT_TAIL.sub("", event) if _CJK.search(event) else ""


class MessageFactory:
    """Renders each (warning version, channel kind, language) once and serves the cached text after."""

    def __init__(self, settings: Settings, *, event_types: Mapping[str, EventType], policy: Policy | None = None,
                 places: Places | None = None, max_cache: int = 512) -> None:
        self.issuer: Issuer = load_issuer(settings)
        self.event_types = event_types
        self.policy = policy
        self.places = places or Places({})
        self.renderer = Renderer(settings.templates_dir)
        self._cache: dict[tuple[str, int, str, str, bool], tuple[str, dict[str, str]]] = {}
        self.max_cache = max_cache
        self.open_warnings = 1  #: how many warnings are open; the reply code is shown when more than one is

    # ---- what every message says of the warning ----------------------------------------------------
    def issuer_name(self, content: EarlyWarning, lang: str = "zh-CN") -> str:
        """Who issued it: the CAP <senderName> (a relayed feed's 三台县气象台), else the office's own name. A
        name in Latin letters is not read to a Chinese recipient: the office that relays it is named instead."""
        info = content.info
        name = (info.sender_name if info else None) or ""
        if not name.strip() or (lang.startswith("zh") and _LATIN.search(name) and not _CJK.search(name)):
            return self.issuer.name
        return name.strip()

    def area_names(self, content: EarlyWarning) -> tuple[tuple[str, ...], str]:
        """(every place by name, the short form for a long list): names from the region tree; where it knows
        none, the CAP <areaDesc>s that are names (never a code)."""
        codes = content.region_codes
        names = self.places.names(codes) if codes else []
        if names:
            return tuple(names), self.places.describe(codes)
        descs = tuple(dict.fromkeys(a.desc.strip() for a in content.areas
                                    if a.desc.strip() and not _CODE.search(a.desc)))
        summary = f"{descs[0]}等{len(descs)}地" if len(descs) > 1 else ""
        return descs, summary

    def event_names(self, record: WarningRecord) -> tuple[str, str]:
        """(Chinese, English) name of the event."""
        info = record.content.info
        et = self.event_types.get(record.content.event_type or "")
        if et is not None:
            return et.name_zh, et.name_en
        return _event_zh(info), (info.event if info else "")

    def title(self, record: WarningRecord) -> str:
        """The warning as people name it: 潼川镇暴雨红色预警."""
        names, summary = self.area_names(record.content)
        listed = "、".join(names)
        areas = summary if summary and len(listed) > len(summary) else listed
        return f"{areas}{self.event_names(record)[0]}{record.level.zh}预警"

    def described(self, record: WarningRecord) -> str:
        """Which warning, for a notice: 三台县气象台12月1日12时35分发布的潼川镇暴雨红色预警."""
        return f"{self.issuer_name(record.content)}{zh_time(record.content.sent)}发布的{self.title(record)}"

    def signed(self, body: str, *, exercise: bool = False) -> str:
        """An SMS of ours: the signature first, a drill's mark right after it, then `body`."""
        return f"{self.issuer.signature}{DRILL_MARK if exercise else ''}{body}"

    def asks_ack(self, record: WarningRecord) -> bool:
        """Whether this version asks people to confirm (its level's ack_deadline_s > 0; never a cancellation)."""
        if record.msg_type.value == "Cancel":
            return False
        return self.policy is None or self.policy.for_level(record.level.value).ack_deadline_s > 0

    # ---- rendering ------------------------------------------------------------------------------
    def context(self, record: WarningRecord, lang: str) -> MessageContext:
        content = record.content
        info = content.info
        event_zh, event_en = self.event_names(record)
        names, summary = self.area_names(content)
        msg_type = MSG_TYPES.get(content.msg_type.value, "alert")
        change = Change.decode(param(info, CHANGE_PARAM)) if msg_type == "update" else Change()
        return MessageContext(
            signature=self.issuer.signature, level=record.level.value, level_zh=record.level.zh,
            event_zh=event_zh, event_en=event_en, headline=(info.headline if info else None) or "",
            description=(info.description if info else None) or "",
            instruction=(info.instruction if info else None) or "",
            area_names=names, msg_type=msg_type, exercise=record.is_exercise,
            reply_code=record.reply_code, several_open=self.open_warnings > 1,
            issued_at=zh_time(content.sent), issuer_name=self.issuer_name(content, lang), lang=lang,
            area_summary=summary, asks_ack=self.asks_ack(record), level_change=change.level,
            previous_level=change.previous_level, area_change=change.area if names else "",
            reason=(content.note or "") if msg_type == "cancel" else "", sms_summary=param(info, SUMMARY_PARAM),
            met=bool(info and "Met" in info.categories), issued_at_en=en_time(content.sent),
        )

    def render(self, record: WarningRecord, kind: str, lang: str) -> tuple[str, dict[str, str]]:
        """The text (and channel metadata) for one channel kind and language; rendered once per version."""
        several = self.open_warnings > 1
        key = (record.id, record.version, kind, lang, several)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        rendered = self.renderer.render(kind, self.context(record, lang))
        meta: dict[str, Any] = {"level": record.level.value, "msg_type": MSG_TYPES.get(record.msg_type.value, "alert"),
                                "exercise": "1" if record.is_exercise else ""}
        meta.update(getattr(rendered, "meta", {}) or {})
        out = (rendered.text, {k: str(v) for k, v in meta.items()})
        if len(self._cache) >= self.max_cache:
            self._cache.pop(next(iter(self._cache)))
        self._cache[key] = out
        return out
