"""QUIC frame codec (RFC 9000 §12.4, §19; RFC 9221 §4): round trips, truncation, malformed input,
the hot-path parsers and writers, and the §12.4 tables checked against the RFC's own table."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_zttp._buffer import VARINT_MAX, Writer, encode_varint, varint_size
from trio_zttp._tls.suites import Epoch
from trio_zttp.quic._errors import FrameEncodingError, ProtocolViolation, TransportErrorCode
from trio_zttp.quic._frame_codec import (
    MAX_ACK_RANGES,
    MAX_STREAMS_LIMIT,
    ack_frame_size,
    crypto_data_capacity,
    decode_frame,
    decode_frame_body,
    decode_frames,
    encode_frame,
    encoded_size,
    parse_ack,
    parse_crypto,
    parse_datagram,
    parse_stream,
    read_frame_type,
    skip_padding,
    stream_data_capacity,
    stream_frame_header,
    stream_frame_overhead,
    write_ack_frame,
    write_crypto_frame,
    write_datagram_frame,
    write_stream_frame,
)
from trio_zttp.quic._frames import (
    ACK_ELICITING_FRAME_TYPES,
    ALLOWED_EPOCHS,
    CONGESTION_EXEMPT_FRAME_TYPES,
    FLOW_CONTROLLED_FRAME_TYPES,
    FRAME_PACKET_TYPES,
    IN_FLIGHT_FRAME_TYPES,
    PROBING_FRAME_TYPES,
    ZERO_RTT_FORBIDDEN_FRAME_TYPES,
    AckFrame,
    ConnectionCloseFrame,
    CryptoFrame,
    DataBlockedFrame,
    DatagramFrame,
    Frame,
    FrameType,
    HandshakeDoneFrame,
    MaxDataFrame,
    MaxStreamDataFrame,
    MaxStreamsFrame,
    NewConnectionIdFrame,
    NewTokenFrame,
    PaddingFrame,
    PathChallengeFrame,
    PathResponseFrame,
    PingFrame,
    ResetStreamFrame,
    RetireConnectionIdFrame,
    StopSendingFrame,
    StreamDataBlockedFrame,
    StreamFrame,
    StreamsBlockedFrame,
    check_frame_allowed,
    frame_type_of,
    is_known_frame_type,
)

VECTORS = Path(__file__).resolve().parent.parent / "vectors" / "frames"

# --------------------------------------------------------------------------------------------
# strategies: every varint width is exercised, data stays short so truncation loops are cheap

varints = st.one_of(
    st.integers(0, 63), st.integers(64, 16383), st.integers(16384, 2**30 - 1),
    st.integers(2**30, VARINT_MAX),
)
small_data = st.binary(max_size=80)


@st.composite
def ack_ranges(draw: st.DrawFn, max_ranges: int = 12) -> tuple[tuple[int, int], ...]:
    largest = draw(varints)
    ranges = []
    high = largest
    for _ in range(draw(st.integers(1, max_ranges))):
        low = high - draw(st.integers(0, min(high, 2**20)))
        ranges.append((low, high))
        if low < 2:
            break
        high = low - 2 - draw(st.integers(0, min(low - 2, 2**20)))
    return tuple(ranges)


@st.composite
def stream_frames(draw: st.DrawFn) -> StreamFrame:
    data = draw(small_data)
    offset = draw(st.one_of(st.just(0), varints.map(lambda v: min(v, VARINT_MAX - len(data)))))
    return StreamFrame(stream_id=draw(varints), offset=offset, data=data, fin=draw(st.booleans()))


@st.composite
def crypto_frames(draw: st.DrawFn) -> CryptoFrame:
    data = draw(small_data)
    offset = draw(varints.map(lambda v: min(v, VARINT_MAX - len(data))))
    return CryptoFrame(offset=offset, data=data)


@st.composite
def new_connection_id_frames(draw: st.DrawFn) -> NewConnectionIdFrame:
    sequence = draw(varints)
    return NewConnectionIdFrame(
        sequence_number=sequence,
        retire_prior_to=draw(st.integers(0, sequence)),
        connection_id=draw(st.binary(min_size=1, max_size=20)),
        stateless_reset_token=draw(st.binary(min_size=16, max_size=16)),
    )


stream_limits = st.integers(0, MAX_STREAMS_LIMIT)
eight_bytes = st.binary(min_size=8, max_size=8)
ecn = st.none() | st.tuples(varints, varints, varints)

STRATEGIES: dict[str, st.SearchStrategy[Frame]] = {
    "padding": st.builds(PaddingFrame, length=st.integers(1, 300)),
    "ping": st.just(PingFrame()),
    "ack": st.builds(AckFrame, ranges=ack_ranges(), ack_delay=varints, ecn_counts=ecn),
    "reset_stream": st.builds(
        ResetStreamFrame, stream_id=varints, error_code=varints, final_size=varints),
    "stop_sending": st.builds(StopSendingFrame, stream_id=varints, error_code=varints),
    "crypto": crypto_frames(),
    "new_token": st.builds(NewTokenFrame, token=st.binary(min_size=1, max_size=80)),
    "stream": stream_frames(),
    "max_data": st.builds(MaxDataFrame, maximum_data=varints),
    "max_stream_data": st.builds(
        MaxStreamDataFrame, stream_id=varints, maximum_stream_data=varints),
    "max_streams": st.builds(
        MaxStreamsFrame, bidirectional=st.booleans(), maximum_streams=stream_limits),
    "data_blocked": st.builds(DataBlockedFrame, maximum_data=varints),
    "stream_data_blocked": st.builds(
        StreamDataBlockedFrame, stream_id=varints, maximum_stream_data=varints),
    "streams_blocked": st.builds(
        StreamsBlockedFrame, bidirectional=st.booleans(), maximum_streams=stream_limits),
    "new_connection_id": new_connection_id_frames(),
    "retire_connection_id": st.builds(RetireConnectionIdFrame, sequence_number=varints),
    "path_challenge": st.builds(PathChallengeFrame, data=eight_bytes),
    "path_response": st.builds(PathResponseFrame, data=eight_bytes),
    "connection_close": st.builds(
        ConnectionCloseFrame, error_code=varints, frame_type=st.none() | varints,
        reason_phrase=small_data),
    "handshake_done": st.just(HandshakeDoneFrame()),
    "datagram": st.builds(DatagramFrame, data=small_data),
}
any_frame = st.one_of(*STRATEGIES.values())


def encode(*frames: Frame) -> bytes:
    writer = Writer()
    for frame in frames:
        encode_frame(writer, frame)
    return writer.getvalue()


def merge_padding(frames: list[Frame]) -> list[Frame]:
    merged: list[Frame] = []
    for frame in frames:
        if isinstance(frame, PaddingFrame) and merged and isinstance(merged[-1], PaddingFrame):
            merged[-1] = PaddingFrame(length=merged[-1].length + frame.length)
        else:
            merged.append(frame)
    return merged


def test_strategies_cover_every_frame_class() -> None:
    classes = set(Frame.__args__)
    assert len(STRATEGIES) == len(classes) == 21


# --------------------------------------------------------------------------------------------
# round trips and truncation, every frame type


@pytest.mark.parametrize("name", sorted(STRATEGIES))
@settings(max_examples=100)  # per frame class: 21 classes x 100
@given(data=st.data())
def test_frame_round_trip(name: str, data: st.DataObject) -> None:
    frame = data.draw(STRATEGIES[name])
    encoded = encode(frame)
    assert len(encoded) == encoded_size(frame)
    assert encoded[0] == frame_type_of(frame)
    assert decode_frames(encoded) == [frame]
    assert decode_frame(encoded) == (frame, len(encoded))
    # framed by other frames, at a non-zero position, from a memoryview
    packet = b"\x01" + encoded + b"\x01"
    assert decode_frame(memoryview(packet), 1) == (frame, 1 + len(encoded))
    assert decode_frames(packet) == [PingFrame(), frame, PingFrame()]


@pytest.mark.parametrize("name", sorted(STRATEGIES))
@settings(max_examples=100)  # per frame class: 21 classes x 100
@given(data=st.data())
def test_frame_truncated_at_every_byte_raises_frame_encoding_error(
    name: str, data: st.DataObject
) -> None:
    frame = data.draw(STRATEGIES[name])
    encoded = encode(frame)
    assert decode_frames(encoded[:0]) == []
    for cut in range(1, len(encoded)):
        if isinstance(frame, PaddingFrame):  # a prefix of PADDING is shorter PADDING
            assert decode_frames(encoded[:cut]) == [PaddingFrame(length=cut)]
            continue
        with pytest.raises(FrameEncodingError) as caught:
            decode_frames(encoded[:cut])
        assert caught.value.frame_type == encoded[0]
        assert caught.value.error_code == TransportErrorCode.FRAME_ENCODING_ERROR


@given(frames=st.lists(any_frame, max_size=8))
def test_frame_sequence_round_trip(frames: list[Frame]) -> None:
    assert decode_frames(encode(*frames)) == merge_padding(frames)


@given(payload=st.binary(max_size=64))
def test_frame_garbage_raises_only_transport_errors(payload: bytes) -> None:
    try:
        frames = decode_frames(payload)
    except (FrameEncodingError, ProtocolViolation):
        return
    assert merge_padding(frames) == frames
    assert decode_frames(encode(*frames)) == frames  # whatever decodes re-encodes


@given(frame=any_frame, data=st.data())
def test_frame_mutated_byte_raises_only_transport_errors(frame: Frame, data: st.DataObject) -> None:
    encoded = bytearray(encode(frame))
    index = data.draw(st.integers(0, len(encoded) - 1))
    encoded[index] = data.draw(st.integers(0, 255))
    try:
        decode_frames(bytes(encoded))
    except (FrameEncodingError, ProtocolViolation):
        pass


# --------------------------------------------------------------------------------------------
# frame types on the wire (RFC 9000 §12.4)


@pytest.mark.parametrize("value", [0x1F, 0x20, 0x2F, 0x32, 0x3F])
def test_frame_type_unknown_one_byte(value: int) -> None:
    with pytest.raises(FrameEncodingError) as caught:
        decode_frames(bytes((value,)))
    assert caught.value.frame_type == value
    assert not is_known_frame_type(value)


@pytest.mark.parametrize("encoded, value", [
    (b"\x40\x40", 0x40), (b"\x7f\xff", 0x3FFF), (b"\x80\x00\x40\x00", 0x4000),
    (b"\xc0\x00\x00\x00\x40\x00\x00\x00", 0x40000000),
])
def test_frame_type_unknown_multi_byte(encoded: bytes, value: int) -> None:
    with pytest.raises(FrameEncodingError) as caught:
        read_frame_type(encoded, 0)
    assert caught.value.frame_type == value


@pytest.mark.parametrize("encoded, value", [
    (b"\x40\x01", 0x01), (b"\x40\x08", 0x08), (b"\x80\x00\x00\x06", 0x06),
    (b"\xc0\x00\x00\x00\x00\x00\x00\x1e", 0x1E), (b"\x40\x31", 0x31), (b"\x40\x3f", 0x3F),
])
def test_frame_type_not_shortest_is_protocol_violation(encoded: bytes, value: int) -> None:
    with pytest.raises(ProtocolViolation) as caught:
        decode_frames(encoded + b"\x00" * 30)
    assert caught.value.frame_type == value
    assert caught.value.error_code == TransportErrorCode.PROTOCOL_VIOLATION


@pytest.mark.parametrize("encoded", [b"\x40", b"\x80\x00\x00", b"\xc0\x00"])
def test_frame_type_truncated(encoded: bytes) -> None:
    with pytest.raises(FrameEncodingError):
        decode_frames(b"\x01" + encoded)


def test_frame_type_of_every_known_value_decodes() -> None:
    for value in FrameType:
        assert is_known_frame_type(value)
        assert read_frame_type(bytes((value,)), 0) == (value, 1)
    assert decode_frame_body(b"", 0, 0x01) == (PingFrame(), 0)
    with pytest.raises(FrameEncodingError):
        decode_frame_body(b"\x00", 0, 0x20)


# --------------------------------------------------------------------------------------------
# specific malformed frames (RFC 9000 §19)


def v(value: int) -> bytes:
    return encode_varint(value)


@pytest.mark.parametrize("encoded", [
    b"\x0e\x00" + v(VARINT_MAX) + v(1) + b"x",  # OFF|LEN
    b"\x0c\x00" + v(VARINT_MAX) + b"x",  # OFF, data to the end
    b"\x0e\x00" + v(VARINT_MAX - 1) + v(2) + b"xy",
    b"\x06" + v(VARINT_MAX) + v(1) + b"x",  # CRYPTO
])
def test_frame_offset_plus_length_above_2_62(encoded: bytes) -> None:
    with pytest.raises(FrameEncodingError) as caught:
        decode_frames(encoded)
    assert caught.value.frame_type == encoded[0]


def test_frame_offset_plus_length_at_2_62_minus_1_accepted() -> None:
    assert decode_frames(b"\x0e\x00" + v(VARINT_MAX - 1) + v(1) + b"x") == [
        StreamFrame(stream_id=0, offset=VARINT_MAX - 1, data=b"x")]
    assert decode_frames(b"\x0c\x00" + v(VARINT_MAX)) == [
        StreamFrame(stream_id=0, offset=VARINT_MAX)]
    assert decode_frames(b"\x06" + v(VARINT_MAX - 1) + v(1) + b"x") == [
        CryptoFrame(offset=VARINT_MAX - 1, data=b"x")]


@pytest.mark.parametrize("frame_type", [0x12, 0x13, 0x16, 0x17])
def test_frame_stream_limit_above_2_60(frame_type: int) -> None:
    assert len(decode_frames(bytes((frame_type,)) + v(2**60))) == 1
    with pytest.raises(FrameEncodingError) as caught:
        decode_frames(bytes((frame_type,)) + v(2**60 + 1))
    assert caught.value.frame_type == frame_type


@pytest.mark.parametrize("length", [0, 21, 255])
def test_frame_new_connection_id_bad_length(length: int) -> None:
    with pytest.raises(FrameEncodingError) as caught:
        decode_frames(b"\x18\x01\x00" + bytes((length,)) + bytes(length + 16))
    assert caught.value.frame_type == 0x18


def test_frame_new_connection_id_retire_prior_to_above_sequence() -> None:
    frame = NewConnectionIdFrame(sequence_number=3, retire_prior_to=3, connection_id=bytes(20),
                                 stateless_reset_token=bytes(16))
    assert decode_frames(encode(frame)) == [frame]
    with pytest.raises(FrameEncodingError):
        decode_frames(b"\x18\x03\x04\x01\xaa" + bytes(16))


def test_frame_new_token_empty() -> None:
    with pytest.raises(FrameEncodingError) as caught:
        decode_frames(b"\x07\x00")
    assert caught.value.frame_type == 0x07


@pytest.mark.parametrize("encoded", [
    b"\x02\x05\x00\x00\x06",  # first range below 0
    b"\x02\x05\x00\x01\x01" + b"\x03\x00",  # gap: 4 - 3 - 2 = -1
    b"\x02\x05\x00\x01\x01" + b"\x01\x02",  # range 2..0 - 1 below 0
    b"\x03\x05\x00\x00\x06\x00\x00\x00",
])
def test_frame_ack_below_zero(encoded: bytes) -> None:
    with pytest.raises(FrameEncodingError) as caught:
        decode_frames(encoded)
    assert caught.value.frame_type == encoded[0]


def test_frame_ack_reaching_exactly_zero() -> None:
    assert decode_frames(b"\x02\x05\x00\x01\x01\x01\x01") == [
        AckFrame(ranges=((4, 5), (0, 1)), ack_delay=0)]


def test_frame_ack_range_count_beyond_frame() -> None:
    with pytest.raises(FrameEncodingError):
        decode_frames(b"\x02" + v(2**40) + b"\x00" + v(2**40) + b"\x00" + bytes(100))


def test_frame_ack_keeps_newest_ranges() -> None:
    count = MAX_ACK_RANGES + 50
    ranges = tuple((10 * i, 10 * i + 3) for i in range(count, 0, -1))
    encoded = encode(AckFrame(ranges=ranges, ack_delay=9, ecn_counts=(1, 2, 3))) + b"\x01"
    frames = decode_frames(encoded)
    assert frames == [AckFrame(ranges=ranges[:MAX_ACK_RANGES], ack_delay=9, ecn_counts=(1, 2, 3)),
                      PingFrame()]


def test_frame_datagram_without_length_takes_the_rest() -> None:
    assert decode_frames(b"\x30hello\x01") == [DatagramFrame(data=b"hello\x01")]
    assert decode_frames(b"\x01\x30") == [PingFrame(), DatagramFrame(data=b"")]


def test_frame_stream_without_length_takes_the_rest() -> None:
    assert decode_frames(b"\x08\x04hello") == [StreamFrame(stream_id=4, data=b"hello")]
    assert decode_frames(b"\x0d\x04\x40\x80") == [
        StreamFrame(stream_id=4, offset=128, fin=True)]
    # truncating a frame without length leaves a shorter valid frame, until a field is cut
    encoded = b"\x0c" + v(1000) + v(70000) + b"abc"
    for cut in range(1, len(encoded)):
        if cut < 1 + 2 + 4:
            with pytest.raises(FrameEncodingError):
                decode_frames(encoded[:cut])
        else:
            assert decode_frames(encoded[:cut]) == [
                StreamFrame(stream_id=1000, offset=70000, data=encoded[7:cut])]


def test_frame_padding_runs_merge() -> None:
    assert decode_frames(bytes(5) + b"\x01" + bytes(3)) == [
        PaddingFrame(length=5), PingFrame(), PaddingFrame(length=3)]
    assert decode_frames(bytes(70000)) == [PaddingFrame(length=70000)]


def naive_padding_end(data: bytes, pos: int) -> int:
    while pos < len(data) and data[pos] == 0:
        pos += 1
    return pos


@given(runs=st.lists(st.tuples(st.integers(0, 3000), st.integers(1, 255)), max_size=4),
       start=st.integers(0, 40))
def test_frame_skip_padding_matches_naive(runs: list[tuple[int, int]], start: int) -> None:
    data = b"".join(bytes(n) + bytes((b,)) for n, b in runs) + bytes(start)
    for pos in {0, min(start, len(data)), len(data) // 2, len(data)}:
        assert skip_padding(data, pos) == naive_padding_end(data, pos)
        assert skip_padding(memoryview(data), pos) == naive_padding_end(data, pos)


@pytest.mark.parametrize("run", [1, 31, 32, 33, 287, 288, 289, 2335, 2336, 2337])
@pytest.mark.parametrize("tail", [b"\x01", b"\x80", b"\xff\x00"])
def test_frame_skip_padding_window_edges(run: int, tail: bytes) -> None:
    data = bytes(run) + tail
    assert skip_padding(data, 1) == run


# --------------------------------------------------------------------------------------------
# hot-path parsers and writers


def test_frame_parse_stream_returns_views_of_the_payload() -> None:
    payload = b"\x0f\x04\x10\x03abc\x01"
    view = memoryview(payload)
    stream_id, offset, data, fin, pos = parse_stream(view, 1, 0x0F)
    assert (stream_id, offset, bytes(data), fin, pos) == (4, 16, b"abc", True, 7)
    assert isinstance(data, memoryview) and data.obj is payload
    assert parse_stream(payload, 1, 0x0F) == (4, 16, b"abc", True, 7)
    assert parse_crypto(b"\x06\x05\x02hi", 1) == (5, b"hi", 5)
    assert parse_datagram(b"\x31\x02hi!", 1, 0x31) == (b"hi", 4)
    assert parse_datagram(b"\x30hi!", 1, 0x30) == (b"hi!", 4)
    assert parse_ack(b"\x03\x0a\x01\x00\x02\x04\x05\x06", 1, 0x03) == (
        ((8, 10),), 1, (4, 5, 6), 8)


@given(stream_id=varints, offset=st.one_of(st.just(0), varints), data=small_data,
       fin=st.booleans(), with_length=st.booleans())
def test_frame_write_stream_frame(
    stream_id: int, offset: int, data: bytes, fin: bool, with_length: bool
) -> None:
    offset = min(offset, VARINT_MAX - len(data))
    buf = bytearray()
    write_stream_frame(buf, stream_id, offset, data, fin, with_length=with_length)
    header = stream_frame_header(stream_id, offset, len(data), fin, with_length=with_length)
    assert bytes(buf) == header + data
    assert len(header) == stream_frame_overhead(stream_id, offset, len(data),
                                                with_length=with_length)
    assert bool(buf[0] & 0x04) == (offset != 0)
    assert bool(buf[0] & 0x02) == with_length
    assert decode_frames(buf) == [
        StreamFrame(stream_id=stream_id, offset=offset, data=data, fin=fin)]


def test_frame_writers_reject_out_of_range() -> None:
    with pytest.raises(ValueError):
        stream_frame_header(0, VARINT_MAX, 1, False)
    with pytest.raises(ValueError):
        write_crypto_frame(bytearray(), VARINT_MAX, b"x")
    with pytest.raises(ValueError):
        stream_frame_header(2**62, 0, 1, False)


@given(data=small_data, with_length=st.booleans())
def test_frame_write_datagram_frame(data: bytes, with_length: bool) -> None:
    buf = bytearray()
    write_datagram_frame(buf, data, with_length=with_length)
    assert buf[0] == (0x31 if with_length else 0x30)
    assert decode_frames(buf) == [DatagramFrame(data=data)]


@given(stream_id=varints, offset=st.one_of(st.just(0), varints),
       space=st.one_of(st.integers(-2, 80), st.integers(16370, 16400),
                       st.integers(2**30 - 10, 2**30 + 10)),
       with_length=st.booleans())
def test_frame_stream_data_capacity_is_tight(
    stream_id: int, offset: int, space: int, with_length: bool
) -> None:
    n = stream_data_capacity(stream_id, offset, space, with_length=with_length)

    def size(length: int) -> int:
        return stream_frame_overhead(stream_id, offset, length, with_length=with_length) + length

    if n < 0:
        assert n == -1 and size(0) > space
    else:
        assert size(n) <= space < size(n + 1)


@given(offset=varints, space=st.one_of(st.integers(-2, 80), st.integers(16370, 16400)))
def test_frame_crypto_data_capacity_is_tight(offset: int, space: int) -> None:
    n = crypto_data_capacity(offset, space)

    def size(length: int) -> int:
        return encoded_size(CryptoFrame(offset=offset, data=bytes(length)))

    if n < 0:
        assert n == -1 and size(0) > space
    else:
        assert size(n) <= space < size(n + 1)


@given(ranges=ack_ranges(max_ranges=40), delay=varints, ecn_counts=ecn,
       capacity=st.integers(0, 200))
def test_frame_write_ack_frame_capacity(
    ranges: tuple[tuple[int, int], ...], delay: int, ecn_counts: tuple[int, int, int] | None,
    capacity: int,
) -> None:
    buf = bytearray(b"prefix")
    written = write_ack_frame(buf, ranges, delay, ecn_counts, capacity=capacity)
    body = bytes(buf[6:])
    if written == 0:
        assert body == b"" and ack_frame_size(ranges[:1], delay, ecn_counts) > capacity
        return
    assert len(body) <= capacity
    assert len(body) == ack_frame_size(ranges[:written], delay, ecn_counts)
    if written < len(ranges):
        assert ack_frame_size(ranges[: written + 1], delay, ecn_counts) > capacity
    assert decode_frames(body) == [
        AckFrame(ranges=ranges[:written], ack_delay=delay, ecn_counts=ecn_counts)]


@pytest.mark.parametrize("ranges", [
    (), ((5, 4),), ((4, 5), (3, 3)), ((4, 5), (2, 4)), ((4, 5), (0, 2), (1, 1)), ((-1, 3),),
])
def test_frame_write_ack_frame_rejects_bad_ranges(ranges: tuple[tuple[int, int], ...]) -> None:
    with pytest.raises(ValueError):
        write_ack_frame(bytearray(), ranges, 0)


@pytest.mark.parametrize("frame", [
    PaddingFrame(length=0),
    NewTokenFrame(token=b""),
    MaxStreamsFrame(bidirectional=True, maximum_streams=2**60 + 1),
    StreamsBlockedFrame(bidirectional=False, maximum_streams=-1),
    NewConnectionIdFrame(sequence_number=1, retire_prior_to=2, connection_id=b"a",
                         stateless_reset_token=bytes(16)),
    NewConnectionIdFrame(sequence_number=1, retire_prior_to=0, connection_id=b"",
                         stateless_reset_token=bytes(16)),
    NewConnectionIdFrame(sequence_number=1, retire_prior_to=0, connection_id=bytes(21),
                         stateless_reset_token=bytes(16)),
    NewConnectionIdFrame(sequence_number=1, retire_prior_to=0, connection_id=b"a",
                         stateless_reset_token=bytes(15)),
    PathChallengeFrame(data=bytes(7)),
    PathResponseFrame(data=bytes(9)),
    MaxDataFrame(maximum_data=2**62),
    StreamFrame(stream_id=0, offset=VARINT_MAX, data=b"x"),
    ConnectionCloseFrame(error_code=-1),
])
def test_frame_encode_rejects_invalid_values(frame: Frame) -> None:
    with pytest.raises(ValueError):
        encode_frame(Writer(), frame)


def test_frame_type_of_variants() -> None:
    assert frame_type_of(StreamFrame(stream_id=0)) == FrameType.STREAM_LEN
    assert frame_type_of(StreamFrame(stream_id=0, offset=1, fin=True)) == (
        FrameType.STREAM_OFF_LEN_FIN)
    assert frame_type_of(ConnectionCloseFrame(error_code=0, frame_type=None)) == (
        FrameType.CONNECTION_CLOSE_APPLICATION)
    assert frame_type_of(ConnectionCloseFrame(error_code=0)) == FrameType.CONNECTION_CLOSE
    assert frame_type_of(AckFrame(ranges=((0, 0),), ack_delay=0, ecn_counts=(0, 0, 0))) == (
        FrameType.ACK_ECN)
    assert frame_type_of(StreamsBlockedFrame(bidirectional=False, maximum_streams=0)) == (
        FrameType.STREAMS_BLOCKED_UNI)
    assert AckFrame(ranges=((3, 9), (0, 1)), ack_delay=0).largest_acknowledged == 9


def test_frame_large_lengths_use_wide_varints() -> None:
    data = bytes(range(256)) * 70  # 17920 bytes: a 4-byte length field
    for frame in (StreamFrame(stream_id=2**40, offset=2**35, data=data, fin=True),
                  CryptoFrame(offset=0, data=data), DatagramFrame(data=data)):
        encoded = encode(frame)
        assert len(encoded) == encoded_size(frame)
        assert decode_frames(encoded) == [frame]
        with pytest.raises(FrameEncodingError):
            decode_frames(encoded[:-1])


# --------------------------------------------------------------------------------------------
# tables (RFC 9000 §12.4 Table 3, §12.5; RFC 9002 §2; RFC 9221)

_PKT_EPOCHS = (Epoch.INITIAL, Epoch.HANDSHAKE, Epoch.ZERO_RTT, Epoch.ONE_RTT)


def rfc_table() -> dict[int, tuple[set[Epoch], str]]:
    """Parse Table 3 as printed in the RFC: {type: (packet types, spec marks)}."""
    rows: dict[int, tuple[set[Epoch], str]] = {}
    text = (VECTORS / "rfc9000-table3.md").read_text()
    for line in text.splitlines()[2:]:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        values, name, _, pkts, spec = cells
        bounds = [int(x, 16) for x in values.split("-")]
        for value in range(bounds[0], bounds[-1] + 1):
            epochs = {_PKT_EPOCHS[i] for i, mark in enumerate(pkts) if mark not in "_"}
            if pkts.startswith("ih") and value != 0x1C:
                # "ih": only a CONNECTION_CLOSE of type 0x1c can appear in Initial/Handshake
                epochs -= {Epoch.INITIAL, Epoch.HANDSHAKE}
            rows[value] = (epochs, spec)
        assert re.fullmatch(r"[A-Z_]+", name)
    return rows


def test_frame_table_packet_types_match_rfc_table_3() -> None:
    rows = rfc_table()
    assert len(rows) == 31  # 0x00..0x1e
    rfc9000_types = {t for t in FrameType if t < 0x30}
    assert set(rows) == rfc9000_types
    for value, (epochs, _) in rows.items():
        assert FRAME_PACKET_TYPES[FrameType(value)] == epochs, hex(value)
    # RFC 9221 §4: DATAGRAM only in 0-RTT and 1-RTT
    for value in (0x30, 0x31):
        assert FRAME_PACKET_TYPES[FrameType(value)] == {Epoch.ZERO_RTT, Epoch.ONE_RTT}


def test_frame_table_spec_marks_match_rfc_table_3() -> None:
    rows = rfc_table()
    marked = {mark: {FrameType(v) for v, (_, spec) in rows.items() if mark in spec}
              for mark in "NCPF"}
    assert ACK_ELICITING_FRAME_TYPES == set(FrameType) - marked["N"]
    assert FrameType.DATAGRAM in ACK_ELICITING_FRAME_TYPES  # RFC 9221 §5.2
    assert CONGESTION_EXEMPT_FRAME_TYPES == marked["C"]
    assert PROBING_FRAME_TYPES == marked["P"]
    assert FLOW_CONTROLLED_FRAME_TYPES == marked["F"]
    # RFC 9002 §2: in flight = ack-eliciting or PADDING; ACK-only packets never are
    assert IN_FLIGHT_FRAME_TYPES == ACK_ELICITING_FRAME_TYPES | {FrameType.PADDING}
    assert not IN_FLIGHT_FRAME_TYPES & CONGESTION_EXEMPT_FRAME_TYPES


def test_frame_zero_rtt_restrictions_rfc_12_5() -> None:
    assert {t.name for t in ZERO_RTT_FORBIDDEN_FRAME_TYPES} == {
        "ACK", "ACK_ECN", "CRYPTO", "HANDSHAKE_DONE", "NEW_TOKEN", "PATH_RESPONSE",
        "RETIRE_CONNECTION_ID"}
    for frame_type in ZERO_RTT_FORBIDDEN_FRAME_TYPES:
        with pytest.raises(ProtocolViolation) as caught:
            check_frame_allowed(frame_type, Epoch.ZERO_RTT)
        assert caught.value.frame_type == frame_type
        check_frame_allowed(frame_type, Epoch.ONE_RTT)


@pytest.mark.parametrize("frame_type, epoch, allowed", [
    (0x1C, Epoch.INITIAL, True), (0x1C, Epoch.HANDSHAKE, True),
    (0x1D, Epoch.INITIAL, False), (0x1D, Epoch.HANDSHAKE, False), (0x1D, Epoch.ZERO_RTT, True),
    (0x08, Epoch.INITIAL, False), (0x0F, Epoch.ZERO_RTT, True), (0x06, Epoch.HANDSHAKE, True),
    (0x00, Epoch.ZERO_RTT, True), (0x02, Epoch.HANDSHAKE, True), (0x1E, Epoch.HANDSHAKE, False),
    (0x30, Epoch.HANDSHAKE, False), (0x31, Epoch.ZERO_RTT, True), (0x1A, Epoch.ZERO_RTT, True),
    (0x1B, Epoch.ZERO_RTT, False), (0x07, Epoch.INITIAL, False), (0x01, Epoch.INITIAL, True),
])
def test_frame_check_allowed_spot_checks(frame_type: int, epoch: Epoch, allowed: bool) -> None:
    if allowed:
        check_frame_allowed(frame_type, epoch)
    else:
        with pytest.raises(ProtocolViolation):
            check_frame_allowed(frame_type, epoch)


def test_frame_check_allowed_matches_table_everywhere() -> None:
    for value in range(0x40):
        for epoch in Epoch:
            if not is_known_frame_type(value):
                with pytest.raises(FrameEncodingError):
                    check_frame_allowed(value, epoch)
            elif epoch in ALLOWED_EPOCHS[FrameType(value)]:
                check_frame_allowed(value, epoch)
            else:
                with pytest.raises(ProtocolViolation):
                    check_frame_allowed(value, epoch)
    with pytest.raises(FrameEncodingError):
        check_frame_allowed(0x4000, Epoch.ONE_RTT)
    # every frame may appear in 1-RTT (RFC 9000 §12.4)
    assert all(Epoch.ONE_RTT in epochs for epochs in ALLOWED_EPOCHS.values())
    assert varint_size(max(FrameType)) == 1
