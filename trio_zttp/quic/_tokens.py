"""Address-validation tokens for Retry (RFC 9000 §8.1.2-§8.1.4, §17.2.5).

A server under load answers an Initial with a Retry carrying a token; the client repeats
its Initial with that token, which proves it receives packets at the address it claims.
The token must let the server (and only the server) recover, statelessly:

* the Original Destination Connection ID of the client's first Initial and the Source
  Connection ID the Retry chose, which the server's transport parameters must echo
  (``original_destination_connection_id``, ``retry_source_connection_id``);
* that it was issued to this client address, and not too long ago.

Layout (all of it opaque to clients)::

    kind (1) | nonce (12) | AES-GCM(expiry (8, double) | len | odcid | len | rscid) | tag (16)

with the kind byte and the client address (IP bytes, then port) as associated data, so a
token replayed from another address, altered in any byte, or past its expiry decodes to
None.  ``now`` and the expiry are in the driver's clock (the trio layer passes
:func:`trio.current_time`); Retry tokens live seconds, so a process-local clock suffices.
Randomness (nonces) comes from the injected ``random_bytes``.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Callable
from typing import Final, final

import attrs
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = ["RETRY_TOKEN_LIFETIME", "AddressTokens", "RetryTokenContents"]

RETRY_TOKEN_LIFETIME: Final = 10.0
"""Seconds a Retry token stays valid by default."""

_KIND_RETRY: Final = 0x52
_NONCE_LENGTH: Final = 12
_TAG_LENGTH: Final = 16
_EXPIRY: Final = struct.Struct("!d")
_PORT: Final = struct.Struct("!H")
_MAX_CID: Final = 20
_MIN_LENGTH: Final = 1 + _NONCE_LENGTH + _EXPIRY.size + 2 + _TAG_LENGTH


@final
@attrs.frozen(kw_only=True)
class RetryTokenContents:
    """What a valid Retry token carries."""

    #: The Destination Connection ID of the client's first Initial.
    original_destination_connection_id: bytes
    #: The Source Connection ID of our Retry (the client's next Destination Connection ID).
    retry_source_connection_id: bytes


def _address_bytes(address: tuple[str, int]) -> bytes:
    host, port = address[0], address[1]
    try:
        packed = ipaddress.ip_address(host.split("%", 1)[0]).packed
    except ValueError:
        packed = host.encode("utf-8", "surrogateescape")
    return packed + _PORT.pack(port & 0xFFFF)


@final
class AddressTokens:
    """Seals and opens Retry tokens under one AES-GCM key.

    Args:
        key: 16 or 32 secret bytes; every server process sharing a port must share it.
        random_bytes: The source of nonces.
    """

    __slots__ = ("_aead", "_random_bytes")

    def __init__(self, key: bytes, random_bytes: Callable[[int], bytes]) -> None:
        if len(key) not in (16, 32):
            raise ValueError("the token key must be 16 or 32 bytes")
        self._aead = AESGCM(key)
        self._random_bytes = random_bytes

    def encode_retry_token(
        self,
        *,
        address: tuple[str, int],
        original_destination_connection_id: bytes,
        retry_source_connection_id: bytes,
        now: float,
        lifetime: float = RETRY_TOKEN_LIFETIME,
    ) -> bytes:
        """Seal a Retry token for a client at ``address``, valid until ``now + lifetime``."""
        odcid = original_destination_connection_id
        rscid = retry_source_connection_id
        if len(odcid) > _MAX_CID or len(rscid) > _MAX_CID:
            raise ValueError("connection IDs are at most 20 bytes")
        plaintext = b"".join(
            (_EXPIRY.pack(now + lifetime), bytes((len(odcid),)), odcid, bytes((len(rscid),)),
             rscid)
        )  # fmt: skip
        nonce = self._random_bytes(_NONCE_LENGTH)
        kind = bytes((_KIND_RETRY,))
        sealed = self._aead.encrypt(nonce, plaintext, kind + _address_bytes(address))
        return kind + nonce + sealed

    def decode_retry_token(
        self, token: bytes, *, address: tuple[str, int], now: float
    ) -> RetryTokenContents | None:
        """Open a Retry token; None unless it is ours, intact, for ``address`` and unexpired."""
        if len(token) < _MIN_LENGTH or token[0] != _KIND_RETRY:
            return None
        nonce = token[1 : 1 + _NONCE_LENGTH]
        try:
            plaintext = self._aead.decrypt(
                nonce, token[1 + _NONCE_LENGTH :], token[:1] + _address_bytes(address)
            )
        except InvalidTag:
            return None
        # We sealed it, so the layout holds; check anyway rather than trust a key mix-up.
        if len(plaintext) < _EXPIRY.size + 2:
            return None
        (expiry,) = _EXPIRY.unpack_from(plaintext, 0)
        pos = _EXPIRY.size
        odcid_length = plaintext[pos]
        odcid = plaintext[pos + 1 : pos + 1 + odcid_length]
        pos += 1 + odcid_length
        if pos >= len(plaintext):
            return None
        rscid_length = plaintext[pos]
        rscid = plaintext[pos + 1 : pos + 1 + rscid_length]
        if pos + 1 + rscid_length != len(plaintext) or not now <= expiry:
            return None
        return RetryTokenContents(
            original_destination_connection_id=odcid, retry_source_connection_id=rscid
        )
