"""Per-stream state of an HTTP/3 connection: request streams, peer unidirectional streams.

Plain mutable records with ``__slots__``; the logic that moves them lives in
:mod:`._connection`. The receive side of a request stream follows the frame-sequence table
of :mod:`._rules` (``MessageState``); the send side follows :data:`SEND_TRANSITIONS` below.
"""

from __future__ import annotations

import enum
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from typing import Final, final

from ._capsules import CapsuleParser
from ._frames import FrameParser, StreamType
from ._headers import ContentLengthTracker
from ._rules import ControlState, MessageState

__all__ = [
    "SEND_TRANSITIONS",
    "RequestStream",
    "RetiredStreams",
    "SendInput",
    "SendState",
    "StateError",
    "UniStream",
    "next_send_state",
]


class StateError(Exception):
    """The command is not allowed now: the stream or the connection is in the wrong state.

    Caller misuse, raised at once; nothing goes on the wire.
    """


class SendState(enum.StrEnum):
    """Where our side of a request stream is in its frame sequence."""

    #: Nothing sent yet (client: no request; server: no final response).
    IDLE = "idle"
    #: Header section sent: DATA, then optionally trailers.
    BODY = "body"
    #: CONNECT request sent, or 2xx response to one: DATA only, no trailers.
    TUNNEL = "tunnel"
    #: FIN sent, or the sending side was reset.
    CLOSED = "closed"


class SendInput(enum.StrEnum):
    """What the application sends on a request stream."""

    HEADERS = "headers"
    INTERIM_HEADERS = "interim_headers"
    TUNNEL_HEADERS = "tunnel_headers"
    DATA = "data"
    TRAILERS = "trailers"
    END = "end"


#: ``{state: {input: next_state}}`` for our sending side; a missing move is a
#: :class:`StateError`. Interim responses come only from servers (the connection checks).
SEND_TRANSITIONS: Final[Mapping[SendState, Mapping[SendInput, SendState]]] = {
    SendState.IDLE: {
        SendInput.HEADERS: SendState.BODY,
        SendInput.INTERIM_HEADERS: SendState.IDLE,
        SendInput.TUNNEL_HEADERS: SendState.TUNNEL,
    },
    SendState.BODY: {
        SendInput.DATA: SendState.BODY,
        SendInput.TRAILERS: SendState.CLOSED,
        SendInput.END: SendState.CLOSED,
    },
    SendState.TUNNEL: {
        SendInput.DATA: SendState.TUNNEL,
        SendInput.END: SendState.CLOSED,
    },
    SendState.CLOSED: {},
}


def next_send_state(state: SendState, event: SendInput, stream_id: int) -> SendState:
    """The send state after ``event``.

    Raises:
        StateError: ``event`` is not allowed in ``state``.
    """
    try:
        return SEND_TRANSITIONS[state][event]
    except KeyError:
        raise StateError(
            f"cannot send {event.value} on stream {stream_id} in state {state.value}"
        ) from None


@final
class RequestStream:
    """One request stream (a client-initiated bidirectional QUIC stream)."""

    # No __slots__: one is made per request, and most fields keep their class-level default
    # for the stream's whole life (2 stores instead of 12).  ``queued`` is replaced by a list
    # of the stream's own before anything is added, so the shared empty default is never
    # mutated.

    #: Receive side: the frame-sequence state (RFC 9114 §4.1).
    receive_state: MessageState = MessageState.HEADERS_EXPECTED
    #: Receive side finished: FIN processed, reset by the peer, or abandoned by us.
    receive_done: bool = False
    #: Our side.
    send_state: SendState = SendState.IDLE
    #: The request's method, once known (sent by a client, received by a server).
    request_method: bytes | None = None
    #: Content-Length check of the message being received.
    content: ContentLengthTracker | None = None
    #: The Capsule Protocol parser, once the application switched the stream to it.
    capsules: CapsuleParser | None = None
    #: Whether HTTP datagrams belong to this request (CONNECT, incl. extended CONNECT).
    datagrams: bool = False
    #: A HEADERS frame waits for QPACK encoder-stream data (RFC 9204 §2.1.2).
    blocked: bool = False
    #: Frames parsed while blocked, processed in order once unblocked: the shared empty
    #: tuple, or a list of the stream's own (see ``_queue_blocked``).
    queued: Sequence[tuple[int, bytes | bytearray]] = ()
    queued_fin: bool = False
    #: Interim (1xx) responses received (client).
    interim_count: int = 0

    def __init__(self, stream_id: int, *, max_headers_length: int) -> None:
        self.stream_id = stream_id
        self.parser = FrameParser(max_headers_length=max_headers_length)

    @property
    def done(self) -> bool:
        """Both directions are finished; the state can go."""
        return self.receive_done and self.send_state is SendState.CLOSED


@final
class UniStream:
    """A unidirectional stream opened by the peer, until its type is known and after."""

    __slots__ = ("control_state", "header", "ignored", "kind", "parser")

    def __init__(self) -> None:
        #: The stream type bytes read so far (a varint, possibly split).
        self.header = bytearray()
        #: The known type; None while unread or for an ignored (unknown/GREASE) type.
        self.kind: StreamType | None = None
        #: An unknown or reserved type: its data is discarded.
        self.ignored = False
        #: Frame parser, for the control stream.
        self.parser: FrameParser | None = None
        self.control_state = ControlState.AWAITING_SETTINGS


@final
class RetiredStreams:
    """The peer-initiated streams of one kind that are finished here, in little memory.

    QUIC may still hand us data or resets for such a stream (frames in flight); they must not
    look like a new stream. IDs below a floor are all finished; finished ones above it are
    kept as runs of consecutive IDs, which the floor swallows as the gaps fill (streams mostly
    end in order). The memory is one pair of numbers per gap, not one entry per stream: a
    stream that never ends (the peer's control stream, say) holds the floor, and a peer that
    then opens and ends any number of streams behind it adds no memory.

    Args:
        first: The first stream ID of this kind (0 for client bidirectional, 2 or 3 for
            client or server unidirectional).
    """

    __slots__ = ("_ends", "_floor", "_starts")

    def __init__(self, first: int) -> None:
        self._floor = first
        # runs above the floor, in order: IDs _starts[i], _starts[i] + 4, ... below _ends[i]
        self._starts: list[int] = []
        self._ends: list[int] = []

    def add(self, stream_id: int) -> None:
        """Mark ``stream_id`` finished."""
        floor = self._floor
        starts = self._starts
        if stream_id == floor:
            floor += 4
            if starts and starts[0] == floor:  # the gap closed: the first run joins
                floor = self._ends[0]
                del starts[0], self._ends[0]
            self._floor = floor
            return
        if stream_id < floor:
            return
        ends = self._ends
        i = bisect_right(starts, stream_id)  # runs 0..i-1 start at or below it
        if i and stream_id < ends[i - 1]:
            return  # already finished
        joins_previous = i > 0 and ends[i - 1] == stream_id
        joins_next = i < len(starts) and starts[i] == stream_id + 4
        if joins_previous and joins_next:
            ends[i - 1] = ends[i]
            del starts[i], ends[i]
        elif joins_previous:
            ends[i - 1] = stream_id + 4
        elif joins_next:
            starts[i] = stream_id
        else:
            starts.insert(i, stream_id)
            ends.insert(i, stream_id + 4)

    def __contains__(self, stream_id: int) -> bool:
        if stream_id < self._floor:
            return True
        i = bisect_right(self._starts, stream_id)
        return bool(i) and stream_id < self._ends[i - 1]

    def __len__(self) -> int:
        """How many finished IDs are held above the floor."""
        return sum(end - start for start, end in zip(self._starts, self._ends, strict=True)) // 4

    @property
    def runs(self) -> int:
        """How many runs of finished IDs are held above the floor (the memory it takes)."""
        return len(self._starts)
