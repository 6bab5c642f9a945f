"""Packet headers, Version Negotiation and Retry (RFC 9000 §17, RFC 9001 §5.8, RFC 9369 §3)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given
from hypothesis import strategies as st

from tests.shared_vectors import shared_vectors
from trio_zttp._buffer import decode_varint
from trio_zttp._tls.suites import hkdf_expand_label
from trio_zttp.quic._packet import (
    MAX_CID_LENGTH,
    MIN_PROTECTED_LENGTH,
    QUIC_V1,
    QUIC_V2,
    SUPPORTED_VERSIONS,
    Header,
    MalformedPacketError,
    PacketType,
    encode_long_header,
    encode_retry,
    encode_short_header,
    encode_version_negotiation,
    is_grease_version,
    iter_coalesced,
    long_header_size,
    parse_header,
    peek_dcid,
    retry_integrity_ok,
)

VECTORS = Path(__file__).resolve().parent.parent / "vectors"
RETRY_VECTORS: list[dict[str, Any]] = json.loads(
    (VECTORS / "retry" / "retry.json").read_text()
)["vectors"]
RETRY_SECRETS: list[dict[str, Any]] = json.loads(
    (VECTORS / "retry" / "retry.json").read_text()
)["integrity_secrets"]
CAPTURES = shared_vectors("quic-initials", "captures.json")

LENGTH_TYPES = (PacketType.INITIAL, PacketType.ZERO_RTT, PacketType.HANDSHAKE)
# RFC 9000 §17.2 Table 5 and RFC 9369 §3.2: Long Packet Type bits per version.
TYPE_BITS = {
    QUIC_V1: {PacketType.INITIAL: 0, PacketType.ZERO_RTT: 1, PacketType.HANDSHAKE: 2,
              PacketType.RETRY: 3},
    QUIC_V2: {PacketType.INITIAL: 1, PacketType.ZERO_RTT: 2, PacketType.HANDSHAKE: 3,
              PacketType.RETRY: 0},
}  # fmt: skip

# RFC 9001 A.3 and RFC 9369 A.3: the protected server Initial (whole packet).
RFC9001_A3_SERVER_INITIAL = bytes.fromhex(
    "cf000000010008f067a5502a4262b5004075c0d95a482cd0991cd25b0aac406a"
    "5816b6394100f37a1c69797554780bb38cc5a99f5ede4cf73c3ec2493a1839b3"
    "dbcba3f6ea46c5b7684df3548e7ddeb9c3bf9c73cc3f3bded74b562bfb19fb84"
    "022f8ef4cdd93795d77d06edbb7aaf2f58891850abbdca3d20398c276456cbc4"
    "2158407dd074ee"
)
RFC9369_A3_SERVER_INITIAL = bytes.fromhex(
    "dc6b3343cf0008f067a5502a4262b5004075d92faaf16f05d8a4398c47089698"
    "baeea26b91eb761d9b89237bbf87263017915358230035f7fd3945d88965cf17"
    "f9af6e16886c61bfc703106fbaf3cb4cfa52382dd16a393e42757507698075b2"
    "c984c707f0a0812d8cd5a6881eaf21ceda98f4bd23f6fe1a3e2c43edd9ce7ca8"
    "4bed8521e2e140"
)
# RFC 9001 A.5 and RFC 9369 A.5: the smallest possible short-header packet, empty DCID.
RFC9001_A5_SHORT = bytes.fromhex("4cfe4189655e5cd55c41f69080575d7999c25a5bfb")
RFC9369_A5_SHORT = bytes.fromhex("5558b1c60ae7b6b932bc27d786f4bc2bb20f2162ba")
ODCID = bytes.fromhex("8394c8f03e515708")
SERVER_CID = bytes.fromhex("f067a5502a4262b5")

cids = st.binary(min_size=0, max_size=MAX_CID_LENGTH)
versions = st.sampled_from(SUPPORTED_VERSIONS)


def long_packet(
    packet_type: PacketType,
    version: int,
    dcid: bytes,
    scid: bytes,
    token: bytes = b"",
    payload_length: int = 40,
    pn: int = 7,
    pn_length: int = 2,
    fill: int = 0xAB,
) -> bytes:
    """A whole long-header packet with a dummy payload (stands in for ciphertext + tag)."""
    header = encode_long_header(
        packet_type, version, dcid, scid, token, pn_length + payload_length, pn, pn_length
    )
    return header + bytes([fill]) * payload_length


# --- versions and packet types ----------------------------------------------------------


def test_versions_values_from_rfc() -> None:
    assert QUIC_V1 == 1
    assert QUIC_V2 == int.from_bytes(bytes.fromhex("6b3343cf"), "big")
    assert set(SUPPORTED_VERSIONS) == {QUIC_V1, QUIC_V2}


@pytest.mark.parametrize("version", [0x0A0A0A0A, 0x1A2A3A4A, 0xFAFAFAFA, 0xBABABABA])
def test_is_grease_version_reserved(version: int) -> None:
    assert is_grease_version(version)


@pytest.mark.parametrize(
    "version", [0, QUIC_V1, QUIC_V2, 0x0A0A0A0B, 0x0A0A0AA0, 0xAAAAAAAB, 0xFF00001D]
)
def test_is_grease_version_ordinary(version: int) -> None:
    assert not is_grease_version(version)


@given(st.lists(st.integers(0, 15), min_size=4, max_size=4))
def test_is_grease_version_any_high_nibbles(nibbles: list[int]) -> None:
    version = int.from_bytes(bytes((n << 4) | 0xA for n in nibbles), "big")
    assert is_grease_version(version)
    assert not is_grease_version(version ^ 0x00000100)


@pytest.mark.parametrize("version", SUPPORTED_VERSIONS)
@pytest.mark.parametrize("packet_type", LENGTH_TYPES)
def test_long_header_type_bits_per_version(version: int, packet_type: PacketType) -> None:
    header = encode_long_header(packet_type, version, b"\x01", b"", b"", 21, 0, 1)
    assert (header[0] & 0x30) >> 4 == TYPE_BITS[version][packet_type]
    assert header[0] & 0xC0 == 0xC0
    assert header[0] & 0x0C == 0  # reserved bits


@pytest.mark.parametrize("version", SUPPORTED_VERSIONS)
def test_retry_type_bits_per_version(version: int) -> None:
    packet = encode_retry(version, b"", b"\x02", b"\x03", b"tok")
    assert (packet[0] & 0x30) >> 4 == TYPE_BITS[version][PacketType.RETRY]
    assert parse_header(packet, 0, 0).packet_type is PacketType.RETRY


# --- RFC 9001 / RFC 9369 Appendix A headers ----------------------------------------------


@pytest.mark.parametrize(
    ("version", "client_header", "server_header"),
    [
        (QUIC_V1, "c300000001088394c8f03e5157080000449e00000002",
         "c1000000010008f067a5502a4262b50040750001"),
        (QUIC_V2, "d36b3343cf088394c8f03e5157080000449e00000002",
         "d16b3343cf0008f067a5502a4262b50040750001"),
    ],
)  # fmt: skip
def test_encode_long_header_rfc_appendix_a_headers(
    version: int, client_header: str, server_header: str
) -> None:
    # A.2: client Initial, pn 2 on 4 bytes, Length 1182 on 2 bytes; A.3: server Initial.
    client = encode_long_header(
        PacketType.INITIAL, version, ODCID, b"", b"", 1182, 2, 4, length_size=2
    )
    assert client.hex() == client_header
    server = encode_long_header(
        PacketType.INITIAL, version, b"", SERVER_CID, b"", 0x75, 1, 2, length_size=2
    )
    assert server.hex() == server_header


@pytest.mark.parametrize(
    ("version", "packet"),
    [(QUIC_V1, RFC9001_A3_SERVER_INITIAL), (QUIC_V2, RFC9369_A3_SERVER_INITIAL)],
)
def test_parse_header_rfc_protected_server_initial(version: int, packet: bytes) -> None:
    header = parse_header(packet, 0, 8)
    assert header.packet_type is PacketType.INITIAL
    assert header.version == version
    assert header.dcid == b""
    assert header.scid == SERVER_CID
    assert header.token == b""
    assert header.start == 0
    assert header.pn_offset == 18  # "sample ... starting from the third protected byte"
    assert header.end == len(packet) == 18 + 0x75
    assert header.fixed_bit and header.is_long


@pytest.mark.parametrize("packet", [RFC9001_A5_SHORT, RFC9369_A5_SHORT])
def test_parse_header_rfc_smallest_short_packet(packet: bytes) -> None:
    header = parse_header(packet, 0, 0)
    assert header.packet_type is PacketType.ONE_RTT
    assert header.version is None
    assert header.dcid == b"" and header.scid == b""
    assert (header.pn_offset, header.end) == (1, 21)
    assert not header.is_long
    with pytest.raises(MalformedPacketError):  # 21 bytes is the minimum (RFC 9000 §10.3)
        parse_header(packet[:-1], 0, 0)


def test_encode_short_header_rfc9001_a5_unprotected() -> None:
    # RFC 9001 A.5: packet number 654360564 encoded on 3 bytes (49140), key phase 0.
    assert encode_short_header(b"", 654360564 & 0xFFFFFF, 3, False).hex() == "4200bff4"


# --- Retry --------------------------------------------------------------------------------


@pytest.mark.parametrize("vector", RETRY_VECTORS, ids=lambda v: v["name"])
def test_retry_vector_parses(vector: dict[str, Any]) -> None:
    packet = bytes.fromhex(vector["packet"])
    fields = vector["fields"]
    header = parse_header(packet, 0, 8)
    assert header.packet_type is PacketType.RETRY
    assert header.version == int(vector["version"], 16)
    assert header.dcid.hex() == fields["dcid"]
    assert header.scid.hex() == fields["scid"]
    assert header.token.hex() == fields["token"]
    assert header.integrity_tag.hex() == fields["integrity_tag"]
    assert header.first_byte & 0x0F == fields["unused_bits"]
    assert header.end == len(packet)


@pytest.mark.parametrize("vector", RETRY_VECTORS, ids=lambda v: v["name"])
def test_retry_vector_encodes_byte_for_byte(vector: dict[str, Any]) -> None:
    fields = vector["fields"]
    packet = encode_retry(
        int(vector["version"], 16),
        bytes.fromhex(fields["dcid"]),
        bytes.fromhex(fields["scid"]),
        bytes.fromhex(vector["original_dcid"]),
        bytes.fromhex(fields["token"]),
        unused_bits=fields["unused_bits"],
    )
    assert packet.hex() == vector["packet"]


@pytest.mark.parametrize("vector", RETRY_VECTORS, ids=lambda v: v["name"])
def test_retry_vector_integrity(vector: dict[str, Any]) -> None:
    packet = bytes.fromhex(vector["packet"])
    odcid = bytes.fromhex(vector["original_dcid"])
    version = int(vector["version"], 16)
    other = QUIC_V2 if version == QUIC_V1 else QUIC_V1
    assert retry_integrity_ok(packet, odcid, version)
    assert retry_integrity_ok(memoryview(packet), odcid, version)
    assert not retry_integrity_ok(packet, odcid, other)
    assert not retry_integrity_ok(packet, odcid[:-1], version)
    assert not retry_integrity_ok(packet, b"\x00" + odcid[1:], version)
    assert not retry_integrity_ok(packet, odcid, 0x0A0A0A0A)
    for i in range(len(packet)):
        corrupted = bytearray(packet)
        corrupted[i] ^= 0x01
        assert not retry_integrity_ok(bytes(corrupted), odcid, version), i
    assert not retry_integrity_ok(packet[:16], odcid, version)


@pytest.mark.parametrize("secret", RETRY_SECRETS, ids=lambda s: s["source"])
def test_retry_integrity_keys_derive_from_published_secret(secret: dict[str, Any]) -> None:
    prk = bytes.fromhex(secret["secret"])
    key = hkdf_expand_label("sha256", prk, secret["key_label"].encode(), b"", 16)
    nonce = hkdf_expand_label("sha256", prk, secret["nonce_label"].encode(), b"", 12)
    assert key.hex() == secret["key"]
    assert nonce.hex() == secret["nonce"]
    # Recompute the tag of the matching Appendix A.4 packet with the derived key.
    version = int(secret["version"], 16)
    (vector,) = [v for v in RETRY_VECTORS if int(v["version"], 16) == version]
    packet = bytes.fromhex(vector["packet"])
    odcid = bytes.fromhex(vector["original_dcid"])
    pseudo = bytes((len(odcid),)) + odcid + packet[:-16]
    assert AESGCM(key).encrypt(nonce, b"", pseudo) == packet[-16:]


@given(
    version=versions, dcid=cids, scid=cids, odcid=cids,
    token=st.binary(min_size=1, max_size=80), unused=st.integers(0, 15),
)  # fmt: skip
def test_retry_round_trip(
    version: int, dcid: bytes, scid: bytes, odcid: bytes, token: bytes, unused: int
) -> None:
    packet = encode_retry(version, dcid, scid, odcid, token, unused_bits=unused)
    header = parse_header(packet, 0, 5)
    assert header.packet_type is PacketType.RETRY
    assert (header.version, header.dcid, header.scid, header.token) == (
        version, dcid, scid, token)  # fmt: skip
    assert header.first_byte & 0x0F == unused
    assert header.integrity_tag == packet[-16:]
    assert retry_integrity_ok(packet[header.start : header.end], odcid, version)
    assert not retry_integrity_ok(packet, odcid + b"\x00", version)


def test_retry_empty_token_rejected() -> None:
    with pytest.raises(ValueError):
        encode_retry(QUIC_V1, b"", SERVER_CID, ODCID, b"")
    # A client MUST discard a Retry with an empty token (RFC 9000 §17.2.5.2).
    vector = bytes.fromhex(RETRY_VECTORS[0]["packet"])
    without_token = vector[:15] + vector[-16:]
    with pytest.raises(MalformedPacketError):
        parse_header(without_token, 0, 8)


def test_retry_truncation_never_validates() -> None:
    packet = bytes.fromhex(RETRY_VECTORS[0]["packet"])
    for cut in range(len(packet)):
        prefix = packet[:cut]
        try:
            header = parse_header(prefix, 0, 8)
        except MalformedPacketError:
            assert cut <= 15 + 16, cut  # header fields, then token (>= 1) and tag
            continue
        assert header.packet_type is PacketType.RETRY
        assert not retry_integrity_ok(prefix, ODCID, QUIC_V1)


# --- long header round trips and errors -------------------------------------------------


@given(
    packet_type=st.sampled_from(LENGTH_TYPES), version=versions, dcid=cids, scid=cids,
    token=st.binary(max_size=100), pn_length=st.integers(1, 4), data=st.data(),
    payload_length=st.integers(MIN_PROTECTED_LENGTH, 20000), length_size=st.sampled_from(
        [None, 2, 4, 8]), fixed_bit=st.booleans(), prefix=st.binary(max_size=3),
)  # fmt: skip
def test_long_header_round_trip(
    packet_type: PacketType, version: int, dcid: bytes, scid: bytes, token: bytes,
    pn_length: int, data: st.DataObject, payload_length: int, length_size: int | None,
    fixed_bit: bool, prefix: bytes,
) -> None:  # fmt: skip
    if packet_type is not PacketType.INITIAL:
        token = b""
    pn = data.draw(st.integers(0, (1 << (8 * pn_length)) - 1))
    length = payload_length  # the Length field: packet number + protected payload
    if length_size == 2 and length >= 1 << 14:
        length_size = 4
    header_bytes = encode_long_header(
        packet_type, version, dcid, scid, token, length, pn, pn_length,
        length_size=length_size, fixed_bit=fixed_bit,
    )  # fmt: skip
    body = bytes(range(256)) * (payload_length // 256 + 1)
    packet = prefix + header_bytes + body[: length - pn_length]
    header = parse_header(packet, len(prefix), 8)
    assert header.packet_type is packet_type
    assert header.version == version
    assert (header.dcid, header.scid, header.token) == (dcid, scid, token)
    assert header.fixed_bit is fixed_bit
    assert header.start == len(prefix)
    assert header.pn_offset == len(prefix) + len(header_bytes) - pn_length
    assert header.end == len(packet)
    assert int.from_bytes(packet[header.pn_offset : header.pn_offset + pn_length], "big") == pn
    assert header.first_byte & 0x03 == pn_length - 1
    if length_size is not None:
        size = long_header_size(
            packet_type, dcid_length=len(dcid), scid_length=len(scid),
            token_length=len(token), pn_length=pn_length, length_size=length_size,
        )  # fmt: skip
        assert size == len(header_bytes)
    # The same bytes through a memoryview and a bytearray give the same header.
    for view in (memoryview(packet), bytearray(packet)):
        again = parse_header(view, len(prefix), 8)
        assert (again.dcid, again.scid, again.token, again.end) == (dcid, scid, token, header.end)
        assert type(again.dcid) is bytes


def test_long_header_size_fills_datagram_exactly() -> None:
    dcid, scid, token = b"\x11" * 8, b"\x22" * 5, b"t" * 33
    size = long_header_size(
        PacketType.INITIAL, dcid_length=8, scid_length=5, token_length=33, pn_length=2,
        length_size=2,
    )  # fmt: skip
    payload = 1200 - size  # ciphertext incl. the AEAD tag
    header = encode_long_header(
        PacketType.INITIAL, QUIC_V1, dcid, scid, token, 2 + payload, 0, 2, length_size=2
    )
    datagram = header + bytes(payload)
    assert len(datagram) == 1200
    assert parse_header(datagram, 0, 8).end == 1200


@pytest.mark.parametrize("packet_type", [PacketType.RETRY, PacketType.ONE_RTT,
                                         PacketType.VERSION_NEGOTIATION])
def test_encode_long_header_rejects_types_without_length(packet_type: PacketType) -> None:
    with pytest.raises(ValueError):
        encode_long_header(packet_type, QUIC_V1, b"", b"", b"", 30, 0, 1)
    with pytest.raises(ValueError):
        long_header_size(packet_type, dcid_length=0, scid_length=0, pn_length=1, length_size=2)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"token": b"x", "packet_type": PacketType.HANDSHAKE},
        {"dcid": b"\x00" * 21},
        {"scid": b"\x00" * 21},
        {"pn_length": 0},
        {"pn_length": 5},
        {"truncated_pn": 256, "pn_length": 1},
        {"truncated_pn": -1},
        {"version": 0x0A0A0A0A},
        {"length": 0},
        {"length": 1 << 14, "length_size": 2},
        {"length_size": 3},
    ],
)
def test_encode_long_header_rejects_bad_arguments(kwargs: dict[str, Any]) -> None:
    args: dict[str, Any] = {
        "packet_type": PacketType.INITIAL, "version": QUIC_V1, "dcid": b"", "scid": b"",
        "token": b"", "length": 30, "truncated_pn": 0, "pn_length": 1,
    }  # fmt: skip
    args.update(kwargs)
    with pytest.raises(ValueError):
        encode_long_header(**args)


@pytest.mark.parametrize("packet_type", LENGTH_TYPES)
@pytest.mark.parametrize("version", SUPPORTED_VERSIONS)
def test_long_header_truncated_at_every_byte(packet_type: PacketType, version: int) -> None:
    token = b"retry-token" if packet_type is PacketType.INITIAL else b""
    packet = long_packet(packet_type, version, b"\x01" * 8, b"\x02" * 6, token)
    assert parse_header(packet, 0, 8).end == len(packet)
    for cut in range(len(packet)):
        with pytest.raises(MalformedPacketError):
            parse_header(packet[:cut], 0, 8)
        with pytest.raises(MalformedPacketError):
            parse_header(memoryview(packet)[:cut], 0, 8)


@pytest.mark.parametrize("field", ["dcid", "scid"])
@pytest.mark.parametrize("version", SUPPORTED_VERSIONS)
def test_long_header_cid_over_20_is_malformed(field: str, version: int) -> None:
    cid21 = b"\x07" * 21
    dcid, scid = (cid21, b"") if field == "dcid" else (b"", cid21)
    raw = (
        bytes((0xC0,)) + version.to_bytes(4, "big") + bytes((len(dcid),)) + dcid
        + bytes((len(scid),)) + scid + b"\x00\x40\x20" + bytes(32)
    )  # fmt: skip
    with pytest.raises(MalformedPacketError):
        parse_header(raw, 0, 8)
    if field == "dcid":
        with pytest.raises(MalformedPacketError):
            peek_dcid(raw, 8)


def test_long_header_length_past_datagram_is_malformed() -> None:
    packet = long_packet(PacketType.HANDSHAKE, QUIC_V1, b"\x01" * 8, b"", payload_length=50)
    with pytest.raises(MalformedPacketError):
        parse_header(packet[:-1], 0, 8)
    # Length shorter than the datagram: the packet ends at Length, the rest is left over.
    header = parse_header(packet + b"\x00" * 10, 0, 8)
    assert header.end == len(packet)


def test_long_header_too_short_for_sample_is_malformed() -> None:
    # Length covers pn + payload; below 20 there is no room for the 16-byte sample at pn+4.
    ok = encode_long_header(PacketType.HANDSHAKE, QUIC_V1, b"", b"", b"", 20, 0, 1)
    assert parse_header(ok + bytes(19), 0, 0).end == len(ok) + 19
    short = encode_long_header(PacketType.HANDSHAKE, QUIC_V1, b"", b"", b"", 19, 0, 1)
    with pytest.raises(MalformedPacketError):
        parse_header(short + bytes(18), 0, 0)


def test_long_header_token_past_datagram_is_malformed() -> None:
    raw = bytes.fromhex("c000000001") + b"\x00\x00" + b"\x44\x00" + bytes(100)
    with pytest.raises(MalformedPacketError):
        parse_header(raw, 0, 0)


def test_long_header_fixed_bit_zero_is_reported_not_rejected() -> None:
    packet = long_packet(PacketType.HANDSHAKE, QUIC_V2, b"\x01" * 4, b"\x02")
    cleared = bytes((packet[0] & ~0x40,)) + packet[1:]
    header = parse_header(cleared, 0, 4)
    assert header.packet_type is PacketType.HANDSHAKE
    assert not header.fixed_bit
    assert parse_header(packet, 0, 4).fixed_bit


@pytest.mark.parametrize("version", [0x0A1A2A3A, 0xFF00001D, 0x00000002])
def test_unknown_version_header_for_version_negotiation(version: int) -> None:
    dcid, scid = b"\xd0" * 200, b"\x5c" * 255  # other versions may use up to 255 bytes
    raw = (
        b"\xc3" + version.to_bytes(4, "big") + bytes((len(dcid),)) + dcid
        + bytes((len(scid),)) + scid + b"opaque"
    )  # fmt: skip
    header = parse_header(raw, 0, 8)
    assert header.packet_type is None
    assert header.version == version
    assert (header.dcid, header.scid) == (dcid, scid)
    assert header.end == len(raw)
    assert peek_dcid(raw, 8) == (True, version, dcid)
    assert [h.version for h in iter_coalesced(raw, 8)] == [version]
    with pytest.raises(MalformedPacketError):
        parse_header(raw[: 6 + len(dcid)], 0, 8)


@given(st.binary(max_size=120), st.integers(0, 20))
def test_parse_header_garbage_raises_only_malformed(data: bytes, short_dcid_length: int) -> None:
    for pos in (0, 1):
        try:
            header = parse_header(data, pos, short_dcid_length)
        except MalformedPacketError:
            continue
        assert pos <= header.start < header.pn_offset <= header.end <= len(data)
    headers = list(iter_coalesced(data, short_dcid_length))
    assert all(a.end == b.start for a, b in zip(headers, headers[1:], strict=False))
    try:
        peek_dcid(data, short_dcid_length)
    except MalformedPacketError:
        pass


def test_parse_header_empty_and_offset_past_end() -> None:
    with pytest.raises(MalformedPacketError):
        parse_header(b"", 0, 8)
    with pytest.raises(MalformedPacketError):
        parse_header(RFC9001_A5_SHORT, len(RFC9001_A5_SHORT), 0)
    with pytest.raises(MalformedPacketError):
        peek_dcid(b"", 8)


# --- short header -------------------------------------------------------------------------


@given(
    dcid=cids, pn_length=st.integers(1, 4), data=st.data(), key_phase=st.booleans(),
    spin=st.booleans(), body_length=st.integers(MIN_PROTECTED_LENGTH, 300),
)  # fmt: skip
def test_short_header_round_trip(
    dcid: bytes, pn_length: int, data: st.DataObject, key_phase: bool, spin: bool,
    body_length: int,
) -> None:  # fmt: skip
    pn = data.draw(st.integers(0, (1 << (8 * pn_length)) - 1))
    header_bytes = encode_short_header(dcid, pn, pn_length, key_phase, spin)
    assert len(header_bytes) == 1 + len(dcid) + pn_length
    first = header_bytes[0]
    assert first & 0x80 == 0 and first & 0x40
    assert bool(first & 0x20) is spin and bool(first & 0x04) is key_phase
    assert first & 0x18 == 0  # reserved bits
    assert first & 0x03 == pn_length - 1
    packet = header_bytes + bytes(body_length - pn_length)
    header = parse_header(packet, 0, len(dcid))
    assert header.packet_type is PacketType.ONE_RTT
    assert header.dcid == dcid
    assert header.pn_offset == 1 + len(dcid)
    assert header.end == len(packet)
    assert int.from_bytes(packet[header.pn_offset : header.pn_offset + pn_length], "big") == pn
    assert peek_dcid(packet, len(dcid)) == (False, None, dcid)


def test_short_header_truncated_at_every_byte() -> None:
    dcid = b"\x33" * 8
    packet = encode_short_header(dcid, 1, 1, False) + bytes(19)
    assert len(packet) == 1 + 8 + MIN_PROTECTED_LENGTH
    for cut in range(len(packet)):
        with pytest.raises(MalformedPacketError):
            parse_header(packet[:cut], 0, 8)
    for cut in range(1 + 8):
        with pytest.raises(MalformedPacketError):
            peek_dcid(packet[:cut], 8)


def test_short_header_fixed_bit_zero_reported() -> None:
    packet = encode_short_header(b"\x01\x02", 0, 1, True, fixed_bit=False) + bytes(19)
    header = parse_header(packet, 0, 2)
    assert header.packet_type is PacketType.ONE_RTT and not header.fixed_bit


def test_encode_short_header_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError):
        encode_short_header(b"\x00" * 21, 0, 1, False)
    with pytest.raises(ValueError):
        encode_short_header(b"", 0x10000, 2, False)
    with pytest.raises(ValueError):
        encode_short_header(b"", 0, 0, False)


# --- Version Negotiation ------------------------------------------------------------------


@given(
    dcid=st.binary(max_size=255), scid=st.binary(max_size=255),
    offered=st.lists(st.integers(1, 0xFFFFFFFF), max_size=10), random_byte=st.integers(0, 255),
)  # fmt: skip
def test_version_negotiation_round_trip(
    dcid: bytes, scid: bytes, offered: list[int], random_byte: int
) -> None:
    packet = encode_version_negotiation(dcid, scid, offered, random_byte)
    assert packet[0] & 0xC0 == 0xC0  # long form, and 0x40 set for demultiplexers
    assert packet[0] & 0x3F == random_byte & 0x3F
    assert packet[1:5] == bytes(4)
    header = parse_header(packet, 0, 8)
    assert header.packet_type is PacketType.VERSION_NEGOTIATION
    assert header.version == 0
    assert (header.dcid, header.scid) == (dcid, scid)
    assert header.supported_versions == tuple(offered)
    assert header.end == len(packet)
    assert peek_dcid(packet, 8) == (True, 0, dcid)


def test_version_negotiation_truncation() -> None:
    packet = encode_version_negotiation(b"\x01" * 8, b"\x02" * 8, [QUIC_V1, QUIC_V2], 0x5A)
    fixed = 7 + 16
    for cut in range(len(packet)):
        if cut >= fixed and (cut - fixed) % 4 == 0:
            # A whole number of versions: a shorter but well-formed list.
            assert parse_header(packet[:cut], 0, 8).supported_versions == (
                (QUIC_V1, QUIC_V2)[: (cut - fixed) // 4])  # fmt: skip
            continue
        with pytest.raises(MalformedPacketError):
            parse_header(packet[:cut], 0, 8)


def test_version_negotiation_fixed_bit_may_be_zero() -> None:
    packet = bytearray(encode_version_negotiation(b"\x01", b"", [QUIC_V1], 0))
    packet[0] = 0x80
    header = parse_header(bytes(packet), 0, 8)
    assert header.packet_type is PacketType.VERSION_NEGOTIATION and not header.fixed_bit


# --- coalescing -----------------------------------------------------------------------------


def coalesced_flight(version: int) -> tuple[bytes, list[tuple[PacketType, int, int]]]:
    dcid, scid = b"\xaa" * 8, b"\xbb" * 4
    initial = long_packet(PacketType.INITIAL, version, dcid, scid, b"tok", payload_length=300)
    handshake = long_packet(PacketType.HANDSHAKE, version, dcid, scid, payload_length=60)
    one_rtt = encode_short_header(dcid, 5, 1, False) + bytes(40)
    datagram = initial + handshake + one_rtt
    a, b = len(initial), len(initial) + len(handshake)
    spans = [(PacketType.INITIAL, 0, a), (PacketType.HANDSHAKE, a, b),
             (PacketType.ONE_RTT, b, len(datagram))]  # fmt: skip
    return datagram, spans


@pytest.mark.parametrize("version", SUPPORTED_VERSIONS)
def test_iter_coalesced_initial_handshake_one_rtt(version: int) -> None:
    datagram, spans = coalesced_flight(version)
    headers = list(iter_coalesced(datagram, 8))
    assert [(h.packet_type, h.start, h.end) for h in headers] == spans
    assert all(h.dcid == b"\xaa" * 8 for h in headers)
    # first byte, version, DCID length + DCID, SCID length + SCID, Length 62 on 1 byte
    assert headers[1].pn_offset == spans[1][1] + 1 + 4 + 1 + 8 + 1 + 4 + 1


def test_iter_coalesced_stops_after_short_header() -> None:
    datagram, spans = coalesced_flight(QUIC_V1)
    one_rtt_start = spans[2][1]
    # Bytes after a short-header packet belong to it: nothing is parsed past it.
    tail = datagram[one_rtt_start:] + long_packet(PacketType.HANDSHAKE, QUIC_V1, b"\xaa" * 8, b"")
    headers = list(iter_coalesced(tail, 8))
    assert len(headers) == 1 and headers[0].end == len(tail)


@pytest.mark.parametrize("garbage", [b"\x00" * 700, b"\xff", b"\xc0\x00\x00", b"\x40" * 9])
def test_iter_coalesced_trailing_garbage(garbage: bytes) -> None:
    datagram, spans = coalesced_flight(QUIC_V2)
    two = datagram[: spans[1][2]]
    headers = list(iter_coalesced(two + garbage, 8))
    assert [(h.packet_type, h.start, h.end) for h in headers] == spans[:2]


def test_iter_coalesced_stops_at_truncated_packet() -> None:
    datagram, spans = coalesced_flight(QUIC_V1)
    cut = datagram[: spans[1][2] - 1]  # Handshake packet loses its last byte
    headers = list(iter_coalesced(cut, 8))
    assert [h.packet_type for h in headers] == [PacketType.INITIAL]


def test_iter_coalesced_stops_at_other_dcid() -> None:
    first = long_packet(PacketType.INITIAL, QUIC_V1, b"\x01" * 8, b"\x02", payload_length=30)
    second = long_packet(PacketType.HANDSHAKE, QUIC_V1, b"\x09" * 8, b"\x02")
    assert [h.packet_type for h in iter_coalesced(first + second, 8)] == [PacketType.INITIAL]


def test_iter_coalesced_empty_and_malformed_first() -> None:
    assert list(iter_coalesced(b"", 8)) == []
    assert list(iter_coalesced(b"\xc0\x00", 8)) == []


# --- real client Initials -----------------------------------------------------------------


def load_captures() -> list[dict[str, Any]]:
    if not CAPTURES.exists():
        pytest.fail(f"{CAPTURES} is missing")
    result: list[dict[str, Any]] = json.loads(CAPTURES.read_text())
    return result


def test_real_client_initials_headers() -> None:
    captures = load_captures()
    datagrams = 0
    for capture in captures:
        for raw, note in zip(capture["datagrams_hex"], capture["datagram_notes"], strict=True):
            datagram = bytes.fromhex(raw)
            assert len(datagram) == note["length"]
            headers = list(iter_coalesced(datagram, 8))
            first = headers[0]
            assert first.packet_type is PacketType.INITIAL, capture["id"]
            assert first.version == int(note["version"], 16)
            assert first.dcid.hex() == capture["dcid_hex"]
            assert len(first.dcid) == note["dcid_length"]
            assert len(first.scid) == note["scid_length"]
            assert len(first.token) == note["token_length"]
            assert first.end - first.start == note["first_packet_length"]
            assert peek_dcid(datagram, 8) == (True, first.version, first.dcid)
            after = note.get("after_first_packet") or {}
            if "0-RTT" in after.get("kind", ""):
                assert [h.packet_type for h in headers] == [PacketType.INITIAL,
                                                            PacketType.ZERO_RTT]
                # "after" counts the 0-RTT packet and the zero padding behind it.
                assert headers[1].start == first.end
                assert first.end + after["length"] == len(datagram)
                assert set(datagram[headers[1].end :]) <= {0}
                assert headers[1].scid == first.scid
            else:
                # Zero padding after the packet is not read as another packet.
                assert len(headers) == 1
            datagrams += 1
    assert datagrams >= 160


def _peer_client_datagrams(module: str) -> tuple[Any, list[bytes]]:
    if module == "aioquic":
        from aioquic.quic.configuration import QuicConfiguration
        from aioquic.quic.connection import QuicConnection
    else:
        from qh3.quic.configuration import QuicConfiguration
        from qh3.quic.connection import QuicConnection
    connection = QuicConnection(configuration=QuicConfiguration(is_client=True))
    connection.connect(("127.0.0.1", 4433), now=0.0)
    return connection, [data for data, _ in connection.datagrams_to_send(0.0)]


@pytest.mark.parametrize("module", ["aioquic", "qh3"])
def test_peer_client_initial_headers(module: str) -> None:
    connection, datagrams = _peer_client_datagrams(module)
    assert datagrams
    for datagram in datagrams:
        headers = list(iter_coalesced(datagram, 8))
        assert headers, module
        first = headers[0]
        assert first.packet_type is PacketType.INITIAL
        assert first.version == QUIC_V1
        assert first.dcid == connection.original_destination_connection_id
        assert first.scid == connection.host_cid
        assert first.token == b""
        assert first.fixed_bit
        assert first.end <= len(datagram)
        assert peek_dcid(datagram, 8) == (True, QUIC_V1, first.dcid)


def _peer_packet_module(module: str) -> Any:
    if module == "aioquic":
        import aioquic.quic.packet as packet_module
    else:
        import qh3.quic.packet as packet_module
    return packet_module


def _peer_buffer(module: str, data: bytes) -> Any:
    if module == "aioquic":
        from aioquic.buffer import Buffer
    else:
        from qh3._hazmat import Buffer
    return Buffer(data=data)


@pytest.mark.parametrize("module", ["aioquic", "qh3"])
@pytest.mark.parametrize("version", SUPPORTED_VERSIONS)
def test_peer_parses_our_long_headers(module: str, version: int) -> None:
    peer = _peer_packet_module(module)
    datagram, spans = coalesced_flight(version)
    names = {PacketType.INITIAL: "INITIAL", PacketType.HANDSHAKE: "HANDSHAKE",
             PacketType.ONE_RTT: "ONE_RTT"}  # fmt: skip
    for packet_type, start, end in spans:
        packet = datagram[start:end]
        theirs = peer.pull_quic_header(_peer_buffer(module, packet), host_cid_length=8)
        assert theirs.packet_type.name == names[packet_type]
        assert theirs.destination_cid == b"\xaa" * 8
        assert theirs.packet_length == end - start
        if packet_type is not PacketType.ONE_RTT:
            assert theirs.version == version
            assert theirs.source_cid == b"\xbb" * 4
        if packet_type is PacketType.INITIAL:
            assert theirs.token == b"tok"


@pytest.mark.parametrize("module", ["aioquic", "qh3"])
@pytest.mark.parametrize("version", SUPPORTED_VERSIONS)
def test_retry_interop_with_peer(module: str, version: int) -> None:
    peer = _peer_packet_module(module)
    dcid, scid, odcid, token = b"\x01" * 8, b"\x02" * 8, b"\x03" * 8, b"a token" * 3
    theirs = peer.encode_quic_retry(
        version=version, source_cid=scid, destination_cid=dcid,
        original_destination_cid=odcid, retry_token=token,
    )  # fmt: skip
    header = parse_header(theirs, 0, 8)
    assert header.packet_type is PacketType.RETRY
    assert (header.dcid, header.scid, header.token) == (dcid, scid, token)
    assert retry_integrity_ok(theirs, odcid, version)
    ours = encode_retry(version, dcid, scid, odcid, token)
    assert ours == theirs
    their_header = peer.pull_quic_header(_peer_buffer(module, ours), host_cid_length=8)
    assert their_header.packet_type.name == "RETRY"
    assert their_header.token == token
    assert their_header.integrity_tag == peer.get_retry_integrity_tag(
        ours[:-16], odcid, version=version)  # fmt: skip


@pytest.mark.parametrize("module", ["aioquic", "qh3"])
def test_version_negotiation_interop_with_peer(module: str) -> None:
    peer = _peer_packet_module(module)
    offered = [QUIC_V1, QUIC_V2, 0x1A2A3A4A]
    theirs = peer.encode_quic_version_negotiation(
        source_cid=b"\x05" * 3, destination_cid=b"\x06" * 9, supported_versions=offered
    )
    header = parse_header(theirs, 0, 8)
    assert header.packet_type is PacketType.VERSION_NEGOTIATION
    assert (header.dcid, header.scid) == (b"\x06" * 9, b"\x05" * 3)
    assert header.supported_versions == tuple(offered)
    ours = encode_version_negotiation(b"\x06" * 9, b"\x05" * 3, offered, 0x3C)
    their_header = peer.pull_quic_header(_peer_buffer(module, ours), host_cid_length=8)
    assert their_header.packet_type.name == "VERSION_NEGOTIATION"
    assert list(their_header.supported_versions) == offered
    assert their_header.destination_cid == b"\x06" * 9


def test_header_repr_names_type() -> None:
    header = parse_header(RFC9001_A3_SERVER_INITIAL, 0, 8)
    assert isinstance(header, Header)
    assert "INITIAL" in repr(header) and "f067a5502a4262b5" in repr(header)
    assert decode_varint(RFC9001_A3_SERVER_INITIAL, 16) == (0x75, 18)
