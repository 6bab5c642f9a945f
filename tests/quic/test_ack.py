"""ACK processing: the 1-RTT single-range fast path agrees with parse_ack + on_ack_received."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from trio_zttp._buffer import encode_varint
from trio_zttp._tls.suites import Epoch
from trio_zttp.quic._ack import on_app_ack_frame
from trio_zttp.quic._congestion import make_congestion_controller
from trio_zttp.quic._ecn import EcnValidator
from trio_zttp.quic._errors import FrameEncodingError, ProtocolViolation
from trio_zttp.quic._frame_codec import parse_ack, write_ack_frame
from trio_zttp.quic._recovery import LossRecovery, SentPacket
from trio_zttp.quic._sender import _varint

APP = Epoch.ONE_RTT
EXPONENT = 3


def pair(controller: str, ecn: bool, confirmed: bool) -> tuple[LossRecovery, LossRecovery]:
    def one() -> LossRecovery:
        recovery = LossRecovery(
            is_client=True, congestion_controller=make_congestion_controller(controller),
            ecn=EcnValidator() if ecn else None)
        if confirmed:
            recovery.on_handshake_confirmed(0.0)
        return recovery
    return one(), one()


def snapshot(recovery: LossRecovery) -> dict[str, Any]:
    space = recovery.application
    rtt = recovery.rtt
    congestion = recovery.congestion
    state: dict[str, Any] = {
        "rtt": (rtt.latest_rtt, rtt.min_rtt, rtt.smoothed_rtt, rtt.rttvar,
                rtt.first_sample_time),
        "congestion": (congestion.congestion_window, congestion.bytes_in_flight),
        "pto_count": recovery.pto_count,
        "timer": recovery.get_loss_detection_timer(),
        "space": (space.largest_acked, space.largest_sent, space.loss_time,
                  space.ack_eliciting_in_flight, space.ecn_ce_count, list(space.sent_packets)),
    }
    if recovery.pacer is not None:
        state["pacer"] = (recovery.pacer.rate, recovery.pacer.next_send_time(100.0))
    if recovery.ecn is not None:
        ecn = recovery.ecn
        state["ecn"] = (ecn.state, ecn.ce_reported, ecn.failure, ecn.codepoint)
    return state


def ack_frame(lo: int, hi: int, delay: int, counts: tuple[int, int, int] | None,
              more: tuple[tuple[int, int], ...] = ()) -> bytes:
    buf = bytearray()
    assert write_ack_frame(buf, ((lo, hi), *more), delay, counts)
    return bytes(buf)


def general(recovery: LossRecovery, frame: bytes, now: float) -> tuple[Any, ...]:
    ranges, delay, counts, pos = parse_ack(memoryview(frame), 1, frame[0])
    result = recovery.on_ack_received(APP, ranges, (delay << EXPONENT) / 1_000_000, now, counts)
    return result.acked, result.lost, result.rtt_sample, pos


SETTLED: list[int] = []


def numbers(packets: list[SentPacket]) -> list[int]:
    return [packet.packet_number for packet in packets]


send_step = st.tuples(st.booleans(), st.booleans(), st.integers(40, 1200), st.floats(0.0, 0.05))
ack_step = st.tuples(
    st.integers(0, 8), st.integers(-1, 12), st.integers(0, 20_000),
    st.sampled_from(["none", "same", "valid", "valid", "valid", "ce", "ect1", "shrink", "big"]),
    st.floats(0.0, 0.2), st.booleans())


@example(  # a gap below the largest acknowledged sets the loss time; filling it clears it
    controller="newreno", ecn=True, confirmed=True,
    rounds=[([(True, True, 1200, 0.0)] * 3, (1, -1, 10, "valid", 0.01, False)),
            ([(True, True, 1200, 0.0)], (1, 3, 10, "valid", 0.001, False)),
            ([(True, True, 1200, 0.0)], (1, 0, 10, "valid", 0.01, True))],
)
@given(
    controller=st.sampled_from(["newreno", "cubic"]),
    ecn=st.booleans(),
    confirmed=st.booleans(),
    rounds=st.lists(st.tuples(st.lists(send_step, min_size=1, max_size=4), ack_step),
                    min_size=3, max_size=15),
)
def test_ack_fast_path_agrees_with_general_path(
    controller: str, ecn: bool, confirmed: bool,
    rounds: list[tuple[list[tuple[Any, ...]], tuple[Any, ...]]],
) -> None:
    fast, slow = pair(controller, ecn, confirmed)
    compared = 0
    now = 0.0
    next_pn = 0
    marked_sent = 0
    counts = [0, 0, 0]
    for sends, (back, span, delay, mode, dt, fire) in rounds:
        for eliciting, marked, size, gap in sends:
            now += gap
            for recovery in (fast, slow):
                recovery.on_packet_sent(SentPacket(next_pn, APP, now, size, eliciting, ecn=marked))
                if marked and recovery.ecn is not None:
                    recovery.ecn.on_batch_sent(0, 0, 1)
            marked_sent += marked
            next_pn += 1
        now += dt
        timer = fast.get_loss_detection_timer()
        if fire and timer is not None:
            now = max(now, timer)
            fired = fast.on_loss_detection_timeout(now)
            other = slow.on_loss_detection_timeout(now)
            assert numbers(fired.lost) == numbers(other.lost)
            assert fired[1:] == other[1:]
        hi = next_pn - back  # next_pn: never sent
        if hi < 0:
            continue
        lo = max(0, hi - span) if span >= 0 else hi
        frame_counts: tuple[int, int, int] | None = None
        if mode == "valid":
            counts[0] = marked_sent
        elif mode == "ce":
            counts[2] += 1
        elif mode == "ect1":
            counts[1] += 1
        elif mode == "shrink" and counts[0]:
            counts[0] -= 1
        elif mode == "big":
            counts[0] = marked_sent + 100
        if mode != "none":
            frame_counts = (counts[0], counts[1], counts[2])
        frame = ack_frame(lo, hi, delay, frame_counts)
        try:
            expected: tuple[Any, ...] | Exception = general(slow, frame, now)
        except ProtocolViolation as exc:
            expected = exc
        try:
            got: tuple[Any, ...] | Exception | None = on_app_ack_frame(
                fast, memoryview(frame), 1, frame[0], EXPONENT, now)
        except ProtocolViolation as exc:
            got = exc
        assert got is not None  # every single-range frame takes the fast path
        if isinstance(expected, Exception):
            assert isinstance(got, ProtocolViolation)
            assert got.error_code == expected.error_code
            assert got.frame_type == expected.frame_type  # type: ignore[attr-defined]
            continue  # nothing changed (the connection would close)
        assert not isinstance(got, Exception)
        assert numbers(got[0]) == numbers(expected[0])
        assert numbers(got[1]) == numbers(expected[1])
        assert got[2:] == expected[2:]
        assert snapshot(fast) == snapshot(slow)
        compared += bool(got[0])
    SETTLED.append(compared)


def test_ack_fast_path_leaves_multi_range_frames_alone() -> None:
    fast, slow = pair("cubic", True, True)
    for pn in range(10):
        for recovery in (fast, slow):
            recovery.on_packet_sent(SentPacket(pn, APP, 0.0, 1200))
    frame = ack_frame(8, 9, 10, None, more=((2, 5),))
    before = snapshot(fast)
    assert on_app_ack_frame(fast, memoryview(frame), 1, frame[0], EXPONENT, 0.1) is None
    assert snapshot(fast) == before
    assert numbers(general(slow, frame, 0.1)[0]) == [2, 3, 4, 5, 8, 9]


@pytest.mark.parametrize("counts", [None, (70, 0, 3), (20_000, 0, 70_000)])
@pytest.mark.parametrize("largest", [5, 300, 20_000, 2**31])
def test_ack_fast_path_truncated_frames_go_the_general_way(
    counts: tuple[int, int, int] | None, largest: int
) -> None:
    """Every truncation: None with nothing changed, and parse_ack raises the coded error."""
    frame = ack_frame(largest - 3, largest, 900, counts)
    for cut in range(1, len(frame)):
        fast, _ = pair("newreno", True, True)
        fast.on_packet_sent(SentPacket(0, APP, 0.0, 1200))
        before = snapshot(fast)
        assert on_app_ack_frame(fast, memoryview(frame[:cut]), 1, frame[0], EXPONENT, 1) is None
        assert snapshot(fast) == before
        with pytest.raises(FrameEncodingError):
            parse_ack(memoryview(frame[:cut]), 1, frame[0])


@pytest.mark.parametrize("counts", [None, (70, 0, 3), (20_000, 1, 70_000)])
@pytest.mark.parametrize("largest", [5, 300, 20_000, 2**31])
def test_ack_fast_path_parses_what_parse_ack_parses(
    counts: tuple[int, int, int] | None, largest: int
) -> None:
    frame = ack_frame(largest - 3, largest, 900, counts) + b"\x01"
    recovery = LossRecovery(is_client=False)
    recovery.on_packet_sent(SentPacket(largest, APP, 0.0, 1200))
    result = on_app_ack_frame(recovery, memoryview(frame), 1, frame[0], EXPONENT, 0.5)
    assert result is not None
    assert numbers(result[0]) == [largest]
    assert result[3] == parse_ack(memoryview(frame), 1, frame[0])[3] == len(frame) - 1
    assert recovery.rtt.latest_rtt == 0.5


def test_ack_fast_path_agreement_test_settles_packets() -> None:
    """The agreement test above is not vacuous: most examples settle packets both ways."""
    SETTLED.clear()
    test_ack_fast_path_agrees_with_general_path()
    assert sum(SETTLED) > 2 * len(SETTLED)


@given(st.integers(0, 2**62 - 1))
def test_ack_sender_varint_matches_encode_varint(value: int) -> None:
    assert _varint(value) == encode_varint(value)
