"""The server's preferred address (RFC 9000 §9.6) in the trio layer, over trio's fake network.

A server endpoint whose configuration sets ``preferred_ipv4_address`` / ``preferred_ipv6_address``
binds a socket there too.  Our client follows once the handshake is confirmed (its probe, the
server's answer from the preferred socket, then its packets there); the server moves to that
socket when a non-probing packet arrives there and it validated the path, and only then sends
from it (§9.6.2).  The fake network's ``route_packet`` hook records who sends from where, and
holds or drops packets to stage the cases.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import os
from collections.abc import Callable
from typing import Any

import pytest
import trio
from trio.testing._fake_net import UDPEndpoint, UDPPacket

import trio_zttp
from trio_zttp import quic
from trio_zttp.quic._cids import stateless_reset_token
from trio_zttp.quic._packet import PacketType, parse_header

from ._h3_helpers import client_configuration, h3_client, served
from ._helpers import ENGINE
from ._helpers import server_configuration as quic_server_configuration

PREFERRED = ("127.0.0.2", 4434)
BODY = hashlib.shake_128(b"preferred address").digest(2_000_000)
SIZE = len(BODY)


def _address(endpoint: UDPEndpoint) -> tuple[str, int]:
    return (str(endpoint.ip), endpoint.port)


class Wire:
    """The fake network's router: records every packet as (source, destination, payload);
    ``hold(predicate)`` keeps matching packets back until :meth:`release`, ``drop`` loses
    them."""

    def __init__(self, fake_net: Any) -> None:
        self.net = fake_net
        self.log: list[tuple[tuple[str, int], tuple[str, int], bytes]] = []
        self.held: list[UDPPacket] = []
        self.hold_if: Callable[[tuple[str, int], tuple[str, int]], bool] | None = None
        self.drop_if: Callable[[tuple[str, int], tuple[str, int]], bool] | None = None
        #: one-way delay of every packet (virtual time): :meth:`run` delivers them
        self.delay = 0.0
        self._send, self._receive = trio.open_memory_channel[tuple[float, UDPPacket]](math.inf)
        fake_net.route_packet = self

    async def run(self) -> None:
        async for due, packet in self._receive:
            await trio.sleep_until(due)
            self.net.deliver_packet(packet)

    def __call__(self, packet: UDPPacket) -> None:
        source, destination = _address(packet.source), _address(packet.destination)
        self.log.append((source, destination, packet.payload))
        if self.drop_if is not None and self.drop_if(source, destination):
            return
        if self.hold_if is not None and self.hold_if(source, destination):
            self.held.append(packet)
            return
        if self.delay:
            self._send.send_nowait((trio.current_time() + self.delay, packet))
            return
        self.net.deliver_packet(packet)

    def release(self) -> None:
        self.hold_if = None
        held, self.held = self.held, []
        for packet in held:
            self.net.deliver_packet(packet)

    def sources_to(self, destination: tuple[str, int]) -> list[tuple[str, int]]:
        return [s for s, d, _ in self.log if d == destination]


def _short(payload: bytes) -> bool:
    return bool(payload) and not payload[0] & 0x80


async def _download(conn: trio_zttp.H3Connection, on_progress: Callable[[int], None]) -> bytes:
    response = await conn.request("GET", "/body")
    digest = hashlib.sha256()
    received = 0
    while data := await response.body.receive_some():
        digest.update(data)
        received += len(data)
        on_progress(received)
    assert received == SIZE
    return digest.digest()


def _recording_handler(seen: list[trio_zttp.QuicConnection]) -> Any:
    async def handler(request: trio_zttp.H3Request) -> None:
        quic_connection = request.connection.quic
        if quic_connection not in seen:
            seen.append(quic_connection)
        if request.path == "/where":
            local, remote = quic_connection.local_address, quic_connection.remote_address
            await request.respond(200, body=f"{local} {remote}".encode())
            return
        await request.respond(200, body=BODY)

    return handler


async def _wait_for(predicate: Callable[[], bool], what: str) -> None:
    with trio.move_on_after(10):
        for _ in range(1000):  # (polls: the connection has no event for this)
            if predicate():
                return
            await trio.sleep(0.01)
    raise AssertionError(f"timed out waiting: {what}")


async def test_client_follows_the_preferred_address_mid_download(
    fake_net, ca, server_cert, autojump_clock
):
    wire = Wire(fake_net)
    wire.delay = 0.01  # 20 ms round trips: the body takes several, the move happens among them
    seen: list[trio_zttp.QuicConnection] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(wire.run)
        async with served(_recording_handler(seen), server_cert,
                          server={"preferred_ipv4_address": PREFERRED}) as server:
            main = server.endpoint.local_address
            assert server.endpoint.preferred_addresses == (PREFERRED,)
            async with h3_client(ca, server.port) as conn:
                client_address = conn.quic.local_address
                response = await conn.request("GET", "/body")
                started = len(wire.log)
                digest = hashlib.sha256()
                while data := await response.body.receive_some():
                    digest.update(data)
                assert digest.digest() == hashlib.sha256(BODY).digest()
                done = len(wire.log)
                await _wait_for(lambda: conn.quic.remote_address == PREFERRED, "client moved")
                (server_side,) = seen
                await _wait_for(lambda: server_side.local_address == PREFERRED, "server moved")
                assert server_side.remote_address == client_address  # (the tag stripped)
                # a request on the new path, answered from the preferred socket
                answer = (await (await conn.request("GET", "/where")).read()).decode()
                assert answer == f"{PREFERRED} {client_address}"
                stats = server.endpoint.statistics()
                assert stats.datagrams_received_at_preferred_address > 0
                assert stats.internal_errors == 0
                assert stats.datagrams_received > stats.datagrams_received_at_preferred_address
                assert server_side.statistics().transport.peer_address == client_address
        nursery.cancel_scope.cancel()
    # the body's packets (full-sized 1-RTT datagrams to the client), by source, in order
    body = [s for s, d, p in wire.log[started:done]
            if d == client_address and _short(p) and len(p) >= 1200]
    moved = len(body) - body[::-1].index(main)  # after the last one from the main socket
    # it began from the server's own address, with only the answers to the client's probes
    # (padded PATH_RESPONSE datagrams) from the preferred socket meanwhile (§9.6.2) ...
    assert body[:moved].count(main) * 1200 > 20_000
    assert 1 <= body[:moved].count(PREFERRED) <= 6
    # ... and ended from the preferred socket, where it stayed
    assert len(body[moved:]) * 1200 > SIZE // 2 and set(body[moved:]) == {PREFERRED}
    # one connection ID never leaves from both of the server's addresses (RFC 9000 §9.5)
    dcids = {source: {p[1:9] for s, d, p in wire.log if s == source and d == client_address
                      and _short(p)} for source in (main, PREFERRED)}
    assert dcids[main] and dcids[PREFERRED] and not dcids[main] & dcids[PREFERRED]
    # the endpoint's exit closed the preferred socket: its port can be bound again
    probe = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
    with probe:
        await probe.bind(PREFERRED)


async def test_client_told_not_to_follow_stays(fake_net, ca, server_cert, autojump_clock):
    wire = Wire(fake_net)
    seen: list[trio_zttp.QuicConnection] = []
    async with served(_recording_handler(seen), server_cert,
                      server={"preferred_ipv4_address": PREFERRED}) as server, \
            h3_client(ca, server.port, use_preferred_address=False) as conn:
        main = server.endpoint.local_address
        digest = await _download(conn, lambda _: None)
        assert digest == hashlib.sha256(BODY).digest()
        await trio.sleep(2)  # (virtual time) long past any probe
        assert conn.quic.remote_address == main
        (server_side,) = seen
        assert server_side.local_address == main
        assert server.endpoint.statistics().datagrams_received_at_preferred_address == 0
        assert PREFERRED not in {d for _, d, _ in wire.log}
        assert PREFERRED not in {s for s, _, _ in wire.log}


async def test_answers_lost_from_the_preferred_address_leave_the_server_where_it_was(
    fake_net, ca, server_cert, autojump_clock
):
    """The client's probes arrive at the preferred socket and are answered from it, but the
    answers are lost: the client stays, and the server, which never got a non-probing packet
    there, keeps sending everything but those answers from its own address (§9.6.2)."""
    wire = Wire(fake_net)
    seen: list[trio_zttp.QuicConnection] = []
    wire.drop_if = lambda source, destination: source == PREFERRED
    async with served(_recording_handler(seen), server_cert,
                      server={"preferred_ipv4_address": PREFERRED}) as server, \
            h3_client(ca, server.port) as conn:
        main = server.endpoint.local_address
        client_address = conn.quic.local_address
        digest = await _download(conn, lambda _: None)
        assert digest == hashlib.sha256(BODY).digest()
        await trio.sleep(5)  # (virtual time) the probe failed
        assert conn.quic.remote_address == main
        (server_side,) = seen
        assert server_side.local_address == main
        assert len(await (await conn.request("GET", "/where")).read()) > 0
        stats = server.endpoint.statistics()
        assert stats.datagrams_received_at_preferred_address > 0  # the probes came
        from_preferred = [p for s, d, p in wire.log if s == PREFERRED]
        assert from_preferred  # and were answered from there (lost on the way)
        assert all(len(p) >= 1200 for p in from_preferred)  # padded probes, no data flow
        from_main = [p for s, d, p in wire.log if s == main and d[1] == client_address[1]]
        assert len(from_main) > len(from_preferred) * 10


async def test_ipv6_client_follows_the_ipv6_preferred_address(
    fake_net, ca, server_cert, autojump_clock
):
    """Both families offered: two extra sockets; an IPv6 client moves to the IPv6 one (the
    second preferred socket), and the answers come from there."""
    preferred6 = ("::2", 4435)
    wire = Wire(fake_net)
    server_config = quic_server_configuration(
        server_cert, alpn_protocols=("h3",), preferred_ipv4_address=PREFERRED,
        preferred_ipv6_address=preferred6)
    seen: list[trio_zttp.QuicConnection] = []
    async with trio.open_nursery() as nursery:
        server: trio_zttp.QuicEndpoint = await nursery.start(
            trio_zttp.serve_h3, _recording_handler(seen), "::1", 0, server_config)
        assert server.preferred_addresses == (PREFERRED, preferred6)
        async with trio_zttp.open_h3_connection(
            "::1", server.local_address[1], client_configuration(ca),
            server_name="localhost", connection_factory=ENGINE,
        ) as conn:
            assert await (await conn.request("GET", "/body")).read() == BODY
            await _wait_for(lambda: conn.quic.remote_address == preferred6, "client moved")
            (server_side,) = seen
            await _wait_for(lambda: server_side.local_address == preferred6, "server moved")
            answer = await (await conn.request("GET", "/where")).read()
            assert answer.decode().startswith(f"{preferred6} ")
            client = conn.quic.local_address
            tail = [s for s, d, _ in wire.log if d[1] == client[1]][-5:]
            assert set(tail) == {preferred6}
            assert PREFERRED not in {d for _, d, _ in wire.log}  # the IPv4 one unused
        nursery.cancel_scope.cancel()


# -- hostile traffic at the preferred socket ----------------------------------------------------


async def _raw_socket() -> trio.socket.SocketType:
    sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
    await sock.bind(("127.0.0.1", 0))
    return sock


async def _answers(sock: trio.socket.SocketType, seconds: float) -> list[tuple[bytes, Any]]:
    got = []
    with trio.move_on_after(seconds):
        while True:
            got.append(await sock.recvfrom(65536))
    return got


def _client_initial() -> bytes:
    """A real first client datagram (our sans-IO client's Initial with a ClientHello)."""
    client = quic.Connection(quic.Configuration(is_client=True, alpn_protocols=("h3",)))
    client.connect(("127.0.0.1", 4433), 0.0)
    return client.datagrams_to_send(0.0)[0][0]


@pytest.fixture
async def preferred_server(fake_net, server_cert):
    key = os.urandom(32)
    config = quic_server_configuration(server_cert, preferred_ipv4_address=PREFERRED)
    async with trio_zttp.open_quic_endpoint(
        ("127.0.0.1", 0), config, connection_factory=ENGINE, stateless_reset_key=key
    ) as endpoint:
        yield endpoint, key


async def test_initials_at_the_preferred_address_are_dropped(preferred_server, autojump_clock):
    endpoint, _ = preferred_server
    sock = await _raw_socket()
    initial = _client_initial()
    await sock.sendto(initial, PREFERRED)
    assert await _answers(sock, 1) == []
    stats = endpoint.statistics()
    assert stats.connections_accepted == 0 and stats.connections == 0
    assert stats.datagrams_unroutable == 1
    assert stats.datagrams_received_at_preferred_address == 1
    await sock.sendto(initial, endpoint.local_address)  # the same Initial, at the main socket
    answers = await _answers(sock, 1)
    assert answers and all(source == endpoint.local_address for _, source in answers)
    assert endpoint.statistics().connections_accepted == 1
    sock.close()


async def test_version_negotiation_and_resets_leave_from_the_preferred_socket(
    preferred_server, autojump_clock
):
    endpoint, key = preferred_server
    sock = await _raw_socket()
    dcid, scid = os.urandom(8), os.urandom(5)
    probe = bytes([0xC0]) + (0x1A2A3A4A).to_bytes(4, "big")
    probe += bytes([len(dcid)]) + dcid + bytes([len(scid)]) + scid
    await sock.sendto(probe + bytes(1200 - len(probe)), PREFERRED)
    ((answer, source),) = await _answers(sock, 1)
    assert tuple(source[:2]) == PREFERRED
    header = parse_header(answer, 0, 8)
    assert header.packet_type is PacketType.VERSION_NEGOTIATION
    assert (header.dcid, header.scid) == (scid, dcid)
    unknown = os.urandom(8)
    await sock.sendto(bytes([0x41]) + unknown + os.urandom(60), PREFERRED)
    ((reset, source),) = await _answers(sock, 1)
    assert tuple(source[:2]) == PREFERRED
    assert reset[-16:] == stateless_reset_token(key, unknown)
    await sock.sendto(b"\x00", PREFERRED)  # not even a header
    assert await _answers(sock, 0.5) == []
    stats = endpoint.statistics()
    assert stats.version_negotiations_sent == 1 and stats.stateless_resets_sent == 1
    assert stats.datagrams_malformed == 1
    assert stats.datagrams_received_at_preferred_address == 3
    assert stats.internal_errors == 0
    sock.close()


async def test_garbage_for_a_live_connection_at_the_preferred_socket_harms_nothing(
    fake_net, ca, server_cert, autojump_clock
):
    """Forged packets with the connection's own IDs, long and short, from strangers, at the
    preferred socket: dropped (the engine cannot read them), the connection goes on."""
    wire = Wire(fake_net)
    seen: list[trio_zttp.QuicConnection] = []
    async with served(_recording_handler(seen), server_cert,
                      server={"preferred_ipv4_address": PREFERRED}) as server, \
            h3_client(ca, server.port, use_preferred_address=False) as conn:
        await (await conn.request("GET", "/where")).read()
        main = server.endpoint.local_address
        # the connection's IDs as the client put them on the wire (long headers name them)
        ids = {parse_header(p, 0, 8).dcid for s, d, p in wire.log if d == main and not _short(p)}
        ids |= {p[1:9] for s, d, p in wire.log if d == main and _short(p)}
        assert len(ids) >= 2
        sock = await _raw_socket()
        for cid in ids:
            for first in (0x40, 0x41, 0xC0):
                forged = bytes([first]) + cid + os.urandom(1200)
                if first & 0x80:  # a long header naming the connection ID
                    forged = bytes([first]) + (1).to_bytes(4, "big") + bytes([8]) + cid \
                        + bytes([0]) + os.urandom(1200)
                await sock.sendto(forged, PREFERRED)
        assert await _answers(sock, 1) == []  # no reset for a live connection's ID
        assert await (await conn.request("GET", "/body")).read() == BODY
        (server_side,) = seen
        assert server_side.local_address == server.endpoint.local_address
        assert not conn.quic.closed
        stats = server.endpoint.statistics()
        assert stats.stateless_resets_sent == 0 and stats.internal_errors == 0
        sock.close()


async def test_a_preferred_address_that_cannot_be_bound_closes_everything(
    fake_net, server_cert, autojump_clock
):
    taken = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
    await taken.bind(PREFERRED)
    config = quic_server_configuration(server_cert, preferred_ipv4_address=PREFERRED)
    with pytest.raises(OSError):
        async with trio_zttp.open_quic_endpoint(("127.0.0.1", 4433), config):
            pass  # pragma: no cover
    taken.close()
    again = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
    with again:
        await again.bind(("127.0.0.1", 4433))  # the main socket was closed


class _Copier(Wire):
    """An on-path attacker that races copies of the client's 1-RTT datagrams to ``target``
    (the server's other address), 5 ms ahead of the originals (RFC 9000 §21.1.3)."""

    def __init__(self, fake_net: Any, client: Callable[[], tuple[str, int] | None],
                 towards: tuple[str, int], target: Callable[[], tuple[str, int] | None]) -> None:
        super().__init__(fake_net)
        self.delay = 0.01
        self.client, self.towards, self.target = client, towards, target
        self.copies = 0

    def __call__(self, packet: UDPPacket) -> None:
        source, destination = _address(packet.source), _address(packet.destination)
        target = self.target()
        if target is not None and source == self.client() and destination == self.towards \
                and _short(packet.payload):
            host, port = target
            copy = UDPPacket(source=packet.source, payload=packet.payload,
                             destination=UDPEndpoint(ipaddress.ip_address(host), port))
            self.copies += 1
            self.log.append((source, target, packet.payload))
            self._send.send_nowait((trio.current_time() + 0.005, copy))
        super().__call__(packet)


async def test_copies_raced_to_the_preferred_address_do_not_divert_the_server(
    fake_net, ca, server_cert, autojump_clock
):
    """A client that does not follow: an attacker's copies of its packets at the preferred
    address make the server validate that path (its challenge goes unanswered there), but
    no data leaves from the preferred socket before validation (§9.6.2), so the download is
    unharmed."""
    state: dict[str, tuple[str, int] | None] = {"client": None}
    wire = _Copier(fake_net, lambda: state["client"], towards=("127.0.0.1", 0),
                   target=lambda: PREFERRED if state["client"] else None)
    seen: list[trio_zttp.QuicConnection] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(wire.run)
        async with served(_recording_handler(seen), server_cert,
                          server={"preferred_ipv4_address": PREFERRED}) as server:
            wire.towards = server.endpoint.local_address
            async with h3_client(ca, server.port, use_preferred_address=False) as conn:
                state["client"] = conn.quic.local_address
                with trio.fail_after(5):
                    digest = await _download(conn, lambda _: None)
                assert digest == hashlib.sha256(BODY).digest()
                assert wire.copies > 100
                (server_side,) = seen
                assert server_side.local_address == server.endpoint.local_address
                from_preferred = [p for s, _, p in wire.log if s == PREFERRED]
                assert len(from_preferred) <= 3  # its PATH_CHALLENGEs, nothing else
                assert conn.quic.statistics().transport.packets_lost == 0
        nursery.cancel_scope.cancel()


async def test_copies_raced_back_to_the_original_address_do_not_move_the_server_back(
    fake_net, ca, server_cert, autojump_clock
):
    """Once the server moved to its preferred address, newer packets at its original one
    move nothing (§9.6.2): an attacker copying the moved client's packets there does not
    bounce the connection between the two sockets."""
    state: dict[str, tuple[str, int] | None] = {"client": None, "main": None}
    wire = _Copier(fake_net, lambda: state["client"], towards=PREFERRED,
                   target=lambda: state["main"])
    seen: list[trio_zttp.QuicConnection] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(wire.run)
        async with served(_recording_handler(seen), server_cert,
                          server={"preferred_ipv4_address": PREFERRED}) as server, \
                h3_client(ca, server.port) as conn:
            state["client"] = conn.quic.local_address
            await _wait_for(lambda: conn.quic.remote_address == PREFERRED, "client moved")
            await _download(conn, lambda _: None)  # (the server connection is seen now)
            (server_side,) = seen
            await _wait_for(lambda: server_side.local_address == PREFERRED, "server moved")
            state["main"] = server.endpoint.local_address  # the attack starts
            start = len(wire.log)
            with trio.fail_after(5):
                digest = await _download(conn, lambda _: None)
            assert digest == hashlib.sha256(BODY).digest() and wire.copies > 100
            assert server_side.local_address == PREFERRED
            main = server.endpoint.local_address
            assert not [p for s, _, p in wire.log[start:] if s == main and len(p) >= 1200]
        nursery.cancel_scope.cancel()


def _free_loopback_port(host: str) -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


async def test_a_dual_stack_server_sees_an_ipv4_client_as_one_host(ca, server_cert):
    """Real loopback: the main socket on "::" sees an IPv4 client as ::ffff:a.b.c.d, the
    IPv4 preferred socket as a.b.c.d; the endpoint writes the latter as the former, so the
    engine sees the same client through another socket of ours (no new host, so RTT and
    congestion state are kept) and the server's remote address keeps its form."""
    preferred = ("127.0.0.1", _free_loopback_port("127.0.0.1"))
    seen: list[trio_zttp.QuicConnection] = []
    server_config = quic_server_configuration(
        server_cert, alpn_protocols=("h3",), preferred_ipv4_address=preferred)
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            server: trio_zttp.QuicEndpoint = await nursery.start(
                trio_zttp.serve_h3, _recording_handler(seen), "::", 0, server_config)
            async with h3_client(ca, server.local_address[1]) as conn:
                await _download(conn, lambda _: None)
                await _wait_for(lambda: conn.quic.remote_address == preferred, "client moved")
                (server_side,) = seen
                await _wait_for(lambda: server_side.local_address == preferred, "server moved")
                answer = (await (await conn.request("GET", "/where")).read()).decode()
                assert server_side.remote_address[0] == "::ffff:127.0.0.1"
                assert answer == f"{preferred} {server_side.remote_address}"
            nursery.cancel_scope.cancel()
