"""The QUIC events a connection's engine reports, dispatched to the trio side: stream data and
resets to their streams (a peer's new stream queued for ``accept``), DATAGRAM frames to the
datagram queue, and handshake, connection-ID, path and termination events to the connection
and its endpoint.  Methods of :class:`~trio_zttp.QuicConnection`, kept apart for size."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..quic._events import (
    ConnectionIdIssued,
    ConnectionIdRetired,
    ConnectionTerminated,
    DatagramFrameReceived,
    HandshakeCompleted,
    NewTokenReceived,
    PathChanged,
    SessionTicketReceived,
    StopSendingReceived,
    StreamDataReceived,
    StreamReset,
)
from ._conn_types import DATAGRAM_QUEUE_SIZE, _Closed, _peer_certificate, unpark
from .stream import QuicReceiveStream, QuicStream, _StreamCore

if TYPE_CHECKING:
    from .connection import QuicConnection

__all__ = ["handle_events", "stream_for"]


def stream_for(self: QuicConnection, sid: int) -> _StreamCore | None:
    """The stream ``sid`` belongs to; a peer's new stream is created and queued for accept."""
    stream = self._streams.get(sid)
    if stream is not None or (sid & 1) == (0 if self._is_client else 1):  # one of ours
        return stream
    kind = sid & 3
    expected = self._next_peer_stream[kind]
    if sid >= expected:
        # opening a stream opens every lower one of its type (RFC 9000 §2.1)
        self._peer_gaps.update(range(expected, sid, 4))
        self._next_peer_stream[kind] = sid + 4
    elif sid in self._peer_gaps:
        self._peer_gaps.discard(sid)
    else:
        return None  # a stream we already finished with
    if kind & 2:
        receive_stream = QuicReceiveStream(self, sid, can_send=False, can_receive=True)
        self._accept_uni.append(receive_stream)
        stream = receive_stream
    else:
        bidi = QuicStream(self, sid, can_send=True, can_receive=True)
        self._accept_bidi.append(bidi)
        stream = bidi
    self._streams[sid] = stream
    if unpark(self._accept_lot):
        self._woke = True
    return stream


def handle_events(self: QuicConnection) -> None:
    """Dispatch the engine's events: stream data, datagrams, handshake, IDs, paths, close."""
    engine = self._engine
    while (event := engine.next_event()) is not None:
        match event:
            case StreamDataReceived(stream_id=sid, data=data, end_stream=end_stream):
                stream = stream_for(self, sid)
                if stream is not None:
                    stream._on_data(data, end_stream)
                elif data:
                    engine.consume_stream_data(sid, len(data))
            case DatagramFrameReceived(data=data):
                self._datagram_frames_received += 1
                if len(self._datagrams) >= DATAGRAM_QUEUE_SIZE:
                    self._datagram_frames_dropped += 1
                else:
                    self._datagrams.append(data)
                    if unpark(self._datagram_lot):
                        self._woke = True
            case StreamReset(stream_id=sid, error_code=code):
                stream = stream_for(self, sid)
                if stream is not None:
                    stream._on_reset(code)
            case StopSendingReceived(stream_id=sid, error_code=code):
                stream = stream_for(self, sid)
                if stream is not None:
                    self._blocked_senders.discard(stream)
                    stream._on_stop_sending(code)
            case HandshakeCompleted(alpn_protocol=alpn, session_resumed=resumed):
                self._alpn_protocol = alpn
                self._session_resumed = resumed
                self._peer_certificate = _peer_certificate(engine)
                self._handshake_complete = True
                self._handshake_done.set()
                self._woke = True
                self._endpoint._on_handshake_complete(self)
            case ConnectionIdIssued(connection_id=cid):
                self._add_cid(cid)
            case ConnectionIdRetired(connection_id=cid):
                if cid in self._cids:
                    self._cids.discard(cid)
                    self._endpoint._remove_route(cid, self)
            case PathChanged(new_address=new_address):
                # (host, port, i): a path to the endpoint's preferred-address socket i
                tagged: tuple[Any, ...] = new_address
                address = (tagged[0], tagged[1])
                self._path_socket = tagged[2] if len(tagged) > 2 else 0
                old = self._remote_address
                self._remote_address = address
                self._endpoint._on_path_changed(self, old, address)
            case SessionTicketReceived(ticket=ticket):
                self._session_ticket = ticket
            case NewTokenReceived(token=token):
                self._new_token = token
            case ConnectionTerminated(
                error_code=code,
                reason_phrase=reason,
                by_peer=by_peer,
                application=application,
                frame_type=frame_type,
            ):
                if self._closed_info is None:
                    self._terminate(_Closed(code, reason, by_peer, application, frame_type))
            case _:
                pass
