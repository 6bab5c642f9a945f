"""The encoder's and decoder's remembered sections give what full encoding/decoding gives.

Each run drives one encoder/decoder pair through the same script twice: once with the section
caches switched off (every section planned, encoded and decoded line by line) and once with
them on, and the two transcripts (encoder-stream bytes, field sections, decoder-stream bytes,
decoded lines) must be byte for byte equal.  The scripts repeat sections while the table
fills, drains, evicts and while acknowledgments lag, so remembered sections are reused and
must be refused whenever the table moved under them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trio_zttp import qpack
from trio_zttp.qpack import _decoder, _encoder

Headers = list[tuple[bytes, bytes]]

REQUEST: Headers = [
    (b":method", b"GET"), (b":scheme", b"https"), (b":authority", b"example.com:4433"),
    (b":path", b"/"),
]
RESPONSE: Headers = [(b":status", b"200"), (b"content-length", b"100")]
POOL: list[Headers] = [
    REQUEST,
    RESPONSE,
    [(b":status", b"200")],
    REQUEST[:3] + [(b":path", b"/a")],
    REQUEST + [(b"user-agent", b"bench"), (b"x-big", b"v" * 150)],
    REQUEST + [(b"authorization", b"secret")],
    [(b":status", b"404"), (b"cookie", b"short"), (b"cookie", b"a-much-longer-cookie-value")],
    [(b"x-a", b"1"), (b"x-b", b"2"), (b"x-c", b"3")],
    [(b"x-a", b"1"), (b"x-d", b"4" * 60)],
]


@contextmanager
def caches(enabled: bool, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    with monkeypatch.context() as patch:
        if not enabled:
            # nothing fits: every section takes the full path
            patch.setattr(_encoder, "_SECTION_CACHE_SECTION", -1)
            patch.setattr(_decoder, "_SECTION_CACHE_SECTION", -1)
        yield


def transcript(
    script: list[tuple[int, int]], capacity: int, blocked: int
) -> tuple[list[object], int]:
    """Run ``script`` (pool index, acknowledgment delay) and record every byte produced."""
    encoder = qpack.Encoder()
    decoder = qpack.Decoder(capacity, blocked)
    out: list[object] = []
    setup = encoder.apply_settings(capacity, blocked)
    decoder.feed_encoder(setup)
    backlog: list[bytes] = []

    for step, (index, delay) in enumerate(script):
        headers = POOL[index]
        stream_id = 4 * step
        encoder_data, section = encoder.encode(stream_id, headers)
        out += [encoder_data, section]
        decoder.feed_encoder(encoder_data)
        control, decoded = decoder.feed_header(stream_id, section)
        assert decoded == headers
        out += [control]
        backlog.append(control + decoder.data_to_send())
        # acknowledgments reach the encoder ``delay`` steps late
        while len(backlog) > delay:
            encoder.feed_decoder(backlog.pop(0))
    for control in backlog:
        encoder.feed_decoder(control)
    return out, len(encoder._section_cache)


scripts = st.lists(
    st.tuples(st.integers(0, len(POOL) - 1), st.integers(0, 3)), min_size=1, max_size=40
)


@given(script=scripts, capacity=st.sampled_from([0, 200, 600, 4096]),
       blocked=st.sampled_from([0, 1, 16]))
def test_section_caches_match_full_coding(
    script: list[tuple[int, int]], capacity: int, blocked: int
) -> None:
    patch = pytest.MonkeyPatch()
    with caches(False, patch):
        plain, remembered = transcript(script, capacity, blocked)
    assert remembered == 0
    with caches(True, patch):
        cached, _ = transcript(script, capacity, blocked)
    assert cached == plain


@pytest.mark.parametrize("capacity", [0, 4096])
def test_section_caches_are_used_for_repeated_sections(
    capacity: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Steady state (the same request and response again and again): sections are reused."""
    script = [(0, 0), (1, 0)] * 30
    with caches(False, monkeypatch):
        plain, _ = transcript(script, capacity, 16)
    calls = 0
    original = _encoder.Encoder._literal

    def counting(self: qpack.Encoder, name: bytes, value: bytes, never: bool) -> bytes:
        nonlocal calls
        calls += 1
        return original(self, name, value, never)

    decoded = 0
    original_lines = _decoder.Decoder._decode_lines

    def counting_lines(self: qpack.Decoder, data: bytes, pos: int, required: int) -> object:
        nonlocal decoded
        decoded += 1
        return original_lines(self, data, pos, required)

    monkeypatch.setattr(_encoder.Encoder, "_literal", counting)
    monkeypatch.setattr(_decoder.Decoder, "_decode_lines", counting_lines)
    with caches(True, monkeypatch):
        cached, remembered = transcript(script, capacity, 16)
    assert cached == plain
    assert remembered == 2
    # a handful of sections are coded in full while the table settles, then none
    assert decoded <= 8
    assert calls <= 8


def test_decoder_remembered_section_refused_after_capacity_eviction() -> None:
    """Set Dynamic Table Capacity evicts without inserting: a repeat of a section that names
    the evicted entry is a decompression failure, remembered or not."""
    encoder, decoder = qpack.Encoder(), qpack.Decoder(4096, 16)
    decoder.feed_encoder(encoder.apply_settings(4096, 16))
    encoder_data, section = encoder.encode(0, REQUEST)
    decoder.feed_encoder(encoder_data)
    assert decoder.feed_header(0, section)[1] == REQUEST
    assert decoder.feed_header(4, section)[1] == REQUEST  # the remembered one
    decoder.feed_encoder(bytes([0x20]))  # Set Dynamic Table Capacity 0: evicts everything
    with pytest.raises(qpack.DecompressionFailed):
        decoder.feed_header(8, section)


def test_static_sections_are_shared_between_decoders_within_their_limits() -> None:
    # a section with Required Insert Count 0 is remembered for every decoder: a second
    # decoder gets the same lines, and one whose max_field_section_size the section exceeds
    # still gets FieldSectionTooLargeError
    fields = [(b":status", b"200"), (b"x-shared-" + bytes(range(97, 107)), b"v" * 150)]
    _, section = qpack.Encoder().encode(0, fields)  # no dynamic table: literals only
    assert section[:1] == b"\x00"
    size = sum(len(n) + len(v) + 32 for n, v in fields)
    for _ in range(2):
        assert qpack.Decoder(4096, 16).feed_header(0, section) == (b"", fields)
    assert qpack.Decoder(4096, 16, max_field_section_size=size).feed_header(4, section)[1] \
        == fields
    with pytest.raises(qpack.FieldSectionTooLargeError):
        qpack.Decoder(4096, 16, max_field_section_size=size - 1).feed_header(0, section)
    decoder = qpack.Decoder(4096, 16)
    result = decoder.feed_header(8, section)
    result[1].append((b"mutated", b"list"))  # the caller's list is its own
    assert qpack.Decoder(4096, 16).feed_header(0, section)[1] == fields


def _shared_decoded(name: bytes) -> list[object]:
    return [v for v in _decoder._static_sections.values() if any(n == name for n, _ in v[0])]


def test_process_wide_caches_keep_no_credentials() -> None:
    # The small-section caches outlive connections: a section with credentials (a
    # never-indexed line, or authorization / cookie names) is decoded and encoded every
    # time, never kept where another connection could be served from it.
    _decoder._static_sections.clear()
    _encoder._small_sections.clear()
    secret = [(b":method", b"GET"), (b"authorization", b"Bearer s3cr3t-tok")]
    cookie = [(b":method", b"GET"), (b"cookie", b"session=0123456789abcdef")]
    token = [(b":method", b"GET"), (b"x-token", b"t0k")]
    for fields, never in ((secret, ()), (cookie, ()), (token, (b"x-token",))):
        encoder = qpack.Encoder(literal_section_size=48, never_indexed_names=never)
        encoder.apply_settings(4096, 16)
        _, section = encoder.encode(0, fields)
        assert section[:2] == b"\x00\x00"  # a small section: static lines and literals
        decoder = qpack.Decoder(4096, 16)
        assert decoder.feed_header(0, section)[1] == fields
    assert not _shared_decoded(b"authorization")
    assert not _shared_decoded(b"cookie")
    assert not _shared_decoded(b"x-token")  # N bit set by its encoder
    kept = [fields for (_, _, fields) in _encoder._small_sections]
    assert all(name not in (b"authorization", b"cookie") for f in kept for name, _ in f)


def test_shared_small_sections_respect_each_encoders_budget() -> None:
    # A section another encoder sent as literals (its budget 48) is not reused by an
    # encoder whose budget (8) puts those fields in the dynamic table.
    _encoder._small_sections.clear()
    fields = [(b":method", b"GET"), (b"x-client", b"abcdefghijklmnopqrstuv")]
    big = qpack.Encoder(literal_section_size=48)
    big.apply_settings(4096, 16)
    assert big.encode(0, fields)[1][:1] == b"\x00"
    small = qpack.Encoder(literal_section_size=8)
    small.apply_settings(4096, 16)
    encoder_stream, section = small.encode(0, fields)
    assert encoder_stream and section[:1] != b"\x00"  # inserted, referenced: not the literal


def test_shared_small_sections_bound_the_fields_they_keep() -> None:
    # Static lines take one or two bytes of a section: thousands of them fit a small one.
    # The shared cache bounds the fields (names and values) it keeps, not only the section.
    _encoder._small_sections.clear()
    static = [(b":method", b"GET")] * 3000  # 3000 one-byte static lines, 30 kB of fields
    encoder = qpack.Encoder(literal_section_size=48)
    encoder.apply_settings(4096, 16)
    section = encoder.encode(0, static)[1]
    assert len(section) <= 4096
    assert not _encoder._small_sections
