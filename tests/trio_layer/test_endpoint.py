"""QuicEndpoint: roles, serve_quic, shutdown, and hostile traffic (trio's fake network)."""

from __future__ import annotations

import ipaddress
import os
import random
from functools import partial

import pytest
import trio
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection as AioquicConnection
from trio.testing._fake_net import UDPEndpoint, UDPPacket

import trio_zttp
from trio_zttp.quic._cids import stateless_reset_token
from trio_zttp.quic._packet import PacketType, parse_header

from ._helpers import ALPN, ENGINE, client_configuration, connected_pair, server_configuration

GREASE_VERSION = 0x1A2A3A4A
serve_quic = partial(trio_zttp.serve_quic, connection_factory=ENGINE)


def _client_initial(seed: int) -> bytes:
    """One valid first client datagram (an Initial with a ClientHello), made by aioquic."""
    client = AioquicConnection(
        configuration=QuicConfiguration(is_client=True, alpn_protocols=list(ALPN))
    )
    client.connect(("127.0.0.1", 4433), now=float(seed))
    return client.datagrams_to_send(now=float(seed))[0][0]


async def _echo_handler(connection: trio_zttp.QuicConnection) -> None:
    while True:
        try:
            stream = await connection.accept_stream()
        except trio_zttp.ConnectionClosedError:
            return
        async with stream:
            while data := await stream.receive_some():
                await stream.send_all(data)


async def _echo_once(endpoint: trio_zttp.QuicEndpoint, address, payload: bytes) -> bytes:
    async with (
        endpoint.connect(address, server_name="localhost") as connection,
        connection.open_stream() as stream,
    ):
        await stream.send_all(payload)
        await stream.send_eof()
        got = b""
        while data := await stream.receive_some():
            got += data
        return got


def _inject(fake_net, source: tuple[str, int], destination: tuple[str, int], payload: bytes):
    fake_net.send_packet(
        UDPPacket(
            source=UDPEndpoint(ipaddress.ip_address(source[0]), source[1]),
            destination=UDPEndpoint(ipaddress.ip_address(destination[0]), destination[1]),
            payload=payload,
        )
    )


async def _collect(sock, seconds: float) -> list[bytes]:
    got = []
    with trio.move_on_after(seconds):
        while True:
            data, _ = await sock.recvfrom(65536)
            got.append(data)
    return got


# -- roles and serving -------------------------------------------------------------------------


async def test_serve_quic_runs_one_handler_per_connection(
    fake_net, ca, server_cert, autojump_clock
) -> None:
    handled = []

    async def handler(connection: trio_zttp.QuicConnection) -> None:
        handled.append(connection)
        await _echo_handler(connection)

    async with trio.open_nursery() as nursery:
        server = await nursery.start(
            serve_quic, handler, "127.0.0.1", 0, server_configuration(server_cert)
        )
        assert isinstance(server, trio_zttp.QuicEndpoint)
        async with trio_zttp.open_quic_endpoint(
            ("127.0.0.1", 0), client_configuration(ca), connection_factory=ENGINE
        ) as client:
            for i in range(3):
                payload = b"hello %d" % i
                assert await _echo_once(client, server.local_address, payload) == payload
        nursery.cancel_scope.cancel()
    assert len(handled) == 3
    assert len({id(c) for c in handled}) == 3


async def test_serve_quic_handler_exception_crashes_server_unwrapped(
    fake_net, ca, server_cert, autojump_clock
) -> None:
    async def handler(connection: trio_zttp.QuicConnection) -> None:
        raise ValueError("handler bug")

    # serve_quic raises the handler's ValueError itself: one group level, the test's own
    with pytest.RaisesGroup(ValueError):
        async with trio.open_nursery() as nursery:
            server = await nursery.start(
                serve_quic, handler, "127.0.0.1", 0, server_configuration(server_cert)
            )
            async with (
                trio_zttp.open_quic_endpoint(
                    ("127.0.0.1", 0), client_configuration(ca), connection_factory=ENGINE
                ) as client,
                client.connect(server.local_address, server_name="localhost"),
            ):
                await trio.sleep_forever()  # until the server's crash cancels us


async def test_serve_quic_handler_nursery_gets_handler_errors(
    fake_net, ca, server_cert, autojump_clock
) -> None:
    async def handler(connection: trio_zttp.QuicConnection) -> None:
        connection.internal_error_code = 0x99
        raise ValueError("handler bug")

    failures: list[BaseExceptionGroup[ValueError]] = []

    async def run_handlers(task_status=trio.TASK_STATUS_IGNORED) -> None:
        try:
            async with trio.open_nursery() as handlers:
                task_status.started(handlers)
                await trio.sleep_forever()
        except* ValueError as group:
            failures.append(group)

    async with trio.open_nursery() as nursery:
        handlers = await nursery.start(run_handlers)
        server = await nursery.start(
            partial(serve_quic, handler_nursery=handlers),
            handler, "127.0.0.1", 0, server_configuration(server_cert),
        )  # fmt: skip
        async with (
            trio_zttp.open_quic_endpoint(
                ("127.0.0.1", 0), client_configuration(ca), connection_factory=ENGINE
            ) as client,
            client.connect(server.local_address, server_name="localhost") as connection,
        ):
            with pytest.raises(trio_zttp.ConnectionClosedError) as closed:
                await connection.accept_stream()
            assert closed.value.error_code == 0x99
            assert closed.value.reason == "ValueError"  # the type name, not the message
        nursery.cancel_scope.cancel()
    assert len(failures) == 1
    # the server kept serving: its endpoint is still open


async def test_endpoint_is_client_and_server_at_once(fake_net, ca, server_cert, autojump_clock):
    def both():
        return {
            "configuration": client_configuration(ca),
            "server_configuration": server_configuration(server_cert),
            "connection_factory": ENGINE,
        }

    async with (
        trio_zttp.open_quic_endpoint(("127.0.0.1", 0), **both()) as a,
        trio_zttp.open_quic_endpoint(("127.0.0.1", 0), **both()) as b,
        trio.open_nursery() as nursery,
    ):
        for endpoint in (a, b):

            async def serve(endpoint=endpoint) -> None:
                connection = await endpoint.accept()
                async with connection:
                    await _echo_handler(connection)

            nursery.start_soon(serve)
        got_ab, got_ba = [], []

        async def a_to_b() -> None:
            got_ab.append(await _echo_once(a, b.local_address, b"a->b"))

        async def b_to_a() -> None:
            got_ba.append(await _echo_once(b, a.local_address, b"b->a"))

        async with trio.open_nursery() as clients:
            clients.start_soon(a_to_b)
            clients.start_soon(b_to_a)
        assert got_ab == [b"a->b"] and got_ba == [b"b->a"]
        assert a.statistics().connections_accepted == 1
        assert b.statistics().connections_accepted == 1


async def test_endpoint_exit_closes_connections(fake_net, ca, server_cert, autojump_clock):
    for error in (None, LookupError("gone")):
        release = trio.Event()
        raised: list[BaseException] = []
        peers: list[trio_zttp.QuicConnection] = []

        async def run_server(
            task_status=trio.TASK_STATUS_IGNORED, error=error, release=release, peers=peers,
            raised=raised,
        ):
            try:
                async with trio_zttp.open_quic_endpoint(
                    ("127.0.0.1", 0), server_configuration(server_cert),
                    connection_factory=ENGINE,
                ) as server:  # fmt: skip
                    task_status.started(server)
                    peers.append(await server.accept())  # left open: the endpoint closes it
                    await release.wait()
                    if error is not None:
                        raise error
            except LookupError as exc:
                raised.append(exc)

        async with (
            trio_zttp.open_quic_endpoint(
                ("127.0.0.1", 0), client_configuration(ca), connection_factory=ENGINE
            ) as client,
            trio.open_nursery() as nursery,
        ):
            server = await nursery.start(run_server)
            async with client.connect(server.local_address) as connection:
                release.set()
                with pytest.raises(trio_zttp.ConnectionClosedError) as closed:
                    await connection.accept_stream()
        assert peers[0].closed
        if error is None:
            assert closed.value.error_code == 0
            assert raised == []
        else:
            assert closed.value.reason == "LookupError"
            assert raised == [error]  # the user's exception itself, not a group


async def test_open_quic_connection(fake_net, ca, server_cert, autojump_clock) -> None:
    async with trio.open_nursery() as nursery:
        server = await nursery.start(
            serve_quic, _echo_handler, "127.0.0.1", 0, server_configuration(server_cert)
        )
        async with trio_zttp.open_quic_connection(
            server.local_address, client_configuration(ca), server_name="localhost",
            local_address=("127.0.0.1", 0), connection_factory=ENGINE,
        ) as connection:  # fmt: skip
            async with connection.open_stream() as stream:
                await stream.send_all(b"hi")
                await stream.send_eof()
                assert await stream.receive_some() == b"hi"
        nursery.cancel_scope.cancel()


async def test_open_quic_connection_endpoints_share_the_configuration_setup(
    fake_net, ca, server_cert, autojump_clock
) -> None:
    # One endpoint per connection: the configuration each runs with (and so its TLS setup
    # and other per-configuration caches) is derived once, until the base changes.
    config = client_configuration(ca, server_name="localhost")
    used: list[object] = []
    async with trio.open_nursery() as nursery:
        server = await nursery.start(
            serve_quic, _echo_handler, "127.0.0.1", 0, server_configuration(server_cert)
        )
        for step in range(3):
            if step == 2:
                config.idle_timeout = 20.0  # a change: what was derived from it goes
            async with trio_zttp.open_quic_connection(
                server.local_address, config, connection_factory=ENGINE
            ) as connection:
                used.append(connection.configuration)
                assert connection.configuration.idle_timeout == config.idle_timeout
        nursery.cancel_scope.cancel()
    assert used[0] is used[1]
    assert used[2] is not used[1]


async def test_endpoint_roles_and_configurations_are_checked(fake_net, ca, server_cert) -> None:
    client = client_configuration(ca)
    server = server_configuration(server_cert)
    local = ("127.0.0.1", 0)
    async with trio_zttp.open_quic_endpoint(local, client, connection_factory=ENGINE) as e:
        with pytest.raises(RuntimeError):
            await e.accept()
    async with trio_zttp.open_quic_endpoint(local, server, connection_factory=ENGINE) as e:
        with pytest.raises(RuntimeError):
            async with e.connect(("127.0.0.1", 1)):
                pass  # pragma: no cover
    bad = [
        ((client,), {"server_configuration": client}),
        ((server,), {"server_configuration": server}),
        ((client_configuration(ca, connection_id_length=0),), {}),
        ((client,), {"server_configuration": server_configuration(
            server_cert, connection_id_length=12)}),
        ((server_configuration(server_cert, certificate_chain=()),), {}),
        ((client,), {"backlog": 0}),
    ]
    for args, kwargs in bad:
        with pytest.raises(ValueError):
            async with trio_zttp.open_quic_endpoint(
                ("127.0.0.1", 0), *args, connection_factory=ENGINE, **kwargs
            ):
                pass  # pragma: no cover
    with pytest.raises(ValueError):
        await trio_zttp.serve_quic(_echo_handler, "127.0.0.1", 0, client)


# -- hostile traffic ---------------------------------------------------------------------------


def _garbage(rng: random.Random, cid_length: int) -> bytes:
    kind = rng.randrange(6)
    if kind == 0:
        return rng.randbytes(rng.randrange(0, 1500))
    if kind == 1:  # short header, unknown connection ID
        return bytes([0x40 | rng.randrange(64)]) + rng.randbytes(rng.randrange(0, 200))
    version = rng.choice([1, 0x6B3343CF, 0, GREASE_VERSION, rng.getrandbits(32)])
    dcid = rng.randbytes(rng.choice([0, 4, 8, 20, 21, 255]))
    scid = rng.randbytes(rng.choice([0, 8, 30]))
    head = bytes([0xC0 | rng.randrange(64)]) + version.to_bytes(4, "big")
    head += bytes([len(dcid)]) + dcid + bytes([len(scid)]) + scid
    body = rng.randbytes(rng.choice([0, 3, 50, 1200]))
    packet = head + body
    if kind == 2:
        return packet[: rng.randrange(len(packet) + 1)]  # truncated anywhere
    return packet


async def test_endpoint_survives_random_datagrams(fake_net, ca, server_cert, autojump_clock):
    rng = random.Random(20240607)
    async with trio.open_nursery() as nursery:
        server = await nursery.start(
            serve_quic, _echo_handler, "127.0.0.1", 0, server_configuration(server_cert)
        )
        sent = 0
        for round_ in range(10):
            for i in range(300):
                source = (f"10.{round_}.{i // 250}.{i % 250 + 1}", 1000 + i)
                _inject(fake_net, source, server.local_address, _garbage(rng, 8))
                sent += 1
            await trio.sleep(0.5)
        stats = server.statistics()
        assert stats.internal_errors == 0
        assert stats.datagrams_received == sent
        assert stats.connections == 0  # garbage Initials leave no state behind
        # responses are rate-limited: 100/s each with a burst of 100, over ~5 s
        assert stats.version_negotiations_sent <= 100 + 100 * 6
        assert stats.stateless_resets_sent <= 100 + 100 * 6
        # and the endpoint still serves
        async with trio_zttp.open_quic_endpoint(
            ("127.0.0.1", 0), client_configuration(ca), connection_factory=ENGINE
        ) as client:
            assert await _echo_once(client, server.local_address, b"alive") == b"alive"
        nursery.cancel_scope.cancel()


async def test_endpoint_truncated_initials_leave_no_state(fake_net, server_cert, autojump_clock):
    initial = _client_initial(0)
    packet_end = parse_header(initial, 0, 8).end  # aioquic pads with zeros after the packet
    async with trio_zttp.open_quic_endpoint(
        ("127.0.0.1", 0), server_configuration(server_cert), connection_factory=ENGINE
    ) as server:
        count = 0
        for cut in range(0, packet_end, 3):
            # truncated at every third byte, as sent and zero-padded back to 1200 bytes
            for datagram in (initial[:cut], initial[:cut] + bytes(1200 - cut)):
                _inject(fake_net, ("10.0.0.1", 5000 + count), server.local_address, datagram)
                count += 1
        await trio.sleep(1)
        stats = server.statistics()
        assert stats.internal_errors == 0
        assert stats.connections == 0
        assert stats.connections_accepted == 0
        handled = (stats.datagrams_malformed + stats.datagrams_unroutable
                   + stats.connections_refused + stats.stateless_resets_sent)
        assert handled == count
        _inject(fake_net, ("10.0.0.2", 5000), server.local_address, initial)
        await trio.sleep(0.01)
        assert server.statistics().half_open_connections == 1
        await trio.sleep(60)  # the handshake never completes: the connection times out
        assert server.statistics().connections == 0


async def test_endpoint_answers_unknown_versions(fake_net, server_cert, autojump_clock) -> None:
    async with trio_zttp.open_quic_endpoint(
        ("127.0.0.1", 0), server_configuration(server_cert), connection_factory=ENGINE
    ) as server:
        sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
        await sock.bind(("127.0.0.1", 0))
        dcid, scid = os.urandom(8), os.urandom(5)
        probe = bytes([0xC0]) + GREASE_VERSION.to_bytes(4, "big")
        probe += bytes([len(dcid)]) + dcid + bytes([len(scid)]) + scid
        await sock.sendto(probe + bytes(1200 - len(probe)), server.local_address)
        (answer,) = await _collect(sock, 1)
        header = parse_header(answer, 0, 8)
        assert header.packet_type is PacketType.VERSION_NEGOTIATION
        assert (header.dcid, header.scid) == (scid, dcid)
        offered = set(header.supported_versions)
        assert {0x00000001, 0x6B3343CF} <= offered
        assert any(v & 0x0F0F0F0F == 0x0A0A0A0A for v in offered)  # a GREASE version
        # small datagrams get no answer (RFC 9000 §6.1: no amplification)
        await sock.sendto(probe + bytes(100), server.local_address)
        assert await _collect(sock, 1) == []
        # and answers are rate-limited
        for _ in range(1000):
            await sock.sendto(probe + bytes(1200 - len(probe)), server.local_address)
        answers = await _collect(sock, 0.5)
        assert 50 <= len(answers) <= 200
        sock.close()


async def test_endpoint_sends_stateless_resets(fake_net, server_cert, autojump_clock) -> None:
    key = os.urandom(32)
    async with trio_zttp.open_quic_endpoint(
        ("127.0.0.1", 0), server_configuration(server_cert), connection_factory=ENGINE,
        stateless_reset_key=key,
    ) as server:  # fmt: skip
        sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
        await sock.bind(("127.0.0.1", 0))
        for size, expected in ((100, 43), (30, 29), (21, None), (5, None)):
            dcid = os.urandom(8)
            trigger = (bytes([0x41]) + dcid + os.urandom(size))[:size]
            await sock.sendto(trigger, server.local_address)
            answers = await _collect(sock, 0.2)
            if expected is None:
                assert answers == []
                continue
            (reset,) = answers
            assert len(reset) == expected  # always smaller than the trigger
            assert reset[0] & 0xC0 == 0x40  # looks like a short header
            assert reset[-16:] == stateless_reset_token(key, dcid)
        for _ in range(1000):
            await sock.sendto(bytes([0x41]) + os.urandom(60), server.local_address)
        answers = await _collect(sock, 0.5)
        assert 50 <= len(answers) <= 200
        sock.close()


async def test_endpoint_initial_flood_is_bounded_and_retry_admits_clients(
    fake_net, ca, server_cert, autojump_clock
) -> None:
    initials = [_client_initial(i) for i in range(120)]
    async with trio.open_nursery() as nursery:
        server_endpoint = trio_zttp.open_quic_endpoint(
            ("127.0.0.1", 0), server_configuration(server_cert), connection_factory=ENGINE,
            backlog=16, retry="under_load",
        )  # fmt: skip
        async with server_endpoint as server:
            nursery.start_soon(lambda: _accept_forever(server))
            for i, datagram in enumerate(initials):
                _inject(fake_net, (f"10.1.{i // 200}.{i % 200 + 1}", 4433), server.local_address,
                        datagram)
            await trio.sleep(0.5)
            stats = server.statistics()
            assert stats.half_open_connections == 8  # retry starts at half the backlog
            assert stats.retries_sent == len(initials) - 8
            assert stats.internal_errors == 0
            async with trio_zttp.open_quic_endpoint(
                ("127.0.0.1", 0), client_configuration(ca), connection_factory=ENGINE
            ) as client:
                # a real client follows the Retry and gets in while the flood is pending
                assert await _echo_once(client, server.local_address, b"vip") == b"vip"
            assert server.statistics().retries_sent == len(initials) - 8 + 1
            await trio.sleep(60)  # flooded half-open connections time out
            assert server.statistics().half_open_connections == 0
            assert server.statistics().connections == 0
        nursery.cancel_scope.cancel()


async def _accept_forever(endpoint: trio_zttp.QuicEndpoint) -> None:
    while True:
        try:
            connection = await endpoint.accept()
        except trio.ClosedResourceError:
            return
        async with connection:
            await _echo_handler(connection)


async def test_endpoint_backlog_without_retry_refuses(fake_net, server_cert, autojump_clock):
    initials = [_client_initial(1000 + i) for i in range(40)]
    async with trio_zttp.open_quic_endpoint(
        ("127.0.0.1", 0), server_configuration(server_cert), connection_factory=ENGINE,
        backlog=10, retry="never",
    ) as server:  # fmt: skip
        for i, datagram in enumerate(initials):
            _inject(fake_net, (f"10.2.0.{i + 1}", 4433), server.local_address, datagram)
        await trio.sleep(0.5)
        stats = server.statistics()
        assert stats.half_open_connections == 10
        assert stats.connections_refused == 30
        assert stats.retries_sent == 0


async def test_endpoint_retry_always(fake_net, ca, server_cert, autojump_clock) -> None:
    async with (
        trio_zttp.open_quic_endpoint(
            ("127.0.0.1", 0), server_configuration(server_cert), connection_factory=ENGINE,
            retry="always",
        ) as server,
        trio_zttp.open_quic_endpoint(
            ("127.0.0.1", 0), client_configuration(ca), connection_factory=ENGINE
        ) as client,
        trio.open_nursery() as nursery,
    ):  # fmt: skip
        nursery.start_soon(_accept_forever, server)
        assert await _echo_once(client, server.local_address, b"validated") == b"validated"
        assert server.statistics().retries_sent == 1
        nursery.cancel_scope.cancel()


async def test_endpoint_routes_by_every_issued_connection_id(
    fake_net, ca, server_cert, autojump_clock
) -> None:
    # the client switches to fresh server connection IDs; the route must follow
    async with connected_pair(ca, server_cert) as pair:
        for i in range(4):
            pair.client.change_connection_id()
            await pair.client.send_datagram(b"%d" % i)
            assert await pair.server.receive_datagram() == b"%d" % i
        assert pair.server_endpoint.statistics().stateless_resets_sent == 0


async def test_endpoint_follows_client_migration(fake_net, ca, server_cert, autojump_clock):
    async with connected_pair(ca, server_cert) as pair:
        old = pair.server.remote_address
        new = ("127.0.0.9", 40000)
        original_route = fake_net.route_packet

        def rebind(packet: UDPPacket) -> None:
            # a NAT rebinding: the client's packets now come from another address
            source = packet.source
            if (str(source.ip), source.port) == old:
                packet = UDPPacket(
                    source=UDPEndpoint(ipaddress.ip_address(new[0]), new[1]),
                    destination=packet.destination, payload=packet.payload,
                )
            elif (str(packet.destination.ip), packet.destination.port) == new:
                packet = UDPPacket(
                    source=packet.source,
                    destination=UDPEndpoint(ipaddress.ip_address(old[0]), old[1]),
                    payload=packet.payload,
                )
            fake_net.deliver_packet(packet)

        fake_net.route_packet = rebind
        try:
            pair.client.change_connection_id()
            async with pair.client.open_stream() as stream:
                await stream.send_all(b"after rebinding")
                await stream.send_eof()
                peer = await pair.server.accept_stream()
                got = b""
                while data := await peer.receive_some():
                    got += data
                assert got == b"after rebinding"
                await peer.aclose()
            await trio.sleep(1)
            assert pair.server.remote_address == new
        finally:
            fake_net.route_packet = original_route


async def test_endpoint_stateless_reset_ends_a_forgotten_connection(
    fake_net, ca, server_cert, autojump_clock
) -> None:
    # The server loses its state (its CONNECTION_CLOSE never arrives); a new endpoint with
    # the same static key on the same port answers the client with a stateless reset, which
    # the client recognises from the tokens the old connection gave it.
    key = os.urandom(32)
    server_side = server_configuration(server_cert)
    stop, gone = trio.Event(), trio.Event()

    async def first_server(task_status=trio.TASK_STATUS_IGNORED) -> None:
        async with trio_zttp.open_quic_endpoint(
            ("127.0.0.1", 0), server_side, connection_factory=ENGINE, stateless_reset_key=key
        ) as server:
            task_status.started(server.local_address)
            await server.accept()
            await stop.wait()
            fake_net.route_packet = lambda packet: None
        gone.set()

    async with (
        trio_zttp.open_quic_endpoint(
            ("127.0.0.1", 0), client_configuration(ca), connection_factory=ENGINE
        ) as client,
        trio.open_nursery() as nursery,
    ):
        address = await nursery.start(first_server)
        async with client.connect(address, server_name="localhost") as connection:
            await trio.sleep(1)  # NEW_CONNECTION_ID frames, with their reset tokens, arrive
            stop.set()
            await gone.wait()
            fake_net.route_packet = None
            async with trio_zttp.open_quic_endpoint(
                address, server_side, connection_factory=ENGINE, stateless_reset_key=key
            ) as second:
                await connection.send_datagram(b"anyone there?")
                with pytest.raises(trio_zttp.ConnectionClosedError) as closed:
                    await connection.accept_stream()
                assert closed.value.by_peer
                assert closed.value.reason == "stateless reset"  # not the idle timeout
                assert second.statistics().stateless_resets_sent >= 1


async def test_endpoint_new_token_skips_retry_next_time(
    fake_net, ca, server_cert, autojump_clock
) -> None:
    async with (
        trio_zttp.open_quic_endpoint(
            ("127.0.0.1", 0), server_configuration(server_cert), connection_factory=ENGINE,
            retry="always",
        ) as server,
        trio.open_nursery() as nursery,
    ):  # fmt: skip
        nursery.start_soon(_accept_forever, server)
        async with trio_zttp.open_quic_endpoint(
            ("127.0.0.1", 0), client_configuration(ca), connection_factory=ENGINE
        ) as client:
            async with client.connect(server.local_address, server_name="localhost") as first:
                await trio.sleep(1)
                token = first.new_token
        assert token
        assert server.statistics().retries_sent == 1
        async with trio_zttp.open_quic_endpoint(
            ("127.0.0.1", 0), client_configuration(ca, token=token), connection_factory=ENGINE
        ) as client:
            assert await _echo_once(client, server.local_address, b"known") == b"known"
        assert server.statistics().retries_sent == 1  # validated by the token: no Retry
        nursery.cancel_scope.cancel()
