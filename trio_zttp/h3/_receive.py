"""The receiving half of :class:`~._connection.Connection`: everything the peer sends.

:class:`ConnectionCore` holds the connection's state and turns QUIC events into HTTP/3
events: the peer's control and QPACK streams, request streams (frame sequence, QPACK
decoding with blocked streams, field validation, content length, capsules), HTTP/3
datagrams, resets and STOP_SENDING. Remote violations are raised deep down as ``H3Error`` /
``qpack.QpackError`` and caught in one place, :meth:`ConnectionCore.receive_quic_event`, which
closes the connection; stream-scoped ones are caught per stream and reset that stream.
The public commands live in :mod:`._connection`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Final

from .. import qpack
from .._buffer import BufferReadError, decode_varint
from ..quic._events import ConnectionTerminated as QuicConnectionTerminated
from ..quic._events import DatagramFrameReceived as QuicDatagramFrameReceived
from ..quic._events import StopSendingReceived as QuicStopSendingReceived
from ..quic._events import StreamDataReceived as QuicStreamDataReceived
from ..quic._events import StreamReset as QuicStreamReset
from ._capsules import (
    CapsuleType,
    check_capsule_protocol_message,
    decode_h3_datagram,
    parse_capsule_protocol,
)
from ._errors import (
    ClosedCriticalStreamError,
    ErrorCode,
    ExcessiveLoadError,
    H3Error,
    IdError,
    MessageError,
    StreamCreationError,
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
from ._settings import Settings, check_datagram_support, decode_settings
from ._stream import RequestStream, RetiredStreams, SendState, UniStream

__all__ = ["ConnectionCore"]

_DATA: Final = 0  # FrameType.DATA, FrameType.HEADERS as plain ints (compared per frame)
_HEADERS: Final = 1
_CLOSED: Final = SendState.CLOSED
_QPACK_DECODER: Final = StreamType.QPACK_DECODER
_QPACK_ENCODER: Final = StreamType.QPACK_ENCODER
#: The decoded field-section bound when our settings leave it unlimited.
_UNLIMITED_FIELD_SECTION: Final = 1 << 20
#: Field sections we send whose fields outside the QPACK static table hold at most this many
#: bytes of names and values use no dynamic table (``qpack.Encoder``'s
#: ``literal_section_size``): a small request or response (``:authority``, ``content-length``)
#: then costs the peer no Section Acknowledgment, and often saves a packet per exchange.
LITERAL_SECTION_SIZE: Final = 48
#: HTTP/3 datagrams held for request streams whose request has not been read yet (RFC 9297
#: §2.1 "buffer it temporarily"), at most this many and this many payload bytes in all;
#: beyond that they are dropped, as UDP would.
MAX_EARLY_DATAGRAMS: Final = 32
MAX_EARLY_DATAGRAM_BYTES: Final = 64 * 1024
#: Interim (1xx) responses a client takes before the final one; more is H3_EXCESSIVE_LOAD.
MAX_INTERIM_RESPONSES: Final = 32
#: Frames waiting behind a blocked field section (consecutive DATA frames count as one,
#: unknown frame types are dropped); more is H3_EXCESSIVE_LOAD.
MAX_QUEUED_FRAMES: Final = 32


class _RequestIncomplete(H3Error):
    """H3_REQUEST_INCOMPLETE: the request stream ended before a complete request."""

    error_code = ErrorCode.H3_REQUEST_INCOMPLETE
    stream_error = True


class ConnectionCore:
    """The state of an HTTP/3 connection and the handling of what the peer sends.

    Not used directly: :class:`~._connection.Connection` adds the commands.
    """

    __slots__ = (
        "_closed",
        "_control_id",
        "_decoder",
        "_decoder_id",
        "_early_datagram_bytes",
        "_early_datagrams",
        "_encoder",
        "_encoder_id",
        "_events",
        "_goaway_received",
        "_goaway_sent",
        "_h3_datagrams",
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
        self, quic: QuicTransport, *, is_client: bool, settings: Settings, max_capsule_length: int
    ) -> None:
        self._quic = quic
        self._is_client = is_client
        self._local = settings
        self._peer: Settings | None = None
        # SETTINGS_H3_DATAGRAM=1 sent and received (set when the peer's SETTINGS arrive)
        self._h3_datagrams = False
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
        self._encoder = qpack.Encoder(literal_section_size=LITERAL_SECTION_SIZE)
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
        self._control_id = self._encoder_id = self._decoder_id = -1
        # server: stream ID -> HTTP/3 datagrams that arrived before the request was read
        self._early_datagrams: dict[int, list[bytes]] = {}
        self._early_datagram_bytes = 0

    def receive_quic_event(self, event: object) -> None:
        """Process one event of the QUIC connection (``trio_zttp.quic`` event classes).

        Never raises for anything the peer sends: violations close the connection or reset a
        stream with the RFC's error code, and show up as events. Events HTTP/3 has no use for
        (handshake, connection IDs ...) are ignored, and so is everything once closed.
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

    def receive_datagram_frame(
        self, event: QuicDatagramFrameReceived
    ) -> tuple[int, bytes] | None:
        """:meth:`receive_quic_event` for a DATAGRAM frame, the common case without an event.

        An HTTP datagram for an open request stream that carries them (short Quarter Stream
        ID, no event queued before it) comes back as ``(stream_id, payload)``, the fields of
        the :class:`~._events.DatagramReceived` that :meth:`receive_quic_event` would have
        queued; anything else is handled exactly as :meth:`receive_quic_event` does (events,
        errors, early datagrams) and None is returned.
        """
        data = event.data
        if data and data[0] < 0x40 and not self._events and not self._closed:
            stream = self._streams.get(data[0] << 2)
            # ``datagrams`` is set with ``request_method`` (CONNECT) on both sides
            if (
                stream is not None
                and stream.datagrams
                and not stream.receive_done
                and self._local.h3_datagram
            ):
                return stream.stream_id, bytes(data[1:])
        self.receive_quic_event(event)
        return None

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
        if kind is _QPACK_DECODER:  # the busiest: a Section Acknowledgment per response
            if data:
                self._encoder.feed_decoder(data)
            if end_stream:
                raise ClosedCriticalStreamError("the peer closed its QPACK decoder stream")
        elif kind is _QPACK_ENCODER:
            if data:
                self._receive_encoder_stream(data)
            if end_stream:
                raise ClosedCriticalStreamError("the peer closed its QPACK encoder stream")
        else:
            parser = stream.parser
            assert parser is not None
            for frame_type, payload in parser.feed(data):
                self._receive_control_frame(stream, frame_type, payload)
            if end_stream:
                raise ClosedCriticalStreamError("the peer closed its control stream")

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
            self._h3_datagrams = self._local.h3_datagram and settings.h3_datagram
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
            except qpack.FieldSectionTooLargeError as exc:
                self._send_decoder(exc.decoder_stream_data)
                self._abort(stream, ErrorCode.H3_MESSAGE_ERROR)
                continue
            self._send_decoder(instructions)
            stream.blocked = False
            queued = [(t, bytes(p)) for t, p in stream.queued]  # (DATA: bytearray)
            stream.queued = ()
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
        self, stream: RequestStream, frames: Sequence[tuple[int, bytes]], end_stream: bool
    ) -> None:
        for index, (frame_type, payload) in enumerate(frames):
            if stream.blocked:
                self._queue_blocked(stream, frames, index)
                stream.queued_fin |= end_stream
                return
            if stream.receive_done:
                return
            if frame_type == _DATA:
                self._receive_data(stream, payload)
            elif frame_type == _HEADERS:
                state = stream.receive_state
                if state is not MessageState.HEADERS_EXPECTED and state is not MessageState.BODY:
                    check_message_frame(state, frame_type)  # raises (they take HEADERS)
                try:
                    instructions, headers = self._decoder.feed_header(stream.stream_id, payload)
                except qpack.StreamBlocked:
                    stream.blocked = True
                    continue
                except qpack.FieldSectionTooLargeError as exc:
                    # a stream error (RFC 9114 §4.2.2), also for sections that were queued
                    # behind a blocked one
                    self._send_decoder(exc.decoder_stream_data)
                    self._abort(stream, ErrorCode.H3_MESSAGE_ERROR)
                    return
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

    def _queue_blocked(self, stream: RequestStream, frames: Sequence[tuple[int, bytes]],
                       start: int) -> None:
        """``frames[start:]`` wait behind the stream's blocked field section: consecutive
        DATA frames as one (a bytearray grown in place), unknown frame types dropped (they
        are ignored anyway), a frame type a request stream must not carry refused now; at
        most :data:`MAX_QUEUED_FRAMES` entries, so tiny frames cannot cost memory or time
        beyond the stream's flow-control window."""
        queued = stream.queued
        if type(queued) is not list:
            queued = stream.queued = []
        for index in range(start, len(frames)):
            frame_type, payload = frames[index]
            if frame_type == _DATA:
                last = queued[-1][1] if queued and queued[-1][0] == _DATA else None
                if isinstance(last, bytearray):
                    last.extend(payload)
                    continue
                entry: bytes | bytearray = bytearray(payload)
            elif frame_type != _HEADERS:
                if check_frame_allowed(frame_type, StreamKind.REQUEST,
                                       is_client=self._is_client):
                    raise IdError("PUSH_PROMISE received, but no push was allowed",
                                  frame_type=frame_type)
                continue  # unknown, reserved: ignored (RFC 9114 §9)
            else:
                entry = payload
            if len(queued) >= MAX_QUEUED_FRAMES:
                raise ExcessiveLoadError("too many frames behind a blocked field section",
                                         frame_type=frame_type)
            queued.append((frame_type, entry))

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
                stream.interim_count += 1
                if stream.interim_count > MAX_INTERIM_RESPONSES:
                    raise ExcessiveLoadError(
                        f"more than {MAX_INTERIM_RESPONSES} interim responses to one request",
                        frame_type=_HEADERS)
            elif method == b"CONNECT" and 200 <= response.status < 300:
                move = MessageInput.TUNNEL_HEADERS
            else:
                move = MessageInput.HEADERS
            if not interim:
                if parse_capsule_protocol(headers):
                    check_capsule_protocol_message(headers, response.status)
                expected = expected_response_content_length(method, response)
                if expected is not None:  # without a length to reach nothing is checked
                    stream.content = ContentLengthTracker(expected)
        else:
            request = validate_request_headers(
                headers, enable_connect_protocol=self._local.enable_connect_protocol
            )
            if parse_capsule_protocol(headers):
                check_capsule_protocol_message(headers)
            method = request.method
            stream.request_method = method
            if method == b"CONNECT":
                stream.datagrams = True
                move = MessageInput.TUNNEL_HEADERS
            else:
                move = MessageInput.HEADERS
            expected = expected_request_content_length(request)
            if expected is not None:  # without a length to reach nothing is checked
                stream.content = ContentLengthTracker(expected)
        stream.receive_state = next_message_state(state, move)
        self._events.append(
            HeadersReceived(stream_id=stream_id, headers=headers, end_stream=False, interim=interim)
        )
        if not self._early_datagrams:
            return
        early = self._early_datagrams.pop(stream_id, None)
        if early is not None:
            self._early_datagram_bytes -= sum(map(len, early))
            for payload in early:
                if not stream.receive_done:
                    self._deliver_datagram(stream, payload)

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
        if stream.send_state is _CLOSED:
            self._forget(stream.stream_id)

    def _mark_end(self, stream_id: int) -> None:
        """Report the end of the stream: on its last event if still queued, else alone."""
        events = self._events
        if events:
            last = events[-1]
            kind = type(last)
            if (
                (kind is DataReceived or kind is HeadersReceived)
                and last.stream_id == stream_id  # type: ignore[attr-defined]
                and not last.end_stream  # type: ignore[attr-defined]
            ):
                # still in our queue, so nobody has seen it: marked in place instead of
                # replaced by a copy (the frozen event's fields are otherwise never touched)
                object.__setattr__(last, "end_stream", True)
                return
        events.append(DataReceived(stream_id=stream_id, data=b"", end_stream=True))

    def _forget_if_done(self, stream: RequestStream) -> None:
        if stream.receive_done and stream.send_state is _CLOSED:
            self._forget(stream.stream_id)

    def _forget(self, stream_id: int) -> None:
        self._streams.pop(stream_id, None)
        if self._early_datagrams:
            self._drop_early_datagrams(stream_id)
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
        stream.queued = ()
        self._send_decoder(self._decoder.cancel_stream(stream.stream_id))

    # ------------------------------------------------------- resets, datagrams

    def _receive_reset(self, stream_id: int, error_code: int) -> None:
        if stream_id & 2:
            if stream_id in self._peer_critical.values():
                raise ClosedCriticalStreamError(f"the peer reset critical stream {stream_id}")
            if (stream_id & 1) == self._is_client:
                self._retire_uni(stream_id)
            return
        stream = self._streams.get(stream_id)
        if stream is None:
            if not self._is_client and (stream_id & 1) == 0:
                self._retired_requests.add(stream_id)
                self._drop_early_datagrams(stream_id)
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
            raise ClosedCriticalStreamError(f"the peer stopped our critical stream {stream_id}")
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
        if data and data[0] < 0x40:  # a one-byte Quarter Stream ID (streams below 256)
            stream_id = data[0] << 2
            payload = bytes(data[1:])
        else:
            stream_id, payload = decode_h3_datagram(data)  # H3_DATAGRAM_ERROR (connection)
        stream = self._streams.get(stream_id)
        if stream is None or stream.request_method is None:
            if stream is None or not stream.receive_done:
                self._hold_early_datagram(stream_id, payload)
            return
        if stream.receive_done:
            return  # finished: dropped (RFC 9297 §2.1)
        if stream.datagrams:
            self._events.append(DatagramReceived(stream_id=stream_id, data=payload))
        else:
            self._abort(stream, ErrorCode.H3_DATAGRAM_ERROR)

    def _deliver_datagram(self, stream: RequestStream, payload: bytes) -> None:
        if not stream.datagrams:
            self._abort(stream, ErrorCode.H3_DATAGRAM_ERROR)
            return
        self._events.append(DatagramReceived(stream_id=stream.stream_id, data=payload))

    def _hold_early_datagram(self, stream_id: int, payload: bytes) -> None:
        """A datagram for a request not read yet (server): the peer may send datagrams
        together with its request, and a QUIC packet may carry them before the request's
        STREAM frame, or QPACK may hold the request back. RFC 9297 §2.1 allows dropping or
        buffering "on the order of a round trip"; we keep a bounded number until the
        request's header section is read (finished or rejected streams drop theirs)."""
        if self._is_client or stream_id in self._retired_requests:
            return  # a client opens every request itself: the stream is gone
        if self._goaway_sent is not None and stream_id >= self._goaway_sent:
            return  # the request will be rejected
        if (
            sum(map(len, self._early_datagrams.values())) >= MAX_EARLY_DATAGRAMS
            or self._early_datagram_bytes + len(payload) > MAX_EARLY_DATAGRAM_BYTES
        ):
            return
        self._early_datagrams.setdefault(stream_id, []).append(payload)
        self._early_datagram_bytes += len(payload)

    def _drop_early_datagrams(self, stream_id: int) -> None:
        early = self._early_datagrams.pop(stream_id, None)
        if early is not None:
            self._early_datagram_bytes -= sum(map(len, early))
