"""The TLS 1.3 key schedule and transcript hash (RFC 8446 §7.1, §4.4.1, §4.4.4).

::

             0
             |
   PSK ->  HKDF-Extract = Early Secret --> binder_key, client_early_traffic_secret
             |
       Derive-Secret(., "derived", "")
             |
  (EC)DHE -> HKDF-Extract = Handshake Secret --> {client,server}_handshake_traffic_secret
             |
       Derive-Secret(., "derived", "")
             |
   0 -> HKDF-Extract = Master Secret --> {client,server}_application_traffic_secret_0,
                                          exporter_master_secret, resumption_master_secret

:class:`Transcript` buffers messages until the cipher suite (and so the hash) is known, and
implements the HelloRetryRequest rewrite of ClientHello1 into ``message_hash``.
"""

from __future__ import annotations

import hashlib
from typing import Final, final

from .messages import HandshakeType
from .suites import CipherSuite, hash_length, hash_name, hkdf_expand_label, hkdf_extract
from .suites import hmac_digest as _hmac_digest
from .suites import hmac_new as _hmac_new

__all__ = [
    "KeySchedule",
    "Transcript",
    "derive_secret",
    "finished_verify_data",
    "resumption_psk",
]

_EMPTY_HASHES: Final = {name: hashlib.new(name).digest() for name in ("sha256", "sha384")}
_DIGEST_SIZES: Final = {name: len(empty) for name, empty in _EMPTY_HASHES.items()}


def _digest_size(hash_name: str) -> int:
    size = _DIGEST_SIZES.get(hash_name)
    return hashlib.new(hash_name).digest_size if size is None else size


def derive_secret(hash_name: str, secret: bytes, label: bytes, transcript_hash: bytes) -> bytes:
    """Derive-Secret(Secret, Label, Messages) given Transcript-Hash(Messages) (§7.1)."""
    return hkdf_expand_label(hash_name, secret, label, transcript_hash, _digest_size(hash_name))


def finished_verify_data(hash_name: str, base_key: bytes, transcript_hash: bytes) -> bytes:
    """HMAC(finished_key(base_key), transcript_hash): Finished and PSK binders (§4.4.4)."""
    size = _digest_size(hash_name)
    finished_key = hkdf_expand_label(hash_name, base_key, b"finished", b"", size)
    return _hmac_digest(finished_key, transcript_hash, hash_name)


def resumption_psk(suite: CipherSuite, resumption_master_secret: bytes, nonce: bytes) -> bytes:
    """The PSK of a ticket: HKDF-Expand-Label(rms, "resumption", nonce, Hash.length) (§4.6.1)."""
    return hkdf_expand_label(
        hash_name(suite), resumption_master_secret, b"resumption", nonce, hash_length(suite)
    )


@final
class Transcript:
    """Running Transcript-Hash of handshake messages.

    Until :meth:`set_hash` is called the messages are only buffered: a client learns the hash
    from the ServerHello, after it has sent its ClientHello.
    """

    __slots__ = ("_buffer", "_hash")

    def __init__(self, hash_name: str | None = None) -> None:
        self._buffer = bytearray()
        self._hash: hashlib._Hash | None = None
        if hash_name is not None:
            self.set_hash(hash_name)

    @property
    def hash_name(self) -> str | None:
        return None if self._hash is None else self._hash.name

    def set_hash(self, name: str) -> None:
        """Choose the hash (idempotent for the same hash) and hash what was buffered."""
        if self._hash is not None:
            if self._hash.name != name:
                raise ValueError("transcript hash already chosen")
            return
        self._hash = hashlib.new(name)
        self._hash.update(self._buffer)
        self._buffer = bytearray()

    def add(self, message: bytes) -> None:
        """Append one whole handshake message (header included)."""
        if self._hash is None:
            self._buffer += message
        else:
            self._hash.update(message)

    def digest(self) -> bytes:
        """Transcript-Hash of everything added so far."""
        if self._hash is None:
            raise ValueError("transcript hash not chosen yet")
        return self._hash.copy().digest()

    def digest_with(self, extra: bytes, name: str | None = None) -> bytes:
        """Transcript-Hash of everything so far plus ``extra``, without adding ``extra``.

        Before the hash is chosen, ``name`` says which hash to use (PSK binders).
        """
        if self._hash is not None:
            h = self._hash.copy()
        else:
            if name is None:
                raise ValueError("transcript hash not chosen yet")
            h = hashlib.new(name)
            h.update(self._buffer)
        h.update(extra)
        return h.digest()

    def restart_for_hello_retry(self, name: str) -> None:
        """Replace ClientHello1 by ``message_hash(Hash(ClientHello1))`` (§4.4.1).

        Call after adding ClientHello1 and before adding the HelloRetryRequest.
        """
        inner = self.digest_with(b"", name)
        self._hash = hashlib.new(name)
        self._buffer = bytearray()
        self._hash.update(
            bytes((HandshakeType.message_hash, 0, 0, len(inner))) + inner
        )


@final
class KeySchedule:
    """Secrets of one handshake for one cipher suite.

    Stages run in order: construction (early secret, optionally from a PSK), then
    :meth:`set_shared_secret` (handshake secret), then :meth:`set_master` (master secret).
    """

    __slots__ = (
        "suite",
        "hash_name",
        "hash_length",
        "early_secret",
        "handshake_secret",
        "master_secret",
        "_early_derived",
    )

    def __init__(self, suite: CipherSuite, psk: bytes | None = None) -> None:
        self.suite = suite
        self.hash_name = name = hash_name(suite)
        self.hash_length = hash_length(suite)
        self.handshake_secret: bytes | None = None
        self.master_secret: bytes | None = None
        self._early_derived: bytes | None = None
        if psk:
            self.early_secret = hkdf_extract(name, bytes(self.hash_length), psk)
        else:  # without a PSK the early secret and what derives from it are constants
            self.early_secret, self._early_derived = _no_psk_secrets(name)

    def _derive(self, secret: bytes | None, label: bytes, transcript_hash: bytes) -> bytes:
        if secret is None:
            raise ValueError("key schedule stage not reached")
        # derive_secret(), one call less: the output is one hash block, one HMAC
        name = self.hash_name
        info = _DERIVE_INFOS.get((name, label))
        if info is None:
            full = b"tls13 " + label
            info = (self.hash_length.to_bytes(2, "big") + bytes((len(full),)) + full)
            _DERIVE_INFOS[name, label] = info
        return _hmac_new(secret, info + bytes((len(transcript_hash),)) + transcript_hash
                         + b"\x01", name).digest()

    # early secret ----------------------------------------------------------------------

    def binder_key(self, *, external: bool = False) -> bytes:
        """``ext binder`` or ``res binder`` key (resumption by default)."""
        label = b"ext binder" if external else b"res binder"
        return self._derive(self.early_secret, label, _EMPTY_HASHES[self.hash_name])

    def client_early_traffic_secret(self, client_hello_hash: bytes) -> bytes:
        return self._derive(self.early_secret, b"c e traffic", client_hello_hash)

    def early_exporter_master_secret(self, client_hello_hash: bytes) -> bytes:
        return self._derive(self.early_secret, b"e exp master", client_hello_hash)

    # handshake secret ------------------------------------------------------------------

    def set_shared_secret(self, shared_secret: bytes) -> None:
        """Mix in the (EC)DHE shared secret: Handshake Secret."""
        derived = self._early_derived
        if derived is None:
            derived = self._derive(self.early_secret, b"derived", _EMPTY_HASHES[self.hash_name])
        self.handshake_secret = hkdf_extract(self.hash_name, derived, shared_secret)

    def client_handshake_traffic_secret(self, transcript_hash: bytes) -> bytes:
        return self._derive(self.handshake_secret, b"c hs traffic", transcript_hash)

    def server_handshake_traffic_secret(self, transcript_hash: bytes) -> bytes:
        return self._derive(self.handshake_secret, b"s hs traffic", transcript_hash)

    # master secret ---------------------------------------------------------------------

    def set_master(self) -> None:
        """Master Secret = HKDF-Extract(Derive-Secret(hs, "derived", ""), 0)."""
        derived = self._derive(self.handshake_secret, b"derived", _EMPTY_HASHES[self.hash_name])
        self.master_secret = hkdf_extract(self.hash_name, derived, bytes(self.hash_length))

    def client_application_traffic_secret(self, transcript_hash: bytes) -> bytes:
        return self._derive(self.master_secret, b"c ap traffic", transcript_hash)

    def server_application_traffic_secret(self, transcript_hash: bytes) -> bytes:
        return self._derive(self.master_secret, b"s ap traffic", transcript_hash)

    def exporter_master_secret(self, transcript_hash: bytes) -> bytes:
        return self._derive(self.master_secret, b"exp master", transcript_hash)

    def resumption_master_secret(self, transcript_hash: bytes) -> bytes:
        return self._derive(self.master_secret, b"res master", transcript_hash)

    # Finished --------------------------------------------------------------------------

    def finished_key(self, base_key: bytes) -> bytes:
        """finished_key = HKDF-Expand-Label(base_key, "finished", "", Hash.length)."""
        return hkdf_expand_label(self.hash_name, base_key, b"finished", b"", self.hash_length)

    def verify_data(self, base_key: bytes, transcript_hash: bytes) -> bytes:
        """Finished.verify_data (or a PSK binder) over ``transcript_hash``."""
        return finished_verify_data(self.hash_name, base_key, transcript_hash)


#: ``uint16 length || opaque label`` of Derive-Secret's HkdfLabel, by (hash, label); the
#: labels are the RFC's few
_DERIVE_INFOS: Final[dict[tuple[str, bytes], bytes]] = {}
_NO_PSK: Final[dict[str, tuple[bytes, bytes]]] = {}


def _no_psk_secrets(name: str) -> tuple[bytes, bytes]:
    """Early Secret without a PSK, and Derive-Secret(it, "derived", ""), for ``name``."""
    secrets = _NO_PSK.get(name)
    if secrets is None:
        zeros = bytes(_digest_size(name))
        early = hkdf_extract(name, zeros, zeros)
        derived = derive_secret(name, early, b"derived", _EMPTY_HASHES[name])
        secrets = _NO_PSK[name] = (early, derived)
    return secrets
