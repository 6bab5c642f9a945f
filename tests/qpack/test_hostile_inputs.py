"""Hostile bytes end in the right QPACK error with the right code, never anything else.

Random bytes, valid data truncated at every byte or with bytes flipped, fed to each entry
point that takes peer data: ``Decoder.feed_header`` (-> DecompressionFailed 0x200 or
FieldSectionTooLargeError), ``Decoder.feed_encoder`` (-> EncoderStreamError 0x201) and
``Encoder.feed_decoder`` (-> DecoderStreamError 0x202).  Any other exception fails the test.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.qpack.qpack_support import Headers, corpus_sets
from trio_zttp import qpack
from trio_zttp.qpack._static_table import STATIC_TABLE

SETS = corpus_sets()
SESSION = SETS["browser_session"][:6] + SETS["odd_values"]


def primed(capacity: int = 4096, blocked: int = 4) -> tuple[qpack.Encoder, qpack.Decoder,
                                                            list[tuple[int, bytes, Headers]]]:
    """An encoder/decoder pair with a populated table, plus sections encoded from it."""
    encoder, decoder = qpack.Encoder(), qpack.Decoder(capacity, blocked)
    decoder.feed_encoder(encoder.apply_settings(capacity, blocked))
    sections = []
    for n, headers in enumerate(SESSION):
        encoder_data, section = encoder.encode(4 * n, headers)
        decoder.feed_encoder(encoder_data)
        sections.append((4 * n, section, headers))
    return encoder, decoder, sections


def feed_header_outcome(decoder: qpack.Decoder, stream_id: int, data: bytes) -> object:
    """Decode; return the headers, or the exception if it is one the API allows."""
    try:
        return decoder.feed_header(stream_id, data)[1]
    except qpack.DecompressionFailed as exc:
        assert exc.error_code == 0x0200
        return exc
    except qpack.FieldSectionTooLargeError as exc:
        assert exc.error_code == 0x010E
        return exc
    except qpack.StreamBlocked as exc:
        decoder.cancel_stream(stream_id)
        return exc


def test_hostile_section_truncated_at_every_byte() -> None:
    _, decoder, sections = primed()
    for stream_id, section, headers in sections:
        assert decoder.feed_header(stream_id, section)[1] == headers
        for cut in range(len(section)):
            outcome = feed_header_outcome(decoder, stream_id, section[:cut])
            if isinstance(outcome, list):
                # a cut between two field lines is a shorter valid section
                assert outcome == headers[: len(outcome)]
            else:
                assert isinstance(outcome, qpack.DecompressionFailed)


def test_hostile_encoder_stream_truncated_then_completed_at_every_byte() -> None:
    encoder = qpack.Encoder()
    data = bytearray(encoder.apply_settings(4096, 4))
    for n, headers in enumerate(SESSION):
        data += encoder.encode(4 * n, headers)[0]
    assert len(data) > 500
    reference = qpack.Decoder(4096, 4)
    reference.feed_encoder(bytes(data))
    expected = reference.data_to_send()
    for cut in range(0, len(data) + 1, 3):
        decoder = qpack.Decoder(4096, 4)
        decoder.feed_encoder(bytes(data[:cut]))
        decoder.feed_encoder(bytes(data[cut:]))
        assert decoder.data_to_send() == expected


@settings(max_examples=300)
@given(st.binary(max_size=80))
def test_hostile_random_field_sections(data: bytes) -> None:
    _, decoder, _ = primed()
    outcome = feed_header_outcome(decoder, 1000, data)
    assert isinstance(outcome, (list, qpack.QpackError, qpack.StreamBlocked))


@given(st.data())
def test_hostile_flipped_bytes_in_valid_sections(data: st.DataObject) -> None:
    _, decoder, sections = primed()
    stream_id, section, _ = data.draw(st.sampled_from(sections))
    mutated = bytearray(section)
    for _ in range(data.draw(st.integers(1, 4))):
        mutated[data.draw(st.integers(0, len(mutated) - 1))] = data.draw(st.integers(0, 255))
    outcome = feed_header_outcome(decoder, stream_id, bytes(mutated))
    assert isinstance(outcome, (list, qpack.QpackError, qpack.StreamBlocked))


@settings(max_examples=300)
@given(st.binary(max_size=120), st.sampled_from([0, 64, 300, 4096]))
def test_hostile_random_encoder_stream(data: bytes, capacity: int) -> None:
    decoder = qpack.Decoder(capacity, 2)
    try:
        decoder.feed_encoder(data)
    except qpack.EncoderStreamError as exc:
        assert exc.error_code == 0x0201
        return
    # whatever was accepted left a consistent table: sections still decode or fail cleanly
    outcome = feed_header_outcome(decoder, 0, b"\x02\x00\x80")
    assert isinstance(outcome, (list, qpack.QpackError, qpack.StreamBlocked))


@given(st.data())
def test_hostile_flipped_bytes_in_valid_encoder_stream(data: st.DataObject) -> None:
    encoder = qpack.Encoder()
    stream = bytearray(encoder.apply_settings(1024, 4))
    for n, headers in enumerate(SESSION[:3]):
        stream += encoder.encode(4 * n, headers)[0]
    for _ in range(data.draw(st.integers(1, 3))):
        stream[data.draw(st.integers(0, len(stream) - 1))] = data.draw(st.integers(0, 255))
    decoder = qpack.Decoder(1024, 4)
    try:
        decoder.feed_encoder(bytes(stream))
    except qpack.EncoderStreamError as exc:
        assert exc.error_code == 0x0201


@settings(max_examples=300)
@given(st.binary(max_size=40))
def test_hostile_random_decoder_stream(data: bytes) -> None:
    encoder, _, _ = primed()
    try:
        encoder.feed_decoder(data)
    except qpack.DecoderStreamError as exc:
        assert exc.error_code == 0x0202
        return
    # still usable afterwards
    encoder.encode(10_000, SESSION[0])


@pytest.mark.parametrize("repeats", [10, 1000, 100_000])
def test_hostile_bomb_with_many_static_references_is_bounded(repeats: int) -> None:
    # each two-byte reference to static entry 85 (63 + 22) adds 108 bytes of decoded size
    name, value = STATIC_TABLE[85]
    assert len(name) + len(value) + 32 == 108
    decoder = qpack.Decoder(0, 0, max_field_section_size=16_384)
    outcome = feed_header_outcome(decoder, 0, b"\x00\x00" + b"\xff\x16" * repeats)
    if repeats * 108 <= 16_384:
        assert isinstance(outcome, list) and len(outcome) == repeats
    else:
        assert isinstance(outcome, qpack.FieldSectionTooLargeError)


def test_hostile_blocked_section_limits_use_their_own_stream_ids() -> None:
    decoder = qpack.Decoder(4096, 1)
    decoder.feed_encoder(b"\x3f\xe1\x1f")  # capacity 4096
    with pytest.raises(qpack.StreamBlocked):
        decoder.feed_header(0, b"\x02\x00\x80")
    with pytest.raises(qpack.DecompressionFailed):
        decoder.feed_header(4, b"\x02\x00\x80")
    assert decoder.cancel_stream(0) == b"\x40"
    with pytest.raises(qpack.StreamBlocked):
        decoder.feed_header(4, b"\x02\x00\x80")
