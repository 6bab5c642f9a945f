"""The QUIC configuration shared by clients and servers."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import IO, Any, Literal

import attrs
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes

from .. import _defaults
from .._tls.config import TlsConfiguration
from .._tls.key_exchange import SUPPORTED_GROUPS
from ._params import unusable_preferred_address

__all__ = ["Configuration"]

#: The TLS layer's default groups (``key_exchange_groups=None``).
_DEFAULT_GROUPS: tuple[int, ...] = tuple(
    attrs.fields(TlsConfiguration).supported_groups.default)  # type: ignore[arg-type]


def _random_bytes_default() -> Callable[[int], bytes]:
    return _defaults.random_bytes


def _forget_derived(instance: Configuration, attribute: Any, value: Any) -> Any:
    """Changing a field drops what was built from the old values (``shared``)."""
    cache = getattr(instance, "_cache", None)
    if cache:
        cache.clear()
    return value


def _check_groups(groups: Sequence[int] | None, shares: Sequence[int] | None) -> None:
    if groups is not None:
        if not groups or len(set(groups)) != len(groups):
            raise ValueError("key_exchange_groups must be distinct groups, at least one")
        unknown = [g for g in groups if g not in SUPPORTED_GROUPS]
        if unknown:
            raise ValueError(f"key_exchange_groups: unsupported {[hex(g) for g in unknown]} "
                             f"(supported: {sorted(hex(g) for g in SUPPORTED_GROUPS)})")
    if shares is not None:
        offered = groups if groups is not None else _DEFAULT_GROUPS
        if not shares or len(set(shares)) != len(shares) \
                or any(g not in offered for g in shares):
            raise ValueError("key_share_groups must be distinct, at least one, and among "
                             "key_exchange_groups")


def _check_preferred(version: int, address: tuple[str, int] | None, is_client: bool) -> None:
    if address is None:
        return
    name = f"preferred_ipv{version}_address"
    if is_client:
        raise ValueError(f"{name} is a server's transport parameter")
    if unusable_preferred_address(address, version):
        raise ValueError(f"{name} must be (IPv{version} unicast address, port), not "
                         f"{address!r}")


@attrs.define(kw_only=True, on_setattr=[attrs.setters.convert, attrs.setters.validate,
                                        _forget_derived])
class Configuration:
    """Everything a :class:`~trio_zttp.quic.Connection` needs to know before it starts.

    One object may be shared by many connections; connections never modify it.
    """

    #: True for a client, False for a server.
    is_client: bool = True
    #: ALPN protocols to offer (client) or accept (server), most preferred first. Required.
    alpn_protocols: Sequence[str] = ()
    #: The server name for SNI and certificate verification (client).
    server_name: str | None = None

    # -- certificates --------------------------------------------------------------------------
    #: Our certificate chain, leaf first (server; client for client authentication).
    certificate_chain: Sequence[x509.Certificate] = ()
    #: The private key of the leaf certificate.
    private_key: CertificateIssuerPrivateKeyTypes | None = None
    #: Verify the peer's certificate (clients always by default). Off only when set to False.
    verify_peer: bool = True
    #: A PEM file of trusted CAs; None with ``cadata`` None means the system trust store.
    cafile: str | None = None
    #: PEM (or DER) bytes of trusted CAs.
    cadata: bytes | None = None
    #: Server: "none", "request" or "require" a client certificate.
    client_certificate: Literal["none", "request", "require"] = "none"

    # -- transport -----------------------------------------------------------------------------
    #: QUIC versions, preferred first (RFC 9368 compatible version negotiation).
    supported_versions: Sequence[int] = (0x00000001, 0x6B3343CF)
    #: Client: the version of the first Initial when it should not be the preferred one
    #: (start widely compatible, let the server upgrade; RFC 9368). None: the preferred one.
    original_version: int | None = None
    #: Idle timeout in seconds (max_idle_timeout).
    idle_timeout: float = 30.0
    #: Send PING this often (seconds) to keep an idle connection alive; None: never.
    keep_alive_interval: float | None = None
    #: Connection-level receive window (initial_max_data) and its autotuning ceiling.
    max_data: int = 1 << 20
    max_data_limit: int = 16 << 20
    #: Per-stream receive window (initial_max_stream_data_*) and its autotuning ceiling.
    max_stream_data: int = 256 << 10
    max_stream_data_limit: int = 8 << 20
    #: How many streams the peer may open (initial_max_streams_bidi / _uni).
    max_streams_bidi: int = 128
    max_streams_uni: int = 128
    #: max_datagram_frame_size to advertise; None disables DATAGRAM frames (RFC 9221).
    max_datagram_frame_size: int | None = None
    #: Send disable_active_migration (RFC 9000 §18.2): the peer must not move to a new local
    #: address on its own. A server that sends it still validates and follows a client whose
    #: address changed (NAT rebinding, or a client ignoring it), as RFC 9000 §9 allows.
    disable_active_migration: bool = False
    #: Client: once the handshake is confirmed, validate the server's preferred_address (of
    #: the family of the address we connected to) and move the connection there when it
    #: answers (RFC 9000 §9.6.1); False stays on the address we connected to.
    use_preferred_address: bool = True
    #: Largest UDP payload we send before path MTU discovery (>= 1200).
    max_datagram_size: int = 1200
    #: Length of the connection IDs we issue (0-20; servers need >= 1 for routing).
    connection_id_length: int = 8
    #: active_connection_id_limit we advertise.
    active_connection_id_limit: int = 4
    #: max_ack_delay we advertise, seconds.
    max_ack_delay: float = 0.025
    #: ack_delay_exponent we advertise.
    ack_delay_exponent: int = 3
    #: Initial RTT estimate (RFC 9002 §6.2.2), seconds.
    initial_rtt: float = 0.333
    #: "cubic" or "newreno".
    congestion_control: Literal["cubic", "newreno"] = "cubic"
    #: Mark what we send ECT(0) and react to the peer's CE reports once the path proved it
    #: carries the marks (ECN, RFC 9000 §13.4). False never marks; the ECN counts of what we
    #: receive are reported either way.
    ecn: bool = True
    #: TLS 1.3 cipher suites (IANA numbers), preferred first; None: all three.
    cipher_suites: Sequence[int] | None = None
    #: TLS key-exchange groups (IANA numbers: 0x1d x25519, 0x17 secp256r1, 0x18 secp384r1,
    #: 0x11ec X25519MLKEM768, the hybrid post-quantum one), preferred first: what a client
    #: offers, what a server accepts (in its order). None: x25519, secp256r1, secp384r1.
    key_exchange_groups: Sequence[int] | None = None
    #: Client: the groups whose key shares go in the first ClientHello (a subset of
    #: ``key_exchange_groups``; a server that picks another answers with a HelloRetryRequest).
    #: None: the first of ``key_exchange_groups``. An X25519MLKEM768 share is 1,216 bytes:
    #: the client's first flight then takes two Initial datagrams.
    key_share_groups: Sequence[int] | None = None

    # -- resumption and 0-RTT ------------------------------------------------------------------
    #: Client: a ticket (``SessionTicketReceived.ticket``) to resume with.
    session_ticket: bytes | None = None
    #: Client: try 0-RTT when the ticket allows. Server: accept 0-RTT.
    enable_early_data: bool = False
    #: Server: issue session tickets.
    enable_session_tickets: bool = True
    #: Server: 32-byte key protecting stateless session tickets; None: random per configuration.
    ticket_key: bytes | None = None

    # -- address validation and connection IDs -------------------------------------------------
    #: Client: an address-validation token from an earlier connection (``NewTokenReceived``).
    token: bytes = b""
    #: Server: answer a client Initial without a valid token with a Retry (RFC 9000 §8.1.2).
    #: The trio endpoint does this statelessly itself; this is for the sans-IO core alone.
    retry: bool = False
    #: Server: the preferred_address transport parameter (RFC 9000 §9.6), an IPv4 and / or
    #: an IPv6 ``(host, port)``: a client that follows it moves the connection there once
    #: the handshake is confirmed. The sans-IO core advertises it (with a connection ID of
    #: its own, sequence 1); the I/O layer must also receive there and hand the core what
    #: arrives there as coming from a peer address of its own (so the core validates that
    #: path and answers on it). The trio endpoint binds a socket there and does so.
    preferred_ipv4_address: tuple[str, int] | None = attrs.field(
        default=None, validator=lambda c, _a, value: _check_preferred(4, value, c.is_client))
    preferred_ipv6_address: tuple[str, int] | None = attrs.field(
        default=None, validator=lambda c, _a, value: _check_preferred(6, value, c.is_client))
    #: Server: send NEW_TOKEN after the handshake so clients skip validation next time.
    issue_new_tokens: bool = True
    #: Server: mints and checks Retry / NEW_TOKEN tokens; None: a default one per
    #: configuration (``quic.AddressTokenHandler``, keyed from ``random_bytes``).
    token_handler: Any = None
    #: Static key deriving our stateless reset tokens (RFC 9000 §10.3); None: random per
    #: configuration. Endpoints that answer with stateless resets share it.
    stateless_reset_key: bytes | None = None

    # -- flow control as the application reads --------------------------------------------------
    #: True: received stream data counts as consumed once its event is queued (credit flows
    #: at once). False: credit is granted only as ``Connection.consume_stream_data`` reports
    #: reads, so a slow reader throttles the peer (the trio layer sets this).
    consume_on_delivery: bool = True

    # -- plumbing ------------------------------------------------------------------------------
    #: The only source of randomness (connection IDs, keys, tokens ...).
    random_bytes: Callable[[int], bytes] = attrs.field(factory=_random_bytes_default)
    #: Wall clock for certificate validity and ticket ages (returns an aware datetime).
    wall_clock: Callable[[], Any] = _defaults.wall_clock
    #: A text file (or anything with ``write``) receiving NSS key log lines (SSLKEYLOGFILE).
    secrets_log_file: IO[str] | None = None
    #: qlog: a ``trio_zttp.quic.QlogTracer`` (for one connection), a callable
    #: ``(odcid: bytes, is_client: bool) -> QlogTracer | None`` called per connection, or None.
    qlog: Any = None

    _cache: dict[str, Any] = attrs.field(init=False, factory=dict, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        if self.max_datagram_size < 1200:
            raise ValueError("max_datagram_size must be at least 1200")
        if not 0 <= self.connection_id_length <= 20:
            raise ValueError("connection_id_length must be 0..20")
        if not self.is_client and self.connection_id_length == 0:
            raise ValueError("a server needs connection IDs of at least 1 byte")
        if self.active_connection_id_limit < 2:
            raise ValueError("active_connection_id_limit must be at least 2")
        if self.max_datagram_frame_size is not None and self.max_datagram_frame_size < 0:
            raise ValueError("max_datagram_frame_size must be >= 0 or None")
        if self.client_certificate not in ("none", "request", "require"):
            raise ValueError("client_certificate must be 'none', 'request' or 'require'")
        if self.congestion_control not in ("cubic", "newreno"):
            raise ValueError("congestion_control must be 'cubic' or 'newreno'")
        _check_groups(self.key_exchange_groups, self.key_share_groups)

    def shared(self, name: str, factory: Callable[[], Any]) -> Any:
        """A per-configuration object built once (TLS configuration, token keys ...); setting
        any field drops them all, so they never outlive the values they were built from."""
        value = self._cache.get(name)
        if value is None:
            value = self._cache[name] = factory()
        return value

    def load_cert_chain(self, certfile: str, keyfile: str | None = None,
                        password: bytes | None = None) -> None:
        """Load our certificate chain (PEM, leaf first) and private key from files.

        This reads files: call it at configuration time, not from a connection.
        """
        with open(certfile, "rb") as f:
            pem = f.read()
        self.certificate_chain = x509.load_pem_x509_certificates(pem)
        key_pem = pem
        if keyfile is not None:
            with open(keyfile, "rb") as f:
                key_pem = f.read()
        key = serialization.load_pem_private_key(key_pem, password=password)
        self.private_key = key  # type: ignore[assignment]
        self._cache.clear()
