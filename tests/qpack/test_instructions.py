"""Prefixed integers, string literals, instructions, Required Insert Count (RFC 9204 §4)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.qpack.qpack_support import load_json
from trio_zttp._buffer import BufferReadError
from trio_zttp.qpack._errors import EncodingError
from trio_zttp.qpack._instructions import (
    INTEGER_MAX,
    DecoderInstruction,
    Duplicate,
    EncoderInstruction,
    InsertCountIncrement,
    InsertWithLiteralName,
    InsertWithNameReference,
    SectionAcknowledgment,
    SetDynamicTableCapacity,
    StreamCancellation,
    decode_integer,
    decode_required_insert_count,
    encode_integer,
    encode_required_insert_count,
    parse_decoder_instruction,
    parse_encoder_instruction,
    read_string,
    write_decoder_instruction,
    write_encoder_instruction,
    write_integer,
    write_string,
)

RFC7541 = load_json("rfc7541.json")


# --- integers ------------------------------------------------------------------------

@pytest.mark.parametrize("vector", RFC7541["integers"], ids=lambda v: v["section"])
def test_integer_rfc7541_examples(vector: dict[str, object]) -> None:
    value, prefix, wire = vector["value"], vector["prefix_bits"], vector["hex"]
    assert isinstance(value, int) and isinstance(prefix, int) and isinstance(wire, str)
    assert encode_integer(value, prefix).hex() == wire
    assert decode_integer(bytes.fromhex(wire), 0, prefix) == (value, len(wire) // 2)


@given(
    value=st.integers(0, INTEGER_MAX) | st.integers(0, 300),
    prefix=st.integers(1, 8),
    flags=st.integers(0, 255),
)
def test_integer_round_trip_keeps_flag_bits(value: int, prefix: int, flags: int) -> None:
    flags &= ~((1 << prefix) - 1) & 0xFF
    wire = encode_integer(value, prefix, flags)
    assert wire[0] & ~((1 << prefix) - 1) & 0xFF == flags
    assert decode_integer(b"\xaa" + wire + b"\x55", 1, prefix) == (value, len(wire) + 1)


def test_integer_largest_value_decodes() -> None:
    wire = encode_integer(INTEGER_MAX, 5)
    assert decode_integer(wire, 0, 5) == (INTEGER_MAX, len(wire))


def _raw_integer(value: int, prefix: int) -> bytes:
    """RFC 7541 §5.1 pseudocode without any range check, to build over-large inputs."""
    mask = (1 << prefix) - 1
    if value < mask:
        return bytes([value])
    out = [mask]
    value -= mask
    while value >= 128:
        out.append(value % 128 + 128)
        value //= 128
    out.append(value)
    return bytes(out)


@pytest.mark.parametrize("prefix", range(1, 9))
def test_integer_overflow_is_an_encoding_error(prefix: int) -> None:
    with pytest.raises(EncodingError, match="62 bits"):
        decode_integer(_raw_integer(INTEGER_MAX + 1, prefix), 0, prefix)
    with pytest.raises(EncodingError, match="62 bits"):
        decode_integer(_raw_integer(1 << 80, prefix), 0, prefix)


def test_integer_too_many_continuation_bytes() -> None:
    # value 31 + 0 spelled with 20 redundant continuation bytes
    wire = b"\x1f" + b"\x80" * 20 + b"\x00"
    with pytest.raises(EncodingError, match="too long"):
        decode_integer(wire, 0, 5)


def test_integer_truncated_at_every_byte() -> None:
    wire = encode_integer(1 << 40, 6)
    for cut in range(len(wire)):
        with pytest.raises(BufferReadError):
            decode_integer(wire[:cut], 0, 6)


def test_integer_writer_rejects_out_of_range() -> None:
    with pytest.raises(ValueError):
        write_integer(bytearray(), -1, 5)
    with pytest.raises(ValueError):
        write_integer(bytearray(), INTEGER_MAX + 1, 5)


# --- strings -------------------------------------------------------------------------

@given(value=st.binary(max_size=200), prefix=st.integers(2, 8), flags=st.integers(0, 255))
def test_string_round_trip(value: bytes, prefix: int, flags: int) -> None:
    flags &= ~((1 << prefix) - 1) & 0xFF
    buf = bytearray(b"\x01")
    write_string(buf, value, prefix, flags)
    assert buf[1] & ~((1 << prefix) - 1) & 0xFF == flags
    assert read_string(bytes(buf), 1, prefix, 1000) == (value, len(buf))


def test_string_uses_huffman_only_when_shorter() -> None:
    buf = bytearray()
    write_string(buf, b"www.example.com")
    assert buf.hex() == "8c" + "f1e3c2e5f23a6ba0ab90f4ff"  # H=1, 12 bytes (RFC 7541 C.4.1)
    buf = bytearray()
    write_string(buf, b"\x00\x01")  # Huffman would take 36 bits
    assert buf.hex() == "020001"


def test_string_longer_than_limit_fails_before_the_bytes_arrive() -> None:
    header = encode_integer(1_000_000, 7)
    with pytest.raises(EncodingError, match="exceeds the limit"):
        read_string(header, 0, 8, 4096)


def test_string_truncated_at_every_byte() -> None:
    buf = bytearray()
    write_string(buf, b"custom-value" * 3, 6, 0x40)
    for cut in range(len(buf)):
        with pytest.raises(BufferReadError):
            read_string(bytes(buf[:cut]), 0, 6, 1000)


def test_string_with_bad_huffman_is_an_encoding_error() -> None:
    # H=1, length 1, payload 0x00: '0' (00000) then padding 000, which is not ones
    with pytest.raises(EncodingError):
        read_string(b"\x81\x00", 0, 8, 100)


# --- instructions --------------------------------------------------------------------

values = st.binary(max_size=40)
indices = st.integers(0, 1 << 20)
encoder_instructions = st.one_of(
    st.builds(SetDynamicTableCapacity, capacity=indices),
    st.builds(InsertWithNameReference, static=st.booleans(), index=indices, value=values),
    st.builds(InsertWithLiteralName, name=values, value=values),
    st.builds(Duplicate, index=indices),
)
decoder_instructions = st.one_of(
    st.builds(SectionAcknowledgment, stream_id=st.integers(0, INTEGER_MAX)),
    st.builds(StreamCancellation, stream_id=st.integers(0, INTEGER_MAX)),
    st.builds(InsertCountIncrement, increment=indices),
)


@given(st.lists(encoder_instructions, max_size=5))
def test_encoder_instructions_round_trip(instructions: list[EncoderInstruction]) -> None:
    buf = bytearray()
    for instruction in instructions:
        write_encoder_instruction(buf, instruction)
    data, pos, parsed = bytes(buf), 0, []
    while pos < len(data):
        instruction, pos = parse_encoder_instruction(data, pos, 1000)
        parsed.append(instruction)
    assert parsed == instructions


@given(st.lists(decoder_instructions, max_size=5))
def test_decoder_instructions_round_trip(instructions: list[DecoderInstruction]) -> None:
    buf = bytearray()
    for instruction in instructions:
        write_decoder_instruction(buf, instruction)
    data, pos, parsed = bytes(buf), 0, []
    while pos < len(data):
        instruction, pos = parse_decoder_instruction(data, pos)
        parsed.append(instruction)
    assert parsed == instructions


@given(encoder_instructions)
def test_encoder_instruction_truncated_at_every_byte(instruction: EncoderInstruction) -> None:
    buf = bytearray()
    write_encoder_instruction(buf, instruction)
    for cut in range(len(buf)):
        with pytest.raises(BufferReadError):
            parse_encoder_instruction(bytes(buf[:cut]), 0, 1000)


@given(decoder_instructions)
def test_decoder_instruction_truncated_at_every_byte(instruction: DecoderInstruction) -> None:
    buf = bytearray()
    write_decoder_instruction(buf, instruction)
    for cut in range(len(buf)):
        with pytest.raises(BufferReadError):
            parse_decoder_instruction(bytes(buf[:cut]), 0)


def test_instruction_wire_patterns() -> None:
    # the bit patterns of RFC 9204 §4.3 and §4.4, written out
    cases: list[tuple[EncoderInstruction | DecoderInstruction, str]] = [
        (SetDynamicTableCapacity(capacity=220), "3fbd01"),
        (InsertWithNameReference(static=True, index=0, value=b""), "c000"),
        (InsertWithNameReference(static=False, index=3, value=b""), "8300"),
        (InsertWithLiteralName(name=b"", value=b""), "4000"),
        (Duplicate(index=2), "02"),
        (SectionAcknowledgment(stream_id=4), "84"),
        (StreamCancellation(stream_id=8), "48"),
        (InsertCountIncrement(increment=1), "01"),
    ]
    for instruction, wire in cases:
        buf = bytearray()
        if isinstance(instruction, (SectionAcknowledgment, StreamCancellation,
                                    InsertCountIncrement)):
            write_decoder_instruction(buf, instruction)
        else:
            write_encoder_instruction(buf, instruction)
        assert buf.hex() == wire, instruction


# --- Required Insert Count (RFC 9204 §4.5.1.1) -------------------------------------------

def test_required_insert_count_rfc_example() -> None:
    # "if the dynamic table is 100 bytes, then the Required Insert Count will be encoded
    # modulo 6.  If a decoder has received 10 inserts, then an encoded value of 4 indicates
    # that the Required Insert Count is 9"
    max_entries = 100 // 32
    assert 2 * max_entries == 6
    assert decode_required_insert_count(4, max_entries, 10) == 9
    assert encode_required_insert_count(9, max_entries) == 4


@given(
    max_entries=st.integers(1, 5000),
    total=st.integers(0, 1 << 40),
    offset=st.integers(0, 1 << 14),
)
def test_required_insert_count_round_trip_in_window(
    max_entries: int, total: int, offset: int
) -> None:
    # a conformant encoder's RIC lies in (total - MaxEntries, total + MaxEntries]
    low = max(1, total - max_entries + 1)
    high = total + max_entries
    required = low + offset % (high - low + 1)
    encoded = encode_required_insert_count(required, max_entries)
    assert 1 <= encoded <= 2 * max_entries
    assert decode_required_insert_count(encoded, max_entries, total) == required


def test_required_insert_count_zero() -> None:
    assert encode_required_insert_count(0, 10) == 0
    assert decode_required_insert_count(0, 10, 123) == 0
    assert decode_required_insert_count(0, 0, 0) == 0


@pytest.mark.parametrize(
    ("encoded", "max_entries", "total"),
    [
        (7, 3, 10),  # beyond 2 * MaxEntries
        (1, 0, 0),  # no dynamic table at all
        (5, 3, 0),  # would be 4, above MaxValue 3, and cannot wrap below
        (1, 3, 2),  # decodes to 0: a zero count must be encoded as 0
    ],
)
def test_required_insert_count_impossible_values(
    encoded: int, max_entries: int, total: int
) -> None:
    with pytest.raises(EncodingError):
        decode_required_insert_count(encoded, max_entries, total)
