"""Where HTTP/3 frames and streams are allowed (RFC 9114 §4.1, §4.4, §6, §7.2), as data.

The connection consults these tables; nothing here holds connection state.

* :data:`FRAME_PLACEMENT` is RFC 9114's "HTTP/3 Frames and Stream Type Overview" table, refined
  by which endpoint may receive each frame (PUSH_PROMISE only reaches clients, MAX_PUSH_ID only
  servers); :func:`check_frame_allowed` applies it.
* :data:`MESSAGE_TRANSITIONS` is the frame sequence of one request or push stream
  (HEADERS, DATA*, trailing HEADERS; interim responses; CONNECT tunnels), h11-style
  ``{state: {input: next_state}}``; a missing move is H3_FRAME_UNEXPECTED.
* :func:`next_control_state` enforces "SETTINGS first, and only once" on the control stream.
* :func:`check_uni_stream_type`, :func:`check_goaway_id`, :func:`check_max_push_id`: the
  stream-type and identifier rules.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Final

from ._errors import FrameUnexpectedError, IdError, MissingSettingsError, StreamCreationError
from ._frames import RESERVED_HTTP2_FRAME_TYPES, FrameType, StreamType

__all__ = [
    "FRAME_PLACEMENT",
    "MESSAGE_INPUT_FRAME",
    "MESSAGE_TRANSITIONS",
    "ControlState",
    "MessageInput",
    "MessageState",
    "Role",
    "StreamKind",
    "check_frame_allowed",
    "check_goaway_id",
    "check_max_push_id",
    "check_message_frame",
    "check_uni_stream_type",
    "next_control_state",
    "next_message_state",
]


class Role(enum.StrEnum):
    """Which endpoint receives a frame or a stream."""

    CLIENT = "client"
    SERVER = "server"


class StreamKind(enum.StrEnum):
    """The three kinds of stream that carry HTTP/3 frames (RFC 9114 §6)."""

    CONTROL = "control"
    REQUEST = "request"
    PUSH = "push"


_BOTH: Final = frozenset({Role.CLIENT, Role.SERVER})
_CLIENT: Final = frozenset({Role.CLIENT})
_SERVER: Final = frozenset({Role.SERVER})

#: For each HTTP/3 frame type: the stream kinds it may arrive on, each with the endpoints that
#: may receive it there (RFC 9114 §7.2 table; §7.2.5 PUSH_PROMISE server-to-client only,
#: §7.2.7 MAX_PUSH_ID client-to-server only, §4.6 push streams flow server-to-client).
#: Every other placement of a known type is H3_FRAME_UNEXPECTED; unknown types are ignored.
FRAME_PLACEMENT: Final[Mapping[FrameType, Mapping[StreamKind, frozenset[Role]]]] = {
    FrameType.DATA: {StreamKind.REQUEST: _BOTH, StreamKind.PUSH: _CLIENT},
    FrameType.HEADERS: {StreamKind.REQUEST: _BOTH, StreamKind.PUSH: _CLIENT},
    FrameType.CANCEL_PUSH: {StreamKind.CONTROL: _BOTH},
    FrameType.SETTINGS: {StreamKind.CONTROL: _BOTH},
    FrameType.PUSH_PROMISE: {StreamKind.REQUEST: _CLIENT},
    FrameType.GOAWAY: {StreamKind.CONTROL: _BOTH},
    FrameType.MAX_PUSH_ID: {StreamKind.CONTROL: _SERVER},
}


_FRAME_TYPES: Final[Mapping[int, FrameType]] = {int(t): t for t in FrameType}


def check_frame_allowed(frame_type: int, stream_kind: StreamKind, *, is_client: bool) -> bool:
    """Apply :data:`FRAME_PLACEMENT` to a frame received on a stream of ``stream_kind``.

    Args:
        frame_type: The received frame's type.
        stream_kind: The kind of stream it arrived on.
        is_client: Whether the receiving endpoint is the client.

    Returns:
        True for a known frame that is allowed here, False for an unknown or reserved type
        (to be ignored, RFC 9114 §9).

    Raises:
        FrameUnexpectedError: a known frame out of place, or an HTTP/2-only type (RFC 9114 §7.2.8).
    """
    known = _FRAME_TYPES.get(frame_type)
    if known is None:
        if frame_type in RESERVED_HTTP2_FRAME_TYPES:
            raise FrameUnexpectedError(
                "HTTP/2 frame type reserved in HTTP/3", frame_type=frame_type
            )
        return False
    receivers = FRAME_PLACEMENT[known].get(stream_kind)
    if receivers is None or (Role.CLIENT if is_client else Role.SERVER) not in receivers:
        raise FrameUnexpectedError(
            f"{known.name} frame not allowed on a {stream_kind.value} stream received by the "
            f"{'client' if is_client else 'server'}",
            frame_type=frame_type,
        )
    return True


# --- request and push streams: the message frame sequence (RFC 9114 §4.1, §4.4) -------------


class MessageState(enum.StrEnum):
    """Where a request or push stream is in its frame sequence (receive side)."""

    #: Nothing yet, or only interim (1xx) responses: a HEADERS frame is expected.
    HEADERS_EXPECTED = "headers_expected"
    #: After the header section: DATA, then optionally one trailing HEADERS frame.
    BODY = "body"
    #: After a CONNECT request or its successful response: only DATA (RFC 9114 §4.4).
    TUNNEL = "tunnel"
    #: After the trailer section: no more HEADERS or DATA.
    DONE = "done"


class MessageInput(enum.StrEnum):
    """What the connection saw on the stream, once a HEADERS frame has been decoded."""

    #: A request header section, a final response, or (in BODY) a trailer section.
    HEADERS = "headers"
    #: An interim (1xx) response header section.
    INTERIM_HEADERS = "interim_headers"
    #: A header section that opens a tunnel: a CONNECT request (server side) or a 2xx
    #: response to one (client side), extended CONNECT included.
    TUNNEL_HEADERS = "tunnel_headers"
    DATA = "data"
    PUSH_PROMISE = "push_promise"


#: The frame type behind each :class:`MessageInput`.
MESSAGE_INPUT_FRAME: Final[Mapping[MessageInput, FrameType]] = {
    MessageInput.HEADERS: FrameType.HEADERS,
    MessageInput.INTERIM_HEADERS: FrameType.HEADERS,
    MessageInput.TUNNEL_HEADERS: FrameType.HEADERS,
    MessageInput.DATA: FrameType.DATA,
    MessageInput.PUSH_PROMISE: FrameType.PUSH_PROMISE,
}

#: ``{state: {input: next_state}}``; a missing move is H3_FRAME_UNEXPECTED (RFC 9114 §4.1:
#: "a DATA frame before any HEADERS frame, or a HEADERS or DATA frame after the trailing
#: HEADERS frame"; §4.4: only DATA once a CONNECT tunnel is up).  PUSH_PROMISE may come before,
#: between or after a response's frames, but never in a tunnel (whether it may arrive at all is
#: :data:`FRAME_PLACEMENT`'s business).
MESSAGE_TRANSITIONS: Final[Mapping[MessageState, Mapping[MessageInput, MessageState]]] = {
    MessageState.HEADERS_EXPECTED: {
        MessageInput.HEADERS: MessageState.BODY,
        MessageInput.INTERIM_HEADERS: MessageState.HEADERS_EXPECTED,
        MessageInput.TUNNEL_HEADERS: MessageState.TUNNEL,
        MessageInput.PUSH_PROMISE: MessageState.HEADERS_EXPECTED,
    },
    MessageState.BODY: {
        MessageInput.DATA: MessageState.BODY,
        MessageInput.HEADERS: MessageState.DONE,
        MessageInput.PUSH_PROMISE: MessageState.BODY,
    },
    MessageState.TUNNEL: {
        MessageInput.DATA: MessageState.TUNNEL,
    },
    MessageState.DONE: {
        MessageInput.PUSH_PROMISE: MessageState.DONE,
    },
}


def next_message_state(state: MessageState, event: MessageInput) -> MessageState:
    """The state after ``event``.

    Raises:
        FrameUnexpectedError: ``event`` is not allowed in ``state``.
    """
    try:
        return MESSAGE_TRANSITIONS[state][event]
    except KeyError:
        raise FrameUnexpectedError(
            f"{event.value} not allowed in message state {state.value}",
            frame_type=MESSAGE_INPUT_FRAME[event],
        ) from None


_FRAMES_BY_STATE: Final = {
    state: frozenset(MESSAGE_INPUT_FRAME[event] for event in moves)
    for state, moves in MESSAGE_TRANSITIONS.items()
}
_KNOWN_MESSAGE_FRAMES: Final = frozenset(MESSAGE_INPUT_FRAME.values())


def check_message_frame(state: MessageState, frame_type: int) -> None:
    """Early check, at a frame's header, that some move of ``state`` takes this frame type.

    Derived from :data:`MESSAGE_TRANSITIONS`; unknown frame types always pass.  After decoding
    a HEADERS frame the connection makes the move with :func:`next_message_state`.

    Raises:
        FrameUnexpectedError: no move of ``state`` takes a frame of this type.
    """
    if frame_type in _KNOWN_MESSAGE_FRAMES and frame_type not in _FRAMES_BY_STATE[state]:
        raise FrameUnexpectedError(
            f"{FrameType(frame_type).name} frame not allowed in message state {state.value}",
            frame_type=frame_type,
        )


# --- the control stream ----------------------------------------------------------------------


class ControlState(enum.StrEnum):
    """The peer's control stream: waiting for SETTINGS, or running."""

    AWAITING_SETTINGS = "awaiting_settings"
    READY = "ready"


def next_control_state(state: ControlState, frame_type: int) -> ControlState:
    """Enforce SETTINGS as the first and only SETTINGS frame of the control stream.

    Placement of the other frame types is :func:`check_frame_allowed`'s job.

    Raises:
        MissingSettingsError: the first frame is not SETTINGS (unknown types included, §6.2.1).
        FrameUnexpectedError: a second SETTINGS frame (§7.2.4).
    """
    if state is ControlState.AWAITING_SETTINGS:
        if frame_type != FrameType.SETTINGS:
            raise MissingSettingsError(
                "the control stream must start with SETTINGS", frame_type=frame_type
            )
        return ControlState.READY
    if frame_type == FrameType.SETTINGS:
        raise FrameUnexpectedError("second SETTINGS frame", frame_type=frame_type)
    return ControlState.READY


# --- unidirectional streams and identifiers ---------------------------------------------------


_STREAM_TYPES: Final = {int(t): t for t in StreamType}


def check_uni_stream_type(stream_type: int, *, is_client: bool) -> StreamType | None:
    """Classify a peer-initiated unidirectional stream by its type.

    Returns:
        The :class:`StreamType`, or None for an unknown or reserved type, whose data the
        receiver discards or whose reading it aborts with H3_STREAM_CREATION_ERROR; never a
        connection error (RFC 9114 §6.2).  Uniqueness of the control and QPACK streams is
        connection state: a second one is :class:`StreamCreationError`.

    Raises:
        StreamCreationError: a push stream received by a server (§6.2.2).
    """
    known = _STREAM_TYPES.get(stream_type)
    if known is None:
        return None
    if known is StreamType.PUSH and not is_client:
        raise StreamCreationError("clients cannot open push streams")
    return known


def check_goaway_id(value: int, *, is_client: bool, previous: int | None = None) -> int:
    """Validate a received GOAWAY identifier (RFC 9114 §5.2, §7.2.6).

    Args:
        value: The Stream ID (received by a client) or Push ID (received by a server).
        is_client: Whether the receiver is the client.
        previous: The identifier of the previous GOAWAY from the peer, if any.

    Raises:
        IdError: a client got a stream ID that is not client-initiated bidirectional, or the
            identifier grew.
    """
    if is_client and value % 4 != 0:
        raise IdError(
            f"GOAWAY stream ID {value} is not a request stream", frame_type=FrameType.GOAWAY
        )
    if previous is not None and value > previous:
        raise IdError(
            f"GOAWAY identifier grew from {previous} to {value}", frame_type=FrameType.GOAWAY
        )
    return value


def check_max_push_id(value: int, *, previous: int | None = None) -> int:
    """Validate a received MAX_PUSH_ID value: it may not shrink (RFC 9114 §7.2.7).

    Raises:
        IdError: ``value`` is smaller than the previous maximum.
    """
    if previous is not None and value < previous:
        raise IdError(
            f"MAX_PUSH_ID shrank from {previous} to {value}", frame_type=FrameType.MAX_PUSH_ID
        )
    return value
