"""NewReno (RFC 9002 §7, Appendix B), CUBIC (RFC 9438) and the pacer (RFC 9002 §7.7)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trio_zttp._tls.suites import Epoch
from trio_zttp.quic._congestion import (
    CUBIC_ALPHA,
    CUBIC_BETA,
    CUBIC_C,
    CongestionController,
    Cubic,
    NewReno,
    Pacer,
    initial_window,
    make_congestion_controller,
    minimum_window,
)
from trio_zttp.quic._recovery import SentPacket

MDS = 1200


class Sender:
    """Sends full-size packets through a controller and acknowledges or loses them."""

    def __init__(self, cc: CongestionController) -> None:
        self.cc = cc
        self.pn = 0

    def send(self, now: float, size: int = MDS, *, in_flight: bool = True) -> SentPacket:
        packet = SentPacket(self.pn, Epoch.ONE_RTT, now, size, in_flight=in_flight)
        self.pn += 1
        if in_flight:
            self.cc.on_packet_sent(size, now)
        return packet

    def round_trip(self, now: float, rtt: float, count: int) -> float:
        """Send ``count`` packets at ``now`` and acknowledge them all one RTT later."""
        packets = [self.send(now) for _ in range(count)]
        self.cc.on_packets_acked(packets, now + rtt, rtt)
        return now + rtt


def test_congestion_initial_and_minimum_windows() -> None:
    assert initial_window(1200) == 12000
    assert initial_window(1500) == 14720
    assert initial_window(9000) == 18000
    assert minimum_window(1200) == 2400
    assert NewReno(1500).congestion_window == 14720
    with pytest.raises(ValueError):
        NewReno(1000)


def test_congestion_factory() -> None:
    assert isinstance(make_congestion_controller("newreno"), NewReno)
    cubic = make_congestion_controller("cubic", 1500)
    assert isinstance(cubic, Cubic) and cubic.congestion_window == 14720
    with pytest.raises(ValueError):
        make_congestion_controller("bbr")  # type: ignore[arg-type]


@pytest.mark.parametrize("factory", [NewReno, Cubic])
def test_congestion_bytes_in_flight_and_can_send(factory: type[NewReno] | type[Cubic]) -> None:
    cc = factory(MDS)
    sender = Sender(cc)
    packets = [sender.send(0.0) for _ in range(9)]
    assert cc.bytes_in_flight == 9 * MDS
    assert cc.can_send(MDS) and not cc.can_send(MDS + 1201)
    sender.send(0.0)
    assert not cc.can_send(1)
    # packets that are not in flight never count
    ack_only = sender.send(0.0, 50, in_flight=False)
    cc.on_packets_acked([packets[0], ack_only], 0.1, 0.1)
    assert cc.bytes_in_flight == 9 * MDS
    cc.on_packets_discarded(2 * MDS)
    assert cc.bytes_in_flight == 7 * MDS


@pytest.mark.parametrize("factory", [NewReno, Cubic])
def test_congestion_slow_start_grows_by_acked_bytes(factory: type[NewReno] | type[Cubic]) -> None:
    cc = factory(MDS)
    sender = Sender(cc)
    now = 0.0
    for _ in range(3):
        before = cc.congestion_window
        now = sender.round_trip(now, 0.05, before // MDS)
        assert cc.congestion_window == 2 * before
    assert cc.ssthresh == math.inf


def test_congestion_newreno_loss_halves_once_per_recovery_period() -> None:
    cc = NewReno(MDS)
    sender = Sender(cc)
    sent_early = [sender.send(0.0) for _ in range(10)]
    cc.on_packets_lost([sent_early[0]], 1.0)
    assert cc.congestion_window == 6000 and cc.ssthresh == 6000
    # losses and acknowledgments of packets sent before the period started change nothing
    cc.on_packets_lost([sent_early[1]], 1.1)
    cc.on_packets_acked(sent_early[2:6], 1.1, 0.1)
    assert cc.congestion_window == 6000
    # a packet sent after the period began ends it: growth resumes, a later loss halves again
    late = sender.send(1.2)
    cc.on_packets_acked([late], 1.3, 0.1)
    assert cc.congestion_window == 6000  # 1200 of 6000 acknowledged, not a window yet
    later = sender.send(1.3)
    cc.on_packets_lost([later], 1.4)
    assert cc.congestion_window == 3000


def test_congestion_newreno_avoidance_adds_one_datagram_per_window() -> None:
    cc = NewReno(MDS)
    sender = Sender(cc)
    cc.on_packets_lost([sender.send(0.0)], 0.0)  # cwnd 6000 = ssthresh
    now = 0.1
    for _ in range(4):
        before = cc.congestion_window
        now = sender.round_trip(now, 0.1, before // MDS)
        assert cc.congestion_window == before + MDS


def test_congestion_minimum_window_and_persistent_congestion() -> None:
    for factory in (NewReno, Cubic):
        cc = factory(MDS)
        sender = Sender(cc)
        now = 0.0
        for _ in range(10):
            now += 1.0
            cc.on_packets_lost([sender.send(now)], now + 0.5)
        assert cc.congestion_window == 2 * MDS
        now = sender.round_trip(now + 1, 0.1, 2)
        now = sender.round_trip(now, 0.1, 10)
        assert cc.congestion_window > 2 * MDS
        cc.on_persistent_congestion(now)
        assert cc.congestion_window == 2 * MDS
        # the recovery period is over: the next loss reduces again... from the minimum
        cc.on_packets_lost([sender.send(now)], now + 0.1)
        assert cc.congestion_window == 2 * MDS


@pytest.mark.parametrize("factory", [NewReno, Cubic])
def test_congestion_ecn_ce_is_a_congestion_event(factory: type[NewReno] | type[Cubic]) -> None:
    cc = factory(MDS)
    cc.on_ecn_ce(0.5, 1.0)
    reduced = cc.congestion_window
    assert reduced < 12000
    cc.on_ecn_ce(0.9, 1.1)  # sent before the recovery period began
    assert cc.congestion_window == reduced
    cc.on_ecn_ce(1.05, 1.2)
    assert cc.congestion_window < reduced


@pytest.mark.parametrize("factory", [NewReno, Cubic])
def test_congestion_app_limited_does_not_grow(factory: type[NewReno] | type[Cubic]) -> None:
    cc = factory(MDS)
    sender = Sender(cc)
    cc.app_limited = True
    sender.round_trip(0.0, 0.1, 5)
    assert cc.congestion_window == 12000
    assert cc.bytes_in_flight == 0
    cc.app_limited = False
    sender.round_trip(1.0, 0.1, 5)
    assert cc.congestion_window == 18000


def cubic_after_loss(w_max_packets: int, *, fast_convergence: bool = True) -> tuple[Cubic, Sender]:
    cc = Cubic(MDS, fast_convergence=fast_convergence)
    sender = Sender(cc)
    now = 0.0
    while cc.congestion_window < w_max_packets * MDS:  # slow start up to the target
        now = sender.round_trip(now, 0.01, cc.congestion_window // MDS)
    cc.on_packets_lost([sender.send(now)], now + 0.01)
    return cc, sender


def test_congestion_cubic_multiplicative_decrease_and_k() -> None:
    cc, _ = cubic_after_loss(100)
    w_max = cc.w_max
    assert w_max is not None and w_max >= 100 * MDS
    assert cc.congestion_window == int(w_max * CUBIC_BETA)
    assert cc.ssthresh == pytest.approx(w_max * CUBIC_BETA)
    assert CUBIC_ALPHA == pytest.approx(3 * 0.3 / 1.7)


def run_cubic(cc: Cubic, sender: Sender, start: float, until: float, rtt: float) -> float:
    """Keep the window full: each RTT send a window's worth and acknowledge it."""
    now = start
    while now < until:
        now = sender.round_trip(now, rtt, max(1, cc.congestion_window // MDS))
    return now


def test_congestion_cubic_returns_to_w_max_at_k_then_grows_convex() -> None:
    # a large window over a long RTT keeps CUBIC out of the Reno-friendly region
    cc, sender = cubic_after_loss(1000)
    w_max = cc.w_max
    assert w_max is not None
    start = 10.0
    rtt = 0.1
    now = run_cubic(cc, sender, start, start + 0.5, rtt)
    k = cc.k
    expected_k = ((w_max - w_max * CUBIC_BETA) / MDS / CUBIC_C) ** (1 / 3)
    assert k == pytest.approx(expected_k, rel=0.01)
    # concave: below W_max before K, rising
    mid = run_cubic(cc, sender, now, start + k / 2, rtt)
    at_half = cc.congestion_window
    assert w_max * CUBIC_BETA < at_half < w_max
    assert at_half == pytest.approx(cc.w_cubic(mid - start + rtt), rel=0.05)
    # plateau around W_max at t = K
    now = run_cubic(cc, sender, mid, start + k, rtt)
    assert cc.congestion_window == pytest.approx(w_max, rel=0.03)
    # convex beyond: growth accelerates again
    now = run_cubic(cc, sender, now, start + k + 1.0, rtt)
    first = cc.congestion_window
    now = run_cubic(cc, sender, now, start + k + 2.0, rtt)
    second = cc.congestion_window
    assert w_max < first < second
    assert second - first > first - w_max


def test_congestion_cubic_reno_friendly_region_on_short_rtt() -> None:
    # a small window and a tiny RTT: Reno's estimate overtakes the cubic curve
    cc, sender = cubic_after_loss(20)
    w_max = cc.w_max
    assert w_max is not None
    start, rtt = 1.0, 0.002
    now = run_cubic(cc, sender, start, start + 0.4, rtt)
    t = now - start
    assert cc.w_cubic(t) < cc.congestion_window
    # W_est: alpha datagrams per RTT from beta * W_max until it reaches W_max, then one
    rounds = t / rtt
    slow_rounds = (w_max - w_max * CUBIC_BETA) / MDS / CUBIC_ALPHA
    expected = w_max + (rounds - slow_rounds) * MDS
    assert cc.congestion_window == pytest.approx(expected, rel=0.05)


def test_congestion_cubic_fast_convergence() -> None:
    cc, sender = cubic_after_loss(100)
    first_w_max = cc.w_max
    assert first_w_max is not None
    now = 5.0
    cwnd = cc.congestion_window
    cc.on_packets_lost([sender.send(now)], now + 0.01)  # loss below the previous W_max
    assert cc.w_max == pytest.approx(cwnd * (1 + CUBIC_BETA) / 2)
    plain, sender2 = cubic_after_loss(100, fast_convergence=False)
    cwnd = plain.congestion_window
    plain.on_packets_lost([sender2.send(now)], now + 0.01)
    assert plain.w_max == pytest.approx(cwnd)


def test_congestion_cubic_after_persistent_congestion_uses_k_zero() -> None:
    cc, sender = cubic_after_loss(100)
    cc.on_persistent_congestion(5.0)
    assert cc.congestion_window == 2 * MDS and cc.w_max is None
    now = 5.0
    while cc.congestion_window < cc.ssthresh:  # slow start back to ssthresh
        now = sender.round_trip(now, 0.05, max(1, cc.congestion_window // MDS))
    now = sender.round_trip(now, 0.05, cc.congestion_window // MDS)
    assert cc.k == 0.0


def test_congestion_cubic_app_limited_time_is_not_counted() -> None:
    rtt = 0.05

    def run(pause: float) -> int:
        cc, sender = cubic_after_loss(300)
        start = 10.0
        now = run_cubic(cc, sender, start, start + 1.0, rtt)
        if pause:
            cc.app_limited = True
            end = now + pause
            while now < end:
                now = sender.round_trip(now, rtt, 1)
            cc.app_limited = False
        run_cubic(cc, sender, now, now + 1.0, rtt)
        return cc.congestion_window

    unpaused = run(0.0)
    assert run(2.0) == pytest.approx(unpaused, rel=0.01)


def test_congestion_pacer_burst_then_rate() -> None:
    pacer = Pacer(MDS, burst_packets=10)
    pacer.update_rate(12000, 0.1)
    assert pacer.rate == pytest.approx(150_000)
    now = 0.0
    for _ in range(10):
        assert pacer.next_send_time(now) == now
        pacer.on_packet_sent(now, MDS)
    interval = MDS / pacer.rate
    assert pacer.next_send_time(now) == pytest.approx(now + interval)
    now += interval
    assert pacer.next_send_time(now) == pytest.approx(now)
    pacer.on_packet_sent(now, MDS)
    # a long idle period refills at most one burst
    now += 100.0
    for _ in range(10):
        assert pacer.next_send_time(now) == now
        pacer.on_packet_sent(now, MDS)
    assert pacer.next_send_time(now) > now


def test_congestion_pacer_burst_limited_by_window() -> None:
    pacer = Pacer(MDS)
    pacer.update_rate(2 * MDS, 0.1)
    now = 0.0
    for _ in range(2):
        assert pacer.next_send_time(now) == now
        pacer.on_packet_sent(now, MDS)
    assert pacer.next_send_time(now) > now


def test_congestion_pacer_without_rate_does_not_delay() -> None:
    pacer = Pacer(MDS, burst_packets=1)
    pacer.on_packet_sent(0.0, MDS)
    assert pacer.rate == math.inf
    assert pacer.next_send_time(0.0) == 0.0


@given(
    st.floats(min_value=0.001, max_value=1.0),
    st.integers(min_value=2, max_value=200),
    st.integers(min_value=50, max_value=400),
)
def test_congestion_pacer_average_rate_matches_rfc(
    srtt: float, cwnd_packets: int, count: int
) -> None:
    pacer = Pacer(MDS)
    cwnd = cwnd_packets * MDS
    pacer.update_rate(cwnd, srtt)
    now = 0.0
    for _ in range(count):
        now = pacer.next_send_time(now)
        pacer.on_packet_sent(now, MDS)
    burst = min(10, cwnd_packets)
    expected = (count - burst) * MDS / (1.25 * cwnd / srtt)
    assert now == pytest.approx(expected, rel=1e-6, abs=1e-9)


# -- RFC 9002 §7.8: the sender reports why it stopped ----------------------------------------


def _lose_one(cc: CongestionController, sender: Sender, now: float) -> None:
    """A congestion event, so the next packets are in congestion avoidance."""
    cc.on_packets_lost([sender.send(now)], now)
    assert cc.congestion_window <= cc.ssthresh


@pytest.mark.parametrize("factory", [NewReno, Cubic])
def test_congestion_slow_start_no_growth_when_app_limited(
    factory: type[NewReno] | type[Cubic],
) -> None:
    cc = factory(MDS)
    sender = Sender(cc)
    now = 0.0
    for _ in range(20):  # one small request at a time: two packets of a ten-packet window
        packets = [sender.send(now), sender.send(now)]
        cc.set_app_limited(True, now)  # nothing more to send, the window had room
        now += 0.1
        cc.on_packets_acked(packets, now, 0.1)
    assert cc.app_limited
    assert cc.congestion_window == initial_window(MDS)
    assert cc.bytes_in_flight == 0


@pytest.mark.parametrize("factory", [NewReno, Cubic])
def test_congestion_slow_start_grows_when_cwnd_limited(
    factory: type[NewReno] | type[Cubic],
) -> None:
    cc = factory(MDS)
    sender = Sender(cc)
    now = 0.0
    for _ in range(3):
        packets = []
        while cc.can_send(MDS):
            packets.append(sender.send(now))
        cc.set_app_limited(False, now)  # the window stopped the sender
        now += 0.1
        cc.on_packets_acked(packets, now, 0.1)
    assert not cc.app_limited
    assert cc.congestion_window == 8 * initial_window(MDS)  # doubled every round trip


@pytest.mark.parametrize("factory", [NewReno, Cubic])
def test_congestion_packets_sent_before_the_window_limited_still_grow(
    factory: type[NewReno] | type[Cubic],
) -> None:
    cc = factory(MDS)
    sender = Sender(cc)
    full = [sender.send(0.0) for _ in range(10)]  # the whole initial window
    cc.set_app_limited(False, 0.0)
    cc.on_packets_acked(full[:5], 0.1, 0.1)
    assert cc.congestion_window == 18000
    late = [sender.send(0.1) for _ in range(3)]  # then the application ran dry
    cc.set_app_limited(True, 0.1)
    cc.on_packets_acked(full[5:] + late, 0.2, 0.1)
    # the five sent while the window was the limit count, the three sent after do not
    assert cc.congestion_window == 18000 + 5 * MDS
    assert cc.bytes_in_flight == 0


@pytest.mark.parametrize("factory", [NewReno, Cubic])
def test_congestion_avoidance_no_growth_when_app_limited(
    factory: type[NewReno] | type[Cubic],
) -> None:
    cc = factory(MDS)
    sender = Sender(cc)
    _lose_one(cc, sender, 0.0)
    reduced = cc.congestion_window
    now = 1.0
    for _ in range(200):
        packets = [sender.send(now), sender.send(now)]
        cc.set_app_limited(True, now)
        now += 0.01
        cc.on_packets_acked(packets, now, 0.01)
    assert cc.congestion_window == reduced


@pytest.mark.parametrize("factory", [NewReno, Cubic])
def test_congestion_avoidance_grows_when_cwnd_limited(
    factory: type[NewReno] | type[Cubic],
) -> None:
    cc = factory(MDS)
    sender = Sender(cc)
    _lose_one(cc, sender, 0.0)
    reduced = cc.congestion_window
    now = 1.0
    for _ in range(20):
        packets = []
        while cc.can_send(MDS):
            packets.append(sender.send(now))
        cc.set_app_limited(False, now)
        now += 0.01
        cc.on_packets_acked(packets, now, 0.01)
    # about a datagram per round trip (NewReno exactly one), not slow start's doubling
    assert reduced + 10 * MDS <= cc.congestion_window <= reduced + 40 * MDS
    if factory is NewReno:
        assert cc.congestion_window == reduced + 20 * MDS


@pytest.mark.parametrize("factory", [NewReno, Cubic])
def test_congestion_full_window_with_nothing_left_is_not_app_limited(
    factory: type[NewReno] | type[Cubic],
) -> None:
    # out of data just as the window filled up: the window was in full use, so the acks
    # grow it although the sender says it is app-limited
    cc = factory(MDS)
    sender = Sender(cc)
    packets = [sender.send(0.0) for _ in range(10)]
    assert not cc.can_send(MDS)
    cc.set_app_limited(True, 0.0)
    assert not cc.app_limited  # no room left: not underutilized
    cc.set_app_limited(True, 0.05)
    cc.on_packets_acked(packets, 0.1, 0.1)
    assert cc.congestion_window == 2 * initial_window(MDS)


@pytest.mark.parametrize("factory", [NewReno, Cubic])
def test_congestion_packet_that_fills_the_window_counts_while_app_limited(
    factory: type[NewReno] | type[Cubic],
) -> None:
    cc = factory(MDS)
    sender = Sender(cc)
    first = [sender.send(0.0) for _ in range(3)]
    cc.set_app_limited(True, 0.0)  # room for seven more
    assert cc.app_limited
    cc.on_packets_acked(first, 0.04, 0.04)
    assert cc.congestion_window == initial_window(MDS)
    burst = [sender.send(0.05) for _ in range(9)]
    cc.on_packets_acked(burst, 0.09, 0.04)  # room for one more was left: still underused
    assert cc.congestion_window == initial_window(MDS)
    burst = [sender.send(0.1) for _ in range(10)]  # a burst that fills the window
    cc.on_packets_acked(burst, 0.14, 0.04)
    assert cc.app_limited  # nobody said otherwise, but the window was in full use
    assert cc.congestion_window == 2 * initial_window(MDS)


def test_congestion_cubic_app_limited_period_reported_by_the_sender_is_not_counted() -> None:
    rtt = 0.05

    def full_round(cc: Cubic, sender: Sender, now: float) -> float:
        packets = [sender.send(now) for _ in range(max(1, cc.congestion_window // MDS))]
        cc.set_app_limited(False, now)
        cc.on_packets_acked(packets, now + rtt, rtt)
        return now + rtt

    def run(pause: float) -> int:
        cc, sender = cubic_after_loss(300)
        now = 10.0
        while now < 11.0:
            now = full_round(cc, sender, now)
        end = now + pause
        while now < end:  # one small packet per round trip: app-limited
            packet = sender.send(now)
            cc.set_app_limited(True, now)
            cc.on_packets_acked([packet], now + rtt, rtt)
            now += rtt
        stop = now + 1.0
        while now < stop:
            now = full_round(cc, sender, now)
        return cc.congestion_window

    unpaused = run(0.0)
    paused = run(2.0)
    assert paused == pytest.approx(unpaused, rel=0.01)
