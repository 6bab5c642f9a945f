"""A client moves to a new local address mid-connection (RFC 9000 §9): QuicEndpoint.rebind
and QuicConnection.migrate, over trio's fake network (ours on both ends; the interop tests
move our client against aioquic's and ngtcp2's servers)."""

from __future__ import annotations

import hashlib

import pytest
import trio

import trio_zttp
from trio_zttp.quic import QuicError

from ._h3_helpers import client_configuration, h3_client, served

BODY = bytes(range(256)) * 8000
SIZE = len(BODY)


async def handler(request: trio_zttp.H3Request) -> None:
    if request.path == "/who":
        host, port = request.connection.quic.remote_address[:2]
        await request.respond(200, body=f"{host} {port}".encode())
        return
    await request.respond(200, body=BODY)


async def _server_sees(conn: trio_zttp.H3Connection, address: tuple[str, int]) -> None:
    """The server's connection reports ``address`` as its peer's (its remote_address moves
    once it has validated the new path, RFC 9000 §9.3)."""
    expected = f"{address[0]} {address[1]}"
    with trio.fail_after(5):
        for _ in range(500):  # (a request per poll: the answer is what we wait for)
            if (await (await conn.request("GET", "/who")).read()).decode() == expected:
                return
            await trio.sleep(0.01)
    raise AssertionError(f"the server never saw {expected}")


async def test_client_migrates_mid_download_and_the_server_follows(
    fake_net, ca, server_cert, autojump_clock
):
    async with served(handler, server_cert) as server, h3_client(ca, server.port) as conn:
        quic = conn.quic
        before = quic.local_address
        response = await conn.request("GET", "/body")
        digest = hashlib.sha256()
        received = 0
        moved = None
        while data := await response.body.receive_some():
            digest.update(data)
            received += len(data)
            if moved is None and received >= SIZE // 4:
                moved = await quic.migrate()
        assert received == SIZE
        assert digest.digest() == hashlib.sha256(BODY).digest()
        assert moved is not None and moved != before
        assert quic.local_address == moved
        await _server_sees(conn, moved)
        stats = server.endpoint.statistics()
        assert stats.internal_errors == 0


async def test_migrate_twice(fake_net, ca, server_cert, autojump_clock):
    async with served(handler, server_cert) as server, h3_client(ca, server.port) as conn:
        with pytest.raises(QuicError, match="handshake is confirmed"):
            await conn.quic.migrate()  # too early: HANDSHAKE_DONE did not arrive yet
        await (await conn.request("GET", "/who")).read()  # now it did
        first = await conn.quic.migrate()
        assert len(await (await conn.request("GET", "/body")).read()) == SIZE
        second = await conn.quic.migrate()
        assert second != first
        await _server_sees(conn, second)


async def test_migrate_refused_when_the_server_disables_it(
    fake_net, ca, server_cert, autojump_clock
):
    async with served(handler, server_cert, server={"disable_active_migration": True}) as server, \
            h3_client(ca, server.port) as conn:
        before = conn.quic.local_address
        await (await conn.request("GET", "/who")).read()  # the handshake is confirmed
        with pytest.raises(QuicError, match="disable_active_migration"):
            await conn.quic.migrate()
        assert conn.quic.local_address == before  # still on its socket, and working
        assert len(await (await conn.request("GET", "/body")).read()) == SIZE


async def test_server_endpoint_does_not_rebind(fake_net, ca, server_cert, autojump_clock):
    async with served(handler, server_cert) as server:
        with pytest.raises(RuntimeError, match="only a client migrates"):
            await server.endpoint.rebind()


async def test_migrate_refused_on_an_endpoint_shared_with_other_connections(
    fake_net, ca, server_cert, autojump_clock
):
    async with served(handler, server_cert) as server, trio_zttp.open_quic_endpoint(
        ("127.0.0.1", 0), client_configuration(ca, alpn_protocols=("h3",))
    ) as endpoint:
        address = ("127.0.0.1", server.port)
        async with endpoint.connect(address, server_name="localhost") as one, \
                endpoint.connect(address, server_name="localhost") as two:
            with pytest.raises(RuntimeError, match="other connections"):
                await one.migrate()
            await trio.sleep(1)  # (virtual time) HANDSHAKE_DONE confirmed both handshakes
            moved = await endpoint.rebind()  # both move
            assert one.local_address == two.local_address == moved
            received = endpoint.statistics().datagrams_received
            for connection in (one, two):  # both keep working from the new address
                connection.request_key_update()
            await trio.sleep(1)
            for connection in (one, two):
                assert not connection.closed
                assert connection.statistics().transport.key_updates >= 1
            # the server answered on the new socket (the old one is closed)
            assert endpoint.statistics().datagrams_received > received


async def test_two_rebinds_at_once_leave_one_socket_open(
    fake_net, ca, server_cert, autojump_clock
):
    async with served(handler, server_cert) as server, h3_client(ca, server.port) as conn:
        await (await conn.request("GET", "/who")).read()  # the handshake is confirmed
        endpoint = conn.quic._endpoint
        results = []

        async def move() -> None:
            results.append(await endpoint.rebind())

        async with trio.open_nursery() as nursery:
            nursery.start_soon(move)
            nursery.start_soon(move)
        assert len(results) == 2 and results[0] != results[1]
        assert conn.quic.local_address in results
        await _server_sees(conn, conn.quic.local_address)
        # the socket the other rebind opened was closed: its port can be bound again
        (stale,) = [r for r in results if r != conn.quic.local_address]
        probe = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
        with probe:
            await probe.bind(stale)
