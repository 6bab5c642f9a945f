"""QuicEndpoint backpressure and bounded memory: a connection whose queue is full loses the
datagrams that do not fit (counted, nothing else); the backlog bounds unaccepted connections;
forged or misbound Retry tokens leave no state; response rate limits are exact.

Everything runs on ``trio_zttp.testing``'s virtual network with the autojump clock, except
one test over real loopback UDP, where the batched transport reads hundreds of datagrams
at once.

How a driver is made to fall behind.  On the virtual network the endpoint reads through the
portable transport, one datagram per checkpoint, and a connection's driver wakes as soon as
a datagram is queued for it: a plain burst, however large, never fills a queue (the driver
drains it between two reads).  A driver falls behind in production when it is stuck in a
send (the socket's send buffer is full) while the receive task keeps reading.  The tests
reproduce exactly that through the public ``connection_factory`` hook: the engine is the
real ``quic.Connection`` behind :class:`_Engine`, which on request makes its next
``datagrams_to_send`` also return ``stall`` one-byte datagrams for an address where nobody
listens.  The driver spends one checkpoint per datagram sending them (the portable path),
and the test sends its burst while it does; the tap proves the driver was still stuck
when the whole burst had been read.
"""

from __future__ import annotations

import random
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import attrs
import pytest
import trio

import trio_zttp
from trio_zttp import quic
from trio_zttp._trio.connection import INCOMING_QUEUE_SIZE
from trio_zttp.quic._packet import PacketType, parse_header
from trio_zttp.testing import (
    CertificateAuthority,
    IssuedCertificate,
    WireDatagram,
    open_virtual_network,
)

from ._helpers import client_configuration, server_configuration

SINK = ("10.255.255.1", 9)  # nobody listens here
ATTACKER = ("10.66.0.1", 6666)
CID_LENGTH = 8


class _Engine:
    """``quic.Connection`` with two test controls, given through ``connection_factory``.

    * ``stall``: the next ``datagrams_to_send`` also returns that many datagrams for
      :data:`SINK`, so the driver spends that many checkpoints sending (``stalled`` is set
      when that call happened);
    * ``extra``: datagrams the next ``datagrams_to_send`` sends too (junk for the peer).

    It also records the most datagrams handed to the engine between two flushes, which is
    the most the driver found queued in one wake-up.
    """

    def __init__(self, inner: quic.Connection, *, is_client: bool) -> None:
        self._inner = inner
        self.is_client = is_client
        self.stall = 0
        self.stalled = False
        self.extra: list[tuple[bytes, Any]] = []
        self.received = 0
        self.received_since_flush = 0
        self.most_received_per_flush = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def receive_datagram(self, data: bytes, addr: Any, now: float, *, ecn: int = 0) -> None:
        self.received += 1
        self.received_since_flush += 1
        self._inner.receive_datagram(data, addr, now, ecn=ecn)

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Any]]:
        out = self._inner.datagrams_to_send(now)
        self.most_received_per_flush = max(
            self.most_received_per_flush, self.received_since_flush
        )
        self.received_since_flush = 0
        if self.extra:
            out = out + self.extra
            self.extra = []
        if self.stall:
            out = out + [(b"\x00", SINK)] * self.stall
            self.stall = 0
            self.stalled = True
        return out


@attrs.define
class _Wire:
    """The network tap: what went to :data:`SINK`, and the DCID each address last got."""

    to_sink: int = 0
    last_dcid: dict[tuple[str, int], bytes] = attrs.field(factory=dict)

    def __call__(self, datagram: WireDatagram) -> None:
        destination = (datagram.destination[0], datagram.destination[1])
        if destination == SINK:
            self.to_sink += 1
        elif datagram.data and not datagram.data[0] & 0x80:  # short header
            self.last_dcid[destination] = datagram.data[1 : 1 + CID_LENGTH]


@attrs.frozen
class _Pair:
    client: trio_zttp.QuicConnection
    server: trio_zttp.QuicConnection
    client_endpoint: trio_zttp.QuicEndpoint
    server_endpoint: trio_zttp.QuicEndpoint
    client_engine: _Engine
    server_engine: _Engine


@asynccontextmanager
async def _pair(
    ca: CertificateAuthority, cert: IssuedCertificate, settle: float = 1.0
) -> AsyncIterator[_Pair]:
    engines: list[_Engine] = []

    def factory(configuration: Any, **kwargs: Any) -> _Engine:
        engine = _Engine(
            quic.Connection(configuration, **kwargs), is_client=configuration.is_client
        )
        engines.append(engine)
        return engine

    async with (
        trio_zttp.open_quic_endpoint(
            ("127.0.0.1", 0), server_configuration(cert), connection_factory=factory
        ) as server_endpoint,
        trio_zttp.open_quic_endpoint(
            ("127.0.0.1", 0), client_configuration(ca), connection_factory=factory
        ) as client_endpoint,
        client_endpoint.connect(server_endpoint.local_address, server_name="localhost")
        as client,
    ):
        server = await server_endpoint.accept()
        async with server:
            (client_engine,) = [e for e in engines if e.is_client]
            (server_engine,) = [e for e in engines if not e.is_client]
            await trio.sleep(settle)  # HANDSHAKE_DONE, NEW_CONNECTION_IDs, ACKs: all settled
            yield _Pair(client, server, client_endpoint, server_endpoint, client_engine,
                        server_engine)
        assert server_endpoint.statistics().internal_errors == 0
        assert client_endpoint.statistics().internal_errors == 0


async def _udp_socket(address: tuple[str, int]) -> trio.socket.SocketType:
    sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
    await sock.bind(address)
    return sock


def _junk(rng: random.Random, dcid: bytes) -> bytes:
    """A short-header datagram for ``dcid`` that no key opens (and no reset token ends)."""
    return bytes([0x40 | rng.randrange(64)]) + dcid + rng.randbytes(60)


async def _until(condition: Callable[[], bool], what: str, checkpoints: int = 10_000) -> None:
    """Yield (without letting virtual time pass) until ``condition()``."""
    for _ in range(checkpoints):
        if condition():
            return
        await trio.lowlevel.checkpoint()
    raise AssertionError(f"never happened: {what}")


async def _stall_driver(
    engine: _Engine, sock: trio.socket.SocketType, endpoint: trio_zttp.QuicEndpoint,
    dcid: bytes, stall: int,
) -> None:
    """Wake ``engine``'s driver with one datagram no key opens and leave it stuck sending
    ``stall`` datagrams; returns once it is stuck, its queue empty.

    Virtual sockets take a whole batch synchronously; here the endpoint's transport sends
    as a plain trio socket must (one checkpoint per datagram), so the driver really waits."""
    endpoint._transport.send_nowait = lambda datagrams, ecn=0: 0  # type: ignore[method-assign]
    engine.stall = stall
    await sock.sendto(_junk(random.Random(0), dcid), endpoint.local_address)
    await _until(lambda: engine.stalled, "the driver reached its flush")


async def _round_trip(pair: _Pair, payload: bytes) -> bytes:
    async with pair.client.open_stream() as stream:
        await stream.send_all(payload)
        await stream.send_eof()
        async with await pair.server.accept_stream() as peer:
            while data := await peer.receive_some():
                await peer.send_all(data)
        got = b""
        while data := await stream.receive_some():
            got += data
    return got


def _other_counters(stats: trio_zttp.QuicEndpointStatistics) -> tuple[int, ...]:
    return (stats.datagrams_malformed, stats.datagrams_unroutable,
            stats.version_negotiations_sent, stats.retries_sent, stats.stateless_resets_sent,
            stats.connections_refused, stats.internal_errors)


# -- a connection whose driver cannot keep up ----------------------------------------------------


@pytest.mark.parametrize("overflow", [0, 1, 300])
async def test_backpressure_full_queue_drops_exactly_the_overflow(
    ca, server_cert, autojump_clock, overflow
) -> None:
    burst = INCOMING_QUEUE_SIZE + overflow
    stall = 4 * burst + 100
    wire = _Wire()
    rng = random.Random(overflow)
    async with (
        open_virtual_network(seed=1, tap=wire),
        _pair(ca, server_cert) as pair,
    ):
        endpoint = pair.server_endpoint
        dcid = wire.last_dcid[endpoint.local_address]  # what the client sends the server
        attacker = await _udp_socket(ATTACKER)  # not the client's address
        before = endpoint.statistics()
        connection_before = pair.server.statistics()
        await _stall_driver(pair.server_engine, attacker, endpoint, dcid, stall)
        received_before_burst = pair.server_engine.received

        for _ in range(burst):
            await attacker.sendto(_junk(rng, dcid), endpoint.local_address)
        await _until(
            lambda: endpoint.statistics().datagrams_received == before.datagrams_received
            + 1 + burst, "the endpoint read the whole burst",
        )
        assert wire.to_sink < stall  # the driver is still stuck: it ran no wake-up since
        assert pair.server_engine.received == received_before_burst
        during = endpoint.statistics()
        assert during.datagrams_dropped - before.datagrams_dropped == overflow
        assert pair.server.statistics().datagrams_dropped == overflow

        await trio.sleep(0.1)  # the driver finishes its send and drains its queue
        assert wire.to_sink == stall
        # exactly what fitted reached the engine, in one wake-up: the queue held no more
        assert pair.server_engine.received - received_before_burst == INCOMING_QUEUE_SIZE
        assert pair.server_engine.most_received_per_flush == INCOMING_QUEUE_SIZE
        after = endpoint.statistics()
        assert after.datagrams_dropped - before.datagrams_dropped == overflow
        assert (
            pair.server.statistics().datagrams_received - connection_before.datagrams_received
            == 1 + INCOMING_QUEUE_SIZE
        )
        # the dropped datagrams counted as nothing else: no stateless reset (the sender is
        # no peer), not unroutable, malformed or refused; and nothing was sent back
        assert _other_counters(after) == _other_counters(before)
        with trio.move_on_after(1):
            await attacker.recvfrom(2048)
            raise AssertionError("the endpoint answered the flood")
        # the endpoint task survived and the connection still works
        assert await _round_trip(pair, b"after the flood" * 100) == b"after the flood" * 100
        assert after.connections == 1
        attacker.close()


async def test_backpressure_full_queue_from_the_peer_address_is_no_reset_trigger(
    ca, server_cert, autojump_clock
) -> None:
    # A short header with an unknown connection ID from a peer's address goes to that peer's
    # connections (it may be the peer's stateless reset).  With the connection's queue full
    # it is dropped and counted: the endpoint must not answer it with a stateless reset of
    # its own, nor count it as unroutable.
    overflow = 100
    burst = INCOMING_QUEUE_SIZE + overflow
    stall = 4 * burst + 100
    wire = _Wire()
    rng = random.Random(7)
    async with (
        open_virtual_network(seed=2, tap=wire),
        _pair(ca, server_cert) as pair,
    ):
        client_endpoint, server_endpoint = pair.client_endpoint, pair.server_endpoint
        client_dcid = wire.last_dcid[client_endpoint.local_address]
        server_dcid = wire.last_dcid[server_endpoint.local_address]
        attacker = await _udp_socket(ATTACKER)
        before = client_endpoint.statistics()
        server_before = server_endpoint.statistics()
        await _stall_driver(pair.client_engine, attacker, client_endpoint, client_dcid, stall)
        received_before_burst = pair.client_engine.received

        # the burst leaves the server's own socket: its source is the client's peer address
        pair.server_engine.extra = [
            (_junk(rng, rng.randbytes(CID_LENGTH)), client_endpoint.local_address)
            for _ in range(burst)
        ]
        await attacker.sendto(_junk(rng, server_dcid), server_endpoint.local_address)
        await _until(
            lambda: client_endpoint.statistics().datagrams_received
            == before.datagrams_received + 1 + burst, "the client endpoint read the burst",
        )
        assert wire.to_sink < stall
        assert client_endpoint.statistics().datagrams_dropped - before.datagrams_dropped == (
            overflow
        )

        await trio.sleep(0.1)
        assert wire.to_sink == stall
        assert pair.client_engine.received - received_before_burst == INCOMING_QUEUE_SIZE
        assert pair.client_engine.most_received_per_flush == INCOMING_QUEUE_SIZE
        after = client_endpoint.statistics()
        assert after.datagrams_dropped - before.datagrams_dropped == overflow
        assert pair.client.statistics().datagrams_dropped == overflow
        assert _other_counters(after) == _other_counters(before)
        assert server_endpoint.statistics().datagrams_received == (
            server_before.datagrams_received + 1  # the wake-up only: no reset came back
        )
        assert not pair.client.closed  # junk is no stateless reset
        assert await _round_trip(pair, b"still here") == b"still here"
        attacker.close()


async def test_backpressure_idle_driver_drains_between_batches_over_real_udp(
    ca, server_cert
) -> None:
    # Real loopback (no autojump clock): the batched transport reads up to 256 datagrams at
    # once, and reads the next batch before it yields.  A burst bigger than the queue for
    # an idle connection must not lose anything: the driver runs between two batches.
    # (Before the endpoint yielded after routing a batch, trio's scheduler let the receive
    # task route the second batch first about half the time, dropping most of it.)
    async with _pair(ca, server_cert, settle=0.2) as pair:
        endpoint = pair.server_endpoint
        dcid = pair.server_engine.local_connection_id
        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rng = random.Random(8)
        try:
            for _ in range(3):
                before = endpoint.statistics()
                for i in range(3 * INCOMING_QUEUE_SIZE):  # queued in the kernel at once
                    junk = _junk(rng, dcid) + bytes(i % 7)  # unequal sizes: no GRO merging
                    sender.sendto(junk, endpoint.local_address)
                for _ in range(200):  # up to 2 s for the endpoint to read them all
                    read = endpoint.statistics().datagrams_received - before.datagrams_received
                    if read >= 3 * INCOMING_QUEUE_SIZE:
                        break
                    await trio.sleep(0.01)
                after = endpoint.statistics()
                assert after.datagrams_received > before.datagrams_received + INCOMING_QUEUE_SIZE
                assert after.datagrams_dropped == before.datagrams_dropped
        finally:
            sender.close()
        assert await _round_trip(pair, b"ok") == b"ok"


# -- the backlog bounds connections nobody accepts ------------------------------------------------


async def test_backpressure_backlog_bounds_connections_nobody_accepts(
    ca, server_cert, autojump_clock
) -> None:
    # The backlog counts handshakes in progress *and* finished connections waiting for
    # accept(): an application that stops accepting makes the endpoint refuse Initials
    # instead of holding ever more connections.
    backlog = 2
    connected: list[int] = []
    release = trio.Event()

    async def client(index: int, endpoint: trio_zttp.QuicEndpoint) -> None:
        async with trio_zttp.open_quic_endpoint(
            (f"10.3.0.{index + 1}", 0), client_configuration(ca), connection_factory=quic.Connection
        ) as local:
            async with local.connect(endpoint.local_address, server_name="localhost"):
                connected.append(index)
                await release.wait()

    async with (
        open_virtual_network(seed=3),
        trio_zttp.open_quic_endpoint(
            ("10.3.1.1", 4433), server_configuration(server_cert),
            connection_factory=quic.Connection, backlog=backlog, retry="never",
        ) as server,
        trio.open_nursery() as nursery,
    ):  # fmt: skip
        for index in range(backlog):
            nursery.start_soon(client, index, server)
        await trio.sleep(1)
        assert sorted(connected) == [0, 1]
        stats = server.statistics()
        assert (stats.connections, stats.half_open_connections) == (backlog, 0)

        nursery.start_soon(client, 2, server)
        await trio.sleep(2.5)  # its first Initial and at least one retransmission: refused
        assert sorted(connected) == [0, 1]
        stats = server.statistics()
        assert stats.connections == backlog  # no state for the third client
        assert stats.connections_accepted == backlog
        assert stats.connections_refused >= 2

        accepted = await server.accept()  # one slot frees up
        await trio.sleep(5)  # the third client's next retransmission gets in
        assert sorted(connected) == [0, 1, 2]
        stats = server.statistics()
        assert stats.connections == backlog + 1  # the accepted one no longer counts
        assert stats.connections_accepted == backlog + 1
        release.set()
        await accepted.aclose()


# -- Retry tokens that do not validate leave nothing behind ---------------------------------------


async def test_backpressure_forged_and_misbound_retry_tokens_leave_no_state(
    ca, server_cert, autojump_clock
) -> None:
    async with (
        open_virtual_network(seed=4),
        trio_zttp.open_quic_endpoint(
            ("10.4.1.1", 4433), server_configuration(server_cert),
            connection_factory=quic.Connection, retry="always",
        ) as server,
    ):  # fmt: skip
        address = server.local_address
        now = trio.current_time()
        # a real client gets a real Retry at A, then its token-carrying Initial is replayed
        # from B: the token is bound to A's address and port
        a, b = await _udp_socket(("10.4.0.1", 5000)), await _udp_socket(("10.4.0.2", 5000))
        engine = quic.Connection(client_configuration(ca, server_name="localhost"))
        engine.connect(address, now)
        for datagram, _ in engine.datagrams_to_send(now):
            await a.sendto(datagram, address)
        retry, _ = await a.recvfrom(2048)
        assert parse_header(retry, 0, CID_LENGTH).packet_type is PacketType.RETRY
        engine.receive_datagram(retry, address, trio.current_time())
        (second, _), *_ = engine.datagrams_to_send(trio.current_time())
        assert parse_header(second, 0, CID_LENGTH).token  # the Retry token

        # and a flood of Initials with forged Retry-looking tokens from many addresses
        rng = random.Random(4)
        forged = []
        for _ in range(40):
            config = client_configuration(ca, server_name="localhost",
                                          token=b"\x01" + rng.randbytes(60))
            flooder = quic.Connection(config)
            flooder.connect(address, now)
            forged.append(flooder.datagrams_to_send(now)[0][0])
        before = server.statistics()
        await b.sendto(second, address)
        for i, datagram in enumerate(forged):
            sock = await _udp_socket((f"10.4.2.{i + 1}", 4000))
            await sock.sendto(datagram, address)
            sock.close()
        await trio.sleep(1)
        stats = server.statistics()
        assert stats.connections_refused - before.connections_refused == 1 + len(forged)
        assert stats.retries_sent == before.retries_sent  # a client takes no second Retry
        assert (stats.connections, stats.half_open_connections) == (0, 0)
        assert stats.internal_errors == 0
        with trio.move_on_after(1):
            await b.recvfrom(2048)
            raise AssertionError("the server answered a misbound token")

        await a.sendto(second, address)  # from the address the token was minted for
        await trio.sleep(0.1)
        assert server.statistics().half_open_connections == 1
        a.close()
        b.close()


# -- response rate limits: exact budgets, shared by every source address -------------------------


async def test_backpressure_response_rate_limits_are_exact_across_addresses(
    server_cert, autojump_clock
) -> None:
    # Stateless resets and Version Negotiations each get 100 per second with a burst of
    # 100, for the whole endpoint: spreading a flood over many addresses buys nothing, and
    # one kind of flood does not spend the other's budget.  Virtual time stands still while
    # the flood is sent (no task ever blocks), so the budgets are exact.
    rng = random.Random(5)
    async with (
        open_virtual_network(seed=5),
        trio_zttp.open_quic_endpoint(
            ("10.5.1.1", 4433), server_configuration(server_cert),
            connection_factory=quic.Connection,
        ) as server,
    ):  # fmt: skip
        address = server.local_address
        sockets = [await _udp_socket((f"10.5.{i // 200}.{i % 200 + 2}", 4000))
                   for i in range(400)]

        def unknown_version() -> bytes:
            head = bytes([0xC0]) + (0x1A2A3A4A).to_bytes(4, "big")
            head += bytes([8]) + rng.randbytes(8) + bytes([8]) + rng.randbytes(8)
            return head + bytes(1200 - len(head))

        async def flood(rounds: int) -> None:
            for _ in range(rounds):
                for sock in sockets:
                    await sock.sendto(_junk(rng, rng.randbytes(CID_LENGTH)), address)
                    await sock.sendto(unknown_version(), address)

        start = trio.current_time()
        await flood(3)  # 1200 triggers of each kind
        await _until(lambda: server.statistics().datagrams_received == 2400, "flood read")
        assert trio.current_time() == start
        stats = server.statistics()
        assert (stats.stateless_resets_sent, stats.version_negotiations_sent) == (100, 100)
        assert stats.datagrams_unroutable == 2 * 1100  # the rest: dropped and counted
        await trio.sleep(0.5)  # 50 more of each
        await flood(1)
        await _until(lambda: server.statistics().datagrams_received == 3200, "flood read")
        stats = server.statistics()
        assert (stats.stateless_resets_sent, stats.version_negotiations_sent) == (150, 150)
        assert stats.datagrams_unroutable == 2 * 1100 + 2 * 350
        assert (stats.connections, stats.internal_errors) == (0, 0)
        for sock in sockets:
            sock.close()
