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
from typing import Final, final

import attrs

from .. import _defaults, qpack
from .._buffer import BufferReadError, decode_varint
from ..quic._events import ConnectionTerminated as QuicConnectionTerminated
from ..quic._events import DatagramFrameReceived as QuicDatagramFrameReceived
from ..quic._events import StopSendingReceived as QuicStopSendingReceived
from ..quic._events import StreamDataReceived as QuicStreamDataReceived
from ..quic._events import StreamReset as QuicStreamReset
from ._capsules import (
    DEFAULT_MAX_CAPSULE_LENGTH,
    CapsuleParser,
    CapsuleType,
    check_capsule_protocol_message,
    decode_h3_datagram,
    encode_capsule,
    encode_h3_datagram,
    parse_capsule_protocol,
)
from ._errors import (
    ClosedCriticalStream,
    ErrorCode,
    H3Error,
    IdError,
    MessageError,
    StreamCreationError,
    random_grease,
)
from ._events import (
    CapsuleReceived,
    ConnectionTerminated,
    DatagramReceived,
    DataReceived,
    Event,
    GoawayReceived,
    HeadersReceived,
    SettingsReceived,
    StopSendingReceived,
    StreamReset,
    TrailersReceived,
)
from ._frames import (
    DEFAULT_MAX_HEADERS_LENGTH,
    FrameParser,
    FrameType,
    StreamType,
    decode_id_payload,
    encode_frame,
    encode_frame_header,
    encode_grease_frame,
    encode_id_frame,
    encode_stream_header,
)
from ._headers import (
    ContentLengthTracker,
    expected_request_content_length,
    expected_response_content_length,
    validate_request_headers,
    validate_response_headers,
    validate_trailers,
)
from ._quic import QuicTransport
from ._rules import (
    MessageInput,
    MessageState,
    StreamKind,
    check_frame_allowed,
    check_goaway_id,
    check_max_push_id,
    check_message_frame,
    check_uni_stream_type,
    next_control_state,
    next_message_state,
)
from ._settings import Settings, check_datagram_support, decode_settings, encode_settings
from ._stream import (
    RequestStream,
    RetiredStreams,
    SendInput,
    SendState,
    StateError,
    UniStream,
    next_send_state,
)

__all__ = ["DEFAULT_SETTINGS", "Connection"]

#: The settings a :class:`Connection` announces unless told otherwise: a 4 KiB QPACK dynamic
#: table with up to 16 blocked streams, field sections up to 64 KiB.
DEFAULT_SETTINGS: Final = Settings(
    qpack_max_table_capacity=4096,
    qpack_blocked_streams=16,
    max_field_section_size=64 * 1024,
)

#: The decoded field-section bound when our settings leave it unlimited.
_UNLIMITED_FIELD_SECTION: Final = 1 << 20
#: Largest goaway identifier (2**62 - 4, the last client-initiated bidirectional stream).
_MAX_REQUEST_STREAM_ID: Final = (1 << 62) - 4
#: Payloads at least this long go to QUIC apart from their DATA frame header (no copy).
_SEPARATE_PAYLOAD: Final = 1024


class _RequestIncomplete(H3Error):
    """H3_REQUEST_INCOMPLETE: the request stream ended before a complete request."""

    error_code = ErrorCode.H3_REQUEST_INCOMPLETE
    stream_error = True


class _DatagramOnStream(H3Error):
    """H3_DATAGRAM_ERROR as a stream error: datagrams for a request without datagram semantics
    (RFC 9297 §2)."""

    error_code = ErrorCode.H3_DATAGRAM_ERROR
    stream_error = True


def _field_section_size(headers: Iterable[tuple[bytes, bytes]]) -> int:
    return sum(len(name) + len(value) + 32 for name, value in headers)


@final
class Connection:
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

    __slots__ = (
        "_blocked_limit",
        "_closed",
        "_control_id",
        "_decoder",
        "_decoder_id",
        "_encoder",
        "_encoder_id",
        "_events",
        "_goaway_received",
        "_goaway_sent",
        "_highest_peer_request",
        "_is_client",
        "_local",
        "_max_capsule_length",
        "_max_headers_length",
        "_peer",
        "_peer_critical",
        "_peer_max_push_id",
        "_quic",
        "_retired_requests",
        "_retired_uni",
        "_streams",
        "_uni",
    )

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
        self._quic = quic
        self._is_client = is_client
        self._local = settings
        self._peer: Settings | None = None
        self._events: deque[Event] = deque()
        self._closed = False
        field_limit = settings.max_field_section_size
        if field_limit is None:
            field_limit = _UNLIMITED_FIELD_SECTION
        self._max_headers_length = max(DEFAULT_MAX_HEADERS_LENGTH, field_limit)
        self._max_capsule_length = max_capsule_length
        self._decoder = qpack.Decoder(
            settings.qpack_max_table_capacity,
            settings.qpack_blocked_streams,
            max_field_section_size=field_limit,
        )
        self._blocked_limit = settings.qpack_blocked_streams
        self._encoder = qpack.Encoder()
        self._streams: dict[int, RequestStream] = {}
        self._uni: dict[int, UniStream] = {}
        # the peer's control, encoder and decoder streams, by type
        self._peer_critical: dict[StreamType, int] = {}
        self._retired_requests = RetiredStreams(0)
        self._retired_uni = RetiredStreams(3 if is_client else 2)
        self._highest_peer_request = -4
        self._goaway_sent: int | None = None
        self._goaway_received: int | None = None
        self._peer_max_push_id: int | None = None

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
        peer = self._peer
        return (
            self._local.h3_datagram
            and peer is not None
            and peer.h3_datagram
            and bool(self._quic.remote_max_datagram_frame_size)
        )

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

    def receive_quic_event(self, event: object) -> None:
        """Process one event of the QUIC connection (``trio_zttp.quic`` event classes).

        Never raises for anything the peer sends: violations close the connection or reset a
        stream with the RFC's error code, and show up as events. Events HTTP/3 has no use for
        (handshake, connection IDs ...) are ignored.
        """
        if self._closed:
            return
        try:
            if isinstance(event, QuicStreamDataReceived):
                stream_id = event.stream_id
                if stream_id & 2:
                    self._receive_uni(stream_id, event.data, event.end_stream)
                else:
                    self._receive_request(stream_id, event.data, event.end_stream)
            elif isinstance(event, QuicDatagramFrameReceived):
                self._receive_datagram(event.data)
            elif isinstance(event, QuicStreamReset):
                self._receive_reset(event.stream_id, event.error_code)
            elif isinstance(event, QuicStopSendingReceived):
                self._receive_stop_sending(event.stream_id, event.error_code)
            elif isinstance(event, QuicConnectionTerminated):
                self._closed = True
                self._events.append(
                    ConnectionTerminated(
                        error_code=event.error_code,
                        reason_phrase=event.reason_phrase,
                        by_peer=event.by_peer,
                    )
                )
        except (H3Error, qpack.QpackError) as exc:
            self._fail(exc.error_code, exc.reason or type(exc).__name__)
        except Exception as exc:  # a bug here must not take the endpoint down
            self._fail(ErrorCode.H3_INTERNAL_ERROR, f"internal error: {type(exc).__name__}")

    def _fail(self, error_code: int, reason: str) -> None:
        """A connection error: CONNECTION_CLOSE with ``error_code`` (RFC 9114 §8)."""
        if self._closed:
            return
        self._closed = True
        self._quic.close(error_code, reason)
        self._events.append(
            ConnectionTerminated(error_code=error_code, reason_phrase=reason, by_peer=False)
        )

    # ------------------------------------------------- unidirectional streams

    def _receive_uni(self, stream_id: int, data: bytes, end_stream: bool) -> None:
        if (stream_id & 1) != self._is_client:
            return  # one of our own unidirectional streams: the peer cannot send on it
        stream = self._uni.get(stream_id)
        if stream is None:
            if stream_id in self._retired_uni:
                return
            stream = self._uni[stream_id] = UniStream()
        kind = stream.kind
        if kind is None:
            if stream.ignored or not self._read_stream_type(stream_id, stream, data, end_stream):
                if end_stream:
                    self._retire_uni(stream_id)
                return
            kind = stream.kind
            data = bytes(stream.header)
            stream.header.clear()
        if kind is StreamType.CONTROL:
            parser = stream.parser
            assert parser is not None
            for frame_type, payload in parser.feed(data):
                self._receive_control_frame(stream, frame_type, payload)
            if end_stream:
                raise ClosedCriticalStream("the peer closed its control stream")
        elif kind is StreamType.QPACK_ENCODER:
            if data:
                self._receive_encoder_stream(data)
            if end_stream:
                raise ClosedCriticalStream("the peer closed its QPACK encoder stream")
        else:
            if data:
                self._encoder.feed_decoder(data)
            if end_stream:
                raise ClosedCriticalStream("the peer closed its QPACK decoder stream")

    def _read_stream_type(
        self, stream_id: int, stream: UniStream, data: bytes, end_stream: bool
    ) -> bool:
        """Read the stream type; True once it is known and the stream is one we process
        (``stream.header`` then holds the bytes after the type)."""
        header = stream.header
        header += data
        try:
            stream_type, consumed = decode_varint(header, 0)
        except BufferReadError:
            return False  # the type varint is split: wait for the rest
        del header[:consumed]
        kind = check_uni_stream_type(stream_type, is_client=self._is_client)
        if kind is None:
            # unknown or reserved type: abort reading and discard (RFC 9114 §6.2, §9)
            stream.ignored = True
            header.clear()
            if not end_stream:
                self._quic.stop_sending(stream_id, ErrorCode.H3_STREAM_CREATION_ERROR)
            return False
        if kind is StreamType.PUSH:
            # we never sent MAX_PUSH_ID, so every push ID is above the limit (§4.6)
            raise IdError("push stream received, but no push was allowed (no MAX_PUSH_ID)")
        if kind in self._peer_critical:
            raise StreamCreationError(f"a second {kind.name} stream")
        self._peer_critical[kind] = stream_id
        stream.kind = kind
        if kind is StreamType.CONTROL:
            stream.parser = FrameParser()
        return True

    def _retire_uni(self, stream_id: int) -> None:
        self._uni.pop(stream_id, None)
        self._retired_uni.add(stream_id)

    def _receive_control_frame(self, stream: UniStream, frame_type: int, payload: bytes) -> None:
        stream.control_state = next_control_state(stream.control_state, frame_type)
        if not check_frame_allowed(frame_type, StreamKind.CONTROL, is_client=self._is_client):
            return  # unknown or reserved frame type: ignored (RFC 9114 §9)
        if frame_type == FrameType.SETTINGS:
            settings = decode_settings(payload)
            check_datagram_support(settings, self._quic.remote_max_datagram_frame_size)
            self._peer = settings
            instructions = self._encoder.apply_settings(
                settings.qpack_max_table_capacity, settings.qpack_blocked_streams
            )
            if instructions:
                self._quic.send_stream_data(self._encoder_id, instructions)
            self._events.append(SettingsReceived(settings=settings))
        elif frame_type == FrameType.GOAWAY:
            identifier = check_goaway_id(
                decode_id_payload(payload, frame_type),
                is_client=self._is_client,
                previous=self._goaway_received,
            )
            self._goaway_received = identifier
            self._events.append(GoawayReceived(identifier=identifier))
        elif frame_type == FrameType.MAX_PUSH_ID:
            # only servers get here (placement table); we never push, but keep the rule
            self._peer_max_push_id = check_max_push_id(
                decode_id_payload(payload, frame_type), previous=self._peer_max_push_id
            )
        elif frame_type == FrameType.CANCEL_PUSH:
            push_id = decode_id_payload(payload, frame_type)
            # a server never promised it; a client never allowed it (RFC 9114 §7.2.3)
            raise IdError(f"CANCEL_PUSH for push ID {push_id}, which does not exist",
                          frame_type=frame_type)

    def _receive_encoder_stream(self, data: bytes) -> None:
        decoder = self._decoder
        unblocked = decoder.feed_encoder(data)
        for stream_id in unblocked:
            stream = self._streams.get(stream_id)
            if stream is None or not stream.blocked:
                continue
            try:
                instructions, headers = decoder.resume_header(stream_id)
            except qpack.FieldSectionTooLarge as exc:
                self._send_decoder(exc.decoder_stream_data)
                self._abort(stream, ErrorCode.H3_MESSAGE_ERROR)
                continue
            self._send_decoder(instructions)
            stream.blocked = False
            queued, stream.queued = stream.queued, []
            fin, stream.queued_fin = stream.queued_fin, False
            try:
                self._receive_headers(stream, headers)
                self._process_frames(stream, queued, fin)
            except H3Error as exc:
                if not exc.stream_error:
                    raise
                self._abort(stream, exc.error_code)
        self._send_decoder(decoder.data_to_send())

    def _send_decoder(self, instructions: bytes) -> None:
        if instructions:
            self._quic.send_stream_data(self._decoder_id, instructions)

    # --------------------------------------------------------- request streams

    def _receive_request(self, stream_id: int, data: bytes, end_stream: bool) -> None:
        stream = self._streams.get(stream_id)
        if stream is None:
            stream = self._new_peer_request(stream_id)
            if stream is None:
                return
        if stream.receive_done:
            return  # abandoned by us (STOP_SENDING sent): data still in flight is dropped
        try:
            self._process_frames(stream, stream.parser.feed(data), end_stream)
        except qpack.FieldSectionTooLarge as exc:
            self._send_decoder(exc.decoder_stream_data)
            self._abort(stream, ErrorCode.H3_MESSAGE_ERROR)
        except H3Error as exc:
            if not exc.stream_error:
                raise
            self._abort(stream, exc.error_code)

    def _new_peer_request(self, stream_id: int) -> RequestStream | None:
        """State for a request stream the peer opened, or None when its data is dropped."""
        if (stream_id & 1) != self._is_client:
            return None  # our own stream, finished and forgotten: late data
        if self._is_client:
            # RFC 9114 §6.1: servers do not open bidirectional streams
            raise StreamCreationError(f"server-initiated bidirectional stream {stream_id}")
        if stream_id in self._retired_requests:
            return None
        stream = RequestStream(stream_id, max_headers_length=self._max_headers_length)
        self._streams[stream_id] = stream
        self._highest_peer_request = max(self._highest_peer_request, stream_id)
        if self._goaway_sent is not None and stream_id >= self._goaway_sent:
            # RFC 9114 §5.2: requests at or above the GOAWAY identifier are not processed
            self._abort(stream, ErrorCode.H3_REQUEST_REJECTED, report=False)
            return None
        return stream

    def _process_frames(
        self, stream: RequestStream, frames: list[tuple[int, bytes]], end_stream: bool
    ) -> None:
        for index, (frame_type, payload) in enumerate(frames):
            if stream.blocked:
                stream.queued.extend(frames[index:])
                stream.queued_fin |= end_stream
                return
            if stream.receive_done:
                return
            if frame_type == FrameType.DATA:
                self._receive_data(stream, payload)
            elif frame_type == FrameType.HEADERS:
                check_message_frame(stream.receive_state, frame_type)
                try:
                    instructions, headers = self._decoder.feed_header(stream.stream_id, payload)
                except qpack.StreamBlocked:
                    stream.blocked = True
                    continue
                self._send_decoder(instructions)
                self._receive_headers(stream, headers)
            elif check_frame_allowed(frame_type, StreamKind.REQUEST, is_client=self._is_client):
                # PUSH_PROMISE reaching a client: we never allowed a push ID (§7.2.5)
                raise IdError("PUSH_PROMISE received, but no push was allowed",
                              frame_type=frame_type)
        if stream.blocked:
            stream.queued_fin |= end_stream
        elif end_stream and not stream.receive_done:
            self._receive_end(stream)

    def _receive_data(self, stream: RequestStream, payload: bytes) -> None:
        state = stream.receive_state
        if state is not MessageState.BODY and state is not MessageState.TUNNEL:
            stream.receive_state = next_message_state(state, MessageInput.DATA)  # raises
        if stream.content is not None:
            stream.content.data_received(len(payload))
        capsules = stream.capsules
        if capsules is None:
            if payload:
                self._events.append(
                    DataReceived(stream_id=stream.stream_id, data=payload, end_stream=False)
                )
            return
        for capsule_type, value in capsules.feed(payload):
            self._capsule_event(stream.stream_id, capsule_type, value)

    def _capsule_event(self, stream_id: int, capsule_type: int, value: bytes) -> None:
        if capsule_type == CapsuleType.DATAGRAM:
            self._events.append(DatagramReceived(stream_id=stream_id, data=value))
        else:
            self._events.append(
                CapsuleReceived(stream_id=stream_id, capsule_type=capsule_type, value=value)
            )

    def _receive_headers(self, stream: RequestStream, headers: list[tuple[bytes, bytes]]) -> None:
        stream_id = stream.stream_id
        state = stream.receive_state
        if state is MessageState.BODY:
            validate_trailers(headers)
            stream.receive_state = next_message_state(state, MessageInput.HEADERS)
            if stream.content is not None:
                stream.content.end_of_message()
            self._events.append(TrailersReceived(stream_id=stream_id, headers=headers))
            return
        interim = False
        if self._is_client:
            response = validate_response_headers(headers)
            interim = response.interim
            method = stream.request_method or b""
            if interim:
                move = MessageInput.INTERIM_HEADERS
            elif method == b"CONNECT" and 200 <= response.status < 300:
                move = MessageInput.TUNNEL_HEADERS
            else:
                move = MessageInput.HEADERS
            if not interim:
                if parse_capsule_protocol(headers):
                    check_capsule_protocol_message(headers, response.status)
                stream.content = ContentLengthTracker(
                    expected_response_content_length(method, response)
                )
        else:
            request = validate_request_headers(
                headers, enable_connect_protocol=self._local.enable_connect_protocol
            )
            if parse_capsule_protocol(headers):
                check_capsule_protocol_message(headers)
            stream.request_method = request.method
            stream.datagrams = request.method == b"CONNECT"
            move = (
                MessageInput.TUNNEL_HEADERS
                if request.method == b"CONNECT"
                else MessageInput.HEADERS
            )
            stream.content = ContentLengthTracker(expected_request_content_length(request))
        stream.receive_state = next_message_state(state, move)
        self._events.append(
            HeadersReceived(stream_id=stream_id, headers=headers, end_stream=False, interim=interim)
        )

    def _receive_end(self, stream: RequestStream) -> None:
        """FIN on a request stream, after every frame before it was processed."""
        stream.parser.end_of_stream()  # a truncated frame: H3_FRAME_ERROR (connection)
        state = stream.receive_state
        if state is MessageState.HEADERS_EXPECTED:
            if self._is_client:
                raise MessageError("the response ended before its final header section")
            raise _RequestIncomplete("the request stream ended before its header section")
        if stream.content is not None and state is not MessageState.DONE:
            stream.content.end_of_message()
        if stream.capsules is not None:
            stream.capsules.end_of_stream()
        stream.receive_done = True
        if state is not MessageState.DONE:  # after trailers the message already ended
            self._mark_end(stream.stream_id)
        self._forget_if_done(stream)

    def _mark_end(self, stream_id: int) -> None:
        """Report the end of the stream: on its last event if still queued, else alone."""
        events = self._events
        last = events[-1] if events else None
        if (
            isinstance(last, (DataReceived, HeadersReceived))
            and last.stream_id == stream_id
            and not last.end_stream
        ):
            events[-1] = attrs.evolve(last, end_stream=True)
        else:
            events.append(DataReceived(stream_id=stream_id, data=b"", end_stream=True))

    def _forget_if_done(self, stream: RequestStream) -> None:
        if stream.done:
            self._forget(stream.stream_id)

    def _forget(self, stream_id: int) -> None:
        self._streams.pop(stream_id, None)
        if not self._is_client:
            self._retired_requests.add(stream_id)

    def _abort(self, stream: RequestStream, error_code: int, *, report: bool = True) -> None:
        """A stream error: reset our side, stop the peer's, forget the request (§8)."""
        stream_id = stream.stream_id
        if stream.send_state is not SendState.CLOSED:
            stream.send_state = SendState.CLOSED
            self._quic.reset_stream(stream_id, error_code)
        if not stream.receive_done:
            stream.receive_done = True
            self._quic.stop_sending(stream_id, error_code)
            self._cancel_decoding(stream)
        self._forget(stream_id)
        if report:
            self._events.append(
                StreamReset(stream_id=stream_id, error_code=error_code, by_peer=False)
            )

    def _cancel_decoding(self, stream: RequestStream) -> None:
        """RFC 9204 §4.4.2: abandoning a stream releases its field sections at the encoder."""
        stream.blocked = False
        stream.queued = []
        self._send_decoder(self._decoder.cancel_stream(stream.stream_id))

    # ------------------------------------------------------- resets, datagrams

    def _receive_reset(self, stream_id: int, error_code: int) -> None:
        if stream_id & 2:
            if stream_id in self._peer_critical.values():
                raise ClosedCriticalStream(f"the peer reset critical stream {stream_id}")
            if (stream_id & 1) == self._is_client:
                self._retire_uni(stream_id)
            return
        stream = self._streams.get(stream_id)
        if stream is None:
            if not self._is_client and (stream_id & 1) == 0:
                self._retired_requests.add(stream_id)
            return
        if stream.receive_done:
            self._forget_if_done(stream)
            return
        stream.receive_done = True
        self._cancel_decoding(stream)
        self._events.append(StreamReset(stream_id=stream_id, error_code=error_code))
        self._forget_if_done(stream)

    def _receive_stop_sending(self, stream_id: int, error_code: int) -> None:
        if stream_id in (self._control_id, self._encoder_id, self._decoder_id):
            raise ClosedCriticalStream(f"the peer stopped our critical stream {stream_id}")
        stream = self._streams.get(stream_id)
        if stream is None or stream.send_state is SendState.CLOSED:
            return
        # RFC 9000 §3.5: answer with RESET_STREAM (the QUIC layer may have done so already)
        stream.send_state = SendState.CLOSED
        self._quic.reset_stream(stream_id, error_code)
        self._events.append(StopSendingReceived(stream_id=stream_id, error_code=error_code))
        self._forget_if_done(stream)

    def _receive_datagram(self, data: bytes) -> None:
        if not self._local.h3_datagram:
            return  # we never offered HTTP datagrams: nothing to associate it with
        stream_id, payload = decode_h3_datagram(data)  # H3_DATAGRAM_ERROR (connection)
        stream = self._streams.get(stream_id)
        if stream is None or stream.receive_done or stream.request_method is None:
            return  # unknown, not created yet, or finished: dropped (RFC 9297 §2.1)
        if not stream.datagrams:
            self._abort(stream, ErrorCode.H3_DATAGRAM_ERROR)
            return
        self._events.append(DatagramReceived(stream_id=stream_id, data=payload))

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
        fields = [(bytes(name), bytes(value)) for name, value in headers]
        if self._is_client:
            self._check_open()
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
        if end_stream:
            state = SendState.CLOSED
        self._send_field_section(stream_id, fields, end_stream)
        stream.send_state = state
        self._forget_if_done(stream)

    def _check_size(self, fields: list[tuple[bytes, bytes]]) -> None:
        peer = self._peer
        limit = peer.max_field_section_size if peer is not None else None
        if limit is not None and _field_section_size(fields) > limit:
            raise ValueError(
                f"header section of {_field_section_size(fields)} bytes exceeds the peer's "
                f"SETTINGS_MAX_FIELD_SECTION_SIZE of {limit}"
            )

    def _send_field_section(
        self, stream_id: int, fields: list[tuple[bytes, bytes]], end_stream: bool
    ) -> None:
        instructions, section = self._encoder.encode(stream_id, fields)
        if instructions:
            self._quic.send_stream_data(self._encoder_id, instructions)
        self._quic.send_stream_data(
            stream_id, encode_frame(FrameType.HEADERS, section), end_stream=end_stream
        )

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
        fields = [(bytes(name), bytes(value)) for name, value in headers]
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
        stream = self._stream_for_send(stream_id)
        if not stream.datagrams:
            raise StateError(f"stream {stream_id} is not a CONNECT request: no HTTP datagrams")
        if stream.send_state is SendState.CLOSED:
            raise StateError(f"the sending side of stream {stream_id} is closed")
        if self.datagrams_enabled:
            self._quic.send_datagram_frame(encode_h3_datagram(stream_id, data))
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
