"""The sans-IO HTTP/3 connection (RFC 9114, RFC 9204, RFC 9220, RFC 9297).

:class:`Connection` sits on a QUIC connection seen through :class:`~._quic.QuicTransport`.
The driver hands it every QUIC event with :meth:`Connection.receive_quic_event` and pulls
HTTP/3 events with :meth:`Connection.next_event` (the pull style of the QUIC layer)::

    h3_conn = h3.Connection(quic_conn, is_client=False)
    quic_conn.receive_datagram(data, addr, now)
    while (quic_event := quic_conn.next_event()) is not None:
        h3_conn.receive_quic_event(quic_event)
    while (event := h3_conn.next_event()) is not None:
        ...  # HeadersReceived, DataReceived, DatagramReceived ...
    send(quic_conn.datagrams_to_send(now))

Commands (``send_headers``, ``send_data``, ``send_trailers``, ``send_datagram``,
``send_capsule``, ``send_goaway``, ``reset_stream``, ``stop_sending``, ``close``) queue bytes on
the QUIC connection at once; the driver then flushes ``datagrams_to_send``.

Errors: whatever the peer sends, :meth:`Connection.receive_quic_event` never raises. A
connection error closes the QUIC connection with its :class:`~._errors.ErrorCode` and reports
:class:`~._events.ConnectionTerminated`; a stream error (malformed message, incomplete
request) resets that request stream in both directions and reports
:class:`~._events.StreamReset`. Caller misuse raises :class:`~._stream.StateError` (wrong
state) or ``ValueError`` (bad arguments) at once. Server push is not implemented: we never
send MAX_PUSH_ID, so a server may not push (a push stream or PUSH_PROMISE is H3_ID_ERROR).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from itertools import chain
from typing import Final, final

from .. import _defaults
from ._capsules import (
    DEFAULT_MAX_CAPSULE_LENGTH,
    CapsuleParser,
    CapsuleType,
    encode_capsule,
    encode_h3_datagram,
)
from ._errors import ErrorCode, MessageError, random_grease
from ._events import ConnectionTerminated, DataReceived, Event
from ._frames import (
    FrameType,
    StreamType,
    encode_frame,
    encode_frame_header,
    encode_grease_frame,
    encode_id_frame,
    encode_stream_header,
)
from ._headers import validate_request_headers, validate_response_headers, validate_trailers
from ._quic import QuicTransport
from ._receive import ConnectionCore
from ._settings import Settings, encode_settings
from ._stream import RequestStream, SendInput, SendState, StateError, next_send_state

__all__ = ["DEFAULT_SETTINGS", "Connection"]

#: The settings a :class:`Connection` announces unless told otherwise: a 4 KiB QPACK dynamic
#: table with up to 16 blocked streams, field sections up to 64 KiB.
DEFAULT_SETTINGS: Final = Settings(
    qpack_max_table_capacity=4096,
    qpack_blocked_streams=16,
    max_field_section_size=64 * 1024,
)

#: Largest goaway identifier (2**62 - 4, the last client-initiated bidirectional stream).
_MAX_REQUEST_STREAM_ID: Final = (1 << 62) - 4
#: Payloads at least this long go to QUIC apart from their DATA frame header (no copy).
_SEPARATE_PAYLOAD: Final = 1024


_DATA: Final = int(FrameType.DATA)
_HEADERS: Final = int(FrameType.HEADERS)
_ONLY_TUPLES: Final = frozenset({tuple})
_ONLY_PAIRS: Final = frozenset({2})
_ONLY_BYTES: Final = frozenset({bytes})


def _field_section_size(headers: list[tuple[bytes, bytes]]) -> int:
    return sum(map(len, chain.from_iterable(headers))) + 32 * len(headers)


def _as_fields(headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """A list of ``(bytes, bytes)`` tuples of our own (copied, so the caller may reuse its)."""
    fields = list(headers)
    # the checks run in C: every field an exact 2-tuple, every name and value exact bytes
    if fields and (
        set(map(type, fields)) != _ONLY_TUPLES
        or set(map(len, fields)) != _ONLY_PAIRS
        or set(map(type, chain.from_iterable(fields))) != _ONLY_BYTES
    ):
        return [(bytes(name), bytes(value)) for name, value in fields]
    return fields


@final
class Connection(ConnectionCore):
    """One HTTP/3 connection over a QUIC connection; pure state, no I/O.

    On creation it opens its control stream (SETTINGS first, then a reserved frame), its
    QPACK encoder and decoder streams, and, with ``grease``, one stream of a reserved type.

    Args:
        quic: The QUIC connection (see :class:`~trio_zttp.h3.QuicTransport`).
        is_client: Our role.
        settings: What we announce: QPACK limits, the field-section limit, and whether we
            accept extended CONNECT (``enable_connect_protocol``, for servers) and HTTP
            datagrams (``h3_datagram``; the QUIC connection must then advertise
            max_datagram_frame_size).
        grease: Send a reserved setting, frame type and stream type (RFC 9114 §7.2.4.1,
            §7.2.8, §6.2.3) so peers keep ignoring unknown ones.
        random_bytes: Randomness for the reserved values.
        max_capsule_length: Largest capsule value buffered on a Capsule Protocol stream;
            longer capsules are skipped unread (RFC 9297 §3.5).
    """

    __slots__ = ()

    def __init__(
        self,
        quic: QuicTransport,
        *,
        is_client: bool,
        settings: Settings = DEFAULT_SETTINGS,
        grease: bool = True,
        random_bytes: Callable[[int], bytes] = _defaults.random_bytes,
        max_capsule_length: int = DEFAULT_MAX_CAPSULE_LENGTH,
    ) -> None:
        super().__init__(
            quic, is_client=is_client, settings=settings, max_capsule_length=max_capsule_length
        )

        # RFC 9114 §6.2.1: the control stream starts with SETTINGS
        self._control_id = quic.get_next_available_stream_id(is_unidirectional=True)
        control = encode_stream_header(StreamType.CONTROL) + encode_frame(
            FrameType.SETTINGS,
            encode_settings(settings, grease=grease, random_bytes=random_bytes),
        )
        if grease:
            control += encode_grease_frame(random_bytes)
        quic.send_stream_data(self._control_id, control)
        self._encoder_id = quic.get_next_available_stream_id(is_unidirectional=True)
        quic.send_stream_data(self._encoder_id, encode_stream_header(StreamType.QPACK_ENCODER))
        self._decoder_id = quic.get_next_available_stream_id(is_unidirectional=True)
        quic.send_stream_data(self._decoder_id, encode_stream_header(StreamType.QPACK_DECODER))
        if grease:
            # RFC 9114 §6.2.3: a stream of a reserved type, which the peer must ignore
            grease_id = quic.get_next_available_stream_id(is_unidirectional=True)
            stream_type = random_grease(random_bytes, max_n=16)
            payload = random_bytes(random_bytes(1)[0] % 8)
            quic.send_stream_data(
                grease_id, encode_stream_header(stream_type) + payload, end_stream=True
            )

    # ------------------------------------------------------------------ state

    @property
    def is_client(self) -> bool:
        """Whether we are the client."""
        return self._is_client

    @property
    def local_settings(self) -> Settings:
        """The settings we announced."""
        return self._local

    @property
    def peer_settings(self) -> Settings | None:
        """The peer's settings, once its SETTINGS frame arrived (None until then)."""
        return self._peer

    @property
    def datagrams_enabled(self) -> bool:
        """Whether HTTP datagrams can travel in QUIC DATAGRAM frames: SETTINGS_H3_DATAGRAM=1
        sent and received (RFC 9297 §2.1.1), and the peer takes DATAGRAM frames."""
        return self._h3_datagrams and bool(self._quic.remote_max_datagram_frame_size)

    @property
    def goaway_sent(self) -> int | None:
        """The identifier of the last GOAWAY we sent, if any."""
        return self._goaway_sent

    @property
    def goaway_received(self) -> int | None:
        """The identifier of the last GOAWAY the peer sent, if any."""
        return self._goaway_received

    @property
    def open_request_streams(self) -> int:
        """Request streams not finished in both directions."""
        return len(self._streams)

    @property
    def is_drained(self) -> bool:
        """A GOAWAY went one way or the other and every request stream has finished: the
        connection can be closed with H3_NO_ERROR (RFC 9114 §5.2)."""
        going_away = self._goaway_sent is not None or self._goaway_received is not None
        return going_away and not self._streams

    @property
    def is_closed(self) -> bool:
        """Whether the connection is closed (by either side)."""
        return self._closed

    # ----------------------------------------------------------------- events

    def next_event(self) -> Event | None:
        """The next HTTP/3 event, or None when there is none until more QUIC events arrive."""
        events = self._events
        return events.popleft() if events else None


    # ---------------------------------------------------------------- commands

    def _check_open(self) -> None:
        if self._closed:
            raise StateError("the connection is closed")

    def _stream_for_send(self, stream_id: int) -> RequestStream:
        self._check_open()
        stream = self._streams.get(stream_id)
        if stream is None:
            raise StateError(f"stream {stream_id} is not an open request stream")
        return stream

    def get_next_request_stream_id(self) -> int:
        """The stream ID for a new request (client); it is taken by :meth:`send_headers`.

        Raises:
            StateError: not a client, the connection is closed, or the server sent GOAWAY
                and the next stream would be at or above its identifier.
        """
        self._check_open()
        if not self._is_client:
            raise StateError("only clients open request streams")
        stream_id = self._quic.get_next_available_stream_id()
        if self._goaway_received is not None and stream_id >= self._goaway_received:
            raise StateError("the server sent GOAWAY: no new requests on this connection")
        return stream_id

    def send_headers(
        self, stream_id: int, headers: Iterable[tuple[bytes, bytes]], end_stream: bool = False
    ) -> None:
        """Send a header section: the request (client) or a response (server).

        A server may send interim (1xx) responses before the final one. Extended CONNECT
        (``:protocol``) needs the peer's SETTINGS_ENABLE_CONNECT_PROTOCOL=1 (RFC 9220 §3).

        Raises:
            ValueError: the header section is malformed (RFC 9114 §4.2-§4.3), or larger than
                the peer's SETTINGS_MAX_FIELD_SECTION_SIZE.
            StateError: a header section is not allowed on this stream now.
        """
        self._send_headers(stream_id, _as_fields(headers), end_stream, None)

    def _send_headers(
        self,
        stream_id: int,
        fields: list[tuple[bytes, bytes]],
        end_stream: bool,
        data: bytes | None,
    ) -> None:
        """:meth:`send_headers` for ``fields`` already made a list of ``(bytes, bytes)``; with
        ``data`` (a final header section only), the DATA frame and FIN of
        ``send_data(stream_id, data, end_stream=True)`` follow in the same QUIC write."""
        if self._is_client:
            if self._closed:
                raise StateError("the connection is closed")
            stream = self._streams.get(stream_id)
            if stream is None:
                if stream_id % 4 != 0 or stream_id < self._quic.get_next_available_stream_id():
                    raise StateError(f"stream {stream_id} is not a new request stream")
                if self._goaway_received is not None and stream_id >= self._goaway_received:
                    raise StateError("the server sent GOAWAY: no new requests")
                peer = self._peer
                try:
                    request = validate_request_headers(
                        fields,
                        enable_connect_protocol=peer is not None and peer.enable_connect_protocol,
                    )
                except MessageError as exc:
                    raise ValueError(f"invalid request: {exc.reason}") from None
                self._check_size(fields)
                stream = RequestStream(stream_id, max_headers_length=self._max_headers_length)
                stream.request_method = request.method
                stream.datagrams = request.method == b"CONNECT"
                self._streams[stream_id] = stream
                move = (
                    SendInput.TUNNEL_HEADERS if request.method == b"CONNECT" else SendInput.HEADERS
                )
            else:
                raise StateError(f"the request on stream {stream_id} was already sent")
        else:
            stream = self._stream_for_send(stream_id)
            try:
                response = validate_response_headers(fields)
            except MessageError as exc:
                raise ValueError(f"invalid response: {exc.reason}") from None
            self._check_size(fields)
            if response.interim:
                if end_stream:
                    raise ValueError("an interim response cannot end the stream")
                move = SendInput.INTERIM_HEADERS
            elif stream.request_method == b"CONNECT" and 200 <= response.status < 300:
                move = SendInput.TUNNEL_HEADERS
            else:
                move = SendInput.HEADERS
        state = next_send_state(stream.send_state, move, stream_id)
        if data is not None:
            if move is SendInput.INTERIM_HEADERS:  # as send_headers, then send_data (raises)
                self._send_headers(stream_id, fields, False, None)
                self.send_data(stream_id, data, end_stream=True)
                return
            state = SendState.CLOSED
            self._send_field_section(stream_id, fields, False, data)
        else:
            if end_stream:
                state = SendState.CLOSED
            self._send_field_section(stream_id, fields, end_stream)
        stream.send_state = state
        if state is SendState.CLOSED and stream.receive_done:
            self._forget(stream_id)

    def _check_size(self, fields: list[tuple[bytes, bytes]]) -> None:
        peer = self._peer
        limit = peer.max_field_section_size if peer is not None else None
        if (
            limit is not None
            and sum(map(len, chain.from_iterable(fields))) + 32 * len(fields) > limit
        ):
            raise ValueError(
                f"header section of {_field_section_size(fields)} bytes exceeds the peer's "
                f"SETTINGS_MAX_FIELD_SECTION_SIZE of {limit}"
            )

    def _send_field_section(
        self,
        stream_id: int,
        fields: list[tuple[bytes, bytes]],
        end_stream: bool,
        data: bytes | None = None,
    ) -> None:
        """HEADERS (after its encoder instructions); with ``data``, a DATA frame and FIN
        follow in the same write (a long payload in a second one, uncopied)."""
        instructions, section = self._encoder.encode(stream_id, fields)
        quic = self._quic
        if instructions:
            quic.send_stream_data(self._encoder_id, instructions)
        frame = encode_frame(_HEADERS, section)
        if data is None:
            quic.send_stream_data(stream_id, frame, end_stream=end_stream)
        elif not data:
            quic.send_stream_data(stream_id, frame, end_stream=True)
        elif len(data) >= _SEPARATE_PAYLOAD:
            quic.send_stream_data(stream_id, frame + encode_frame_header(_DATA, len(data)))
            quic.send_stream_data(stream_id, data, end_stream=True)
        else:
            quic.send_stream_data(stream_id, frame + encode_frame(_DATA, data), end_stream=True)

    def send_data(self, stream_id: int, data: bytes, end_stream: bool = False) -> None:
        """Send message content (or tunnel data after CONNECT) in one DATA frame.

        ``send_data(stream_id, b"", end_stream=True)`` just ends the stream.

        Raises:
            StateError: no header section was sent yet (a server's final response), or the
                stream is finished.
        """
        stream = self._stream_for_send(stream_id)
        state = next_send_state(stream.send_state, SendInput.DATA, stream_id)
        quic = self._quic
        if not data:
            if end_stream:
                quic.send_stream_data(stream_id, b"", end_stream=True)
        elif len(data) >= _SEPARATE_PAYLOAD:
            quic.send_stream_data(stream_id, encode_frame_header(FrameType.DATA, len(data)))
            quic.send_stream_data(stream_id, bytes(data), end_stream=end_stream)
        else:
            quic.send_stream_data(
                stream_id, encode_frame(FrameType.DATA, data), end_stream=end_stream
            )
        stream.send_state = SendState.CLOSED if end_stream else state
        self._forget_if_done(stream)

    def send_trailers(self, stream_id: int, headers: Iterable[tuple[bytes, bytes]]) -> None:
        """Send a trailer section and end the stream.

        Raises:
            ValueError: the trailer section is malformed (pseudo-header fields, ...).
            StateError: no header section was sent yet, the stream is a CONNECT tunnel, or
                it is finished.
        """
        stream = self._stream_for_send(stream_id)
        fields = _as_fields(headers)
        try:
            validate_trailers(fields)
        except MessageError as exc:
            raise ValueError(f"invalid trailers: {exc.reason}") from None
        self._check_size(fields)
        state = next_send_state(stream.send_state, SendInput.TRAILERS, stream_id)
        self._send_field_section(stream_id, fields, True)
        stream.send_state = state
        self._forget_if_done(stream)

    def enable_capsule_protocol(self, stream_id: int) -> None:
        """Parse the rest of this stream's data as capsules (RFC 9297 §3).

        From here on the peer's DATA payloads become :class:`~._events.DatagramReceived`
        (DATAGRAM capsules) and :class:`~._events.CapsuleReceived` events instead of
        :class:`~._events.DataReceived`, including data already queued as events and not
        yet pulled; and :meth:`send_datagram` falls back to DATAGRAM capsules when QUIC
        DATAGRAM frames are not available. Call it when the request (and, on a client, the
        2xx response) has said so, e.g. ``capsule-protocol: ?1`` or an upgrade token that
        uses capsules.

        Raises:
            StateError: the stream is not an open request stream.
        """
        stream = self._stream_for_send(stream_id)
        if stream.capsules is not None:
            return
        parser = CapsuleParser(max_capsule_length=self._max_capsule_length)
        stream.capsules = parser
        # re-read the content already turned into events and not yet pulled
        old = self._events
        self._events = deque()
        for event in old:
            if isinstance(event, DataReceived) and event.stream_id == stream_id:
                for capsule_type, value in parser.feed(event.data):
                    self._capsule_event(stream_id, capsule_type, value)
                if event.end_stream:
                    self._events.append(
                        DataReceived(stream_id=stream_id, data=b"", end_stream=True)
                    )
            else:
                self._events.append(event)

    def send_capsule(self, stream_id: int, capsule_type: int, value: bytes) -> None:
        """Send one capsule on the stream's data stream (inside a DATA frame).

        Raises:
            StateError: as :meth:`send_data`.
        """
        self.send_data(stream_id, encode_capsule(capsule_type, value))

    def send_datagram(self, stream_id: int, data: bytes) -> None:
        """Send an HTTP datagram for a CONNECT request stream (RFC 9297).

        It goes in a QUIC DATAGRAM frame with the Quarter Stream ID prefix when both sides
        sent SETTINGS_H3_DATAGRAM=1 (and the peer takes DATAGRAM frames); otherwise, on a
        stream switched to the Capsule Protocol, in a DATAGRAM capsule.

        Raises:
            StateError: the stream is not an open CONNECT stream whose sending side is open,
                or HTTP datagrams are not available on it.
        """
        if self._closed:
            raise StateError("the connection is closed")
        stream = self._streams.get(stream_id)
        if stream is None:
            raise StateError(f"stream {stream_id} is not an open request stream")
        if not stream.datagrams:
            raise StateError(f"stream {stream_id} is not a CONNECT request: no HTTP datagrams")
        if stream.send_state is SendState.CLOSED:
            raise StateError(f"the sending side of stream {stream_id} is closed")
        quic = self._quic
        if self._h3_datagrams and quic.remote_max_datagram_frame_size:
            if stream_id < 0x100:  # a one-byte Quarter Stream ID
                quic.send_datagram_frame(bytes((stream_id >> 2,)) + data)
            else:
                quic.send_datagram_frame(encode_h3_datagram(stream_id, data))
        elif stream.capsules is not None and stream.send_state is not SendState.IDLE:
            self.send_data(stream_id, encode_capsule(CapsuleType.DATAGRAM, data))
        else:
            raise StateError(
                "HTTP datagrams are not negotiated (SETTINGS_H3_DATAGRAM) and the stream does "
                "not use the Capsule Protocol"
            )

    def reset_stream(
        self, stream_id: int, error_code: int = ErrorCode.H3_REQUEST_CANCELLED
    ) -> None:
        """Abort our sending side of a request stream (RESET_STREAM)."""
        stream = self._stream_for_send(stream_id)
        if stream.send_state is not SendState.CLOSED:
            stream.send_state = SendState.CLOSED
            self._quic.reset_stream(stream_id, error_code)
        self._forget_if_done(stream)

    def stop_sending(
        self, stream_id: int, error_code: int = ErrorCode.H3_REQUEST_CANCELLED
    ) -> None:
        """Abandon the peer's sending side of a request stream (STOP_SENDING); data still
        arriving on it is dropped."""
        stream = self._stream_for_send(stream_id)
        if not stream.receive_done:
            stream.receive_done = True
            self._quic.stop_sending(stream_id, error_code)
            self._cancel_decoding(stream)
        self._forget_if_done(stream)

    def send_goaway(self, identifier: int | None = None) -> int:
        """Start a graceful shutdown (RFC 9114 §5.2): send GOAWAY on the control stream.

        A server names the first request stream it will not process; by default the one
        after the highest request received, so requests in flight complete and later ones
        are rejected with H3_REQUEST_REJECTED. For a two-step shutdown send
        ``2**62 - 4`` first, then the real one a round trip later. A client's identifier is
        a push ID; we accept no pushes, so the default is 0.

        Returns:
            The identifier sent.

        Raises:
            ValueError: the identifier is larger than one sent before, or (server) not a
                client-initiated bidirectional stream ID.
        """
        self._check_open()
        if identifier is None:
            identifier = 0 if self._is_client else self._highest_peer_request + 4
        if identifier < 0 or identifier > _MAX_REQUEST_STREAM_ID + 3:
            raise ValueError(f"GOAWAY identifier {identifier} out of range")
        if not self._is_client and identifier % 4:
            raise ValueError(f"GOAWAY stream ID {identifier} is not a request stream ID")
        if self._goaway_sent is not None and identifier > self._goaway_sent:
            raise ValueError(
                f"GOAWAY identifier cannot grow (from {self._goaway_sent} to {identifier})"
            )
        self._goaway_sent = identifier
        self._quic.send_stream_data(self._control_id, encode_id_frame(FrameType.GOAWAY, identifier))
        if not self._is_client:
            for stream_id in [s for s in self._streams if s >= identifier]:
                self._abort(self._streams[stream_id], ErrorCode.H3_REQUEST_REJECTED)
        return identifier

    def close(self, error_code: int = ErrorCode.H3_NO_ERROR, reason_phrase: str = "") -> None:
        """Close the connection (CONNECTION_CLOSE with an HTTP/3 code); reports
        :class:`~._events.ConnectionTerminated`. Does nothing once closed."""
        if self._closed:
            return
        self._closed = True
        self._quic.close(error_code, reason_phrase)
        self._events.append(
            ConnectionTerminated(error_code=error_code, reason_phrase=reason_phrase, by_peer=False)
        )
