"""QUIC packet headers, packet numbers, Version Negotiation and Retry (RFC 9000 §17, RFC 9369).

Everything here works on the unprotected parts of a packet: the invariant fields of RFC 8999
(header form, version, connection IDs) and the version-specific long-header fields (type
bits, token, Length).  Header protection and packet protection live in ``_crypto``; the
first byte's low bits and the packet number stay protected until that module removes the
mask, so the parser only reports where they start (:attr:`Header.pn_offset`).

The parser runs on every received packet.  It indexes the buffer directly, allocates one
:class:`Header` per packet and raises one error type, :class:`MalformedPacketError`, for any
input it cannot accept; the connection drops such packets silently (RFC 9000 §12.2, §17.2).
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterator, Sequence
from typing import Final, final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .._buffer import BufferReadError, decode_varint, encode_varint

__all__ = [
    "MAX_CID_LENGTH",
    "MIN_PROTECTED_LENGTH",
    "QUIC_V1",
    "QUIC_V2",
    "RETRY_INTEGRITY_TAG_LENGTH",
    "SUPPORTED_VERSIONS",
    "Header",
    "MalformedPacketError",
    "PacketType",
    "decode_packet_number",
    "encode_long_header",
    "encode_packet_number",
    "encode_retry",
    "encode_short_header",
    "encode_version_negotiation",
    "is_grease_version",
    "iter_coalesced",
    "long_header_size",
    "parse_header",
    "peek_dcid",
    "retry_integrity_ok",
]

QUIC_V1: Final = 0x00000001
"""QUIC version 1 (RFC 9000)."""
QUIC_V2: Final = 0x6B3343CF
"""QUIC version 2 (RFC 9369 §3.1)."""
SUPPORTED_VERSIONS: Final[tuple[int, ...]] = (QUIC_V1, QUIC_V2)
"""The versions this package speaks, most preferred first."""

MAX_CID_LENGTH: Final = 20
"""Longest connection ID in QUIC v1 and v2 (RFC 9000 §17.2); other versions allow 255."""
RETRY_INTEGRITY_TAG_LENGTH: Final = 16
"""Length of the Retry Integrity Tag (RFC 9001 §5.8)."""
MIN_PROTECTED_LENGTH: Final = 4 + 16
"""Fewest bytes from the packet-number field to the end of a protected packet.

The header-protection sample starts 4 bytes after the packet-number field and is 16 bytes
long; packets too short to contain it MUST be discarded (RFC 9001 §5.4.2).
"""

_U32: Final = struct.Struct("!L")
_LONG_FORM: Final = 0x80
_FIXED_BIT: Final = 0x40


class MalformedPacketError(ValueError):
    """A packet's header cannot be parsed; the receiver drops the packet silently."""


class PacketType(enum.IntEnum):
    """Packet types across header forms (RFC 9000 §17)."""

    INITIAL = 0
    ZERO_RTT = 1
    HANDSHAKE = 2
    RETRY = 3
    VERSION_NEGOTIATION = 4
    ONE_RTT = 5


_INITIAL: Final = PacketType.INITIAL
_RETRY: Final = PacketType.RETRY
_ONE_RTT: Final = PacketType.ONE_RTT
_VERSION_NEGOTIATION: Final = PacketType.VERSION_NEGOTIATION

# Long Packet Type bits (first byte, mask 0x30) to packet type, per version:
# RFC 9000 §17.2 Table 5 and RFC 9369 §3.2.
_LONG_TYPES: Final[dict[int, tuple[PacketType, PacketType, PacketType, PacketType]]] = {
    QUIC_V1: (PacketType.INITIAL, PacketType.ZERO_RTT, PacketType.HANDSHAKE, PacketType.RETRY),
    QUIC_V2: (PacketType.RETRY, PacketType.INITIAL, PacketType.ZERO_RTT, PacketType.HANDSHAKE),
}
_LONG_TYPE_BITS: Final[dict[int, dict[PacketType, int]]] = {
    version: {packet_type: bits for bits, packet_type in enumerate(types)}
    for version, types in _LONG_TYPES.items()
}

# Retry Integrity Tag AEADs (RFC 9001 §5.8, RFC 9369 §3.3.3): fixed key and nonce per
# version, so one AESGCM object each for the life of the process.
_RETRY_AEADS: Final[dict[int, tuple[AESGCM, bytes]]] = {
    QUIC_V1: (
        AESGCM(bytes.fromhex("be0c690b9f66575a1d766b54e368c84e")),
        bytes.fromhex("461599d35d632bf2239825bb"),
    ),
    QUIC_V2: (
        AESGCM(bytes.fromhex("8fb4b01b56ac48e260fbcbcead7ccc92")),
        bytes.fromhex("d86969bc2d7c6d9990efb04a"),
    ),
}

_VARINT_PREFIX: Final = {1: 0x00, 2: 0x40, 4: 0x80, 8: 0xC0}


def is_grease_version(version: int) -> bool:
    """True for the reserved versions ``0x?a?a?a?a`` that exercise negotiation (RFC 9000 §15)."""
    return version & 0x0F0F0F0F == 0x0A0A0A0A


@final
class Header:
    """The unprotected fields of one packet, with absolute offsets into the datagram.

    Attributes:
        packet_type: The packet type, or None for a long header of a version this package
            does not speak (answer it with Version Negotiation).
        version: The version field of a long header; None for a short header.
        first_byte: The first byte as received (its low bits are still header-protected
            for Initial, 0-RTT, Handshake and 1-RTT packets).
        dcid: Destination Connection ID.
        scid: Source Connection ID (empty for short headers).
        token: The Initial token or the Retry token; empty otherwise.
        integrity_tag: The Retry Integrity Tag; empty otherwise.
        supported_versions: The versions listed by a Version Negotiation packet.
        start: Offset of the packet's first byte.
        pn_offset: Offset of the packet-number field.  For packets without one (Version
            Negotiation, Retry, unknown versions) the offset just after the Source
            Connection ID.
        end: Offset just past the packet: ``pn_offset`` + Length for Initial, 0-RTT and
            Handshake packets, the datagram's end for the others.
    """

    __slots__ = (
        "packet_type",
        "version",
        "first_byte",
        "dcid",
        "scid",
        "token",
        "integrity_tag",
        "supported_versions",
        "start",
        "pn_offset",
        "end",
    )

    def __init__(
        self,
        packet_type: PacketType | None,
        version: int | None,
        first_byte: int,
        dcid: bytes,
        scid: bytes,
        token: bytes,
        integrity_tag: bytes,
        supported_versions: tuple[int, ...],
        start: int,
        pn_offset: int,
        end: int,
    ) -> None:
        self.packet_type = packet_type
        self.version = version
        self.first_byte = first_byte
        self.dcid = dcid
        self.scid = scid
        self.token = token
        self.integrity_tag = integrity_tag
        self.supported_versions = supported_versions
        self.start = start
        self.pn_offset = pn_offset
        self.end = end

    @property
    def is_long(self) -> bool:
        """True for a long header."""
        return bool(self.first_byte & _LONG_FORM)

    @property
    def fixed_bit(self) -> bool:
        """The QUIC bit (0x40).

        It is 1 in every valid v1/v2 packet except Version Negotiation; receivers drop
        packets where it is 0 (RFC 9000 §17.2) unless they advertised grease_quic_bit
        (RFC 9287).  The parser reports it and leaves the decision to the receiver.
        """
        return bool(self.first_byte & _FIXED_BIT)

    def __repr__(self) -> str:
        kind = "unknown" if self.packet_type is None else self.packet_type.name
        version = "-" if self.version is None else f"{self.version:#010x}"
        return (
            f"<Header {kind} version={version} dcid={self.dcid.hex()} scid={self.scid.hex()}"
            f" token={len(self.token)}B start={self.start} pn_offset={self.pn_offset}"
            f" end={self.end}>"
        )


def parse_header(
    data: bytes | bytearray | memoryview, pos: int, short_dcid_length: int
) -> Header:
    """Parse the header of the packet that starts at ``data[pos]``.

    Args:
        data: The datagram.
        pos: Offset of the packet's first byte.
        short_dcid_length: Length of our connection IDs, which short headers carry without
            a length byte.

    Raises:
        MalformedPacketError: The header is truncated or invalid: a connection ID longer
            than 20 bytes in v1/v2, a Length past the end of the datagram, a packet too
            short for the header-protection sample, a Retry without a token, a Version
            Negotiation list that is not a whole number of versions.
    """
    if type(data) is not bytes:
        data = bytes(data)  # one copy, then every slice below is already ``bytes``
    n = len(data)
    if pos >= n:
        raise MalformedPacketError("no packet at this offset")
    first = data[pos]
    if not first & _LONG_FORM:
        pn_offset = pos + 1 + short_dcid_length
        if n - pn_offset < MIN_PROTECTED_LENGTH:
            raise MalformedPacketError("short header packet too short")
        return Header(
            _ONE_RTT, None, first, data[pos + 1 : pn_offset], b"", b"", b"", (), pos,
            pn_offset, n,
        )  # fmt: skip

    if n - pos < 7:
        raise MalformedPacketError("long header truncated")
    version: int = _U32.unpack_from(data, pos + 1)[0]
    types = _LONG_TYPES.get(version)
    max_cid = 255 if types is None else MAX_CID_LENGTH
    dcid_length = data[pos + 5]
    p = pos + 6
    q = p + dcid_length
    if dcid_length > max_cid:
        raise MalformedPacketError("destination connection ID longer than 20 bytes")
    if q >= n:
        raise MalformedPacketError("long header truncated in the connection IDs")
    dcid = data[p:q]
    scid_length = data[q]
    p = q + 1
    q = p + scid_length
    if scid_length > max_cid:
        raise MalformedPacketError("source connection ID longer than 20 bytes")
    if q > n:
        raise MalformedPacketError("long header truncated in the connection IDs")
    scid = data[p:q]

    if types is None:
        if version == 0:
            if (n - q) % 4:
                raise MalformedPacketError("version negotiation list not a multiple of 4")
            versions = tuple(v for (v,) in _U32.iter_unpack(data[q:n]))
            return Header(
                _VERSION_NEGOTIATION, 0, first, dcid, scid, b"", b"", versions,
                pos, q, n,
            )  # fmt: skip
        return Header(None, version, first, dcid, scid, b"", b"", (), pos, q, n)

    packet_type = types[(first & 0x30) >> 4]
    if packet_type is _RETRY:
        tag_start = n - RETRY_INTEGRITY_TAG_LENGTH
        if tag_start <= q:
            # Also rejects an empty token: a client MUST discard it (RFC 9000 §17.2.5.2).
            raise MalformedPacketError("retry packet without token or integrity tag")
        return Header(
            packet_type, version, first, dcid, scid, data[q:tag_start], data[tag_start:n], (),
            pos, q, n,
        )  # fmt: skip

    try:
        token = b""
        if packet_type is _INITIAL:
            token_length, q = decode_varint(data, q)
            token_end = q + token_length
            if token_end > n:
                raise MalformedPacketError("token past the end of the datagram")
            token = data[q:token_end]
            q = token_end
        length, q = decode_varint(data, q)
    except BufferReadError:
        raise MalformedPacketError("long header truncated") from None
    end = q + length
    if end > n:
        raise MalformedPacketError("length past the end of the datagram")
    if length < MIN_PROTECTED_LENGTH:
        raise MalformedPacketError("packet too short for the header-protection sample")
    return Header(packet_type, version, first, dcid, scid, token, b"", (), pos, q, end)


def iter_coalesced(
    datagram: bytes | bytearray | memoryview, short_dcid_length: int
) -> Iterator[Header]:
    """Split a datagram into its packets (RFC 9000 §12.2).

    Yields one :class:`Header` per packet, in order.  Stops at the end of the datagram,
    after a packet that extends to the end (short header, Retry, Version Negotiation,
    unknown version), at the first packet that does not parse (which covers trailing
    garbage), and at a packet whose Destination Connection ID differs from the first
    packet's: receivers SHOULD ignore those (RFC 9000 §12.2), and that also stops zero
    padding after an Initial from being read as a short-header packet.
    """
    if type(datagram) is not bytes:
        datagram = bytes(datagram)
    n = len(datagram)
    pos = 0
    first_dcid: bytes | None = None
    while pos < n:
        try:
            header = parse_header(datagram, pos, short_dcid_length)
        except MalformedPacketError:
            return
        if first_dcid is None:
            first_dcid = header.dcid
        elif header.dcid != first_dcid:
            return
        yield header
        pos = header.end


def peek_dcid(
    datagram: bytes | bytearray | memoryview, short_dcid_length: int
) -> tuple[bool, int | None, bytes]:
    """Read just enough of a datagram to route it: ``(is_long, version, dcid)``.

    ``version`` is None for a short header.  Connection IDs of versions other than v1 and
    v2 may be up to 255 bytes long (RFC 8999 §5.1).

    Raises:
        MalformedPacketError: The datagram is empty, truncated in these fields, or a v1/v2
            Destination Connection ID is longer than 20 bytes.
    """
    n = len(datagram)
    if n == 0:
        raise MalformedPacketError("empty datagram")
    if datagram[0] & _LONG_FORM:
        if n < 6:
            raise MalformedPacketError("long header truncated")
        version: int = _U32.unpack_from(datagram, 1)[0]
        dcid_length = datagram[5]
        if dcid_length > MAX_CID_LENGTH and version in _LONG_TYPES:
            raise MalformedPacketError("destination connection ID longer than 20 bytes")
        if 6 + dcid_length > n:
            raise MalformedPacketError("long header truncated in the connection ID")
        return True, version, bytes(datagram[6 : 6 + dcid_length])
    if 1 + short_dcid_length > n:
        raise MalformedPacketError("short header truncated in the connection ID")
    return False, None, bytes(datagram[1 : 1 + short_dcid_length])


def _check_cid(cid: bytes, limit: int = MAX_CID_LENGTH) -> None:
    if len(cid) > limit:
        raise ValueError(f"connection ID of {len(cid)} bytes, at most {limit} allowed")


def _pn_bytes(truncated_pn: int, pn_length: int) -> bytes:
    if not 1 <= pn_length <= 4:
        raise ValueError(f"packet number length {pn_length} not in 1..4")
    if not 0 <= truncated_pn < 1 << (8 * pn_length):
        raise ValueError(f"packet number {truncated_pn} does not fit in {pn_length} bytes")
    return truncated_pn.to_bytes(pn_length, "big")


def _varint_sized(value: int, size: int | None) -> bytes:
    if size is None:
        return encode_varint(value)
    prefix = _VARINT_PREFIX.get(size)
    if prefix is None:
        raise ValueError(f"varint size {size} not in 1, 2, 4, 8")
    if not 0 <= value < 1 << (8 * size - 2):
        raise ValueError(f"{value} does not fit in a {size}-byte varint")
    return (value | prefix << (8 * size - 8)).to_bytes(size, "big")


def _long_type_bits(packet_type: PacketType, version: int) -> int:
    bits = _LONG_TYPE_BITS.get(version)
    if bits is None:
        raise ValueError(f"unsupported version {version:#010x}")
    return bits[packet_type]


def long_header_size(
    packet_type: PacketType,
    *,
    dcid_length: int,
    scid_length: int,
    token_length: int = 0,
    pn_length: int,
    length_size: int,
) -> int:
    """Bytes that :func:`encode_long_header` produces, packet number included.

    With a fixed ``length_size`` (2 covers every datagram up to 16383 bytes), the payload
    that fills a datagram of ``size`` bytes exactly is ``size - long_header_size(...)``
    bytes, AEAD tag included, and the Length field is ``pn_length`` plus that.
    """
    if packet_type not in (PacketType.INITIAL, PacketType.ZERO_RTT, PacketType.HANDSHAKE):
        raise ValueError(f"{packet_type.name} packets have no Length field")
    size = 7 + dcid_length + scid_length + length_size + pn_length
    if packet_type is _INITIAL:
        size += len(encode_varint(token_length)) + token_length
    return size


def encode_long_header(
    packet_type: PacketType,
    version: int,
    dcid: bytes,
    scid: bytes,
    token: bytes,
    length: int,
    truncated_pn: int,
    pn_length: int,
    *,
    length_size: int | None = None,
    fixed_bit: bool = True,
) -> bytes:
    """Build the header of an Initial, 0-RTT or Handshake packet, packet number included.

    The reserved bits are zero and the packet-number length sits in the low two bits of
    the first byte (RFC 9000 §17.2); header protection is applied later.

    Args:
        packet_type: INITIAL, ZERO_RTT or HANDSHAKE.
        version: QUIC_V1 or QUIC_V2.
        dcid: Destination Connection ID (0-20 bytes).
        scid: Source Connection ID (0-20 bytes).
        token: The Initial token; must be empty for other types.
        length: The Length field: ``pn_length`` + payload length + AEAD tag length.
        truncated_pn: The truncated packet number.
        pn_length: Bytes of packet number on the wire (1-4).
        length_size: Encode Length on exactly this many bytes (1, 2, 4, 8) instead of the
            fewest, so that the header size is known before the payload is.
        fixed_bit: Clear it only towards a peer that advertised grease_quic_bit (RFC 9287).
    """
    if packet_type not in (PacketType.INITIAL, PacketType.ZERO_RTT, PacketType.HANDSHAKE):
        raise ValueError(f"{packet_type.name} is not built with encode_long_header")
    if token and packet_type is not _INITIAL:
        raise ValueError("only Initial packets carry a token")
    if length < pn_length:
        raise ValueError("length must count the packet number")
    _check_cid(dcid)
    _check_cid(scid)
    pn = _pn_bytes(truncated_pn, pn_length)
    first = (
        _LONG_FORM
        | (_FIXED_BIT if fixed_bit else 0)
        | _long_type_bits(packet_type, version) << 4
        | (pn_length - 1)
    )
    parts = [
        bytes((first,)),
        _U32.pack(version),
        bytes((len(dcid),)),
        dcid,
        bytes((len(scid),)),
        scid,
    ]
    if packet_type is _INITIAL:
        parts += [encode_varint(len(token)), token]
    parts += [_varint_sized(length, length_size), pn]
    return b"".join(parts)


def encode_short_header(
    dcid: bytes,
    truncated_pn: int,
    pn_length: int,
    key_phase: bool | int,
    spin_bit: bool = False,
    *,
    fixed_bit: bool = True,
) -> bytes:
    """Build a 1-RTT (short) header, packet number included (RFC 9000 §17.3.1).

    Reserved bits are zero; key phase is bit 0x04; the packet-number length is in the low
    two bits.  ``fixed_bit=False`` only towards a peer that advertised grease_quic_bit.
    """
    _check_cid(dcid)
    pn = _pn_bytes(truncated_pn, pn_length)
    first = (
        (_FIXED_BIT if fixed_bit else 0)
        | (0x20 if spin_bit else 0)
        | (0x04 if key_phase else 0)
        | (pn_length - 1)
    )
    return b"".join((bytes((first,)), dcid, pn))


def encode_version_negotiation(
    dcid: bytes, scid: bytes, versions: Sequence[int], first_byte_random: int
) -> bytes:
    """Build a Version Negotiation packet (RFC 9000 §17.2.1).

    Args:
        dcid: The Source Connection ID of the packet being answered.
        scid: The Destination Connection ID of the packet being answered.
        versions: The versions to offer (a reserved GREASE version among them is good
            practice, RFC 9000 §6.3).
        first_byte_random: Random bits for the Unused field.  The 0x40 bit is set anyway
            so the packet looks like QUIC to demultiplexers (RFC 9000 §17.2.1).
    """
    _check_cid(dcid, 255)
    _check_cid(scid, 255)
    first = _LONG_FORM | _FIXED_BIT | (first_byte_random & 0x3F)
    parts = [bytes((first,)), bytes(4), bytes((len(dcid),)), dcid, bytes((len(scid),)), scid]
    parts += [_U32.pack(v) for v in versions]
    return b"".join(parts)


def _retry_aead(version: int) -> tuple[AESGCM, bytes]:
    entry = _RETRY_AEADS.get(version)
    if entry is None:
        raise ValueError(f"unsupported version {version:#010x}")
    return entry


def encode_retry(
    version: int,
    dcid: bytes,
    scid: bytes,
    original_dcid: bytes,
    token: bytes,
    *,
    unused_bits: int = 0,
) -> bytes:
    """Build a Retry packet with its integrity tag (RFC 9000 §17.2.5, RFC 9001 §5.8).

    Args:
        version: QUIC_V1 or QUIC_V2 (the client's version; RFC 9368 §4).
        dcid: The client's Source Connection ID.
        scid: The new connection ID the client must use next; not equal to
            ``original_dcid`` (RFC 9000 §17.2.5.1).
        original_dcid: The Destination Connection ID of the client's Initial, which the tag
            covers but the packet does not carry.
        token: The Retry token (not empty).
        unused_bits: The four Unused bits of the first byte (the RFC examples use 0xF).
    """
    if not token:
        raise ValueError("a Retry token cannot be empty")
    _check_cid(dcid)
    _check_cid(scid)
    _check_cid(original_dcid)
    aead, nonce = _retry_aead(version)
    first = _LONG_FORM | _FIXED_BIT | _long_type_bits(_RETRY, version) << 4 | (unused_bits & 0xF)
    packet = b"".join(
        (bytes((first,)), _U32.pack(version), bytes((len(dcid),)), dcid, bytes((len(scid),)),
         scid, token)
    )  # fmt: skip
    pseudo = b"".join((bytes((len(original_dcid),)), original_dcid, packet))
    return packet + aead.encrypt(nonce, b"", pseudo)


def retry_integrity_ok(
    packet: bytes | bytearray | memoryview, original_dcid: bytes, version: int
) -> bool:
    """Check the Retry Integrity Tag of a whole Retry packet (RFC 9001 §5.8).

    ``packet`` runs from the Retry's first byte to the end of its datagram
    (``data[header.start:header.end]``).  False for an unsupported version, a wrong tag or
    a packet too short to carry one.
    """
    entry = _RETRY_AEADS.get(version)
    if entry is None or len(original_dcid) > 255 or len(packet) <= RETRY_INTEGRITY_TAG_LENGTH:
        return False
    aead, nonce = entry
    packet = bytes(packet)
    pseudo = b"".join(
        (bytes((len(original_dcid),)), original_dcid, packet[:-RETRY_INTEGRITY_TAG_LENGTH])
    )
    try:
        aead.decrypt(nonce, packet[-RETRY_INTEGRITY_TAG_LENGTH:], pseudo)
    except InvalidTag:
        return False
    return True


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
