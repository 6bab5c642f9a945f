"""TLS configuration for one endpoint, and the ClientHello shape as data.

:class:`TlsConfiguration` says *what* this endpoint accepts and offers (suites, groups,
signature schemes, certificates, tickets, ALPN).  :class:`ClientHelloSpec` says *how* a client
lays its ClientHello out: the order of cipher suites and extensions, which groups get a key
share, GREASE (RFC 8701) and where it goes.  The client serialises the spec; nothing about the
shape is hard-coded, so a fingerprint preset is a spec value.  The default spec is the plain
RFC shape without GREASE.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Mapping
from typing import Any, Final, Literal, TypeAlias, final

import attrs
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from .. import _defaults
from .extensions import TLS13, ExtensionType, NamedGroup, PskKeyExchangeMode
from .messages import encode_certificate
from .suites import CipherSuite
from .tickets import SessionTicket, SingleUseTicketGuard, TicketProtector, TicketStore
from .verify import DEFAULT_SIGNATURE_SCHEMES, SigningKey

__all__ = [
    "DEFAULT_CLIENT_HELLO",
    "DEFAULT_EXTENSION_ORDER",
    "GREASE",
    "ClientAuth",
    "ClientHelloSpec",
    "Slot",
    "TlsConfiguration",
]

GREASE: Final = "GREASE"
"""A placeholder in a :class:`ClientHelloSpec` list: a GREASE value goes here (RFC 8701)."""

Slot: TypeAlias = int | Literal["GREASE"]
"""A code point, or :data:`GREASE`."""

ClientAuth: TypeAlias = Literal["none", "request", "require"]

_E = ExtensionType

DEFAULT_EXTENSION_ORDER: Final[tuple[Slot, ...]] = (
    _E.server_name,
    _E.supported_groups,
    _E.signature_algorithms,
    _E.application_layer_protocol_negotiation,
    _E.supported_versions,
    _E.psk_key_exchange_modes,
    _E.key_share,
    _E.early_data,
    _E.cookie,
    _E.quic_transport_parameters,
    _E.pre_shared_key,
)
"""The plain RFC 8446 layout; ``pre_shared_key`` is always last (§4.2.11)."""


def _slots(value: object) -> tuple[Slot, ...]:
    if isinstance(value, str | bytes):
        raise TypeError("expected a sequence of code points")
    return tuple(value)  # type: ignore[arg-type]


def _optional_slots(value: object) -> tuple[Slot, ...] | None:
    return None if value is None else _slots(value)


@final
@attrs.frozen(kw_only=True)
class ClientHelloSpec:
    """The shape of a client's ClientHello, as data.

    Lists left ``None`` take their values from the :class:`TlsConfiguration`.  Any list may
    hold :data:`GREASE` placeholders; they are filled with per-connection GREASE values when
    ``grease`` is true and dropped otherwise.  An extension absent from ``extension_order`` is
    not sent (``cookie`` and ``pre_shared_key`` excepted: the first goes before the second,
    which is always last); ``extra_extensions`` are sent where their type appears in
    ``extension_order`` (appended before ``pre_shared_key`` if it does not).
    """

    cipher_suites: tuple[Slot, ...] | None = attrs.field(
        default=None, converter=_optional_slots
    )
    """Offered cipher suites in order (None: the configuration's)."""
    extension_order: tuple[Slot, ...] = attrs.field(
        default=DEFAULT_EXTENSION_ORDER, converter=_slots
    )
    """Extension types in the order they appear (GREASE slots become GREASE extensions)."""
    supported_groups: tuple[Slot, ...] | None = attrs.field(
        default=None, converter=_optional_slots
    )
    """``supported_groups`` in order (None: the configuration's)."""
    key_share_groups: tuple[Slot, ...] | None = attrs.field(
        default=None, converter=_optional_slots
    )
    """Groups that get a key share, in order (None: the configuration's)."""
    signature_algorithms: tuple[Slot, ...] | None = attrs.field(
        default=None, converter=_optional_slots
    )
    """``signature_algorithms`` in order (None: the configuration's)."""
    signature_algorithms_cert: tuple[int, ...] | None = None
    """``signature_algorithms_cert``, sent when given and listed in ``extension_order``."""
    supported_versions: tuple[Slot, ...] = attrs.field(default=(TLS13,), converter=_slots)
    """``supported_versions`` in order; must contain TLS 1.3 (0x0304)."""
    psk_key_exchange_modes: tuple[Slot, ...] = attrs.field(
        default=(PskKeyExchangeMode.psk_dhe_ke,), converter=_slots
    )
    """``psk_key_exchange_modes``; GREASE slots become RFC 8701 one-byte GREASE modes."""
    alpn_protocols: tuple[str, ...] | None = attrs.field(
        default=None, converter=attrs.converters.optional(tuple)
    )
    """ALPN list (None: the configuration's)."""
    grease: bool = False
    """Fill GREASE slots (True) or drop them (False)."""
    extra_extensions: tuple[tuple[int, bytes], ...] = attrs.field(default=(), converter=tuple)
    """Raw ``(type, body)`` extensions to add, such as ``record_size_limit``."""
    legacy_compression_methods: bytes = b"\x00"

    def __attrs_post_init__(self) -> None:
        order = self.extension_order
        if _E.pre_shared_key in order and order[-1] != _E.pre_shared_key:
            raise ValueError("pre_shared_key must be the last extension")
        if TLS13 not in self.supported_versions:
            raise ValueError("supported_versions must offer TLS 1.3")
        numbered = [slot for slot in order if slot != GREASE]
        if len(numbered) != len(set(numbered)):
            raise ValueError("an extension appears twice in extension_order")


DEFAULT_CLIENT_HELLO: Final = ClientHelloSpec()
"""The plain RFC shape: no GREASE, configuration order, one x25519 share."""


def _private_keys(value: Mapping[int, bytes]) -> tuple[tuple[int, bytes], ...]:
    return tuple(sorted(dict(value).items()))


@final
@attrs.frozen(kw_only=True)
class TlsConfiguration:
    """Everything one TLS endpoint needs; shared by every connection it makes or accepts."""

    is_client: bool
    """Client (True) or server (False)."""
    alpn_protocols: tuple[str, ...] = attrs.field(converter=tuple)
    """Application protocols, most preferred first; QUIC requires ALPN (RFC 9001 §8.1)."""
    server_name: str | None = None
    """Client: the name to send in SNI (not for IP addresses) and to verify the server for."""
    certificate_chain: tuple[x509.Certificate, ...] = attrs.field(default=(), converter=tuple)
    """Our certificate, leaf first; required on a server, optional on a client."""
    private_key: SigningKey | None = None
    """The key of ``certificate_chain[0]``."""
    verify_peer: bool = True
    """Verify the peer's certificate chain; off only when set False explicitly."""
    cafile: str | None = None
    """Trusted roots (PEM bundle or one DER certificate)."""
    cadata: bytes | None = None
    """Trusted roots in memory."""
    use_system_store: bool | None = None
    """Trust the operating system's roots; None: only when neither cafile nor cadata is set."""
    cipher_suites: tuple[CipherSuite, ...] = attrs.field(
        default=(
            CipherSuite.AES_128_GCM_SHA256,
            CipherSuite.AES_256_GCM_SHA384,
            CipherSuite.CHACHA20_POLY1305_SHA256,
        ),
        converter=tuple,
    )
    """Accepted suites, preferred first (the server picks in this order)."""
    supported_groups: tuple[int, ...] = attrs.field(
        default=(NamedGroup.x25519, NamedGroup.secp256r1, NamedGroup.secp384r1),
        converter=tuple,
    )
    """Accepted key-exchange groups, preferred first (the server picks in this order)."""
    key_share_groups: tuple[int, ...] = attrs.field(
        default=(NamedGroup.x25519,), converter=tuple
    )
    """Client: groups to send a key share for up front."""
    signature_algorithms: tuple[int, ...] = attrs.field(
        default=DEFAULT_SIGNATURE_SCHEMES, converter=tuple
    )
    """Signature schemes we accept from the peer, preferred first."""
    client_auth: ClientAuth = "none"
    """Server: ask for a client certificate ("request") or insist on one ("require")."""
    session_ticket: SessionTicket | None = None
    """Client: a ticket from an earlier connection to resume with (takes precedence)."""
    ticket_store: TicketStore | None = None
    """Client: where received tickets go, and where a ticket to resume with comes from."""
    ticket_key: bytes | None = None
    """Server: 32 secret bytes sealing stateless tickets; None: no tickets, no resumption."""
    previous_ticket_keys: tuple[bytes, ...] = attrs.field(default=(), converter=tuple)
    """Server: retired ticket keys whose tickets are still accepted."""
    enable_tickets: bool = True
    """Server: send a NewSessionTicket after each handshake (needs ``ticket_key``)."""
    enable_early_data: bool = False
    """Client: send 0-RTT when the ticket allows; server: accept 0-RTT (and allow it in
    tickets)."""
    replay_guard: SingleUseTicketGuard | None = None
    """Server: the 0-RTT anti-replay memory, shared by every connection of this
    configuration; one is made when early data is enabled and none is given."""
    early_data_context: bytes = b""
    """Server: what 0-RTT depends on (e.g. the transport parameters it promised); a ticket
    sealed under another context resumes without 0-RTT."""
    early_data_window: float = 10.0
    """Server: seconds a 0-RTT ClientHello's ticket age may differ from ours (RFC 8446 §8.3)."""
    max_early_data: int = 0xFFFFFFFF
    """The NewSessionTicket ``max_early_data_size``; QUIC requires 0xffffffff (RFC 9001 §4.6.1)."""
    ticket_lifetime: int = 86400
    """Server: seconds a ticket is valid (at most 604800, RFC 8446 §4.6.1)."""
    keylog: Callable[[str], None] | None = None
    """Receives one NSS key log line (SSLKEYLOGFILE format) per secret."""
    random_bytes: Callable[[int], bytes] = _defaults.random_bytes
    """The only source of randomness."""
    wall_clock: Callable[[], datetime.datetime] = _defaults.wall_clock
    """Time for certificate validity and ticket ages."""
    key_share_private_keys: tuple[tuple[int, bytes], ...] = attrs.field(
        factory=dict, converter=_private_keys
    )
    """Tests: fixed key-share private keys by group (see ``key_exchange.ClientKeyShare``)."""
    client_hello: ClientHelloSpec = DEFAULT_CLIENT_HELLO
    """Client: the ClientHello layout."""
    max_message_size: int = 65536
    """Largest handshake message we buffer (a bigger one ends in unexpected_message)."""
    ticket_protector: TicketProtector | None = attrs.field(init=False, default=None, eq=False)
    """Server: derived from ``ticket_key`` once per configuration."""
    certificate_message: bytes = attrs.field(init=False, default=b"", eq=False, repr=False)
    """The Certificate message of ``certificate_chain`` with an empty request context (what
    a server sends, and a client answering a CertificateRequest), encoded once."""
    memo: dict[str, Any] = attrs.field(init=False, factory=dict, eq=False, repr=False)
    """What the handshakes of this configuration build once (the ClientHello's constant
    parts); the configuration is frozen, so nothing here goes stale."""

    def __attrs_post_init__(self) -> None:
        if not self.alpn_protocols:
            raise ValueError("QUIC requires at least one ALPN protocol")
        if any(not p or len(p.encode()) > 255 for p in self.alpn_protocols):
            raise ValueError("ALPN protocol names are 1..255 bytes")
        if not self.is_client and (not self.certificate_chain or self.private_key is None):
            raise ValueError("a server needs certificate_chain and private_key")
        if bool(self.certificate_chain) != (self.private_key is not None):
            raise ValueError("certificate_chain and private_key go together")
        if self.max_early_data != 0xFFFFFFFF:
            raise ValueError("QUIC requires max_early_data 0xffffffff (RFC 9001 §4.6.1)")
        if not 0 < self.ticket_lifetime <= 604800:
            raise ValueError("ticket_lifetime must be 1..604800 seconds")
        if self.client_auth not in ("none", "request", "require"):
            raise ValueError("client_auth is 'none', 'request' or 'require'")
        if not self.cipher_suites or not self.supported_groups:
            raise ValueError("cipher_suites and supported_groups may not be empty")
        if self.ticket_key is not None:
            protector = TicketProtector(
                self.ticket_key, self.random_bytes, previous_keys=self.previous_ticket_keys
            )
            object.__setattr__(self, "ticket_protector", protector)
        if self.certificate_chain:
            message = encode_certificate(
                b"", [c.public_bytes(Encoding.DER) for c in self.certificate_chain])
            object.__setattr__(self, "certificate_message", message)
        if not self.is_client and self.enable_early_data and self.replay_guard is None:
            object.__setattr__(self, "replay_guard", SingleUseTicketGuard())

    @property
    def trust_system_store(self) -> bool:
        """Whether the OS roots are trusted (see ``use_system_store``)."""
        if self.use_system_store is None:
            return self.cafile is None and self.cadata is None
        return self.use_system_store

    def private_key_for(self, group: int) -> bytes | None:
        """The injected key-share private key for ``group``, if any."""
        for known, raw in self.key_share_private_keys:
            if known == group:
                return raw
        return None
