"""Interop with pylsqpack (ls-qpack): both directions, dynamic table on and off, blocking.

pylsqpack is the peer nobody here wrote: sections we encode must decode identically in its
decoder, sections it encodes must decode identically in ours, and the encoder/decoder stream
bytes each side emits must be accepted by the other.
"""

from __future__ import annotations

import pylsqpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.qpack.qpack_support import Headers, corpus_all, corpus_sets, run_in_order
from trio_zttp import qpack
from trio_zttp.qpack._huffman import huffman_encode
from trio_zttp.qpack._instructions import write_integer

SETS = corpus_sets()
CONFIGS = [pytest.param(4096, 16, id="dynamic"), pytest.param(0, 0, id="static")]


@pytest.mark.parametrize(("capacity", "blocked"), CONFIGS)
@pytest.mark.parametrize("name", sorted(SETS))
def test_interop_ours_to_pylsqpack(name: str, capacity: int, blocked: int) -> None:
    sizes = run_in_order(qpack.Encoder(), pylsqpack.Decoder(capacity, blocked), SETS[name],
                         capacity, blocked)
    if capacity and name == "browser_session":
        # repeated requests must actually use the table: a later request costs a fraction of
        # the first (encoder-stream bytes included)
        first, last = sum(sizes[0]), sum(sizes[-1])
        assert last < first / 3


@pytest.mark.parametrize(("capacity", "blocked"), CONFIGS)
@pytest.mark.parametrize("name", sorted(SETS))
def test_interop_pylsqpack_to_ours(name: str, capacity: int, blocked: int) -> None:
    run_in_order(pylsqpack.Encoder(), qpack.Decoder(capacity, blocked), SETS[name],
                 capacity, blocked)


@pytest.mark.parametrize(("capacity", "blocked"), CONFIGS)
def test_interop_whole_corpus_one_connection_both_directions(capacity: int, blocked: int) -> None:
    everything = corpus_all()
    run_in_order(qpack.Encoder(), pylsqpack.Decoder(capacity, blocked), everything,
                 capacity, blocked)
    run_in_order(pylsqpack.Encoder(), qpack.Decoder(capacity, blocked), everything,
                 capacity, blocked)


def test_interop_small_table_forces_eviction_both_ways() -> None:
    # 600 bytes hold a handful of entries: every session evicts constantly
    everything = corpus_all()
    run_in_order(qpack.Encoder(), pylsqpack.Decoder(600, 4), everything, 600, 4)
    run_in_order(pylsqpack.Encoder(), qpack.Decoder(600, 4), everything, 600, 4)


def test_interop_blocked_streams_ours_to_pylsqpack() -> None:
    encoder, decoder = qpack.Encoder(), pylsqpack.Decoder(4096, 16)
    decoder.feed_encoder(encoder.apply_settings(4096, 16))
    blocked = 0
    for n, headers in enumerate(SETS["browser_session"][:10]):
        stream_id = 4 * n
        encoder_data, section = encoder.encode(stream_id, headers)
        try:
            # the field section overtakes the encoder-stream bytes it needs
            control, decoded = decoder.feed_header(stream_id, section)
        except pylsqpack.StreamBlocked:
            blocked += 1
            assert encoder_data, "blocked although nothing was inserted"
            assert decoder.feed_encoder(encoder_data) == [stream_id]
            control, decoded = decoder.resume_header(stream_id)
        else:
            decoder.feed_encoder(encoder_data)
        assert decoded == headers
        encoder.feed_decoder(control)
    assert blocked >= 1


def test_interop_blocked_streams_pylsqpack_to_ours() -> None:
    encoder, decoder = pylsqpack.Encoder(), qpack.Decoder(4096, 16)
    decoder.feed_encoder(encoder.apply_settings(4096, 16))
    # ls-qpack indexes a field once it has seen it: encode a few sections, deliver every
    # field section first and all encoder-stream bytes afterwards
    sets = SETS["browser_session"][:6]
    encoded = [encoder.encode(4 * n, headers) for n, headers in enumerate(sets)]
    waiting = {}
    for n, (_, section) in enumerate(encoded):
        try:
            control, decoded = decoder.feed_header(4 * n, section)
        except qpack.StreamBlocked:
            waiting[4 * n] = sets[n]
        else:
            assert decoded == sets[n]
            encoder.feed_decoder(control)
    assert waiting, "ls-qpack risked no blocked stream; the test needs one"
    unblocked = decoder.feed_encoder(b"".join(data for data, _ in encoded))
    assert sorted(unblocked) == sorted(waiting)
    for stream_id in unblocked:
        control, decoded = decoder.resume_header(stream_id)
        assert decoded == waiting[stream_id]
        encoder.feed_decoder(control + decoder.data_to_send())


def test_interop_cancelled_stream_releases_references_in_our_encoder() -> None:
    encoder, decoder = qpack.Encoder(), pylsqpack.Decoder(4096, 16)
    decoder.feed_encoder(encoder.apply_settings(4096, 16))
    headers = SETS["browser_session"][0]
    encoder_data, section = encoder.encode(0, headers)
    with pytest.raises(pylsqpack.StreamBlocked):
        decoder.feed_header(0, section)
    encoder.feed_decoder(decoder.cancel_stream(0))
    decoder.feed_encoder(encoder_data)
    # the encoder keeps working against the same decoder afterwards
    run_rest = SETS["browser_session"][1:5]
    for n, more in enumerate(run_rest, start=1):
        encoder_data, section = encoder.encode(4 * n, more)
        decoder.feed_encoder(encoder_data)
        control, decoded = decoder.feed_header(4 * n, section)
        assert decoded == more
        encoder.feed_decoder(control)


def _forced_huffman_section(name: bytes, value: bytes) -> bytes:
    """Literal Field Line with Literal Name, both strings Huffman-coded (H=1) regardless."""
    section = bytearray(b"\x00\x00")
    encoded_name, encoded_value = huffman_encode(name), huffman_encode(value)
    write_integer(section, len(encoded_name), 3, 0x20 | 0x08)
    section += encoded_name
    write_integer(section, len(encoded_value), 7, 0x80)
    section += encoded_value
    return bytes(section)


def test_interop_our_huffman_codes_every_symbol_for_pylsqpack() -> None:
    # Huffman coding forced even where it is longer, so every code in the table is used
    decoder = pylsqpack.Decoder(0, 0)
    values = [bytes([symbol]) * 3 for symbol in range(256)] + [bytes(range(256)) * 2]
    for n, value in enumerate(values):
        _, decoded = decoder.feed_header(4 * n, _forced_huffman_section(b"x-h", value))
        assert decoded == [(b"x-h", value)]


@pytest.mark.parametrize("symbol", range(256))
def test_interop_pylsqpack_huffman_decoded_by_us(symbol: int) -> None:
    # mostly cheap symbols, so ls-qpack chooses Huffman, plus the symbol under test
    value = b"e" * 24 + bytes([symbol])
    encoder = pylsqpack.Encoder()
    _, section = encoder.encode(0, [(b"x-h", value)])
    assert value not in section, "ls-qpack did not Huffman-code the value"
    _, decoded = qpack.Decoder(0, 0).feed_header(0, section)
    assert decoded == [(b"x-h", value)]


field_names = st.sampled_from([b"x-a", b"x-b", b"cookie", b"user-agent", b":path", b"accept",
                               b"authorization", b"content-length", b"x-long-name-" * 5])
field_values = st.one_of(st.sampled_from([b"", b"1", b"gzip", b"text/html", b"A" * 300]),
                         st.binary(max_size=60))
# min_size=1: ls-qpack refuses an empty field section ("0000"), even the one it encodes itself;
# RFC 9204 §4.5 allows it and our decoder accepts it (test_qpack_decoder.py)
header_lists = st.lists(st.tuples(field_names, field_values), min_size=1, max_size=12)


@settings(max_examples=60)
@given(sets=st.lists(header_lists, min_size=1, max_size=8),
       capacity=st.sampled_from([0, 64, 200, 1000, 4096]), blocked=st.integers(0, 3))
def test_interop_random_headers_both_directions(
    sets: list[Headers], capacity: int, blocked: int
) -> None:
    run_in_order(qpack.Encoder(), pylsqpack.Decoder(capacity, blocked), sets, capacity, blocked)
    run_in_order(pylsqpack.Encoder(), qpack.Decoder(capacity, blocked), sets, capacity, blocked)
