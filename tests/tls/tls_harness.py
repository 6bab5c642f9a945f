"""In-process TLS peers for the handshake tests: ours, aioquic's and qh3's ``tls.Context``.

Each peer turns CRYPTO data at an epoch into (epoch, data) to send and records every traffic
secret it installs as ``secrets[(epoch, "write"|"read")]``; :func:`pump` moves the data between
two peers until neither has anything left to say.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable
from typing import Any, Protocol

from aioquic import tls as aq
from aioquic.buffer import Buffer as AqBuffer
from cryptography.hazmat.primitives.serialization import Encoding

from trio_zttp._tls.config import TlsConfiguration
from trio_zttp._tls.handshake import (
    Handshake,
    HandshakeComplete,
    InstallKey,
    SendCryptoData,
    SessionTicketReceived,
    Update,
)
from trio_zttp._tls.suites import Epoch
from trio_zttp.testing import CertificateAuthority, IssuedCertificate, KeyType

TRANSPORT_PARAMETERS_CLIENT = b"\x01\x02\x03client-tp"
TRANSPORT_PARAMETERS_SERVER = b"\x04\x05\x06server-tp"
ALPN = ("h3",)

Secrets = dict[tuple[int, str], bytes]


@functools.cache
def ca() -> CertificateAuthority:
    return CertificateAuthority.create()


@functools.cache
def leaf(key_type: str = KeyType.ECDSA_P256, client: bool = False) -> IssuedCertificate:
    return ca().issue(["localhost", "127.0.0.1"], key_type=key_type, client=client)


def pem_chain(issued: IssuedCertificate) -> bytes:
    return issued.certificate_pem


class Peer(Protocol):
    secrets: Secrets
    name: str

    def receive(self, epoch: int, data: bytes) -> list[tuple[int, bytes]]: ...

    @property
    def done(self) -> bool: ...


def our_config(is_client: bool, **overrides: Any) -> TlsConfiguration:
    """A configuration trusting the test CA, with a P-256 server certificate by default."""
    settings: dict[str, Any] = {"is_client": is_client, "alpn_protocols": ALPN}
    if is_client:
        settings.update(server_name="localhost", cadata=ca().pem)
    else:
        issued = leaf()
        settings.update(
            certificate_chain=issued.chain, private_key=issued.private_key, cadata=ca().pem
        )
    settings.update(overrides)
    return TlsConfiguration(**settings)


class Ours:
    """Our :class:`Handshake` as a peer."""

    name = "ours"

    def __init__(self, config: TlsConfiguration, transport_parameters: bytes | None = None):
        if transport_parameters is None:
            transport_parameters = (
                TRANSPORT_PARAMETERS_CLIENT if config.is_client else TRANSPORT_PARAMETERS_SERVER
            )
        self.handshake = Handshake(config, transport_parameters=transport_parameters)
        self.secrets: Secrets = {}
        self.updates: list[Update] = []
        self.tickets: list[object] = []
        self.completions: list[HandshakeComplete] = []

    def start(self) -> list[tuple[int, bytes]]:
        self.handshake.start()
        return self._drain()

    def receive(self, epoch: int, data: bytes) -> list[tuple[int, bytes]]:
        self.handshake.receive(Epoch(epoch), data)
        return self._drain()

    def _drain(self) -> list[tuple[int, bytes]]:
        out: list[tuple[int, bytes]] = []
        for update in self.handshake.take_updates():
            self.updates.append(update)
            if isinstance(update, SendCryptoData):
                out.append((int(update.epoch), update.data))
            elif isinstance(update, InstallKey):
                way = "write" if update.is_write else "read"
                assert (int(update.epoch), way) not in self.secrets
                self.secrets[int(update.epoch), way] = update.secret
            elif isinstance(update, HandshakeComplete):
                self.completions.append(update)
            elif isinstance(update, SessionTicketReceived):
                self.tickets.append(update.ticket)
        return out

    @property
    def done(self) -> bool:
        return self.handshake.is_complete


class _ContextPeer:
    """aioquic's or qh3's ``tls.Context``: the same sans-IO shape."""

    name = "context"
    _module: Any
    _buffer: Callable[..., Any]

    def __init__(self, context: Any, transport_parameters: bytes) -> None:
        self.context = context
        self.secrets: Secrets = {}
        self.tickets: list[Any] = []
        context.handshake_extensions = [(0x39, transport_parameters)]
        context.update_traffic_key_cb = self._on_key

    def _on_key(self, direction: Any, epoch: Any, suite: Any, secret: bytes) -> None:
        way = "write" if direction.value == 1 else "read"
        self.secrets[int(epoch.value), way] = secret

    def _call(self, data: bytes) -> list[tuple[int, bytes]]:
        # the Context infers the level from its state; the epoch is not passed in
        m = self._module
        buffers = {e: self._buffer(capacity=65536) for e in m.Epoch}
        self.context.handle_message(data, buffers)
        return [(e.value, buffers[e].data) for e in m.Epoch if buffers[e].data]

    def start(self) -> list[tuple[int, bytes]]:
        return self._call(b"")

    def receive(self, epoch: int, data: bytes) -> list[tuple[int, bytes]]:
        return self._call(data)

    @property
    def done(self) -> bool:
        return self.context.state.name.endswith("POST_HANDSHAKE")

    @property
    def peer_transport_parameters(self) -> bytes | None:
        for ext_type, body in self.context.received_extensions or []:
            if ext_type == 0x39:
                return bytes(body)
        return None


class Aioquic(_ContextPeer):
    name = "aioquic"
    _module = aq
    _buffer = AqBuffer

    @classmethod
    def client(cls, *, session_ticket: Any = None, **kwargs: Any) -> Aioquic:
        context = aq.Context(
            is_client=True,
            alpn_protocols=list(kwargs.pop("alpn_protocols", ALPN)),
            cadata=ca().pem,
            server_name="localhost",
            **kwargs,
        )
        context.session_ticket = session_ticket
        peer = cls(context, TRANSPORT_PARAMETERS_CLIENT)
        context.new_session_ticket_cb = peer.tickets.append
        return peer

    @classmethod
    def server(
        cls,
        issued: IssuedCertificate | None = None,
        *,
        tickets: dict[bytes, Any] | None = None,
        request_client_certificate: bool = False,
        **kwargs: Any,
    ) -> Aioquic:
        issued = issued or leaf()
        alpn = kwargs.pop("alpn_protocols", ALPN)
        context = aq.Context(
            is_client=False,
            alpn_protocols=None if alpn is None else list(alpn),
            cadata=ca().pem,
            **kwargs,
        )
        context.certificate = issued.certificate
        context.certificate_chain = list(issued.chain[1:])
        context.certificate_private_key = issued.private_key
        context._request_client_certificate = request_client_certificate
        peer = cls(context, TRANSPORT_PARAMETERS_SERVER)
        if tickets is not None:
            context.get_session_ticket_cb = tickets.get

            def store(ticket: Any) -> None:
                tickets[ticket.ticket] = ticket
                peer.tickets.append(ticket)

            context.new_session_ticket_cb = store
        return peer


def qh3_server(issued: IssuedCertificate | None = None, **kwargs: Any) -> _ContextPeer:
    """A qh3 server ``tls.Context`` (qh3 has its own certificate and key types)."""
    from qh3 import tls as q
    from qh3._hazmat import Buffer as QBuffer

    issued = issued or leaf()
    context = q.Context(is_client=False, alpn_protocols=list(ALPN), **kwargs)
    certs = q.load_pem_x509_certificates(issued.certificate_pem)
    context.certificate = certs[0]
    context.certificate_chain = certs[1:]
    context.certificate_private_key = q.load_pem_private_key(issued.private_key_pem)
    peer = _ContextPeer(context, TRANSPORT_PARAMETERS_SERVER)
    peer.name = "qh3"
    peer._module = q
    peer._buffer = QBuffer
    return peer


def qh3_client(**kwargs: Any) -> _ContextPeer:
    from qh3 import tls as q
    from qh3._hazmat import Buffer as QBuffer

    context = q.Context(
        is_client=True,
        alpn_protocols=list(ALPN),
        cadata=ca().pem,
        server_name="localhost",
        **kwargs,
    )
    peer = _ContextPeer(context, TRANSPORT_PARAMETERS_CLIENT)
    peer.name = "qh3"
    peer._module = q
    peer._buffer = QBuffer
    return peer


def seeded(seed: int) -> Callable[[int], bytes]:
    """A reproducible ``random_bytes``."""
    rng = random.Random(seed)
    return rng.randbytes


Delivery = tuple[bool, int, bytes]
"""(to the client?, epoch, data)."""


def record(client: Any, server: Any, *, limit: int = 50) -> list[Delivery]:
    """Like :func:`pump`, returning every delivery in order."""
    log: list[Delivery] = []
    queue: list[tuple[Any, int, bytes]] = [(server, e, d) for e, d in client.start()]
    while queue:
        assert len(log) < limit, "handshake does not converge"
        target, epoch, data = queue.pop(0)
        log.append((target is client, epoch, data))
        other = client if target is server else server
        queue.extend((other, e, d) for e, d in target.receive(epoch, data))
    return log


def pump(client: Any, server: Any, *, limit: int = 50) -> None:
    """Start ``client`` and shuttle CRYPTO data until both sides are quiet."""
    queue: list[tuple[Any, int, bytes]] = [(server, e, d) for e, d in client.start()]
    steps = 0
    while queue:
        steps += 1
        assert steps < limit, "handshake does not converge"
        target, epoch, data = queue.pop(0)
        other = client if target is server else server
        queue.extend((other, e, d) for e, d in target.receive(epoch, data))


def assert_same_secrets(client: Peer, server: Peer, *, early_data: bool = False) -> None:
    """Each side's write secret at an epoch is the other's read secret, for every epoch.

    The client's 0-RTT write secret has a server read secret only when ``early_data`` was
    accepted.
    """
    zero_rtt = int(Epoch.ZERO_RTT)
    for epoch in (Epoch.HANDSHAKE, Epoch.ONE_RTT):
        e = int(epoch)
        assert client.secrets[e, "write"] == server.secrets[e, "read"], epoch
        assert server.secrets[e, "write"] == client.secrets[e, "read"], epoch
        assert client.secrets[e, "write"] != server.secrets[e, "write"]
    if early_data:
        assert client.secrets[zero_rtt, "write"] == server.secrets[zero_rtt, "read"]
    else:
        assert (zero_rtt, "read") not in server.secrets
    assert (zero_rtt, "read") not in client.secrets
    assert (zero_rtt, "write") not in server.secrets


def der(issued: IssuedCertificate) -> bytes:
    return issued.certificate.public_bytes(Encoding.DER)
