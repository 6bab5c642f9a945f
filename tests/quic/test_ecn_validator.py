"""The ECN validator alone (RFC 9000 §13.4.2, Appendix A.4): its state table, and random
sequences of batches, ACK frames and losses checked against the rules it must keep."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trio_zttp.quic._ecn import (
    TESTING_PACKETS,
    TRANSITIONS,
    EcnEvent,
    EcnState,
    EcnValidator,
    ecn_transition,
)


@dataclass
class Sent:
    ecn: bool


@pytest.mark.parametrize("state", list(EcnState))
@pytest.mark.parametrize("event", list(EcnEvent))
def test_ecn_transition_every_state_and_event(state: EcnState, event: EcnEvent) -> None:
    moves = TRANSITIONS[state]
    if event in moves:
        assert ecn_transition(state, event) is moves[event]
    else:
        with pytest.raises(ValueError, match="no move"):
            ecn_transition(state, event)


def test_ecn_transition_table_shape() -> None:
    assert set(TRANSITIONS) == set(EcnState)
    assert TRANSITIONS[EcnState.DISABLED] == {}
    # failing is possible from every state that marks or waits, and final on that path:
    # only a new path tests again (RFC 9000 §13.4.2)
    assert TRANSITIONS[EcnState.FAILED] == {EcnEvent.NEW_PATH: EcnState.TESTING}
    for state in (EcnState.TESTING, EcnState.UNKNOWN, EcnState.CAPABLE):
        assert TRANSITIONS[state][EcnEvent.INVALID] is EcnState.FAILED
        assert TRANSITIONS[state][EcnEvent.NEW_PATH] is EcnState.TESTING
    assert EcnEvent.TESTING_OVER in TRANSITIONS[EcnState.TESTING]
    assert EcnEvent.TESTING_OVER not in TRANSITIONS[EcnState.CAPABLE]


def test_ecn_testing_ends_after_ten_marked_packets_then_waits() -> None:
    ecn = EcnValidator()
    assert ecn.start_batch(0.0, 0.1) == 2
    ecn.on_batch_sent(1, 0, 0)
    assert ecn.state is EcnState.TESTING
    assert ecn.start_batch(0.01, 0.1) == 2
    ecn.on_batch_sent(0, 1, TESTING_PACKETS - 2)
    assert ecn.state is EcnState.UNKNOWN
    assert ecn.start_batch(0.02, 0.1) == 0  # not marking while waiting
    # an ACK frame confirming one marked packet: capable, marking again
    assert not ecn.on_ack(2, [Sent(True), Sent(False)], (1, 0, 0))
    assert ecn.state is EcnState.CAPABLE
    assert ecn.start_batch(0.03, 0.1) == 2


def test_ecn_testing_ends_after_three_ptos() -> None:
    ecn = EcnValidator()
    ecn.start_batch(1.0, 0.2)
    ecn.on_batch_sent(2, 0, 0)
    assert ecn.start_batch(1.59, 0.2) == 2
    assert ecn.start_batch(1.61, 0.2) == 0
    assert ecn.state is EcnState.UNKNOWN


def test_ecn_all_testing_packets_lost_fails_only_after_testing() -> None:
    ecn = EcnValidator()
    ecn.start_batch(0.0, 0.1)
    ecn.on_batch_sent(3, 0, 0)
    ecn.on_lost([Sent(True)] * 3)
    assert ecn.state is EcnState.TESTING  # more marked packets may still come
    ecn.start_batch(1.0, 0.1)  # three PTOs later
    assert ecn.state is EcnState.FAILED
    assert ecn.failure is not None and "lost" in ecn.failure


_BATCH = st.tuples(st.just("batch"), st.floats(0.0, 0.2), st.integers(0, 4),
                   st.integers(0, 4), st.integers(0, 6))
_ACK = st.tuples(st.just("ack"), st.integers(0, 2), st.integers(0, 4), st.integers(0, 3),
                 st.none() | st.tuples(st.integers(-1, 5), st.integers(-1, 1),
                                       st.integers(-1, 2)))
_LOST = st.tuples(st.just("lost"), st.integers(0, 4), st.integers(0, 2))


@given(enabled=st.booleans(),
       steps=st.lists(st.one_of(_BATCH, _ACK, _LOST), max_size=40))
def test_ecn_validator_keeps_its_rules(enabled: bool, steps: list[tuple]) -> None:  # type: ignore[type-arg]
    ecn = EcnValidator(enabled)
    now = 0.0
    last = [(0, 0, 0)] * 3  # the counts the validator accepted, per space
    reported = 0
    for step in steps:
        before = ecn.state
        if step[0] == "batch":
            _, delay, initial, handshake, application = step
            now += delay
            codepoint = ecn.start_batch(now, 0.1)
            assert codepoint == (2 if ecn.state in (EcnState.TESTING, EcnState.CAPABLE) else 0)
            if codepoint:
                ecn.on_batch_sent(initial, handshake, application)
        elif step[0] == "ack":
            _, space, marked, unmarked, deltas = step
            acked = [Sent(True)] * marked + [Sent(False)] * unmarked
            counts = None if deltas is None else tuple(
                max(0, a + d) for a, d in zip(last[space], deltas, strict=True))
            active = ecn.active
            congestion = ecn.on_ack(space, acked, counts) if active else False  # type: ignore
            if congestion:
                assert counts is not None and counts[2] > last[space][2]
                assert ecn.state not in (EcnState.FAILED, EcnState.DISABLED)
                reported += counts[2] - last[space][2]
            if active and ecn.state is not EcnState.FAILED and counts is not None:
                old = last[space]
                e0, e1, ce = counts  # type: ignore[misc]
                # accepted counts follow every rule of RFC 9000 §13.4.2.1
                assert e0 >= old[0] and e1 >= old[1] and ce >= old[2]
                assert e1 == 0 and e0 <= ecn.sent[space]
                assert (e0 - old[0]) + (ce - old[2]) >= marked
                last[space] = counts  # type: ignore[assignment]
            if active and counts is None and marked:
                assert ecn.state is EcnState.FAILED
        else:
            _, marked, unmarked = step
            ecn.on_lost([Sent(True)] * marked + [Sent(False)] * unmarked)
        after = ecn.state
        if after is not before:
            assert after in TRANSITIONS[before].values()
        if after is EcnState.FAILED:
            assert ecn.failure is not None and ecn.codepoint == 0
        assert ecn.ce_reported == reported
    if not enabled:
        assert ecn.state is EcnState.DISABLED and ecn.sent == [0, 0, 0]


def test_ecn_restart_tests_a_new_path_from_the_start() -> None:
    ecn = EcnValidator()
    ecn.start_batch(0.0, 0.1)
    ecn.fail("bleached")
    assert ecn.state is EcnState.FAILED and ecn.codepoint == 0
    ecn.restart()
    assert ecn.state is EcnState.TESTING and ecn.failure is None
    assert ecn.start_batch(1.0, 0.1) == 2  # marking again
    off = EcnValidator(enabled=False)
    off.restart()
    assert off.state is EcnState.DISABLED and off.start_batch(0.0, 0.1) == 0
