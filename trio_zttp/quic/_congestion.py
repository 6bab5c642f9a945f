"""Congestion control (RFC 9002 §7, Appendix B; RFC 9438) and pacing (RFC 9002 §7.7).

:class:`LossRecovery <trio_zttp.quic._recovery.LossRecovery>` drives a controller through the
:class:`CongestionController` protocol; two controllers implement it:

* :class:`NewReno`, the RFC 9002 reference: slow start, a recovery period, congestion avoidance
  adding one datagram per window acknowledged (byte counting, RFC 3465, so no integer drift).
* :class:`Cubic`, RFC 9438: β = 0.7, C = 0.4, the cubic window function around ``W_max``, the
  Reno-friendly estimate ``W_est``, fast convergence, and application-limited periods excluded
  from the cubic clock.

Both share the RFC 9002 recovery-period rule: a congestion event at time ``now`` starts a
recovery period; losses and ECN-CE reports for packets *sent* at or before that time do not
reduce the window again, and the window does not grow on their acknowledgment.

A controller does not read a clock: every method that needs time takes ``now`` (seconds, the
driver's monotonic clock). Windows are in bytes.

**Application-limited periods (RFC 9002 §7.8).** Each time the sender stops it tells the
controller why, through :meth:`CongestionController.set_app_limited`: for lack of data or of
flow-control credit (app-limited, unless the window has no room for another full datagram
anyway), or because the window or the pacer stopped it.  A packet sent that leaves no room
for another full datagram marks the window as in use too.  An acknowledged packet grows the
window only if the sender is not app-limited, or if the window was last in full use (or the
pacer stopped the sender) at or after the time the packet was sent.  So a latency-bound
exchange (one small request at a time) never grows the window, and a bulk transfer grows it
as before, including for the packets sent just before the application ran dry.  CUBIC also
stops its clock over app-limited periods (RFC 9438 §5.8).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Final, Literal, Protocol, final

__all__ = [
    "K_LOSS_REDUCTION_FACTOR",
    "CongestionController",
    "Cubic",
    "NewReno",
    "PacketInfo",
    "Pacer",
    "initial_window",
    "make_congestion_controller",
    "minimum_window",
]

K_LOSS_REDUCTION_FACTOR: Final = 0.5
CUBIC_BETA: Final = 0.7
CUBIC_C: Final = 0.4
CUBIC_ALPHA: Final = 3 * (1 - CUBIC_BETA) / (1 + CUBIC_BETA)
_INF: Final = math.inf
_MINUS_INF: Final = -math.inf


def initial_window(max_datagram_size: int) -> int:
    """RFC 9002 §7.2: ``min(10 * mds, max(14720, 2 * mds))``."""
    return min(10 * max_datagram_size, max(14720, 2 * max_datagram_size))


def minimum_window(max_datagram_size: int) -> int:
    """RFC 9002 §7.2: ``2 * mds``."""
    return 2 * max_datagram_size


class PacketInfo(Protocol):
    """What a controller reads from a sent packet (``SentPacket`` satisfies it)."""

    @property
    def sent_time(self) -> float: ...
    @property
    def sent_bytes(self) -> int: ...
    @property
    def in_flight(self) -> bool: ...


class CongestionController(Protocol):
    """The interface loss recovery uses; windows and byte counts are in bytes."""

    app_limited: bool
    """True while the sender has less to send than the window allows (see
    :meth:`set_app_limited`, which also keeps the time the window last limited the sender;
    setting the attribute directly makes every packet acknowledged meanwhile not grow it)."""

    @property
    def congestion_window(self) -> int: ...
    @property
    def bytes_in_flight(self) -> int: ...
    @property
    def ssthresh(self) -> float: ...

    def can_send(self, size: int) -> bool:
        """Whether a packet of ``size`` bytes fits in the window now."""
        ...

    def on_packet_sent(self, sent_bytes: int, now: float) -> None:
        """An in-flight packet was sent."""
        ...

    def set_app_limited(self, app_limited: bool, now: float) -> None:
        """The sender stopped at ``now``: True for lack of data or flow-control credit, False
        when the window or the pacer stopped it (RFC 9002 §7.8).  True with no room left in
        the window for a full datagram counts as False."""
        ...

    def on_packets_acked(
        self, packets: Iterable[PacketInfo], now: float, smoothed_rtt: float
    ) -> None:
        """Packets were newly acknowledged (those not ``in_flight`` are skipped)."""
        ...

    def on_packets_lost(self, packets: Iterable[PacketInfo], now: float) -> None:
        """Packets were declared lost (those not ``in_flight`` are skipped)."""
        ...

    def on_packets_discarded(self, sent_bytes: int) -> None:
        """In-flight bytes whose keys were discarded: no congestion signal (RFC 9002 §6.4)."""
        ...

    def on_persistent_congestion(self, now: float) -> None:
        """RFC 9002 §7.6: collapse to the minimum window."""
        ...

    def reset(self) -> None:
        """A new path (RFC 9000 §9.4): back to the initial window and slow start; the bytes in
        flight stay counted."""
        ...

    def on_ecn_ce(self, sent_time: float, now: float) -> None:
        """The peer's ECN-CE count grew; ``sent_time`` is the largest acked packet's."""
        ...


class _WindowController:
    """Bookkeeping shared by NewReno and CUBIC: bytes in flight, slow start, recovery."""

    __slots__ = (
        "_app_limited_since",
        "_bytes_in_flight",
        "_cwnd",
        "_cwnd_limited_at",
        "_max_datagram_size",
        "_minimum_window",
        "_recovery_start",
        "_ssthresh",
        "app_limited",
    )

    def __init__(self, max_datagram_size: int = 1200) -> None:
        if max_datagram_size < 1200:
            raise ValueError("max_datagram_size must be at least 1200")
        self._max_datagram_size = max_datagram_size
        self._minimum_window = minimum_window(max_datagram_size)
        self._cwnd: float = initial_window(max_datagram_size)
        self._ssthresh: float = math.inf
        self._bytes_in_flight = 0
        self._recovery_start: float | None = None
        self.app_limited = False
        # when the window (or the pacer) last stopped the sender: packets sent until then
        # grow the window even if the sender is app-limited now
        self._cwnd_limited_at = -math.inf
        self._app_limited_since: float | None = None  # CUBIC's clock stop (RFC 9438 §5.8)

    def reset(self) -> None:
        self._cwnd = initial_window(self._max_datagram_size)
        self._ssthresh = math.inf
        self._recovery_start = None
        self.app_limited = False
        self._cwnd_limited_at = -math.inf
        self._app_limited_since = None

    @property
    def congestion_window(self) -> int:
        """The congestion window in bytes."""
        return int(self._cwnd)

    @property
    def bytes_in_flight(self) -> int:
        """Bytes sent in in-flight packets that are neither acknowledged, lost nor discarded."""
        return self._bytes_in_flight

    @property
    def ssthresh(self) -> float:
        """The slow start threshold in bytes (``math.inf`` until the first congestion event)."""
        return self._ssthresh

    @property
    def max_datagram_size(self) -> int:
        return self._max_datagram_size

    @property
    def in_slow_start(self) -> bool:
        return self._cwnd < self._ssthresh

    def in_recovery(self, sent_time: float) -> bool:
        """Whether a packet sent at ``sent_time`` belongs to the current recovery period."""
        return self._recovery_start is not None and sent_time <= self._recovery_start

    def can_send(self, size: int) -> bool:
        return self._bytes_in_flight + size <= self._cwnd

    def on_packet_sent(self, sent_bytes: int, now: float) -> None:
        in_flight = self._bytes_in_flight + sent_bytes
        self._bytes_in_flight = in_flight
        if in_flight + self._max_datagram_size > self._cwnd:
            self._cwnd_limited_at = now  # no room for another datagram: the window is in use

    def set_app_limited(self, app_limited: bool, now: float) -> None:
        if not app_limited or self._bytes_in_flight + self._max_datagram_size > self._cwnd:
            # out of data with a full window is not "underutilized"
            self._cwnd_limited_at = now
            app_limited = False
        if app_limited != self.app_limited:
            self.app_limited = app_limited
            self._app_limited_clock(now)

    def on_packets_discarded(self, sent_bytes: int) -> None:
        self._bytes_in_flight = max(0, self._bytes_in_flight - sent_bytes)

    def on_packets_acked(
        self, packets: Iterable[PacketInfo], now: float, smoothed_rtt: float
    ) -> None:
        acked = 0
        growing = 0
        # a packet grows the window if sent after the recovery period started (RFC 9002
        # §7.3.2) and, while app-limited, before the window last limited the sender (§7.8)
        recovery_start = self._recovery_start
        if recovery_start is None:
            recovery_start = _MINUS_INF
        limited_at = self._cwnd_limited_at if self.app_limited else _INF
        for packet in packets:
            if not packet.in_flight:
                continue
            size = packet.sent_bytes
            acked += size
            if recovery_start < packet.sent_time <= limited_at:
                growing += size
        in_flight = self._bytes_in_flight - acked
        self._bytes_in_flight = in_flight if in_flight > 0 else 0
        if self.app_limited or self._app_limited_since is not None:
            self._app_limited_clock(now)
        if growing:
            if self._cwnd < self._ssthresh:
                self._cwnd += growing  # slow start (both controllers): _grow's first step
            else:
                self._grow(growing, now, smoothed_rtt)

    def on_packets_lost(self, packets: Iterable[PacketInfo], now: float) -> None:
        lost = 0
        last_sent: float | None = None
        for packet in packets:
            if not packet.in_flight:
                continue
            lost += packet.sent_bytes
            if last_sent is None or packet.sent_time > last_sent:
                last_sent = packet.sent_time
        self._bytes_in_flight = max(0, self._bytes_in_flight - lost)
        if last_sent is not None:
            self._congestion_event(last_sent, now)

    def on_ecn_ce(self, sent_time: float, now: float) -> None:
        self._congestion_event(sent_time, now)

    def on_persistent_congestion(self, now: float) -> None:
        self._cwnd = self._minimum_window
        self._recovery_start = None

    def _congestion_event(self, sent_time: float, now: float) -> None:
        if self.in_recovery(sent_time):
            return
        self._recovery_start = now
        self._reduce(now)

    # subclass hooks
    def _app_limited_clock(self, now: float) -> None:
        """An ACK while the application limits sending, or the first after it did."""

    def _grow(self, acked_bytes: int, now: float, smoothed_rtt: float) -> None:
        raise NotImplementedError

    def _reduce(self, now: float) -> None:
        raise NotImplementedError


@final
class NewReno(_WindowController):
    """NewReno as specified by RFC 9002 §7 and Appendix B.

    Congestion avoidance counts acknowledged bytes and adds one ``max_datagram_size`` per
    congestion window's worth (the RFC's ``mds * acked / cwnd`` without rounding loss).
    """

    __slots__ = ("_ca_acked",)

    def __init__(self, max_datagram_size: int = 1200) -> None:
        super().__init__(max_datagram_size)
        self._ca_acked = 0

    def _grow(self, acked_bytes: int, now: float, smoothed_rtt: float) -> None:
        if self._cwnd < self._ssthresh:
            self._cwnd += acked_bytes
            return
        self._ca_acked += acked_bytes
        while self._ca_acked >= self._cwnd:
            self._ca_acked -= int(self._cwnd)
            self._cwnd += self._max_datagram_size

    def _reduce(self, now: float) -> None:
        self._ssthresh = int(self._cwnd * K_LOSS_REDUCTION_FACTOR)
        self._cwnd = max(self._ssthresh, self._minimum_window)
        self._ca_acked = 0


@final
class Cubic(_WindowController):
    """CUBIC (RFC 9438) in bytes, with Reno slow start (no HyStart++).

    Args:
        max_datagram_size: the path's datagram size (the RFC's MSS).
        fast_convergence: lower ``W_max`` further on a loss below the previous ``W_max``
            (RFC 9438 §4.7; SHOULD be on when sharing a bottleneck with other flows).
    """

    __slots__ = (
        "_cwnd_epoch",
        "_cwnd_prior",
        "_fast_convergence",
        "_k",
        "_t_epoch",
        "_w_est",
        "_w_max",
    )

    def __init__(self, max_datagram_size: int = 1200, *, fast_convergence: bool = True) -> None:
        super().__init__(max_datagram_size)
        self._fast_convergence = fast_convergence
        self._w_max: float | None = None  # None: "the cwnd at the start of avoidance", K = 0
        self._k = 0.0
        self._t_epoch: float | None = None
        self._cwnd_epoch = 0.0
        self._cwnd_prior = 0.0
        self._w_est = 0.0

    def reset(self) -> None:
        super().reset()
        self._w_max = None
        self._k = 0.0
        self._t_epoch = None
        self._cwnd_epoch = self._cwnd_prior = self._w_est = 0.0

    @property
    def w_max(self) -> float | None:
        """``W_max`` in bytes, None before the first congestion event."""
        return self._w_max

    @property
    def k(self) -> float:
        """``K``: seconds from the start of avoidance until the window is back at ``W_max``."""
        return self._k

    def w_cubic(self, t: float) -> float:
        """``W_cubic(t)`` in bytes, ``t`` seconds into the current avoidance stage."""
        w_max = self._w_max if self._w_max is not None else self._cwnd_epoch
        return CUBIC_C * (t - self._k) ** 3 * self._max_datagram_size + w_max

    def _app_limited_clock(self, now: float) -> None:
        # RFC 9438 §5.8: the cubic clock does not run while the application is the limit
        if self.app_limited:
            if self._app_limited_since is None:
                self._app_limited_since = now
        elif self._app_limited_since is not None:
            if self._t_epoch is not None:
                self._t_epoch += now - self._app_limited_since
            self._app_limited_since = None

    def _grow(self, acked_bytes: int, now: float, smoothed_rtt: float) -> None:
        mds = self._max_datagram_size
        if self._cwnd < self._ssthresh:
            self._cwnd += acked_bytes
            return
        if self._t_epoch is None:
            # start of a congestion avoidance stage
            self._t_epoch = now
            self._cwnd_epoch = self._cwnd
            self._w_est = self._cwnd
            if self._w_max is None:
                self._k = 0.0
                if self._cwnd_prior == 0.0:
                    self._cwnd_prior = self._cwnd
            else:
                excess = max(0.0, (self._w_max - self._cwnd) / mds)
                self._k = (excess / CUBIC_C) ** (1.0 / 3.0)
        cwnd = self._cwnd
        alpha = 1.0 if self._w_est >= self._cwnd_prior else CUBIC_ALPHA
        self._w_est += alpha * acked_bytes * mds / cwnd
        t = now - self._t_epoch
        if self.w_cubic(t) < self._w_est:
            self._cwnd = max(cwnd, self._w_est)  # Reno-friendly region
            return
        target = self.w_cubic(t + smoothed_rtt)
        if target < cwnd:
            target = cwnd
        elif target > 1.5 * cwnd:
            target = 1.5 * cwnd
        self._cwnd = cwnd + (target - cwnd) * acked_bytes / cwnd

    def _reduce(self, now: float) -> None:
        cwnd = self._cwnd
        self._cwnd_prior = cwnd
        if self._fast_convergence and self._w_max is not None and cwnd < self._w_max:
            self._w_max = cwnd * (1 + CUBIC_BETA) / 2
        else:
            self._w_max = cwnd
        self._ssthresh = max(cwnd * CUBIC_BETA, self._minimum_window)
        self._cwnd = self._ssthresh
        self._t_epoch = None

    def on_persistent_congestion(self, now: float) -> None:
        # RFC 9438 §4.8: like a timeout; the next avoidance stage uses K = 0 and W_max = the
        # window at its start
        super().on_persistent_congestion(now)
        self._w_max = None
        self._t_epoch = None


@final
class Pacer:
    """A token bucket that spreads in-flight packets over the RTT (RFC 9002 §7.7).

    The bucket fills at ``N * congestion_window / smoothed_rtt`` bytes per second (N = 1.25)
    and holds at most ``burst_packets`` datagrams (never more than the window). Packets that
    carry only ACK frames should bypass the pacer.

    Args:
        max_datagram_size: bytes per full datagram.
        burst_packets: bucket capacity in datagrams.
        multiplier: RFC 9002's ``N``.
    """

    __slots__ = ("_capacity", "_last", "_max_datagram_size", "_multiplier", "_burst", "_rate",
                 "_tokens", "_window")

    def __init__(
        self, max_datagram_size: int = 1200, *, burst_packets: int = 10, multiplier: float = 1.25
    ) -> None:
        self._max_datagram_size = max_datagram_size
        self._burst = burst_packets * max_datagram_size
        self._multiplier = multiplier
        self._capacity: float = self._burst
        self._tokens: float = self._burst
        self._rate = math.inf
        self._last: float | None = None
        self._window = -1  # the congestion window the capacity was computed for

    @property
    def rate(self) -> float:
        """Bytes per second (``math.inf`` until :meth:`update_rate` is called)."""
        return self._rate

    def update_rate(self, congestion_window: int, smoothed_rtt: float) -> None:
        """Recompute the fill rate and capacity from the window and the smoothed RTT."""
        if smoothed_rtt < 1e-6:
            smoothed_rtt = 1e-6
        self._rate = self._multiplier * congestion_window / smoothed_rtt
        if congestion_window == self._window:
            return  # the same capacity (the tokens never exceed it)
        self._window = congestion_window
        capacity = self._burst if self._burst < congestion_window else congestion_window
        if capacity < self._max_datagram_size:
            capacity = self._max_datagram_size
        self._capacity = capacity
        if self._tokens > capacity:
            self._tokens = capacity

    def _refill(self, now: float) -> float:
        last = self._last
        if last is None or now <= last:
            return self._tokens
        tokens = self._tokens + (now - last) * self._rate
        return tokens if tokens < self._capacity else self._capacity

    def next_send_time(self, now: float) -> float:
        """When a full datagram may go: ``now`` if the bucket holds one, else later."""
        tokens = self._refill(now)
        if tokens >= self._max_datagram_size:
            return now
        return now + (self._max_datagram_size - tokens) / self._rate

    def on_packet_sent(self, now: float, size: int) -> None:
        """Take ``size`` bytes out of the bucket."""
        tokens = self._refill(now) - size
        self._tokens = tokens if tokens > 0.0 else 0.0
        if self._last is None or now > self._last:
            self._last = now


def make_congestion_controller(
    name: Literal["newreno", "cubic"], max_datagram_size: int = 1200
) -> CongestionController:
    """A new controller by name: ``"newreno"`` or ``"cubic"``."""
    if name == "newreno":
        return NewReno(max_datagram_size)
    if name == "cubic":
        return Cubic(max_datagram_size)
    raise ValueError(f"unknown congestion controller {name!r}")
