"""Encoder behaviour: settings, indexing policy, blocking limits, eviction, decoder stream."""

from __future__ import annotations

import pylsqpack
import pytest

from tests.qpack.qpack_support import Headers
from trio_zttp import qpack


def connected(capacity: int, blocked: int, **kwargs: int) -> tuple[qpack.Encoder, qpack.Decoder]:
    encoder = qpack.Encoder(**kwargs)
    decoder = qpack.Decoder(capacity, blocked)
    decoder.feed_encoder(encoder.apply_settings(capacity, blocked))
    return encoder, decoder


def roundtrip(encoder: qpack.Encoder, decoder: qpack.Decoder, stream_id: int,
              headers: Headers) -> tuple[bytes, bytes]:
    """Encode, deliver in order, acknowledge; return the encoder's output."""
    encoder_data, section = encoder.encode(stream_id, headers)
    decoder.feed_encoder(encoder_data)
    control, decoded = decoder.feed_header(stream_id, section)
    assert decoded == headers
    encoder.feed_decoder(control + decoder.data_to_send())
    return encoder_data, section


# --- settings ------------------------------------------------------------------------

def test_encoder_apply_settings_sets_capacity() -> None:
    assert qpack.Encoder().apply_settings(4096, 16).hex() == "3fe11f"  # 31 + 4065
    assert qpack.Encoder().apply_settings(0, 16) == b""
    assert qpack.Encoder().apply_settings(31, 16) == b""  # no entry could ever fit
    # our own limit wins over a more generous peer
    assert qpack.Encoder(capacity_limit=220).apply_settings(1 << 30, 0).hex() == "3fbd01"


def test_encoder_apply_settings_once_and_not_negative() -> None:
    encoder = qpack.Encoder()
    encoder.apply_settings(4096, 16)
    with pytest.raises(ValueError):
        encoder.apply_settings(4096, 16)
    with pytest.raises(ValueError):
        qpack.Encoder().apply_settings(-1, 0)
    with pytest.raises(ValueError):
        qpack.Encoder(capacity_limit=-1)
    with pytest.raises(ValueError):
        qpack.Encoder().encode(-4, [])


def test_encoder_before_settings_uses_static_table_only() -> None:
    encoder = qpack.Encoder()
    headers = [(b":method", b"GET"), (b":path", b"/"), (b"x-custom", b"value")]
    for stream_id in (0, 4):
        encoder_data, section = encoder.encode(stream_id, headers)
        assert encoder_data == b""
        assert section[:2] == b"\x00\x00"
        assert section[2:4] == b"\xd1\xc1"  # indexed static 17 and 1
        assert qpack.Decoder(0, 0).feed_header(stream_id, section)[1] == headers


# --- sensitive fields ------------------------------------------------------------------

def test_encoder_authorization_is_never_indexed() -> None:
    encoder, decoder = connected(4096, 16)
    for stream_id in (0, 4, 8):
        encoder_data, section = roundtrip(encoder, decoder, stream_id, [(b"authorization", b"x")])
        assert encoder_data == b""
        # literal with static name reference, N=1, T=1, index 84 = 15 + 69; raw "x"
        assert section == b"\x00\x00\x7f\x45\x01x"


def test_encoder_short_cookie_is_never_indexed_long_cookie_is() -> None:
    encoder, decoder = connected(4096, 16)
    encoder_data, section = roundtrip(encoder, decoder, 0, [(b"cookie", b"a=1")])
    assert encoder_data == b""
    assert section[2] == 0x75  # N=1, T=1, static index 5 (cookie)
    long_cookie = b"session=" + b"0123456789abcdef" * 4
    encoder_data, first = roundtrip(encoder, decoder, 4, [(b"cookie", long_cookie)])
    assert encoder_data  # inserted
    encoder_data, again = roundtrip(encoder, decoder, 8, [(b"cookie", long_cookie)])
    assert encoder_data == b"" and len(again) == 3  # prefix + one indexed line


def test_encoder_custom_never_indexed_names() -> None:
    encoder = qpack.Encoder(never_indexed_names=[b"x-api-key"])
    decoder = qpack.Decoder(4096, 16)
    decoder.feed_encoder(encoder.apply_settings(4096, 16))
    for stream_id in (0, 4):
        encoder_data, section = roundtrip(encoder, decoder, stream_id, [
            (b"x-api-key", b"k" * 40), (b"authorization", b"Bearer " + b"t" * 40)])
        # x-api-key: literal name with N=1 (0x30); authorization is indexed normally now
        assert section[2] & 0xF0 == 0x30
    assert encoder_data == b"" and section[0] != 0


def test_encoder_never_indexed_bit_survives_pylsqpack_decoding() -> None:
    encoder = qpack.Encoder()
    decoder = pylsqpack.Decoder(4096, 16)
    decoder.feed_encoder(encoder.apply_settings(4096, 16))
    headers = [(b"authorization", b"Bearer abc"), (b"proxy-authorization", b"Basic Zm9v")]
    encoder_data, section = encoder.encode(0, headers)
    assert encoder_data == b""
    assert decoder.feed_header(0, section)[1] == headers


# --- indexing and blocking -------------------------------------------------------------

def test_encoder_inserts_and_references_when_blocking_is_allowed() -> None:
    encoder, decoder = connected(4096, 1)
    headers = [(b"x-custom", b"value"), (b"user-agent", b"tester/1.0")]
    encoder_data, section = encoder.encode(0, headers)
    assert encoder_data  # two inserts
    assert section[0] != 0  # Required Insert Count > 0
    with pytest.raises(qpack.StreamBlocked):
        decoder.feed_header(0, section)  # overtook the encoder stream
    assert decoder.feed_encoder(encoder_data) == [0]
    control, decoded = decoder.resume_header(0)
    assert decoded == headers
    encoder.feed_decoder(control)


def test_encoder_without_blocking_inserts_speculatively_and_uses_after_ack() -> None:
    encoder, decoder = connected(4096, 0)
    headers = [(b"x-custom", b"value")]
    encoder_data, section = encoder.encode(0, headers)
    assert encoder_data  # inserted for later use...
    assert section[:2] == b"\x00\x00"  # ...but not referenced: it could block
    decoder.feed_encoder(encoder_data)
    control, decoded = decoder.feed_header(0, section)
    assert decoded == headers
    assert control == b"\x01"  # no acknowledgment (RIC 0) but an Insert Count Increment
    encoder.feed_decoder(control)
    encoder_data, section = encoder.encode(4, headers)
    assert encoder_data == b""
    assert section == b"\x02\x00\x80"  # RIC 1, Base 1, relative index 0
    assert decoder.feed_header(4, section)[1] == headers


def test_encoder_respects_peer_blocked_streams_limit() -> None:
    encoder, decoder = connected(4096, 2)
    prefixes = []
    for n in range(4):
        encoder_data, section = encoder.encode(4 * n, [(b"x-field", b"value-%d" % n)])
        assert encoder_data  # each new field is inserted
        prefixes.append(section[0])
    assert [p != 0 for p in prefixes] == [True, True, False, False]
    # stream 0 already risks blocking: a second section on it may reference new entries too
    _, trailers = encoder.encode(0, [(b"x-trailer", b"t")])
    assert trailers[0] != 0
    # an acknowledgment for stream 4 frees a slot
    encoder.feed_decoder(b"\x84")
    _, section = encoder.encode(16, [(b"x-field", b"value-new")])
    assert section[0] != 0


def test_encoder_volatile_fields_indexed_on_second_sighting() -> None:
    encoder, decoder = connected(4096, 16)
    path = [(b":path", b"/api/v2/items?page=7")]
    first_data, _ = roundtrip(encoder, decoder, 0, path)
    assert first_data == b""
    second_data, _ = roundtrip(encoder, decoder, 4, path)
    assert second_data
    third_data, third = roundtrip(encoder, decoder, 8, path)
    assert third_data == b"" and len(third) == 3


def test_encoder_huge_field_is_a_literal() -> None:
    encoder, decoder = connected(4096, 16)
    headers = [(b"x-big", b"v" * 3100)]  # more than 3/4 of the table
    encoder_data, section = roundtrip(encoder, decoder, 0, headers)
    assert encoder_data == b""
    assert section[:2] == b"\x00\x00"


# --- eviction --------------------------------------------------------------------------

def test_encoder_never_evicts_unacknowledged_or_referenced_entries() -> None:
    encoder = qpack.Encoder()
    ours = qpack.Decoder(100, 10)
    theirs = pylsqpack.Decoder(100, 10)
    settings = encoder.apply_settings(100, 10)
    ours.feed_encoder(settings)
    theirs.feed_encoder(settings)
    a, b = [(b"aaaa", b"1" * 20)], [(b"bbbb", b"2" * 20)]  # 56 bytes each: one fits
    a_data, a_section = encoder.encode(0, a)
    assert a_data and a_section[0] != 0
    # entry 0 is neither acknowledged nor released: b cannot evict it
    b_data, b_section = encoder.encode(4, b)
    assert b_data == b"" and b_section[:2] == b"\x00\x00"
    for decoder in (ours, theirs):
        decoder.feed_encoder(a_data)
        assert decoder.feed_header(0, a_section)[1] == a
        assert decoder.feed_header(4, b_section)[1] == b
    encoder.feed_decoder(b"\x80")  # Section Acknowledgment, stream 0
    b_data, b_section = encoder.encode(8, b)
    assert b_data  # now entry 0 could be evicted for the new one
    for decoder in (ours, theirs):
        decoder.feed_encoder(b_data)
        assert decoder.feed_header(8, b_section)[1] == b


def test_encoder_stream_cancellation_releases_references() -> None:
    encoder = qpack.Encoder()
    encoder.apply_settings(100, 10)
    encoder.encode(0, [(b"aaaa", b"1" * 20)])
    encoder.feed_decoder(b"\x01")  # Insert Count Increment: entry 0 acknowledged
    # still referenced by stream 0's unacknowledged section
    assert encoder.encode(4, [(b"bbbb", b"2" * 20)])[0] == b""
    encoder.feed_decoder(b"\x40")  # Stream Cancellation, stream 0
    assert encoder.encode(8, [(b"bbbb", b"2" * 20)])[0] != b""


def test_encoder_duplicates_entries_about_to_drain() -> None:
    encoder, decoder = connected(1000, 16)
    fields = [[(b"k%d" % n, bytes([65 + n]) * 66)] for n in range(8)]  # 100 bytes each
    for n, headers in enumerate(fields):
        roundtrip(encoder, decoder, 4 * n, headers)
    # 800 of 1000 bytes used: entry 0 is in the draining quarter; referencing it again copies
    # it to the head of the table with Duplicate (relative index 7)
    encoder_data, section = roundtrip(encoder, decoder, 100, fields[0])
    assert encoder_data == b"\x07"
    assert section == b"\x0a\x00\x80"  # RIC 9 (mod 62 + 1 = 10), relative 0 = the copy
    theirs = pylsqpack.Decoder(1000, 16)
    replay = qpack.Encoder()
    theirs.feed_encoder(replay.apply_settings(1000, 16))
    for n, headers in enumerate([*fields, fields[0], fields[1]]):
        encoder_data, section = replay.encode(4 * n, headers)
        theirs.feed_encoder(encoder_data)
        control, decoded = theirs.feed_header(4 * n, section)
        assert decoded == headers
        replay.feed_decoder(control)


# --- the decoder stream ----------------------------------------------------------------

def _decoder_stream_error(encoder: qpack.Encoder, data: bytes, match: str) -> None:
    with pytest.raises(qpack.DecoderStreamError, match=match) as info:
        encoder.feed_decoder(data)
    assert info.value.error_code == qpack.ErrorCode.QPACK_DECODER_STREAM_ERROR == 0x0202


def test_encoder_section_ack_for_unknown_stream() -> None:
    encoder = qpack.Encoder()
    encoder.apply_settings(4096, 16)
    _decoder_stream_error(encoder, b"\x84", "stream 4")


def test_encoder_section_ack_beyond_sections_sent() -> None:
    encoder, _ = connected(4096, 16)
    encoder.encode(0, [(b"x-a", b"1")])
    encoder.encode(0, [(b"x-b", b"2")])
    encoder.encode(0, [(b":method", b"GET")])  # no dynamic reference: not acknowledged
    encoder.feed_decoder(b"\x80\x80")
    _decoder_stream_error(encoder, b"\x80", "no unacknowledged")


def test_encoder_insert_count_increment_zero_or_too_far() -> None:
    encoder, _ = connected(4096, 0)
    encoder.encode(0, [(b"x-a", b"1"), (b"x-b", b"2")])  # two speculative inserts
    _decoder_stream_error(encoder, b"\x00", "of 0")
    encoder2, _ = connected(4096, 0)
    encoder2.encode(0, [(b"x-a", b"1"), (b"x-b", b"2")])
    encoder2.feed_decoder(b"\x01")
    _decoder_stream_error(encoder2, b"\x02", "beyond")


def test_encoder_decoder_stream_integer_overflow() -> None:
    _decoder_stream_error(qpack.Encoder(), b"\xff" + b"\xff" * 9 + b"\x7f", "62 bits")


def test_encoder_stream_cancellation_of_unknown_stream_is_fine() -> None:
    encoder = qpack.Encoder()
    encoder.feed_decoder(b"\x44\x7f\x00")  # streams 4 and 63


def test_encoder_decoder_stream_split_at_every_byte() -> None:
    data = b"\x80\xff\x80\x01\x01\x40\x01"  # ack 0, ack 255, increment 1, cancel 0, incr 1
    for cut in range(len(data) + 1):
        encoder, _ = connected(4096, 16)
        encoder.encode(0, [(b"x-a", b"1")])
        encoder.encode(255, [(b"x-b", b"2")])
        encoder.encode(8, [(b"x-c", b"3")])
        encoder.encode(12, [(b"x-d", b"4")])
        encoder.feed_decoder(data[:cut])
        encoder.feed_decoder(data[cut:])
        _decoder_stream_error(encoder, b"\x02", "beyond")  # all 4 inserts: 2 more is too many
