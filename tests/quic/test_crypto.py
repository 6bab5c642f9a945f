"""QUIC packet protection (RFC 9001 §5, §6; RFC 9369 §3.3) against the RFC vectors and aioquic."""

from __future__ import annotations

import hmac
import json
from pathlib import Path
from typing import Any

import pytest
from aioquic.quic.crypto import CryptoContext, CryptoPair
from aioquic.tls import CipherSuite as AioquicCipherSuite
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given
from hypothesis import strategies as st

from trio_zttp._buffer import decode_varint
from trio_zttp._tls.suites import CipherSuite
from trio_zttp.quic._crypto import (
    CONFIDENTIALITY_LIMITS,
    INITIAL_SALTS,
    INTEGRITY_LIMITS,
    QUIC_VERSION_1,
    QUIC_VERSION_2,
    DecryptionError,
    HeaderProtection,
    PacketOpener,
    PacketSealer,
    derive_initial_keys,
    initial_secrets,
    packet_protection_keys,
)
from trio_zttp.quic._errors import QuicError
from trio_zttp.quic._packet import decode_packet_number

VECTORS = Path(__file__).resolve().parent.parent / "vectors"
RFC_VECTORS = {
    "rfc9001": json.loads((VECTORS / "rfc9001" / "packet_protection.json").read_text()),
    "rfc9369": json.loads((VECTORS / "rfc9369" / "packet_protection.json").read_text()),
}
rfc_vectors = pytest.mark.parametrize("vectors", list(RFC_VECTORS.values()),
                                      ids=list(RFC_VECTORS))
ALL_SUITES = list(CipherSuite)
VERSIONS = [QUIC_VERSION_1, QUIC_VERSION_2]
AIOQUIC_SUITES = {suite: AioquicCipherSuite(int(suite)) for suite in CipherSuite}
SHORT_DCID = bytes.fromhex("c0ffee0123456789")


def h(text: str) -> bytes:
    return bytes.fromhex(text)


def pn_offset_of(packet: bytes | memoryview, short_dcid_length: int = len(SHORT_DCID)) -> int:
    """Packet Number offset from the header bytes (RFC 9000 §17.2, §17.3), test-local."""
    if not packet[0] & 0x80:
        return 1 + short_dcid_length
    pos = 5
    pos += 1 + packet[pos]  # DCID
    pos += 1 + packet[pos]  # SCID
    if (packet[0] & 0x30) >> 4 == initial_type(int.from_bytes(packet[1:5], "big")):
        token_length, pos = decode_varint(packet, pos)
        pos += token_length
    _, pos = decode_varint(packet, pos)  # Length
    return pos


def initial_type(version: int) -> int:
    # RFC 9000 §17.2: Initial is 0b00 in v1; RFC 9369 §3.2: 0b01 in v2 (Handshake 0b10 / 0b11)
    return 1 if version == QUIC_VERSION_2 else 0


def expand_label(hash_name: str, secret: bytes, label: bytes, length: int) -> bytes:
    """HKDF-Expand-Label written out here, independent of the code under test."""
    full_label = b"tls13 " + label
    info = length.to_bytes(2, "big") + bytes([len(full_label)]) + full_label + b"\x00"
    output, block = b"", b""
    for counter in range(1, 256):
        block = hmac.new(secret, block + info + bytes([counter]), hash_name).digest()
        output += block
        if len(output) >= length:
            break
    return output[:length]


def short_header(pn_length: int, packet_number: int, key_phase: int = 0) -> bytes:
    first = 0x40 | (key_phase << 2) | (pn_length - 1)
    truncated = packet_number & ((1 << (8 * pn_length)) - 1)
    return bytes([first]) + SHORT_DCID + truncated.to_bytes(pn_length, "big")


def long_header(version: int, pn_length: int, packet_number: int, payload_length: int,
                initial: bool = False) -> bytes:
    """A Handshake (or Initial, empty token) header with a 2-byte Length (RFC 9000 §17.2)."""
    packet_type = initial_type(version) + (0 if initial else 2)
    length = pn_length + payload_length + 16
    truncated = packet_number & ((1 << (8 * pn_length)) - 1)
    return (bytes([0xC0 | (packet_type << 4) | (pn_length - 1)]) + version.to_bytes(4, "big")
            + b"\x04dcid\x04scid" + (b"\x00" if initial else b"")
            + (0x4000 | length).to_bytes(2, "big") + truncated.to_bytes(pn_length, "big"))


def secret_for(suite: CipherSuite) -> bytes:
    return bytes(range(48 if suite == CipherSuite.AES_256_GCM_SHA384 else 32))


# --- RFC 9001 / RFC 9369 Appendix A -------------------------------------------------------


@rfc_vectors
def test_crypto_hkdf_labels_helper_matches_rfc(vectors: dict[str, Any]) -> None:
    # the test's own HKDF-Expand-Label must build the HkdfLabel the RFC shows, or it proves nothing
    for label, expected in vectors["hkdf_labels"].items():
        length = {"key": 16, "iv": 12, "hp": 16}.get(label.split()[-1], 32)
        full = b"tls13 " + label.encode()
        assert (length.to_bytes(2, "big") + bytes([len(full)]) + full + b"\x00").hex() == expected


@rfc_vectors
def test_crypto_initial_secrets_match_rfc(vectors: dict[str, Any]) -> None:
    client, server = initial_secrets(vectors["version"], h(vectors["dcid"]))
    assert client.hex() == vectors["client"]["secret"]
    assert server.hex() == vectors["server"]["secret"]
    initial = hmac.new(INITIAL_SALTS[vectors["version"]], h(vectors["dcid"]), "sha256").digest()
    assert initial.hex() == vectors["initial_secret"]


@rfc_vectors
@pytest.mark.parametrize("side", ["client", "server"])
def test_crypto_initial_keys_match_rfc(vectors: dict[str, Any], side: str) -> None:
    key, iv, hp = packet_protection_keys(vectors["version"], CipherSuite.AES_128_GCM_SHA256,
                                         h(vectors[side]["secret"]))
    assert (key.hex(), iv.hex(), hp.hex()) == (
        vectors[side]["key"], vectors[side]["iv"], vectors[side]["hp"])


@rfc_vectors
@pytest.mark.parametrize("which", ["client_initial", "server_initial"])
def test_crypto_initial_mask_matches_rfc(vectors: dict[str, Any], which: str) -> None:
    side = "client" if which == "client_initial" else "server"
    protection = HeaderProtection(CipherSuite.AES_128_GCM_SHA256, h(vectors[side]["hp"]))
    assert protection.mask(h(vectors[which]["sample"])).hex() == vectors[which]["mask"]


def initial_payload(vectors: dict[str, Any], which: str) -> bytes:
    sample = vectors[which]
    if which == "client_initial":
        return h(sample["crypto_frame"]).ljust(sample["payload_length"], b"\x00")
    return h(sample["payload"])


@rfc_vectors
@pytest.mark.parametrize("which", ["client_initial", "server_initial"])
def test_crypto_seal_initial_matches_rfc(vectors: dict[str, Any], which: str) -> None:
    sample = vectors[which]
    sealer, _ = derive_initial_keys(vectors["version"], h(vectors["dcid"]),
                                    is_client=which == "client_initial")
    packet = sealer.seal(h(sample["header"]), initial_payload(vectors, which),
                         sample["packet_number"])
    assert packet.hex() == sample["packet"]
    assert packet[:len(h(sample["protected_header"]))].hex() == sample["protected_header"]
    assert sealer.packets_sealed == 1


@rfc_vectors
@pytest.mark.parametrize("which", ["client_initial", "server_initial"])
def test_crypto_open_initial_matches_rfc(vectors: dict[str, Any], which: str) -> None:
    sample = vectors[which]
    packet = h(sample["packet"])
    # the peer of the sender opens it
    _, opener = derive_initial_keys(vectors["version"], h(vectors["dcid"]),
                                    is_client=which != "client_initial")
    first, packet_number, header, payload = opener.open(packet, pn_offset_of(packet), 0)
    assert header.hex() == sample["header"]
    assert first == header[0]
    assert packet_number == sample["packet_number"]
    assert payload == initial_payload(vectors, which)


@rfc_vectors
def test_crypto_chacha20_short_header_keys_match_rfc(vectors: dict[str, Any]) -> None:
    sample = vectors["chacha20_short_header"]
    key, iv, hp = packet_protection_keys(vectors["version"],
                                         CipherSuite.CHACHA20_POLY1305_SHA256, h(sample["secret"]))
    assert (key.hex(), iv.hex(), hp.hex()) == (sample["key"], sample["iv"], sample["hp"])
    protection = HeaderProtection(CipherSuite.CHACHA20_POLY1305_SHA256, hp)
    assert protection.mask(h(sample["sample"])).hex() == sample["mask"]


@rfc_vectors
def test_crypto_chacha20_short_header_seal_and_open_match_rfc(vectors: dict[str, Any]) -> None:
    sample = vectors["chacha20_short_header"]
    suite = CipherSuite.CHACHA20_POLY1305_SHA256
    sealer = PacketSealer(vectors["version"], suite, h(sample["secret"]))
    packet = sealer.seal(h(sample["header"]), h(sample["payload"]), sample["packet_number"])
    assert packet.hex() == sample["packet"]
    assert packet[4:].hex() == sample["ciphertext"]

    opener = PacketOpener(vectors["version"], suite, h(sample["secret"]))
    # empty DCID: the packet number starts right after the first byte
    first, packet_number, header, payload = opener.open(packet, 1, sample["packet_number"] - 7)
    assert (first, packet_number) == (0x42, sample["packet_number"])
    assert header.hex() == sample["header"]
    assert payload.hex() == sample["payload"]


@rfc_vectors
def test_crypto_key_update_secret_matches_rfc(vectors: dict[str, Any]) -> None:
    sample = vectors["chacha20_short_header"]
    suite = CipherSuite.CHACHA20_POLY1305_SHA256
    label = b"quicv2 ku" if vectors["version"] == QUIC_VERSION_2 else b"quic ku"
    # the RFC's "ku" value, re-derived here without the code under test
    assert expand_label("sha256", h(sample["secret"]), label, 32).hex() == sample["ku"]
    sealer = PacketSealer(vectors["version"], suite, h(sample["secret"]))
    opener = PacketOpener(vectors["version"], suite, h(sample["secret"]))
    assert sealer.next_generation().secret.hex() == sample["ku"]
    assert opener.next_generation().secret.hex() == sample["ku"]
    assert sealer.next_generation().next_generation().secret == expand_label(
        "sha256", h(sample["ku"]), label, 32)


# --- key updates --------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("suite", ALL_SUITES)
def test_crypto_next_generation_uses_ku_secret_and_keeps_hp(
    version: int, suite: CipherSuite
) -> None:
    hash_name = "sha384" if suite == CipherSuite.AES_256_GCM_SHA384 else "sha256"
    label = b"quicv2 ku" if version == QUIC_VERSION_2 else b"quic ku"
    secret = secret_for(suite)
    next_secret = expand_label(hash_name, secret, label, len(secret))
    sealer = PacketSealer(version, suite, secret)
    sealer.seal(short_header(2, 1), bytes(40), 1)
    updated = sealer.next_generation()
    assert updated.key_phase == 1 and updated.next_generation().key_phase == 0
    assert updated.header_protection is sealer.header_protection
    assert updated.packets_sealed == 0 and sealer.packets_sealed == 1
    # a packet sealed by the next generation carries the old HP key but the new AEAD key:
    # an opener built from the independently derived secret plus the old HP key opens it
    packet = updated.seal(short_header(2, 7, key_phase=1), b"\x01" * 30, 7)
    independent = PacketOpener(version, suite, next_secret,
                               header_protection=HeaderProtection(
                                   suite, packet_protection_keys(version, suite, secret)[2]))
    assert independent.open(packet, 9, 7)[3] == b"\x01" * 30
    with pytest.raises(DecryptionError):
        PacketOpener(version, suite, secret).open(packet, 9, 7)


@pytest.mark.parametrize("suite", ALL_SUITES)
def test_crypto_key_phase_bit_selects_generation(suite: CipherSuite) -> None:
    secret = secret_for(suite)
    sealer = PacketSealer(QUIC_VERSION_1, suite, secret).next_generation()
    current = PacketOpener(QUIC_VERSION_1, suite, secret)
    following = current.next_generation()
    packet = sealer.seal(short_header(2, 300, key_phase=sealer.key_phase), b"\x01" * 20, 300)

    first, truncated, pn_length, header = current.remove_header_protection(packet, 9)
    assert (first & 0x04) >> 2 == 1 == following.key_phase
    assert (truncated, pn_length) == (300, 2)
    assert following.decrypt(packet, header, 300) == b"\x01" * 20
    with pytest.raises(DecryptionError):
        current.decrypt(packet, header, 300)
    assert current.decryption_failures == 1 and following.decryption_failures == 0


# --- round trips --------------------------------------------------------------------------


@given(
    suite=st.sampled_from(ALL_SUITES),
    version=st.sampled_from(VERSIONS),
    long=st.booleans(),
    pn_length=st.integers(1, 4),
    largest=st.integers(0, (1 << 40)),
    ahead=st.integers(1, 1000),
    payload=st.binary(min_size=3, max_size=300),
)
def test_crypto_round_trip(suite: CipherSuite, version: int, long: bool, pn_length: int,
                           largest: int, ahead: int, payload: bytes) -> None:
    packet_number = largest + ahead
    if (1 << (8 * pn_length - 1)) <= ahead:  # RFC 9000 §17.1: the encoding must be unambiguous
        pn_length = 4
    secret = secret_for(suite)
    header = (long_header(version, pn_length, packet_number, len(payload)) if long
              else short_header(pn_length, packet_number))
    packet = PacketSealer(version, suite, secret).seal(header, payload, packet_number)
    assert len(packet) == len(header) + len(payload) + 16
    first, number, plain_header, plain = PacketOpener(version, suite, secret).open(
        packet, pn_offset_of(packet), largest + 1)
    assert (first, number, plain_header, plain) == (header[0], packet_number, header, payload)


@given(
    suite=st.sampled_from(ALL_SUITES),
    long=st.booleans(),
    pn_length=st.integers(1, 4),
    largest=st.integers(0, (1 << 40)),
    ahead=st.integers(-100, 1000),
)
def test_crypto_unprotect_header_equals_removal_and_decoding(
        suite: CipherSuite, long: bool, pn_length: int, largest: int, ahead: int) -> None:
    packet_number = max(0, largest + ahead)
    secret = secret_for(suite)
    header = (long_header(QUIC_VERSION_1, pn_length, packet_number, 40) if long
              else short_header(pn_length, packet_number))
    packet = PacketSealer(QUIC_VERSION_1, suite, secret).seal(header, bytes(40), packet_number)
    opener = PacketOpener(QUIC_VERSION_1, suite, secret)
    pn_offset = pn_offset_of(packet)
    first, truncated, length, plain = opener.remove_header_protection(packet, pn_offset)
    expected = decode_packet_number(truncated, 8 * length, largest + 1)
    assert opener.unprotect_header(packet, pn_offset, largest + 1) == (first, expected, plain)


@pytest.mark.parametrize("is_client", [True, False])
@pytest.mark.parametrize("version", VERSIONS)
def test_crypto_initial_keys_pair_up(version: int, is_client: bool) -> None:
    dcid = bytes.fromhex("0001020304050607")
    sealer, _ = derive_initial_keys(version, dcid, is_client)
    _, peer_opener = derive_initial_keys(version, dcid, not is_client)
    own_opener = derive_initial_keys(version, dcid, is_client)[1]
    header = long_header(version, 4, 0, 1200, initial=True)
    packet = sealer.seal(header, bytes(1200), 0)
    assert pn_offset_of(packet) == len(header) - 4
    assert peer_opener.open(packet, len(header) - 4, 0)[3] == bytes(1200)
    with pytest.raises(DecryptionError):
        own_opener.open(packet, len(header) - 4, 0)


def test_crypto_open_accepts_memoryview_of_coalesced_datagram() -> None:
    suite = CipherSuite.CHACHA20_POLY1305_SHA256
    sealer = PacketSealer(QUIC_VERSION_1, suite, secret_for(suite))
    opener = PacketOpener(QUIC_VERSION_1, suite, secret_for(suite))
    first = sealer.seal(long_header(QUIC_VERSION_1, 2, 5, 50), bytes(50), 5)
    second = sealer.seal(short_header(2, 6), b"\x01" * 25, 6)
    datagram = memoryview(first + second)
    assert opener.open(datagram[:len(first)], pn_offset_of(first), 5)[3] == bytes(50)
    assert opener.open(datagram[len(first):], 9, 6)[3] == b"\x01" * 25


@pytest.mark.parametrize("suite", ALL_SUITES)
def test_crypto_seal_accepts_bytearray_and_memoryview(suite: CipherSuite) -> None:
    sealer = PacketSealer(QUIC_VERSION_1, suite, secret_for(suite))
    twin = PacketSealer(QUIC_VERSION_1, suite, secret_for(suite))
    header, payload = short_header(4, 9), bytes(range(64))
    assert sealer.seal(bytearray(header), memoryview(payload), 9) == twin.seal(header, payload, 9)


# --- failures -----------------------------------------------------------------------------


@pytest.mark.parametrize("suite", ALL_SUITES)
@pytest.mark.parametrize("long", [False, True])
def test_crypto_any_flipped_byte_raises_decryption_error(suite: CipherSuite, long: bool) -> None:
    secret = secret_for(suite)
    header = long_header(QUIC_VERSION_1, 2, 77, 24) if long else short_header(2, 77)
    packet = PacketSealer(QUIC_VERSION_1, suite, secret).seal(header, bytes(range(24)), 77)
    pn_offset = pn_offset_of(packet)
    opener = PacketOpener(QUIC_VERSION_1, suite, secret)
    assert opener.open(packet, pn_offset, 77)[3] == bytes(range(24))
    for index in range(len(packet)):
        for flip in (0x01, 0x80):
            tampered = bytearray(packet)
            tampered[index] ^= flip
            with pytest.raises(DecryptionError):
                opener.open(bytes(tampered), pn_offset, 77)
    assert opener.decryption_failures == 2 * len(packet)


@pytest.mark.parametrize("suite", ALL_SUITES)
@pytest.mark.parametrize("long", [False, True])
def test_crypto_truncated_packet_raises_decryption_error(suite: CipherSuite, long: bool) -> None:
    secret = secret_for(suite)
    header = long_header(QUIC_VERSION_2, 1, 3, 30) if long else short_header(1, 3)
    packet = PacketSealer(QUIC_VERSION_2, suite, secret).seal(header, bytes(30), 3)
    pn_offset = pn_offset_of(packet)
    opener = PacketOpener(QUIC_VERSION_2, suite, secret)
    for end in range(len(packet)):
        for truncated in (packet[:end], memoryview(packet)[:end]):
            with pytest.raises(DecryptionError):
                opener.open(truncated, pn_offset, 3)
    # the reused header-protection context is intact afterwards
    assert opener.open(packet, pn_offset, 3)[3] == bytes(30)


def test_crypto_rfc_client_initial_truncated_at_every_byte() -> None:
    vectors = RFC_VECTORS["rfc9001"]
    packet = h(vectors["client_initial"]["packet"])
    _, opener = derive_initial_keys(QUIC_VERSION_1, h(vectors["dcid"]), is_client=False)
    for end in range(len(packet)):
        with pytest.raises(DecryptionError):
            opener.open(packet[:end], 18, 0)


@pytest.mark.parametrize("pn_offset", [-5, 0])
def test_crypto_bad_pn_offset_raises_decryption_error(pn_offset: int) -> None:
    suite = CipherSuite.AES_128_GCM_SHA256
    with pytest.raises(DecryptionError):
        PacketOpener(QUIC_VERSION_1, suite, secret_for(suite)).open(bytes(100), pn_offset, 0)


@pytest.mark.parametrize("suite", ALL_SUITES)
def test_crypto_seal_rejects_payload_too_short_to_sample(suite: CipherSuite) -> None:
    sealer = PacketSealer(QUIC_VERSION_1, suite, secret_for(suite))
    twin = PacketSealer(QUIC_VERSION_1, suite, secret_for(suite))
    with pytest.raises(ValueError, match="too short"):
        sealer.seal(short_header(1, 1), b"\x01\x01", 1)
    assert sealer.packets_sealed == 0
    # 4 - pn_length bytes is enough, and the header-protection context is not disturbed
    assert sealer.seal(short_header(1, 1), b"\x01" * 3, 1) == twin.seal(
        short_header(1, 1), b"\x01" * 3, 1)


def test_crypto_unknown_version_raises_quic_error() -> None:
    with pytest.raises(QuicError):
        initial_secrets(0xFF00001D, b"12345678")
    with pytest.raises(QuicError):
        PacketSealer(0x0A0A0A0A, CipherSuite.AES_128_GCM_SHA256, bytes(32))


def test_crypto_header_protection_rejects_bad_lengths() -> None:
    with pytest.raises(ValueError):
        HeaderProtection(CipherSuite.AES_128_GCM_SHA256, bytes(32))
    protection = HeaderProtection(CipherSuite.AES_128_GCM_SHA256, bytes(16))
    with pytest.raises(ValueError):
        protection.mask(bytes(15))


# --- reused cipher contexts equal fresh ones ---------------------------------------------


@given(key=st.binary(min_size=32, max_size=32),
       samples=st.lists(st.binary(min_size=16, max_size=16), min_size=1, max_size=8))
def test_crypto_chacha20_mask_reused_context_equals_fresh(key: bytes, samples: list[bytes]) -> None:
    protection = HeaderProtection(CipherSuite.CHACHA20_POLY1305_SHA256, key)
    for sample in samples:
        fresh = Cipher(algorithms.ChaCha20(key, sample), mode=None).encryptor().update(bytes(5))
        assert protection.mask(sample) == fresh
        assert protection.mask(memoryview(bytearray(sample))) == fresh


@given(suite=st.sampled_from([CipherSuite.AES_128_GCM_SHA256, CipherSuite.AES_256_GCM_SHA384]),
       key=st.binary(min_size=32, max_size=32),
       samples=st.lists(st.binary(min_size=16, max_size=16), min_size=1, max_size=8))
def test_crypto_aes_mask_reused_context_equals_fresh(
    suite: CipherSuite, key: bytes, samples: list[bytes]
) -> None:
    key = key[:16] if suite == CipherSuite.AES_128_GCM_SHA256 else key
    protection = HeaderProtection(suite, key)
    for sample in samples:
        fresh = Cipher(algorithms.AES(key), modes.ECB()).encryptor().update(sample)[:5]
        assert protection.mask(sample) == fresh


# --- AEAD limits ---------------------------------------------------------------------------


@pytest.mark.parametrize(("suite", "confidentiality", "integrity"), [
    (CipherSuite.AES_128_GCM_SHA256, 1 << 23, 1 << 52),
    (CipherSuite.AES_256_GCM_SHA384, 1 << 23, 1 << 52),
    (CipherSuite.CHACHA20_POLY1305_SHA256, 1 << 62, 1 << 36),
])
def test_crypto_aead_limits_per_suite(suite: CipherSuite, confidentiality: int,
                                      integrity: int) -> None:
    # RFC 9001 §6.6
    assert CONFIDENTIALITY_LIMITS[suite] == confidentiality
    assert INTEGRITY_LIMITS[suite] == integrity
    assert PacketSealer(QUIC_VERSION_1, suite, secret_for(suite)).confidentiality_limit == (
        confidentiality)
    assert PacketOpener(QUIC_VERSION_1, suite, secret_for(suite)).integrity_limit == integrity


def test_crypto_counts_sealed_packets_and_failures() -> None:
    suite = CipherSuite.AES_128_GCM_SHA256
    sealer = PacketSealer(QUIC_VERSION_1, suite, secret_for(suite))
    opener = PacketOpener(QUIC_VERSION_1, suite, secret_for(suite))
    packets = [sealer.seal(short_header(2, pn), bytes(20), pn) for pn in range(5)]
    assert sealer.packets_sealed == 5
    for pn, packet in enumerate(packets):
        opener.open(packet, 9, pn)
    with pytest.raises(DecryptionError):
        opener.open(packets[0][:-1] + bytes([packets[0][-1] ^ 1]), 9, 0)
    with pytest.raises(DecryptionError):  # too short: not an authentication failure
        opener.open(packets[0][:20], 9, 0)
    assert opener.decryption_failures == 1


# --- interop with aioquic -----------------------------------------------------------------


def aioquic_context(version: int, suite: CipherSuite, secret: bytes) -> CryptoContext:
    context = CryptoContext()
    context.setup(cipher_suite=AIOQUIC_SUITES[suite], secret=secret, version=version)
    return context


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("suite", ALL_SUITES)
@pytest.mark.parametrize("long", [False, True])
def test_crypto_interop_aioquic_opens_our_packets(version: int, suite: CipherSuite,
                                                  long: bool) -> None:
    secret = secret_for(suite)
    sealer = PacketSealer(version, suite, secret)
    theirs = aioquic_context(version, suite, secret)
    for packet_number, pn_length in [(0, 1), (1000, 2), (70_000, 3), (0x1234_5678, 4)]:
        payload = bytes([packet_number & 0xFF]) * 200
        header = (long_header(version, pn_length, packet_number, len(payload)) if long
                  else short_header(pn_length, packet_number))
        packet = sealer.seal(header, payload, packet_number)
        plain_header, plain, number, _ = theirs.decrypt_packet(
            packet, pn_offset_of(packet), packet_number)
        assert (plain_header, plain, number) == (header, payload, packet_number)


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("suite", ALL_SUITES)
@pytest.mark.parametrize("long", [False, True])
def test_crypto_interop_we_open_aioquic_packets(version: int, suite: CipherSuite,
                                                long: bool) -> None:
    secret = secret_for(suite)
    opener = PacketOpener(version, suite, secret)
    theirs = aioquic_context(version, suite, secret)
    for packet_number, pn_length in [(0, 1), (1000, 2), (70_000, 3), (0x1234_5678, 4)]:
        payload = bytes([packet_number & 0xFF]) * 200
        header = (long_header(version, pn_length, packet_number, len(payload)) if long
                  else short_header(pn_length, packet_number))
        packet = theirs.encrypt_packet(header, payload, packet_number)
        assert opener.open(packet, pn_offset_of(packet), packet_number) == (
            header[0], packet_number, header, payload)


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("is_client", [True, False])
def test_crypto_interop_aioquic_initial_keys(version: int, is_client: bool) -> None:
    dcid = bytes.fromhex("f0e1d2c3b4a59687")
    ours = derive_initial_keys(version, dcid, is_client)
    peer = CryptoPair()
    peer.setup_initial(cid=dcid, is_client=not is_client, version=version)
    header = long_header(version, 4, 2, 1162, initial=True)
    payload = bytes(range(256)) * 4 + bytes(138)
    packet = ours[0].seal(header, payload, 2)
    assert peer.decrypt_packet(packet, len(header) - 4, 0) == (header, payload, 2)
    reply_header = long_header(version, 4, 3, 1162, initial=True)
    reply = peer.encrypt_packet(reply_header, payload[::-1], 3)
    assert ours[1].open(reply, len(header) - 4, 3) == (
        reply_header[0], 3, reply_header, payload[::-1])


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("suite", ALL_SUITES)
def test_crypto_interop_aioquic_key_update(version: int, suite: CipherSuite) -> None:
    secret = secret_for(suite)
    theirs = CryptoPair()
    for context in (theirs.send, theirs.recv):
        context.setup(cipher_suite=AIOQUIC_SUITES[suite], secret=secret, version=version)
    sealer = PacketSealer(version, suite, secret)
    opener = PacketOpener(version, suite, secret)
    # we update first: aioquic sees the flipped Key Phase bit and derives its next keys
    sealer = sealer.next_generation()
    packet = sealer.seal(short_header(2, 10, sealer.key_phase), b"\x01" * 50, 10)
    assert theirs.decrypt_packet(packet, 9, 10)[1] == b"\x01" * 50
    assert theirs.key_phase == 1
    # aioquic now sends with its updated keys; our next generation opens them
    reply = theirs.encrypt_packet(short_header(2, 11, theirs.key_phase), b"\x02" * 50, 11)
    first, _, _, header = opener.remove_header_protection(reply, 9)
    assert (first & 0x04) >> 2 == 1
    opener = opener.next_generation()
    assert opener.decrypt(reply, header, 11) == b"\x02" * 50


@given(
    suite=st.sampled_from(ALL_SUITES),
    pn_length=st.integers(1, 4),
    largest=st.integers(0, (1 << 40)),
    ahead=st.integers(-100, 1000),
    key_phase=st.integers(0, 1),
    packet_phase=st.integers(0, 1),
    payload=st.binary(min_size=3, max_size=80),
    corrupt=st.booleans(),
)
def test_crypto_open_short_equals_unprotect_and_decrypt(
        suite: CipherSuite, pn_length: int, largest: int, ahead: int, key_phase: int,
        packet_phase: int, payload: bytes, corrupt: bool) -> None:
    packet_number = max(0, largest + ahead)
    secret = secret_for(suite)
    packet = PacketSealer(QUIC_VERSION_1, suite, secret, key_phase=packet_phase).seal(
        short_header(pn_length, packet_number, packet_phase), payload, packet_number)
    if corrupt:
        packet = packet[:-1] + bytes([packet[-1] ^ 1])
    general = PacketOpener(QUIC_VERSION_1, suite, secret, key_phase=key_phase)
    fast = PacketOpener(QUIC_VERSION_1, suite, secret, key_phase=key_phase)
    pn_offset = pn_offset_of(packet)
    first, number, plain = general.unprotect_header(packet, pn_offset, largest + 1)
    if (first >> 2) & 1 != key_phase:
        assert fast.open_short(packet, pn_offset, largest + 1) == (first, number, plain, None)
        return
    try:
        expected = general.decrypt(packet, plain, number)
    except DecryptionError:
        with pytest.raises(DecryptionError):
            fast.open_short(packet, pn_offset, largest + 1)
        assert fast.decryption_failures == general.decryption_failures == 1
        return
    assert fast.open_short(packet, pn_offset, largest + 1) == (first, number, plain, expected)
