"""TLS 1.3 cipher suites, encryption levels and HKDF (RFC 8446 §7.1, RFC 5869).

Shared by the TLS key schedule and QUIC packet protection (RFC 9001 §5), which both derive
keys with HKDF-Expand-Label.
"""

from __future__ import annotations

import enum
import hmac
from typing import Final

from cryptography.hazmat.primitives import hashes

try:  # OpenSSL's HMAC object, without the Python wrapper in front of it
    from _hashlib import hmac_new as _hmac_new
except ImportError:  # pragma: no cover - CPython without OpenSSL
    _hmac_new = hmac.new  # type: ignore[assignment]


def hmac_digest(key: bytes, message: bytes, hash_name: str) -> bytes:
    """``hmac.digest(key, message, hash_name)``, at the lowest cost CPython offers.

    Measured here (CPython 3.11, OpenSSL 3): ``_hashlib.hmac_new(...).digest()`` costs about
    1.5 us where the one-shot ``hmac.digest`` costs 3.7 us (it looks the digest up by name on
    every call); a handshake computes about 40 HMACs per side.
    """
    return _hmac_new(key, message, hash_name).digest()


#: ``_hashlib.hmac_new(key, message, hash_name)``: hot paths call ``.digest()`` on it
#: themselves, one Python call less than :func:`hmac_digest`.
hmac_new: Final = _hmac_new

__all__ = [
    "hmac_digest",
    "hmac_new",
    "CipherSuite",
    "Epoch",
    "hash_algorithm",
    "hash_length",
    "hash_name",
    "hkdf_expand",
    "hkdf_expand_label",
    "hkdf_extract",
]


class CipherSuite(enum.IntEnum):
    """TLS 1.3 cipher suites usable with QUIC (RFC 9001 §5.3)."""

    AES_128_GCM_SHA256 = 0x1301
    AES_256_GCM_SHA384 = 0x1302
    CHACHA20_POLY1305_SHA256 = 0x1303


class Epoch(enum.IntEnum):
    """Encryption levels (RFC 9001 §4): where CRYPTO data and keys belong."""

    INITIAL = 0
    ZERO_RTT = 1
    HANDSHAKE = 2
    ONE_RTT = 3


_HASH_NAMES: Final = {
    CipherSuite.AES_128_GCM_SHA256: "sha256",
    CipherSuite.AES_256_GCM_SHA384: "sha384",
    CipherSuite.CHACHA20_POLY1305_SHA256: "sha256",
}
_HASHES: Final[dict[str, hashes.HashAlgorithm]] = {
    "sha256": hashes.SHA256(),
    "sha384": hashes.SHA384(),
}


def hash_algorithm(suite: CipherSuite) -> hashes.HashAlgorithm:
    """The suite's hash as a ``cryptography`` algorithm object."""
    return _HASHES[_HASH_NAMES[suite]]


def hash_name(suite: CipherSuite) -> str:
    """The suite's hash as a ``hashlib``/``hmac`` name (``"sha256"`` or ``"sha384"``)."""
    return _HASH_NAMES[suite]


def hash_length(suite: CipherSuite) -> int:
    """Digest length of the suite's hash in bytes."""
    return 48 if suite == CipherSuite.AES_256_GCM_SHA384 else 32


def hkdf_extract(hash_name: str, salt: bytes, ikm: bytes) -> bytes:
    """HKDF-Extract (RFC 5869 §2.2)."""
    return _hmac_new(salt, ikm, hash_name).digest()


def hkdf_expand(hash_name: str, prk: bytes, info: bytes, length: int) -> bytes:
    """HKDF-Expand (RFC 5869 §2.3)."""
    out = b""
    block = b""
    counter = 1
    while len(out) < length:
        block = _hmac_new(prk, block + info + bytes((counter,)), hash_name).digest()
        out += block
        counter += 1
    return out[:length]


def hkdf_expand_label(
    hash_name: str, secret: bytes, label: bytes, context: bytes, length: int
) -> bytes:
    """HKDF-Expand-Label (RFC 8446 §7.1): ``label`` without the ``"tls13 "`` prefix."""
    head = _LABEL_HEADS.get((label, length))
    if head is None:
        head = _label_head(label, length)
    info = head + bytes((len(context),)) + context
    if length <= _DIGEST_SIZES.get(hash_name, 0):
        # one block: T(1) = HMAC(secret, info || 0x01)
        return _hmac_new(secret, info + b"\x01", hash_name).digest()[:length]
    return hkdf_expand(hash_name, secret, info, length)


def _label_head(label: bytes, length: int) -> bytes:
    """``uint16 length || opaque label<7..255>`` of the HkdfLabel (RFC 8446 §7.1)."""
    full_label = b"tls13 " + label
    head = length.to_bytes(2, "big") + bytes((len(full_label),)) + full_label
    if len(_LABEL_HEADS) < 256:  # the labels are the RFCs' few; never grow without bound
        _LABEL_HEADS[label, length] = head
    return head


_LABEL_HEADS: Final[dict[tuple[bytes, int], bytes]] = {}
_DIGEST_SIZES: Final = {"sha256": 32, "sha384": 48}
