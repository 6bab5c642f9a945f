"""QUIC packet protection (RFC 9001 §5, §6; RFC 9369 §3.3).

Initial secrets, AEAD payload protection, header protection and key updates for QUIC v1 and
v2.  Everything here runs once per packet, so the objects are built once per key and reused:

* one ``AESGCM`` / ``ChaCha20Poly1305`` object per key, the IV kept as an ``int`` so the nonce
  is ``(iv ^ packet_number).to_bytes(12)``;
* header protection with one reused AES-ECB encryptor, or one reused ChaCha20 encryptor whose
  nonce is reset to each sample (``reset_nonce``, cryptography >= 43);
* a key update (:meth:`PacketSealer.next_generation`) keeps the header-protection object.

A connection holds one :class:`PacketSealer` and one :class:`PacketOpener` per encryption level
(two openers around a 1-RTT key update).  Both count packets against the AEAD limits of
RFC 9001 §6.6; acting on the counts (key update, AEAD_LIMIT_REACHED) is the connection's job.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, Final, final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

from .._tls.suites import CipherSuite, hash_length, hash_name, hkdf_extract
from .._tls.suites import hmac_new as _hmac_new
from ._errors import QuicError
from ._packet import decode_packet_number

__all__ = [
    "CONFIDENTIALITY_LIMITS",
    "INITIAL_SALTS",
    "INTEGRITY_LIMITS",
    "QUIC_VERSION_1",
    "QUIC_VERSION_2",
    "SAMPLE_LENGTH",
    "TAG_LENGTH",
    "DecryptionError",
    "HeaderProtection",
    "PacketOpener",
    "PacketSealer",
    "derive_initial_keys",
    "initial_secrets",
    "packet_protection_keys",
]

QUIC_VERSION_1: Final = 0x00000001
QUIC_VERSION_2: Final = 0x6B3343CF

#: Initial salts per version (RFC 9001 §5.2, RFC 9369 §3.3.1).
INITIAL_SALTS: Final[Mapping[int, bytes]] = MappingProxyType({
    QUIC_VERSION_1: bytes.fromhex("38762cf7f55934b34d179ae6a4c80cadccbb7f0a"),
    QUIC_VERSION_2: bytes.fromhex("0dede3def700a6db819381be6e269dcbf9bd2ed9"),
})

# HKDF labels (key, iv, hp, ku) per version (RFC 9001 §5.1, §5.4, §6.1; RFC 9369 §3.3.2)
_LABELS: Final[Mapping[int, tuple[bytes, bytes, bytes, bytes]]] = MappingProxyType({
    QUIC_VERSION_1: (b"quic key", b"quic iv", b"quic hp", b"quic ku"),
    QUIC_VERSION_2: (b"quicv2 key", b"quicv2 iv", b"quicv2 hp", b"quicv2 ku"),
})

#: Packets one key may protect before it must be retired (RFC 9001 §6.6).
CONFIDENTIALITY_LIMITS: Final[Mapping[CipherSuite, int]] = MappingProxyType({
    CipherSuite.AES_128_GCM_SHA256: 1 << 23,
    CipherSuite.AES_256_GCM_SHA384: 1 << 23,
    CipherSuite.CHACHA20_POLY1305_SHA256: 1 << 62,
})

#: Packets failing authentication, across all keys of a connection, before it must close
#: with AEAD_LIMIT_REACHED (RFC 9001 §6.6).
INTEGRITY_LIMITS: Final[Mapping[CipherSuite, int]] = MappingProxyType({
    CipherSuite.AES_128_GCM_SHA256: 1 << 52,
    CipherSuite.AES_256_GCM_SHA384: 1 << 52,
    CipherSuite.CHACHA20_POLY1305_SHA256: 1 << 36,
})

_KEY_LENGTHS: Final[Mapping[CipherSuite, int]] = MappingProxyType({
    CipherSuite.AES_128_GCM_SHA256: 16,
    CipherSuite.AES_256_GCM_SHA384: 32,
    CipherSuite.CHACHA20_POLY1305_SHA256: 32,
})

_INITIAL_SUITE: Final = CipherSuite.AES_128_GCM_SHA256
IV_LENGTH: Final = 12
#: Length of the AEAD authentication tag appended to every payload.
TAG_LENGTH: Final = 16
#: Length of the ciphertext sample for header protection (RFC 9001 §5.4.2).
SAMPLE_LENGTH: Final = 16
_CHACHA20_ZEROS: Final = bytes(5)
# bound once: a module global is cheaper than looking up ``int.from_bytes`` per packet
_from_bytes: Final = int.from_bytes
_SINGLE_BYTES: Final = tuple(bytes((value,)) for value in range(256))
_CHACHA20: Final = CipherSuite.CHACHA20_POLY1305_SHA256
_ZERO_SAMPLE: Final = bytes(SAMPLE_LENGTH)
_ECB: Final = modes.ECB()

try:
    # ``Cipher(algorithm, mode).encryptor()`` is this call behind two ABC checks and a
    # generic wrapper (about 3 us of 7 per context; six contexts per handshake and side).
    # Its output is compared with the public API's in tests/quic/test_crypto_fast_paths.py.
    from cryptography.hazmat.bindings._rust import openssl as _rust_openssl

    _create_encryption_ctx: Callable[[Any, Any], Any] | None = (
        _rust_openssl.ciphers.create_encryption_ctx)
except (ImportError, AttributeError):  # pragma: no cover - another cryptography
    _create_encryption_ctx = None


class DecryptionError(Exception):
    """A packet could not be unprotected: too short to sample, or the AEAD tag did not verify.

    Never a connection error: the receiver drops the packet (RFC 9001 §5.5).
    """


#: HkdfLabel structures with the final HKDF-Expand counter byte, by (label, length): every
#: packet-protection output is at most one hash block long (RFC 8446 §7.1, RFC 5869 §2.3)
_EXPAND_INFOS: dict[tuple[bytes, int], bytes] = {}


def _expand_info(label: bytes, length: int) -> bytes:
    """The HkdfLabel for ``(label, length)`` with an empty context, and HKDF-Expand's
    counter byte 0x01."""
    info = _EXPAND_INFOS.get((label, length))
    if info is None:
        full = b"tls13 " + label
        info = length.to_bytes(2) + bytes((len(full),)) + full + b"\x00\x01"
        _EXPAND_INFOS[(label, length)] = info
    return info


def _expand_label(name: str, secret: bytes, label: bytes, length: int) -> bytes:
    """``hkdf_expand_label(name, secret, label, b"", length)`` for ``length`` up to one hash
    output (every QUIC key, IV, header-protection key and secret): one HMAC."""
    return _hmac_new(secret, _expand_info(label, length), name).digest()[:length]


def _labels(version: int) -> tuple[bytes, bytes, bytes, bytes]:
    try:
        return _LABELS[version]
    except KeyError:
        raise QuicError(f"no packet protection for QUIC version 0x{version:08x}") from None


def initial_secrets(version: int, dcid: bytes) -> tuple[bytes, bytes]:
    """The Initial secrets for a client-chosen Destination Connection ID (RFC 9001 §5.2).

    Args:
        version: QUIC version (:data:`QUIC_VERSION_1` or :data:`QUIC_VERSION_2`).
        dcid: Destination Connection ID of the client's first Initial packet.

    Returns:
        ``(client_initial_secret, server_initial_secret)``.

    Raises:
        QuicError: ``version`` has no known Initial salt.
    """
    try:
        salt = INITIAL_SALTS[version]
    except KeyError:
        raise QuicError(f"no Initial salt for QUIC version 0x{version:08x}") from None
    initial_secret = hkdf_extract("sha256", salt, dcid)
    return (
        _expand_label("sha256", initial_secret, b"client in", 32),
        _expand_label("sha256", initial_secret, b"server in", 32),
    )


def packet_protection_keys(
    version: int, suite: CipherSuite, secret: bytes
) -> tuple[bytes, bytes, bytes]:
    """Derive ``(key, iv, hp)`` from a traffic secret (RFC 9001 §5.1, §5.4; RFC 9369 §3.3.2)."""
    key_label, iv_label, hp_label, _ = _labels(version)
    name = hash_name(suite)
    key_length = _KEY_LENGTHS[suite]
    return (
        _expand_label(name, secret, key_label, key_length),
        _expand_label(name, secret, iv_label, IV_LENGTH),
        _expand_label(name, secret, hp_label, key_length),
    )


def _next_secret(version: int, suite: CipherSuite, secret: bytes) -> bytes:
    """The secret of the next key phase (RFC 9001 §6.1)."""
    return _expand_label(hash_name(suite), secret, _labels(version)[3], hash_length(suite))


def _public_cipher_context(algorithm: Any, mode: Any) -> Any:
    return Cipher(algorithm, mode).encryptor()


def _direct_contexts_work() -> bool:
    """Whether the direct call makes the contexts the public API makes (checked once, so a
    ``cryptography`` whose internals changed falls back to the public API)."""
    if _create_encryption_ctx is None:
        return False  # pragma: no cover - another cryptography
    try:
        key, sample = bytes(range(16)), bytes(range(16, 32))
        chacha_key = bytes(range(32))
        return bool(
            _create_encryption_ctx(algorithms.AES(key), _ECB).update(sample)
            == _public_cipher_context(algorithms.AES(key), _ECB).update(sample)
            and _create_encryption_ctx(algorithms.ChaCha20(chacha_key, sample), None).update(
                bytes(5))
            == _public_cipher_context(algorithms.ChaCha20(chacha_key, sample), None).update(
                bytes(5)))
    except Exception:  # pragma: no cover - another cryptography
        return False


#: ``Cipher(algorithm, mode).encryptor()`` (see :data:`_create_encryption_ctx`)
_cipher_context: Final[Callable[[Any, Any], Any]] = (
    _create_encryption_ctx if _direct_contexts_work() else _public_cipher_context)  # type: ignore[assignment]


@final
class HeaderProtection:
    """Header-protection mask function for one key (RFC 9001 §5.4.3, §5.4.4).

    The cipher context is created once and reused for every packet.

    Args:
        suite: The negotiated cipher suite (AES-ECB for the GCM suites, ChaCha20 otherwise).
        hp_key: The header-protection key (``"quic hp"`` / ``"quicv2 hp"``).
    """

    __slots__ = ("_encryptor", "compute")

    #: ``compute(sample)``: the mask for a sample of exactly 16 bytes, at least 5 bytes long,
    #: unchecked (the hot path; :meth:`mask` checks).  An AES sample of another length would
    #: leave a partial block inside the reused ECB context.
    compute: Callable[[bytes | bytearray | memoryview], bytes]

    def __init__(self, suite: CipherSuite, hp_key: bytes) -> None:
        if len(hp_key) != _KEY_LENGTHS[suite]:
            raise ValueError("header protection key has the wrong length for the suite")
        self._set_key(suite == _CHACHA20, hp_key)

    def _set_key(self, chacha20: bool, hp_key: bytes) -> None:
        if chacha20:
            # the nonce is replaced by each sample: counter = sample[0:4], nonce = sample[4:16]
            encryptor = _cipher_context(algorithms.ChaCha20(hp_key, _ZERO_SAMPLE), None)
            reset_nonce = encryptor.reset_nonce
            update = encryptor.update

            def chacha20_mask(sample: bytes | bytearray | memoryview) -> bytes:
                reset_nonce(sample)
                return update(_CHACHA20_ZEROS)  # type: ignore[no-any-return]

            self.compute = chacha20_mask
        else:
            # ECB over exactly one block: the encryptor never holds state between calls
            encryptor = _cipher_context(algorithms.AES(hp_key), _ECB)
            self.compute = encryptor.update
        self._encryptor = encryptor

    def mask(self, sample: bytes | bytearray | memoryview) -> bytes:
        """The 5-byte mask for a ciphertext sample.

        Raises:
            ValueError: ``sample`` is not 16 bytes long.
        """
        if len(sample) != SAMPLE_LENGTH:
            raise ValueError("header protection sample must be 16 bytes")
        return self.compute(sample)[:5]


def _header_protection(chacha20: bool, hp_key: bytes) -> HeaderProtection:
    """A :class:`HeaderProtection` for a key of the right length, without the checks."""
    protection = HeaderProtection.__new__(HeaderProtection)
    protection._set_key(chacha20, hp_key)
    return protection


class _Derivation:
    """What deriving the keys of one (version, suite) needs, worked out once: the HkdfLabel
    structures (RFC 8446 §7.1) with HKDF-Expand's counter byte, the lengths, the AEAD."""

    __slots__ = ("aead", "chacha20", "confidentiality_limit", "hash_name", "hp_info",
                 "integrity_limit", "iv_info", "key_info", "key_length")

    def __init__(self, version: int, suite: CipherSuite) -> None:
        key_label, iv_label, hp_label, _ = _labels(version)
        self.hash_name = hash_name(suite)
        self.key_length = _KEY_LENGTHS[suite]
        self.chacha20 = suite == _CHACHA20
        self.aead: Callable[[bytes], AESGCM | ChaCha20Poly1305] = (
            ChaCha20Poly1305 if self.chacha20 else AESGCM)
        self.key_info = _expand_info(key_label, self.key_length)
        self.iv_info = _expand_info(iv_label, IV_LENGTH)
        self.hp_info = _expand_info(hp_label, self.key_length)
        self.confidentiality_limit = CONFIDENTIALITY_LIMITS[suite]
        self.integrity_limit = INTEGRITY_LIMITS[suite]


_DERIVATIONS: dict[tuple[int, int], _Derivation] = {}


def _derivation(version: int, suite: CipherSuite) -> _Derivation:
    derivation = _DERIVATIONS.get((version, suite))
    if derivation is None:
        derivation = _DERIVATIONS[version, suite] = _Derivation(version, suite)
    return derivation


class _PacketKey:
    """State shared by both directions: suite, secret, AEAD object, IV, header protection."""

    __slots__ = ("_aead", "_derivation", "_iv", "_mask", "header_protection", "key_phase",
                 "secret", "suite", "version")

    def __init__(
        self,
        version: int,
        suite: CipherSuite,
        secret: bytes,
        *,
        key_phase: int = 0,
        header_protection: HeaderProtection | None = None,
    ) -> None:
        # packet_protection_keys(), inlined: each output is one HMAC (one hash block)
        derivation = _DERIVATIONS.get((version, suite)) or _derivation(version, suite)
        self._derivation = derivation
        name = derivation.hash_name
        self.version = version
        """QUIC version whose labels derived the keys."""
        self.suite = suite
        """Cipher suite of the keys."""
        self.secret = secret
        """The traffic secret the keys came from."""
        self.key_phase = key_phase
        """Key Phase bit (0 or 1) of 1-RTT packets protected with this generation."""
        if header_protection is None:
            header_protection = _header_protection(
                derivation.chacha20,
                _hmac_new(secret, derivation.hp_info, name).digest()[:derivation.key_length])
        self.header_protection = header_protection
        """Header protection, shared by every key generation (RFC 9001 §6.1)."""
        self._aead: AESGCM | ChaCha20Poly1305 = derivation.aead(
            _hmac_new(secret, derivation.key_info, name).digest()[:derivation.key_length])
        self._iv = _from_bytes(_hmac_new(secret, derivation.iv_info, name).digest()[:IV_LENGTH])
        self._mask = header_protection.compute

    def _next_arguments(self) -> tuple[int, CipherSuite, bytes]:
        return self.version, self.suite, _next_secret(self.version, self.suite, self.secret)


@final
class PacketSealer(_PacketKey):
    """Protects outgoing packets with one key (RFC 9001 §5.3, §5.4).

    Args:
        version: QUIC version (selects the HKDF labels).
        suite: Cipher suite of ``secret``.
        secret: The traffic secret of this direction.
        key_phase: Key Phase bit of this generation (1-RTT only).
        header_protection: Reuse this header protection (key updates keep it).
    """

    __slots__ = ("_encrypt", "confidentiality_limit", "packets_sealed")

    def __init__(
        self,
        version: int,
        suite: CipherSuite,
        secret: bytes,
        *,
        key_phase: int = 0,
        header_protection: HeaderProtection | None = None,
    ) -> None:
        super().__init__(version, suite, secret, key_phase=key_phase,
                         header_protection=header_protection)
        self.packets_sealed = 0
        """Packets protected with this key so far."""
        self.confidentiality_limit = self._derivation.confidentiality_limit
        """Packets this key may protect (RFC 9001 §6.6); update the key before reaching it."""
        self._encrypt = self._aead.encrypt

    def seal(self, header: bytes | bytearray, payload: bytes | bytearray | memoryview,
             packet_number: int) -> bytes:
        """Protect one packet and return it whole.

        Args:
            header: The plaintext header, ending with the truncated packet number; its length
                is taken from the two low bits of the first byte.  The caller sets the Key
                Phase bit of short headers to :attr:`key_phase`.
            payload: The frames; at least ``4 - packet_number_length`` bytes so the header
                protection sample fits (RFC 9001 §5.4.2).
            packet_number: The full packet number (for the nonce).

        Raises:
            ValueError: ``payload`` is too short to sample.
        """
        first = header[0]
        pn_length = (first & 0x03) + 1
        sample_offset = 4 - pn_length
        if len(payload) < sample_offset:
            raise ValueError("payload too short for header protection sampling")
        ciphertext = self._encrypt((self._iv ^ packet_number).to_bytes(IV_LENGTH), payload,
                                   header)
        self.packets_sealed += 1
        mask = self._mask(ciphertext[sample_offset:sample_offset + SAMPLE_LENGTH])
        header_length = len(header)
        # XOR the mask into the header as one integer: the first byte's low 4 (long header)
        # or 5 (short header) bits, and the packet-number bytes at the end
        return (_from_bytes(header) ^ (
            (mask[0] & (0x0F if first & 0x80 else 0x1F)) << (8 * header_length - 8)
            | _from_bytes(mask[1:1 + pn_length])
        )).to_bytes(header_length) + ciphertext

    def next_generation(self) -> PacketSealer:
        """The sealer for the next key phase: secret advanced with ``"quic ku"``, same HP key."""
        return PacketSealer(*self._next_arguments(), key_phase=self.key_phase ^ 1,
                            header_protection=self.header_protection)


@final
class PacketOpener(_PacketKey):
    """Removes protection from incoming packets with one key (RFC 9001 §5.3, §5.4).

    ``packet`` arguments hold exactly one QUIC packet (a coalesced datagram is split by the
    Length field first) as ``bytes`` or a ``memoryview``.

    Args:
        version: QUIC version (selects the HKDF labels).
        suite: Cipher suite of ``secret``.
        secret: The peer's traffic secret for this direction.
        key_phase: Key Phase bit of this generation (1-RTT only).
        header_protection: Reuse this header protection (key updates keep it).
    """

    __slots__ = ("_decrypt", "decryption_failures", "integrity_limit")

    def __init__(
        self,
        version: int,
        suite: CipherSuite,
        secret: bytes,
        *,
        key_phase: int = 0,
        header_protection: HeaderProtection | None = None,
    ) -> None:
        super().__init__(version, suite, secret, key_phase=key_phase,
                         header_protection=header_protection)
        self.decryption_failures = 0
        """Packets whose authentication failed with this key."""
        self.integrity_limit = self._derivation.integrity_limit
        """Authentication failures a connection may see across all its keys (RFC 9001 §6.6)."""
        self._decrypt = self._aead.decrypt

    def remove_header_protection(
        self, packet: bytes | memoryview, pn_offset: int
    ) -> tuple[int, int, int, bytes]:
        """Unmask the first byte and the packet number (RFC 9001 §5.4.1).

        Args:
            packet: The protected packet.
            pn_offset: Offset of the Packet Number field (from the parsed header).

        Returns:
            ``(first_byte, truncated_packet_number, packet_number_length, header)`` where
            ``header`` is the whole unprotected header, the AAD for :meth:`decrypt`.  For
            short headers ``first_byte & 0x04`` is the Key Phase bit that picks the opener.

        Raises:
            DecryptionError: The packet is too short to hold the sample.
        """
        sample_offset = pn_offset + 4
        if pn_offset < 1 or len(packet) < sample_offset + SAMPLE_LENGTH:
            raise DecryptionError("packet too short for header protection sampling")
        mask = self._mask(packet[sample_offset:sample_offset + SAMPLE_LENGTH])
        first = packet[0]
        first ^= mask[0] & (0x0F if first & 0x80 else 0x1F)
        pn_length = (first & 0x03) + 1
        truncated_pn = (_from_bytes(packet[pn_offset:pn_offset + pn_length])
                        ^ _from_bytes(mask[1:1 + pn_length]))
        return (first, truncated_pn, pn_length,
                _SINGLE_BYTES[first] + packet[1:pn_offset] + truncated_pn.to_bytes(pn_length))

    def unprotect_header(
        self, packet: bytes | memoryview, pn_offset: int, expected_pn: int
    ) -> tuple[int, int, bytes]:
        """:meth:`remove_header_protection` and the packet number decoded, in one call.

        Args:
            packet: The protected packet.
            pn_offset: Offset of the Packet Number field.
            expected_pn: Largest packet number received in the space, plus one.

        Returns:
            ``(first_byte, packet_number, header)``, the header being the AAD for
            :meth:`decrypt`.

        Raises:
            DecryptionError: The packet is too short to hold the sample.
        """
        sample_offset = pn_offset + 4
        if pn_offset < 1 or len(packet) < sample_offset + SAMPLE_LENGTH:
            raise DecryptionError("packet too short for header protection sampling")
        mask = self._mask(packet[sample_offset:sample_offset + SAMPLE_LENGTH])
        first = packet[0]
        first ^= mask[0] & (0x0F if first & 0x80 else 0x1F)
        pn_length = (first & 0x03) + 1
        truncated = (_from_bytes(packet[pn_offset:pn_offset + pn_length])
                     ^ _from_bytes(mask[1:1 + pn_length]))
        header = _SINGLE_BYTES[first] + packet[1:pn_offset] + truncated.to_bytes(pn_length)
        # decode_packet_number (RFC 9000 §A.3), inlined
        pn_win = 1 << (8 * pn_length)
        candidate = (expected_pn & -pn_win) | truncated
        if candidate <= expected_pn - (pn_win >> 1) and candidate < (1 << 62) - pn_win:
            candidate += pn_win
        elif candidate > expected_pn + (pn_win >> 1) and candidate >= pn_win:
            candidate -= pn_win
        return first, candidate, header

    def open_short(
        self, packet: bytes, pn_offset: int, expected_pn: int
    ) -> tuple[int, int, bytes, bytes | None]:
        """:meth:`unprotect_header` and, when the Key Phase bit is this key's, :meth:`decrypt`,
        for a short-header packet at least ``pn_offset + 20`` bytes long (unchecked: the
        caller checked it).

        Returns:
            ``(first_byte, packet_number, header, payload)``; ``payload`` is None when the
            Key Phase bit differs from :attr:`key_phase` (the caller picks another opener and
            decrypts with it).

        Raises:
            DecryptionError: Authentication failed; :attr:`decryption_failures` counts it.
        """
        mask = self._mask(packet[pn_offset + 4:pn_offset + 20])
        first = packet[0] ^ (mask[0] & 0x1F)
        pn_length = (first & 0x03) + 1
        truncated = (_from_bytes(packet[pn_offset:pn_offset + pn_length])
                     ^ _from_bytes(mask[1:1 + pn_length]))
        header = _SINGLE_BYTES[first] + packet[1:pn_offset] + truncated.to_bytes(pn_length)
        # decode_packet_number (RFC 9000 §A.3), inlined
        pn_win = 1 << (8 * pn_length)
        candidate = (expected_pn & -pn_win) | truncated
        if candidate <= expected_pn - (pn_win >> 1) and candidate < (1 << 62) - pn_win:
            candidate += pn_win
        elif candidate > expected_pn + (pn_win >> 1) and candidate >= pn_win:
            candidate -= pn_win
        if (first >> 2) & 1 != self.key_phase:
            return first, candidate, header, None
        try:
            return first, candidate, header, self._decrypt(
                (self._iv ^ candidate).to_bytes(IV_LENGTH), packet[pn_offset + pn_length:],
                header)
        except InvalidTag:
            self.decryption_failures += 1
            raise DecryptionError("packet authentication failed") from None

    def decrypt(self, packet: bytes | memoryview, header: bytes, packet_number: int) -> bytes:
        """Decrypt the payload following ``header`` (from :meth:`remove_header_protection`).

        Args:
            packet: The protected packet.
            header: The unprotected header (the AAD); the ciphertext follows it in ``packet``.
            packet_number: The full, decoded packet number (for the nonce).

        Raises:
            DecryptionError: Authentication failed; :attr:`decryption_failures` counts it.
        """
        try:
            return self._decrypt((self._iv ^ packet_number).to_bytes(IV_LENGTH),
                                 packet[len(header):], header)
        except InvalidTag:
            self.decryption_failures += 1
            raise DecryptionError("packet authentication failed") from None

    def open(
        self, packet: bytes | memoryview, pn_offset: int, expected_pn: int
    ) -> tuple[int, int, bytes, bytes]:
        """Remove header protection, decode the packet number and decrypt, in one call.

        Args:
            packet: The protected packet.
            pn_offset: Offset of the Packet Number field.
            expected_pn: Largest packet number received in the space, plus one.

        Returns:
            ``(first_byte, packet_number, header, payload)``, all unprotected.

        Raises:
            DecryptionError: Too short, or authentication failed.
        """
        first, truncated, pn_length, header = self.remove_header_protection(packet, pn_offset)
        packet_number = decode_packet_number(truncated, 8 * pn_length, expected_pn)
        # decrypt() inlined: one method call less per packet
        try:
            payload = self._decrypt((self._iv ^ packet_number).to_bytes(IV_LENGTH),
                                    packet[len(header):], header)
        except InvalidTag:
            self.decryption_failures += 1
            raise DecryptionError("packet authentication failed") from None
        return first, packet_number, header, payload

    def next_generation(self) -> PacketOpener:
        """The opener for the next key phase: secret advanced with ``"quic ku"``, same HP key."""
        return PacketOpener(*self._next_arguments(), key_phase=self.key_phase ^ 1,
                            header_protection=self.header_protection)


def derive_initial_keys(
    version: int, dcid: bytes, is_client: bool
) -> tuple[PacketSealer, PacketOpener]:
    """Initial packet protection for one endpoint (RFC 9001 §5.2).

    Args:
        version: QUIC version.
        dcid: Destination Connection ID of the client's first Initial packet.
        is_client: Whether the keys are for the client side.

    Returns:
        ``(sealer, opener)``: the sealer uses this side's secret, the opener the peer's.
    """
    client_secret, server_secret = initial_secrets(version, dcid)
    if is_client:
        own, peer = client_secret, server_secret
    else:
        own, peer = server_secret, client_secret
    return (PacketSealer(version, _INITIAL_SUITE, own),
            PacketOpener(version, _INITIAL_SUITE, peer))
