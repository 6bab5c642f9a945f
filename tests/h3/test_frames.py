"""HTTP/3 frame codecs and the streaming frame parser (RFC 9114 §6.2, §7)."""

from __future__ import annotations

import random
import tracemalloc

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trio_zttp._buffer import encode_varint
from trio_zttp.h3._errors import (
    ErrorCode,
    ExcessiveLoadError,
    FrameError,
    FrameUnexpectedError,
    H3Error,
)
from trio_zttp.h3._frames import (
    DEFAULT_MAX_HEADERS_LENGTH,
    RESERVED_HTTP2_FRAME_TYPES,
    FrameParser,
    FrameType,
    StreamType,
    decode_id_payload,
    decode_push_promise,
    decode_stream_header,
    encode_frame,
    encode_frame_header,
    encode_grease_frame,
    encode_id_frame,
    encode_push_promise,
    encode_stream_header,
    grease_frame_type,
    grease_stream_type,
    is_reserved_frame_type,
    is_reserved_stream_type,
)

BUFFERED = [FrameType.HEADERS, FrameType.SETTINGS, FrameType.PUSH_PROMISE]
ID_ONLY = [FrameType.GOAWAY, FrameType.MAX_PUSH_ID, FrameType.CANCEL_PUSH]
UNKNOWN = [0x21, 0x40, 0x41, 0xF0700, 0x1F * 1000 + 0x21, 2**62 - 1]


def seeded(seed: int) -> object:
    rng = random.Random(seed)
    return lambda n: rng.randbytes(n)


def parse_all(parser: FrameParser, chunks: list[bytes]) -> list[tuple[int, bytes]]:
    out: list[tuple[int, bytes]] = []
    for chunk in chunks:
        out += parser.feed(chunk)
    parser.end_of_stream()
    return out


def merge_data(items: list[tuple[int, bytes]]) -> list[tuple[int, bytes]]:
    """Collapse DATA chunks (whose boundaries carry no meaning) into runs; drop empty runs."""
    merged: list[tuple[int, bytes]] = []
    for frame_type, payload in items:
        if frame_type == FrameType.DATA and merged and merged[-1][0] == FrameType.DATA:
            merged[-1] = (0, merged[-1][1] + payload)
        else:
            merged.append((frame_type, payload))
    return [item for item in merged if item != (0, b"")]


def expected_items(frames: list[tuple[int, bytes]]) -> list[tuple[int, bytes]]:
    """What the parser must report for ``frames``, computed from the frame list itself."""
    known = {int(t) for t in FrameType}
    return merge_data(
        [(t, p if t in known else b"") for t, p in frames]
    )


def id_payload(value: int) -> bytes:
    return encode_varint(value)


frame_strategy = st.one_of(
    st.tuples(st.just(0), st.binary(max_size=300)),
    st.tuples(st.sampled_from([int(t) for t in BUFFERED]), st.binary(max_size=300)),
    st.tuples(
        st.sampled_from([int(t) for t in ID_ONLY]),
        st.integers(0, 2**62 - 1).map(id_payload),
    ),
    st.tuples(st.sampled_from(UNKNOWN), st.binary(max_size=300)),
)


@given(frames=st.lists(frame_strategy, max_size=8), cuts=st.lists(st.integers(0, 4000)))
def test_frames_parser_round_trip_any_chunking(
    frames: list[tuple[int, bytes]], cuts: list[int]
) -> None:
    wire = b"".join(encode_frame(t, p) for t, p in frames)
    points = sorted({c % (len(wire) + 1) for c in cuts})
    chunks = [wire[a:b] for a, b in zip([0, *points], [*points, len(wire)], strict=True)]
    assert merge_data(parse_all(FrameParser(), chunks)) == expected_items(frames)


SAMPLE = [
    (FrameType.HEADERS, b"\x00\x00\xd1\xd7"),
    (0x21, b"grease!"),
    (FrameType.DATA, b"hello "),
    (FrameType.DATA, b""),
    (FrameType.DATA, b"world" * 30),
    (FrameType.PUSH_PROMISE, b"\x05\x00\x00"),
    (0x1F * 7 + 0x21, b""),
    (FrameType.HEADERS, b"\x00\x00" + b"t" * 70),
    (FrameType.SETTINGS, b"\x01\x40\x64\x06\x44\x00"),
    (FrameType.GOAWAY, b"\x80\x00\x00\x08"),
    (FrameType.MAX_PUSH_ID, b"\x07"),
    (FrameType.CANCEL_PUSH, b"\xc0\x00\x00\x00\x00\x00\x00\x02"),
]
SAMPLE_WIRE = b"".join(encode_frame(t, p) for t, p in SAMPLE)


def test_frames_parser_split_at_every_byte_boundary() -> None:
    expected = expected_items(SAMPLE)
    assert merge_data(parse_all(FrameParser(), [SAMPLE_WIRE])) == expected
    for cut in range(len(SAMPLE_WIRE) + 1):
        got = parse_all(FrameParser(), [SAMPLE_WIRE[:cut], SAMPLE_WIRE[cut:]])
        assert merge_data(got) == expected, cut
    one_by_one = [SAMPLE_WIRE[i : i + 1] for i in range(len(SAMPLE_WIRE))]
    assert merge_data(parse_all(FrameParser(), one_by_one)) == expected


def test_frames_parser_truncated_at_every_byte_is_frame_error() -> None:
    boundaries = {0}
    position = 0
    for frame_type, payload in SAMPLE:
        position += len(encode_frame(frame_type, payload))
        boundaries.add(position)
    for cut in range(len(SAMPLE_WIRE) + 1):
        parser = FrameParser()
        parser.feed(SAMPLE_WIRE[:cut])
        if cut in boundaries:
            assert not parser.in_frame
            parser.end_of_stream()
        else:
            assert parser.in_frame
            with pytest.raises(FrameError) as info:
                parser.end_of_stream()
            assert info.value.error_code == ErrorCode.H3_FRAME_ERROR == 0x106


def test_frames_parser_reports_zero_length_and_skipped_frames() -> None:
    wire = (
        encode_frame(FrameType.DATA, b"")
        + encode_frame(FrameType.HEADERS, b"")
        + encode_frame(0x21, b"ignored payload")
        + encode_frame(FrameType.SETTINGS, b"")
    )
    assert FrameParser().feed(wire) == [(0, b""), (1, b""), (0x21, b""), (4, b"")]


def test_frames_parser_streams_data_chunk_by_chunk() -> None:
    parser = FrameParser()
    assert parser.feed(encode_frame_header(FrameType.DATA, 10) + b"abc") == [(0, b"abc")]
    assert parser.feed(b"defg") == [(0, b"defg")]
    assert parser.in_frame
    assert parser.feed(b"hij" + encode_frame(FrameType.HEADERS, b"H")) == [(0, b"hij"), (1, b"H")]
    parser.end_of_stream()


def test_frames_parser_large_data_is_never_held() -> None:
    size = 5 * 1024 * 1024
    body = random.Random(1).randbytes(size)
    wire = encode_frame(FrameType.DATA, body)
    chunk = 64 * 1024
    parser = FrameParser()
    tracemalloc.start()
    try:
        baseline, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        received = 0
        digest = 0
        for start in range(0, len(wire), chunk):
            for frame_type, payload in parser.feed(wire[start : start + chunk]):
                assert frame_type == FrameType.DATA
                assert len(payload) <= chunk
                received += len(payload)
                digest ^= hash(payload[:16])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    parser.end_of_stream()
    assert received == size
    # one input slice and one output chunk at a time, never the 5 MB body
    assert peak - baseline < 4 * chunk


def test_frames_parser_skips_unknown_frames_without_buffering() -> None:
    parser = FrameParser(max_headers_length=16, max_settings_length=16)
    huge = 2**40
    assert parser.feed(encode_frame_header(0x21, huge)) == [(0x21, b"")]
    for _ in range(50):
        assert parser.feed(b"\x00" * 100_000) == []
    assert parser.in_frame


@pytest.mark.parametrize("frame_type", sorted(RESERVED_HTTP2_FRAME_TYPES))
def test_frames_parser_http2_frame_types_are_unexpected(frame_type: int) -> None:
    parser = FrameParser()
    with pytest.raises(FrameUnexpectedError) as info:
        parser.feed(encode_frame_header(frame_type, 3))  # raised at the header
    assert info.value.error_code == ErrorCode.H3_FRAME_UNEXPECTED == 0x105
    assert info.value.frame_type == frame_type


@pytest.mark.parametrize(
    ("frame_type", "limit_kwargs", "limit"),
    [
        (FrameType.HEADERS, {"max_headers_length": 100}, 100),
        (FrameType.PUSH_PROMISE, {"max_headers_length": 100}, 108),
        (FrameType.SETTINGS, {"max_settings_length": 50}, 50),
        (0xF0700, {"extra_limits": {0xF0700: 20}}, 20),
    ],
)
def test_frames_parser_oversized_buffered_frame_is_excessive_load(
    frame_type: int, limit_kwargs: dict[str, object], limit: int
) -> None:
    ok = FrameParser(**limit_kwargs)  # type: ignore[arg-type]
    assert ok.feed(encode_frame(frame_type, b"x" * limit)) == [(frame_type, b"x" * limit)]
    parser = FrameParser(**limit_kwargs)  # type: ignore[arg-type]
    with pytest.raises(ExcessiveLoadError) as info:
        parser.feed(encode_frame_header(frame_type, limit + 1))  # no payload sent yet
    assert info.value.error_code == ErrorCode.H3_EXCESSIVE_LOAD == 0x107
    assert info.value.frame_type == frame_type


def test_frames_parser_default_headers_limit() -> None:
    parser = FrameParser()
    with pytest.raises(ExcessiveLoadError):
        parser.feed(encode_frame_header(FrameType.HEADERS, DEFAULT_MAX_HEADERS_LENGTH + 1))


@pytest.mark.parametrize("frame_type", ID_ONLY)
@pytest.mark.parametrize("length", [0, 9, 1000])
def test_frames_parser_id_frames_of_impossible_length(frame_type: int, length: int) -> None:
    with pytest.raises(FrameError) as info:
        FrameParser().feed(encode_frame_header(frame_type, length))
    assert info.value.error_code == ErrorCode.H3_FRAME_ERROR
    assert info.value.frame_type == frame_type


def test_frames_parser_rejects_known_types_as_extensions() -> None:
    for frame_type in (FrameType.DATA, FrameType.HEADERS, 0x2):
        with pytest.raises(ValueError):
            FrameParser(extra_limits={frame_type: 10})
    with pytest.raises(ValueError):
        FrameParser(max_headers_length=-1)


def test_frames_parser_accepts_bytearray_and_memoryview() -> None:
    wire = encode_frame(FrameType.HEADERS, b"abc") + encode_frame(0, b"de")
    assert FrameParser().feed(bytearray(wire)) == [(1, b"abc"), (0, b"de")]
    assert FrameParser().feed(memoryview(wire)) == [(1, b"abc"), (0, b"de")]
    padded = wire + b"\x00" * (-len(wire) % 2)
    assert FrameParser().feed(memoryview(padded).cast("H"))[:2] == [(1, b"abc"), (0, b"de")]


@given(value=st.integers(0, 2**62 - 1), frame_type=st.sampled_from(ID_ONLY))
def test_frames_id_frame_round_trip(value: int, frame_type: int) -> None:
    ((parsed_type, payload),) = FrameParser().feed(encode_id_frame(frame_type, value))
    assert parsed_type == frame_type
    assert decode_id_payload(payload, frame_type) == value


@pytest.mark.parametrize("payload", [b"", b"\x40", b"\x80\x00\x01", b"\x05\x00", b"\x40\x05\x00"])
def test_frames_id_payload_must_be_exactly_one_varint(payload: bytes) -> None:
    with pytest.raises(FrameError) as info:
        decode_id_payload(payload, FrameType.GOAWAY)
    assert info.value.error_code == ErrorCode.H3_FRAME_ERROR
    assert info.value.frame_type == FrameType.GOAWAY


@given(push_id=st.integers(0, 2**62 - 1), section=st.binary(max_size=64))
def test_frames_push_promise_round_trip(push_id: int, section: bytes) -> None:
    ((frame_type, payload),) = FrameParser().feed(encode_push_promise(push_id, section))
    assert frame_type == FrameType.PUSH_PROMISE
    assert decode_push_promise(payload) == (push_id, section)


def test_frames_push_promise_truncated_push_id() -> None:
    with pytest.raises(FrameError):
        decode_push_promise(b"\x80\x01")
    with pytest.raises(FrameError):
        decode_push_promise(b"")


@given(
    stream_type=st.integers(0, 2**62 - 1).filter(lambda t: t != StreamType.PUSH),
    push_id=st.integers(0, 2**62 - 1),
    tail=st.binary(max_size=8),
)
def test_frames_stream_header_round_trip(stream_type: int, push_id: int, tail: bytes) -> None:
    for kind, pid in ((stream_type, None), (StreamType.PUSH, push_id)):
        header = encode_stream_header(kind, pid)
        assert decode_stream_header(header + tail) == (kind, pid, len(header))
        for cut in range(len(header)):
            assert decode_stream_header(header[:cut]) is None


def test_frames_stream_header_push_id_only_for_push() -> None:
    with pytest.raises(ValueError):
        encode_stream_header(StreamType.PUSH)
    with pytest.raises(ValueError):
        encode_stream_header(StreamType.CONTROL, 3)
    assert encode_stream_header(StreamType.QPACK_DECODER) == b"\x03"


def test_frames_grease_types() -> None:
    assert [grease_frame_type(n) for n in range(3)] == [0x21, 0x40, 0x5F]
    assert grease_stream_type(1) == 0x40
    assert all(is_reserved_frame_type(grease_frame_type(n)) for n in (0, 5, 2**40))
    assert not any(is_reserved_frame_type(int(t)) for t in FrameType)
    assert not any(is_reserved_stream_type(int(t)) for t in StreamType)
    assert not is_reserved_frame_type(0x20) and not is_reserved_frame_type(0x22)
    with pytest.raises(ValueError):
        grease_frame_type(-1)
    with pytest.raises(ValueError):
        grease_frame_type(2**62)


def test_frames_grease_frame_is_reported_and_skipped() -> None:
    random_bytes = seeded(7)
    frames = [encode_grease_frame(random_bytes) for _ in range(20)]  # type: ignore[arg-type]
    assert len(set(frames)) == 20
    parser = FrameParser()
    for frame in frames:
        ((frame_type, payload),) = parser.feed(frame)
        assert is_reserved_frame_type(frame_type) and payload == b""
    assert not parser.in_frame
    short = encode_grease_frame(seeded(1), max_payload=0, max_n=0)  # type: ignore[arg-type]
    assert short == b"\x21\x00"


def test_frames_errors_are_h3_errors_with_codes() -> None:
    try:
        FrameParser().feed(encode_frame_header(0x2, 0))
    except H3Error as exc:
        assert exc.error_code == 0x105 and not exc.stream_error
    else:
        raise AssertionError("no error")


def _feed_trace(
    chunks: list[bytes], as_bytes: bool, max_headers_length: int
) -> list[object]:
    """Everything a parser reports for ``chunks``: items per chunk, frame state, the error."""
    parser = FrameParser(max_headers_length=max_headers_length)
    trace: list[object] = []
    try:
        for chunk in chunks:
            # bytes input takes the fast path where it can; bytearray always the general loop
            trace.append(parser.feed(chunk if as_bytes else bytearray(chunk)))
            trace.append(parser.in_frame)
        parser.end_of_stream()
    except Exception as exc:  # the same error, with the same message, either way
        trace.append((type(exc), str(exc)))
    return trace


@given(
    frames=st.lists(frame_strategy, max_size=6),
    noise=st.binary(max_size=12),
    cuts=st.lists(st.integers(0, 4000), max_size=4),
    max_headers_length=st.sampled_from([0, 50, DEFAULT_MAX_HEADERS_LENGTH]),
)
def test_frames_parser_fast_path_matches_general_loop(
    frames: list[tuple[int, bytes]], noise: bytes, cuts: list[int], max_headers_length: int
) -> None:
    wire = b"".join(encode_frame(t, p) for t, p in frames) + noise
    points = sorted({c % (len(wire) + 1) for c in cuts})
    chunks = [wire[a:b] for a, b in zip([0, *points], [*points, len(wire)], strict=True)]
    assert _feed_trace(chunks, True, max_headers_length) == _feed_trace(
        chunks, False, max_headers_length
    )


def test_frames_parser_fast_path_request_shapes() -> None:
    """HEADERS (+ DATA) the way requests and responses arrive, 1- and 2-byte lengths,
    cut everywhere: the same items as the general loop."""
    for body in (b"", b"x" * 10, b"y" * 100, b"z" * 20000):
        wire = encode_frame(FrameType.HEADERS, b"\x00\x00" + b"h" * 70) + encode_frame(
            FrameType.DATA, body
        )
        for cut in range(0, len(wire) + 1, 1 if len(wire) < 500 else 97):
            chunks = [wire[:cut], wire[cut:]]
            assert _feed_trace(chunks, True, 100) == _feed_trace(chunks, False, 100)
            assert _feed_trace(chunks, True, 60) == _feed_trace(chunks, False, 60)


@given(
    frame_type=st.one_of(st.integers(0, 0x45), st.sampled_from(UNKNOWN)),
    length=st.one_of(st.integers(0, 70), st.integers(0x3FF0, 0x4010)),
)
def test_frames_encode_frame_is_type_length_payload(frame_type: int, length: int) -> None:
    payload = bytes(range(256)) * (length // 256) + bytes(length % 256)
    frame = encode_frame(frame_type, payload)
    assert frame == encode_varint(frame_type) + encode_varint(length) + payload
    assert encode_frame(frame_type, memoryview(payload)) == frame
