"""RTT estimation, loss detection, PTO and persistent congestion (RFC 9002 §5-§7, Appendix A)."""

from __future__ import annotations

import random
from collections.abc import Iterable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trio_zttp._tls.suites import Epoch
from trio_zttp.quic._congestion import CongestionController, NewReno, PacketInfo
from trio_zttp.quic._errors import ProtocolViolation, TransportErrorCode
from trio_zttp.quic._ranges import RangeSet
from trio_zttp.quic._recovery import (
    K_GRANULARITY,
    K_INITIAL_RTT,
    LossRecovery,
    RttEstimator,
    SentPacket,
)

APP = Epoch.ONE_RTT
MDS = 1200


class SpyController:
    """A NewReno that records which congestion signals it received."""

    def __init__(self) -> None:
        self.inner = NewReno(MDS)
        self.app_limited = False
        self.persistent: list[float] = []
        self.ecn: list[tuple[float, float]] = []
        self.lost: list[int] = []

    @property
    def congestion_window(self) -> int:
        return self.inner.congestion_window

    @property
    def bytes_in_flight(self) -> int:
        return self.inner.bytes_in_flight

    @property
    def ssthresh(self) -> float:
        return self.inner.ssthresh

    def can_send(self, size: int) -> bool:
        return self.inner.can_send(size)

    def on_packet_sent(self, sent_bytes: int, now: float) -> None:
        self.inner.on_packet_sent(sent_bytes, now)

    def set_app_limited(self, app_limited: bool, now: float) -> None:
        self.inner.set_app_limited(app_limited, now)
        self.app_limited = self.inner.app_limited

    def on_packets_acked(
        self, packets: Iterable[PacketInfo], now: float, smoothed_rtt: float
    ) -> None:
        self.inner.on_packets_acked(packets, now, smoothed_rtt)

    def on_packets_lost(self, packets: Iterable[PacketInfo], now: float) -> None:
        packets = list(packets)
        self.lost.extend(p.sent_bytes for p in packets)
        self.inner.on_packets_lost(packets, now)

    def on_packets_discarded(self, sent_bytes: int) -> None:
        self.inner.on_packets_discarded(sent_bytes)

    def on_persistent_congestion(self, now: float) -> None:
        self.persistent.append(now)
        self.inner.on_persistent_congestion(now)

    def on_ecn_ce(self, sent_time: float, now: float) -> None:
        self.ecn.append((sent_time, now))
        self.inner.on_ecn_ce(sent_time, now)


class Link:
    """Feeds one LossRecovery with numbered packets per space."""

    def __init__(self, recovery: LossRecovery) -> None:
        self.recovery = recovery
        self.next_pn = {Epoch.INITIAL: 0, Epoch.HANDSHAKE: 0, APP: 0}

    def send(
        self,
        epoch: Epoch,
        now: float,
        size: int = MDS,
        *,
        ack_eliciting: bool = True,
        frames: list[object] | None = None,
    ) -> SentPacket:
        space = APP if epoch == Epoch.ZERO_RTT else epoch
        pn = self.next_pn[space]
        self.next_pn[space] += 1
        packet = SentPacket(
            pn, epoch, now, size, ack_eliciting=ack_eliciting, frames=frames or []
        )
        self.recovery.on_packet_sent(packet)
        return packet


def ack(pns: list[int]) -> tuple[tuple[int, int], ...]:
    return RangeSet((pn, pn + 1) for pn in pns).to_ack_ranges()


def confirmed_server(**kwargs: object) -> tuple[LossRecovery, Link]:
    recovery = LossRecovery(is_client=False, **kwargs)  # type: ignore[arg-type]
    recovery.on_handshake_confirmed(0.0)
    return recovery, Link(recovery)


def with_rtt_sample(
    rtt: float = 0.1, controller: CongestionController | None = None
) -> tuple[LossRecovery, Link, float]:
    """A confirmed server with exactly one RTT sample of ``rtt`` (srtt = rtt, rttvar = rtt/2)."""
    recovery, link = confirmed_server(congestion_controller=controller)
    packet = link.send(APP, 0.0)
    recovery.on_ack_received(APP, ack([packet.packet_number]), 0.0, rtt)
    return recovery, link, rtt


# -- RTT estimator ---------------------------------------------------------------------------


def test_recovery_rtt_initial_values() -> None:
    rtt = RttEstimator()
    assert rtt.smoothed_rtt == K_INITIAL_RTT == 0.333
    assert rtt.rttvar == K_INITIAL_RTT / 2
    assert not rtt.has_sample and rtt.min_rtt == 0.0
    assert RttEstimator(initial_rtt=0.1).pto_base() == pytest.approx(0.1 + 4 * 0.05)
    with pytest.raises(ValueError):
        RttEstimator(initial_rtt=0)


def test_recovery_rtt_first_and_later_samples() -> None:
    rtt = RttEstimator(max_ack_delay=0.025)
    rtt.update(0.100, 0.050, 1.0, handshake_confirmed=False)  # first: ack delay ignored
    assert (rtt.min_rtt, rtt.smoothed_rtt, rtt.rttvar) == (0.100, 0.100, 0.050)
    assert rtt.first_sample_time == 1.0
    # before confirmation the whole ack_delay (40 ms > max_ack_delay) is subtracted
    rtt.update(0.160, 0.040, 2.0, handshake_confirmed=False)
    adjusted = 0.120
    assert rtt.rttvar == pytest.approx(0.75 * 0.050 + 0.25 * abs(0.100 - adjusted))
    assert rtt.smoothed_rtt == pytest.approx(0.875 * 0.100 + 0.125 * adjusted)
    # after confirmation it is capped at max_ack_delay
    srtt, var = rtt.smoothed_rtt, rtt.rttvar
    rtt.update(0.160, 0.040, 3.0, handshake_confirmed=True)
    adjusted = 0.135
    assert rtt.rttvar == pytest.approx(0.75 * var + 0.25 * abs(srtt - adjusted))
    assert rtt.smoothed_rtt == pytest.approx(0.875 * srtt + 0.125 * adjusted)
    assert rtt.latest_rtt == 0.160 and rtt.min_rtt == 0.100


def test_recovery_rtt_ack_delay_never_goes_below_min_rtt() -> None:
    rtt = RttEstimator()
    rtt.update(0.100, 0.0, 1.0, handshake_confirmed=True)
    rtt.update(0.110, 0.020, 2.0, handshake_confirmed=True)  # 0.110 - 0.020 < min_rtt
    assert rtt.smoothed_rtt == pytest.approx(0.875 * 0.100 + 0.125 * 0.110)
    rtt.update(0.050, 0.0, 3.0, handshake_confirmed=True)
    assert rtt.min_rtt == 0.050
    rtt.reset()
    assert not rtt.has_sample and rtt.smoothed_rtt == K_INITIAL_RTT


# -- acknowledgments -------------------------------------------------------------------------


def test_recovery_ack_returns_newly_acked_in_order_and_samples_rtt() -> None:
    recovery, link = confirmed_server()
    packets = [link.send(APP, 0.0, frames=[("stream", i)]) for i in range(10)]
    assert recovery.bytes_in_flight == 10 * MDS
    result = recovery.on_ack_received(APP, ((5, 9), (0, 3)), 0.0, 0.05)
    assert [p.packet_number for p in result.acked] == [0, 1, 2, 3, 5, 6, 7, 8, 9]
    assert result.acked[0].frames == [("stream", 0)]
    assert result.rtt_sample and recovery.rtt.latest_rtt == pytest.approx(0.05)
    # packet 4 is below the largest acknowledged by 5 >= kPacketThreshold: lost
    assert result.lost == [packets[4]]
    assert recovery.bytes_in_flight == 0
    assert recovery.get_loss_detection_timer() is None
    again = recovery.on_ack_received(APP, ((0, 9),), 0.0, 0.06)
    assert again.acked == [] and again.lost == [] and not again.rtt_sample


def test_recovery_ack_of_unsent_packet_is_protocol_violation() -> None:
    recovery, link = confirmed_server()
    link.send(APP, 0.0)
    with pytest.raises(ProtocolViolation) as info:
        recovery.on_ack_received(APP, ((1, 1),), 0.0, 0.1)
    assert info.value.error_code == TransportErrorCode.PROTOCOL_VIOLATION
    with pytest.raises(ProtocolViolation):
        recovery.on_ack_received(Epoch.HANDSHAKE, ((0, 0),), 0.0, 0.1)


def test_recovery_rtt_sample_needs_largest_newly_acked_and_ack_eliciting() -> None:
    recovery, link = confirmed_server()
    link.send(APP, 0.0)
    link.send(APP, 0.0, 40, ack_eliciting=False)
    link.send(APP, 0.0)
    result = recovery.on_ack_received(APP, ((1, 1),), 0.0, 0.1)  # ACK-only packet
    assert result.acked and not result.rtt_sample and not recovery.rtt.has_sample
    result = recovery.on_ack_received(APP, ack([0, 1]), 0.0, 0.1)  # largest not new
    assert [p.packet_number for p in result.acked] == [0] and not result.rtt_sample
    result = recovery.on_ack_received(APP, ack([0, 1, 2]), 0.0, 0.1)
    assert result.rtt_sample


def test_recovery_initial_ack_delay_is_ignored() -> None:
    recovery = LossRecovery(is_client=True)
    link = Link(recovery)
    link.send(Epoch.INITIAL, 0.0)
    link.send(Epoch.INITIAL, 0.1)
    recovery.on_ack_received(Epoch.INITIAL, ((0, 0),), 0.0, 0.1)
    recovery.on_ack_received(Epoch.INITIAL, ((0, 1),), 0.05, 0.3)
    # the 50 ms ack delay would have been subtracted (0.2 - 0.05 >= min_rtt) in other spaces
    assert recovery.rtt.smoothed_rtt == pytest.approx(0.875 * 0.1 + 0.125 * 0.2)


def test_recovery_packet_numbers_must_increase() -> None:
    recovery, link = confirmed_server()
    link.send(APP, 0.0)
    with pytest.raises(ValueError):
        recovery.on_packet_sent(SentPacket(0, APP, 0.0, MDS))
    # 0-RTT and 1-RTT share one space
    with pytest.raises(ValueError):
        recovery.on_packet_sent(SentPacket(0, Epoch.ZERO_RTT, 0.0, MDS))
    assert recovery.space(Epoch.ZERO_RTT) is recovery.space(APP)


# -- loss detection --------------------------------------------------------------------------


def test_recovery_packet_threshold() -> None:
    recovery, link = confirmed_server()
    for _ in range(6):
        link.send(APP, 0.0)
    result = recovery.on_ack_received(APP, ((3, 3),), 0.0, 0.01)
    assert [p.packet_number for p in result.lost] == [0]
    result = recovery.on_ack_received(APP, ((4, 4),), 0.0, 0.011)
    assert [p.packet_number for p in result.lost] == [1]


def test_recovery_time_threshold_sets_timer_and_fires() -> None:
    recovery, link = confirmed_server()
    link.send(APP, 0.0)
    link.send(APP, 0.01)
    result = recovery.on_ack_received(APP, ((1, 1),), 0.0, 0.11)  # rtt sample 0.1
    assert result.lost == []
    loss_delay = 9 / 8 * 0.1
    timer = recovery.get_loss_detection_timer()
    assert timer is not None and timer == pytest.approx(0.0 + loss_delay)
    assert recovery.space(APP).loss_time == timer
    assert recovery.on_loss_detection_timeout(timer - 0.001).lost == []  # not due yet
    fired = recovery.on_loss_detection_timeout(timer)
    assert [p.packet_number for p in fired.lost] == [0]
    assert fired.probe_space is None and fired.probe_packets == 0
    assert recovery.get_loss_detection_timer() is None
    assert recovery.congestion_window == (12000 + MDS) // 2  # grew by pn 1, then halved


def test_recovery_time_threshold_timer_fires_at_exactly_its_time() -> None:
    # 0.02 + 9/8 * 0.02 = 0.0425, but 0.0425 - 0.0225 < 0.02 in floating point: the packet
    # must still count as lost when the timer fires at 0.0425, or the timer never settles
    recovery, link = confirmed_server()
    link.send(APP, 0.0)
    recovery.on_ack_received(APP, ((0, 0),), 0.0, 0.02)
    link.send(APP, 0.02)
    link.send(APP, 0.021)
    recovery.on_ack_received(APP, ((2, 2), (0, 0)), 0.0, 0.041)  # another 20 ms sample
    timer = recovery.get_loss_detection_timer()
    assert timer == 0.02 + 9 / 8 * 0.02
    assert [p.packet_number for p in recovery.on_loss_detection_timeout(timer).lost] == [1]
    assert recovery.get_loss_detection_timer() is None


def test_recovery_time_threshold_uses_latest_rtt_when_larger() -> None:
    recovery, link = confirmed_server()
    link.send(APP, 0.0)
    recovery.on_ack_received(APP, ((0, 0),), 0.0, 0.1)  # srtt 0.1
    link.send(APP, 1.0)
    link.send(APP, 1.0)
    recovery.on_ack_received(APP, ((2, 2),), 0.0, 1.5)  # latest 0.5, srtt 0.15
    assert recovery.rtt.latest_rtt == pytest.approx(0.5)
    assert recovery.get_loss_detection_timer() == pytest.approx(1.0 + 9 / 8 * 0.5)


def test_recovery_late_ack_of_lost_packet_changes_nothing() -> None:
    recovery, link = confirmed_server()
    for _ in range(5):
        link.send(APP, 0.0)
    lost = recovery.on_ack_received(APP, ((4, 4),), 0.0, 0.1).lost
    assert [p.packet_number for p in lost] == [0, 1]
    late = recovery.on_ack_received(APP, ((0, 4),), 0.0, 0.2)
    assert [p.packet_number for p in late.acked] == [2, 3]


# -- probe timeout ---------------------------------------------------------------------------


def test_recovery_pto_app_space_with_backoff() -> None:
    recovery, link, rtt = with_rtt_sample(0.1)
    assert recovery.get_loss_detection_timer() is None
    link.send(APP, 1.0)
    pto = 0.1 + 4 * 0.05 + 0.025
    assert recovery.pto_duration() == pytest.approx(pto)
    assert recovery.get_loss_detection_timer() == pytest.approx(1.0 + pto)
    fired = recovery.on_loss_detection_timeout(1.0 + pto)
    assert fired == ([], APP, 2)
    assert recovery.pto_count == 1
    # a PTO declares nothing lost; the next one is twice as long
    assert recovery.bytes_in_flight == MDS
    assert recovery.get_loss_detection_timer() == pytest.approx(1.0 + 2 * pto)
    link.send(APP, 1.0 + 2 * pto)
    fired = recovery.on_loss_detection_timeout(1.0 + 2 * pto)  # the probe re-armed the timer
    assert fired.probe_space is None
    assert recovery.get_loss_detection_timer() == pytest.approx(1.0 + 2 * pto + 2 * pto)
    recovery.on_ack_received(APP, ((2, 2),), 0.0, 2.0)
    assert recovery.pto_count == 0


def test_recovery_pto_probe_count_configurable() -> None:
    recovery = LossRecovery(is_client=False, pto_probe_packets=1)
    recovery.on_handshake_confirmed(0.0)
    Link(recovery).send(APP, 0.0)
    timer = recovery.get_loss_detection_timer()
    assert timer is not None
    assert recovery.on_loss_detection_timeout(timer).probe_packets == 1
    with pytest.raises(ValueError):
        LossRecovery(is_client=False, pto_probe_packets=3)


def test_recovery_pto_handshake_spaces_exclude_max_ack_delay_and_pick_earliest() -> None:
    recovery = LossRecovery(is_client=False, initial_rtt=0.1)
    link = Link(recovery)
    base = 0.1 + 4 * 0.05
    link.send(Epoch.INITIAL, 0.0)
    link.send(Epoch.HANDSHAKE, 0.05)
    assert recovery.get_loss_detection_timer() == pytest.approx(base)
    fired = recovery.on_loss_detection_timeout(base)
    assert fired.probe_space == Epoch.INITIAL
    # Initial backed off to 2*base from 0.0, Handshake to 0.05 + 2*base: Initial still first
    assert recovery.get_loss_detection_timer() == pytest.approx(2 * base)
    recovery.discard_space(Epoch.INITIAL, 0.5)
    assert recovery.pto_count == 0
    assert recovery.get_loss_detection_timer() == pytest.approx(0.05 + base)
    assert recovery.on_loss_detection_timeout(0.05 + base).probe_space == Epoch.HANDSHAKE


def test_recovery_pto_skips_app_space_until_confirmed() -> None:
    recovery = LossRecovery(is_client=False, initial_rtt=0.1)
    link = Link(recovery)
    link.send(APP, 0.0)
    assert recovery.get_loss_detection_timer() is None
    link.send(Epoch.HANDSHAKE, 0.1)
    assert recovery.get_loss_detection_timer() == pytest.approx(0.1 + 0.3)
    recovery.on_ack_received(Epoch.HANDSHAKE, ((0, 0),), 0.0, 0.2)
    assert recovery.get_loss_detection_timer() is None
    recovery.on_handshake_confirmed(0.3)
    # the Handshake ACK gave an RTT sample of 0.1: PTO = 0.1 + 4 * 0.05 + max_ack_delay
    assert recovery.get_loss_detection_timer() == pytest.approx(0.0 + 0.1 + 0.2 + 0.025)


def test_recovery_client_anti_deadlock_probe() -> None:
    recovery = LossRecovery(is_client=True, initial_rtt=0.1)
    link = Link(recovery)
    link.send(Epoch.INITIAL, 0.0)
    recovery.on_ack_received(Epoch.INITIAL, ((0, 0),), 0.0, 0.1)
    # nothing in flight, but the server may be blocked by its amplification limit
    assert recovery.bytes_in_flight == 0
    base = recovery.rtt.pto_base()
    assert recovery.get_loss_detection_timer() == pytest.approx(0.1 + base)
    assert recovery.on_loss_detection_timeout(0.1 + base) == ([], Epoch.INITIAL, 1)
    assert recovery.pto_count == 1
    # the backoff keeps growing from the time the timer is re-armed
    assert recovery.get_loss_detection_timer() == pytest.approx(0.1 + base + 2 * base)
    recovery.has_handshake_keys = True
    fired = recovery.on_loss_detection_timeout(0.1 + 3 * base)
    assert fired.probe_space == Epoch.HANDSHAKE and fired.probe_packets == 1


def test_recovery_client_keeps_backoff_until_handshake_ack() -> None:
    recovery = LossRecovery(is_client=True, initial_rtt=0.1)
    link = Link(recovery)
    link.send(Epoch.INITIAL, 0.0)
    timer = recovery.get_loss_detection_timer()
    assert timer is not None
    recovery.on_loss_detection_timeout(timer)
    link.send(Epoch.INITIAL, timer)
    recovery.on_ack_received(Epoch.INITIAL, ((1, 1),), 0.0, timer + 0.1)
    assert recovery.pto_count == 1  # an Initial ACK does not prove address validation
    assert [recovery.peer_completed_address_validation] == [False]
    link.send(Epoch.HANDSHAKE, 1.0)
    recovery.on_ack_received(Epoch.HANDSHAKE, ((0, 0),), 0.0, 1.1)
    assert recovery.pto_count == 0 and recovery.peer_completed_address_validation
    assert recovery.get_loss_detection_timer() is None


def test_recovery_server_amplification_limit_disarms_pto() -> None:
    recovery = LossRecovery(is_client=False, initial_rtt=0.1)
    link = Link(recovery)
    link.send(Epoch.INITIAL, 0.0)
    recovery.set_amplification_limited(True, 0.0)
    assert recovery.get_loss_detection_timer() is None
    recovery.set_amplification_limited(False, 1.0)
    timer = recovery.get_loss_detection_timer()
    assert timer is not None and timer <= 1.0  # already due: run it now
    assert recovery.on_loss_detection_timeout(1.0).probe_space == Epoch.INITIAL


# -- discarding ------------------------------------------------------------------------------


def test_recovery_discard_space_removes_bytes_in_flight() -> None:
    recovery = LossRecovery(is_client=True)
    link = Link(recovery)
    initial = [link.send(Epoch.INITIAL, 0.0) for _ in range(2)]
    link.send(Epoch.HANDSHAKE, 0.0, 500)
    assert recovery.bytes_in_flight == 2 * MDS + 500
    assert recovery.discard_space(Epoch.INITIAL, 0.1) == initial
    assert recovery.bytes_in_flight == 500
    assert list(recovery.outstanding(Epoch.INITIAL)) == []
    assert recovery.congestion_window == 12000  # no congestion signal
    with pytest.raises(ValueError):
        recovery.discard_space(APP, 0.1)


def test_recovery_discard_zero_rtt_keeps_one_rtt_packets() -> None:
    recovery = LossRecovery(is_client=True)
    link = Link(recovery)
    early = [link.send(Epoch.ZERO_RTT, 0.0) for _ in range(3)]
    late = link.send(APP, 0.1)
    assert recovery.discard_space(Epoch.ZERO_RTT, 0.2) == early
    assert list(recovery.outstanding(APP)) == [late]
    assert recovery.bytes_in_flight == MDS


def test_recovery_retry_forgets_everything() -> None:
    recovery = LossRecovery(is_client=True)
    link = Link(recovery)
    sent = [link.send(Epoch.INITIAL, 0.0), link.send(Epoch.ZERO_RTT, 0.0)]
    assert recovery.on_retry_received(0.1) == sent
    assert recovery.bytes_in_flight == 0 and recovery.get_loss_detection_timer() is None
    link.send(Epoch.INITIAL, 0.2)  # packet numbers continue
    assert recovery.space(Epoch.INITIAL).largest_sent == 1


# -- persistent congestion -------------------------------------------------------------------

# one 100 ms sample (srtt 0.1, rttvar 0.05), then the run's ACK brings another 100 ms sample
# (srtt 0.1, rttvar 0.0375); default max_ack_delay 25 ms
PC_DURATION = (0.1 + 4 * 0.0375 + 0.025) * 3


def lose_run(
    recovery: LossRecovery, link: Link, times: list[float], *, eliciting: list[bool] | None = None
) -> list[SentPacket]:
    """Send packets at ``times``, then three more, and acknowledge only the very last.

    The acknowledgment comes 100 ms after the last packet: an RTT sample equal to srtt.
    """
    eliciting = eliciting or [True] * len(times)
    for t, e in zip(times, eliciting, strict=True):
        link.send(APP, t, ack_eliciting=e)
    for _ in range(3):
        last = link.send(APP, times[-1] + 0.001)
    result = recovery.on_ack_received(APP, ack([last.packet_number]), 0.0, times[-1] + 0.101)
    assert recovery.rtt.smoothed_rtt == pytest.approx(0.1)
    return result.lost


def test_recovery_persistent_congestion_declared() -> None:
    spy = SpyController()
    recovery, link, _ = with_rtt_sample(0.1, spy)
    lost = lose_run(recovery, link, [1.0, 1.0 + PC_DURATION / 2, 1.0 + PC_DURATION + 0.01])
    assert len(lost) == 3
    assert spy.persistent == [pytest.approx(1.0 + PC_DURATION + 0.01 + 0.101)]
    # RFC 9002 B.8: the window collapses; the same ACK's packet may then grow it (A.7 order)
    assert recovery.congestion_window <= 3 * MDS


def test_recovery_persistent_congestion_not_declared_for_short_span() -> None:
    spy = SpyController()
    recovery, link, _ = with_rtt_sample(0.1, spy)
    lost = lose_run(recovery, link, [1.0, 1.0 + PC_DURATION / 2, 1.0 + PC_DURATION - 0.01])
    assert len(lost) == 3
    assert spy.persistent == []
    assert recovery.congestion_window == (12000 + MDS) // 2


def test_recovery_persistent_congestion_needs_unbroken_run() -> None:
    spy = SpyController()
    recovery, link, _ = with_rtt_sample(0.1, spy)
    link.send(APP, 1.0)
    middle = link.send(APP, 1.0 + PC_DURATION / 2)
    link.send(APP, 1.0 + PC_DURATION + 0.01)
    early = recovery.on_ack_received(
        APP, ack([middle.packet_number]), 0.0, 1.1 + PC_DURATION / 2
    )
    lost = early.lost + lose_run(recovery, link, [1.0 + PC_DURATION + 0.02])
    # 1.0, 1.0 + duration + 0.01 and the new one are lost, but the middle one was acknowledged
    assert [p.sent_time for p in lost] == [
        1.0, 1.0 + PC_DURATION + 0.01, 1.0 + PC_DURATION + 0.02
    ]
    assert spy.persistent == []


def test_recovery_persistent_congestion_ends_must_be_ack_eliciting() -> None:
    spy = SpyController()
    recovery, link, _ = with_rtt_sample(0.1, spy)
    times = [1.0, 1.0 + PC_DURATION / 2, 1.0 + PC_DURATION + 0.01]
    lost = lose_run(recovery, link, times, eliciting=[True, True, False])
    assert len(lost) == 3
    assert spy.persistent == []
    # a non-ack-eliciting packet inside the run does not break it
    spy2 = SpyController()
    recovery, link, _ = with_rtt_sample(0.1, spy2)
    lost = lose_run(recovery, link, times, eliciting=[True, False, True])
    assert len(lost) == 3 and len(spy2.persistent) == 1


def test_recovery_persistent_congestion_needs_prior_rtt_sample() -> None:
    spy = SpyController()
    recovery, link = confirmed_server(initial_rtt=0.1, congestion_controller=spy)
    lost = lose_run(recovery, link, [0.0, PC_DURATION / 2, PC_DURATION + 0.5])
    assert len(lost) == 3
    assert spy.persistent == []


def rfc9002_example(acked_last: tuple[tuple[int, int], ...]) -> tuple[list[int], SpyController]:
    """RFC 9002 §7.6.3: packets #1-#9 at t = 0, 1, 2, 3, 4, 5, 6, 8, 12 (+ 10 s here).

    The example assumes an RTT estimate already exists (from the handshake) and that
    smoothed_rtt + max(4*rttvar, kGranularity) + max_ack_delay = 2.
    """
    spy = SpyController()
    recovery = LossRecovery(is_client=False, congestion_controller=spy, max_ack_delay=0.0)
    recovery.on_handshake_confirmed(0.0)
    link = Link(recovery)
    link.send(APP, 0.0)  # the handshake's RTT sample
    recovery.on_ack_received(APP, ((0, 0),), 0.0, 0.2)
    for t in (0, 1, 2, 3, 4, 5, 6, 8, 12):
        link.send(APP, 10.0 + t)  # #1..#9 are packet numbers 1..9
    recovery.on_ack_received(APP, ((1, 1), (0, 0)), 0.0, 11.2)
    # with srtt 0.2 and rttvar 0.6, the last ACK's 0.2 s sample leaves rttvar 0.45: 0.2 + 1.8
    recovery.rtt.smoothed_rtt = 0.2
    recovery.rtt.rttvar = 0.6
    result = recovery.on_ack_received(APP, acked_last, 0.0, 22.2)
    assert recovery.rtt.pto_base() == pytest.approx(2.0)
    return [p.packet_number for p in result.lost], spy


def test_recovery_persistent_congestion_rfc9002_example() -> None:
    lost, spy = rfc9002_example(((9, 9), (0, 1)))
    assert lost == [2, 3, 4, 5, 6, 7, 8]  # #2 through #8
    assert spy.persistent == [22.2]  # 8 - 1 = 7 > 2 * 3


def test_recovery_persistent_congestion_rfc9002_example_shorter_span() -> None:
    # #8 (the first PTO probe, t=8) acknowledged too: the run is #2-#7, 6 - 1 = 5 < 6
    lost, spy = rfc9002_example(((8, 9), (0, 1)))
    assert lost == [2, 3, 4, 5, 6, 7]
    assert spy.persistent == []


# -- ECN -------------------------------------------------------------------------------------


def test_recovery_ecn_ce_increase_reduces_window_once() -> None:
    recovery, link = confirmed_server()
    for _ in range(4):
        link.send(APP, 0.0)
    recovery.on_ack_received(APP, ((0, 0),), 0.0, 0.1, ecn_counts=(1, 0, 0))
    assert recovery.congestion_window > 12000
    window = recovery.congestion_window
    recovery.on_ack_received(APP, ((0, 1),), 0.0, 0.1, ecn_counts=(1, 0, 1))
    assert recovery.congestion_window == window // 2
    recovery.on_ack_received(APP, ((0, 2),), 0.0, 0.1, ecn_counts=(2, 0, 1))  # no increase
    assert recovery.congestion_window == window // 2


# -- pacing ----------------------------------------------------------------------------------


def test_recovery_pacer_follows_window_and_rtt() -> None:
    recovery, link, _ = with_rtt_sample(0.1)
    pacer = recovery.pacer
    assert pacer is not None
    assert pacer.rate == pytest.approx(1.25 * recovery.congestion_window / 0.1)
    now = 1.0
    for _ in range(10):
        assert recovery.next_send_time(now) == now
        link.send(APP, now)
    assert recovery.next_send_time(now) > now
    unpaced = LossRecovery(is_client=False, pacing=False)
    assert unpaced.pacer is None and unpaced.next_send_time(3.0) == 3.0


def test_recovery_drives_any_congestion_controller() -> None:
    recovery, link = confirmed_server(congestion_controller=NewReno(1500))
    link.send(APP, 0.0, 1500)
    assert recovery.bytes_in_flight == 1500 and recovery.can_send(13220)
    assert not recovery.can_send(13221)


# -- model-based -----------------------------------------------------------------------------


@given(
    st.lists(
        st.tuples(st.sampled_from(["send", "ack", "timer"]), st.integers(0, 30),
                  st.integers(1, 8)),
        max_size=60,
    )
)
def test_recovery_every_packet_settles_exactly_once(
    steps: list[tuple[str, int, int]]
) -> None:
    recovery, link = confirmed_server()
    now = 0.0
    sent: dict[int, SentPacket] = {}
    settled: set[int] = set()
    for op, a, b in steps:
        now += 0.005 * b
        if op == "send":
            for _ in range(b):
                packet = link.send(APP, now, ack_eliciting=a % 5 != 0)
                sent[packet.packet_number] = packet
        elif op == "ack" and sent:
            top = max(sent)
            pns = [pn for pn in sent if (pn * 7 + a) % b != 0 or pn == top]
            result = recovery.on_ack_received(APP, ack(pns), 0.001, now)
            for packet in result.acked + result.lost:
                assert packet.packet_number not in settled
                settled.add(packet.packet_number)
            assert {p.packet_number for p in result.acked} <= set(pns)
            assert not {p.packet_number for p in result.lost} & set(pns)
        else:
            timer = recovery.get_loss_detection_timer()
            if timer is not None:
                now = max(now, timer)
                for packet in recovery.on_loss_detection_timeout(now).lost:
                    assert packet.packet_number not in settled
                    settled.add(packet.packet_number)
        outstanding = {p.packet_number for p in recovery.outstanding(APP)}
        assert outstanding | settled == set(sent)
        assert not outstanding & settled
        assert recovery.bytes_in_flight == sum(
            sent[pn].sent_bytes for pn in outstanding if sent[pn].in_flight
        )
        # the timer runs exactly when something can still be lost or needs probing
        timer = recovery.get_loss_detection_timer()
        loss_time = recovery.space(APP).loss_time
        eliciting = any(sent[pn].ack_eliciting for pn in outstanding)
        assert (timer is not None) == (eliciting or loss_time is not None)
        if loss_time is not None:
            assert timer == loss_time
        assert timer is None or timer >= K_GRANULARITY


# -- end to end ------------------------------------------------------------------------------


def transfer(size: int, loss: float, controller: str, seed: int) -> tuple[int, int, float]:
    """Stream ``size`` bytes over a lossy 20 ms-RTT link: SendStream -> LossRecovery (with
    the named controller) -> RecvStream, acknowledging every second packet. Returns the
    packet count, the stream bytes sent (retransmissions included) and the simulated
    duration; asserts the bytes arrive intact."""
    import heapq
    import random

    from trio_zttp.quic._congestion import make_congestion_controller
    from trio_zttp.quic._flow import ReceiveWindow, SendCredit
    from trio_zttp.quic._streams import RecvStream, SendStream

    rng = random.Random(seed)
    payload = rng.randbytes(size)
    recovery = LossRecovery(
        is_client=False,
        congestion_controller=make_congestion_controller(controller),  # type: ignore[arg-type]
    )
    recovery.on_handshake_confirmed(0.0)
    credit = SendCredit(64_000)
    sender = SendStream(0, 32_000, connection=credit)
    sender.write(payload, fin=True)
    window = ReceiveWindow(64_000, 1 << 20)
    receiver = RecvStream(0, 32_000, max_window=1 << 20, connection=window)
    data_events: list[tuple[float, int, int, int, bytes, bool]] = []  # at, seq, pn, frame
    ack_events: list[tuple[float, tuple[tuple[int, int], ...]]] = []
    received = RangeSet()
    out = bytearray()
    now, pn, count, pending_acks, sent_bytes = 0.0, 0, 0, 0, 0

    def send(size_limit: int, *, probe: bool = False) -> bool:
        nonlocal pn, count, sent_bytes
        frame = sender.get_frame(size_limit)
        if frame is None:
            if not probe:
                return False
            frame = (-1, memoryview(b""), False)  # nothing to send: a PING
        offset, data, fin = frame
        sent_bytes += len(data)
        records = [(offset, len(data), fin)] if offset >= 0 else []
        packet = SentPacket(pn, APP, now, len(data) + 30, frames=records)
        recovery.on_packet_sent(packet)
        pn += 1
        count += 1
        if rng.random() >= loss:
            heapq.heappush(data_events, (now + 0.01, count, pn - 1, offset, bytes(data), fin))
        return True

    def settle(packets: list[SentPacket], acked: bool) -> None:
        for packet in packets:
            for offset, length, fin in packet.frames:
                (sender.on_data_acked if acked else sender.on_data_lost)(offset, length, fin)

    while not (receiver.at_eof and sender.is_finished):
        assert now < 600, "transfer stalled"
        while recovery.can_send(MDS) and recovery.next_send_time(now) <= now and send(1170):
            pass
        deadlines = [q[0][0] for q in (data_events, ack_events) if q]
        timer = recovery.get_loss_detection_timer()
        if timer is not None:
            deadlines.append(timer)
        if sender.has_data_to_send() and recovery.can_send(MDS):
            deadlines.append(recovery.next_send_time(now))
        now = max(now, min(deadlines))
        while data_events and data_events[0][0] <= now:
            _, _, packet_number, offset, data, fin = heapq.heappop(data_events)
            received.add(packet_number)
            if offset >= 0:
                receiver.on_stream_frame(offset, data, fin)
                out += receiver.read()
            pending_acks += 1
            if pending_acks == 2 or fin:
                pending_acks = 0
                ack_events.append((now + 0.01, received.to_ack_ranges(32)))
        while ack_events and ack_events[0][0] <= now:
            result = recovery.on_ack_received(APP, ack_events.pop(0)[1], 0.0, now)
            settle(result.acked, True)
            settle(result.lost, False)
        if (timer := recovery.get_loss_detection_timer()) is not None and timer <= now:
            fired = recovery.on_loss_detection_timeout(now)
            settle(fired.lost, False)
            for _ in range(fired.probe_packets):
                for packet in list(recovery.outstanding(APP))[:1]:
                    settle([packet], False)  # probe with the oldest unacknowledged data
                send(1170, probe=True)
        # window updates travel instantly in this model
        if (update := receiver.get_max_stream_data(now, 0.02)) is not None:
            sender.on_max_stream_data(update)
        if (update := window.get_update(now, 0.02)) is not None:
            credit.on_max(update)
    assert bytes(out) == payload
    assert sender.is_finished
    return count, sent_bytes, now


@pytest.mark.parametrize("controller", ["newreno", "cubic"])
@pytest.mark.parametrize(("loss", "seed"), [(0.0, 1), (0.05, 2), (0.2, 3)])
def test_recovery_lossy_transfer_delivers_everything(
    controller: str, loss: float, seed: int
) -> None:
    count, sent, duration = transfer(300_000, loss, controller, seed)
    assert count >= 300_000 // 1170 and sent >= 300_000
    if loss == 0.0:
        assert sent == 300_000  # nothing is retransmitted without loss
        assert duration < 1.0


def test_recovery_sent_packet_defaults_fields_and_identity() -> None:
    eliciting = SentPacket(3, APP, 1.5, 1200)
    assert (eliciting.ack_eliciting, eliciting.in_flight, eliciting.is_crypto) == (
        True, True, False)
    ack_only = SentPacket(4, APP, 1.5, 50, False)
    assert ack_only.in_flight is False and ack_only.frames == [] and ack_only.ecn is False
    padded = SentPacket(5, Epoch.INITIAL, 2.0, 1200, False, True, True, [(1,)], True)
    assert (padded.packet_number, padded.epoch, padded.sent_time, padded.sent_bytes) == (
        5, Epoch.INITIAL, 2.0, 1200)
    assert (padded.in_flight, padded.is_crypto, padded.frames, padded.ecn) == (
        True, True, [(1,)], True)
    # the sender's way (tuple.__new__ in field order) builds the same fields
    fast = tuple.__new__(SentPacket, (4, APP, 1.5, 50, False, False, False, [], False))
    assert isinstance(fast, SentPacket) and tuple(fast) == tuple(ack_only)
    # packets compare and hash by identity, as distinct packets are distinct
    assert fast != ack_only and fast == fast
    assert len({fast, ack_only, eliciting}) == 3
    assert "pn=4" in repr(fast)


@pytest.mark.parametrize("seed", range(8))
def test_recovery_timer_after_handshake_matches_rfc_formula(seed: int) -> None:
    # once the handshake is confirmed and both handshake spaces are gone, only the
    # application space arms the timer (the recovery's shortcut): the timer must still be
    # SetLossDetectionTimer's (RFC 9002 Appendix A.8), computed here from public state
    rng = random.Random(seed)
    recovery = LossRecovery(is_client=bool(seed & 1))
    now = 0.0
    pn = {Epoch.INITIAL: 0, Epoch.HANDSHAKE: 0}
    for epoch in (Epoch.INITIAL, Epoch.HANDSHAKE):
        recovery.on_packet_sent(SentPacket(pn[epoch], epoch, now, MDS))
        pn[epoch] += 1
    if seed & 2:
        recovery.on_handshake_confirmed(now)
    recovery.discard_space(Epoch.INITIAL, now)
    recovery.discard_space(Epoch.HANDSHAKE, now)
    if not seed & 2:
        recovery.on_handshake_confirmed(now)
    space = recovery.space(APP)
    next_pn = 0
    for _ in range(300):
        now += rng.choice((0.0, 0.001, 0.01, 0.05))
        step = rng.random()
        if step < 0.5:
            recovery.on_packet_sent(SentPacket(next_pn, APP, now, MDS, rng.random() < 0.8))
            next_pn += 1
        elif step < 0.85 and next_pn:
            hi = rng.randrange(max(0, next_pn - 4), next_pn)
            lo = rng.randrange(max(0, hi - 3), hi + 1)
            recovery.on_ack_received(APP, [(lo, hi)], 0.002, now)
        else:
            timer = recovery.get_loss_detection_timer()
            if timer is not None:
                now = max(now, timer)
                recovery.on_loss_detection_timeout(now)
        rtt = recovery.rtt
        expected: float | None
        if space.loss_time is not None:
            expected = space.loss_time
        elif not space.ack_eliciting_in_flight or space.time_of_last_ack_eliciting is None:
            expected = None
        else:
            expected = space.time_of_last_ack_eliciting + (
                rtt.pto_base() + rtt.max_ack_delay) * (1 << recovery.pto_count)
        assert recovery.get_loss_detection_timer() == pytest.approx(expected)
