"""Helpers every adapter shares: HTTP status → DeliveryError, transport errors → DeliveryError, redaction, batching."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TypeVar

import aiohttp

from warning.channel import Outbound, SendResult
from warning.errors import DeliveryError, Reason

T = TypeVar("T")

#: Used when a 429 carries no (or an unreadable) Retry-After.
DEFAULT_RETRY_AFTER_S = 1.0
#: A provider asking for more than this is capped: the core's deadline decides beyond it.
MAX_RETRY_AFTER_S = 300.0
_URL_USERINFO = re.compile(r"(?<=://)[^/@\s]+@")
#: Permanent failures that concern one recipient, not the request: a per-recipient FAILED result,
#: not an exception (the rest of the batch, and the channel, are fine).
RECIPIENT_REASONS = frozenset({Reason.INVALID_ADDRESS, Reason.OPTED_OUT, Reason.PROVIDER_REJECTED,
                               Reason.CLIENT_ERROR})


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Retry-After as seconds: delta-seconds, or an HTTP date (needs `now`); None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return min(max(0.0, float(value)), MAX_RETRY_AFTER_S)
    except ValueError:
        pass
    if now is None:
        return None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return min(max(0.0, (when - now).total_seconds()), MAX_RETRY_AFTER_S)


def classify_status(http_status: int, retry_after_header: str | None = None, *, detail: str = "") -> DeliveryError | None:
    """None for 2xx; otherwise the failure with its reason and whether a retry may succeed.

    429 → rate_limited (retryable, honouring Retry-After); 408 → timeout (retryable); 5xx →
    server_error (retryable); 401/403 → auth_error; any other 4xx (or anything odd) → client_error,
    permanent: sending the same request again gives the same answer.
    """
    if 200 <= http_status < 300:
        return None
    text = detail or f"HTTP {http_status}"
    if http_status == 429:
        wait = parse_retry_after(retry_after_header)
        return DeliveryError(Reason.RATE_LIMITED, True, text, DEFAULT_RETRY_AFTER_S if wait is None else wait)
    if http_status == 408:
        return DeliveryError(Reason.TIMEOUT, True, text)
    if 500 <= http_status < 600:
        return DeliveryError(Reason.SERVER_ERROR, True, text, parse_retry_after(retry_after_header))
    if http_status in (401, 403):
        return DeliveryError(Reason.AUTH_ERROR, False, text)
    return DeliveryError(Reason.CLIENT_ERROR, False, text)


@contextmanager
def map_errors(what: str) -> Iterator[None]:
    """Turn transport failures inside the block into retryable DeliveryErrors naming `what` (never a URL with secrets).

    Usable around awaits: `with map_errors("twilio messages"): resp = await session.post(...)`.
    """
    try:
        yield
    except DeliveryError:
        raise
    except (TimeoutError, aiohttp.ServerTimeoutError):
        raise DeliveryError(Reason.TIMEOUT, True, f"{what}: no answer in time") from None
    except aiohttp.ClientResponseError as exc:
        raise classify_status(exc.status, detail=f"{what}: HTTP {exc.status}") or DeliveryError(
            Reason.OTHER, True, f"{what}: HTTP {exc.status}") from None
    except aiohttp.ClientConnectionError as exc:
        raise DeliveryError(Reason.SERVER_ERROR, True, f"{what}: connection failed ({type(exc).__name__})") from None
    except aiohttp.ClientError as exc:
        raise DeliveryError(Reason.SERVER_ERROR, True, f"{what}: {type(exc).__name__}") from None


def redact(text: str, *secrets: str | None) -> str:
    """`text` with every given secret, and any user:password@ in a URL, replaced by ***."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return _URL_USERINFO.sub("***@", text)


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """Consecutive slices of at most `size` items."""
    if size < 1:
        raise ValueError("chunk size must be at least 1")
    for start in range(0, len(items), size):
        yield items[start:start + size]


def check_batch(name: str, batch: Sequence[object], max_batch: int) -> None:
    """Refuse a batch larger than the adapter declared (a bug in the caller, not a provider failure)."""
    if len(batch) > max_batch:
        raise ValueError(f"{name}: batch of {len(batch)} exceeds max_batch {max_batch}")


async def send_one(out: Outbound, call: Callable[[], Awaitable[str | None]]) -> SendResult:
    """Run one provider call: its id → ACCEPTED; a recipient's permanent failure → FAILED; anything else raises."""
    try:
        ref = await call()
    except DeliveryError as err:
        if not err.retryable and err.reason in RECIPIENT_REASONS:
            return SendResult.failed(out.delivery_id, err)
        raise
    return SendResult.accepted(out.delivery_id, ref)
