"""Messages for a warning version: the rendering context built once, texts cached per (version, kind, language)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from warning.drafting import CN_TZ
from warning.record import WarningRecord
from warning.reference import EventType
from warning.rendering import MessageContext, Renderer
from warning.settings import Settings

MSG_TYPES = {"Alert": "alert", "Update": "update", "Cancel": "cancel"}


class MessageFactory:
    """Renders each (warning version, channel kind, language) once and serves the cached text after."""

    def __init__(self, settings: Settings, *, event_types: Mapping[str, EventType], max_cache: int = 512) -> None:
        self.issuer = settings.section("issuer")
        self.event_types = event_types
        self.renderer = Renderer(settings.templates_dir)
        self._cache: dict[tuple[str, int, str, str, bool], tuple[str, dict[str, str]]] = {}
        self.max_cache = max_cache
        self.open_warnings = 1  #: how many warnings are open; the reply code is shown when more than one is

    def context(self, record: WarningRecord, lang: str) -> MessageContext:
        content = record.content
        info = content.info
        et = self.event_types.get(content.event_type or "")
        event_zh = et.name_zh if et else (info.event if info else "")
        event_en = et.name_en if et else (info.event if info else "")
        return MessageContext(
            signature=str(self.issuer.get("signature", "")), level=record.level.value, level_zh=record.level.zh,
            event_zh=event_zh, event_en=event_en, headline=(info.headline if info else None) or "",
            description=(info.description if info else None) or "",
            instruction=(info.instruction if info else None) or "",
            area_names=tuple(a.desc for a in content.areas if a.desc),
            msg_type=MSG_TYPES.get(content.msg_type.value, "alert"), exercise=record.is_exercise,
            reply_code=record.reply_code, several_open=self.open_warnings > 1,
            issued_at=content.sent.astimezone(CN_TZ).strftime("%m月%d日%H:%M"),
            issuer_name=str(self.issuer.get("name", "")), lang=lang,
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
