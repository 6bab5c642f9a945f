"""Stream identifiers, flow-control credit and stream-count limits (RFC 9000 §2.1, §4).

* Stream-ID helpers: who opened a stream, whether it is unidirectional, which side may send.
* :class:`SendCredit`: a limit granted by the peer (MAX_DATA or MAX_STREAM_DATA) and what we
  used of it, with the BLOCKED signalling (DATA_BLOCKED / STREAM_DATA_BLOCKED).
* :class:`ReceiveWindow`: a limit we grant (MAX_DATA or MAX_STREAM_DATA), enforced on what the
  peer sends and re-advertised as the application *reads*, so unread data throttles the peer.
  The window autotunes: when the reader consumes it within about two RTTs it doubles, up to a
  maximum.
* :class:`StreamLimits`: MAX_STREAMS accounting in both directions (§4.6).

Nothing here reads a clock; autotuning takes ``now`` and the RTT as arguments.
"""

from __future__ import annotations

import enum
from typing import Final, final

from ._errors import (
    FlowControlError,
    FrameEncodingError,
    StreamLimitError,
    StreamStateViolation,
)

__all__ = [
    "MAX_STREAMS_LIMIT",
    "ReceiveWindow",
    "SendCredit",
    "StreamLimits",
    "StreamType",
    "can_receive",
    "can_send",
    "is_bidirectional",
    "is_client_initiated",
    "is_local",
    "make_stream_id",
    "stream_index",
    "stream_type",
]

MAX_STREAMS_LIMIT: Final = 1 << 60
_MAX_STREAMS_FRAME_BIDI: Final = 0x12
_MAX_STREAMS_FRAME_UNI: Final = 0x13


class StreamType(enum.IntEnum):
    """The two low bits of a stream ID (RFC 9000 §2.1)."""

    CLIENT_BIDI = 0
    SERVER_BIDI = 1
    CLIENT_UNI = 2
    SERVER_UNI = 3


def stream_type(stream_id: int) -> StreamType:
    """The stream's initiator and directionality."""
    return StreamType(stream_id & 3)


def is_client_initiated(stream_id: int) -> bool:
    return not stream_id & 1


def is_bidirectional(stream_id: int) -> bool:
    return not stream_id & 2


def is_local(stream_id: int, is_client: bool) -> bool:
    """Whether this endpoint (client when ``is_client``) opened the stream."""
    return (not stream_id & 1) == is_client


def can_send(stream_id: int, is_client: bool) -> bool:
    """Whether this endpoint may send on the stream (not the peer's unidirectional one)."""
    return is_bidirectional(stream_id) or is_local(stream_id, is_client)


def can_receive(stream_id: int, is_client: bool) -> bool:
    """Whether this endpoint may receive on the stream (not its own unidirectional one)."""
    return is_bidirectional(stream_id) or not is_local(stream_id, is_client)


def stream_index(stream_id: int) -> int:
    """The stream's sequence number within its type (``stream_id >> 2``)."""
    return stream_id >> 2


def make_stream_id(index: int, kind: StreamType) -> int:
    """The ID of the ``index``-th stream of type ``kind``."""
    return (index << 2) | kind


@final
class SendCredit:
    """Credit granted by the peer: MAX_DATA for the connection or MAX_STREAM_DATA for a stream.

    ``used`` counts the bytes (connection) or the highest offset (stream) sent so far; the
    sender may go up to ``limit``. When sending stalls on the limit, :meth:`mark_blocked`
    records it and :meth:`get_blocked` yields the limit once for a (STREAM_)DATA_BLOCKED frame.
    """

    __slots__ = ("_blocked_at", "_blocked_sent", "_limit", "_used")

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._used = 0
        self._blocked_at: int | None = None
        self._blocked_sent: int | None = None

    @property
    def limit(self) -> int:
        return self._limit

    @property
    def used(self) -> int:
        return self._used

    @property
    def available(self) -> int:
        return self._limit - self._used

    def consume(self, n: int) -> None:
        """Use ``n`` bytes of credit."""
        if n > self._limit - self._used:
            raise ValueError("flow-control credit exceeded")
        self._used += n

    def on_max(self, limit: int) -> bool:
        """A MAX_DATA / MAX_STREAM_DATA value arrived; True if it raised the limit."""
        if limit <= self._limit:
            return False
        self._limit = limit
        self._blocked_at = None
        return True

    def mark_blocked(self) -> None:
        """Sending wanted more than the limit allows."""
        if self._used >= self._limit:
            self._blocked_at = self._limit

    @property
    def is_blocked(self) -> bool:
        return self._blocked_at is not None

    @property
    def blocked_due(self) -> bool:
        """Whether :meth:`get_blocked` has a limit to report (blocked, not yet reported)."""
        at = self._blocked_at
        return at is not None and at != self._blocked_sent

    def get_blocked(self) -> int | None:
        """The limit to report in a BLOCKED frame, once per limit value; otherwise None."""
        at = self._blocked_at
        if at is None or at == self._blocked_sent:
            return None
        self._blocked_sent = at
        return at

    def on_blocked_lost(self, limit: int) -> None:
        """A BLOCKED frame carrying ``limit`` was lost: report again if still blocked there."""
        if self._blocked_sent == limit:
            self._blocked_sent = None


@final
class ReceiveWindow:
    """Credit we grant the peer: enforced on receipt, re-advertised as data is consumed.

    ``received`` is what the peer has used (highest offset for a stream, sum of highest
    offsets for the connection); ``consumed`` is what the application has read (or what
    will never be read: a reset stream's remainder). The advertised limit is
    ``consumed + window`` at the last update; an update is due once more than half of the
    window has been consumed since.

    Autotuning: when an update is due and the last window's worth was consumed faster than
    ``2 * rtt`` would consume a whole window, the window doubles, up to ``max_window``.

    Args:
        window: the initial window (the transport parameter we advertised).
        max_window: the autotuning ceiling (defaults to ``window``: no autotuning).
    """

    __slots__ = (
        "_consumed",
        "_epoch_consumed",
        "_epoch_time",
        "_limit",
        "_max_window",
        "_received",
        "_window",
    )

    def __init__(self, window: int, max_window: int | None = None) -> None:
        self._window = window
        self._max_window = (max_window if max_window is not None and max_window > window
                            else window)
        self._limit = window
        self._received = 0
        self._consumed = 0
        self._epoch_time: float | None = None
        self._epoch_consumed = 0

    @property
    def limit(self) -> int:
        """The limit currently advertised to the peer."""
        return self._limit

    @property
    def window(self) -> int:
        return self._window

    @property
    def max_window(self) -> int:
        return self._max_window

    @property
    def received(self) -> int:
        return self._received

    @property
    def consumed(self) -> int:
        return self._consumed

    def on_received(self, total: int, frame_type: int | None = None) -> None:
        """The peer's usage grew to ``total``.

        Raises:
            FlowControlError: ``total`` exceeds the advertised limit.
        """
        if total > self._limit:
            raise FlowControlError(
                f"peer sent up to {total}, limit is {self._limit}", frame_type=frame_type
            )
        if total > self._received:
            self._received = total

    def on_consumed(self, n: int) -> None:
        """The application took ``n`` more bytes (or they will never be read)."""
        self._consumed += n

    def ensure_minimum_window(self, size: int) -> None:
        """Grow the window to at least ``size`` (bounded by ``max_window``).

        A stream whose window grew calls this on the connection's window, so the connection
        limit does not become the bottleneck.
        """
        size = min(size, self._max_window)
        if size > self._window:
            self._window = size

    def update_due(self) -> bool:
        """Whether more than half of the window was consumed since the last update."""
        return self._limit - self._consumed <= self._window >> 1

    def get_update(self, now: float, rtt: float) -> int | None:
        """A new limit to advertise (MAX_DATA / MAX_STREAM_DATA), or None if not due yet."""
        consumed = self._consumed
        if not self.update_due():
            return None
        if self._epoch_time is not None and self._window < self._max_window:
            in_epoch = consumed - self._epoch_consumed
            if in_epoch > 0 and rtt > 0:
                fraction = in_epoch / self._window
                if now - self._epoch_time < 2 * rtt * fraction:
                    self._window = min(2 * self._window, self._max_window)
        self._epoch_time = now
        self._epoch_consumed = consumed
        new_limit = consumed + self._window
        if new_limit <= self._limit:
            return None
        self._limit = new_limit
        return new_limit


@final
class _LocalCounter:
    """Streams of one directionality that we open; the peer sets the limit."""

    __slots__ = ("_blocked_sent", "_limit", "_next", "kind")

    def __init__(self, kind: StreamType, limit: int) -> None:
        self.kind = kind
        self._limit = limit
        self._next = 0
        self._blocked_sent: int | None = None


@final
class _RemoteCounter:
    """Streams of one directionality that the peer opens; we set the limit."""

    __slots__ = ("_closed", "_initial", "_limit", "_next", "kind")

    def __init__(self, kind: StreamType, limit: int) -> None:
        self.kind = kind
        self._initial = limit
        self._limit = limit
        self._next = 0
        self._closed = 0


@final
class StreamLimits:
    """Stream-count limits in both directions (RFC 9000 §4.6).

    *Our* streams: :meth:`open_stream` hands out the next ID while the peer's MAX_STREAMS
    allows it, otherwise None, after which :meth:`get_streams_blocked` gives the limit for a
    STREAMS_BLOCKED frame (once per limit value).

    *The peer's* streams: :meth:`on_peer_stream` validates an ID seen in a frame and returns
    the IDs it opens (lower ones of the same type open implicitly). As streams close
    (:meth:`on_stream_closed`), :meth:`get_max_streams` raises the limit to keep the initial
    number of concurrent streams available, once half of them have been used up.

    Args:
        is_client: this endpoint's role.
        max_bidi_streams: initial_max_streams_bidi we advertise (peer-opened).
        max_uni_streams: initial_max_streams_uni we advertise (peer-opened).
        peer_max_bidi_streams: the peer's initial_max_streams_bidi (we open).
        peer_max_uni_streams: the peer's initial_max_streams_uni (we open).
    """

    __slots__ = ("_is_client", "_local", "_remote")

    def __init__(
        self,
        *,
        is_client: bool,
        max_bidi_streams: int,
        max_uni_streams: int,
        peer_max_bidi_streams: int = 0,
        peer_max_uni_streams: int = 0,
    ) -> None:
        for value in (max_bidi_streams, max_uni_streams, peer_max_bidi_streams,
                      peer_max_uni_streams):
            if not 0 <= value <= MAX_STREAMS_LIMIT:
                raise ValueError("stream limits are between 0 and 2**60")
        self._is_client = is_client
        local_bit = 0 if is_client else 1
        self._local = (
            _LocalCounter(StreamType(local_bit), peer_max_bidi_streams),
            _LocalCounter(StreamType(local_bit | 2), peer_max_uni_streams),
        )
        self._remote = (
            _RemoteCounter(StreamType(local_bit ^ 1), max_bidi_streams),
            _RemoteCounter(StreamType((local_bit ^ 1) | 2), max_uni_streams),
        )

    # -- streams we open ---------------------------------------------------------------------

    def can_open(self, bidirectional: bool) -> bool:
        counter = self._local[0 if bidirectional else 1]
        return counter._next < counter._limit

    def open_stream(self, bidirectional: bool) -> int | None:
        """The next stream ID we may open, or None when the peer's limit is reached."""
        counter = self._local[0 if bidirectional else 1]
        if counter._next >= counter._limit:
            return None
        stream_id = make_stream_id(counter._next, counter.kind)
        counter._next += 1
        return stream_id

    def peer_limit(self, bidirectional: bool) -> int:
        """How many streams of this kind the peer lets us open in total."""
        return self._local[0 if bidirectional else 1]._limit

    def on_max_streams(self, bidirectional: bool, limit: int) -> bool:
        """A MAX_STREAMS frame (or transport parameter); True if it raised the limit.

        Raises:
            FrameEncodingError: the value exceeds 2**60 (RFC 9000 §19.11).
        """
        if limit > MAX_STREAMS_LIMIT:
            raise FrameEncodingError(
                "MAX_STREAMS above 2**60",
                frame_type=_MAX_STREAMS_FRAME_BIDI if bidirectional else _MAX_STREAMS_FRAME_UNI,
            )
        counter = self._local[0 if bidirectional else 1]
        if limit <= counter._limit:
            return False
        counter._limit = limit
        return True

    def get_streams_blocked(self, bidirectional: bool) -> int | None:
        """The limit for a STREAMS_BLOCKED frame, once per limit, when we are blocked."""
        counter = self._local[0 if bidirectional else 1]
        if counter._next < counter._limit or counter._blocked_sent == counter._limit:
            return None
        counter._blocked_sent = counter._limit
        return counter._limit

    # -- streams the peer opens --------------------------------------------------------------

    def on_peer_stream(self, stream_id: int) -> range:
        """Validate a stream ID the peer referenced; return the stream IDs it newly opens.

        For a peer-initiated ID: every not-yet-open ID of the same type up to and including
        it (an empty range when already open or closed). For one of our IDs: an empty range.

        Raises:
            StreamLimitError: the ID is beyond the limit we advertised.
            StreamStateViolation: it is one of our IDs that we have not opened.
        """
        bidi = not stream_id & 2
        index = stream_id >> 2
        if is_local(stream_id, self._is_client):
            if index >= self._local[0 if bidi else 1]._next:
                raise StreamStateViolation(f"stream {stream_id} was not opened by us")
            return range(0)
        counter = self._remote[0 if bidi else 1]
        if index >= counter._limit:
            raise StreamLimitError(
                f"stream {stream_id} exceeds the limit of {counter._limit} streams"
            )
        if index < counter._next:
            return range(0)
        first = make_stream_id(counter._next, counter.kind)
        counter._next = index + 1
        return range(first, stream_id + 4, 4)

    def on_stream_closed(self, stream_id: int) -> None:
        """A peer-initiated stream is finished and forgotten (credits MAX_STREAMS)."""
        if is_local(stream_id, self._is_client):
            return
        self._remote[0 if not stream_id & 2 else 1]._closed += 1

    def local_limit(self, bidirectional: bool) -> int:
        """The MAX_STREAMS value we currently advertise for peer-opened streams."""
        return self._remote[0 if bidirectional else 1]._limit

    def max_streams_due(self, bidirectional: bool) -> bool:
        """Whether :meth:`get_max_streams` would raise the limit now (no side effect)."""
        counter = self._remote[0 if bidirectional else 1]
        target = min(counter._closed + counter._initial, MAX_STREAMS_LIMIT)
        return target - counter._limit >= max(1, counter._initial >> 1)

    def get_max_streams(self, bidirectional: bool) -> int | None:
        """A raised limit for a MAX_STREAMS frame when half the concurrency was used up."""
        if not self.max_streams_due(bidirectional):
            return None
        counter = self._remote[0 if bidirectional else 1]
        target = min(counter._closed + counter._initial, MAX_STREAMS_LIMIT)
        counter._limit = target
        return target
