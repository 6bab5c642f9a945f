"""Shared pieces of the connection tests: configurations, peers (ours, aioquic, qh3), drivers.

Events are matched by class name so a helper works for every implementation: ours, aioquic's
and qh3's events share the names (``HandshakeCompleted``, ``StreamDataReceived`` ...).
"""

from __future__ import annotations

import functools
import hashlib
import random
from collections.abc import Callable
from typing import Any

import attrs

from trio_zttp.quic._config import Configuration
from trio_zttp.quic._connection import Connection
from trio_zttp.testing import (
    Address,
    CertificateAuthority,
    IssuedCertificate,
    LinkConditions,
    Pair,
    SansIOClient,
    ServerFactory,
    Side,
)

ALPN = ["hq-test"]



@functools.cache
def ca() -> CertificateAuthority:
    return CertificateAuthority.create()


@functools.cache
def leaf() -> IssuedCertificate:
    return ca().issue(["localhost"])


def seeded(seed: int) -> Callable[[int], bytes]:
    return random.Random(seed).randbytes


def client_config(seed: int = 1, **options: Any) -> Configuration:
    settings: dict[str, Any] = {
        "is_client": True, "alpn_protocols": ALPN, "server_name": "localhost",
        "cadata": ca().pem, "random_bytes": seeded(seed), "idle_timeout": 60.0,
    }
    settings.update(options)
    return Configuration(**settings)


def server_config(seed: int = 2, **options: Any) -> Configuration:
    issued = leaf()
    settings: dict[str, Any] = {
        "is_client": False, "alpn_protocols": ALPN, "certificate_chain": issued.chain,
        "private_key": issued.private_key, "random_bytes": seeded(seed), "idle_timeout": 60.0,
    }
    settings.update(options)
    return Configuration(**settings)


def ours_client(config: Configuration | None = None, **options: Any) -> Connection:
    return Connection(config if config is not None else client_config(**options))


def ours_server(config: Configuration | None = None, **options: Any) -> ServerFactory:
    cfg = config if config is not None else server_config(**options)

    def factory(first_datagram: bytes, source: Address) -> Connection:
        return Connection(cfg)

    return factory


def aioquic_client(*, ticket_handler: Callable[[Any], None] | None = None,
                   **options: Any) -> Any:
    from aioquic.quic.configuration import QuicConfiguration
    from aioquic.quic.connection import QuicConnection

    options.setdefault("idle_timeout", 60.0)
    configuration = QuicConfiguration(
        is_client=True, alpn_protocols=ALPN, server_name="localhost", **options)
    configuration.load_verify_locations(cadata=ca().pem)
    return QuicConnection(configuration=configuration, session_ticket_handler=ticket_handler)


def aioquic_server(*, tickets: dict[bytes, Any] | None = None, **options: Any) -> ServerFactory:
    from aioquic.buffer import Buffer
    from aioquic.quic.configuration import QuicConfiguration
    from aioquic.quic.connection import QuicConnection
    from aioquic.quic.packet import pull_quic_header

    issued = leaf()

    def factory(first_datagram: bytes, source: Address) -> Any:
        settings = {"idle_timeout": 60.0, **options}
        configuration = QuicConfiguration(is_client=False, alpn_protocols=ALPN, **settings)
        configuration.certificate = issued.certificate
        configuration.certificate_chain = list(issued.chain[1:])
        configuration.private_key = issued.private_key
        header = pull_quic_header(Buffer(data=first_datagram), host_cid_length=8)
        store: dict[bytes, Any] | None = tickets
        return QuicConnection(
            configuration=configuration,
            original_destination_connection_id=header.destination_cid,
            session_ticket_fetcher=None if store is None else store.pop,
            session_ticket_handler=None if store is None else (
                lambda ticket: store.__setitem__(ticket.ticket, ticket)))

    return factory


def qh3_client(**options: Any) -> Any:
    from qh3.quic.configuration import QuicConfiguration
    from qh3.quic.connection import QuicConnection

    options.setdefault("idle_timeout", 60.0)
    configuration = QuicConfiguration(
        is_client=True, alpn_protocols=ALPN, server_name="localhost", **options)
    configuration.load_verify_locations(cadata=ca().pem)
    return QuicConnection(configuration=configuration)


def qh3_server(**options: Any) -> ServerFactory:
    from qh3.quic.configuration import QuicConfiguration
    from qh3.quic.connection import QuicConnection
    from qh3.quic.packet import pull_quic_header

    issued = leaf()

    def factory(first_datagram: bytes, source: Address) -> Any:
        settings = {"idle_timeout": 60.0, **options}
        configuration = QuicConfiguration(is_client=False, alpn_protocols=ALPN, **settings)
        from qh3 import tls as q
        from qh3._hazmat import Buffer as QBuffer

        certificates = q.load_pem_x509_certificates(issued.certificate_pem)
        configuration.certificate = certificates[0]
        configuration.certificate_chain = certificates[1:]
        configuration.private_key = q.load_pem_private_key(issued.private_key_pem)

        header = pull_quic_header(QBuffer(data=first_datagram), host_cid_length=8)
        return QuicConnection(configuration=configuration,
                              original_destination_connection_id=header.destination_cid)

    return factory


CLIENTS: dict[str, Callable[..., Any]] = {
    "ours": ours_client, "aioquic": aioquic_client, "qh3": qh3_client}
SERVERS: dict[str, Callable[..., ServerFactory]] = {
    "ours": ours_server, "aioquic": aioquic_server, "qh3": qh3_server}


def named(event: object, name: str) -> bool:
    return type(event).__name__ == name


def events_named(events: list[object], name: str) -> list[Any]:
    return [e for e in events if named(e, name)]


def handshake(pair: Pair, timeout: float = 30.0) -> None:
    """Connect and run until both sides completed the handshake."""
    pair.connect()
    pair.run_until(
        lambda: events_named(pair.client_events, "HandshakeCompleted")
        and events_named(pair.server_events, "HandshakeCompleted"), timeout=timeout)


def make_pair(client: str = "ours", server: str = "ours", *, client_options: Any = None,
              server_options: Any = None, **pair_options: Any) -> Pair:
    c: SansIOClient = CLIENTS[client](**(client_options or {}))
    s = SERVERS[server](**(server_options or {}))
    return Pair(c, s, **pair_options)


@attrs.define
class StreamCollector:
    """Collects stream data per (side, stream id) and remembers which streams ended."""

    data: dict[tuple[Side, int], bytearray] = attrs.field(factory=dict)
    ended: set[tuple[Side, int]] = attrs.field(factory=set)
    hook: Callable[[Side, object], None] | None = None

    def __call__(self, side: Side, event: object) -> None:
        if named(event, "StreamDataReceived"):
            key = (side, event.stream_id)  # type: ignore[attr-defined]
            self.data.setdefault(key, bytearray()).extend(event.data)  # type: ignore[attr-defined]
            if event.end_stream:  # type: ignore[attr-defined]
                self.ended.add(key)
        if self.hook is not None:
            self.hook(side, event)

    def digest(self, side: Side, stream_id: int) -> bytes:
        return hashlib.sha256(self.data.get((side, stream_id), b"")).digest()


def payload(size: int, seed: int = 7) -> bytes:
    return random.Random(seed).randbytes(size)


def transfer(pair: Pair, size: int, *, upload: bool = True, streams: int = 1,
             timeout: float = 600.0) -> None:
    """Send ``streams`` streams of ``size`` bytes one way and check them by sha256."""
    sender = pair.client if upload else pair.server
    receiver = pair.server if upload else pair.client
    receiver_side: Side = "server" if upload else "client"
    previous = pair.on_event

    def close_back(side: Side, event: object) -> None:
        # a bidirectional stream closes once both sides ended it: answer with an empty FIN
        if (side == receiver_side and named(event, "StreamDataReceived")
                and event.end_stream  # type: ignore[attr-defined]
                and event.stream_id in expected and not event.stream_id & 2):  # type: ignore
            receiver.send_stream_data(event.stream_id, b"", end_stream=True)  # type: ignore
        if previous is not None:
            previous(side, event)

    collector = StreamCollector(hook=close_back)
    pair.on_event = collector
    expected: dict[int, bytes] = {}
    for index in range(streams):
        stream_id = sender.get_next_available_stream_id()  # type: ignore[attr-defined]
        data = payload(size, seed=index)
        expected[stream_id] = hashlib.sha256(data).digest()
        sender.send_stream_data(stream_id, data, end_stream=True)  # type: ignore[attr-defined]
    pair.run_until(lambda: all((receiver_side, sid) in collector.ended for sid in expected),
                   timeout=timeout)
    for sid, digest in expected.items():
        assert collector.digest(receiver_side, sid) == digest, f"stream {sid} corrupted"
    pair.on_event = previous


LOSSY = LinkConditions(delay=0.01, loss=0.05)
CLEAN = LinkConditions(delay=0.01)
HOSTILE = LinkConditions(delay=0.01, loss=0.2, reorder=0.1, duplicate=0.05)




class KeyLog:
    """Collects SSLKEYLOGFILE lines (``Configuration(secrets_log_file=...)``)."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def write(self, text: str) -> int:
        self.lines.extend(line for line in text.splitlines() if line)
        return len(text)

    def secret(self, label: str) -> bytes:
        for line in reversed(self.lines):
            name, _random, secret = line.split()
            if name == label:
                return bytes.fromhex(secret)
        raise KeyError(label)


class Forger:
    """Builds valid 1-RTT packets to one side of a live connection, from the key log.

    Tests use it to put arbitrary frames in front of a connection as if its peer sent them.
    """

    def __init__(self, keylog: KeyLog, *, to_client: bool, dcid: bytes,
                 version: int = 1, suite: int = 0x1301) -> None:
        from trio_zttp._tls.suites import CipherSuite
        from trio_zttp.quic._crypto import PacketSealer

        self.keylog = keylog
        label = "SERVER_TRAFFIC_SECRET_0" if to_client else "CLIENT_TRAFFIC_SECRET_0"
        self._sealer = PacketSealer(version, CipherSuite(suite), keylog.secret(label))
        self._dcid = dcid
        self._pn = 1 << 20

    def packet(self, payload: bytes) -> bytes:
        from trio_zttp.quic._packet import encode_short_header

        self._pn += 1
        header = encode_short_header(self._dcid, self._pn & 0xFFFFFFFF, 4, 0)
        if len(payload) < 4:
            payload += bytes(4 - len(payload))
        return self._sealer.seal(header, payload, self._pn)


class RetryingServer:
    """A server that answers the first Initial with a Retry, as an endpoint does, then hands
    the retried connection to ``factory(odcid, retry_scid)`` (for peers whose sans-IO
    connection cannot send a Retry itself, e.g. aioquic's)."""

    def __init__(self, factory: Callable[[bytes, bytes], Any], version: int = 1) -> None:
        self._factory = factory
        self._version = version
        self._conn: Any = None
        self._pending: list[tuple[bytes, Address]] = []
        self.retries = 0

    def receive_datagram(self, data: bytes, addr: Address, now: float) -> None:
        from trio_zttp.quic._packet import encode_retry, parse_header

        if self._conn is not None:
            self._conn.receive_datagram(data, addr, now)
            return
        header = parse_header(data, 0, 8)
        if not header.token:
            self._odcid = header.dcid
            self._retry_scid = bytes(range(8, 16))
            self._pending.append((encode_retry(header.version or 1, header.scid,
                                               self._retry_scid, header.dcid, b"retry-token"),
                                  addr))
            self.retries += 1
            return
        assert header.token == b"retry-token" and header.dcid == self._retry_scid
        self._conn = self._factory(self._odcid, self._retry_scid)
        self._conn.receive_datagram(data, addr, now)

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Address]]:
        if self._conn is None:
            out, self._pending = self._pending, []
            return out
        return list(self._conn.datagrams_to_send(now))

    def get_timer(self) -> float | None:
        return None if self._conn is None else self._conn.get_timer()

    def handle_timer(self, now: float) -> None:
        if self._conn is not None:
            self._conn.handle_timer(now)

    def next_event(self) -> object | None:
        return None if self._conn is None else self._conn.next_event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


def aioquic_retrying_server(**options: Any) -> RetryingServer:
    from aioquic.quic.configuration import QuicConfiguration
    from aioquic.quic.connection import QuicConnection

    issued = leaf()

    def factory(odcid: bytes, retry_scid: bytes) -> Any:
        settings = {"idle_timeout": 60.0, **options}
        configuration = QuicConfiguration(is_client=False, alpn_protocols=ALPN, **settings)
        configuration.certificate = issued.certificate
        configuration.private_key = issued.private_key
        return QuicConnection(configuration=configuration,
                              original_destination_connection_id=odcid,
                              retry_source_connection_id=retry_scid)

    return RetryingServer(factory)
