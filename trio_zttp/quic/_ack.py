"""ACK processing: OnAckReceived (RFC 9002 Appendix A.7) and the 1-RTT single-range fast path.

:func:`on_ack_received` is the general algorithm behind
:meth:`~._recovery.LossRecovery.on_ack_received`: any packet-number space, any number of ACK
ranges.

:func:`on_app_ack_frame` is what the connection runs for an ACK or ACK_ECN frame in a 1-RTT
packet: it parses the frame and, when it holds a single range (the usual frame of a
latency-bound exchange, where everything received so far is acknowledged), processes it in
the same call: packets settled, RTT sample, ECN validation, congestion control, loss
detection, the timer and the pacer.  Any other shape (more ranges, a field it does not decode
inline, a malformed frame) makes it return None before anything changes, and the connection
takes the general way: :func:`~._frame_codec.parse_ack` then :func:`on_ack_received`, which
also raise the right errors.  Both ways give the same result for the same frame; the tests run
both on the same inputs.

Both functions are LossRecovery's own algorithm kept apart from its module; they read and
write its state (private attributes included, marked where they are).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from typing import TYPE_CHECKING, Final, NamedTuple

from .._buffer import decode_varint
from .._tls.suites import Epoch
from ._ecn import EcnState
from ._errors import ProtocolViolation

if TYPE_CHECKING:
    from ._recovery import LossRecovery, SentPacket

__all__ = ["AckResult", "on_ack_received", "on_app_ack_frame"]

_ACK_FRAME_TYPE: Final = 0x02
_INITIAL: Final = Epoch.INITIAL
_HANDSHAKE: Final = Epoch.HANDSHAKE
_ECN_CAPABLE: Final = EcnState.CAPABLE
# ECN counts are kept per packet-number space: Initial 0, Handshake 1, application 2
_ECN_SPACE: Final = {Epoch.INITIAL: 0, Epoch.ZERO_RTT: 2, Epoch.HANDSHAKE: 1, Epoch.ONE_RTT: 2}
# builds the AckResult NamedTuple without its Python-level __new__ (the ACK hot path)
_new_tuple: Final = tuple.__new__


class AckResult(NamedTuple):
    """What one ACK frame settled."""

    acked: list[SentPacket]
    """Packets newly acknowledged, in packet-number order."""
    lost: list[SentPacket]
    """Packets declared lost by this ACK, in packet-number order."""
    rtt_sample: bool
    """Whether the ACK produced an RTT sample."""


def _negated_top(ack_range: tuple[int, int]) -> int:
    return -ack_range[1]


def on_ack_received(
    recovery: LossRecovery,
    epoch: Epoch,
    ack_ranges: Sequence[tuple[int, int]],
    ack_delay: float,
    now: float,
    ecn_counts: tuple[int, int, int] | None,
) -> AckResult:
    """:meth:`~._recovery.LossRecovery.on_ack_received` (see there)."""
    space = recovery.space(epoch)
    largest = ack_ranges[0][1]
    if space.largest_sent is None or largest > space.largest_sent:
        raise ProtocolViolation(
            "ACK for a packet that was not sent", frame_type=_ACK_FRAME_TYPE
        )
    if space.largest_acked is None or largest > space.largest_acked:
        space.largest_acked = largest
    if epoch == _HANDSHAKE:
        recovery._peer_validated = True  # private: LossRecovery's own state

    sent = space.sent_packets
    acked: list[SentPacket] = []
    if sent and len(ack_ranges) == 1:
        lo = ack_ranges[0][0]  # one range (the usual ACK)
        for pn, packet in sent.items():
            if pn > largest:
                break
            if pn >= lo:
                acked.append(packet)
    elif sent:
        # the lowest range reaching the oldest unacknowledged packet (ranges descend)
        k = 0
        if len(ack_ranges) > 1:
            k = bisect_right(ack_ranges, -next(iter(sent)), key=_negated_top) - 1
            if k < 0:
                k = 0
        lo, hi = ack_ranges[k]
        for pn, packet in sent.items():
            if pn > largest:
                break
            while pn > hi:
                k -= 1
                lo, hi = ack_ranges[k]
            if pn >= lo:
                acked.append(packet)
    if not acked:
        return _new_tuple(AckResult, (acked, [], False))
    ack_eliciting = False
    for packet in acked:
        del sent[packet.packet_number]
        if packet.ack_eliciting:
            ack_eliciting = True
            if packet.in_flight:
                space.ack_eliciting_in_flight -= 1

    newest = acked[-1]
    rtt_sample = ack_eliciting and newest.packet_number == largest
    rtt = recovery.rtt
    if rtt_sample:
        rtt.update(now - newest.sent_time, 0.0 if epoch == _INITIAL else ack_delay, now,
                   recovery.handshake_confirmed)
    congestion = recovery.congestion
    ecn = recovery.ecn
    if ecn is None:
        if ecn_counts is not None and ecn_counts[2] > space.ecn_ce_count:
            space.ecn_ce_count = ecn_counts[2]
            congestion.on_ecn_ce(newest.sent_time, now)
    elif newest.packet_number == largest and ecn.active and \
            ecn.on_ack(_ECN_SPACE[epoch], acked, ecn_counts):
        congestion.on_ecn_ce(newest.sent_time, now)  # RFC 9002 §B.7

    if sent and next(iter(sent)) <= space.largest_acked:
        lost = recovery._detect_lost(space, now)  # private: LossRecovery's own step
    else:
        space.loss_time = None  # nothing up to the largest acknowledged is left
        lost = []
    congestion.on_packets_acked(acked, now, rtt.smoothed_rtt)
    if recovery.peer_completed_address_validation:
        recovery.pto_count = 0
    recovery._set_timer(now)  # private: LossRecovery's own step
    if recovery.pacer is not None:
        recovery.pacer.update_rate(congestion.congestion_window, rtt.smoothed_rtt)
    return _new_tuple(AckResult, (acked, lost, rtt_sample))


def on_app_ack_frame(
    recovery: LossRecovery, buf: memoryview | bytes, pos: int, frame_type: int,
    delay_exponent: int, now: float,
) -> tuple[list[SentPacket], list[SentPacket], bool, int] | None:
    """Parse and process a 1-RTT ACK / ACK_ECN frame holding one range, in one call.

    Args:
        recovery: the connection's loss recovery.
        buf: the packet payload.
        pos: just after the frame type byte.
        frame_type: 0x02 or 0x03.
        delay_exponent: the peer's ``ack_delay_exponent``.
        now: the current time.

    Returns:
        ``(acked, lost, rtt_sample, new_pos)`` as :func:`on_ack_received` and
        :func:`~._frame_codec.parse_ack` would give them, or None, with nothing changed, when
        the frame is not a well-formed single-range ACK whose fields this function decodes
        (the caller then takes the general way).

    Raises:
        ProtocolViolation: the frame acknowledges a packet number never sent.
    """
    # -- parse: parse_ack for one range, one- and two-byte varints inline -------------------
    try:
        byte = buf[pos]
        if byte < 0x40:
            largest = byte
            pos += 1
        elif byte < 0x80:
            largest = (byte & 0x3F) << 8 | buf[pos + 1]
            pos += 2
        else:
            largest, pos = decode_varint(buf, pos)
        byte = buf[pos]
        if byte < 0x40:
            ack_delay = byte
            pos += 1
        elif byte < 0x80:
            ack_delay = (byte & 0x3F) << 8 | buf[pos + 1]
            pos += 2
        else:
            ack_delay, pos = decode_varint(buf, pos)
        if buf[pos]:
            return None  # more than one range
        byte = buf[pos + 1]
        if byte < 0x40:
            smallest = largest - byte
            pos += 2
        elif byte < 0x80:
            smallest = largest - ((byte & 0x3F) << 8 | buf[pos + 2])
            pos += 3
        else:
            first, pos = decode_varint(buf, pos + 1)
            smallest = largest - first
        ecn_counts: tuple[int, int, int] | None = None
        if frame_type & 0x01:
            byte = buf[pos]
            if byte < 0x40:
                ect0 = byte
                pos += 1
            elif byte < 0x80:  # ECT(0) counts pass 63 after 64 marked packets
                ect0 = (byte & 0x3F) << 8 | buf[pos + 1]
                pos += 2
            else:
                ect0, pos = decode_varint(buf, pos)
            byte = buf[pos]
            if byte < 0x40:
                ect1 = byte
                pos += 1
            else:
                ect1, pos = decode_varint(buf, pos)
            byte = buf[pos]
            if byte < 0x40:
                ce = byte
                pos += 1
            else:
                ce, pos = decode_varint(buf, pos)
            ecn_counts = (ect0, ect1, ce)
    except (IndexError, ValueError):
        return None  # truncated: parse_ack raises the coded error
    if smallest < 0:
        return None  # parse_ack raises the coded error

    # -- process: on_ack_received for the application space and one range --------------------
    space = recovery.application
    largest_sent = space.largest_sent
    if largest_sent is None or largest > largest_sent:
        raise ProtocolViolation("ACK for a packet that was not sent", frame_type=_ACK_FRAME_TYPE)
    largest_acked = space.largest_acked
    if largest_acked is None or largest > largest_acked:
        space.largest_acked = largest_acked = largest
    sent = space.sent_packets
    acked: list[SentPacket]
    if largest == largest_sent and sent and next(iter(sent)) >= smallest:
        # every packet outstanding, the newest included (the usual ACK of a latency-bound
        # exchange): no search, no deletions one by one
        acked = list(sent.values())
        sent.clear()
    else:
        acked = []
        for pn, packet in sent.items():
            if pn > largest:
                break
            if pn >= smallest:
                acked.append(packet)
        if not acked:
            return acked, [], False, pos
        for packet in acked:
            del sent[packet.packet_number]
    ack_eliciting = False
    marked = 0
    for packet in acked:
        if packet.ack_eliciting:
            ack_eliciting = True
            if packet.in_flight:
                space.ack_eliciting_in_flight -= 1
        if packet.ecn:
            marked += 1
    newest = acked[-1]
    newest_is_largest = newest.packet_number == largest
    rtt_sample = ack_eliciting and newest_is_largest
    rtt = recovery.rtt
    if rtt_sample:
        latest_rtt = now - newest.sent_time
        delay = (ack_delay << delay_exponent) / 1_000_000
        if rtt.first_sample_time is None:
            rtt.update(latest_rtt, delay, now, recovery._handshake_confirmed)
        else:
            # RttEstimator.update after the first sample, inline
            rtt.latest_rtt = latest_rtt
            min_rtt = rtt.min_rtt
            if latest_rtt < min_rtt:
                rtt.min_rtt = min_rtt = latest_rtt
            # private: LossRecovery's flag, read on the hot path
            if recovery._handshake_confirmed and delay > rtt.max_ack_delay:
                delay = rtt.max_ack_delay
            adjusted = latest_rtt
            if latest_rtt >= min_rtt + delay:
                adjusted = latest_rtt - delay
            smoothed = rtt.smoothed_rtt
            rtt.rttvar = 0.75 * rtt.rttvar + 0.25 * abs(smoothed - adjusted)
            rtt.smoothed_rtt = 0.875 * smoothed + 0.125 * adjusted
    congestion = recovery.congestion
    ecn = recovery.ecn
    if ecn is None:
        if ecn_counts is not None and ecn_counts[2] > space.ecn_ce_count:
            space.ecn_ce_count = ecn_counts[2]
            congestion.on_ecn_ce(newest.sent_time, now)
    elif newest_is_largest:
        # EcnValidator.on_ack for its usual case, inline (private: the validator's last counts
        # of the application space): validated already (so a marked packet was acknowledged
        # before), the counts moved as they should and CE did not grow. Anything else goes
        # through on_ack.
        if ecn.state is _ECN_CAPABLE and ecn_counts is not None:
            last = ecn._counts[2]
            ect0 = ecn_counts[0]
            if not ecn_counts[1] and ecn_counts[2] == last[2] and last[0] <= ect0 \
                    and ect0 <= ecn.sent[2] and ect0 - last[0] >= marked:
                ecn._counts[2] = ecn_counts
            elif ecn.on_ack(2, acked, ecn_counts):
                congestion.on_ecn_ce(newest.sent_time, now)  # RFC 9002 §B.7
        elif ecn.active and ecn.on_ack(2, acked, ecn_counts):
            congestion.on_ecn_ce(newest.sent_time, now)  # RFC 9002 §B.7
    if sent and next(iter(sent)) <= largest_acked:
        lost = recovery._detect_lost(space, now)  # private: LossRecovery's own step
    else:
        space.loss_time = None  # nothing up to the largest acknowledged is left
        lost = []
    smoothed = rtt.smoothed_rtt
    congestion.on_packets_acked(acked, now, smoothed)
    if recovery._peer_validated:  # private: LossRecovery's flag
        recovery.pto_count = 0
    recovery._timer_now = now  # private: LossRecovery._set_timer(now), inline
    pacer = recovery.pacer
    if pacer is not None:
        # pacer.update_rate(congestion.congestion_window, smoothed), inline (private: the
        # pacer's state); the bucket's capacity only if the window changed
        cwnd = congestion.congestion_window
        pacer._rate = pacer._multiplier * cwnd / (smoothed if smoothed >= 1e-6 else 1e-6)
        if cwnd != pacer._window:
            pacer._window = cwnd
            capacity = pacer._burst if pacer._burst < cwnd else cwnd
            if capacity < pacer._max_datagram_size:
                capacity = pacer._max_datagram_size
            pacer._capacity = capacity
            if pacer._tokens > capacity:
                pacer._tokens = capacity
    return acked, lost, rtt_sample, pos
