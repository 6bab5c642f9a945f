"""Events an :class:`~trio_zttp.h3.Connection` reports through ``next_event()``.

Pure data: frozen, no references to the connection or its buffers. Dispatch with ``match``::

    while (event := h3_conn.next_event()) is not None:
        match event:
            case h3.HeadersReceived(stream_id=sid, headers=headers):
                ...
            case h3.DataReceived(stream_id=sid, data=data, end_stream=end):
                ...

Events that belong to one request stream carry its ``stream_id`` (a client-initiated
bidirectional QUIC stream ID); the others are connection-wide.
"""

from __future__ import annotations

from typing import final

import attrs

from ._settings import Settings

__all__ = [
    "CapsuleReceived",
    "ConnectionTerminated",
    "DataReceived",
    "DatagramReceived",
    "Event",
    "GoawayReceived",
    "HeadersReceived",
    "SettingsReceived",
    "StopSendingReceived",
    "StreamReset",
    "TrailersReceived",
]

#: A field section: (name, value) pairs in wire order, names lowercase.
FieldList = list[tuple[bytes, bytes]]


class Event:
    """Base class of every HTTP/3 event."""

    __slots__ = ()


@final
@attrs.frozen(kw_only=True)
class HeadersReceived(Event):
    """A header section arrived: a request (server side) or a response (client side).

    The header section has been validated (pseudo-header fields, lowercase names, no
    connection-specific fields, one consistent Content-Length); a malformed one never becomes
    an event, it resets the stream with H3_MESSAGE_ERROR instead.
    """

    #: The request stream.
    stream_id: int
    #: The decoded field section, pseudo-header fields first.
    headers: FieldList
    #: True when the peer ended the stream with this header section (no content follows).
    end_stream: bool
    #: True for an interim (1xx) response; the final response follows on the same stream.
    interim: bool = False


@final
@attrs.frozen(kw_only=True)
class TrailersReceived(Event):
    """A trailer section arrived; it ends the message (nothing but the stream's end follows)."""

    #: The request stream.
    stream_id: int
    #: The decoded trailer fields (no pseudo-header fields).
    headers: FieldList


@final
@attrs.frozen(kw_only=True)
class DataReceived(Event):
    """Message content (or tunnel data after CONNECT) arrived, in order.

    ``data`` may be empty when only the end of the stream arrived.
    """

    #: The request stream.
    stream_id: int
    #: The bytes, in order from the last event on this stream.
    data: bytes
    #: True when the peer ended the stream after these bytes.
    end_stream: bool


@final
@attrs.frozen(kw_only=True)
class DatagramReceived(Event):
    """An HTTP datagram arrived for a request stream (RFC 9297).

    It came either in a QUIC DATAGRAM frame (Quarter Stream ID prefix) or, on a stream using
    the Capsule Protocol, in a DATAGRAM capsule; both look the same here.
    """

    #: The request stream the datagram belongs to.
    stream_id: int
    #: The HTTP datagram payload.
    data: bytes


@final
@attrs.frozen(kw_only=True)
class CapsuleReceived(Event):
    """A capsule of a type this layer does not handle arrived on a Capsule Protocol stream.

    DATAGRAM capsules become :class:`DatagramReceived`; reserved (GREASE) capsule types are
    skipped. Anything else is handed to the application, which drops what it does not know
    (RFC 9297 §3.2).
    """

    #: The request stream.
    stream_id: int
    #: The Capsule Type.
    capsule_type: int
    #: The Capsule Value.
    value: bytes


@final
@attrs.frozen(kw_only=True)
class SettingsReceived(Event):
    """The peer's SETTINGS frame arrived (the first frame of its control stream)."""

    #: The peer's settings.
    settings: Settings


@final
@attrs.frozen(kw_only=True)
class GoawayReceived(Event):
    """The peer is shutting down gracefully (RFC 9114 §5.2).

    A client gets the first request stream ID the server will not process: requests on
    streams below it may complete, those at or above it were not processed and can be
    retried on another connection, and no new request may be opened here. A server gets a
    push ID (meaningless here: server push is not implemented).
    """

    #: The GOAWAY identifier: a request stream ID (received by a client) or a push ID
    #: (received by a server).
    identifier: int


@final
@attrs.frozen(kw_only=True)
class StreamReset(Event):
    """A request stream was aborted.

    Either the peer reset its sending side (RESET_STREAM, ``by_peer`` true), or this layer
    aborted both directions because the peer broke a stream-level rule (a malformed message,
    H3_MESSAGE_ERROR; an incomplete request, H3_REQUEST_INCOMPLETE ...; ``by_peer`` false).
    """

    #: The request stream.
    stream_id: int
    #: The HTTP/3 error code (see :class:`~trio_zttp.h3.ErrorCode`).
    error_code: int
    #: True when the peer reset the stream; False when this layer aborted it.
    by_peer: bool = True


@final
@attrs.frozen(kw_only=True)
class StopSendingReceived(Event):
    """The peer asked us to stop sending on a request stream (STOP_SENDING).

    The sending side is reset with the same code; further sends on it are refused.
    """

    #: The request stream.
    stream_id: int
    #: The HTTP/3 error code the peer gave.
    error_code: int


@final
@attrs.frozen(kw_only=True)
class ConnectionTerminated(Event):
    """The connection is closed; no more events follow.

    Reported once: when the peer closes (or the transport times out), when this layer closes
    because the peer broke an HTTP/3 or QPACK rule (``by_peer`` false, ``error_code`` from
    :class:`~trio_zttp.h3.ErrorCode`), or when the application calls ``close()``.
    """

    #: The error code (an HTTP/3 code for application closes, else a QUIC transport code).
    error_code: int
    #: The reason phrase.
    reason_phrase: str
    #: True when the peer or the transport ended the connection; False when we did.
    by_peer: bool
