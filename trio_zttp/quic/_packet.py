"""QUIC packet headers, packet numbers, Version Negotiation and Retry (RFC 9000 §17, RFC 9369).
"""

from __future__ import annotations

__all__ = ["decode_packet_number", "encode_packet_number"]


def encode_packet_number(full_pn: int, largest_acked: int | None) -> tuple[int, int]:
    """Truncate ``full_pn`` for the wire (RFC 9000 §A.2); return ``(truncated, length)``.

    The length (1-4 bytes) is enough to represent more than twice the number of packets in
    flight since ``largest_acked`` (None when nothing has been acknowledged yet).
    """
    num_unacked = full_pn + 1 if largest_acked is None else full_pn - largest_acked
    min_bits = (2 * num_unacked - 1).bit_length()
    length = max(1, (min_bits + 7) // 8)
    if length > 4:
        raise ValueError("too many packets in flight to encode the packet number")
    return full_pn & ((1 << (8 * length)) - 1), length


def decode_packet_number(truncated_pn: int, pn_nbits: int, expected_pn: int) -> int:
    """Recover the full packet number (RFC 9000 §A.3).

    ``expected_pn`` is the largest packet number received so far in the space plus one.
    """
    pn_win = 1 << pn_nbits
    pn_hwin = pn_win // 2
    pn_mask = pn_win - 1
    candidate = (expected_pn & ~pn_mask) | truncated_pn
    if candidate <= expected_pn - pn_hwin and candidate < (1 << 62) - pn_win:
        return candidate + pn_win
    if candidate > expected_pn + pn_hwin and candidate >= pn_win:
        return candidate - pn_win
    return candidate
