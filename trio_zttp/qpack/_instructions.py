"""QPACK wire primitives and instructions (RFC 9204 §4.1, §4.3, §4.4, §4.5).

* Prefixed integers (RFC 7541 §5.1), decoded up to 62 bits; longer values or encodings with
  more continuation bytes than a 62-bit value needs raise :class:`EncodingError`.
* String literals with an N-bit prefix (RFC 9204 §4.1.2), Huffman-coded when that is shorter.
* Encoder-stream instructions (§4.3) and decoder-stream instructions (§4.4) as small frozen
  value classes with ``parse_*`` / ``write_*`` functions.
* Field line representations (§4.5) as ``write_*`` functions; the decoder parses them inline
  for speed.

Every parser raises :class:`~trio_zttp._buffer.BufferReadError` when the input ends inside an
item (stream parsers keep the bytes and wait for more) and :class:`EncodingError` when the
bytes can never be valid.  Writers append to a ``bytearray``.
"""

from __future__ import annotations

from typing import Final, final

import attrs

from .._buffer import BufferReadError
from ._errors import EncodingError
from ._huffman import huffman_decode, huffman_encode, huffman_encoded_length

__all__ = [
    "ENTRY_OVERHEAD",
    "INTEGER_MAX",
    "DecoderInstruction",
    "Duplicate",
    "EncoderInstruction",
    "InsertCountIncrement",
    "InsertWithLiteralName",
    "InsertWithNameReference",
    "SectionAcknowledgment",
    "SetDynamicTableCapacity",
    "StreamCancellation",
    "decode_integer",
    "decode_required_insert_count",
    "encode_integer",
    "encode_required_insert_count",
    "parse_decoder_instruction",
    "parse_encoder_instruction",
    "read_string",
    "write_decoder_instruction",
    "write_encoder_instruction",
    "write_indexed_dynamic",
    "write_indexed_post_base",
    "write_indexed_static",
    "write_integer",
    "write_literal_dynamic_name",
    "write_literal_literal_name",
    "write_literal_post_base_name",
    "write_literal_static_name",
    "write_section_prefix",
    "write_string",
]

INTEGER_MAX: Final = (1 << 62) - 1
#: What an entry costs beyond its name and value, in the dynamic table's size (RFC 9204
#: §3.2.1) and in a field section's size (RFC 9114 §4.2.2).
ENTRY_OVERHEAD: Final = 32
# a 62-bit value needs at most 9 continuation bytes after any prefix; allow one more for a
# redundant trailing zero group, refuse anything longer
_MAX_SHIFT: Final = 63

Buffer = bytes | bytearray


# --- primitives -------------------------------------------------------------------------

def write_integer(buf: bytearray, value: int, prefix_bits: int, flags: int = 0) -> None:
    """Append ``value`` as an integer with a ``prefix_bits``-bit prefix (RFC 7541 §5.1).

    ``flags`` holds the bits of the first byte above the prefix.
    """
    if not 0 <= value <= INTEGER_MAX:
        raise ValueError(f"{value} is outside the QPACK integer range")
    mask = (1 << prefix_bits) - 1
    if value < mask:
        buf.append(flags | value)
        return
    value -= mask
    if value < 0x4000:  # one or two continuation bytes: no loop
        if value < 0x80:
            buf += bytes((flags | mask, value))
        else:
            buf += bytes((flags | mask, (value & 0x7F) | 0x80, value >> 7))
        return
    buf.append(flags | mask)
    while value >= 0x80:
        buf.append((value & 0x7F) | 0x80)
        value >>= 7
    buf.append(value)


def encode_integer(value: int, prefix_bits: int, flags: int = 0) -> bytes:
    """``value`` as a prefixed integer, as ``bytes``."""
    buf = bytearray()
    write_integer(buf, value, prefix_bits, flags)
    return bytes(buf)


def decode_integer(data: Buffer, pos: int, prefix_bits: int) -> tuple[int, int]:
    """Decode the prefixed integer at ``data[pos]``; return ``(value, position after it)``.

    Raises:
        BufferReadError: the data ends inside the integer.
        EncodingError: the value exceeds 62 bits or uses too many continuation bytes.
    """
    end = len(data)
    if pos >= end:
        raise BufferReadError("integer past the end of the data")
    mask = (1 << prefix_bits) - 1
    value = data[pos] & mask
    pos += 1
    if value < mask:
        return value, pos
    if pos + 1 < end:  # one or two continuation bytes: no loop
        byte = data[pos]
        if byte < 0x80:
            return value + byte, pos + 1
        second = data[pos + 1]
        if second < 0x80:
            return value + (byte & 0x7F) + (second << 7), pos + 2
    shift = 0
    while True:
        if pos >= end:
            raise BufferReadError("integer past the end of the data")
        byte = data[pos]
        pos += 1
        value += (byte & 0x7F) << shift
        if value > INTEGER_MAX:
            raise EncodingError("integer exceeds 62 bits")
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift > _MAX_SHIFT:
            raise EncodingError("integer encoding too long")


def write_string(
    buf: bytearray, value: bytes, prefix_bits: int = 8, flags: int = 0, huffman: bool = True
) -> None:
    """Append ``value`` as an N-bit prefix string literal (N = ``prefix_bits``, 2..8).

    The H bit is the top bit of the prefix; Huffman coding is used when it is shorter
    (never when ``huffman`` is false).
    """
    length = len(value)
    if length and huffman:
        encoded_length = huffman_encoded_length(value)
        if encoded_length < length:
            write_integer(buf, encoded_length, prefix_bits - 1, flags | (1 << (prefix_bits - 1)))
            buf += huffman_encode(value)
            return
    write_integer(buf, length, prefix_bits - 1, flags)
    buf += value


def read_string(data: Buffer, pos: int, prefix_bits: int, max_length: int) -> tuple[bytes, int]:
    """Read an N-bit prefix string literal at ``data[pos]``; return ``(value, end)``.

    ``max_length`` bounds the *encoded* length; longer raises :class:`EncodingError` at once,
    before waiting for (or copying) the bytes.
    """
    if pos >= len(data):
        raise BufferReadError("string past the end of the data")
    huffman = data[pos] & (1 << (prefix_bits - 1))
    length, pos = decode_integer(data, pos, prefix_bits - 1)
    if length > max_length:
        raise EncodingError(f"string literal of {length} bytes exceeds the limit {max_length}")
    end = pos + length
    if end > len(data):
        raise BufferReadError("string past the end of the data")
    raw = bytes(data[pos:end])
    return (huffman_decode(raw) if huffman else raw), end


# --- encoder instructions (RFC 9204 §4.3) ------------------------------------------------

@final
@attrs.frozen(kw_only=True)
class SetDynamicTableCapacity:
    """Set Dynamic Table Capacity (§4.3.1)."""

    capacity: int


@final
@attrs.frozen(kw_only=True)
class InsertWithNameReference:
    """Insert with Name Reference (§4.3.2); ``index`` is static, or relative when not."""

    static: bool
    index: int
    value: bytes


@final
@attrs.frozen(kw_only=True)
class InsertWithLiteralName:
    """Insert with Literal Name (§4.3.3)."""

    name: bytes
    value: bytes


@final
@attrs.frozen(kw_only=True)
class Duplicate:
    """Duplicate (§4.3.4); ``index`` is relative to the newest entry."""

    index: int


EncoderInstruction = (
    SetDynamicTableCapacity | InsertWithNameReference | InsertWithLiteralName | Duplicate
)


def parse_encoder_instruction(
    data: Buffer, pos: int, max_string_length: int
) -> tuple[EncoderInstruction, int]:
    """Parse one encoder instruction at ``data[pos]``; return it and the position after it."""
    if pos >= len(data):
        raise BufferReadError("no instruction")
    first = data[pos]
    if first & 0x80:
        index, pos = decode_integer(data, pos, 6)
        value, pos = read_string(data, pos, 8, max_string_length)
        return InsertWithNameReference(static=bool(first & 0x40), index=index, value=value), pos
    if first & 0x40:
        name, pos = read_string(data, pos, 6, max_string_length)
        value, pos = read_string(data, pos, 8, max_string_length)
        return InsertWithLiteralName(name=name, value=value), pos
    if first & 0x20:
        capacity, pos = decode_integer(data, pos, 5)
        return SetDynamicTableCapacity(capacity=capacity), pos
    index, pos = decode_integer(data, pos, 5)
    return Duplicate(index=index), pos


def write_encoder_instruction(
    buf: bytearray, instruction: EncoderInstruction, huffman: bool = True
) -> None:
    """Append ``instruction`` in its wire form."""
    match instruction:
        case InsertWithNameReference(static=static, index=index, value=value):
            write_integer(buf, index, 6, 0xC0 if static else 0x80)
            write_string(buf, value, huffman=huffman)
        case InsertWithLiteralName(name=name, value=value):
            write_string(buf, name, 6, 0x40, huffman)
            write_string(buf, value, huffman=huffman)
        case SetDynamicTableCapacity(capacity=capacity):
            write_integer(buf, capacity, 5, 0x20)
        case Duplicate(index=index):
            write_integer(buf, index, 5, 0x00)


# --- decoder instructions (RFC 9204 §4.4) ------------------------------------------------

@final
@attrs.frozen(kw_only=True)
class SectionAcknowledgment:
    """Section Acknowledgment (§4.4.1)."""

    stream_id: int


@final
@attrs.frozen(kw_only=True)
class StreamCancellation:
    """Stream Cancellation (§4.4.2)."""

    stream_id: int


@final
@attrs.frozen(kw_only=True)
class InsertCountIncrement:
    """Insert Count Increment (§4.4.3)."""

    increment: int


DecoderInstruction = SectionAcknowledgment | StreamCancellation | InsertCountIncrement


def parse_decoder_instruction(data: Buffer, pos: int) -> tuple[DecoderInstruction, int]:
    """Parse one decoder instruction at ``data[pos]``; return it and the position after it."""
    if pos >= len(data):
        raise BufferReadError("no instruction")
    first = data[pos]
    if first & 0x80:
        stream_id, pos = decode_integer(data, pos, 7)
        return SectionAcknowledgment(stream_id=stream_id), pos
    value, pos = decode_integer(data, pos, 6)
    if first & 0x40:
        return StreamCancellation(stream_id=value), pos
    return InsertCountIncrement(increment=value), pos


def write_decoder_instruction(buf: bytearray, instruction: DecoderInstruction) -> None:
    """Append ``instruction`` in its wire form."""
    match instruction:
        case SectionAcknowledgment(stream_id=stream_id):
            write_integer(buf, stream_id, 7, 0x80)
        case StreamCancellation(stream_id=stream_id):
            write_integer(buf, stream_id, 6, 0x40)
        case InsertCountIncrement(increment=increment):
            write_integer(buf, increment, 6, 0x00)


# --- encoded field section prefix (RFC 9204 §4.5.1) --------------------------------------

def encode_required_insert_count(required_insert_count: int, max_entries: int) -> int:
    """The Encoded Required Insert Count (§4.5.1.1)."""
    if required_insert_count == 0:
        return 0
    if max_entries <= 0:
        raise ValueError("dynamic references need a non-zero maximum table capacity")
    return required_insert_count % (2 * max_entries) + 1


def decode_required_insert_count(encoded: int, max_entries: int, total_inserts: int) -> int:
    """Reconstruct the Required Insert Count (§4.5.1.1).

    Raises:
        EncodingError: ``encoded`` could not have come from a conformant encoder.
    """
    if encoded == 0:
        return 0
    full_range = 2 * max_entries
    if encoded > full_range:
        raise EncodingError("Encoded Required Insert Count beyond 2 * MaxEntries")
    max_value = total_inserts + max_entries
    max_wrapped = (max_value // full_range) * full_range
    required = max_wrapped + encoded - 1
    if required > max_value:
        if required <= full_range:
            raise EncodingError("Required Insert Count beyond what MaxEntries allows")
        required -= full_range
    if required == 0:
        raise EncodingError("Required Insert Count of 0 encoded as non-zero")
    return required


def write_section_prefix(
    buf: bytearray, required_insert_count: int, base: int, max_entries: int
) -> None:
    """Append the field section prefix: Required Insert Count, then sign bit and Delta Base."""
    write_integer(buf, encode_required_insert_count(required_insert_count, max_entries), 8)
    if base >= required_insert_count:
        write_integer(buf, base - required_insert_count, 7, 0x00)
    else:
        write_integer(buf, required_insert_count - base - 1, 7, 0x80)


# --- field line representations (RFC 9204 §4.5.2 - §4.5.6) -------------------------------

def write_indexed_static(buf: bytearray, index: int) -> None:
    """Indexed Field Line, static table (T=1)."""
    write_integer(buf, index, 6, 0xC0)


def write_indexed_dynamic(buf: bytearray, relative_index: int) -> None:
    """Indexed Field Line, dynamic table, index relative to Base (T=0)."""
    write_integer(buf, relative_index, 6, 0x80)


def write_indexed_post_base(buf: bytearray, post_base_index: int) -> None:
    """Indexed Field Line with Post-Base Index."""
    write_integer(buf, post_base_index, 4, 0x10)


def write_literal_static_name(
    buf: bytearray, index: int, value: bytes, never_indexed: bool = False, huffman: bool = True
) -> None:
    """Literal Field Line with Name Reference to the static table."""
    write_integer(buf, index, 4, 0x70 if never_indexed else 0x50)
    write_string(buf, value, huffman=huffman)


def write_literal_dynamic_name(
    buf: bytearray,
    relative_index: int,
    value: bytes,
    never_indexed: bool = False,
    huffman: bool = True,
) -> None:
    """Literal Field Line with Name Reference to the dynamic table (relative to Base)."""
    write_integer(buf, relative_index, 4, 0x60 if never_indexed else 0x40)
    write_string(buf, value, huffman=huffman)


def write_literal_post_base_name(
    buf: bytearray,
    post_base_index: int,
    value: bytes,
    never_indexed: bool = False,
    huffman: bool = True,
) -> None:
    """Literal Field Line with Post-Base Name Reference."""
    write_integer(buf, post_base_index, 3, 0x08 if never_indexed else 0x00)
    write_string(buf, value, huffman=huffman)


def write_literal_literal_name(
    buf: bytearray, name: bytes, value: bytes, never_indexed: bool = False, huffman: bool = True
) -> None:
    """Literal Field Line with Literal Name."""
    write_string(buf, name, 4, 0x30 if never_indexed else 0x20, huffman)
    write_string(buf, value, huffman=huffman)
