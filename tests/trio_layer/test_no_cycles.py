"""A finished connection is freed by reference counting: it leaves no cyclic garbage.

Each test runs real exchanges over trio's fake network (virtual time), with automatic
collection off, waits out the closing periods, then collects with ``DEBUG_SAVEALL`` and fails
if any trio_zttp object was only reachable from a reference cycle.  Objects of trio itself,
pytest or the test's frames are ignored unless they hold ours.
"""

from __future__ import annotations

import collections
import gc
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager

import pytest
import trio

import trio_zttp
from trio_zttp import quic

from ._h3_helpers import h3_client, served
from ._helpers import client_configuration, server_configuration

CLOSING = 5.0  # virtual seconds: every closing and draining period is over by then


def _ours(garbage: list[object]) -> dict[str, int]:
    found = collections.Counter(
        f"{type(obj).__module__}.{type(obj).__qualname__}"
        for obj in garbage
        if type(obj).__module__.startswith("trio_zttp.")
    )
    return dict(found)


@contextmanager
def cyclic_garbage() -> Iterator[dict[str, int]]:
    """Collection off inside the block; on leaving, the block's cyclic garbage of trio_zttp
    objects is put in the yielded dict (type name -> count)."""
    found: dict[str, int] = {}
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield found
        gc.set_debug(gc.DEBUG_SAVEALL)
        gc.collect()
        found.update(_ours(gc.garbage))
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        if was_enabled:
            gc.enable()


async def _leaves_no_cycles(exchange: Callable[[], Awaitable[None]]) -> None:
    await exchange()  # the first run fills the module-level caches
    await trio.sleep(CLOSING)
    with cyclic_garbage() as found:
        for _ in range(2):
            await exchange()
        await trio.sleep(CLOSING)
    assert found == {}


def test_cyclic_garbage_sees_our_objects_in_a_cycle() -> None:
    with cyclic_garbage() as found:
        cycle: list[object] = [quic.Configuration(is_client=True)]
        cycle.append(cycle)
        del cycle
    assert found == {"trio_zttp.quic._config.Configuration": 1}


async def _h3_handler(request: trio_zttp.H3Request) -> None:
    if request.method == "CONNECT":
        await request.respond(200)
        stream = request.http_stream()
        while True:
            try:
                data = await stream.receive_datagram()
            except trio.EndOfChannel:
                return
            await stream.send_datagram(data)
    body = await request.read()
    await request.respond(200, body=body or b"x" * 100)


async def test_no_cycles_h3_get_and_post(fake_net, ca, server_cert, autojump_clock) -> None:
    async with served(_h3_handler, server_cert) as server:

        async def exchange() -> None:
            async with h3_client(ca, server.port) as connection:
                assert await (await connection.request("GET", "/")).read() == b"x" * 100
                response = await connection.request("POST", "/", body=b"y" * 5000)
                assert await response.read() == b"y" * 5000
            # kept after the end: still answers, and refuses new work as before
            assert connection.closed
            assert connection.quic.statistics().transport is not None
            with pytest.raises(trio_zttp.ConnectionClosedError, match=r"by us .* 0x100"):
                connection.open_request_stream()  # H3_NO_ERROR, as we closed it

        await _leaves_no_cycles(exchange)


async def test_no_cycles_h3_connect_datagrams(fake_net, ca, server_cert, autojump_clock) -> None:
    async with served(_h3_handler, server_cert) as server:

        async def exchange() -> None:
            async with h3_client(ca, server.port) as connection:
                async with connection.open_request_stream() as stream:
                    await stream.send_request_header("CONNECT", "/", protocol="echo")
                    assert (await stream.read_response()).status == 200
                    await stream.send_datagram(b"ping")
                    assert await stream.receive_datagram() == b"ping"
                    await stream.send_eof()
                    assert await stream.receive_some() == b""
                    with pytest.raises(trio.EndOfChannel):
                        await stream.receive_datagram()

        await _leaves_no_cycles(exchange)


async def test_no_cycles_quic_streams_and_errors(fake_net, ca, server_cert, autojump_clock):
    async def handle(connection: trio_zttp.QuicConnection) -> None:
        async def echo(stream: trio_zttp.QuicStream) -> None:
            async with stream:
                while data := await stream.receive_some():
                    await stream.send_all(data)

        try:
            async with trio.open_nursery() as nursery:
                while True:  # ends by ConnectionClosedError when the client leaves
                    nursery.start_soon(echo, await connection.accept_stream())
        except* trio_zttp.ConnectionClosedError:
            pass

    async with trio.open_nursery() as nursery:
        server = await nursery.start(
            trio_zttp.serve_quic, handle, "127.0.0.1", 0, server_configuration(server_cert)
        )

        async def exchange() -> None:
            async with (
                trio_zttp.open_quic_endpoint(("127.0.0.1", 0), client_configuration(ca)) as ep,
                ep.connect(server.local_address, server_name="localhost") as connection,
            ):
                async with connection.open_stream() as stream:
                    await stream.send_all(b"hello" * 1000)
                    await stream.send_eof()
                    while await stream.receive_some():
                        pass
                stream = connection.open_stream()
                await stream.send_all(b"abandoned")
                await connection.aclose(error_code=7, reason="bye")
                with pytest.raises(trio_zttp.ConnectionClosedError):
                    await stream.receive_some()
            # kept after the end: still answers
            assert connection.closed
            assert connection.statistics().streams_opened == 2

        await _leaves_no_cycles(exchange)
        nursery.cancel_scope.cancel()


async def test_no_cycles_handshake_failure(fake_net, ca, server_cert, autojump_clock) -> None:
    async with served(_h3_handler, server_cert) as server:

        async def exchange() -> None:
            with pytest.raises(trio_zttp.ConnectionClosedError):
                async with trio_zttp.open_h3_connection(
                    "127.0.0.1",
                    server.port,
                    client_configuration(ca, alpn_protocols=("h3",)),
                    server_name="wrong.example",
                ):
                    pass

        await _leaves_no_cycles(exchange)


class _Attached:
    """Stands in for the QuicConnection an H3Engine is attached to (weakly)."""

    _closed_info = None
    _local_closed = False

    def _poke(self) -> None:
        pass


def test_no_cycles_an_engine_whose_connection_was_collected_refuses_commands(ca) -> None:
    # The engine holds its connection weakly: once attached, a connection that is gone
    # means closed, never "usable" (before attach, commands wait for it).
    from trio_zttp._trio.h3_engine import h3_connection_factory

    engine = h3_connection_factory(quic.Connection)(client_configuration(ca))
    assert engine.connection_error() is None  # not attached yet
    attached = _Attached()
    engine.attach(attached)  # type: ignore[arg-type]
    assert engine.connection_error() is None
    del attached
    gc.collect()
    assert isinstance(engine.connection_error(), trio.ClosedResourceError)
