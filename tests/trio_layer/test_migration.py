"""A client moves to a new local address mid-connection (RFC 9000 §9): QuicEndpoint.rebind
and QuicConnection.migrate, over trio's fake network (ours on both ends; the interop tests
move our client against aioquic's and ngtcp2's servers)."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
import trio
import trio.testing

import trio_zttp
from trio_zttp._trio import endpoint as endpoint_module
from trio_zttp.quic import QuicError

from ._h3_helpers import client_configuration, h3_client, served
from ._helpers import client_configuration as quic_client_configuration
from ._helpers import server_configuration as quic_server_configuration

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
    # leaving the block closed the socket the client moved to: its port can be bound again
    probe = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
    with probe:
        await probe.bind(moved)


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


async def test_rebind_moves_every_connection_of_a_shared_endpoint(
    fake_net, ca, server_cert, autojump_clock
):
    async with trio_zttp.open_quic_endpoint(
        ("127.0.0.1", 0), quic_server_configuration(server_cert)
    ) as server, trio_zttp.open_quic_endpoint(
        ("127.0.0.1", 0), quic_client_configuration(ca)
    ) as endpoint:
        address = server.local_address

        async def echo_all(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                           ) -> None:
            async with trio.open_nursery() as nursery:
                task_status.started()
                while True:
                    connection = await server.accept()
                    nursery.start_soon(_echo_streams, connection)

        async with trio.open_nursery() as nursery:
            await nursery.start(echo_all)
            async with endpoint.connect(address, server_name="localhost") as one, \
                    endpoint.connect(address, server_name="localhost") as two:
                with pytest.raises(RuntimeError, match="other connections"):
                    await one.migrate()
                for connection in (one, two):  # the handshake confirmed by a first exchange
                    assert await _echo(connection, b"before") == b"before"
                moved = await endpoint.rebind()  # both move
                assert one.local_address == two.local_address == moved
                for connection in (one, two):  # each works from the new address
                    assert await _echo(connection, b"after %d" % id(connection)) == (
                        b"after %d" % id(connection))
            nursery.cancel_scope.cancel()


async def _echo_streams(connection: trio_zttp.QuicConnection) -> None:
    async with trio.open_nursery() as nursery:
        while True:
            try:
                stream = await connection.accept_stream()
            except trio_zttp.ConnectionClosedError:  # the client closed it: done
                return
            nursery.start_soon(_echo_stream, stream)


async def _echo_stream(stream: trio_zttp.QuicStream) -> None:
    async with stream:
        while data := await stream.receive_some():
            await stream.send_all(data)


async def _echo(connection: trio_zttp.QuicConnection, payload: bytes) -> bytes:
    with trio.fail_after(5):
        async with connection.open_stream() as stream:
            await stream.send_all(payload)
            await stream.send_eof()
            got = b""
            while data := await stream.receive_some():
                got += data
    return got


async def test_a_refused_rebind_changes_no_connection(fake_net, ca, server_cert, autojump_clock):
    """One server sent disable_active_migration: every attempt is refused for that reason,
    and the other connection keeps its spare connection IDs (none is spent on a failed try)."""
    async with served(handler, server_cert, server={"disable_active_migration": True}) as off, \
            served(handler, server_cert) as on, trio_zttp.open_quic_endpoint(
                ("127.0.0.1", 0), client_configuration(ca)) as endpoint:
        async with endpoint.connect(("127.0.0.1", on.port), server_name="localhost") as one, \
                endpoint.connect(("127.0.0.1", off.port), server_name="localhost"):
            await trio.sleep(1)  # (virtual time) both handshakes confirmed
            before = endpoint.local_address
            for _ in range(6):  # more than the spare connection IDs a peer gives
                with pytest.raises(QuicError, match="disable_active_migration"):
                    await endpoint.rebind()
            assert endpoint.local_address == before
            assert not one.closed


async def test_rebind_refuses_another_address_family(fake_net, ca, server_cert, autojump_clock):
    async with served(handler, server_cert) as server, h3_client(ca, server.port) as conn:
        await (await conn.request("GET", "/who")).read()
        before = conn.quic.local_address
        with pytest.raises(ValueError, match="address family"):
            await conn.quic.migrate(("::1", 0))
        assert conn.quic.local_address == before
        assert len(await (await conn.request("GET", "/body")).read()) == SIZE


async def test_batches_queued_for_the_old_socket_never_leave_from_the_new_one(
    fake_net, ca, server_cert, autojump_clock, monkeypatch
):
    """A connection ID must not be used from two local addresses (RFC 9000 §9.5): packets
    built before the move (old connection ID) and still waiting for the socket when the
    endpoint moves are dropped, not sent from the new socket."""
    sent: list[tuple[int, bytes]] = []  # (local port, destination connection ID)

    def record(transport: Any) -> Any:
        port = transport.local_address[1]
        send, send_nowait = transport.send, transport.send_nowait

        def note(datagrams: Any) -> None:
            for data, _ in datagrams:
                if data and not data[0] & 0x80:  # short header: the DCID follows
                    sent.append((port, bytes(data[1:9])))

        async def recorded_send(datagrams: Any, ecn: int = 0) -> None:
            note(datagrams)
            await send(datagrams, ecn)

        def recorded_send_nowait(datagrams: Any, ecn: int = 0) -> int:
            count: int = send_nowait(datagrams, ecn)
            note(datagrams[:count])
            return count

        transport.send, transport.send_nowait = recorded_send, recorded_send_nowait
        return transport

    opened = endpoint_module.open_transport

    async def open_recorded(*args: Any, **kwargs: Any) -> Any:
        return record(await opened(*args, **kwargs))

    monkeypatch.setattr(endpoint_module, "open_transport", open_recorded)
    async with served(handler, server_cert) as server, h3_client(ca, server.port) as conn:
        endpoint = conn.quic._endpoint
        record(endpoint._transport)
        await (await conn.request("GET", "/who")).read()
        old_port = conn.quic.local_address[1]
        held, release = trio.Event(), trio.Event()
        moved: list[tuple[str, int]] = []

        async def hold_socket() -> None:  # as a send blocked on a full socket buffer does
            async with endpoint._send_lock:
                held.set()
                await release.wait()

        async def move() -> None:
            moved.append(await conn.quic.migrate())

        async def get() -> None:
            assert len(await (await conn.request("GET", "/body")).read()) == SIZE

        async with trio.open_nursery() as nursery:
            nursery.start_soon(hold_socket)
            await held.wait()
            nursery.start_soon(move)  # waits for the socket
            await trio.testing.wait_all_tasks_blocked()
            nursery.start_soon(get)  # its packets (old connection ID) queue for the socket
            await trio.testing.wait_all_tasks_blocked()
            release.set()
        new_port = moved[0][1]
        old_ids = {cid for port, cid in sent if port == old_port}
        new_ids = {cid for port, cid in sent if port == new_port}
        assert old_ids and new_ids
        assert not old_ids & new_ids


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


async def test_a_server_with_a_preferred_address_listens_there_too(
    fake_net, server_cert, autojump_clock
):
    """A server configured with a preferred address (of either family, or both) binds a
    socket at each, for the endpoint's lifetime (``test_preferred_address.py`` moves
    clients there)."""
    for fields in ({"preferred_ipv4_address": ("127.0.0.2", 4433)},
                   {"preferred_ipv6_address": ("::2", 4433)},
                   {"preferred_ipv4_address": ("127.0.0.2", 4433),
                    "preferred_ipv6_address": ("::2", 4433)}):
        config = quic_server_configuration(server_cert, **fields)
        async with trio_zttp.open_quic_endpoint(("127.0.0.1", 0), config) as endpoint:
            assert endpoint.preferred_addresses == tuple(fields.values())
            for address in fields.values():
                family = trio.socket.AF_INET6 if ":" in address[0] else trio.socket.AF_INET
                with trio.socket.socket(family, trio.socket.SOCK_DGRAM) as taken:
                    with pytest.raises(OSError):
                        await taken.bind(address)
        for address in fields.values():  # closed with the endpoint
            family = trio.socket.AF_INET6 if ":" in address[0] else trio.socket.AF_INET
            with trio.socket.socket(family, trio.socket.SOCK_DGRAM) as free:
                await free.bind(address)
