"""The preview of a draft (发送前预览): who it reaches and the exact text of each channel in each language.

Nothing is written: the draft is checked with the lifecycle's own parsing, made into a transient record
(an id of its own, a placeholder reply code, no CAP serial drawn), its audience resolved by the
dispatcher's own targeting and its messages rendered by the workers' own MessageFactory.
"""

from __future__ import annotations

import secrets
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from warning.approval import update_waits
from warning.errors import BadRequest
from warning.lifecycle import WarningService
from warning.model import MsgType, WarningState
from warning.policy import Policy
from warning.record import WarningRecord
from warning.rendering import MAX_PARTS, MAX_PARTS_URGENT, URGENT_LEVELS
from warning.sms_text import measure
from warning.targeting import Recipient
from warning.warning_store import REPLY_CODE_LEN

#: stands for the reply code in a preview (drawn when the warning is stored); as long as a real one
PLACEHOLDER_CODE = "X" * REPLY_CODE_LEN
#: the identifier a preview's content carries (a real one is drawn from the day's serial when stored)
PLACEHOLDER_IDENTIFIER = "preview"
MSG_KINDS = {MsgType.ALERT: "alert", MsgType.UPDATE: "update", MsgType.CANCEL: "cancel"}


class Audience(Protocol):
    """The dispatcher's planning, read only."""

    async def audience(self, record: WarningRecord, previous: WarningRecord | None) -> list[Recipient]: ...


class Messages(Protocol):
    """The workers' renderer: one text per (version, channel kind, language)."""

    def render(self, record: WarningRecord, kind: str, lang: str) -> tuple[str, dict[str, str]]: ...


class Channels(Protocol):
    def channel_for(self, kind: str) -> str | None: ...


def sms_limit(level: str) -> int:
    """The most SMS parts a warning of `level` may take (red and orange must stay short)."""
    return MAX_PARTS_URGENT if level in URGENT_LEVELS else MAX_PARTS


def problem(code: str, message: str, *, severity: str = "warning", **more: Any) -> dict[str, Any]:
    """One thing the person should know before submitting; severity `error` means the submit is refused."""
    return {"code": code, "severity": severity, "message": message, **more}


@dataclass
class Previewer:
    """Answers POST /api/v1/warnings/preview and the workbench's previews."""

    lifecycle: WarningService
    dispatch: Audience
    messages: Messages
    routes: Channels
    policy: Policy

    async def of_body(self, body: Any, *, update_of: WarningRecord | None = None) -> dict[str, Any]:
        """The preview of a draft body (as POST /api/v1/warnings, or .../update of `update_of`, takes).

        A body that is not a JSON object is a 400; a draft with wrong fields is previewed as its problems.
        """
        if not isinstance(body, Mapping):
            raise BadRequest("invalid body", "expected a JSON object")
        now = self.lifecycle.clock.now()
        try:
            draft = self.lifecycle.parse(body, now)
        except BadRequest as exc:
            fields = exc.detail if isinstance(exc.detail, list) else [{"field": "", "error": str(exc.detail)}]
            return {"ok": False, "audience": None, "texts": [], "needs_approval": None,
                    "problems": [problem("invalid", str(p.get("error", "")), severity="error", field=p.get("field", ""))
                                 for p in fields]}
        msg_type = MsgType.UPDATE if update_of is not None else MsgType.ALERT
        content, expires = self.lifecycle.compose(draft, identifier=PLACEHOLDER_IDENTIFIER, now=now,
                                                  msg_type=msg_type)
        if update_of is not None:
            record = update_of.with_(version=update_of.version + 1, content=content, updated_at=now,
                                     expires_at=expires, roles=draft.roles, sites=draft.sites)
            waits = update_waits(self.policy, update_of, content, draft.roles, draft.sites)
        else:
            record = WarningRecord(id=_preview_id(), version=1, state=WarningState.DRAFT, content=content,
                                   origin="manual", created_at=now, updated_at=now, expires_at=expires,
                                   reply_code=PLACEHOLDER_CODE, roles=draft.roles, sites=draft.sites)
            waits = self.lifecycle.waits_for_approval(draft)
        extra = [] if draft.instruction else [problem("no_instruction", "没有防御指引：接收人不知道该做什么 no instruction: "
                                                                        "people are not told what to do")]
        doc = await self.of_record(record, previous=update_of if update_of and update_of.issued_version else None)
        doc["needs_approval"] = waits
        doc["problems"] = extra + doc["problems"]
        return doc

    async def of_record(self, record: WarningRecord, *, previous: WarningRecord | None = None) -> dict[str, Any]:
        """The audience and texts of a stored or transient version (previous: the version people have now)."""
        if previous is None and record.issued_version > 0 and record.version > record.issued_version:
            previous = record  # a pending update: whoever an earlier version reached gets it too
        recipients = await self.dispatch.audience(record, previous)
        routed = [r for r in recipients if self.routes.channel_for(r.kind) is not None]
        unrouted = Counter(r.kind for r in recipients if self.routes.channel_for(r.kind) is None)
        shown = record.with_(id=_preview_id(), reply_code=record.reply_code or PLACEHOLDER_CODE)
        texts = self._texts(shown, routed)
        problems = [problem("no_channel", f"没有配置{kind}渠道，{n}条消息发不出去 no channel of kind {kind} is "
                                          f"configured: {n} messages cannot go", kind=kind, messages=n)
                    for kind, n in sorted(unrouted.items())]
        people = {r.id for r in routed if not r.device}
        if not routed:
            problems.append(problem("empty_audience", "没有任何接收人：请检查区域和角色 nobody would receive it: check "
                                                      "the areas and roles"))
        limit = sms_limit(record.level.value)
        for t in texts:
            if t["channel"] == "sms" and t["segments"] > limit:
                problems.append(problem(
                    "sms_too_long", f"短信（{t['lang']}）需{t['segments']}条，超过{record.level.zh}预警的{limit}条上限，"
                                    f"请精简 the SMS ({t['lang']}) takes {t['segments']} parts, over the {limit} of a "
                                    f"{record.level.value} warning: shorten it", lang=t["lang"],
                    segments=t["segments"], limit=limit))
        return {"ok": True, "audience": _audience(routed, people), "texts": texts,
                "needs_approval": record.state is WarningState.PENDING_APPROVAL, "level": record.level.value,
                "sms_limit": limit, "problems": problems}

    def _texts(self, record: WarningRecord, routed: Sequence[Recipient]) -> list[dict[str, Any]]:
        langs: dict[str, set[str]] = {}
        for r in routed:
            langs.setdefault(r.kind, set()).add(r.lang or "zh-CN")
        if not langs:  # nobody yet: what the level's people would be sent
            for kind in self.policy.for_level(record.level.value).default_channels:
                langs[kind] = {"zh-CN"}
        out = []
        kind_of_msg = MSG_KINDS.get(record.msg_type, "alert")
        for kind in sorted(langs, key=_channel_order):
            for lang in sorted(langs[kind], key=lambda lg: (lg != "zh-CN", lg)):
                text, _ = self.messages.render(record, kind, lang)
                length = measure(text)
                out.append({"channel": kind, "kind": kind_of_msg, "lang": lang, "text": text,
                            "chars": length.chars if kind == "sms" else len(text),
                            "segments": length.parts if kind == "sms" else None})
        return out


def _channel_order(kind: str) -> tuple[int, str]:
    return ({"sms": 0, "voice": 1, "escreen": 2, "broadcast": 3}.get(kind, 9), kind)


def _preview_id() -> str:
    # its own id each time: rendered texts are cached per (id, version), and a preview must never be served for
    # the warning it becomes
    return f"preview-{secrets.token_hex(6)}"


def _audience(routed: Sequence[Recipient], people: set[str]) -> dict[str, Any]:
    by_role: Counter[str] = Counter()
    by_region: Counter[str] = Counter()
    seen: set[str] = set()
    for r in routed:
        if r.device or r.id in seen:
            continue
        seen.add(r.id)
        by_role[r.role] += 1
        by_region[r.region[:9] if len(r.region) >= 9 else r.region] += 1
    return {"people": len(people), "by_role": dict(sorted(by_role.items())),
            "by_region": dict(sorted(by_region.items())), "devices": len({r.id for r in routed if r.device}),
            "by_channel": dict(sorted(Counter(r.kind for r in routed).items(), key=lambda kv: _channel_order(kv[0])))}


def previewer_of(services: Any) -> Previewer:
    """The previewer on the app's services."""
    return Previewer(lifecycle=services.lifecycle, dispatch=services.dispatcher, messages=services.messages,
                     routes=services.dispatcher.routes, policy=services.policy)
