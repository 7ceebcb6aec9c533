"""Exception hierarchy with one root, and the Reason labels used in metrics and records."""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class Reason(StrEnum):
    """Why a send failed; the value is the metric and dashboard label."""

    OTHER = "other"
    CLIENT_ERROR = "client_error"
    SERVER_ERROR = "server_error"
    TIMEOUT = "timeout"
    CANCELLED = "cancelled"
    AUTH_ERROR = "auth_error"
    RATE_LIMITED = "rate_limited"
    INVALID_ADDRESS = "invalid_address"
    OPTED_OUT = "opted_out"
    PROVIDER_REJECTED = "provider_rejected"
    EXPIRED = "expired"


class EarlyWarningError(Exception):
    """Root of every error this service raises on purpose."""


class ConfigError(EarlyWarningError):
    """Bad configuration, found at start: names the file, the key and the reason."""

    def __init__(self, file: str, key: str, reason: str) -> None:
        self.file, self.key, self.reason = file, key, reason
        super().__init__(f"{file}: {key}: {reason}")


class CapParseError(EarlyWarningError):
    """A CAP document that cannot be accepted; carries every problem with its element path."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{p}: {r}" for p, r in problems))


class InvalidAddress(EarlyWarningError):
    """An address that reached the core malformed."""


class DeliveryError(EarlyWarningError):
    """A send that failed, classified by the adapter: reason, whether to retry, and when."""

    def __init__(self, reason: Reason, retryable: bool, detail: str = "", retry_after_s: float | None = None) -> None:
        self.reason, self.retryable, self.detail, self.retry_after_s = reason, retryable, detail, retry_after_s
        super().__init__(f"{reason.value}{' (retryable)' if retryable else ''}: {detail}")


class ChannelUnavailable(DeliveryError):
    """The whole channel is down; retryable."""


class IllegalTransition(EarlyWarningError):
    """A delivery state change the state machine does not allow."""

    def __init__(self, state: str, event: str) -> None:
        self.state, self.event = state, event
        super().__init__(f"illegal transition from {state} on {event}")


class StoreError(EarlyWarningError):
    """Redis unreachable after the client's own retries."""


class ApiError(EarlyWarningError):
    """An error with an HTTP status, a short message and optional detail, rendered as JSON."""

    status = 400

    def __init__(self, error: str, detail: Any = None, *, status: int | None = None) -> None:
        self.error, self.detail = error, detail
        if status is not None:
            self.status = status
        super().__init__(error)


class BadRequest(ApiError):
    """400: the input is malformed or invalid."""

    status = 400


class Forbidden(ApiError):
    """403: wrong role or bad signature."""

    status = 403


class NotFound(ApiError):
    """404: no such thing."""

    status = 404


class Conflict(ApiError):
    """409: the request conflicts with the current state."""

    status = 409


class TooManyRequests(ApiError):
    """429: too many requests of this kind just now; `retry_after_s` says when to try again (Retry-After)."""

    status = 429

    def __init__(self, error: str, detail: Any = None, *, retry_after_s: int = 1) -> None:
        super().__init__(error, detail)
        self.retry_after_s = retry_after_s
