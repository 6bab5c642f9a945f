from __future__ import annotations

import trio

from ._helpers import connected_pair


async def test_smoke_echo(fake_net, ca, server_cert, autojump_clock) -> None:
    async with connected_pair(ca, server_cert) as pair:
        async def echo() -> None:
            stream = await pair.server.accept_stream()
            async with stream:
                data = await stream.receive_some()
                await stream.send_all(data)
                await stream.send_eof()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(echo)
            async with pair.client.open_stream() as stream:
                await stream.send_all(b"ping")
                await stream.send_eof()
                assert await stream.receive_some() == b"ping"
                assert await stream.receive_some() == b""


async def test_smoke_loopback(ca, server_cert) -> None:
    with trio.fail_after(10):
        async with connected_pair(ca, server_cert) as pair:
            async def echo() -> None:
                stream = await pair.server.accept_stream()
                async with stream:
                    data = await stream.receive_some()
                    await stream.send_all(data)
                    await stream.send_eof()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(echo)
                async with pair.client.open_stream() as stream:
                    await stream.send_all(b"ping")
                    await stream.send_eof()
                    assert await stream.receive_some() == b"ping"
                    assert await stream.receive_some() == b""
            print(pair.client_endpoint.statistics())
