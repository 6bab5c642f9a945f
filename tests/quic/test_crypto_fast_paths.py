"""Packet-protection fast paths compared with the general path and the public cryptography API.

The keys of a :class:`PacketSealer` / :class:`PacketOpener` are derived inline (not through
:func:`packet_protection_keys`) and header protection builds its cipher context without the
``Cipher`` wrapper; these tests check both against the general spelling on many inputs.
"""

from __future__ import annotations

import random

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

from trio_zttp._tls.suites import CipherSuite
from trio_zttp.quic._crypto import (
    QUIC_VERSION_1,
    QUIC_VERSION_2,
    HeaderProtection,
    PacketOpener,
    PacketSealer,
    packet_protection_keys,
)

SUITES = list(CipherSuite)
VERSIONS = [QUIC_VERSION_1, QUIC_VERSION_2]
SECRET_LENGTHS = {CipherSuite.AES_128_GCM_SHA256: 32, CipherSuite.AES_256_GCM_SHA384: 48,
                  CipherSuite.CHACHA20_POLY1305_SHA256: 32}


def reference_mask(suite: CipherSuite, hp_key: bytes, sample: bytes) -> bytes:
    """The RFC 9001 §5.4.3 / §5.4.4 mask from a fresh public-API cipher context."""
    if suite == CipherSuite.CHACHA20_POLY1305_SHA256:
        context = Cipher(algorithms.ChaCha20(hp_key, sample), mode=None).encryptor()
        return context.update(bytes(5))
    return Cipher(algorithms.AES(hp_key), modes.ECB()).encryptor().update(sample)[:5]


def reference_seal(version: int, suite: CipherSuite, secret: bytes, header: bytes,
                   payload: bytes, packet_number: int) -> bytes:
    """RFC 9001 §5.3, §5.4 spelled out with packet_protection_keys and the public API."""
    key, iv, hp = packet_protection_keys(version, suite, secret)
    aead = ChaCha20Poly1305(key) if suite == CipherSuite.CHACHA20_POLY1305_SHA256 else AESGCM(key)
    nonce = (int.from_bytes(iv, "big") ^ packet_number).to_bytes(12, "big")
    ciphertext = aead.encrypt(nonce, payload, header)
    pn_length = (header[0] & 0x03) + 1
    offset = 4 - pn_length
    mask = reference_mask(suite, hp, ciphertext[offset:offset + 16])
    protected = bytearray(header)
    protected[0] ^= mask[0] & (0x0F if header[0] & 0x80 else 0x1F)
    for i in range(pn_length):
        protected[len(header) - pn_length + i] ^= mask[1 + i]
    return bytes(protected) + ciphertext


@pytest.mark.parametrize("suite", SUITES)
def test_header_protection_matches_fresh_public_contexts(suite: CipherSuite) -> None:
    rng = random.Random(int(suite))
    key_length = 16 if suite == CipherSuite.AES_128_GCM_SHA256 else 32
    for _ in range(50):
        hp_key = rng.randbytes(key_length)
        protection = HeaderProtection(suite, hp_key)
        for _ in range(8):  # the reused context keeps giving fresh-context masks
            sample = rng.randbytes(16)
            assert protection.mask(sample) == reference_mask(suite, hp_key, sample)
            assert protection.compute(memoryview(sample))[:5] == reference_mask(
                suite, hp_key, sample)


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("suite", SUITES)
def test_sealer_matches_general_derivation(version: int, suite: CipherSuite) -> None:
    rng = random.Random(version ^ int(suite))
    for _ in range(40):
        secret = rng.randbytes(SECRET_LENGTHS[suite])
        sealer = PacketSealer(version, suite, secret)
        opener = PacketOpener(version, suite, secret)
        for _ in range(3):
            pn_length = rng.randrange(1, 5)
            packet_number = rng.randrange(0, 1 << (8 * pn_length))
            if rng.random() < 0.5:  # a short header
                header = bytes((0x40 | (pn_length - 1),)) + rng.randbytes(8)
            else:
                header = bytes((0xC0 | (pn_length - 1),)) + rng.randbytes(20)
            header += packet_number.to_bytes(pn_length, "big")
            payload = rng.randbytes(rng.randrange(4, 200))
            sealed = sealer.seal(header, payload, packet_number)
            assert sealed == reference_seal(version, suite, secret, header, payload,
                                            packet_number)
            first, pn, plain_header, plain = opener.open(
                sealed, len(header) - pn_length, packet_number)
            assert (first, pn, plain_header, plain) == (header[0], packet_number, header,
                                                        payload)


@pytest.mark.parametrize("suite", SUITES)
def test_next_generation_matches_general_derivation(suite: CipherSuite) -> None:
    from trio_zttp._tls.suites import hash_length, hash_name, hkdf_expand_label

    rng = random.Random(7 + int(suite))
    for version in VERSIONS:
        secret = rng.randbytes(SECRET_LENGTHS[suite])
        label = b"quic ku" if version == QUIC_VERSION_1 else b"quicv2 ku"
        following = hkdf_expand_label(hash_name(suite), secret, label, b"", hash_length(suite))
        updated = PacketSealer(version, suite, secret).next_generation()
        assert updated.secret == following
        header = b"\x40" + bytes(8) + b"\x05"
        _, _, hp = packet_protection_keys(version, suite, secret)
        key, iv, _ = packet_protection_keys(version, suite, following)
        aead = (ChaCha20Poly1305(key) if suite == CipherSuite.CHACHA20_POLY1305_SHA256
                else AESGCM(key))
        ciphertext = aead.encrypt((int.from_bytes(iv, "big") ^ 5).to_bytes(12, "big"),
                                  b"payload!", header)
        mask = reference_mask(suite, hp, ciphertext[3:19])
        expected = bytes((0x40 ^ (mask[0] & 0x1F),)) + bytes(8) + bytes((5 ^ mask[1],))
        assert updated.seal(header, b"payload!", 5) == expected + ciphertext
