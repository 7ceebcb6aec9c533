"""Structured logs: one JSON object a line (or readable text on a terminal), with the request id,
and never a whole phone number or a token."""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")

# Digit runs that look like phone numbers (E.164, 0086-prefixed, bare mainland mobiles, landlines
# with area codes): keep the first 3 and the last 4 digits, mask the middle. Bare 6/9/12-digit
# administrative division codes are left alone. The boundaries are ASCII: a number written right after
# Chinese text (联系13800138000) is masked too, one inside an identifier (c13800138000x) is not.
_PHONE_RE = re.compile(r"(?<![0-9A-Za-z_])(\+?\d[\d\- ]{8,17}\d)(?![0-9A-Za-z_])")
_BEARER_RE = re.compile(r"(?i)(bearer\s+)[^\s\"',]+")
_SECRET_KV_RE = re.compile(r"(?i)((?:token|password|passwd|auth_token|secret|signature)[\"']?\s*[=:]\s*[\"']?)[^\s\"'&,]+")
_secrets: set[str] = set()


def register_secret(value: str) -> None:
    """Make sure a configured secret (API token, provider password) never reaches a log line."""
    if value and len(value) >= 6:
        _secrets.add(value)


def _mask_digits(match: re.Match[str]) -> str:
    raw = match.group(1)
    digits = re.sub(r"\D", "", raw)
    separated = raw.startswith("+") or not raw.isdigit()
    looks_like_phone = (
        (separated and len(digits) >= 10)
        or (len(digits) == 11 and digits.startswith("1"))
        or (digits.startswith("0") and len(digits) >= 10)
        or (digits.startswith("86") and len(digits) == 13)
    )
    if not looks_like_phone:
        return raw
    prefix = "+" if raw.startswith("+") else ""
    return f"{prefix}{digits[:3]}****{digits[-4:]}"


def redact(text: str) -> str:
    """Mask phone numbers and secrets in free text."""
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, "[secret]")
    text = _BEARER_RE.sub(r"\1[secret]", text)
    text = _SECRET_KV_RE.sub(r"\1[secret]", text)
    return _PHONE_RE.sub(_mask_digits, text)


class RedactingFilter(logging.Filter):
    """Renders the message once, redacted, so no handler can print the raw arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        record.request_id = request_id_var.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            "request_id": getattr(record, "request_id", "-"),
        }
        if record.exc_info:
            entry["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """Readable lines for a terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s [%(request_id)s] %(message)s")

    def formatException(self, ei: Any) -> str:
        return redact(super().formatException(ei))


def setup_logging(fmt: str = "auto", level: str = "INFO") -> None:
    """Install the redacting handler on the root logger (idempotent)."""
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_ew", False):
            root.removeHandler(h)
    handler = logging.StreamHandler(sys.stderr)
    handler._ew = True  # type: ignore[attr-defined]
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    handler.setFormatter(JsonFormatter() if use_json else TextFormatter())
    handler.addFilter(RedactingFilter())
    root.addHandler(handler)
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
