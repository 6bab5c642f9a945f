"""``Encoder(literal_section_size=n)``: small sections go out as static lines and literals.

A section whose fields outside the static table hold at most ``n`` bytes of names and values
must encode exactly as an encoder without a dynamic table encodes it (the general path's
literal lines), insert nothing and reference nothing (so the peer owes no Section
Acknowledgment); every larger section must take the general dynamic-table path.  Both are
checked on seeded mixes of small and large sections, decoded by our decoder and pylsqpack.
"""

from __future__ import annotations

import random

import pylsqpack
import pytest

from trio_zttp import qpack

Headers = list[tuple[bytes, bytes]]

NAMES = [b":authority", b"content-length", b"x-a", b"user-agent", b"cookie", b"authorization",
         b"date", b":path"]
STATIC = [(b":method", b"GET"), (b":scheme", b"https"), (b":path", b"/"), (b":status", b"200")]


def _outside_static(fields: Headers) -> int:
    return sum(len(n) + len(v) for n, v in fields if (n, v) not in STATIC)


def _section(rng: random.Random) -> Headers:
    fields = [rng.choice(STATIC) for _ in range(rng.randrange(1, 3))]  # pylsqpack: not empty
    for _ in range(rng.randrange(4)):
        size = rng.choice([1, 3, 10, 20, 40, 90])
        fields.append((rng.choice(NAMES), bytes(rng.choice(b"abcxyz0129") for _ in range(size))))
    return fields


@pytest.mark.parametrize("seed", range(40))
def test_literal_sections_match_literal_encoding_and_decode(seed: int) -> None:
    rng = random.Random(seed)
    limit = rng.choice([16, 48, 100])
    encoder = qpack.Encoder(literal_section_size=limit)
    plain = qpack.Encoder()  # a dynamic table too, for the large sections' general path
    tableless = qpack.Encoder()  # settings never applied: no dynamic table, literals only
    decoder = qpack.Decoder(4096, 16)
    ls_decoder = pylsqpack.Decoder(4096, 16)
    for encoder_ in (encoder, plain):
        setup = encoder_.apply_settings(4096, 16)
    decoder.feed_encoder(setup)
    ls_decoder.feed_encoder(setup)
    large_only: list[Headers] = []
    for index in range(30):
        stream_id = index * 4
        fields = _section(rng)
        instructions, section = encoder.encode(stream_id, fields)
        if _outside_static(fields) <= limit:
            assert instructions == b""
            assert section[:2] == b"\x00\x00"  # Required Insert Count 0: nothing to ack
            assert section == tableless.encode(stream_id, fields)[1]
        else:
            large_only.append(fields)
        decoder.feed_encoder(instructions)
        ack, decoded = decoder.feed_header(stream_id, section)
        assert decoded == fields
        ls_decoder.feed_encoder(instructions)
        _, ls_decoded = ls_decoder.feed_header(stream_id, section)
        assert list(ls_decoded) == fields
        encoder.feed_decoder(ack)
    # the large sections alone, through an encoder without the option: the same bytes
    twin = qpack.Encoder(literal_section_size=limit)
    twin.apply_settings(4096, 16)
    twin_decoder = qpack.Decoder(4096, 16)
    twin_decoder.feed_encoder(setup)
    for index, fields in enumerate(large_only):
        expected = plain.encode(index * 4, fields)
        assert twin.encode(index * 4, fields) == expected
        twin_decoder.feed_encoder(expected[0])
        ack, decoded = twin_decoder.feed_header(index * 4, expected[1])
        assert decoded == fields
        plain.feed_decoder(ack)
        twin.feed_decoder(ack)


def test_literal_section_size_zero_is_the_default_policy() -> None:
    fields = [(b":authority", b"example.com"), (b"x-a", b"1")]
    encoder = qpack.Encoder(literal_section_size=0)
    encoder.apply_settings(4096, 16)
    default = qpack.Encoder()
    default.apply_settings(4096, 16)
    for stream_id in (0, 4, 8):
        assert encoder.encode(stream_id, fields) == default.encode(stream_id, fields)


def test_literal_section_size_must_not_be_negative() -> None:
    with pytest.raises(ValueError, match="literal_section_size"):
        qpack.Encoder(literal_section_size=-1)


def test_literal_sections_follow_each_encoders_never_indexed_names() -> None:
    # small sections are shared between encoders of the default policy only: one with other
    # never-indexed names encodes its own way, before and after a default one did
    fields = [(b":status", b"200"), (b"x-secret", b"abc")]
    default = qpack.Encoder(literal_section_size=48)
    default.apply_settings(4096, 16)
    custom = qpack.Encoder(literal_section_size=48, never_indexed_names={b"x-secret"})
    custom.apply_settings(4096, 16)
    plain = default.encode(0, fields)[1]
    secret = custom.encode(0, fields)[1]
    assert plain != secret  # the N bit
    raw = qpack.Encoder(literal_section_size=48, huffman=False)
    raw.apply_settings(4096, 16)
    assert raw.encode(0, fields)[1] == qpack.Encoder(huffman=False).encode(0, fields)[1]
    for encoder, expected in ((default, plain), (custom, secret)):
        assert encoder.encode(4, fields)[1] == expected
        assert qpack.Decoder(4096, 16).feed_header(4, expected)[1] == fields
