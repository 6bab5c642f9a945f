"""Huffman code (RFC 7541 Appendix B, §5.2): vectors, round trips, and every decoding error."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.qpack.qpack_support import load_json
from trio_zttp.qpack._errors import EncodingError
from trio_zttp.qpack._huffman import (
    HUFFMAN_CODES,
    huffman_decode,
    huffman_encode,
    huffman_encoded_length,
)

VECTORS = load_json("rfc7541.json")


@pytest.mark.parametrize("vector", VECTORS["huffman"], ids=lambda v: v["text"][:20])
def test_huffman_rfc7541_examples_encode(vector: dict[str, str]) -> None:
    assert huffman_encode(vector["text"].encode()).hex() == vector["hex"]


@pytest.mark.parametrize("vector", VECTORS["huffman"], ids=lambda v: v["text"][:20])
def test_huffman_rfc7541_examples_decode(vector: dict[str, str]) -> None:
    assert huffman_decode(bytes.fromhex(vector["hex"])) == vector["text"].encode()


def test_huffman_table_rows_match_rfc_sample() -> None:
    for symbol, code, bits in VECTORS["huffman_codes_spot_check"]["rows"]:
        assert HUFFMAN_CODES[symbol] == (int(code, 16), bits)


def test_huffman_table_is_a_complete_prefix_code() -> None:
    assert len(HUFFMAN_CODES) == 257
    # Kraft equality: every bit sequence is the prefix of exactly one code
    assert sum(Fraction(1, 1 << bits) for _, bits in HUFFMAN_CODES) == 1
    words = sorted(format(code, f"0{bits}b") for code, bits in HUFFMAN_CODES)
    for shorter, longer in zip(words, words[1:], strict=False):
        assert not longer.startswith(shorter)
    assert HUFFMAN_CODES[256] == ((1 << 30) - 1, 30)  # EOS is 30 ones


@pytest.mark.parametrize("symbol", range(256))
def test_huffman_every_symbol_round_trips(symbol: int) -> None:
    data = bytes([symbol]) * 3
    assert huffman_decode(huffman_encode(data)) == data
    code, bits = HUFFMAN_CODES[symbol]
    assert huffman_encoded_length(data) == (3 * bits + 7) // 8


@given(st.binary(max_size=300))
def test_huffman_round_trip(data: bytes) -> None:
    encoded = huffman_encode(data)
    assert len(encoded) == huffman_encoded_length(data)
    assert huffman_decode(encoded) == data


@given(st.binary(max_size=64))
def test_huffman_decode_accepts_only_canonical_input(data: bytes) -> None:
    # whatever decodes must be exactly what the encoder produces for the result: padding is
    # short and all ones, so accepted input has a single form
    try:
        decoded = huffman_decode(data)
    except EncodingError:
        return
    assert huffman_encode(decoded) == data


def _bits_to_bytes(bits: str) -> bytes:
    assert len(bits) % 8 == 0
    return int(bits, 2).to_bytes(len(bits) // 8, "big") if bits else b""


def test_huffman_decode_rejects_eos_symbol() -> None:
    # EOS (30 ones) then 2 ones of padding
    with pytest.raises(EncodingError, match="EOS"):
        huffman_decode(b"\xff\xff\xff\xff")
    # 'a' (00011), then EOS, then padding
    bits = "00011" + "1" * 30
    bits += "1" * (-len(bits) % 8)
    with pytest.raises(EncodingError, match="EOS"):
        huffman_decode(_bits_to_bytes(bits))


def test_huffman_decode_rejects_padding_over_seven_bits() -> None:
    valid = huffman_encode(b"abc")
    assert huffman_decode(valid) == b"abc"
    with pytest.raises(EncodingError, match="longer than 7"):
        huffman_decode(valid + b"\xff")


def test_huffman_decode_rejects_padding_not_all_ones() -> None:
    # 'a' is 00011: padded with 000 instead of 111
    assert huffman_decode(_bits_to_bytes("00011111")) == b"a"
    for padding in ("000", "011", "101", "110"):
        with pytest.raises(EncodingError, match="not a prefix of EOS"):
            huffman_decode(_bits_to_bytes("00011" + padding))


def test_huffman_decode_rejects_truncated_code() -> None:
    # the first 16 bits of the 19-bit code of backslash end mid-code, off the EOS path
    code, bits = HUFFMAN_CODES[ord("\\")]
    assert bits == 19
    first = format(code, f"0{bits}b")[:16]
    with pytest.raises(EncodingError, match="not a prefix of EOS"):
        huffman_decode(_bits_to_bytes(first))
    # and 8 bits of a code that are all ones are over-long padding
    code, bits = HUFFMAN_CODES[0]
    assert format(code, f"0{bits}b")[:8] == "11111111"
    with pytest.raises(EncodingError, match="longer than 7"):
        huffman_decode(b"\xff")


def test_huffman_empty() -> None:
    assert huffman_encode(b"") == b""
    assert huffman_decode(b"") == b""
    assert huffman_encoded_length(b"") == 0


def test_huffman_long_strings_bypass_cache_and_still_round_trip() -> None:
    data = bytes(range(256)) * 20
    assert huffman_decode(huffman_encode(data)) == data
