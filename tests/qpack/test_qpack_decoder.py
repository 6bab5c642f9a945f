"""Decoder behaviour: blocking, acknowledgments, limits, and each error the RFC names."""

from __future__ import annotations

import time

import pytest

from trio_zttp import qpack
from trio_zttp.qpack._instructions import (
    Duplicate,
    EncoderInstruction,
    InsertWithLiteralName,
    InsertWithNameReference,
    SetDynamicTableCapacity,
    encode_integer,
    write_encoder_instruction,
    write_indexed_dynamic,
    write_indexed_post_base,
    write_indexed_static,
    write_literal_dynamic_name,
    write_literal_literal_name,
    write_literal_post_base_name,
    write_literal_static_name,
    write_section_prefix,
)


def encoder_stream(*instructions: EncoderInstruction) -> bytes:
    buf = bytearray()
    for instruction in instructions:
        write_encoder_instruction(buf, instruction)
    return bytes(buf)


def table_with(decoder: qpack.Decoder, *fields: tuple[bytes, bytes], capacity: int = 4096) -> None:
    decoder.feed_encoder(encoder_stream(
        SetDynamicTableCapacity(capacity=capacity),
        *(InsertWithLiteralName(name=n, value=v) for n, v in fields),
    ))


def section(required: int, base: int, max_entries: int = 4096 // 32) -> bytearray:
    buf = bytearray()
    write_section_prefix(buf, required, base, max_entries)
    return buf


# --- normal operation ----------------------------------------------------------------

def test_decoder_every_representation() -> None:
    decoder = qpack.Decoder(4096, 0)
    table_with(decoder, (b"a", b"1"), (b"b", b"2"), (b"c", b"3"))
    # Base 1: entry 0 is relative index 0, entries 1 and 2 are post-base 0 and 1
    buf = section(3, 1)
    write_indexed_static(buf, 17)
    write_indexed_dynamic(buf, 0)
    write_indexed_post_base(buf, 1)
    write_literal_static_name(buf, 0, b"example.com")
    write_literal_dynamic_name(buf, 0, b"x")
    write_literal_post_base_name(buf, 0, b"y", never_indexed=True)
    write_literal_literal_name(buf, b"custom", b"z", never_indexed=True)
    control, headers = decoder.feed_header(0, bytes(buf))
    assert headers == [(b":method", b"GET"), (b"a", b"1"), (b"c", b"3"),
                       (b":authority", b"example.com"), (b"a", b"x"), (b"b", b"y"),
                       (b"custom", b"z")]
    assert control == b"\x80"  # Section Acknowledgment, stream 0; RIC = all inserts


def test_decoder_empty_section_and_empty_strings() -> None:
    decoder = qpack.Decoder(0, 0)
    assert decoder.feed_header(0, b"\x00\x00") == (b"", [])
    buf = section(0, 0)
    write_literal_literal_name(buf, b"", b"")
    assert decoder.feed_header(4, bytes(buf)) == (b"", [(b"", b"")])


def test_decoder_blocks_then_resumes_and_acknowledges() -> None:
    decoder = qpack.Decoder(4096, 2)
    decoder.feed_encoder(encoder_stream(SetDynamicTableCapacity(capacity=4096)))
    buf = section(1, 1)
    write_indexed_dynamic(buf, 0)
    with pytest.raises(qpack.StreamBlocked):
        decoder.feed_header(4, bytes(buf))
    with pytest.raises(ValueError, match="already blocked"):
        decoder.feed_header(4, bytes(buf))
    with pytest.raises(qpack.StreamBlocked):
        decoder.resume_header(4)  # nothing arrived yet
    # the insert arrives split in two: the first half unblocks nothing
    insert = encoder_stream(InsertWithLiteralName(name=b"k", value=b"v"))
    assert decoder.feed_encoder(insert[:2]) == []
    assert decoder.feed_encoder(insert[2:]) == [4]
    control, headers = decoder.resume_header(4)
    assert headers == [(b"k", b"v")]
    assert control == b"\x84"  # acknowledgment covers the insert: no Increment needed
    assert decoder.data_to_send() == b""
    with pytest.raises(ValueError, match="no blocked"):
        decoder.resume_header(4)


def test_decoder_insert_count_increment_when_entries_arrive() -> None:
    decoder = qpack.Decoder(4096, 0)
    table_with(decoder, (b"a", b"1"), (b"b", b"2"))
    assert decoder.data_to_send() == b"\x02"
    assert decoder.data_to_send() == b""
    table_with(decoder, (b"c", b"3"))
    # a pending Increment rides along with the next returned decoder-stream bytes
    assert decoder.feed_header(0, b"\x00\x00") == (b"\x01", [])
    assert decoder.cancel_stream(8) == b"\x48"


def test_decoder_increment_is_reduced_by_acknowledgments() -> None:
    decoder = qpack.Decoder(4096, 0)
    table_with(decoder, (b"a", b"1"), (b"b", b"2"), (b"c", b"3"))
    buf = section(2, 2)
    write_indexed_dynamic(buf, 0)
    control, _ = decoder.feed_header(0, bytes(buf))
    assert control == b"\x80\x01"  # ack raises Known Received Count to 2; 1 more insert


def test_decoder_cancel_stream_drops_blocked_section() -> None:
    decoder = qpack.Decoder(4096, 1)
    decoder.feed_encoder(encoder_stream(SetDynamicTableCapacity(capacity=4096)))
    buf = section(1, 1)
    write_indexed_dynamic(buf, 0)
    with pytest.raises(qpack.StreamBlocked):
        decoder.feed_header(4, bytes(buf))
    assert decoder.cancel_stream(4) == b"\x44"
    table_with(decoder, (b"k", b"v"))
    assert decoder.feed_encoder(b"") == []
    # the freed slot can block another stream
    with pytest.raises(qpack.StreamBlocked):
        decoder.feed_header(8, bytes(section(2, 2)) + b"\x80")


def test_decoder_cancel_without_dynamic_table_sends_nothing() -> None:
    assert qpack.Decoder(0, 0).cancel_stream(4) == b""


def test_decoder_multiple_unblocked_in_blocking_order() -> None:
    decoder = qpack.Decoder(4096, 3)
    decoder.feed_encoder(encoder_stream(SetDynamicTableCapacity(capacity=4096)))
    for stream_id, required in ((8, 2), (0, 1), (4, 3)):
        buf = section(required, required)
        write_indexed_dynamic(buf, 0)
        with pytest.raises(qpack.StreamBlocked):
            decoder.feed_header(stream_id, bytes(buf))
    assert decoder.feed_encoder(encoder_stream(InsertWithLiteralName(name=b"a", value=b""))) == [0]
    assert decoder.feed_encoder(encoder_stream(
        InsertWithLiteralName(name=b"b", value=b""), InsertWithLiteralName(name=b"c", value=b"")
    )) == [8, 0, 4]
    assert decoder.resume_header(4)[1] == [(b"c", b"")]
    assert decoder.resume_header(8)[1] == [(b"b", b"")]
    assert decoder.resume_header(0)[1] == [(b"a", b"")]


def test_decoder_encoder_stream_split_at_every_byte() -> None:
    data = encoder_stream(
        SetDynamicTableCapacity(capacity=300),
        InsertWithNameReference(static=True, index=0, value=b"www.example.com"),
        InsertWithLiteralName(name=b"custom-key", value=b"custom-value" * 3),
        InsertWithNameReference(static=False, index=0, value=b"other"),
        Duplicate(index=2),
        InsertWithLiteralName(name=b"evicts", value=b"x" * 100),
    )
    # 5 inserts; the last evicts entries 0 and 1
    probe = section(5, 5, 300 // 32)
    for relative in range(3):
        write_indexed_dynamic(probe, relative)
    whole = qpack.Decoder(300, 0)
    whole.feed_encoder(data)
    expected = whole.feed_header(0, bytes(probe))
    for cut in range(len(data) + 1):
        for second_cut in (cut, min(len(data), cut + 7)):
            split = qpack.Decoder(300, 0)
            split.feed_encoder(data[:cut])
            split.feed_encoder(data[cut:second_cut])
            split.feed_encoder(data[second_cut:])
            assert split.feed_header(0, bytes(probe)) == expected


def test_decoder_section_size_limit_exact_boundary() -> None:
    fields = [(b"x-a", b"1" * 10), (b"x-b", b"")]
    size = sum(len(n) + len(v) + 32 for n, v in fields)
    buf = section(0, 0)
    for name, value in fields:
        write_literal_literal_name(buf, name, value)
    assert qpack.Decoder(0, 0, max_field_section_size=size).feed_header(0, bytes(buf))[1] == fields
    with pytest.raises(qpack.FieldSectionTooLargeError) as info:
        qpack.Decoder(0, 0, max_field_section_size=size - 1).feed_header(0, bytes(buf))
    assert info.value.error_code == 0x010E
    assert info.value.limit == size - 1
    assert info.value.decoder_stream_data == b""  # no dynamic references: nothing owed


# --- hostile input: the QPACK bomb ---------------------------------------------------

def test_decoder_bomb_of_references_to_one_huge_entry_stops_early() -> None:
    decoder = qpack.Decoder(65536, 0, max_field_section_size=1 << 20)
    table_with(decoder, (b"x", b"A" * 60000), capacity=65536)
    decoder.data_to_send()
    # 200 000 one-byte references = 12 GB of decoded headers from a 200 kB section
    bomb = bytes(section(1, 1, 65536 // 32)) + b"\x80" * 200_000
    started = time.perf_counter()
    with pytest.raises(qpack.FieldSectionTooLargeError) as info:
        decoder.feed_header(4, bomb)
    assert time.perf_counter() - started < 0.5
    # the section was valid, so the acknowledgment the peer's encoder waits for is handed over
    assert info.value.decoder_stream_data == b"\x84"
    assert isinstance(info.value, qpack.QpackError)
    # and the decoder keeps working
    buf = section(1, 1, 65536 // 32)
    write_indexed_dynamic(buf, 0)
    assert decoder.feed_header(8, bytes(buf)) == (b"\x88", [(b"x", b"A" * 60000)])


def test_decoder_bomb_of_huge_literal_rejected_before_decoding() -> None:
    decoder = qpack.Decoder(0, 0, max_field_section_size=1000)
    huge = b"\xff" * 50_000  # a Huffman literal of at least 13 000 bytes, all ones = bad
    buf = section(0, 0)
    buf += b"\x5f\x00"  # literal with static name reference, index 15 (:method)
    buf += encode_integer(len(huge), 7, 0x80)
    buf += huge
    with pytest.raises(qpack.FieldSectionTooLargeError):
        decoder.feed_header(0, bytes(buf))


def test_decoder_dynamic_name_counts_toward_limit_before_value() -> None:
    decoder = qpack.Decoder(8192, 0, max_field_section_size=4000)
    table_with(decoder, (b"n" * 5000, b""), capacity=8192)
    buf = section(1, 1, 8192 // 32)
    write_literal_dynamic_name(buf, 0, b"v")
    with pytest.raises(qpack.FieldSectionTooLargeError):
        decoder.feed_header(0, bytes(buf))


# --- hostile input: each named error ---------------------------------------------------

def _encoder_stream_error(decoder: qpack.Decoder, data: bytes, match: str) -> None:
    with pytest.raises(qpack.EncoderStreamError, match=match) as info:
        decoder.feed_encoder(data)
    assert info.value.error_code == qpack.ErrorCode.QPACK_ENCODER_STREAM_ERROR == 0x0201


def test_decoder_capacity_above_our_maximum() -> None:
    _encoder_stream_error(qpack.Decoder(4096, 0),
                          encoder_stream(SetDynamicTableCapacity(capacity=4097)), "exceeds")


def test_decoder_insert_larger_than_capacity() -> None:
    data = encoder_stream(SetDynamicTableCapacity(capacity=100),
                          InsertWithLiteralName(name=b"n" * 30, value=b"v" * 39))
    _encoder_stream_error(qpack.Decoder(4096, 0), data, "exceeds the table capacity")
    # before any Set Dynamic Table Capacity the capacity is 0
    _encoder_stream_error(qpack.Decoder(4096, 0),
                          encoder_stream(InsertWithLiteralName(name=b"", value=b"")),
                          "exceeds the table capacity")


def test_decoder_insert_string_longer_than_table_could_hold_fails_at_once() -> None:
    # a declared 2**40-byte name: refused without waiting for (or buffering) the bytes
    data = bytes(encoder_stream(SetDynamicTableCapacity(capacity=4096)))
    data += encode_integer(1 << 40, 5, 0x40)
    _encoder_stream_error(qpack.Decoder(4096, 0), data, "exceeds the limit")


def test_decoder_insert_static_name_out_of_range() -> None:
    data = encoder_stream(SetDynamicTableCapacity(capacity=4096),
                          InsertWithNameReference(static=True, index=99, value=b"v"))
    _encoder_stream_error(qpack.Decoder(4096, 0), data, "static table index 99")


def test_decoder_insert_dynamic_name_beyond_table() -> None:
    data = encoder_stream(SetDynamicTableCapacity(capacity=4096),
                          InsertWithLiteralName(name=b"a", value=b"1"),
                          InsertWithNameReference(static=False, index=1, value=b"v"))
    _encoder_stream_error(qpack.Decoder(4096, 0), data, "refers to no entry")


def test_decoder_duplicate_of_evicted_entry() -> None:
    data = encoder_stream(SetDynamicTableCapacity(capacity=67),
                          InsertWithLiteralName(name=b"a", value=b"1"),
                          InsertWithLiteralName(name=b"b", value=b"2"),  # evicts entry 0
                          Duplicate(index=1))
    _encoder_stream_error(qpack.Decoder(4096, 0), data, "refers to no entry")


def test_decoder_integer_overflow_on_encoder_stream() -> None:
    _encoder_stream_error(qpack.Decoder(4096, 0), b"\x3f" + b"\xff" * 9 + b"\x7f", "62 bits")


def test_decoder_bad_huffman_on_encoder_stream() -> None:
    data = encoder_stream(SetDynamicTableCapacity(capacity=4096)) + b"\x41\x61\x81\x00"
    _encoder_stream_error(qpack.Decoder(4096, 0), data, "Huffman")


def test_decoder_reducing_capacity_evicts() -> None:
    decoder = qpack.Decoder(4096, 0)
    table_with(decoder, (b"a", b"1"), (b"b", b"2"))
    decoder.feed_encoder(encoder_stream(SetDynamicTableCapacity(capacity=34)))
    buf = section(2, 2)
    write_indexed_dynamic(buf, 0)
    assert decoder.feed_header(0, bytes(buf))[1] == [(b"b", b"2")]
    buf = section(2, 2)
    write_indexed_dynamic(buf, 1)
    with pytest.raises(qpack.DecompressionFailed, match="evicted"):
        decoder.feed_header(4, bytes(buf))


def _decompression_failed(decoder: qpack.Decoder, data: bytes, match: str) -> None:
    with pytest.raises(qpack.DecompressionFailed, match=match) as info:
        decoder.feed_header(0, data)
    assert info.value.error_code == qpack.ErrorCode.QPACK_DECOMPRESSION_FAILED == 0x0200


def test_decoder_static_index_out_of_range() -> None:
    buf = section(0, 0)
    write_indexed_static(buf, 99)
    _decompression_failed(qpack.Decoder(0, 0), bytes(buf), "static table index 99")
    buf = section(0, 0)
    write_literal_static_name(buf, 1000, b"v")
    _decompression_failed(qpack.Decoder(0, 0), bytes(buf), "static table index 1000")


def test_decoder_relative_index_beyond_table() -> None:
    decoder = qpack.Decoder(4096, 0)
    table_with(decoder, (b"a", b"1"))
    buf = section(1, 1)
    write_indexed_dynamic(buf, 1)  # absolute -1
    _decompression_failed(decoder, bytes(buf), "evicted or nonexistent")


def test_decoder_reference_at_or_above_required_insert_count() -> None:
    decoder = qpack.Decoder(4096, 0)
    table_with(decoder, (b"a", b"1"), (b"b", b"2"))
    buf = section(1, 1)
    write_indexed_post_base(buf, 0)  # absolute 1, RIC 1
    _decompression_failed(decoder, bytes(buf), "Required Insert Count")
    buf = section(1, 2)  # Base above RIC, relative 0 is absolute 1
    write_literal_dynamic_name(buf, 0, b"v")
    _decompression_failed(decoder, bytes(buf), "Required Insert Count")


def test_decoder_dynamic_reference_without_dynamic_table() -> None:
    buf = section(0, 0)
    write_indexed_dynamic(buf, 0)
    _decompression_failed(qpack.Decoder(4096, 0), bytes(buf), "nonexistent entry -1")
    # any non-zero Required Insert Count is impossible when our maximum capacity is 0
    _decompression_failed(qpack.Decoder(0, 0), b"\x01\x00", "prefix")


def test_decoder_required_insert_count_beyond_max_entries() -> None:
    # MaxEntries 128: encoded values above 256 are impossible
    _decompression_failed(qpack.Decoder(4096, 5), encode_integer(257, 8) + b"\x00", "prefix")


def test_decoder_negative_base() -> None:
    decoder = qpack.Decoder(4096, 0)
    table_with(decoder, (b"a", b"1"))
    # RIC 1, sign 1, Delta Base 1: Base would be -1
    _decompression_failed(decoder, b"\x02\x81\x10", "negative Base")


def test_decoder_too_many_blocked_streams() -> None:
    decoder = qpack.Decoder(4096, 2)
    decoder.feed_encoder(encoder_stream(SetDynamicTableCapacity(capacity=4096)))
    blocking = bytes(section(1, 1)) + b"\x80"
    for stream_id in (0, 4):
        with pytest.raises(qpack.StreamBlocked):
            decoder.feed_header(stream_id, blocking)
    with pytest.raises(qpack.DecompressionFailed, match="blocked streams"):
        decoder.feed_header(8, blocking)
    with pytest.raises(qpack.DecompressionFailed, match="blocked streams"):
        qpack.Decoder(4096, 0).feed_header(0, blocking)


def test_decoder_string_length_beyond_section() -> None:
    buf = section(0, 0)
    write_literal_literal_name(buf, b"name", b"value")
    _decompression_failed(qpack.Decoder(0, 0), bytes(buf[:-1]), "past the end")


def test_decoder_truncated_prefix() -> None:
    for data in (b"", b"\x00", b"\xff", b"\x00\xff"):
        _decompression_failed(qpack.Decoder(4096, 0), data, "prefix|past the end")


def test_decoder_rejects_negative_limits() -> None:
    with pytest.raises(ValueError):
        qpack.Decoder(-1, 0)
    with pytest.raises(ValueError):
        qpack.Decoder(0, 0, max_field_section_size=-1)


# --- repeated sections (the decoder remembers decoded sections) -----------------------------

def test_decoder_repeated_section_gives_equal_independent_lists() -> None:
    decoder = qpack.Decoder(4096, 0)
    table_with(decoder, (b"x-a", b"1"))
    buf = section(1, 1)
    write_indexed_static(buf, 17)
    write_indexed_dynamic(buf, 0)
    first_ack, first = decoder.feed_header(0, bytes(buf))
    first.append((b"mutated", b"by the caller"))
    second_ack, second = decoder.feed_header(4, bytes(buf))
    assert second == [(b":method", b"GET"), (b"x-a", b"1")]
    assert first_ack == b"\x80"  # Section Acknowledgment 0 (it covers the insert)
    assert second_ack == b"\x84"  # Section Acknowledgment for stream 4 only


def test_decoder_repeated_section_after_its_entry_was_evicted_fails() -> None:
    # capacity 67: one entry of 34 bytes at a time; MaxEntries 2, so Required Insert Count 1
    # encodes the same after the table moved on, and the same bytes name absolute entry 0
    decoder = qpack.Decoder(67, 0)
    table_with(decoder, (b"a", b"1"), capacity=67)
    buf = section(1, 1, max_entries=2)
    write_indexed_dynamic(buf, 0)
    assert decoder.feed_header(0, bytes(buf))[1] == [(b"a", b"1")]
    decoder.feed_encoder(encoder_stream(InsertWithLiteralName(name=b"b", value=b"2")))
    with pytest.raises(qpack.DecompressionFailed, match="evicted"):
        decoder.feed_header(4, bytes(buf))
