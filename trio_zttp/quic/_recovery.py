"""RTT estimation, loss detection and probe timeouts (RFC 9002 §5, §6 and Appendix A).

The connection tells :class:`LossRecovery` what it sent (:meth:`LossRecovery.on_packet_sent`)
and what the peer acknowledged (:meth:`LossRecovery.on_ack_received`); recovery answers with
the packets newly acknowledged and the packets now deemed lost, keeps one timer
(:meth:`LossRecovery.get_loss_detection_timer`) and says, when it fires
(:meth:`LossRecovery.on_loss_detection_timeout`), which packets are lost or how many probes to
send in which packet-number space. Congestion control is driven through the
:class:`~trio_zttp.quic._congestion.CongestionController` protocol and pacing through
:class:`~trio_zttp.quic._congestion.Pacer`.

**What a packet carried.** :attr:`SentPacket.frames` is an opaque list owned by the
connection; recovery never looks inside it. The intended shape is one small tuple per
retransmittable frame, for example ``(FRAME_STREAM, stream, offset, length, fin)`` or
``(FRAME_CRYPTO, epoch, offset, length)``, which the connection dispatches with ``match`` when
the packet comes back in :attr:`AckResult.acked` or :attr:`AckResult.lost`. That costs one
tuple per frame and no closure or bound-method object; an ACK-only packet passes no list at all.

**Packet-number spaces** are named by :class:`~trio_zttp._tls.suites.Epoch`: ``INITIAL``,
``HANDSHAKE`` and the application space, which ``ZERO_RTT`` and ``ONE_RTT`` share (a 0-RTT
packet's own epoch is kept on the :class:`SentPacket`, so 0-RTT rejection can discard just
those packets).

**Cost.** Per space the unacknowledged packets sit in a dict in packet-number order. An ACK
walks that dict from the oldest packet only up to the frame's largest acknowledged number,
loss detection stops at the first packet that is not lost, and both are therefore
proportional to the packets they settle, not to the ACK ranges or the window.

Persistent congestion (§7.6) is established per packet-number space: a run of lost packets
with consecutive packet numbers (nothing in between was acknowledged) whose ack-eliciting
ends, both sent after the first RTT sample, are further apart than the persistent congestion
duration. RFC 9002 §7.6.2 allows using just the acknowledged space.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Final, NamedTuple, final

from .._tls.suites import Epoch
from ._ack import AckResult, on_ack_received
from ._congestion import CongestionController, NewReno, Pacer
from ._ecn import EcnValidator

__all__ = [
    "K_GRANULARITY",
    "K_INITIAL_RTT",
    "K_PACKET_THRESHOLD",
    "K_PERSISTENT_CONGESTION_THRESHOLD",
    "K_TIME_THRESHOLD",
    "AckResult",
    "LossRecovery",
    "PacketSpace",
    "RttEstimator",
    "SentPacket",
    "TimeoutResult",
]

K_PACKET_THRESHOLD: Final = 3
K_TIME_THRESHOLD: Final = 9 / 8
K_GRANULARITY: Final = 0.001
K_INITIAL_RTT: Final = 0.333
K_PERSISTENT_CONGESTION_THRESHOLD: Final = 3
DEFAULT_MAX_ACK_DELAY: Final = 0.025
# enum members bound once (a class attribute lookup on an enum is slow)
_INITIAL: Final = Epoch.INITIAL
_HANDSHAKE: Final = Epoch.HANDSHAKE
_ZERO_RTT: Final = Epoch.ZERO_RTT
_ONE_RTT: Final = Epoch.ONE_RTT
_new_tuple: Final = tuple.__new__


@final
class RttEstimator:
    """RTT estimate per RFC 9002 §5: ``latest_rtt``, ``min_rtt``, ``smoothed_rtt``, ``rttvar``.

    Before the first sample ``smoothed_rtt`` is ``initial_rtt`` and ``rttvar`` half of it;
    ``min_rtt`` and ``latest_rtt`` are 0.

    Args:
        initial_rtt: kInitialRtt (333 ms unless a previous connection's RTT is known).
        max_ack_delay: the peer's ``max_ack_delay`` transport parameter in seconds; update the
            attribute when the peer's parameters arrive.
    """

    __slots__ = (
        "first_sample_time",
        "initial_rtt",
        "latest_rtt",
        "max_ack_delay",
        "min_rtt",
        "rttvar",
        "smoothed_rtt",
    )

    def __init__(
        self, initial_rtt: float = K_INITIAL_RTT, max_ack_delay: float = DEFAULT_MAX_ACK_DELAY
    ) -> None:
        if initial_rtt <= 0:
            raise ValueError("initial_rtt must be positive")
        self.initial_rtt = initial_rtt
        self.max_ack_delay = max_ack_delay
        self.reset()

    def reset(self) -> None:
        """Forget every sample (a new path, RFC 9000 §9.4)."""
        self.latest_rtt = 0.0
        self.min_rtt = 0.0
        self.smoothed_rtt = self.initial_rtt
        self.rttvar = self.initial_rtt / 2
        self.first_sample_time: float | None = None

    @property
    def has_sample(self) -> bool:
        return self.first_sample_time is not None

    def update(
        self, latest_rtt: float, ack_delay: float, now: float, handshake_confirmed: bool
    ) -> None:
        """Take one RTT sample (RFC 9002 §5.3, Appendix A.7 ``UpdateRtt``).

        ``ack_delay`` (seconds, from the ACK frame) is capped by ``max_ack_delay`` once the
        handshake is confirmed and is subtracted only when that leaves at least ``min_rtt``.
        """
        self.latest_rtt = latest_rtt
        if self.first_sample_time is None:
            self.min_rtt = latest_rtt
            self.smoothed_rtt = latest_rtt
            self.rttvar = latest_rtt / 2
            self.first_sample_time = now
            return
        if latest_rtt < self.min_rtt:
            self.min_rtt = latest_rtt
        if handshake_confirmed and ack_delay > self.max_ack_delay:
            ack_delay = self.max_ack_delay
        adjusted = latest_rtt
        if latest_rtt >= self.min_rtt + ack_delay:
            adjusted = latest_rtt - ack_delay
        self.rttvar = 0.75 * self.rttvar + 0.25 * abs(self.smoothed_rtt - adjusted)
        self.smoothed_rtt = 0.875 * self.smoothed_rtt + 0.125 * adjusted

    def pto_base(self) -> float:
        """``smoothed_rtt + max(4 * rttvar, kGranularity)``: the PTO without max_ack_delay."""
        var = 4 * self.rttvar
        return self.smoothed_rtt + (var if var > K_GRANULARITY else K_GRANULARITY)

    def loss_delay(self) -> float:
        """The time threshold: ``9/8 * max(smoothed_rtt, latest_rtt)``, at least 1 ms."""
        rtt = self.smoothed_rtt if self.smoothed_rtt > self.latest_rtt else self.latest_rtt
        delay = K_TIME_THRESHOLD * rtt
        return delay if delay > K_GRANULARITY else K_GRANULARITY


class _SentPacketFields(NamedTuple):
    packet_number: int
    epoch: Epoch
    sent_time: float
    sent_bytes: int
    ack_eliciting: bool
    in_flight: bool
    is_crypto: bool
    frames: list[Any]
    ecn: bool


@final
class SentPacket(_SentPacketFields):
    """What recovery remembers about one sent packet (RFC 9002 Appendix A.1.1); immutable.

    A tuple, so the sender's hot path builds one without running Python code
    (``tuple.__new__(SentPacket, (fields...))`` in field order, ``in_flight`` and ``frames``
    given) and each field reads through a C-level accessor.

    Attributes:
        packet_number: the full packet number.
        epoch: the encryption level it was sent at (``ZERO_RTT`` and ``ONE_RTT`` share a space).
        sent_time: when it was sent (the driver's clock, seconds).
        sent_bytes: its size in bytes, UDP and IP headers excluded.
        ack_eliciting: whether it carries a frame other than ACK, PADDING, CONNECTION_CLOSE.
        in_flight: whether it counts toward bytes in flight (ack-eliciting or PADDING);
            ``ack_eliciting`` unless given.
        is_crypto: whether it carries CRYPTO data (the connection may prefer it for probes).
        frames: the connection's opaque record of what the packet carried (see module doc).
        ecn: whether it was sent with the ECT(0) codepoint (ECN validation counts them).
    """

    __slots__ = ()

    def __new__(
        cls,
        packet_number: int,
        epoch: Epoch,
        sent_time: float,
        sent_bytes: int,
        ack_eliciting: bool = True,
        in_flight: bool | None = None,
        is_crypto: bool = False,
        frames: list[Any] | None = None,
        ecn: bool = False,
    ) -> SentPacket:
        return _new_tuple(cls, (
            packet_number, epoch, sent_time, sent_bytes, ack_eliciting,
            ack_eliciting if in_flight is None else in_flight, is_crypto,
            [] if frames is None else frames, ecn,
        ))

    def __repr__(self) -> str:
        return (
            f"SentPacket(pn={self.packet_number}, epoch={self.epoch.name}, "
            f"sent_time={self.sent_time}, bytes={self.sent_bytes}, "
            f"ack_eliciting={self.ack_eliciting}, in_flight={self.in_flight})"
        )

    # identity, not value: two packets are never the same packet (and frames is a list)
    __eq__ = object.__eq__
    __ne__ = object.__ne__
    __hash__ = object.__hash__


@final
class PacketSpace:
    """Loss-detection state of one packet-number space (RFC 9002 Appendix A.3).

    Attributes:
        sent_packets: unacknowledged, not-yet-lost packets by packet number, in sending order.
        largest_acked: the largest packet number the peer acknowledged, None before any ACK.
        largest_sent: the largest packet number sent, None before any.
        loss_time: when the oldest unacknowledged packet crosses the time threshold.
        time_of_last_ack_eliciting: when the last ack-eliciting in-flight packet was sent.
        ack_eliciting_in_flight: how many ack-eliciting in-flight packets are unsettled.
        ecn_ce_count: the largest ECN-CE count taken from the peer in this space (without an
            ECN validator).
    """

    __slots__ = (
        "ack_eliciting_in_flight",
        "ecn_ce_count",
        "largest_acked",
        "largest_sent",
        "loss_time",
        "sent_packets",
        "time_of_last_ack_eliciting",
    )

    def __init__(self) -> None:
        self.sent_packets: dict[int, SentPacket] = {}
        self.largest_acked: int | None = None
        self.largest_sent: int | None = None
        self.loss_time: float | None = None
        self.time_of_last_ack_eliciting: float | None = None
        self.ack_eliciting_in_flight = 0
        self.ecn_ce_count = 0


class TimeoutResult(NamedTuple):
    """What to do when the loss detection timer fires."""

    lost: list[SentPacket]
    """Packets declared lost by the time threshold."""
    probe_space: Epoch | None
    """The space to send probes in (a PTO or the client's anti-deadlock probe), or None."""
    probe_packets: int
    """How many ack-eliciting probe packets to send; they bypass congestion control."""


_NOTHING: Final = TimeoutResult([], None, 0)


@final
class LossRecovery:
    """Loss detection and PTO for one connection (RFC 9002 §6, Appendix A).

    Args:
        is_client: the endpoint's role (the client's anti-deadlock PTO, §6.2.2.1).
        congestion_controller: defaults to :class:`~trio_zttp.quic._congestion.NewReno`.
        max_datagram_size: for the default controller and pacer.
        initial_rtt: kInitialRtt.
        max_ack_delay: the peer's max_ack_delay (seconds); settable later via ``rtt``.
        pacing: keep a :class:`~trio_zttp.quic._congestion.Pacer` fed from the window and RTT.
        pto_probe_packets: probes to request per PTO (RFC 9002 §6.2.4 allows one or two).
        ecn: validates the peer's ECN counts (RFC 9000 §13.4.2.1) before a CE increase counts
            as congestion; None takes the CE count of every ACK frame as it comes.

    Attributes:
        rtt: the :class:`RttEstimator`.
        congestion: the congestion controller.
        pacer: the pacer, or None when pacing is off.
        pto_count: consecutive PTOs without an acknowledgment (the backoff exponent).
        application: the application data space's :class:`PacketSpace` (what
            ``space(Epoch.ONE_RTT)`` returns, for the sender's hot path).
        has_handshake_keys: set by the connection once Handshake keys exist (the client's
            anti-deadlock probe goes to HANDSHAKE instead of INITIAL).
    """

    __slots__ = (
        "_amplification_limited",
        "_app_only",
        "_discarded",
        "_handshake",
        "_handshake_confirmed",
        "_initial",
        "_is_client",
        "_peer_validated",
        "_probe_packets",
        "_space_list",
        "_spaces",
        "_timer",
        "_timer_now",
        "application",
        "congestion",
        "ecn",
        "has_handshake_keys",
        "pacer",
        "pto_count",
        "rtt",
    )

    def __init__(
        self,
        *,
        is_client: bool,
        congestion_controller: CongestionController | None = None,
        max_datagram_size: int = 1200,
        initial_rtt: float = K_INITIAL_RTT,
        max_ack_delay: float = DEFAULT_MAX_ACK_DELAY,
        pacing: bool = True,
        pto_probe_packets: int = 2,
        ecn: EcnValidator | None = None,
    ) -> None:
        if pto_probe_packets not in (1, 2):
            raise ValueError("pto_probe_packets must be 1 or 2")
        self._is_client = is_client
        self.rtt = RttEstimator(initial_rtt, max_ack_delay)
        self.congestion: CongestionController = (
            congestion_controller
            if congestion_controller is not None
            else NewReno(max_datagram_size)
        )
        self.pacer = Pacer(max_datagram_size) if pacing else None
        if self.pacer is not None:
            self.pacer.update_rate(self.congestion.congestion_window, self.rtt.smoothed_rtt)
        initial, handshake, application = PacketSpace(), PacketSpace(), PacketSpace()
        # indexed by Epoch: ZERO_RTT and ONE_RTT are the same space object
        self._spaces = (initial, application, handshake, application)
        self.application = application
        self._initial = initial
        self._handshake = handshake
        self._space_list = (
            (_INITIAL, initial),
            (_HANDSHAKE, handshake),
            (_ONE_RTT, application),
        )
        self._probe_packets = pto_probe_packets
        self._timer: float | None = None
        # the timer is computed when read: _set_timer only records that it changed and when
        self._timer_now: float | None = None
        self._handshake_confirmed = False
        # True once only the application space can ever hold a timer: the handshake is
        # confirmed and the Initial and Handshake spaces are discarded (RFC 9001 §4.9)
        self._app_only = False
        self._discarded = 0  # bits: 1 the Initial space discarded, 2 the Handshake space
        self._peer_validated = not is_client
        self._amplification_limited = False
        self.has_handshake_keys = False
        self.pto_count = 0
        self.ecn = ecn

    # -- state the connection reports ------------------------------------------------------

    @property
    def is_client(self) -> bool:
        return self._is_client

    @property
    def handshake_confirmed(self) -> bool:
        return self._handshake_confirmed

    @property
    def peer_completed_address_validation(self) -> bool:
        """Servers: always. Clients: after a Handshake ACK or handshake confirmation."""
        return self._peer_validated

    def on_handshake_confirmed(self, now: float) -> None:
        """The handshake is confirmed (RFC 9001 §4.1.2): app-space PTO and ack_delay cap on."""
        self._handshake_confirmed = True
        self._peer_validated = True
        self._app_only = self._discarded == 3
        self._set_timer(now)

    def set_amplification_limited(self, limited: bool, now: float) -> None:
        """Server: whether the anti-amplification limit currently blocks sending.

        While blocked the PTO is not armed (§6.2.2.1). After unblocking, if
        :meth:`get_loss_detection_timer` is already at or before ``now``, the connection
        should call :meth:`on_loss_detection_timeout` at once (Appendix A.6).
        """
        self._amplification_limited = limited
        self._set_timer(now)

    def space(self, epoch: Epoch) -> PacketSpace:
        """The packet-number space ``epoch`` belongs to."""
        return self._spaces[epoch]

    def outstanding(self, epoch: Epoch) -> Iterator[SentPacket]:
        """Unacknowledged, not-lost packets of ``epoch``'s space, oldest first.

        Useful to choose probe contents (e.g. resend CRYPTO data on a handshake PTO).
        """
        return iter(list(self._spaces[epoch].sent_packets.values()))

    # -- congestion and pacing shortcuts ---------------------------------------------------

    @property
    def bytes_in_flight(self) -> int:
        return self.congestion.bytes_in_flight

    @property
    def congestion_window(self) -> int:
        return self.congestion.congestion_window

    def can_send(self, size: int) -> bool:
        """Whether the congestion window has room for ``size`` more bytes."""
        return self.congestion.can_send(size)

    def next_send_time(self, now: float) -> float:
        """When the pacer allows the next full datagram (``now`` without pacing)."""
        return now if self.pacer is None else self.pacer.next_send_time(now)

    def pto_duration(self) -> float:
        """One PTO period without backoff, max_ack_delay included (for 3*PTO timers)."""
        return self.rtt.pto_base() + self.rtt.max_ack_delay

    # -- sending -----------------------------------------------------------------------------

    def on_packet_sent(self, packet: SentPacket) -> None:
        """Record a sent packet (Appendix A.5). Packet numbers must increase per space."""
        space = self._spaces[packet.epoch]
        if space is not self.application:
            self._app_only = False  # (never after the space is discarded, but be sure)
        pn = packet.packet_number
        if space.largest_sent is not None and pn <= space.largest_sent:
            raise ValueError(f"packet number {pn} not above {space.largest_sent}")
        space.largest_sent = pn
        space.sent_packets[pn] = packet
        if packet.in_flight:
            now = packet.sent_time
            if packet.ack_eliciting:
                space.time_of_last_ack_eliciting = now
                space.ack_eliciting_in_flight += 1
            self.congestion.on_packet_sent(packet.sent_bytes, now)
            if self.pacer is not None:
                self.pacer.on_packet_sent(now, packet.sent_bytes)
            self._set_timer(now)

    def on_app_packet_sent(self, packet: SentPacket) -> None:
        """:meth:`on_packet_sent` for a 1-RTT packet whose ``in_flight`` equals its
        ``ack_eliciting`` (the sender's hot path: the pacer's bookkeeping inline)."""
        space = self.application
        pn = packet.packet_number
        largest = space.largest_sent
        if largest is not None and pn <= largest:
            raise ValueError(f"packet number {pn} not above {largest}")
        space.largest_sent = pn
        space.sent_packets[pn] = packet
        if packet.in_flight:
            now = packet.sent_time
            size = packet.sent_bytes
            if packet.ack_eliciting:
                space.time_of_last_ack_eliciting = now
                space.ack_eliciting_in_flight += 1
            self.congestion.on_packet_sent(size, now)
            pacer = self.pacer
            if pacer is not None:
                # Pacer.on_packet_sent, inline
                last = pacer._last
                if last is None or now <= last:
                    tokens = pacer._tokens - size
                else:
                    tokens = pacer._tokens + (now - last) * pacer._rate
                    if tokens > pacer._capacity:
                        tokens = pacer._capacity
                    tokens -= size
                    pacer._last = now
                pacer._tokens = tokens if tokens > 0.0 else 0.0
                if last is None:
                    pacer._last = now
            self._timer_now = now  # _set_timer

    # -- acknowledgments ---------------------------------------------------------------------

    def on_ack_received(
        self,
        epoch: Epoch,
        ack_ranges: Sequence[tuple[int, int]],
        ack_delay: float,
        now: float,
        ecn_counts: tuple[int, int, int] | None = None,
    ) -> AckResult:
        """Process one ACK frame (Appendix A.7).

        Args:
            epoch: the packet's encryption level (selects the space).
            ack_ranges: inclusive ``(smallest, largest)`` pairs, highest first, as decoded
                from the frame (not empty).
            ack_delay: the frame's ACK Delay, decoded to seconds.
            now: the current time.
            ecn_counts: the frame's (ECT(0), ECT(1), ECN-CE) counts, if it had them. With
                an :class:`~._ecn.EcnValidator` they are validated first, and only a frame
                that newly acknowledges its largest packet number is looked at.

        Raises:
            ProtocolViolation: the frame acknowledges a packet number never sent.
        """
        return on_ack_received(self, epoch, ack_ranges, ack_delay, now, ecn_counts)

    def _detect_lost(self, space: PacketSpace, now: float) -> list[SentPacket]:
        """DetectAndRemoveLostPackets plus OnPacketsLost (Appendix A.10, B.8)."""
        space.loss_time = None
        largest_acked = space.largest_acked
        sent = space.sent_packets
        if largest_acked is None or not sent:
            return []
        loss_delay = self.rtt.loss_delay()
        lost: list[SentPacket] = []
        for pn, packet in sent.items():
            if pn > largest_acked:
                break
            # "sent_time + loss_delay <= now" rather than the RFC's "sent_time <= now -
            # loss_delay": the same float expression as loss_time, so a timer set to it fires
            lose_at = packet.sent_time + loss_delay
            if lose_at <= now or largest_acked >= pn + K_PACKET_THRESHOLD:
                lost.append(packet)
            else:
                # later packets were sent later and have larger numbers: none is lost yet
                space.loss_time = lose_at
                break
        if not lost:
            return lost
        for packet in lost:
            del sent[packet.packet_number]
            if packet.ack_eliciting and packet.in_flight:
                space.ack_eliciting_in_flight -= 1
        self.congestion.on_packets_lost(lost, now)
        if self.ecn is not None:
            self.ecn.on_lost(lost)
        if self._in_persistent_congestion(lost):
            self.congestion.on_persistent_congestion(now)
        return lost

    def _in_persistent_congestion(self, lost: list[SentPacket]) -> bool:
        """RFC 9002 §7.6.2 over one batch of lost packets of one space."""
        first_sample = self.rtt.first_sample_time
        if first_sample is None or len(lost) < 2:
            return False
        rtt = self.rtt
        duration = (rtt.pto_base() + rtt.max_ack_delay) * K_PERSISTENT_CONGESTION_THRESHOLD
        start: float | None = None
        previous: int | None = None
        for packet in lost:
            if packet.sent_time <= first_sample:
                continue
            if previous is not None and packet.packet_number != previous + 1:
                start = None  # something in between was acknowledged
            previous = packet.packet_number
            if not packet.ack_eliciting or not packet.in_flight:
                continue  # (a probe on another path says nothing about this one, §9.4)
            if start is None:
                start = packet.sent_time
            elif packet.sent_time - start > duration:
                return True
        return False

    # -- the timer ---------------------------------------------------------------------------

    def get_loss_detection_timer(self) -> float | None:
        """When :meth:`on_loss_detection_timeout` should run next, or None."""
        now = self._timer_now
        if now is not None:
            self._timer_now = None
            self._compute_timer(now)
        return self._timer

    def _ack_eliciting_in_flight(self) -> int:
        (_, initial), (_, handshake), (_, application) = self._space_list
        return (
            initial.ack_eliciting_in_flight
            + handshake.ack_eliciting_in_flight
            + application.ack_eliciting_in_flight
        )

    def _earliest_loss_time(self) -> tuple[float | None, Epoch]:
        best: float | None = None
        best_epoch = _INITIAL
        for epoch, space in self._space_list:
            t = space.loss_time
            if t is not None and (best is None or t < best):
                best, best_epoch = t, epoch
        return best, best_epoch

    def _pto_time_and_space(self, now: float, in_flight: int) -> tuple[float | None, Epoch]:
        """GetPtoTimeAndSpace (Appendix A.8); ``in_flight``: ack-eliciting packets in flight."""
        backoff = 1 << self.pto_count
        duration = self.rtt.pto_base() * backoff
        if in_flight == 0:
            # the client's anti-deadlock probe runs from now
            return now + duration, (
                _HANDSHAKE if self.has_handshake_keys else _INITIAL
            )
        timeout: float | None = None
        pto_epoch = _INITIAL
        for epoch, space in self._space_list:
            if space.ack_eliciting_in_flight == 0 or space.time_of_last_ack_eliciting is None:
                continue
            if epoch is _ONE_RTT:
                if not self._handshake_confirmed:
                    return timeout, pto_epoch
                duration += self.rtt.max_ack_delay * backoff
            t = space.time_of_last_ack_eliciting + duration
            if timeout is None or t < timeout:
                timeout, pto_epoch = t, epoch
        return timeout, pto_epoch

    def _set_timer(self, now: float) -> None:
        """SetLossDetectionTimer (Appendix A.8), deferred until the timer is read.

        Every packet sent and every ACK changes the timer, but it is read only once per batch
        (the driver's ``get_timer``), so it is computed then, as of the last change's ``now``.
        """
        self._timer_now = now

    def _compute_timer(self, now: float) -> None:
        """SetLossDetectionTimer (Appendix A.8), in one pass over the spaces."""
        initial = self._initial
        handshake = self._handshake
        app = self.application
        if self._app_only or (
                self._handshake_confirmed and not initial.ack_eliciting_in_flight
                and not handshake.ack_eliciting_in_flight and initial.loss_time is None
                and handshake.loss_time is None):
            # only the application space can have a timer (the usual case once the handshake
            # is confirmed, when the peer is validated too): the same arithmetic, one space
            if app.loss_time is not None:
                self._timer = app.loss_time
            elif self._amplification_limited or not app.ack_eliciting_in_flight \
                    or app.time_of_last_ack_eliciting is None:
                self._timer = None
            else:
                rtt = self.rtt
                backoff = 1 << self.pto_count
                var = 4 * rtt.rttvar
                duration = (rtt.smoothed_rtt + (var if var > K_GRANULARITY else K_GRANULARITY)
                            ) * backoff
                duration += rtt.max_ack_delay * backoff
                self._timer = app.time_of_last_ack_eliciting + duration
            return
        loss_time: float | None = None
        in_flight = 0
        for _, space in self._space_list:
            t = space.loss_time
            if t is not None and (loss_time is None or t < loss_time):
                loss_time = t
            in_flight += space.ack_eliciting_in_flight
        if loss_time is not None:
            self._timer = loss_time
        elif self._amplification_limited or (self._peer_validated and in_flight == 0):
            self._timer = None
        else:
            self._timer, _ = self._pto_time_and_space(now, in_flight)

    def on_loss_detection_timeout(self, now: float) -> TimeoutResult:
        """Run the expired timer (Appendix A.9); a call before it is due does nothing."""
        timer = self.get_loss_detection_timer()
        if timer is None or now < timer:
            return _NOTHING
        loss_time, loss_epoch = self._earliest_loss_time()
        if loss_time is not None:
            lost = self._detect_lost(self._spaces[loss_epoch], now)
            self._set_timer(now)
            if self.pacer is not None:
                self.pacer.update_rate(self.congestion.congestion_window, self.rtt.smoothed_rtt)
            return TimeoutResult(lost, None, 0)
        in_flight = self._ack_eliciting_in_flight()
        if in_flight == 0:
            probe_epoch = _HANDSHAKE if self.has_handshake_keys else _INITIAL
            count = 1
        else:
            _, probe_epoch = self._pto_time_and_space(now, in_flight)
            count = self._probe_packets
        self.pto_count += 1
        self._set_timer(now)
        return TimeoutResult([], probe_epoch, count)

    # -- discarding state --------------------------------------------------------------------

    def discard_space(self, epoch: Epoch, now: float) -> list[SentPacket]:
        """Drop a space's packets when its keys go (RFC 9002 §6.4, Appendix A.11).

        ``INITIAL`` or ``HANDSHAKE``: every packet of the space, PTO backoff reset.
        ``ZERO_RTT`` (0-RTT rejected): only the application space's 0-RTT packets, whose
        frames the connection should then resend in 1-RTT packets. The packets leave bytes in
        flight without a congestion signal; they are returned.
        """
        if epoch == _ONE_RTT:
            raise ValueError("the application data space is never discarded")
        space = self._spaces[epoch]
        if epoch == _ZERO_RTT:
            dropped = [p for p in space.sent_packets.values() if p.epoch == _ZERO_RTT]
            for packet in dropped:
                del space.sent_packets[packet.packet_number]
        else:
            dropped = list(space.sent_packets.values())
            space.sent_packets.clear()
            space.time_of_last_ack_eliciting = None
            space.loss_time = None
            self.pto_count = 0
            self._discarded |= 1 if epoch == _INITIAL else 2
        in_flight_bytes = 0
        for packet in dropped:
            if packet.in_flight:
                in_flight_bytes += packet.sent_bytes
                if packet.ack_eliciting:
                    space.ack_eliciting_in_flight -= 1
        if in_flight_bytes:
            self.congestion.on_packets_discarded(in_flight_bytes)
        self._app_only = (self._handshake_confirmed and self._discarded == 3
                          and not self._initial.ack_eliciting_in_flight
                          and not self._handshake.ack_eliciting_in_flight)
        self._set_timer(now)
        return dropped

    def on_retry_received(self, now: float) -> list[SentPacket]:
        """A Retry arrived (RFC 9002 §6.3): forget every packet and timer; return the packets.

        Packet numbers keep increasing (RFC 9000 §17.2.5.3); the connection resends the
        returned packets' CRYPTO (and 0-RTT) data under the new Initial keys.
        """
        dropped: list[SentPacket] = []
        in_flight_bytes = 0
        for _, space in self._space_list:
            for packet in space.sent_packets.values():
                dropped.append(packet)
                if packet.in_flight:
                    in_flight_bytes += packet.sent_bytes
            space.sent_packets.clear()
            space.loss_time = None
            space.time_of_last_ack_eliciting = None
            space.ack_eliciting_in_flight = 0
        if in_flight_bytes:
            self.congestion.on_packets_discarded(in_flight_bytes)
        self.pto_count = 0
        self._timer = None
        self._timer_now = None
        return dropped
