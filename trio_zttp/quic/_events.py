"""Events a :class:`~trio_zttp.quic.Connection` reports through ``next_event()``.

Pure data: frozen, no references to the connection or its buffers. Dispatch with ``match``.
"""

from __future__ import annotations

from typing import final

import attrs

__all__ = [
    "ConnectionIdIssued",
    "ConnectionIdRetired",
    "ConnectionTerminated",
    "DatagramFrameReceived",
    "Event",
    "HandshakeCompleted",
    "NewTokenReceived",
    "PathChanged",
    "PingAcknowledged",
    "SessionTicketReceived",
    "StopSendingReceived",
    "StreamDataReceived",
    "StreamReset",
]


class Event:
    """Base class of every QUIC event."""

    __slots__ = ()


@final
@attrs.frozen(kw_only=True)
class HandshakeCompleted(Event):
    """The TLS handshake finished; 1-RTT keys are in place."""

    #: The negotiated ALPN protocol.
    alpn_protocol: str | None
    #: True when the session was resumed from a ticket (PSK).
    session_resumed: bool
    #: True when the server accepted our (client) or the client's (server) 0-RTT data.
    early_data_accepted: bool


@final
@attrs.frozen(kw_only=True)
class StreamDataReceived(Event):
    """Data arrived on a stream, in order."""

    #: The QUIC stream ID.
    stream_id: int
    #: The data, in order from the last event on this stream.
    data: bytes
    #: True when this is the last data of the stream (FIN).
    end_stream: bool


@final
@attrs.frozen(kw_only=True)
class StreamReset(Event):
    """The peer reset its sending part of a stream (RESET_STREAM)."""

    #: The QUIC stream ID.
    stream_id: int
    #: The application error code the peer gave.
    error_code: int


@final
@attrs.frozen(kw_only=True)
class StopSendingReceived(Event):
    """The peer asked us to stop sending on a stream (STOP_SENDING)."""

    #: The QUIC stream ID.
    stream_id: int
    #: The application error code the peer gave.
    error_code: int


@final
@attrs.frozen(kw_only=True)
class DatagramFrameReceived(Event):
    """An unreliable DATAGRAM frame arrived (RFC 9221)."""

    #: The datagram payload.
    data: bytes


@final
@attrs.frozen(kw_only=True)
class ConnectionTerminated(Event):
    """The connection is closed; no more events follow."""

    #: The transport or application error code.
    error_code: int
    #: The frame type that triggered a transport error, if any.
    frame_type: int | None
    #: The reason phrase.
    reason_phrase: str
    #: True when the peer closed the connection (or it timed out / was reset); False when we did.
    by_peer: bool
    #: True when the code is an application error code (CONNECTION_CLOSE type 0x1d).
    application: bool = False


@final
@attrs.frozen(kw_only=True)
class SessionTicketReceived(Event):
    """The server sent a NewSessionTicket usable for resumption and 0-RTT (client only)."""

    #: The serialised ticket (``SessionTicket.to_bytes()``), opaque to users.
    ticket: bytes


@final
@attrs.frozen(kw_only=True)
class ConnectionIdIssued(Event):
    """We issued a new connection ID that routes to this connection (for endpoint demux)."""

    #: The connection ID.
    connection_id: bytes


@final
@attrs.frozen(kw_only=True)
class ConnectionIdRetired(Event):
    """A connection ID we issued was retired and no longer routes here."""

    #: The connection ID.
    connection_id: bytes


@final
@attrs.frozen(kw_only=True)
class PathChanged(Event):
    """The peer's address changed and the new path was validated (migration / NAT rebinding,
    or, on a client, the move to the server's preferred address)."""

    #: The old peer address.
    old_address: tuple[str, int]
    #: The new peer address.
    new_address: tuple[str, int]


@final
@attrs.frozen(kw_only=True)
class PingAcknowledged(Event):
    """A PING sent with ``Connection.send_ping(uid)`` was acknowledged."""

    #: The identifier given to ``send_ping``.
    uid: int


@final
@attrs.frozen(kw_only=True)
class NewTokenReceived(Event):
    """The server sent an address-validation token for a future connection (NEW_TOKEN)."""

    #: The token; give it as ``Configuration(token=...)`` when connecting to the same server.
    token: bytes
