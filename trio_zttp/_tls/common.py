"""What the client and server flows share: states, updates for QUIC, and the base flow.

The flows (:mod:`.client`, :mod:`.server`) hold the negotiation logic, one method per handshake
message; :mod:`.handshake` owns the state table that says which method handles which message
in which state, and the buffering in front of it.
"""

from __future__ import annotations

import enum
import hmac
from collections.abc import Container
from typing import TYPE_CHECKING, Final, final

import attrs
from cryptography import x509

from . import messages as m
from .alerts import AlertDescription, AlertError
from .key_schedule import KeySchedule, Transcript
from .keylog import KeyLogLabel, format_key_log_line
from .suites import CipherSuite, Epoch
from .tickets import SessionTicket
from .verify import verify_certificate_chain, verify_certificate_verify

if TYPE_CHECKING:
    from .config import TlsConfiguration

__all__ = [
    "FlowBase",
    "HandshakeComplete",
    "InstallKey",
    "SendCryptoData",
    "SessionTicketReceived",
    "State",
    "Update",
]


class State(enum.Enum):
    """Handshake states (RFC 8446 Appendix A, QUIC subset: no EndOfEarlyData, no KeyUpdate)."""

    CLIENT_START = enum.auto()
    CLIENT_WAIT_SERVER_HELLO = enum.auto()
    CLIENT_WAIT_ENCRYPTED_EXTENSIONS = enum.auto()
    CLIENT_WAIT_CERTIFICATE_OR_REQUEST = enum.auto()
    CLIENT_WAIT_CERTIFICATE = enum.auto()
    CLIENT_WAIT_CERTIFICATE_VERIFY = enum.auto()
    CLIENT_WAIT_FINISHED = enum.auto()
    CLIENT_CONNECTED = enum.auto()
    SERVER_WAIT_CLIENT_HELLO = enum.auto()
    SERVER_WAIT_SECOND_CLIENT_HELLO = enum.auto()
    SERVER_WAIT_CERTIFICATE = enum.auto()
    SERVER_WAIT_CERTIFICATE_VERIFY = enum.auto()
    SERVER_WAIT_FINISHED = enum.auto()
    SERVER_CONNECTED = enum.auto()
    FAILED = enum.auto()

    # members are singletons compared by identity: hash them by identity too, at C speed
    # (Enum.__hash__ is a Python function hashing the name; the engine looks states up in
    # its tables for every message)
    __hash__ = object.__hash__


RECEIVE_EPOCH: Final[dict[State, Epoch]] = {
    State.CLIENT_WAIT_SERVER_HELLO: Epoch.INITIAL,
    State.CLIENT_WAIT_ENCRYPTED_EXTENSIONS: Epoch.HANDSHAKE,
    State.CLIENT_WAIT_CERTIFICATE_OR_REQUEST: Epoch.HANDSHAKE,
    State.CLIENT_WAIT_CERTIFICATE: Epoch.HANDSHAKE,
    State.CLIENT_WAIT_CERTIFICATE_VERIFY: Epoch.HANDSHAKE,
    State.CLIENT_WAIT_FINISHED: Epoch.HANDSHAKE,
    State.CLIENT_CONNECTED: Epoch.ONE_RTT,
    State.SERVER_WAIT_CLIENT_HELLO: Epoch.INITIAL,
    State.SERVER_WAIT_SECOND_CLIENT_HELLO: Epoch.INITIAL,
    State.SERVER_WAIT_CERTIFICATE: Epoch.HANDSHAKE,
    State.SERVER_WAIT_CERTIFICATE_VERIFY: Epoch.HANDSHAKE,
    State.SERVER_WAIT_FINISHED: Epoch.HANDSHAKE,
    State.SERVER_CONNECTED: Epoch.ONE_RTT,
}
"""The encryption level whose CRYPTO data each state reads (RFC 9001 §4.1.4)."""


class Update:
    """Base class of what the handshake asks QUIC to do, in order (``take_updates``)."""

    __slots__ = ()


@final
@attrs.frozen(kw_only=True)
class SendCryptoData(Update):
    """Send ``data`` in CRYPTO frames at ``epoch``."""

    epoch: Epoch
    """Encryption level to send at."""
    data: bytes
    """Handshake bytes, one or more whole messages."""


@final
@attrs.frozen(kw_only=True, repr=False)
class InstallKey(Update):
    """Install a traffic secret: derive packet protection keys from it (RFC 9001 §5.1)."""

    epoch: Epoch
    """ZERO_RTT, HANDSHAKE or ONE_RTT."""
    is_write: bool
    """True to protect packets we send, False to remove protection from received ones."""
    suite: CipherSuite
    """Cipher suite the secret belongs to."""
    secret: bytes
    """The traffic secret."""

    def __repr__(self) -> str:
        # never print secrets by accident
        way = "write" if self.is_write else "read"
        return f"InstallKey(epoch={self.epoch.name}, {way}, suite={self.suite.name})"


@final
@attrs.frozen(kw_only=True)
class HandshakeComplete(Update):
    """The handshake finished successfully."""

    alpn_protocol: str
    """The negotiated application protocol."""
    session_resumed: bool
    """A ticket's PSK authenticated this handshake."""
    early_data_accepted: bool
    """The server accepted 0-RTT data."""


@final
@attrs.frozen(kw_only=True)
class SessionTicketReceived(Update):
    """Client: a NewSessionTicket gave a ticket to resume with later."""

    ticket: SessionTicket
    """The resumable ticket (pass it as ``TlsConfiguration.session_ticket``)."""


class FlowBase:
    """State and helpers shared by the client and server flows."""

    def __init__(self, config: TlsConfiguration, transport_parameters: bytes) -> None:
        self.config = config
        self.transport_parameters = transport_parameters
        self.state = State.CLIENT_START if config.is_client else State.SERVER_WAIT_CLIENT_HELLO
        self.updates: list[Update] = []
        self.transcript = Transcript()
        self.schedule: KeySchedule | None = None
        self.suite: CipherSuite | None = None
        self.group: int | None = None
        self.client_random = b""
        self.alpn_protocol: str | None = None
        self.peer_transport_parameters: bytes | None = None
        self.peer_certificate_chain: tuple[x509.Certificate, ...] = ()
        self.session_resumed = False
        self.early_data_accepted = False
        self.client_handshake_secret = b""
        self.server_handshake_secret = b""
        self.client_application_secret = b""
        self.server_application_secret = b""
        self._exporter_secret: bytes | None = None
        self._exporter_transcript: bytes | None = None
        self.resumption_secret = b""

    # --- helpers ---------------------------------------------------------------------

    @property
    def exporter_secret(self) -> bytes:
        """exporter_master_secret (RFC 8446 §7.5), derived on first use; empty before."""
        if self._exporter_secret is None:
            if self._exporter_transcript is None:
                return b""
            self._exporter_secret = self.ks.exporter_master_secret(self._exporter_transcript)
        return self._exporter_secret

    @property
    def ks(self) -> KeySchedule:
        if self.schedule is None:
            raise AlertError(AlertDescription.internal_error, "no key schedule yet")
        return self.schedule

    def send(self, epoch: Epoch, data: bytes) -> None:
        self.updates.append(SendCryptoData(epoch=epoch, data=data))

    def install(self, epoch: Epoch, is_write: bool, suite: CipherSuite, secret: bytes) -> None:
        self.updates.append(InstallKey(epoch=epoch, is_write=is_write, suite=suite, secret=secret))

    def keylog(self, label: KeyLogLabel, secret: bytes) -> None:
        """One NSS key log line ``LABEL <client_random> <secret>`` to the configured callback."""
        callback = self.config.keylog
        if callback is not None:
            callback(format_key_log_line(label, self.client_random, secret))

    def complete(self) -> None:
        assert self.alpn_protocol is not None
        self.updates.append(
            HandshakeComplete(
                alpn_protocol=self.alpn_protocol,
                session_resumed=self.session_resumed,
                early_data_accepted=self.early_data_accepted,
            )
        )

    def check_certificate_verify(self, message: bytes, offered: Container[int]) -> None:
        """The peer's CertificateVerify (RFC 8446 §4.4.3), then its chain if we verify peers.

        Adds ``message`` to the transcript once both checks pass.
        """
        peer_is_server = self.config.is_client
        verify = m.parse_certificate_verify(message[4:])
        verify_certificate_verify(
            self.peer_certificate_chain[0],
            verify.algorithm,
            verify.signature,
            self.transcript.digest(),
            is_server=peer_is_server,
            offered=offered,
        )
        cfg = self.config
        if cfg.verify_peer:
            verify_certificate_chain(
                self.peer_certificate_chain,
                server_name=cfg.server_name if peer_is_server else None,
                now=cfg.wall_clock(),
                cafile=cfg.cafile,
                cadata=cfg.cadata,
                use_system_store=cfg.trust_system_store,
                is_server_cert=peer_is_server,
            )
        self.transcript.add(message)

    def check_finished(self, message: bytes, peer_handshake_secret: bytes) -> None:
        """The peer's Finished (RFC 8446 §4.4.4); adds it to the transcript once it verifies."""
        verify_data = m.parse_finished(message[4:], self.ks.hash_length)
        expected = self.ks.verify_data(peer_handshake_secret, self.transcript.digest())
        if not hmac.compare_digest(verify_data, expected):
            peer = "server" if self.config.is_client else "client"
            raise AlertError(AlertDescription.decrypt_error, f"{peer} Finished does not verify")
        self.transcript.add(message)

    def derive_handshake_secrets(self) -> None:
        """After ServerHello: both handshake traffic secrets over ClientHello..ServerHello."""
        th = self.transcript.digest()
        self.client_handshake_secret = self.ks.client_handshake_traffic_secret(th)
        self.server_handshake_secret = self.ks.server_handshake_traffic_secret(th)
        self.keylog(KeyLogLabel.CLIENT_HANDSHAKE_TRAFFIC_SECRET, self.client_handshake_secret)
        self.keylog(KeyLogLabel.SERVER_HANDSHAKE_TRAFFIC_SECRET, self.server_handshake_secret)

    def derive_application_secrets(self) -> None:
        """After the server Finished: application and exporter secrets."""
        self.ks.set_master()
        th = self.transcript.digest()
        self.client_application_secret = self.ks.client_application_traffic_secret(th)
        self.server_application_secret = self.ks.server_application_traffic_secret(th)
        self._exporter_transcript = th  # the exporter secret is derived when asked for
        if self.config.keylog is not None:
            self.keylog(KeyLogLabel.CLIENT_TRAFFIC_SECRET_0, self.client_application_secret)
            self.keylog(KeyLogLabel.SERVER_TRAFFIC_SECRET_0, self.server_application_secret)
            self.keylog(KeyLogLabel.EXPORTER_SECRET, self.exporter_secret)


def negotiated_alpn(ours: tuple[str, ...], theirs: tuple[bytes, ...]) -> str | None:
    """The server's choice: our most preferred protocol the client also offers."""
    offered = set(theirs)
    for protocol in ours:
        if protocol.encode() in offered:
            return protocol
    return None
