"""The delivery state machine as tables: every (old, new) pair, the funnel, the stored form."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from warning.delivery import (
    ALLOWED,
    TERMINAL,
    Bucket,
    Delivery,
    DeliveryState,
    advance,
    buckets,
    classify,
    is_stale,
    requeue,
)
from warning.errors import IllegalTransition

S = DeliveryState
T0 = datetime(2026, 7, 1, 8, 0, tzinfo=UTC)
ORDER = [S.PENDING, S.SENDING, S.RETRY_WAIT, S.ACCEPTED, S.SENT, S.DELIVERED, S.ACKNOWLEDGED, S.FAILED,
         S.UNDELIVERED, S.EXPIRED, S.CANCELLED]
# m = moves, . = stale (unchanged), X = IllegalTransition.  Columns follow ORDER.
#                      P  S  R  A  T  D  K  F  U  E  C
MATRIX = {
    S.PENDING:      ". m m m X X X m X m m",
    S.SENDING:      ". . m m m m m m m m m",
    S.RETRY_WAIT:   ". m . m m m m m m m m",
    S.ACCEPTED:     ". . . . m m m m m . .",
    S.SENT:         ". . . . . m m m m . .",
    S.DELIVERED:    ". . . . . . m m m . .",
    S.ACKNOWLEDGED: ". . . . . . . . . . .",
    S.FAILED:       ". . . . . . . . . . .",
    S.UNDELIVERED:  ". . . . . . . . . . .",
    S.EXPIRED:      ". . . . . . . . . . .",
    S.CANCELLED:    ". . . . . . . . . . .",
}
PAIRS = [(old, new, row.split()[i]) for old, row in MATRIX.items() for i, new in enumerate(ORDER)]


def make(state: DeliveryState = S.PENDING) -> Delivery:
    return Delivery("d1", "w1", 1, "c1", "sms-primary", "sms", "+8613800000001", state=state, updated_at=T0)


def test_matrix_covers_every_state() -> None:
    assert set(MATRIX) == set(S) == set(ORDER) == set(ALLOWED)


@pytest.mark.parametrize(("old", "new", "outcome"), PAIRS, ids=[f"{o}->{n}" for o, n, _ in PAIRS])
def test_advance_every_pair(old: DeliveryState, new: DeliveryState, outcome: str) -> None:
    d = make(old)
    at = T0 + timedelta(seconds=5)
    if outcome == "X":
        with pytest.raises(IllegalTransition):
            advance(d, new, at)
        return
    result = advance(d, new, at, reason="why")
    if outcome == ".":
        assert result is d
        assert is_stale(old, new)
    else:
        assert result.state is new and result.updated_at == at
        assert result.history[-1].state is new and result.history[-1].reason == "why"
        assert not is_stale(old, new)


def test_terminal_states_have_no_exit() -> None:
    assert TERMINAL == {S.ACKNOWLEDGED, S.FAILED, S.UNDELIVERED, S.EXPIRED, S.CANCELLED}
    assert all(not ALLOWED[t] for t in TERMINAL)
    assert S.DELIVERED not in TERMINAL  # an ack may still come


def test_sending_counts_attempts_and_keeps_provider_ref() -> None:
    d = advance(make(), S.SENDING, T0)
    d = advance(d, S.RETRY_WAIT, T0, reason="timeout")
    d = advance(d, S.SENDING, T0)
    assert d.attempts == 2 and d.error == "timeout"
    d = advance(d, S.ACCEPTED, T0, provider_ref="SM1")
    d = advance(d, S.DELIVERED, T0)
    assert d.provider_ref == "SM1"


@pytest.mark.parametrize("order", [
    [S.SENT, S.DELIVERED, S.UNDELIVERED],
    [S.UNDELIVERED, S.DELIVERED, S.SENT],
    [S.DELIVERED, S.SENT, S.UNDELIVERED, S.DELIVERED],
])
def test_final_state_does_not_depend_on_receipt_order(order: list[DeliveryState]) -> None:
    d = advance(make(), S.SENDING, T0)
    for state in order:
        d = advance(d, state, T0)
    assert d.state is S.UNDELIVERED


def test_requeue_only_after_acceptance() -> None:
    accepted = advance(advance(make(), S.SENDING, T0), S.ACCEPTED, T0, provider_ref="CA1")
    again = requeue(accepted, T0, reason="busy")
    assert again.state is S.RETRY_WAIT and again.error == "busy"
    delivered = advance(accepted, S.DELIVERED, T0)
    assert requeue(delivered, T0, reason="busy") is delivered
    # a late send result can never send a moved-on delivery back to the queue through advance()
    assert advance(accepted, S.RETRY_WAIT, T0) is accepted


def test_stored_form_round_trips() -> None:
    d = advance(advance(make(), S.SENDING, T0), S.FAILED, T0, reason="invalid_address")
    back = Delivery.from_fields(d.to_fields())
    assert back == d and back.history == d.history and back.error == "invalid_address"
    assert all(isinstance(v, str) for v in d.to_fields().values())


Q, SE, DE, FA = Bucket.QUEUED, Bucket.SENT, Bucket.DELIVERED, Bucket.FAILED
FUNNEL = [
    (None, S.PENDING, set(), {Q}),
    (S.PENDING, S.SENDING, set(), set()),
    (S.SENDING, S.RETRY_WAIT, set(), set()),
    (S.SENDING, S.ACCEPTED, {Q}, {SE}),
    (S.SENDING, S.DELIVERED, {Q}, {SE, DE}),
    (S.SENDING, S.FAILED, {Q}, {FA}),
    (S.SENDING, S.UNDELIVERED, {Q}, {SE, FA}),
    (S.RETRY_WAIT, S.EXPIRED, {Q}, {FA}),
    (S.PENDING, S.CANCELLED, {Q}, set()),
    (S.ACCEPTED, S.SENT, set(), set()),
    (S.ACCEPTED, S.DELIVERED, set(), {DE}),
    (S.ACCEPTED, S.FAILED, set(), {FA}),
    (S.SENT, S.UNDELIVERED, set(), {FA}),
    (S.DELIVERED, S.ACKNOWLEDGED, set(), set()),
    (S.SENT, S.ACKNOWLEDGED, set(), {DE}),
    (S.DELIVERED, S.UNDELIVERED, {DE}, {FA}),
    (S.ACCEPTED, S.RETRY_WAIT, {SE}, {Q}),  # requeue() of a busy call
]


@pytest.mark.parametrize(("old", "new", "leaves", "enters"), FUNNEL, ids=[f"{o}->{n}" for o, n, _, _ in FUNNEL])
def test_classify_funnel(old: DeliveryState | None, new: DeliveryState, leaves: set[Bucket],
                         enters: set[Bucket]) -> None:
    t = classify(old, new)
    assert (set(t.leaves), set(t.enters)) == (leaves, enters)
    assert sum(t.deltas().values()) == len(enters) - len(leaves)


@pytest.mark.parametrize(("old", "new", "outcome"), [p for p in PAIRS if p[2] == "m"],
                         ids=[f"{o}->{n}" for o, n, m in PAIRS if m == "m"])
def test_counters_from_transitions_equal_counters_from_states(old: DeliveryState, new: DeliveryState,
                                                              outcome: str) -> None:
    # a delivery created, moved to `old` on a legal path, then to `new`: summed deltas = buckets of the end state
    path = {S.PENDING: [], S.SENDING: [S.SENDING], S.RETRY_WAIT: [S.SENDING, S.RETRY_WAIT],
            S.ACCEPTED: [S.SENDING, S.ACCEPTED], S.SENT: [S.SENDING, S.ACCEPTED, S.SENT],
            S.DELIVERED: [S.SENDING, S.ACCEPTED, S.DELIVERED]}[old] + [new]
    totals: dict[Bucket, int] = {}
    prev: DeliveryState | None = None
    for state in [S.PENDING, *path]:
        for b, n in classify(prev, state).deltas().items():
            totals[b] = totals.get(b, 0) + n
        prev = state
    assert {b for b, n in totals.items() if n} == set(buckets(new, previous=path[-2] if len(path) > 1 else S.PENDING))
    assert all(n in (0, 1) for n in totals.values())


def test_acknowledged_flag() -> None:
    assert classify(S.DELIVERED, S.ACKNOWLEDGED).acknowledged
    assert not classify(S.SENT, S.DELIVERED).acknowledged
