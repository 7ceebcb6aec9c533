"""Message rendering: sandboxed Jinja2 templates per channel kind × message type × language, SMS length rules.

Text templates (`{kind}/{msg_type}.{lang}.txt.j2`) render in a sandbox with autoescape off and
StrictUndefined; TwiML (`voice/gather.xml.j2`) in a sandbox with autoescape on. Each template line
is one piece of the message: lines are stripped and joined (with no space in Chinese, one space in
English), so templates stay readable and messages carry no stray whitespace.

SMS length: each level has its limit of parts (SMS_PART_LIMITS; red and orange 2). When the long form
of a red or orange SMS needs more, the same template is rendered again in its short form: the issuer's
`sms_summary` in place of the description, or else the description trimmed to its first sentences or
clauses (warning.wording.trimmed), the longest that fits. The instruction is never cut: if even the
shortest form is too long, it is sent whole and `too_long` is set and logged, because a warning that
arrives in three parts is better than one that lost its instruction.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment
from markupsafe import Markup

from warning.channel import GATHER_URL_SLOT, ChannelKind
from warning.sms_text import measure
from warning.wording import trimmed

logger = logging.getLogger(__name__)

DEFAULT_TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"
#: Red and orange SMS must fit in this many parts; the short form is used beyond it.
MAX_PARTS_URGENT = 2
#: Any SMS beyond this many parts is flagged too long (Kannel's max-messages; carriers drop longer ones).
MAX_PARTS = 10
URGENT_LEVELS = frozenset({"red", "orange"})
#: the most parts an SMS of each level may have
SMS_PART_LIMITS = {"red": MAX_PARTS_URGENT, "orange": MAX_PARTS_URGENT, "yellow": MAX_PARTS, "blue": MAX_PARTS}
LEVEL_COLOURS = {"red": "#E60012", "orange": "#FF8C00", "yellow": "#FFD400", "blue": "#1E6FD9"}
LEVEL_EN = {"red": "red", "orange": "orange", "yellow": "yellow", "blue": "blue"}
LEVEL_ZH = {"red": "红色", "orange": "橙色", "yellow": "黄色", "blue": "蓝色"}
#: <Say language> per message language (Twilio's Mandarin voices are cmn-CN).
SAY_LANGUAGE = {"zh-CN": "cmn-CN", "en": "en-US"}
MSG_TYPES = ("alert", "update", "cancel")
#: the longest list of area names said in full; a longer one is said as `area_summary` (潼川镇等5个镇)
MAX_AREA_CHARS = 15
#: voice scripts give the details in at most about this many characters
MAX_BRIEF_CHARS = 40


class TemplateMissing(LookupError):
    """No template for this channel kind, message type and language, nor any fallback."""


@dataclass(frozen=True, slots=True)
class MessageContext:
    """Everything a message template may use; built by the caller from the warning (no model import here)."""

    signature: str  # 【县应急管理局】
    level: str  # red | orange | yellow | blue
    level_zh: str  # 红色
    event_zh: str  # 暴雨
    event_en: str  # Rainstorm
    headline: str
    description: str
    instruction: str
    area_names: tuple[str, ...]  # 潼川镇, 芦溪镇白鹤村 (names, never codes)
    msg_type: str  # alert | update | cancel
    exercise: bool
    reply_code: str  # e.g. K7Q
    several_open: bool  # several warnings are open for this person: the reply hint names the code
    issued_at: str  # Beijing time as shown to people: 12月1日12时35分
    issuer_name: str  # who issued it: the feed's <senderName> (三台县气象台), else [issuer] name
    lang: str = "zh-CN"
    colour: str = ""  # #RRGGBB; empty: the level's default
    area_summary: str = ""  # 潼川镇等5个镇: said instead of the list when the list is long
    asks_ack: bool = True  # the level asks people to confirm (ack_deadline_s > 0)
    level_change: str = ""  # an update: up | down | ""
    previous_level: str = ""  # an update that changed the level: the level before (orange)
    area_change: str = ""  # an update: wider | narrower | moved | ""
    reason: str = ""  # a cancellation's reason, when one was given
    sms_summary: str = ""  # the issuer's own text for SMS, in place of the description
    met: bool = True  # a weather warning (CAP category Met): a cancellation says to keep watching the weather
    issued_at_en: str = ""  # 1 Dec 12:35 (UTC+8)
    #: the details an SMS gives when its short form is rendered (None: the description, or sms_summary)
    short_details: str | None = None

    def variables(self, written_in: str | None = None) -> dict[str, Any]:
        """The template namespace: the fields plus derived words, for a template written in `written_in` (default:
        the recipient's language; a fallback template keeps its own)."""
        out = asdict(self)
        zh = (written_in or self.lang).startswith("zh")
        out["colour"] = self.colour or LEVEL_COLOURS.get(self.level, "#E60012")
        out["level_en"] = LEVEL_EN.get(self.level, self.level)
        out["previous_level_zh"] = LEVEL_ZH.get(self.previous_level, "")
        out["previous_level_en"] = LEVEL_EN.get(self.previous_level, self.previous_level)
        listed = ("、" if zh else ", ").join(self.area_names)
        out["areas"] = self.area_summary if self.area_summary and len(listed) > MAX_AREA_CHARS else listed
        details = self.details()
        out["details"] = details
        out["sms_details"] = self.short_details if self.short_details is not None else (self.sms_summary or details)
        out["brief"] = self.brief()
        return out

    def brief(self) -> str:
        """The details as a voice script says them: the issuer's summary, or the description's first sentences
        that fit in MAX_BRIEF_CHARS."""
        if self.sms_summary:
            return self.sms_summary
        details = self.details()
        if len(details) <= MAX_BRIEF_CHARS:
            return details
        return next((t for t in trimmed(details) if len(t) <= MAX_BRIEF_CHARS), "")

    def details(self) -> str:
        """What is happening: the description, else the headline unless it only names the warning again."""
        if self.description.strip():
            return self.description.strip()
        headline = self.headline.strip()
        restates = "预警" in headline and self.event_zh in headline or "warning" in headline.casefold()
        return "" if restates else headline


@dataclass(frozen=True, slots=True)
class Rendered:
    """A rendered message: its text, SMS length facts, and extra parts for Outbound.meta."""

    text: str
    parts: int
    encoding: str  # gsm7 | ucs2
    chars: int
    too_long: bool = False
    form: str = "long"  # long | short
    template: str = ""
    meta: dict[str, str] = field(default_factory=dict)


def _sentence(value: Any) -> str:
    """End a piece of text with a full stop unless it already ends with punctuation."""
    text = str(value).strip()
    if not text or text[-1] in "。！？!?.；;…":
        return text
    return text + ("。" if any(ord(c) > 0x2E80 for c in text) else ".")


def _environment(templates_dir: Path, *, markup: bool) -> SandboxedEnvironment:
    env = SandboxedEnvironment(loader=jinja2.FileSystemLoader(str(templates_dir)), undefined=jinja2.StrictUndefined,
                               autoescape=markup, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=False)
    env.filters["sentence"] = _sentence
    return env


def _join(text: str, lang: str) -> str:
    pieces = [line.strip() for line in text.splitlines() if line.strip()]
    return ("" if lang.startswith("zh") else " ").join(pieces)


class Renderer:
    """Renders messages from one templates directory; pure apart from reading template files."""

    def __init__(self, templates_dir: Path | str = DEFAULT_TEMPLATES_DIR) -> None:
        self.templates_dir = Path(templates_dir)
        self.text_env = _environment(self.templates_dir, markup=False)
        self.markup_env = _environment(self.templates_dir, markup=True)

    def _pick(self, kind: str, name: str, lang: str) -> jinja2.Template:
        """The first existing template of: exact, the alert form for an update, the Chinese one."""
        candidates = [f"{kind}/{name}.{lang}.txt.j2"]
        if name.startswith("update"):
            candidates.append(f"{kind}/{name.replace('update', 'alert')}.{lang}.txt.j2")
        if lang != "zh-CN":
            candidates += [c.replace(f".{lang}.", ".zh-CN.") for c in candidates]
        try:
            return self.text_env.select_template(candidates)
        except jinja2.TemplatesNotFound:
            raise TemplateMissing(f"no template among {candidates}") from None

    def text(self, kind: str, name: str, ctx: MessageContext) -> tuple[str, str]:
        """(rendered text, template name) for one template of `kind`."""
        template = self._pick(kind, name, ctx.lang)
        written_in = "zh" if ".zh" in str(template.name) else ctx.lang  # a fallback template keeps its own joining
        return _join(template.render(ctx.variables(written_in)), written_in), str(template.name)

    def render(self, kind: ChannelKind | str, ctx: MessageContext) -> Rendered:
        """The message for one channel kind and context."""
        kind = ChannelKind(kind)
        if ctx.msg_type not in MSG_TYPES:
            raise ValueError(f"unknown message type {ctx.msg_type!r}; expected one of {', '.join(MSG_TYPES)}")
        if kind is ChannelKind.SMS:
            return self._sms(ctx)
        text, name = self.text(kind.value, ctx.msg_type, ctx)
        length = measure(text)
        meta = {"level": ctx.level, "colour": ctx.variables()["colour"], "msg_type": ctx.msg_type,
                "exercise": "1" if ctx.exercise else "0"}
        if kind is ChannelKind.VOICE:
            meta["twiml"] = self.twiml(text, ctx.lang)
        if kind is ChannelKind.BROADCAST:
            meta["speak_text"] = text
        return Rendered(text, length.parts, length.encoding, length.chars, template=name, meta=meta)

    def _sms(self, ctx: MessageContext) -> Rendered:
        text, name = self.text("sms", ctx.msg_type, ctx)
        length = measure(text)
        form = "long"
        limit = sms_part_limit(ctx.level)
        if ctx.level in URGENT_LEVELS and length.parts > limit:
            for shorter in _shorter(ctx):
                text, name = self.text("sms", ctx.msg_type, shorter)
                length, form = measure(text), "short"
                if length.parts <= limit:
                    break
        too_long = length.parts > limit
        if too_long:
            logger.warning("SMS for %s %s is %d parts (limit %d); sent whole, not cut", ctx.level, ctx.msg_type,
                           length.parts, limit)
        meta = {"level": ctx.level, "colour": ctx.variables()["colour"], "msg_type": ctx.msg_type}
        return Rendered(text, length.parts, length.encoding, length.chars, too_long, form, name, meta)

    def twiml(self, script: str, lang: str, *, repeat: int = 2) -> str:
        """TwiML reading `script` `repeat` times in a one-digit Gather; the Gather URL is a slot the adapter fills."""
        template = self.markup_env.get_template("voice/gather.xml.j2")
        say = SAY_LANGUAGE.get(lang, "cmn-CN" if lang.startswith("zh") else "en-US")
        return _join(template.render(script=script, say_language=say, repeat=repeat,
                                     gather_url=Markup(GATHER_URL_SLOT)), "zh")


def sms_part_limit(level: str) -> int:
    """The most parts an SMS of `level` may have (SMS_PART_LIMITS)."""
    return SMS_PART_LIMITS.get(level, MAX_PARTS)


def _shorter(ctx: MessageContext) -> list[MessageContext]:
    """Shorter forms of an SMS, longest first: the list of places as its summary, then the details (or a
    cancellation's reason) trimmed to fewer sentences and clauses, then without them. The instruction stays."""
    base = replace(ctx, area_names=(ctx.area_summary,)) if ctx.area_summary else ctx
    if ctx.msg_type == "cancel":
        return [base, *(replace(base, reason=r) for r in trimmed(ctx.reason)), replace(base, reason="")]
    if ctx.sms_summary:
        return [base]  # the issuer's own summary is never cut
    return [base, *(replace(base, short_details=d) for d in trimmed(ctx.details())), replace(base, short_details="")]


@lru_cache(maxsize=8)
def renderer_for(templates_dir: Path | str = DEFAULT_TEMPLATES_DIR) -> Renderer:
    """One Renderer per templates directory (environments cache compiled templates)."""
    return Renderer(templates_dir)


def render(kind: ChannelKind | str, ctx: MessageContext, *, templates_dir: Path | str = DEFAULT_TEMPLATES_DIR) -> Rendered:
    """The message for one channel kind and context, from `templates_dir`."""
    return renderer_for(templates_dir).render(kind, ctx)
