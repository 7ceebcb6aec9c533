"""Delivery state machine: states, the transition table, the pure advance() and funnel classification."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum

from warning.errors import IllegalTransition


class DeliveryState(StrEnum):
    """Where one delivery (one recipient on one channel) stands; values are the stored form."""

    #: created; not yet handed to a channel
    PENDING = "pending"
    #: lease held, send() in flight
    SENDING = "sending"
    #: transient failure; next attempt is on the due queue
    RETRY_WAIT = "retry_wait"
    #: provider accepted it (Twilio queued/accepted/scheduled/sending; Kannel 202 "0: Accepted")
    ACCEPTED = "accepted"
    #: handed to the network (Twilio sent; Kannel DLR 8 SMSC-ack / 4 buffered)
    SENT = "sent"
    #: device/screen confirmed (Twilio delivered/read; Kannel DLR 1; voice answered and played)
    DELIVERED = "delivered"
    #: the human confirmed: reply / DTMF / link / screen button
    ACKNOWLEDGED = "acknowledged"
    #: permanent (non-retryable error; Twilio failed; Kannel DLR 16)
    FAILED = "failed"
    #: network reported non-delivery (Twilio undelivered; Kannel DLR 2)
    UNDELIVERED = "undelivered"
    #: warning expired before the delivery was handed to a provider
    EXPIRED = "expired"
    #: superseded or cancelled (CAP Update/Cancel) before it was handed to a provider
    CANCELLED = "cancelled"


S = DeliveryState

#: Receipts and results only move a delivery up this ladder; terminal states share the top rank.
RANK: Mapping[DeliveryState, int] = {
    S.PENDING: 0, S.SENDING: 1, S.RETRY_WAIT: 1, S.ACCEPTED: 2, S.SENT: 3, S.DELIVERED: 4,
    S.ACKNOWLEDGED: 5, S.FAILED: 5, S.UNDELIVERED: 5, S.EXPIRED: 5, S.CANCELLED: 5,
}
TERMINAL: frozenset[DeliveryState] = frozenset({S.ACKNOWLEDGED, S.FAILED, S.UNDELIVERED, S.EXPIRED, S.CANCELLED})
#: not yet handed to a provider (the `queued` funnel bucket)
QUEUED: frozenset[DeliveryState] = frozenset({S.PENDING, S.SENDING, S.RETRY_WAIT})
#: a provider has taken it (the `sent` funnel bucket counts these and what follows from them)
HANDED: frozenset[DeliveryState] = frozenset({S.ACCEPTED, S.SENT, S.DELIVERED})

_RECEIPTS = frozenset({S.ACCEPTED, S.SENT, S.DELIVERED, S.ACKNOWLEDGED, S.FAILED, S.UNDELIVERED})

#: The single transition table. Receipts may overtake the record of the send (a Kannel DLR comes
#: back in ~25 ms, a reply may come before the worker wrote ACCEPTED), so SENDING and RETRY_WAIT
#: take any receipt. Nothing is expired or cancelled once a provider has it. DELIVERED yields to
#: a later failure report so that the final state does not depend on the order receipts arrive.
ALLOWED: Mapping[DeliveryState, frozenset[DeliveryState]] = {
    S.PENDING: frozenset({S.SENDING, S.RETRY_WAIT, S.ACCEPTED, S.FAILED, S.EXPIRED, S.CANCELLED}),
    S.SENDING: _RECEIPTS | {S.RETRY_WAIT, S.EXPIRED, S.CANCELLED},
    S.RETRY_WAIT: _RECEIPTS | {S.SENDING, S.EXPIRED, S.CANCELLED},
    S.ACCEPTED: frozenset({S.SENT, S.DELIVERED, S.ACKNOWLEDGED, S.FAILED, S.UNDELIVERED}),
    S.SENT: frozenset({S.DELIVERED, S.ACKNOWLEDGED, S.FAILED, S.UNDELIVERED}),
    S.DELIVERED: frozenset({S.ACKNOWLEDGED, S.FAILED, S.UNDELIVERED}),
    S.ACKNOWLEDGED: frozenset(),
    S.FAILED: frozenset(),
    S.UNDELIVERED: frozenset(),
    S.EXPIRED: frozenset(),
    S.CANCELLED: frozenset(),
}
#: States a provider-reported transient failure after acceptance (voice busy / no-answer) may
#: send back to RETRY_WAIT through requeue(); advance() itself never moves backwards.
REQUEUABLE: frozenset[DeliveryState] = frozenset({S.ACCEPTED, S.SENT})


@dataclass(frozen=True, slots=True)
class Step:
    """One recorded state change: when, to what, and why."""

    at: datetime
    state: DeliveryState
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Delivery:
    """One message to one recipient on one channel instance, for one version of a warning."""

    id: str
    warning_id: str
    version: int
    recipient_id: str  # contact id, or device / area id for e-screens and broadcast
    channel: str  # channel instance name from config
    kind: str  # ChannelKind value: sms | voice | escreen | broadcast
    address: str
    state: DeliveryState = S.PENDING
    attempts: int = 0
    provider_ref: str | None = None
    error: str | None = None
    updated_at: datetime | None = None
    wave: int = 0
    history: tuple[Step, ...] = field(default=(), compare=False)

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL

    def to_fields(self) -> dict[str, str]:
        """The flat string form for a Redis hash (empty string for None)."""
        return {
            "id": self.id, "warning_id": self.warning_id, "version": str(self.version),
            "recipient_id": self.recipient_id, "channel": self.channel, "kind": self.kind,
            "address": self.address, "state": self.state.value, "attempts": str(self.attempts),
            "provider_ref": self.provider_ref or "", "error": self.error or "",
            "updated_at": self.updated_at.isoformat() if self.updated_at else "", "wave": str(self.wave),
            "history": json.dumps([[s.at.isoformat(), s.state.value, s.reason] for s in self.history]),
        }

    @classmethod
    def from_fields(cls, data: Mapping[str, str]) -> Delivery:
        """Read back what to_fields() wrote."""
        history = tuple(Step(datetime.fromisoformat(at), DeliveryState(st), why)
                        for at, st, why in json.loads(data.get("history") or "[]"))
        return cls(
            id=data["id"], warning_id=data["warning_id"], version=int(data["version"]),
            recipient_id=data["recipient_id"], channel=data["channel"], kind=data["kind"],
            address=data["address"], state=DeliveryState(data["state"]), attempts=int(data.get("attempts") or 0),
            provider_ref=data.get("provider_ref") or None, error=data.get("error") or None,
            updated_at=datetime.fromisoformat(data["updated_at"]) if data.get("updated_at") else None,
            wave=int(data.get("wave") or 0), history=history,
        )


def is_stale(current: DeliveryState, new: DeliveryState) -> bool:
    """True when `new` says nothing new: a duplicate, a lower-ranked receipt, anything after a terminal
    state, or an expiry/cancellation that comes after a provider took the message."""
    if new in ALLOWED[current]:
        return False
    if new in (S.EXPIRED, S.CANCELLED):  # too late to withdraw: a provider has it (or it is over)
        return True
    return current == new or current in TERMINAL or RANK[new] <= RANK[current]


def advance(delivery: Delivery, new_state: DeliveryState, at: datetime, *, reason: str | None = None,
            provider_ref: str | None = None) -> Delivery:
    """The delivery after `new_state` at `at`; the same object when stale (`result is delivery`).

    State only moves forward and terminal wins: duplicates, lower-ranked receipts and anything
    after a terminal state leave it unchanged. A move the table forbids that is not merely stale
    (PENDING → DELIVERED: a receipt for something never sent) raises IllegalTransition.
    """
    current = delivery.state
    if new_state not in ALLOWED[current]:
        if is_stale(current, new_state):
            return delivery
        raise IllegalTransition(current.value, new_state.value)
    d = delivery  # built field by field: dataclasses.replace costs more than the rest of a receipt
    return Delivery(d.id, d.warning_id, d.version, d.recipient_id, d.channel, d.kind, d.address, new_state,
                    d.attempts + (1 if new_state is S.SENDING else 0), provider_ref or d.provider_ref,
                    reason if reason is not None else d.error, at, d.wave,
                    (*d.history, Step(at, new_state, reason)))


def requeue(delivery: Delivery, at: datetime, *, reason: str) -> Delivery:
    """Back to RETRY_WAIT after a transient failure the provider reported after acceptance (busy, no-answer).

    The one backward move, kept out of advance() so that a late send result can never re-queue a
    delivery a receipt has already moved on. Stale (same object) unless the state is in REQUEUABLE.
    """
    if delivery.state not in REQUEUABLE:
        return delivery
    return replace(delivery, state=S.RETRY_WAIT, error=reason, updated_at=at,
                   history=(*delivery.history, Step(at, S.RETRY_WAIT, reason)))


# ---- coverage funnel (DESIGN §4) ---------------------------------------------------------------

class Bucket(StrEnum):
    """The coverage funnel's delivery counters; a delivery may count in several (sent ⊇ delivered)."""

    #: not yet handed to a provider: pending, sending, retry_wait
    QUEUED = "queued"
    #: every delivery a provider accepted, including those later delivered or reported undelivered
    SENT = "sent"
    #: every delivery with a delivery receipt (an acknowledgment implies one)
    DELIVERED = "delivered"
    #: failed, undelivered, expired
    FAILED = "failed"


B = Bucket
_BUCKETS: Mapping[DeliveryState, frozenset[Bucket]] = {
    S.PENDING: frozenset({B.QUEUED}), S.SENDING: frozenset({B.QUEUED}), S.RETRY_WAIT: frozenset({B.QUEUED}),
    S.ACCEPTED: frozenset({B.SENT}), S.SENT: frozenset({B.SENT}),
    S.DELIVERED: frozenset({B.SENT, B.DELIVERED}), S.ACKNOWLEDGED: frozenset({B.SENT, B.DELIVERED}),
    S.UNDELIVERED: frozenset({B.SENT, B.FAILED}), S.FAILED: frozenset({B.FAILED}),
    S.EXPIRED: frozenset({B.FAILED}), S.CANCELLED: frozenset(),
}


def buckets(state: DeliveryState | None, *, previous: DeliveryState | None = None) -> frozenset[Bucket]:
    """The funnel buckets a delivery in `state` counts in; FAILED after a provider took it still counts as sent."""
    if state is None:
        return frozenset()
    found = _BUCKETS[state]
    if state is S.FAILED and previous in HANDED:
        found = found | {B.SENT}
    return found


@dataclass(frozen=True, slots=True)
class Transition:
    """What one state change does to the funnel: the buckets it leaves and the ones it enters."""

    old: DeliveryState | None
    new: DeliveryState
    leaves: frozenset[Bucket]
    enters: frozenset[Bucket]

    def deltas(self) -> dict[Bucket, int]:
        """Counter increments (+1 / -1) for this transition, ready for HINCRBY."""
        out = dict.fromkeys(self.enters, 1)
        out.update(dict.fromkeys(self.leaves, -1))
        return out

    @property
    def acknowledged(self) -> bool:
        """True when this change is the delivery's acknowledgment (the recipient-level `acked` counter)."""
        return self.new is S.ACKNOWLEDGED and self.old is not S.ACKNOWLEDGED


def classify(old: DeliveryState | None, new: DeliveryState, *, before_old: DeliveryState | None = None) -> Transition:
    """The funnel effect of moving from `old` (None: a new delivery) to `new`.

    `before_old` is only needed when `old` is FAILED (it decides whether that failure counted as
    sent); FAILED is terminal, so counters never need it in practice.
    """
    was = buckets(old, previous=before_old)
    now = buckets(new, previous=old)
    return Transition(old, new, leaves=was - now, enters=now - was)
