"""Session tickets: resumption and 0-RTT state on both sides (RFC 8446 §4.6.1, §8; RFC 9001 §4.6).

Server side, stateless: a :class:`ResumptionState` is sealed into the opaque ticket bytes by a
:class:`TicketProtector` (AES-256-GCM under a rotating key) and recovered from the
ClientHello's PSK identity; nothing is stored per ticket except the replay defence for
0-RTT, :class:`SingleUseTicketGuard`, plus the freshness check :meth:`ResumptionState.is_fresh`.

Client side: a :class:`SessionTicket` holds what the client needs to resume (the PSK, the
suite, the ALPN, the server's transport parameters for 0-RTT) and serialises with
:meth:`SessionTicket.to_bytes` so applications can persist it; :class:`TicketStore` is the
storage interface and :class:`MemoryTicketStore` the bounded default.

Times are wall-clock POSIX seconds (floats) supplied by the caller; nothing here reads a clock.
"""

from __future__ import annotations

import hashlib
import heapq
import struct
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from typing import Final, Protocol, final

import attrs
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .._buffer import Reader, Writer
from .suites import CipherSuite, hkdf_expand_label

__all__ = [
    "MAX_TICKET_LIFETIME",
    "MemoryTicketStore",
    "ResumptionState",
    "SessionTicket",
    "SingleUseTicketGuard",
    "TicketProtector",
    "TicketStore",
    "pop_usable_ticket",
    "psk_from_resumption_secret",
]

MAX_TICKET_LIFETIME: Final = 604800
"""Seven days: the longest a ticket may live or be cached (RFC 8446 §4.6.1)."""

_DOUBLE: Final = struct.Struct(">d")
_AGE_MODULUS: Final = 1 << 32


def psk_from_resumption_secret(
    hash_name: str, resumption_master_secret: bytes, ticket_nonce: bytes
) -> bytes:
    """The PSK a ticket stands for (RFC 8446 §4.6.1).

    ``HKDF-Expand-Label(resumption_master_secret, "resumption", ticket_nonce, Hash.length)``.
    """
    return hkdf_expand_label(
        hash_name,
        resumption_master_secret,
        b"resumption",
        ticket_nonce,
        len(resumption_master_secret),
    )


# ------------------------------------------------------------------ field codecs


def _push_optional(writer: Writer, value: bytes | None) -> None:
    if value is None:
        writer.push_uint8(0)
    else:
        writer.push_uint8(1)
        writer.push_varint_bytes(value)


def _pull_optional(reader: Reader) -> bytes | None:
    flag = reader.pull_uint8()
    if flag == 0:
        return None
    if flag != 1:
        raise ValueError("bad presence flag")
    return reader.pull_varint_bytes()


def _encode_text(value: str | None) -> bytes | None:
    return None if value is None else value.encode("utf-8")


def _decode_text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("utf-8")


def _check_uint32(name: str, value: int) -> None:
    if not 0 <= value < _AGE_MODULUS:
        raise ValueError(f"{name} must fit in 32 bits, got {value}")


# ------------------------------------------------------------------ server side


@final
@attrs.frozen(kw_only=True)
class ResumptionState:
    """What the server seals into a ticket and needs back to resume (and accept 0-RTT)."""

    cipher_suite: CipherSuite
    """The suite of the connection that issued the ticket; resumption must match its hash."""
    psk: bytes
    """The resumption PSK (:func:`psk_from_resumption_secret`)."""
    issued_at: float
    """Wall-clock POSIX seconds when the ticket was issued."""
    lifetime: int
    """``ticket_lifetime`` in seconds, at most :data:`MAX_TICKET_LIFETIME`."""
    age_add: int
    """``ticket_age_add``: the 32-bit value that obfuscates the client's ticket age."""
    ticket_nonce: bytes
    """``ticket_nonce`` from the NewSessionTicket."""
    max_early_data: int = 0
    """``max_early_data_size`` offered in the ticket (0: no 0-RTT; QUIC uses 0xffffffff)."""
    alpn: str | None = None
    """The ALPN protocol negotiated; 0-RTT requires the same one (RFC 8446 §4.2.10)."""
    server_name: str | None = None
    """The SNI of the issuing connection."""
    early_data_context: bytes = b""
    """Opaque bytes the server needs to accept 0-RTT, e.g. the transport parameters and
    application settings it promised (RFC 9000 §7.4.1, RFC 9114 §7.2.4.2)."""
    client_identity: bytes | None = None
    """The authenticated client's identity (e.g. its leaf certificate, DER), if any."""

    def __attrs_post_init__(self) -> None:
        _check_uint32("age_add", self.age_add)
        _check_uint32("max_early_data", self.max_early_data)
        if not 0 <= self.lifetime <= MAX_TICKET_LIFETIME:
            raise ValueError(f"lifetime must be 0..{MAX_TICKET_LIFETIME} seconds")

    @property
    def expires_at(self) -> float:
        """Wall-clock POSIX seconds after which the ticket is refused."""
        return self.issued_at + self.lifetime

    def is_expired(self, now: float) -> bool:
        """Whether the ticket's lifetime has run out at wall-clock ``now``."""
        return now >= self.expires_at

    def client_ticket_age(self, obfuscated_age: int) -> float:
        """The ticket age in seconds the client claims (RFC 8446 §4.2.11.1)."""
        return ((obfuscated_age - self.age_add) % _AGE_MODULUS) / 1000

    def is_fresh(self, obfuscated_age: int, now: float, *, window: float = 10.0) -> bool:
        """RFC 8446 §8.3 freshness check for 0-RTT.

        The client's claimed age must agree with the server's own view of the ticket's age
        (``now - issued_at``) within ``window`` seconds, which bounds how late a captured
        ClientHello can be replayed.  A stale ClientHello falls back to 1-RTT.
        """
        if self.is_expired(now):
            return False
        return abs((now - self.issued_at) - self.client_ticket_age(obfuscated_age)) <= window

    def _encode(self) -> bytes:
        w = Writer()
        w.push_uint8(1)  # format version
        w.push_uint16(self.cipher_suite)
        w.push_uint8_bytes(self.psk)
        w.push_bytes(_DOUBLE.pack(self.issued_at))
        w.push_uint32(self.lifetime)
        w.push_uint32(self.age_add)
        w.push_uint32(self.max_early_data)
        w.push_uint8_bytes(self.ticket_nonce)
        _push_optional(w, _encode_text(self.alpn))
        _push_optional(w, _encode_text(self.server_name))
        w.push_varint_bytes(self.early_data_context)
        _push_optional(w, self.client_identity)
        return w.getvalue()

    @classmethod
    def _decode(cls, data: bytes) -> ResumptionState:
        r = Reader(data)
        if r.pull_uint8() != 1:
            raise ValueError("unknown format version")
        state = cls(
            cipher_suite=CipherSuite(r.pull_uint16()),
            psk=r.pull_uint8_bytes(),
            issued_at=_DOUBLE.unpack(r.pull_bytes(8))[0],
            lifetime=r.pull_uint32(),
            age_add=r.pull_uint32(),
            max_early_data=r.pull_uint32(),
            ticket_nonce=r.pull_uint8_bytes(),
            alpn=_decode_text(_pull_optional(r)),
            server_name=_decode_text(_pull_optional(r)),
            early_data_context=r.pull_varint_bytes(),
            client_identity=_pull_optional(r),
        )
        if not r.eof():
            raise ValueError("trailing bytes")
        return state


_KEY_ID_SIZE: Final = 4
_NONCE_SIZE: Final = 12
_TAG_SIZE: Final = 16
_AAD_LABEL: Final = b"trio_zttp ticket v1"


@final
class TicketProtector:
    """Seals :class:`ResumptionState` into self-contained, authenticated, encrypted tickets.

    A ticket is ``key_id (4) || nonce (12) || AES-256-GCM(state)``. The AEAD key and the
    key id are both derived from the 32-byte ``key`` with HKDF, so the id reveals nothing
    about the key.  Rotate by constructing a new protector with the new key and the old
    ones in ``previous_keys``: it seals with the new key and still opens tickets sealed
    under the old ones.  With random 96-bit nonces keep each key below about 2**32 tickets.
    """

    __slots__ = ("_aead", "_key_id", "_openers", "_random_bytes")

    def __init__(
        self,
        key: bytes,
        random_bytes: Callable[[int], bytes],
        *,
        previous_keys: Sequence[bytes] = (),
    ) -> None:
        """Args:
        key: 32 secret bytes (from the configuration's randomness, or shared across a
            server cluster so that any node opens any node's tickets).
        random_bytes: source of nonces.
        previous_keys: retired keys whose tickets are still accepted.

        Raises:
            ValueError: a key is not 32 bytes.
        """
        self._random_bytes = random_bytes
        self._key_id, self._aead = self._derive(key)
        self._openers: dict[bytes, list[AESGCM]] = {}
        for k in (key, *previous_keys):
            key_id, aead = self._derive(k)
            self._openers.setdefault(key_id, []).append(aead)

    @staticmethod
    def _derive(key: bytes) -> tuple[bytes, AESGCM]:
        if len(key) != 32:
            raise ValueError("ticket keys are 32 bytes")
        aead_key = hkdf_expand_label("sha256", key, b"zttp ticket key", b"", 32)
        key_id = hkdf_expand_label("sha256", key, b"zttp ticket id", b"", _KEY_ID_SIZE)
        return key_id, AESGCM(aead_key)

    def seal(self, state: ResumptionState) -> bytes:
        """Encrypt ``state`` into ticket bytes for a NewSessionTicket."""
        nonce = self._random_bytes(_NONCE_SIZE)
        if len(nonce) != _NONCE_SIZE:
            raise ValueError("random_bytes returned the wrong number of bytes")
        sealed = self._aead.encrypt(nonce, state._encode(), self._key_id + _AAD_LABEL)
        return self._key_id + nonce + sealed

    def open(self, ticket: bytes) -> ResumptionState | None:
        """Recover the state from a ticket; ``None`` for anything not sealed by our keys.

        Never raises on peer input: garbage, truncation, tampering, unknown key ids and
        undecodable contents all give ``None`` (the handshake then ignores that PSK).
        """
        if len(ticket) < _KEY_ID_SIZE + _NONCE_SIZE + _TAG_SIZE:
            return None
        ticket = bytes(ticket)
        key_id = ticket[:_KEY_ID_SIZE]
        nonce = ticket[_KEY_ID_SIZE : _KEY_ID_SIZE + _NONCE_SIZE]
        sealed = ticket[_KEY_ID_SIZE + _NONCE_SIZE :]
        for aead in self._openers.get(key_id, ()):
            try:
                plaintext = aead.decrypt(nonce, sealed, key_id + _AAD_LABEL)
            except InvalidTag:
                continue
            try:
                return ResumptionState._decode(plaintext)
            except ValueError:  # BufferReadError, bad enum, bad UTF-8: all ValueErrors
                return None
        return None


@final
class SingleUseTicketGuard:
    """Anti-replay for 0-RTT: each ticket is accepted for early data at most once.

    RFC 8446 §8.1 single-use tickets in bounded memory: a ticket is remembered until
    ``expires_at`` (after which a replay is refused anyway, by expiry or by the freshness
    check), then forgotten.  When ``capacity`` tickets are remembered and none has expired,
    new tickets are refused for 0-RTT rather than letting memory grow (the handshake then
    proceeds in 1-RTT, which is always safe).
    """

    __slots__ = ("_capacity", "_expiries", "_seen")

    def __init__(self, capacity: int = 16384) -> None:
        """Args:
        capacity: the most tickets remembered at once.
        """
        if capacity < 1:
            raise ValueError("capacity must be positive")
        self._capacity = capacity
        self._seen: set[bytes] = set()
        self._expiries: list[tuple[float, bytes]] = []

    def __len__(self) -> int:
        return len(self._seen)

    def use(self, ticket: bytes, *, expires_at: float, now: float) -> bool:
        """Record a use of ``ticket`` for 0-RTT; True the first time, False for a replay.

        Also False when the guard is full (the caller refuses 0-RTT, not the resumption).

        Args:
            ticket: the PSK identity as the client sent it.
            expires_at: until when to remember it: the ticket's
                :attr:`~ResumptionState.expires_at`, or, when 0-RTT also requires
                :meth:`~ResumptionState.is_fresh`, the end of its freshness window.
            now: wall-clock POSIX seconds.
        """
        self._evict(now)
        key = hashlib.blake2b(ticket, digest_size=16).digest()
        if key in self._seen or len(self._seen) >= self._capacity or expires_at <= now:
            return False
        self._seen.add(key)
        heapq.heappush(self._expiries, (expires_at, key))
        return True

    def _evict(self, now: float) -> None:
        expiries = self._expiries
        while expiries and expiries[0][0] <= now:
            self._seen.discard(heapq.heappop(expiries)[1])


# ------------------------------------------------------------------ client side

_TICKET_MAGIC: Final = b"ZTST\x01"


@final
@attrs.frozen(kw_only=True)
class SessionTicket:
    """A ticket the client received, with everything needed to resume and send 0-RTT.

    Persist with :meth:`to_bytes` / :meth:`from_bytes`; the bytes contain the PSK, so store
    them as secrets.
    """

    ticket: bytes
    """The opaque ticket (the PSK identity)."""
    psk: bytes
    """The resumption PSK derived from the resumption master secret and the ticket nonce."""
    cipher_suite: CipherSuite
    """The suite of the connection the ticket came from."""
    server_name: str
    """The server name the ticket is for (the store's key)."""
    received_at: float
    """Wall-clock POSIX seconds when the NewSessionTicket arrived."""
    lifetime: int
    """``ticket_lifetime`` in seconds (capped at :data:`MAX_TICKET_LIFETIME` when used)."""
    age_add: int
    """``ticket_age_add``."""
    max_early_data_size: int = 0
    """From the ``early_data`` extension; 0 means the ticket does not allow 0-RTT."""
    alpn: str | None = None
    """The ALPN protocol of the original connection (0-RTT must use the same)."""
    quic_version: int | None = None
    """The QUIC version of the original connection; 0-RTT must use the same one."""
    peer_transport_parameters: bytes | None = None
    """The server's transport parameters, encoded, remembered for 0-RTT (RFC 9000 §7.4.1)."""
    peer_application_settings: bytes | None = None
    """The application's remembered peer settings, e.g. HTTP/3 SETTINGS (RFC 9114 §7.2.4.2)."""

    def __attrs_post_init__(self) -> None:
        _check_uint32("age_add", self.age_add)
        _check_uint32("max_early_data_size", self.max_early_data_size)
        _check_uint32("lifetime", self.lifetime)

    @property
    def allows_early_data(self) -> bool:
        """Whether the server allowed 0-RTT with this ticket."""
        return self.max_early_data_size > 0

    def is_expired(self, now: float) -> bool:
        """Whether the ticket must no longer be used at wall-clock ``now``."""
        return now >= self.received_at + min(self.lifetime, MAX_TICKET_LIFETIME)

    def obfuscated_age(self, now: float) -> int:
        """``obfuscated_ticket_age`` for the ClientHello (RFC 8446 §4.2.11.1)."""
        age_ms = max(0, int((now - self.received_at) * 1000))
        return (age_ms + self.age_add) % _AGE_MODULUS

    def to_bytes(self) -> bytes:
        """Serialise for storage (versioned; includes the PSK)."""
        w = Writer()
        w.push_bytes(_TICKET_MAGIC)
        w.push_varint_bytes(self.ticket)
        w.push_uint8_bytes(self.psk)
        w.push_uint16(self.cipher_suite)
        w.push_varint_bytes(self.server_name.encode("utf-8"))
        w.push_bytes(_DOUBLE.pack(self.received_at))
        w.push_uint32(self.lifetime)
        w.push_uint32(self.age_add)
        w.push_uint32(self.max_early_data_size)
        _push_optional(w, _encode_text(self.alpn))
        if self.quic_version is None:
            w.push_uint8(0)
        else:
            w.push_uint8(1)
            w.push_uint32(self.quic_version)
        _push_optional(w, self.peer_transport_parameters)
        _push_optional(w, self.peer_application_settings)
        return w.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> SessionTicket:
        """Load a ticket saved with :meth:`to_bytes`.

        Raises:
            ValueError: ``data`` is not a serialised ticket (or from an unknown version).
        """
        if not bytes(data[: len(_TICKET_MAGIC)]) == _TICKET_MAGIC:
            raise ValueError("not a serialised trio_zttp session ticket")
        r = Reader(data, len(_TICKET_MAGIC))
        try:
            ticket = r.pull_varint_bytes()
            psk = r.pull_uint8_bytes()
            cipher_suite = CipherSuite(r.pull_uint16())
            server_name = r.pull_varint_bytes().decode("utf-8")
            received_at = _DOUBLE.unpack(r.pull_bytes(8))[0]
            lifetime, age_add, max_early = r.pull_uint32(), r.pull_uint32(), r.pull_uint32()
            alpn = _decode_text(_pull_optional(r))
            has_version = r.pull_uint8()
            if has_version not in (0, 1):
                raise ValueError("bad presence flag")
            quic_version = r.pull_uint32() if has_version else None
            transport_parameters = _pull_optional(r)
            application_settings = _pull_optional(r)
        except ValueError as exc:
            raise ValueError(f"malformed session ticket: {exc}") from None
        if not r.eof():
            raise ValueError("malformed session ticket: trailing bytes")
        return cls(
            ticket=ticket,
            psk=psk,
            cipher_suite=cipher_suite,
            server_name=server_name,
            received_at=received_at,
            lifetime=lifetime,
            age_add=age_add,
            max_early_data_size=max_early,
            alpn=alpn,
            quic_version=quic_version,
            peer_transport_parameters=transport_parameters,
            peer_application_settings=application_settings,
        )


class TicketStore(Protocol):
    """Where a client keeps session tickets between connections."""

    def add(self, ticket: SessionTicket) -> None:
        """Keep ``ticket`` for ``ticket.server_name``."""

    def pop(self, server_name: str) -> SessionTicket | None:
        """Remove and return the most recent ticket for ``server_name``, if any.

        Tickets are single-use: a ticket handed out is not handed out again.
        """


@final
class MemoryTicketStore:
    """A bounded in-memory :class:`TicketStore`.

    Keeps at most ``max_per_server`` tickets per server name (dropping the oldest) and at
    most ``max_servers`` server names (dropping the least recently added to).
    """

    __slots__ = ("_max_per_server", "_max_servers", "_tickets")

    def __init__(self, *, max_per_server: int = 4, max_servers: int = 256) -> None:
        if max_per_server < 1 or max_servers < 1:
            raise ValueError("limits must be positive")
        self._max_per_server = max_per_server
        self._max_servers = max_servers
        self._tickets: OrderedDict[str, deque[SessionTicket]] = OrderedDict()

    def __len__(self) -> int:
        return sum(len(tickets) for tickets in self._tickets.values())

    def add(self, ticket: SessionTicket) -> None:
        """Keep ``ticket`` as the most recent for its server name."""
        tickets = self._tickets.get(ticket.server_name)
        if tickets is None:
            tickets = self._tickets[ticket.server_name] = deque(maxlen=self._max_per_server)
            while len(self._tickets) > self._max_servers:
                self._tickets.popitem(last=False)
        else:
            self._tickets.move_to_end(ticket.server_name)
        tickets.appendleft(ticket)

    def pop(self, server_name: str) -> SessionTicket | None:
        """Remove and return the most recent ticket for ``server_name``."""
        tickets = self._tickets.get(server_name)
        if not tickets:
            return None
        ticket = tickets.popleft()
        if not tickets:
            del self._tickets[server_name]
        return ticket


def pop_usable_ticket(
    store: TicketStore, server_name: str, now: float, *, max_discards: int = 64
) -> SessionTicket | None:
    """The most recent unexpired ticket for ``server_name``; expired ones are discarded.

    Gives up after ``max_discards`` expired tickets, so a store that never empties cannot
    stall a handshake.
    """
    for _ in range(max_discards + 1):
        ticket = store.pop(server_name)
        if ticket is None or not ticket.is_expired(now):
            return ticket
    return None
