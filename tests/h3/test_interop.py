"""Interop: what aioquic and qh3 put on the wire decodes identically here, and vice versa.

aioquic's and qh3's sans-IO ``H3Connection`` run over a recording stand-in for their QUIC
connection (``PeerQuic`` below: it records the stream bytes and datagrams they send and the
error code they close with), so the bytes come from their real HTTP/3 code, not from a copy of
it.  Our building blocks are composed into a minimal receive pipeline (``OurReceiver``) to check
that they reach the same verdicts and error codes as aioquic on malformed input.  QPACK field
sections are made and read with pylsqpack.  aioquic has no capsule codec, so capsules are
cross-checked against its independent varint Buffer.
"""

from __future__ import annotations

import random
from collections import defaultdict
from types import SimpleNamespace

import pylsqpack
import pytest
from aioquic.buffer import Buffer
from aioquic.h3 import connection as aioquic_h3
from aioquic.h3 import events as aioquic_events
from aioquic.quic import events as aioquic_quic_events
from hypothesis import given
from hypothesis import strategies as st
from qh3.h3 import connection as qh3_h3
from qh3.h3 import events as qh3_events
from qh3.quic import events as qh3_quic_events

from trio_zttp._buffer import encode_varint
from trio_zttp.h3._capsules import (
    CapsuleParser,
    decode_h3_datagram,
    encode_capsule,
    encode_h3_datagram,
    is_reserved_capsule_type,
)
from trio_zttp.h3._errors import ErrorCode, H3Error, is_reserved_code
from trio_zttp.h3._frames import (
    FrameParser,
    FrameType,
    StreamType,
    decode_id_payload,
    decode_stream_header,
    encode_frame,
    encode_grease_frame,
    encode_id_frame,
    encode_stream_header,
)
from trio_zttp.h3._headers import validate_request_headers, validate_trailers
from trio_zttp.h3._rules import (
    ControlState,
    MessageInput,
    MessageState,
    StreamKind,
    check_frame_allowed,
    check_message_frame,
    next_control_state,
    next_message_state,
)
from trio_zttp.h3._settings import (
    Settings,
    SettingsId,
    check_datagram_support,
    decode_settings,
    encode_settings,
)


class PeerQuic:
    """Stands in for aioquic's / qh3's QuicConnection under their H3Connection: records output."""

    def __init__(self, *, is_client: bool, max_datagram_frame_size: int | None = 65536) -> None:
        self.configuration = SimpleNamespace(is_client=is_client)
        self._quic_logger = None
        self._remote_max_datagram_frame_size = max_datagram_frame_size
        self.is_client = is_client
        self.streams: dict[int, bytearray] = defaultdict(bytearray)
        self.ended: set[int] = set()
        self.datagrams: list[bytes] = []
        self.close_code: int | None = None

    def get_next_available_stream_id(self, is_unidirectional: bool = False) -> int:
        stream_id = (0 if self.is_client else 1) | (2 if is_unidirectional else 0)
        while stream_id in self.streams:
            stream_id += 4
        return stream_id

    def send_stream_data(self, stream_id: int, data: bytes, end_stream: bool = False) -> None:
        self.streams[stream_id] += data
        if end_stream:
            self.ended.add(stream_id)

    def send_datagram_frame(self, data: bytes) -> None:
        self.datagrams.append(bytes(data))

    def close(self, error_code: int = 0, frame_type: int | None = None,
              reason_phrase: str = "") -> None:
        self.close_code = error_code

    def reset_stream(self, stream_id: int, error_code: int) -> None:
        pass


def settings_from_dict(values: dict[int, int]) -> Settings:
    """Our Settings for a peer's SETTINGS dict, with the RFC's meaning of each identifier."""
    extension = tuple(
        (k, v)
        for k, v in values.items()
        if k not in {int(s) for s in SettingsId} and not is_reserved_code(k)
    )
    return Settings(
        qpack_max_table_capacity=values.get(0x1, 0),
        max_field_section_size=values.get(0x6),
        qpack_blocked_streams=values.get(0x7, 0),
        enable_connect_protocol=values.get(0x8) == 1,
        h3_datagram=values.get(0x33) == 1,
        unknown=extension,
    )


def split_uni_stream(data: bytes) -> tuple[int, int | None, list[tuple[int, bytes]]]:
    header = decode_stream_header(data)
    assert header is not None
    stream_type, push_id, consumed = header
    parser = FrameParser()
    frames = []
    for i in range(consumed, len(data), 5):  # QUIC may deliver it in any pieces
        frames += parser.feed(data[i : i + 5])
    assert not parser.in_frame
    return stream_type, push_id, frames


# --- their SETTINGS and control streams, read here ---------------------------------------------


@pytest.mark.parametrize("is_client", [True, False])
@pytest.mark.parametrize("webtransport", [False, True])
def test_interop_aioquic_control_stream_decodes(is_client: bool, webtransport: bool) -> None:
    quic = PeerQuic(is_client=is_client)
    h3 = aioquic_h3.H3Connection(quic, enable_webtransport=webtransport)  # type: ignore[arg-type]
    by_type = {split_uni_stream(bytes(d))[0]: bytes(d) for d in quic.streams.values()}
    assert set(by_type) == {StreamType.CONTROL, StreamType.QPACK_ENCODER, StreamType.QPACK_DECODER}
    _, _, frames = split_uni_stream(by_type[StreamType.CONTROL])
    state = ControlState.AWAITING_SETTINGS
    for frame_type, _ in frames:
        state = next_control_state(state, frame_type)
        assert check_frame_allowed(frame_type, StreamKind.CONTROL, is_client=not is_client)
    assert frames[0][0] == FrameType.SETTINGS
    settings = decode_settings(frames[0][1])
    assert settings == settings_from_dict(h3.sent_settings)
    assert settings.qpack_max_table_capacity == 4096 and settings.qpack_blocked_streams == 16
    assert settings.enable_connect_protocol
    assert settings.h3_datagram == webtransport
    assert settings.unknown == (((0x2B603742, 1),) if webtransport else ())
    if is_client:  # aioquic's client announces MAX_PUSH_ID 8 right away
        assert frames[1][0] == FrameType.MAX_PUSH_ID
        assert decode_id_payload(frames[1][1]) == 8


@pytest.mark.parametrize("is_client", [True, False])
def test_interop_qh3_control_stream_decodes(is_client: bool) -> None:
    quic = PeerQuic(is_client=is_client)
    h3 = qh3_h3.H3Connection(quic)  # type: ignore[arg-type]
    control = next(bytes(d) for d in quic.streams.values() if d[:1] == b"\x00")
    _, _, frames = split_uni_stream(control)
    settings = decode_settings(frames[0][1])
    assert settings == settings_from_dict(h3.sent_settings)
    assert settings.h3_datagram and settings.max_field_section_size == (
        1048576 if is_client else 262144
    )


SETTINGS_VALUES = st.builds(
    Settings,
    qpack_max_table_capacity=st.integers(0, 2**62 - 1),
    max_field_section_size=st.none() | st.integers(0, 2**62 - 1),
    qpack_blocked_streams=st.integers(0, 2**62 - 1),
    enable_connect_protocol=st.booleans(),
    h3_datagram=st.booleans(),
    unknown=st.just(((0x2B603742, 1), (0xF0700 + 7, 3))),
)


@given(settings=SETTINGS_VALUES, seed=st.integers(0, 2**32))
def test_interop_settings_codecs_agree(settings: Settings, seed: int) -> None:
    payload = encode_settings(settings, random_bytes=random.Random(seed).randbytes)
    theirs = aioquic_h3.parse_settings(payload)
    assert settings_from_dict(theirs) == settings
    assert sum(is_reserved_code(k) for k in theirs) == 1
    assert qh3_h3.parse_settings(payload) == theirs
    # their encoder, in our order, gives our bytes
    assert aioquic_h3.encode_settings(dict(theirs)) == payload
    assert decode_settings(qh3_h3.encode_settings(dict(theirs))) == settings


@given(
    frame_type=st.integers(0, 2**62 - 1).filter(lambda t: t not in (2, 6, 8, 9)),
    payload=st.binary(max_size=300),
)
def test_interop_frame_encoding_agrees(frame_type: int, payload: bytes) -> None:
    ours = encode_frame(frame_type, payload)
    assert ours == aioquic_h3.encode_frame(frame_type, payload)
    assert ours == qh3_h3.encode_frame(frame_type, payload)


# --- their requests, read here; ours, read by them ------------------------------------------------


def test_interop_aioquic_request_stream_decodes() -> None:
    quic = PeerQuic(is_client=True)
    h3 = aioquic_h3.H3Connection(quic)  # type: ignore[arg-type]
    body = random.Random(5).randbytes(300_000)
    headers = [(b":method", b"POST"), (b":scheme", b"https"), (b":authority", b"example.com"),
               (b":path", b"/upload"), (b"content-length", str(len(body)).encode())]
    stream_id = quic.get_next_available_stream_id()
    h3.send_headers(stream_id, headers)
    h3.send_data(stream_id, body[:100_000], end_stream=False)
    h3.send_data(stream_id, body[100_000:], end_stream=True)
    wire = bytes(quic.streams[stream_id])
    decoder = pylsqpack.Decoder(4096, 16)
    parser = FrameParser()
    state = MessageState.HEADERS_EXPECTED
    received = bytearray()
    for start in range(0, len(wire), 1200):
        for frame_type, payload in parser.feed(wire[start : start + 1200]):
            assert check_frame_allowed(frame_type, StreamKind.REQUEST, is_client=False)
            check_message_frame(state, frame_type)
            if frame_type == FrameType.HEADERS:
                _, decoded = decoder.feed_header(stream_id, payload)
                head = validate_request_headers(decoded)
                assert decoded == headers and head.content_length == len(body)
                state = next_message_state(state, MessageInput.HEADERS)
            else:
                state = next_message_state(state, MessageInput.DATA)
                assert len(payload) <= 1200
                received += payload
    parser.end_of_stream()
    assert stream_id in quic.ended and received == body


def our_client_streams(settings: Settings, body: bytes) -> dict[int, bytes]:
    """A client's control stream and one request stream, as this package encodes them."""
    rng = random.Random(11)
    control = (
        encode_stream_header(StreamType.CONTROL)
        + encode_frame(FrameType.SETTINGS, encode_settings(settings, random_bytes=rng.randbytes))
        + encode_grease_frame(rng.randbytes)
        + encode_id_frame(FrameType.MAX_PUSH_ID, 4)
    )
    encoder = pylsqpack.Encoder()
    headers = [(b":method", b"PUT"), (b":scheme", b"https"), (b":authority", b"a.example"),
               (b":path", b"/x"), (b"x-trio", b"zttp")]
    _, section = encoder.encode(0, headers)
    request = (
        encode_frame(FrameType.HEADERS, section)
        + encode_grease_frame(rng.randbytes)
        + encode_frame(FrameType.DATA, body[:1000])
        + encode_frame(FrameType.DATA, b"")
        + encode_frame(FrameType.DATA, body[1000:])
        + encode_frame(FrameType.HEADERS, encoder.encode(0, [(b"x-sum", b"1")])[1])
    )
    return {2: control, 0: request}


def test_interop_our_streams_read_by_aioquic() -> None:
    settings = Settings(qpack_max_table_capacity=0, max_field_section_size=65536,
                        enable_connect_protocol=True, h3_datagram=True,
                        unknown=((0x2B603742, 1),))
    body = random.Random(6).randbytes(20_000)
    quic = PeerQuic(is_client=False)
    h3 = aioquic_h3.H3Connection(quic)  # type: ignore[arg-type]
    events = []
    for stream_id, data in our_client_streams(settings, body).items():
        for start in range(0, len(data), 700):
            chunk = data[start : start + 700]
            end = start + 700 >= len(data) and stream_id == 0
            events += h3.handle_event(aioquic_quic_events.StreamDataReceived(
                data=chunk, end_stream=end, stream_id=stream_id))
    assert quic.close_code is None
    assert settings_from_dict(h3.received_settings) == settings
    headers = [e for e in events if isinstance(e, aioquic_events.HeadersReceived)]
    assert headers[0].headers[-1] == (b"x-trio", b"zttp")
    assert headers[1].headers == [(b"x-sum", b"1")] and headers[1].stream_ended
    data = b"".join(e.data for e in events if isinstance(e, aioquic_events.DataReceived))
    assert data == body


def test_interop_our_settings_read_by_qh3() -> None:
    settings = Settings(qpack_max_table_capacity=100, qpack_blocked_streams=3, h3_datagram=True)
    quic = PeerQuic(is_client=False)
    h3 = qh3_h3.H3Connection(quic)  # type: ignore[arg-type]
    control = our_client_streams(settings, b"")[2]
    h3.handle_event(qh3_quic_events.StreamDataReceived(data=control, end_stream=False,
                                                       stream_id=2))
    assert quic.close_code is None
    assert settings_from_dict(h3.received_settings) == settings


# --- the same malformed input gets the same error code here and in aioquic -------------------


class OurReceiver:
    """The receive path composed from this package's pieces, as the connection will use them."""

    def __init__(self, *, is_client: bool, max_datagram_frame_size: int | None) -> None:
        self.is_client = is_client
        self.max_datagram_frame_size = max_datagram_frame_size
        self.decoder = pylsqpack.Decoder(4096, 16)

    def control(self, data: bytes) -> None:
        header = decode_stream_header(data)
        assert header is not None and header[0] == StreamType.CONTROL
        parser = FrameParser()
        state = ControlState.AWAITING_SETTINGS
        for frame_type, payload in parser.feed(data[header[2] :]):
            state = next_control_state(state, frame_type)
            if not check_frame_allowed(frame_type, StreamKind.CONTROL, is_client=self.is_client):
                continue
            if frame_type == FrameType.SETTINGS:
                check_datagram_support(decode_settings(payload), self.max_datagram_frame_size)
            elif frame_type in (FrameType.MAX_PUSH_ID, FrameType.GOAWAY, FrameType.CANCEL_PUSH):
                decode_id_payload(payload, frame_type)

    def request(self, data: bytes) -> None:
        parser = FrameParser()
        state = MessageState.HEADERS_EXPECTED
        for frame_type, payload in parser.feed(data):
            if not check_frame_allowed(frame_type, StreamKind.REQUEST, is_client=self.is_client):
                continue
            check_message_frame(state, frame_type)
            if frame_type == FrameType.HEADERS:
                _, headers = self.decoder.feed_header(0, payload)
                if state is MessageState.BODY:
                    validate_trailers(headers)
                else:
                    validate_request_headers(headers)
                state = next_message_state(state, MessageInput.HEADERS)
            elif frame_type == FrameType.DATA:
                state = next_message_state(state, MessageInput.DATA)
        parser.end_of_stream()


def settings_frame(*pairs: tuple[int, int]) -> bytes:
    return encode_frame(FrameType.SETTINGS, b"".join(encode_varint(i) + encode_varint(v)
                                                     for i, v in pairs))


CONTROL = encode_stream_header(StreamType.CONTROL)
GOOD_SETTINGS = settings_frame((0x1, 0), (0x21, 7))
HEADERS = encode_frame(FrameType.HEADERS, pylsqpack.Encoder().encode(0, [
    (b":method", b"GET"), (b":scheme", b"https"), (b":authority", b"a"), (b":path", b"/")])[1])
TRAILERS = encode_frame(FrameType.HEADERS, pylsqpack.Encoder().encode(0, [(b"x-sum", b"1")])[1])

CONTROL_CASES = [
    ("data first", CONTROL + encode_frame(0, b"x"), True, ErrorCode.H3_MISSING_SETTINGS),
    ("goaway first", CONTROL + encode_id_frame(7, 0), True, ErrorCode.H3_MISSING_SETTINGS),
    ("two settings", CONTROL + GOOD_SETTINGS * 2, False, ErrorCode.H3_FRAME_UNEXPECTED),
    ("http/2 setting", CONTROL + settings_frame((0x2, 0)), False, ErrorCode.H3_SETTINGS_ERROR),
    ("duplicate", CONTROL + settings_frame((0x6, 1), (0x6, 1)), False,
     ErrorCode.H3_SETTINGS_ERROR),
    ("datagram=2", CONTROL + settings_frame((0x33, 2)), False, ErrorCode.H3_SETTINGS_ERROR),
    ("connect=2", CONTROL + settings_frame((0x8, 2)), False, ErrorCode.H3_SETTINGS_ERROR),
    ("truncated pair", CONTROL + encode_frame(4, b"\x01\x40"), False, ErrorCode.H3_FRAME_ERROR),
    ("http/2 frame", CONTROL + GOOD_SETTINGS + encode_frame(0x6, b"12345678"), False,
     ErrorCode.H3_FRAME_UNEXPECTED),
    ("headers", CONTROL + GOOD_SETTINGS + HEADERS, False, ErrorCode.H3_FRAME_UNEXPECTED),
    ("data", CONTROL + GOOD_SETTINGS + encode_frame(0, b""), False,
     ErrorCode.H3_FRAME_UNEXPECTED),
    ("max_push_id to client", CONTROL + GOOD_SETTINGS + encode_id_frame(0xD, 4), True,
     ErrorCode.H3_FRAME_UNEXPECTED),
    ("max_push_id trailing", CONTROL + GOOD_SETTINGS + encode_frame(0xD, b"\x01\x00"), False,
     ErrorCode.H3_FRAME_ERROR),
    ("fine", CONTROL + GOOD_SETTINGS + encode_frame(0x21, b"") + encode_id_frame(0xD, 4), False,
     None),
]


@pytest.mark.parametrize(("name", "data", "is_client", "code"), CONTROL_CASES,
                         ids=[c[0] for c in CONTROL_CASES])
def test_interop_control_stream_errors_agree(
    name: str, data: bytes, is_client: bool, code: int | None
) -> None:
    quic = PeerQuic(is_client=is_client)
    h3 = aioquic_h3.H3Connection(quic)  # type: ignore[arg-type]
    peer_stream = 3 if is_client else 2
    h3.handle_event(aioquic_quic_events.StreamDataReceived(data=data, end_stream=False,
                                                           stream_id=peer_stream))
    assert quic.close_code == code
    ours: int | None = None
    try:
        OurReceiver(is_client=is_client, max_datagram_frame_size=65536).control(data)
    except H3Error as exc:
        ours = exc.error_code
    assert ours == code


def test_interop_datagram_setting_without_transport_support_agrees() -> None:
    data = CONTROL + settings_frame((0x33, 1))
    quic = PeerQuic(is_client=False, max_datagram_frame_size=None)
    h3 = aioquic_h3.H3Connection(quic)  # type: ignore[arg-type]
    h3.handle_event(aioquic_quic_events.StreamDataReceived(data=data, end_stream=False,
                                                           stream_id=2))
    assert quic.close_code == ErrorCode.H3_SETTINGS_ERROR
    with pytest.raises(H3Error) as info:
        OurReceiver(is_client=False, max_datagram_frame_size=None).control(data)
    assert info.value.error_code == ErrorCode.H3_SETTINGS_ERROR


REQUEST_CASES = [
    ("data first", encode_frame(0, b"x") + HEADERS, ErrorCode.H3_FRAME_UNEXPECTED),
    ("http/2 frame", HEADERS + encode_frame(0x8, b"1234"), ErrorCode.H3_FRAME_UNEXPECTED),
    ("settings", HEADERS + GOOD_SETTINGS, ErrorCode.H3_FRAME_UNEXPECTED),
    ("goaway", encode_id_frame(7, 0) + HEADERS, ErrorCode.H3_FRAME_UNEXPECTED),
    ("push_promise to server", encode_frame(5, b"\x00\x00\x00") + HEADERS,
     ErrorCode.H3_FRAME_UNEXPECTED),
    ("data after trailers", HEADERS + TRAILERS + encode_frame(0, b"x"),
     ErrorCode.H3_FRAME_UNEXPECTED),
    ("headers after trailers", HEADERS + TRAILERS + TRAILERS, ErrorCode.H3_FRAME_UNEXPECTED),
    ("pseudo-header in trailers", HEADERS + HEADERS, ErrorCode.H3_MESSAGE_ERROR),
    ("truncated data", HEADERS + encode_frame(0, b"xyz")[:-1], ErrorCode.H3_FRAME_ERROR),
    ("truncated header", HEADERS + b"\x00\x40", ErrorCode.H3_FRAME_ERROR),
    ("truncated unknown", HEADERS + encode_frame(0x21, b"abc")[:-1], ErrorCode.H3_FRAME_ERROR),
    ("fine", HEADERS + encode_frame(0x21, b"abc") + encode_frame(0, b"x") + TRAILERS, None),
]


@pytest.mark.parametrize(("name", "data", "code"), REQUEST_CASES,
                         ids=[c[0] for c in REQUEST_CASES])
def test_interop_request_stream_errors_agree(name: str, data: bytes, code: int | None) -> None:
    quic = PeerQuic(is_client=False)
    h3 = aioquic_h3.H3Connection(quic)  # type: ignore[arg-type]
    h3.handle_event(aioquic_quic_events.StreamDataReceived(data=data, end_stream=True,
                                                           stream_id=0))
    assert quic.close_code == code
    ours: int | None = None
    try:
        OurReceiver(is_client=False, max_datagram_frame_size=65536).request(data)
    except H3Error as exc:
        ours = exc.error_code
    assert ours == code


# --- HTTP/3 datagrams ---------------------------------------------------------------------------


@given(quarter=st.integers(0, 2**60 - 1), payload=st.binary(max_size=64))
def test_interop_h3_datagrams_both_ways(quarter: int, payload: bytes) -> None:
    quic = PeerQuic(is_client=True)
    h3 = aioquic_h3.H3Connection(quic)  # type: ignore[arg-type]
    h3.send_datagram(quarter * 4, payload)
    assert decode_h3_datagram(quic.datagrams[0]) == (quarter * 4, payload)
    assert encode_h3_datagram(quarter * 4, payload) == quic.datagrams[0]
    (event,) = h3.handle_event(aioquic_quic_events.DatagramFrameReceived(
        data=encode_h3_datagram(quarter * 4, payload)))
    assert isinstance(event, aioquic_events.DatagramReceived)
    assert (event.stream_id, event.data) == (quarter * 4, payload)
    # qh3 speaks in quarter stream IDs ("flow IDs")
    quic = PeerQuic(is_client=False)
    qh3 = qh3_h3.H3Connection(quic)  # type: ignore[arg-type]
    qh3.send_datagram(quarter, payload)
    assert decode_h3_datagram(quic.datagrams[0]) == (quarter * 4, payload)
    (qevent,) = qh3.handle_event(qh3_quic_events.DatagramFrameReceived(
        data=encode_h3_datagram(quarter * 4, payload)))
    assert isinstance(qevent, qh3_events.DatagramReceived)
    assert (qevent.flow_id, qevent.data) == (quarter, payload)


def test_interop_empty_h3_datagram_is_datagram_error_in_both() -> None:
    quic = PeerQuic(is_client=True)
    h3 = aioquic_h3.H3Connection(quic)  # type: ignore[arg-type]
    h3.handle_event(aioquic_quic_events.DatagramFrameReceived(data=b""))
    assert quic.close_code == ErrorCode.H3_DATAGRAM_ERROR
    with pytest.raises(H3Error) as info:
        decode_h3_datagram(b"")
    assert info.value.error_code == quic.close_code


# --- capsules against aioquic's independent varint Buffer ----------------------------------------

CAPSULES = st.lists(
    st.tuples(st.integers(0, 2**62 - 1).filter(lambda t: not is_reserved_capsule_type(t)),
              st.binary(max_size=100)),
    max_size=6,
)


@given(capsules=CAPSULES, chunk=st.integers(1, 50))
def test_interop_capsules_against_aioquic_buffer(
    capsules: list[tuple[int, bytes]], chunk: int
) -> None:
    buf = Buffer(capacity=8192)
    for capsule_type, value in capsules:
        buf.push_uint_var(capsule_type)
        buf.push_uint_var(len(value))
        buf.push_bytes(value)
    theirs = buf.data
    ours = b"".join(encode_capsule(t, v) for t, v in capsules)
    assert ours == theirs
    parser = CapsuleParser()
    parsed = []
    for start in range(0, len(theirs), chunk):
        parsed += parser.feed(theirs[start : start + chunk])
    parser.end_of_stream()
    assert parsed == capsules
    reader = Buffer(data=ours)
    back = []
    while not reader.eof():
        capsule_type = reader.pull_uint_var()
        back.append((capsule_type, reader.pull_bytes(reader.pull_uint_var())))
    assert back == capsules
