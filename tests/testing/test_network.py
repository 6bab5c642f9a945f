"""The trio virtual datagram network, in virtual time (pytest-trio's ``autojump_clock``)."""

from __future__ import annotations

import errno
import hashlib
import math
import socket as stdlib_socket
import struct
import time
from collections.abc import Callable
from typing import Any

import pytest
import trio
import trio.testing
from aioquic.quic.events import HandshakeCompleted, StreamDataReceived

from tests.testing._peers import Identity, aioquic_client, aioquic_server_factory, make_identity
from trio_zttp.testing import (
    LinkConditions,
    LinkStatistics,
    VirtualNetwork,
    VirtualSocket,
    WireDatagram,
    open_virtual_network,
)

AF_INET, AF_INET6, SOCK_DGRAM = trio.socket.AF_INET, trio.socket.AF_INET6, trio.socket.SOCK_DGRAM


async def udp(address: tuple[str, int] | None = None, family: int = AF_INET) -> VirtualSocket:
    sock = trio.socket.socket(family, SOCK_DGRAM)
    assert isinstance(sock, VirtualSocket)
    if address is not None:
        await sock.bind(address)
    return sock


async def test_network_udp_echo(autojump_clock: trio.testing.MockClock) -> None:
    async with open_virtual_network() as network:
        server = await udp(("10.0.0.2", 4433))
        client = await udp()

        async def echo() -> None:
            data, peer = await server.recvfrom(2048)
            await server.sendto(data.upper(), peer)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(echo)
            await client.sendto(b"ping", ("10.0.0.2", 4433))
            data, peer = await client.recvfrom(2048)
        assert (data, peer) == (b"PING", ("10.0.0.2", 4433))
        host, port = client.getsockname()
        assert (host, port >= 50000) == ("0.0.0.0", True)
        stats = network.statistics()
        assert (stats.links.datagrams_sent, stats.delivered, stats.unroutable) == (2, 2, 0)


async def test_network_ipv6_echo_and_wildcard(autojump_clock: trio.testing.MockClock) -> None:
    async with open_virtual_network():
        server = await udp(("::", 9000), AF_INET6)
        client = await udp(("2001:db8::1", 0), AF_INET6)
        await client.sendto(b"hi", ("2001:db8:0::9", 9000))
        data, peer = await server.recvfrom(100)
        assert data == b"hi"
        assert peer[:2] == client.getsockname()[:2] and len(peer) == 4
        await server.sendto(b"back", peer)
        assert await client.recvfrom(100) == (b"back", ("::1", 9000, 0, 0))


async def test_network_loss_dup_reorder_statistics_follow_the_seed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # the hold-back is not a multiple of the send interval, so no two deliveries tie
    conditions = LinkConditions(loss=0.2, duplicate=0.1, reorder=0.2, reorder_delay=0.0505,
                                delay=0.01)

    async def scenario(seed: int) -> tuple[LinkStatistics, list[int]]:
        async with open_virtual_network(seed=seed, conditions=conditions) as network:
            receiver = await udp(("10.0.0.2", 53))
            sender = await udp(("10.0.0.1", 5353))
            for n in range(500):
                await sender.sendto(n.to_bytes(2, "big"), ("10.0.0.2", 53))
                await trio.sleep(0.001)
            got = []
            with trio.move_on_after(1):
                while True:
                    data, _ = await receiver.recvfrom(10)
                    got.append(int.from_bytes(data, "big"))
            stats = network.link_statistics(("10.0.0.1", 5353), ("10.0.0.2", 53))
            assert network.statistics().links == stats
            return stats, got

    stats, got = await scenario(1)
    assert (stats, got) == await scenario(1)
    assert (stats, got) != await scenario(2)
    assert stats.datagrams_sent == 500
    assert 60 < stats.dropped_loss < 140
    assert 20 < stats.duplicated < 80
    assert len(got) == 500 - stats.dropped + stats.duplicated
    assert got != sorted(got)
    assert len(set(got)) == 500 - stats.dropped


async def test_network_delay_is_virtual(autojump_clock: trio.testing.MockClock) -> None:
    async with open_virtual_network(conditions=LinkConditions(delay=2.5)):
        receiver = await udp(("127.0.0.1", 1000))
        sender = await udp()
        wall = time.perf_counter()
        sent_at = trio.current_time()
        await sender.sendto(b"x", ("127.0.0.1", 1000))
        await receiver.recvfrom(10)
        assert trio.current_time() - sent_at == pytest.approx(2.5)
        assert time.perf_counter() - wall < 1.0


async def test_network_mtu_drop(autojump_clock: trio.testing.MockClock) -> None:
    async with open_virtual_network(conditions=LinkConditions(mtu=1400)) as network:
        receiver = await udp(("127.0.0.1", 1000))
        sender = await udp()
        await sender.sendto(bytes(1401), ("127.0.0.1", 1000))
        await sender.sendto(bytes(1400), ("127.0.0.1", 1000))
        data, _ = await receiver.recvfrom(2000)
        assert len(data) == 1400
        assert not receiver.is_readable()
        assert network.statistics().links.dropped_mtu == 1
        with pytest.raises(OSError) as info:
            await sender.sendto(bytes(70000), ("127.0.0.1", 1000))
        assert info.value.errno == errno.EMSGSIZE


async def test_network_bandwidth_shaping(autojump_clock: trio.testing.MockClock) -> None:
    async with open_virtual_network(conditions=LinkConditions(bandwidth=1_000_000)):
        receiver = await udp(("127.0.0.1", 1000))
        sender = await udp()
        start = trio.current_time()
        for _ in range(1000):
            await sender.sendto(bytes(1000), ("127.0.0.1", 1000))
        assert trio.current_time() == start  # sending only queues
        received = 0
        while received < 1_000_000:
            received += len((await receiver.recvfrom(2000))[0])
        assert trio.current_time() - start == pytest.approx(1.0)


async def test_network_per_link_conditions_at_run_time(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_virtual_network() as network:
        a = await udp(("10.0.0.1", 1))
        b = await udp(("10.0.0.2", 2))
        c = await udp(("10.0.0.3", 3))
        network.set_link_conditions("10.0.0.1", "10.0.0.2", LinkConditions(loss=1.0))
        await a.sendto(b"lost", ("10.0.0.2", 2))
        await a.sendto(b"kept", ("10.0.0.3", 3))
        assert await c.recv(10) == b"kept"
        await b.sendto(b"lost too", ("10.0.0.1", 1))
        # an endpoint rule beats the host rule
        network.set_link_conditions(("10.0.0.1", 1), ("10.0.0.2", 2), LinkConditions(delay=1),
                                    both_directions=False)
        before = trio.current_time()
        await a.sendto(b"late", ("10.0.0.2", 2))
        assert await b.recv(10) == b"late"
        assert trio.current_time() - before == pytest.approx(1.0)
        assert not a.is_readable()
        assert network.link_statistics(("10.0.0.1", 1), ("10.0.0.2", 2)).dropped_loss == 1
        assert network.link_statistics(("10.0.0.2", 2), ("10.0.0.1", 1)).dropped_loss == 1


async def test_network_tap_sees_every_datagram(autojump_clock: trio.testing.MockClock) -> None:
    seen: list[WireDatagram] = []
    async with open_virtual_network(conditions=LinkConditions(loss=1.0), tap=seen.append):
        sender = await udp(("10.0.0.1", 7))
        await trio.sleep(3)
        await sender.sendto(b"abc", ("10.0.0.2", 8))
    assert seen == [WireDatagram(time=seen[0].time, source=("10.0.0.1", 7),
                                 destination=("10.0.0.2", 8), data=b"abc")]
    assert seen[0].time == pytest.approx(trio.current_time())


async def test_network_bind_rules(autojump_clock: trio.testing.MockClock) -> None:
    async with open_virtual_network():
        first = await udp(("127.0.0.1", 4433))
        with pytest.raises(OSError, match="in use"):
            await udp(("127.0.0.1", 4433))
        with pytest.raises(OSError, match="in use"):
            await udp(("0.0.0.0", 4433))
        with pytest.raises(OSError):
            await first.bind(("127.0.0.1", 4434))
        with pytest.raises(stdlib_socket.gaierror):
            await udp(("example.com", 1))
        with pytest.raises(OSError):
            await udp(("::1", 1))  # an IPv6 address in an IPv4 socket
        ephemeral = {(await udp(("127.0.0.1", 0))).getsockname()[1] for _ in range(3)}
        assert len(ephemeral) == 3
        first.close()
        await udp(("127.0.0.1", 4433))  # free again
        with pytest.raises(OSError):
            first.getsockname()
        with pytest.raises(NotImplementedError):
            trio.socket.socket(AF_INET, trio.socket.SOCK_STREAM)


async def test_network_close_wakes_receiver(autojump_clock: trio.testing.MockClock) -> None:
    async with open_virtual_network():
        sock = await udp(("127.0.0.1", 1))

        async def close_soon() -> None:
            await trio.sleep(1)
            sock.close()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(close_soon)
            with pytest.raises(trio.ClosedResourceError):
                await sock.recvfrom(10)
        with pytest.raises(OSError):
            await sock.recvfrom(10)


async def test_network_receive_variants_truncate(autojump_clock: trio.testing.MockClock) -> None:
    async with open_virtual_network():
        receiver = await udp(("127.0.0.1", 1))
        sender = await udp(("127.0.0.1", 2))
        for _ in range(4):
            await sender.sendto(b"0123456789", ("127.0.0.1", 1))
        buffer = bytearray(4)
        assert await receiver.recvfrom_into(buffer) == (4, ("127.0.0.1", 2))
        assert buffer == b"0123"
        assert await receiver.recv(3) == b"012"
        data, ancdata, flags, source = await receiver.recvmsg(5)
        assert (data, ancdata, flags & stdlib_socket.MSG_TRUNC) == (b"01234", [],
                                                                   stdlib_socket.MSG_TRUNC)
        first, second = bytearray(6), bytearray(10)
        size, _, flags, _ = await receiver.recvmsg_into([first, second])
        assert (size, bytes(first), bytes(second[:4]), flags) == (10, b"012345", b"6789", 0)


async def test_network_sendmsg_gso_splits(autojump_clock: trio.testing.MockClock) -> None:
    async with open_virtual_network() as network:
        receiver = await udp(("127.0.0.1", 1))
        sender = await udp()
        segment = [(17, 103, struct.pack("=H", 4))]
        assert await sender.sendmsg([b"aaaabb", b"bbcc"], segment, 0, ("127.0.0.1", 1)) == 10
        assert [await receiver.recv(10) for _ in range(3)] == [b"aaaa", b"bbbb", b"cc"]
        assert network.statistics().links.datagrams_sent == 3


async def test_network_socket_options(autojump_clock: trio.testing.MockClock) -> None:
    async with open_virtual_network() as network:
        receiver = await udp(("127.0.0.1", 1))
        receiver.setsockopt(trio.socket.IPPROTO_IP, trio.socket.IP_TOS, 2)
        assert receiver.getsockopt(trio.socket.IPPROTO_IP, trio.socket.IP_TOS) == 2
        assert receiver.getsockopt(trio.socket.SOL_SOCKET, trio.socket.SO_BROADCAST) == 0
        receiver.setsockopt(trio.socket.SOL_SOCKET, trio.socket.SO_RCVBUF, 2500)
        assert receiver.getsockopt(trio.socket.SOL_SOCKET, trio.socket.SO_RCVBUF) == 2500
        sender = await udp()
        for _ in range(3):
            await sender.sendto(bytes(1000), ("127.0.0.1", 1))
        assert network.statistics().overflowed == 1
        with pytest.raises(NotImplementedError):
            receiver.fileno()


async def test_network_connect_filters_and_sends(autojump_clock: trio.testing.MockClock) -> None:
    async with open_virtual_network() as network:
        a = await udp(("10.0.0.1", 1))
        b = await udp(("10.0.0.2", 2))
        other = await udp(("10.0.0.3", 3))
        with pytest.raises(OSError):
            a.getpeername()
        await a.connect(("10.0.0.2", 2))
        assert a.getpeername() == ("10.0.0.2", 2)
        await a.send(b"to b")
        assert await b.recvfrom(10) == (b"to b", ("10.0.0.1", 1))
        await other.sendto(b"filtered", ("10.0.0.1", 1))
        await b.sendto(b"from b", ("10.0.0.1", 1))
        await a.wait_readable()
        assert await a.recv(10) == b"from b"
        assert network.statistics().unroutable == 1


async def test_network_resolves_hosts(autojump_clock: trio.testing.MockClock) -> None:
    async with open_virtual_network(hosts={"quic.test": ["10.1.1.1", "2001:db8::1"]}):
        entries = await trio.socket.getaddrinfo("quic.test", 443, type=SOCK_DGRAM)
        assert [entry[4] for entry in entries] == [("10.1.1.1", 443), ("2001:db8::1", 443, 0, 0)]
        entries = await trio.socket.getaddrinfo("quic.test", 443, family=AF_INET6)
        assert [entry[0] for entry in entries] == [AF_INET6]
        with pytest.raises(stdlib_socket.gaierror):
            await trio.socket.getaddrinfo("elsewhere.test", 443)


async def test_network_uninstalls_on_exit(autojump_clock: trio.testing.MockClock) -> None:
    network = VirtualNetwork()
    async with network.run():
        sock = await udp(("127.0.0.1", 1))
        with pytest.raises(RuntimeError):
            async with network.run():
                pass  # pragma: no cover
    with pytest.raises(OSError):
        sock.getsockname()  # closed with the network
    real = trio.socket.socket(AF_INET, SOCK_DGRAM)
    with real:
        assert not isinstance(real, VirtualSocket)


# --- a QUIC stack over the virtual network ----------------------------------------------------


@pytest.fixture(scope="module")
def identity() -> Identity:
    return make_identity()


async def drive(
    connection: Any, sock: VirtualSocket, on_event: Callable[[object], None]
) -> None:
    """The sans-IO loop of DESIGN.md for one aioquic connection: send, wait for a datagram or
    the timer, feed it in, drain events."""
    fired_at = -math.inf
    while True:
        for data, address in connection.datagrams_to_send(trio.current_time()):
            await sock.sendto(data, address)
        timer = connection.get_timer()
        if timer is not None and timer <= fired_at:
            timer = fired_at + 1e-6  # aioquic's loss timer can stay due at the same instant
        with trio.move_on_at(timer if timer is not None else math.inf) as scope:
            data, address = await sock.recvfrom(65536)
            connection.receive_datagram(data, address, trio.current_time())
        if scope.cancelled_caught:
            fired_at = trio.current_time()
            connection.handle_timer(fired_at)
        while (event := connection.next_event()) is not None:
            on_event(event)


async def test_network_carries_aioquic_over_loss(
    autojump_clock: trio.testing.MockClock, identity: Identity
) -> None:
    payload = bytes(range(256)) * 1200
    received = bytearray()
    finished = trio.Event()
    conditions = LinkConditions(loss=0.05, delay=0.02, jitter=0.005, mtu=1400)
    async with open_virtual_network(seed=4, conditions=conditions) as network:
        server_sock = await udp(("10.0.0.2", 4433))
        client_sock = await udp(("10.0.0.1", 0))
        client = aioquic_client(identity)
        start = trio.current_time()

        async def serve() -> None:
            data, address = await server_sock.recvfrom(65536)
            server = aioquic_server_factory(identity)(data, address)
            server.receive_datagram(data, address, trio.current_time())

            def on_event(event: object) -> None:
                if isinstance(event, StreamDataReceived):
                    received.extend(event.data)
                    if event.end_stream:
                        finished.set()

            await drive(server, server_sock, on_event)

        def on_client_event(event: object) -> None:
            if isinstance(event, HandshakeCompleted):
                client.send_stream_data(0, payload, end_stream=True)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(serve)
            client.connect(("10.0.0.2", 4433), trio.current_time())
            nursery.start_soon(drive, client, client_sock, on_client_event)
            await finished.wait()
            nursery.cancel_scope.cancel()
        assert hashlib.sha256(received).digest() == hashlib.sha256(payload).digest()
        assert network.statistics().links.dropped_loss > 5
        # at least the handshake's and the transfer's round trips, in virtual time
        assert trio.current_time() - start > 0.1


async def test_network_sendto_nowait_needs_no_checkpoint(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_virtual_network() as network:
        server = await udp(("10.0.0.2", 4433))
        client = await udp(("10.0.0.1", 5000))
        assert client.sendto_nowait(b"one", ("10.0.0.2", 4433)) == 3
        assert client.sendto_nowait(b"two", ("10.0.0.2", 4433)) == 3
        assert [await server.recvfrom(64) for _ in range(2)] == [
            (b"one", ("10.0.0.1", 5000)), (b"two", ("10.0.0.1", 5000))
        ]
        assert network.statistics().delivered == 2
        client.close()
        with pytest.raises(OSError):
            client.sendto_nowait(b"three", ("10.0.0.2", 4433))
