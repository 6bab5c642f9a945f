"""Packet-number encoding and decoding (RFC 9000 §17.1, Appendix A.2 and A.3)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from trio_zttp.quic._packet import decode_packet_number, encode_packet_number


def test_packet_number_decode_rfc9000_a3_example() -> None:
    # RFC 9000 §A.3: largest 0xa82f30ea, 16-bit truncated 0x9b32 -> 0xa82f9b32
    assert decode_packet_number(0x9B32, 16, 0xA82F30EA + 1) == 0xA82F9B32


def test_packet_number_encode_rfc9000_17_1_examples() -> None:
    # RFC 9000 §17.1: acked 0xabe8b3, sending 0xac5c02 needs 16 bits; 0xace8fe needs 24 bits
    assert encode_packet_number(0xAC5C02, 0xABE8B3) == (0x5C02, 2)
    assert encode_packet_number(0xACE8FE, 0xABE8B3) == (0xACE8FE, 3)


@given(
    largest=st.integers(min_value=0, max_value=(1 << 62) - (1 << 33)),
    ahead=st.integers(min_value=1, max_value=(1 << 30)),
)
def test_packet_number_round_trip(largest: int, ahead: int) -> None:
    full = largest + ahead
    truncated, length = encode_packet_number(full, largest)
    assert 1 <= length <= 4
    assert decode_packet_number(truncated, 8 * length, largest + 1) == full


@given(st.integers(min_value=0, max_value=(1 << 31) - 1))
def test_packet_number_first_packet_round_trip(full: int) -> None:
    truncated, length = encode_packet_number(full, None)
    assert decode_packet_number(truncated, 8 * length, 0) == full
