"""Key exchange for the TLS 1.3 ``key_share`` extension (RFC 8446 §4.2.8, §7.4).

Groups: x25519, secp256r1, secp384r1 and the hybrid X25519MLKEM768 (0x11EC,
draft-ietf-tls-ecdhe-mlkem §3): the client share is the ML-KEM-768 encapsulation key (1184 B)
followed by an X25519 public key (32 B); the server share is the ML-KEM ciphertext (1088 B)
followed by the server's X25519 public key; the shared secret is the ML-KEM shared secret
followed by the X25519 shared secret (64 B).

Private keys come from the injected ``random_bytes`` (or from an explicit override, so the
RFC 8448 traces replay byte for byte): an X25519 key is 32 random bytes, a NIST-curve scalar is
reduced from 16 extra random bytes, an ML-KEM key pair is expanded from a 64-byte seed.  ML-KEM
encapsulation draws its randomness inside OpenSSL, which ``cryptography`` does not let us feed.

Every peer-input failure is an :class:`AlertError` (``illegal_parameter``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, final

from cryptography.hazmat.primitives.asymmetric import ec, mlkem, x25519

from .alerts import AlertDescription, AlertError
from .extensions import NamedGroup

__all__ = [
    "SUPPORTED_GROUPS",
    "ClientKeyShare",
    "server_key_exchange",
]

RandomBytes = Callable[[int], bytes]

SUPPORTED_GROUPS: Final = frozenset(
    {NamedGroup.x25519, NamedGroup.secp256r1, NamedGroup.secp384r1, NamedGroup.X25519MLKEM768}
)
"""Groups this module can generate shares for."""

_CURVES: Final[dict[int, tuple[ec.EllipticCurve, int, int]]] = {
    # group: (curve, order n, coordinate length)
    NamedGroup.secp256r1: (
        ec.SECP256R1(),
        0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551,
        32,
    ),
    NamedGroup.secp384r1: (
        ec.SECP384R1(),
        0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF581A0DB248B0A77AECEC196ACCC52973,
        48,
    ),
}
MLKEM768_ENCAPSULATION_KEY_LENGTH: Final = 1184
MLKEM768_CIPHERTEXT_LENGTH: Final = 1088
X25519_LENGTH: Final = 32
MLKEM768_SEED_LENGTH: Final = 64


def _illegal(reason: str) -> AlertError:
    return AlertError(AlertDescription.illegal_parameter, reason)


def _x25519_private(raw: bytes) -> x25519.X25519PrivateKey:
    return x25519.X25519PrivateKey.from_private_bytes(raw)


def _x25519_exchange(private: x25519.X25519PrivateKey, peer: bytes) -> bytes:
    if len(peer) != X25519_LENGTH:
        raise _illegal("X25519 share has the wrong length")
    try:
        shared = private.exchange(x25519.X25519PublicKey.from_public_bytes(peer))
    except ValueError:
        raise _illegal("X25519 shared secret is all zeros") from None
    if shared == bytes(X25519_LENGTH):  # cryptography already refuses this; belt and braces
        raise _illegal("X25519 shared secret is all zeros")
    return shared


def _ec_private(
    group: int, raw: bytes | None, random_bytes: RandomBytes
) -> ec.EllipticCurvePrivateKey:
    curve, order, size = _CURVES[group]
    if raw is None:
        raw = random_bytes(size + 16)
        scalar = int.from_bytes(raw, "big") % (order - 1) + 1
    else:
        scalar = int.from_bytes(raw, "big")
    return ec.derive_private_key(scalar, curve)


def _ec_public_bytes(private: ec.EllipticCurvePrivateKey) -> bytes:
    numbers = private.public_key().public_numbers()
    size = (private.curve.key_size + 7) // 8
    return b"\x04" + numbers.x.to_bytes(size, "big") + numbers.y.to_bytes(size, "big")


def _ec_exchange(group: int, private: ec.EllipticCurvePrivateKey, peer: bytes) -> bytes:
    curve, _, size = _CURVES[group]
    if len(peer) != 1 + 2 * size or peer[0] != 4:
        raise _illegal("ECDHE share is not an uncompressed point of the right length")
    try:
        public = ec.EllipticCurvePublicKey.from_encoded_point(curve, peer)
        return private.exchange(ec.ECDH(), public)
    except ValueError:
        raise _illegal("ECDHE share is not a valid curve point") from None


@final
class ClientKeyShare:
    """A client's ephemeral key pair for one group: ``public`` goes into the ClientHello."""

    __slots__ = ("group", "public", "_x25519", "_ec", "_mlkem")

    def __init__(
        self, group: int, random_bytes: RandomBytes, private_override: bytes | None = None
    ) -> None:
        """Generate a key pair.

        Args:
            group: a :data:`SUPPORTED_GROUPS` code point.
            random_bytes: the configuration's randomness.
            private_override: fixed private key material (tests): 32 bytes for x25519, the
                big-endian scalar for a NIST curve, ``seed(64) || x25519(32)`` for
                X25519MLKEM768.
        """
        self.group = group
        self._x25519: x25519.X25519PrivateKey | None = None
        self._ec: ec.EllipticCurvePrivateKey | None = None
        self._mlkem: mlkem.MLKEM768PrivateKey | None = None
        if group == NamedGroup.x25519:
            self._x25519 = _x25519_private(private_override or random_bytes(X25519_LENGTH))
            self.public = self._x25519.public_key().public_bytes_raw()
        elif group in _CURVES:
            self._ec = _ec_private(group, private_override, random_bytes)
            self.public = _ec_public_bytes(self._ec)
        elif group == NamedGroup.X25519MLKEM768:
            raw = private_override or (
                random_bytes(MLKEM768_SEED_LENGTH) + random_bytes(X25519_LENGTH)
            )
            if len(raw) != MLKEM768_SEED_LENGTH + X25519_LENGTH:
                raise ValueError("X25519MLKEM768 override is seed(64) || x25519(32)")
            self._mlkem = mlkem.MLKEM768PrivateKey.from_seed_bytes(raw[:MLKEM768_SEED_LENGTH])
            self._x25519 = _x25519_private(raw[MLKEM768_SEED_LENGTH:])
            self.public = (
                self._mlkem.public_key().public_bytes_raw()
                + self._x25519.public_key().public_bytes_raw()
            )
        else:
            raise ValueError(f"unsupported group {group:#06x}")

    def exchange(self, server_share: bytes) -> bytes:
        """The shared secret from the server's ``key_exchange``."""
        if self._mlkem is not None:
            assert self._x25519 is not None
            if len(server_share) != MLKEM768_CIPHERTEXT_LENGTH + X25519_LENGTH:
                raise _illegal("X25519MLKEM768 server share has the wrong length")
            try:
                kem_secret = self._mlkem.decapsulate(server_share[:MLKEM768_CIPHERTEXT_LENGTH])
            except ValueError:
                raise AlertError(
                    AlertDescription.internal_error, "ML-KEM decapsulation failed"
                ) from None
            return kem_secret + _x25519_exchange(
                self._x25519, server_share[MLKEM768_CIPHERTEXT_LENGTH:]
            )
        if self._x25519 is not None:
            return _x25519_exchange(self._x25519, server_share)
        assert self._ec is not None
        return _ec_exchange(self.group, self._ec, server_share)


def server_key_exchange(
    group: int,
    client_share: bytes,
    random_bytes: RandomBytes,
    private_override: bytes | None = None,
) -> tuple[bytes, bytes]:
    """The server side: ``(server key_exchange, shared secret)`` for a client's share.

    For X25519MLKEM768 the server encapsulates to the client's ML-KEM key (the override, if
    any, is the 32-byte X25519 private key; encapsulation randomness is OpenSSL's).
    """
    if group == NamedGroup.X25519MLKEM768:
        if len(client_share) != MLKEM768_ENCAPSULATION_KEY_LENGTH + X25519_LENGTH:
            raise _illegal("X25519MLKEM768 client share has the wrong length")
        try:
            public = mlkem.MLKEM768PublicKey.from_public_bytes(
                client_share[:MLKEM768_ENCAPSULATION_KEY_LENGTH]
            )
        except ValueError:
            raise _illegal("ML-KEM encapsulation key check failed") from None
        kem_secret, ciphertext = public.encapsulate()
        x_private = _x25519_private(private_override or random_bytes(X25519_LENGTH))
        x_secret = _x25519_exchange(x_private, client_share[MLKEM768_ENCAPSULATION_KEY_LENGTH:])
        return ciphertext + x_private.public_key().public_bytes_raw(), kem_secret + x_secret
    share = ClientKeyShare(group, random_bytes, private_override)
    return share.public, share.exchange(client_share)
