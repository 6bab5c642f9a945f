"""Per packet-number-space state: keys, received packet numbers, ACK scheduling, CRYPTO streams.

A connection has three packet-number spaces (RFC 9000 §12.3): Initial, Handshake and
application data (0-RTT and 1-RTT share the last).  :class:`PacketSpace` holds what the
connection needs per space on both paths:

* receiving: the packet numbers received (a capped :class:`~._ranges.RangeSet`, the ACK
  frame's source), the largest one and when it arrived, and how many ack-eliciting packets
  wait for an acknowledgement (RFC 9000 §13.2);
* sending: the next packet number, the CRYPTO send buffer, the number of PTO probes owed;
* keys: the sealer and opener of the space's encryption level.

:class:`CryptoSendBuffer` and :class:`CryptoReceiveBuffer` are the CRYPTO streams of one
encryption level (RFC 9000 §19.6): small, so they keep the whole flight in one ``bytearray``.
"""

from __future__ import annotations

import bisect
from typing import Final, final

from .._tls.suites import Epoch
from ._crypto import PacketOpener, PacketSealer
from ._errors import TransportError, TransportErrorCode
from ._ranges import RangeSet

__all__ = [
    "MAX_CRYPTO_BUFFER",
    "MAX_CRYPTO_RANGES",
    "CryptoReceiveBuffer",
    "CryptoSendBuffer",
    "PacketSpace",
]

#: Most CRYPTO bytes we buffer ahead of the contiguous prefix (RFC 9000 §7.5 asks for at
#: least 4096); beyond it the connection closes with CRYPTO_BUFFER_EXCEEDED.
MAX_CRYPTO_BUFFER: Final = 128 * 1024
#: Separate pieces of out-of-order CRYPTO data waiting at once, at most (a peer splitting its
#: flight into many reordered frames needs far fewer; RFC 9000 §7.5 lets us close).
MAX_CRYPTO_RANGES: Final = 256
#: Ranges of received packet numbers we remember per space (the oldest go first).
MAX_ACK_RANGES: Final = 64
_CRYPTO_FRAME: Final = 0x06
_ONE_RTT: Final = Epoch.ONE_RTT


@final
class CryptoSendBuffer:
    """The CRYPTO data we send at one encryption level, with retransmission bookkeeping."""

    __slots__ = ("_acked", "_data", "_pending", "_sent_end")

    def __init__(self) -> None:
        self._data = bytearray()
        self._pending = RangeSet()  # lost ranges to send again
        self._acked = RangeSet()
        self._sent_end = 0

    def write(self, data: bytes) -> None:
        self._data += data

    @property
    def size(self) -> int:
        return len(self._data)

    def has_data(self) -> bool:
        """Whether :meth:`next_chunk` has something to send."""
        return self._sent_end < len(self._data) or bool(self._pending)

    def has_unacked(self) -> bool:
        """Whether some sent data still waits for an acknowledgement."""
        return self._sent_end > 0 and not self._acked.covers(0, self._sent_end)

    def next_chunk(self, max_length: int) -> tuple[int, bytes] | None:
        """The next ``(offset, data)`` to send (lost data first), at most ``max_length``."""
        if max_length <= 0:
            return None
        if self._pending:
            start, stop = self._pending[0]
            stop = min(stop, start + max_length)
            self._pending.subtract(start, stop)
            return start, bytes(self._data[start:stop])
        start = self._sent_end
        if start >= len(self._data):
            return None
        stop = min(len(self._data), start + max_length)
        self._sent_end = stop
        return start, bytes(self._data[start:stop])

    def on_acked(self, offset: int, length: int) -> None:
        if length:
            self._acked.add(offset, offset + length)
            self._pending.subtract(offset, offset + length)

    def on_lost(self, offset: int, length: int) -> None:
        if not length:
            return
        self._pending.add(offset, offset + length)
        for start, stop in self._acked.intersection(offset, offset + length):
            self._pending.subtract(start, stop)

    def resend_unacked(self) -> None:
        """Queue every sent, unacknowledged byte again (a PTO probe or a Retry)."""
        if self._sent_end:
            self.on_lost(0, self._sent_end)

    def reset(self) -> None:
        """Forget everything (a new connection attempt after Version Negotiation)."""
        self._data.clear()
        self._pending.clear()
        self._acked.clear()
        self._sent_end = 0


@final
class CryptoReceiveBuffer:
    """Reassembles the CRYPTO stream of one encryption level (bounded).

    Out-of-order data waits in one window buffer from the delivered offset on, its received
    parts kept as sorted, merged ranges: each frame costs a binary search and at most the
    ranges it merges, whatever a peer sends (RFC 9000 §21.7: no inefficient structures for
    adversarial input). At most :data:`MAX_CRYPTO_RANGES` separate pieces wait at once.
    """

    __slots__ = ("_buffer", "_ends", "_offset", "_starts")

    def __init__(self) -> None:
        self._offset = 0
        self._buffer = bytearray()  # the bytes from _offset on (zeros in the holes)
        self._starts: list[int] = []  # received ranges beyond _offset: sorted, disjoint,
        self._ends: list[int] = []  # never adjacent (end exclusive)

    @property
    def offset(self) -> int:
        """How many contiguous bytes were delivered."""
        return self._offset

    def add(self, offset: int, data: bytes | memoryview) -> bytes:
        """Take one CRYPTO frame; return the bytes that became contiguous (maybe empty).

        Raises:
            TransportError: CRYPTO_BUFFER_EXCEEDED when the frame lies too far ahead or the
                data waiting is in too many pieces.
        """
        end = offset + len(data)
        base = self._offset
        if end <= base:
            return b""
        if end - base > MAX_CRYPTO_BUFFER:
            raise TransportError(
                "CRYPTO data too far ahead",
                frame_type=_CRYPTO_FRAME,
                error_code=TransportErrorCode.CRYPTO_BUFFER_EXCEEDED,
            )
        if offset < base:
            data = data[base - offset :]
            offset = base
        starts, ends = self._starts, self._ends
        if offset == base and not starts:  # in order, nothing waiting: the common case
            self._offset = end
            return bytes(data)
        buffer = self._buffer
        if len(buffer) < end - base:
            buffer.extend(bytes(end - base - len(buffer)))
        buffer[offset - base : end - base] = data
        # merge [offset, end) with the ranges it overlaps or touches
        first = bisect.bisect_left(ends, offset)
        last = bisect.bisect_right(starts, end, first)
        if first < last:
            offset = min(offset, starts[first])
            end = max(end, ends[last - 1])
        starts[first:last] = (offset,)
        ends[first:last] = (end,)
        if len(starts) > MAX_CRYPTO_RANGES:
            raise TransportError(
                "CRYPTO data in too many pieces",
                frame_type=_CRYPTO_FRAME,
                error_code=TransportErrorCode.CRYPTO_BUFFER_EXCEEDED,
            )
        if starts[0] != base:
            return b""
        ready = ends[0] - base
        out = bytes(buffer[:ready])
        del buffer[:ready]
        del starts[0], ends[0]
        self._offset = base + ready
        return out

    def reset(self) -> None:
        self._offset = 0
        self._buffer.clear()
        self._starts.clear()
        self._ends.clear()


@final
class PacketSpace:
    """One packet-number space: keys, packet numbers received and sent, ACK state, CRYPTO.

    Attributes:
        epoch: INITIAL, HANDSHAKE or ONE_RTT (the application space).
        sealer: protects the packets we send (1-RTT for the application space).
        opener: removes protection from the packets we receive.
        next_pn: the packet number of the next packet we send.
        received: the packet numbers received (ACK ranges), capped.
        ack_floor: packet numbers below it count as duplicates (already acknowledged and
            forgotten, RFC 9000 §13.2.3).
        largest_received: the largest packet number received, -1 before any.
        largest_received_time: when it arrived (the ACK Delay's origin).
        largest_ack_sent: the Largest Acknowledged of the last ACK frame we sent, -1 before
            any (RFC 9001 §6.2: did we acknowledge the peer's current key phase yet?).
        ack_eliciting_unacked: ack-eliciting packets received since our last ACK frame.
        ack_deadline: when an ACK must go at the latest (the max_ack_delay timer), or None.
        ack_now: an ACK is due at once (Initial/Handshake, reordering, two packets).
        probes: ack-eliciting probe packets owed after a PTO.
        ecn_received: packets received per ECN codepoint, indexed by codepoint (0 Not-ECT is
            not counted, 1 ECT(1), 2 ECT(0), 3 CE), None until the first marked packet; from
            then on our ACK frames are ACK_ECN frames (RFC 9000 §13.4.1).
        crypto_send / crypto_receive: the CRYPTO streams of the space's encryption level.
        discarded: the keys were discarded; nothing is sent or received any more.
    """

    __slots__ = (
        "ack_deadline",
        "ack_eliciting_unacked",
        "ack_floor",
        "ack_now",
        "crypto_receive",
        "crypto_send",
        "discarded",
        "ecn_received",
        "epoch",
        "largest_ack_sent",
        "largest_received",
        "largest_received_time",
        "next_pn",
        "opener",
        "probes",
        "received",
        "sealer",
    )

    def __init__(self, epoch: Epoch) -> None:
        self.epoch = epoch
        self.sealer: PacketSealer | None = None
        self.opener: PacketOpener | None = None
        self.next_pn = 0
        self.received = RangeSet(max_ranges=MAX_ACK_RANGES)
        self.ack_floor = 0
        self.largest_received = -1
        self.largest_received_time = 0.0
        self.largest_ack_sent = -1
        self.ack_eliciting_unacked = 0
        self.ack_deadline: float | None = None
        self.ack_now = False
        self.probes = 0
        self.ecn_received: list[int] | None = None
        self.crypto_send = CryptoSendBuffer()
        self.crypto_receive = CryptoReceiveBuffer()
        self.discarded = False

    def is_duplicate(self, pn: int) -> bool:
        """Whether packet ``pn`` was already received (or is too old to tell)."""
        return pn < self.ack_floor or pn in self.received

    def on_packet_received(
        self, pn: int, ack_eliciting: bool, now: float, max_ack_delay: float
    ) -> None:
        """Record a packet that was processed; schedule the ACK (RFC 9000 §13.2.1)."""
        received = self.received
        out_of_order = pn < self.largest_received or (
            self.largest_received >= 0 and pn > self.largest_received + 1
            and ack_eliciting
        )
        received.add(pn)
        if pn > self.largest_received:
            self.largest_received = pn
            self.largest_received_time = now
        if not ack_eliciting:
            return
        self.ack_eliciting_unacked += 1
        if self.epoch != _ONE_RTT or out_of_order or self.ack_eliciting_unacked >= 2:
            self.ack_now = True
        elif self.ack_deadline is None:
            self.ack_deadline = now + max_ack_delay

    def ecn_counts(self) -> tuple[int, int, int] | None:
        """The ACK_ECN counts (ECT(0), ECT(1), ECN-CE), or None before any marked packet."""
        counts = self.ecn_received
        return None if counts is None else (counts[2], counts[1], counts[3])

    def ack_due(self, now: float) -> bool:
        """Whether an ACK frame must be sent now."""
        if self.ack_now:
            return True
        deadline = self.ack_deadline
        return deadline is not None and deadline <= now

    def wants_ack(self) -> bool:
        """Whether an ACK frame would be useful (piggybacked on a packet that goes anyway)."""
        return self.ack_eliciting_unacked > 0

    def on_ack_sent(self) -> None:
        self.ack_eliciting_unacked = 0
        self.ack_deadline = None
        self.ack_now = False

    def on_ack_acked(self, largest: int) -> None:
        """An ACK frame of ours whose largest packet number was ``largest`` was acknowledged.

        Packets up to ``largest`` need no more acknowledging (RFC 9000 §13.2.4).
        """
        if largest >= self.ack_floor:
            self.ack_floor = largest + 1
            self.received.discard_below(largest + 1)

    def discard(self) -> None:
        """Drop the keys and every piece of state (RFC 9001 §4.9)."""
        self.discarded = True
        self.sealer = None
        self.opener = None
        self.probes = 0
        self.ack_eliciting_unacked = 0
        self.ack_deadline = None
        self.ack_now = False
        self.crypto_send.reset()
        self.crypto_receive.reset()
