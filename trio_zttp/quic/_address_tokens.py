"""Address-validation tokens for Retry and NEW_TOKEN (RFC 9000 §8.1.2-§8.1.4).

A server proves a client's address with a token it minted itself: a Retry token (valid for
seconds, bound to the address and port, carrying the original Destination Connection ID and
the Retry's Source Connection ID) or a NEW_TOKEN token (valid for a day, bound to the
address only, since a later connection comes from another port).  Tokens are AES-128-GCM
sealed under a key only the server knows, so they can be neither read nor forged.

:class:`AddressTokenHandler` is the default; anything with the same four methods (the
:class:`TokenHandler` protocol) can be given as ``Configuration(token_handler=...)``, for
instance one shared by several server processes.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any, Final, Protocol, final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = ["AddressTokenHandler", "RetryTokenData", "TokenHandler"]

_RETRY: Final = 1
_NEW_TOKEN: Final = 2
_HEAD: Final = struct.Struct("!Bd")
_NONCE_LENGTH: Final = 12

RetryTokenData = tuple[bytes, bytes]
"""``(original_destination_connection_id, retry_source_connection_id)``."""


class TokenHandler(Protocol):
    """Mints and checks address-validation tokens (server side)."""

    def mint_retry_token(self, address: Any, original_dcid: bytes, retry_scid: bytes,
                         now: float) -> bytes: ...

    def check_retry_token(self, token: bytes, address: Any, now: float
                          ) -> RetryTokenData | None: ...

    def mint_new_token(self, address: Any, now: float) -> bytes: ...

    def check_new_token(self, token: bytes, address: Any, now: float) -> bool: ...

    def is_retry_token(self, token: bytes) -> bool: ...


def _host(address: Any) -> bytes:
    return str(address[0]).encode()


def _host_port(address: Any) -> bytes:
    return f"{address[0]}|{address[1]}".encode()


@final
class AddressTokenHandler:
    """The default :class:`TokenHandler`: AES-GCM sealed, address-bound, expiring tokens.

    Args:
        key: 16 secret bytes.
        random_bytes: the source of nonces.
        retry_lifetime: seconds a Retry token stays valid.
        new_token_lifetime: seconds a NEW_TOKEN token stays valid.

    Times are wall-clock POSIX seconds given by the caller.
    """

    __slots__ = ("_aead", "_new_token_lifetime", "_random", "_retry_lifetime")

    def __init__(self, key: bytes, random_bytes: Callable[[int], bytes], *,
                 retry_lifetime: float = 10.0, new_token_lifetime: float = 86400.0) -> None:
        if len(key) != 16:
            raise ValueError("the token key is 16 bytes")
        self._aead = AESGCM(key)
        self._random = random_bytes
        self._retry_lifetime = retry_lifetime
        self._new_token_lifetime = new_token_lifetime

    def _seal(self, kind: int, now: float, body: bytes, aad: bytes) -> bytes:
        nonce = self._random(_NONCE_LENGTH)
        plain = _HEAD.pack(kind, now) + body
        return bytes((kind,)) + nonce + self._aead.encrypt(nonce, plain, aad)

    def _open(self, token: bytes, kind: int, aad: bytes, now: float,
              lifetime: float) -> bytes | None:
        if len(token) < 1 + _NONCE_LENGTH + _HEAD.size + 16 or token[0] != kind:
            return None
        nonce = token[1 : 1 + _NONCE_LENGTH]
        try:
            plain = self._aead.decrypt(nonce, token[1 + _NONCE_LENGTH :], aad)
        except InvalidTag:
            return None
        sealed_kind, issued = _HEAD.unpack_from(plain)
        if sealed_kind != kind or not issued - 1.0 <= now <= issued + lifetime:
            return None
        return plain[_HEAD.size :]

    def is_retry_token(self, token: bytes) -> bool:
        """Whether ``token`` claims to be a Retry token (a NEW_TOKEN token is not)."""
        return bool(token) and token[0] == _RETRY

    def mint_retry_token(self, address: Any, original_dcid: bytes, retry_scid: bytes,
                         now: float) -> bytes:
        body = bytes((len(original_dcid),)) + original_dcid + bytes((len(retry_scid),)) + retry_scid
        return self._seal(_RETRY, now, body, _host_port(address))

    def check_retry_token(self, token: bytes, address: Any, now: float
                          ) -> RetryTokenData | None:
        """``(original_dcid, retry_scid)`` when the token is ours, fresh and for ``address``."""
        body = self._open(token, _RETRY, _host_port(address), now, self._retry_lifetime)
        if body is None or not body:
            return None
        n = body[0]
        if len(body) < 2 + n or len(body) != 2 + n + body[1 + n]:
            return None
        return body[1 : 1 + n], body[2 + n :]

    def mint_new_token(self, address: Any, now: float) -> bytes:
        return self._seal(_NEW_TOKEN, now, b"", _host(address))

    def check_new_token(self, token: bytes, address: Any, now: float) -> bool:
        return self._open(token, _NEW_TOKEN, _host(address), now,
                          self._new_token_lifetime) is not None
