"""Capsules, HTTP/3 datagrams and the Capsule-Protocol field (RFC 9297)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trio_zttp._buffer import encode_varint
from trio_zttp.h3._capsules import (
    CAPSULE_PROTOCOL_FIELD,
    DEFAULT_MAX_CAPSULE_LENGTH,
    MAX_QUARTER_STREAM_ID,
    CapsuleParser,
    CapsuleType,
    capsule_protocol_field,
    check_capsule_protocol_message,
    decode_h3_datagram,
    encode_capsule,
    encode_capsule_header,
    encode_h3_datagram,
    grease_capsule_type,
    is_reserved_capsule_type,
    parse_capsule_protocol,
)
from trio_zttp.h3._errors import DatagramError, ErrorCode, MessageError

capsule_types = st.one_of(
    st.just(0), st.integers(1, 0x3F), st.integers(0, 2**62 - 1)
).filter(lambda t: not is_reserved_capsule_type(t))
capsules = st.lists(st.tuples(capsule_types, st.binary(max_size=200)), max_size=8)


def parse_all(parser: CapsuleParser, chunks: list[bytes]) -> list[tuple[int, bytes]]:
    out: list[tuple[int, bytes]] = []
    for chunk in chunks:
        out += parser.feed(chunk)
    parser.end_of_stream()
    return out


@given(items=capsules, cuts=st.lists(st.integers(0, 3000)))
def test_capsules_round_trip_any_chunking(items: list[tuple[int, bytes]], cuts: list[int]) -> None:
    wire = b"".join(encode_capsule(t, v) for t, v in items)
    points = sorted({c % (len(wire) + 1) for c in cuts})
    chunks = [wire[a:b] for a, b in zip([0, *points], [*points, len(wire)], strict=True)]
    assert parse_all(CapsuleParser(), chunks) == items


SAMPLE = [
    (CapsuleType.DATAGRAM, b"\x00payload"),
    (grease_capsule_type(3), b"grease"),
    (0x1234, b""),
    (CapsuleType.DATAGRAM, b""),
    (2**62 - 1, b"x" * 100),
    (CapsuleType.DATAGRAM, bytes(range(256)) * 2),
]
SAMPLE_WIRE = b"".join(encode_capsule(t, v) for t, v in SAMPLE)
SAMPLE_EXPECTED = [(t, v) for t, v in SAMPLE if not is_reserved_capsule_type(t)]


def test_capsules_split_at_every_byte_boundary() -> None:
    for cut in range(len(SAMPLE_WIRE) + 1):
        got = parse_all(CapsuleParser(), [SAMPLE_WIRE[:cut], SAMPLE_WIRE[cut:]])
        assert got == SAMPLE_EXPECTED, cut
    one_by_one = [SAMPLE_WIRE[i : i + 1] for i in range(len(SAMPLE_WIRE))]
    assert parse_all(CapsuleParser(), one_by_one) == SAMPLE_EXPECTED


def test_capsules_truncated_at_every_byte_is_message_error() -> None:
    boundaries = {0}
    position = 0
    for capsule_type, value in SAMPLE:
        position += len(encode_capsule(capsule_type, value))
        boundaries.add(position)
    for cut in range(len(SAMPLE_WIRE) + 1):
        parser = CapsuleParser()
        parser.feed(SAMPLE_WIRE[:cut])
        if cut in boundaries:
            parser.end_of_stream()
        else:
            assert parser.in_capsule
            with pytest.raises(MessageError) as info:
                parser.end_of_stream()
            # RFC 9297 §3.3: a malformed or incomplete message, RFC 9114 §4.1.2
            assert info.value.error_code == ErrorCode.H3_MESSAGE_ERROR == 0x10E
            assert info.value.stream_error


def test_capsules_oversized_are_discarded_without_buffering() -> None:
    parser = CapsuleParser(max_capsule_length=10)
    wire = (
        encode_capsule(0, b"a" * 10)
        + encode_capsule(0, b"b" * 11)
        + encode_capsule(0x99, b"c" * 5000)
        + encode_capsule(0, b"d")
    )
    assert parse_all(parser, [wire[i : i + 7] for i in range(0, len(wire), 7)]) == [
        (0, b"a" * 10), (0, b"d")
    ]
    assert parser.discarded == 2
    huge = CapsuleParser()
    assert huge.feed(encode_capsule_header(0, 2**50)) == []
    for _ in range(20):
        assert huge.feed(b"\x00" * 100_000) == []
    assert huge.discarded == 1 and huge.in_capsule


def test_capsules_oversized_error_when_asked() -> None:
    parser = CapsuleParser(max_capsule_length=DEFAULT_MAX_CAPSULE_LENGTH, discard_oversized=False)
    assert parser.feed(encode_capsule(0, b"x" * DEFAULT_MAX_CAPSULE_LENGTH))[0][0] == 0
    with pytest.raises(MessageError):
        parser.feed(encode_capsule_header(0, DEFAULT_MAX_CAPSULE_LENGTH + 1))
    with pytest.raises(ValueError):
        CapsuleParser(max_capsule_length=-1)


def test_capsules_reserved_types() -> None:
    assert [grease_capsule_type(n) for n in range(3)] == [0x17, 0x40, 0x69]
    assert all(is_reserved_capsule_type(grease_capsule_type(n)) for n in (0, 7, 2**50))
    assert not is_reserved_capsule_type(CapsuleType.DATAGRAM)
    assert not is_reserved_capsule_type(0x16) and not is_reserved_capsule_type(0x18)
    with pytest.raises(ValueError):
        grease_capsule_type(-1)
    with pytest.raises(ValueError):
        grease_capsule_type(2**62)
    parser = CapsuleParser(max_capsule_length=4)
    assert parser.feed(encode_capsule(0x17, b"longer than the limit")) == []
    assert parser.discarded == 0  # skipped as GREASE, not as oversized


# --- HTTP/3 datagrams (RFC 9297 §2.1) -------------------------------------------------------------


@given(quarter=st.integers(0, MAX_QUARTER_STREAM_ID), payload=st.binary(max_size=100))
def test_capsules_h3_datagram_round_trip(quarter: int, payload: bytes) -> None:
    data = encode_h3_datagram(quarter * 4, payload)
    assert data == encode_varint(quarter) + payload
    assert decode_h3_datagram(data) == (quarter * 4, payload)
    assert decode_h3_datagram(bytearray(data)) == (quarter * 4, payload)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x40",  # a 2-byte varint cut short
        b"\x80\x00\x01",
        b"\xc0\x00\x00\x00\x00\x00\x00",
        encode_varint(MAX_QUARTER_STREAM_ID + 1) + b"x",
        encode_varint(2**62 - 1),
    ],
)
def test_capsules_h3_datagram_errors(data: bytes) -> None:
    with pytest.raises(DatagramError) as info:
        decode_h3_datagram(data)
    assert info.value.error_code == ErrorCode.H3_DATAGRAM_ERROR == 0x33
    assert not info.value.stream_error


def test_capsules_h3_datagram_needs_a_request_stream() -> None:
    for stream_id in (1, 2, 3, 5, -4, 2**62):
        with pytest.raises(ValueError):
            encode_h3_datagram(stream_id, b"")
    assert decode_h3_datagram(encode_h3_datagram(2**62 - 4, b"")) == (2**62 - 4, b"")


# --- the Capsule-Protocol field (RFC 9297 §3.4, RFC 8941 items) ------------------------------


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([], False),
        ([b"?1"], True),
        ([b"?0"], False),
        ([b"?1;a"], True),
        ([b"?1;a=1;b=?0"], True),
        ([b"?1; a=1.5 ;b"], False),  # SP before ";" is not allowed inside an item
        ([b"?1;a=1.5;b"], True),
        ([b"?1;key=token/x:y"], True),
        ([b'?1;s="quoted \\" \\\\ string"'], True),
        ([b"?1;bytes=:AQID:"], True),
        ([b"?1;d=@1659578233"], True),  # RFC 9651 Date
        ([b'?1;ds=%"caf%c3%a9"'], True),  # RFC 9651 Display String
        ([b"?1;n=-999999999999999"], True),
        ([b"?1;n=9999999999999999"], False),  # 16-digit integer
        ([b"?1;n=1234567890123.5"], False),  # 13 integer digits in a decimal
        ([b"?1;n=1.2345"], False),
        ([b"?1;n=1."], False),
        ([b"?1;n=-"], False),
        ([b"?1;A=1"], False),  # keys are lowercase
        ([b"?1;a=?2"], False),
        ([b'?1;s="unterminated'], False),
        ([b'?1;s="bad \\n escape"'], False),
        ([b"?1;bytes=:AQ!D:"], False),
        ([b'?1;ds=%"%c3"'], False),  # not UTF-8
        ([b'?1;ds=%"%C3%A9"'], False),  # uppercase hex
        ([b"?1 "], True),
        ([b" ?1"], True),
        ([b"?1", b"?1"], False),  # two lines make a List
        ([b"?1, ?1"], False),
        ([b"1"], False),
        ([b"?"], False),
        ([b"?2"], False),
        ([b"?10"], False),
        ([b"true"], False),
        ([b'"?1"'], False),
        ([b""], False),
    ],
)
def test_capsules_capsule_protocol_field(values: list[bytes], expected: bool) -> None:
    headers = [(b":status", b"200"), *((CAPSULE_PROTOCOL_FIELD, v) for v in values)]
    assert parse_capsule_protocol(headers) is expected
    # a list takes the quick rejection first; any other iterable the plain scan
    assert parse_capsule_protocol(iter(headers)) is expected
    assert parse_capsule_protocol(tuple(headers)) is expected


def test_capsules_capsule_protocol_field_name_as_a_value_is_not_the_field() -> None:
    headers = [(b"x-note", CAPSULE_PROTOCOL_FIELD), (b"x-other", b"?1")]
    assert not parse_capsule_protocol(headers)
    assert parse_capsule_protocol([*headers, (CAPSULE_PROTOCOL_FIELD, b"?1")])


def test_capsules_capsule_protocol_field_round_trip() -> None:
    assert capsule_protocol_field() == (b"capsule-protocol", b"?1")
    assert parse_capsule_protocol([capsule_protocol_field()])
    assert not parse_capsule_protocol([capsule_protocol_field(False)])
    assert not parse_capsule_protocol([(b"x-capsule-protocol", b"?1")])


@pytest.mark.parametrize(
    ("headers", "status", "ok"),
    [
        ([(b"capsule-protocol", b"?1")], 200, True),
        ([(b"capsule-protocol", b"?1")], None, True),
        ([(b"content-length", b"0")], 200, False),
        ([(b"content-type", b"x/y")], None, False),
        ([(b"transfer-encoding", b"chunked")], 200, False),
        ([], 204, False),
        ([], 205, False),
        ([], 206, False),
    ],
)
def test_capsules_capsule_protocol_message_rules(
    headers: list[tuple[bytes, bytes]], status: int | None, ok: bool
) -> None:
    if ok:
        check_capsule_protocol_message(headers, status)
    else:
        with pytest.raises(MessageError):
            check_capsule_protocol_message(headers, status)
