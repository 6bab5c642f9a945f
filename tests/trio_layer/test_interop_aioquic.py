"""The trio layer with mixed engines: trio_zttp's quic.Connection on one side, aioquic's
sans-IO connection (behind ``_aioquic_adapter``) on the other, in both directions."""

from __future__ import annotations

import pytest
import trio

import trio_zttp
from trio_zttp import quic

from ._aioquic_adapter import AioquicEngine
from ._helpers import client_configuration, server_configuration

ENGINES = [
    pytest.param(quic.Connection, AioquicEngine, id="ours-client-aioquic-server"),
    pytest.param(AioquicEngine, quic.Connection, id="aioquic-client-ours-server"),
]


@pytest.mark.parametrize(("client_engine", "server_engine"), ENGINES)
@pytest.mark.parametrize("retry", ["never", "always"])
async def test_interop_stream_datagram_and_close(
    fake_net, ca, server_cert, autojump_clock, client_engine, server_engine, retry
) -> None:
    payload = bytes(range(256)) * 1024  # 256 KiB through flow control both ways
    async with (
        trio_zttp.open_quic_endpoint(
            ("127.0.0.1", 0), server_configuration(server_cert),
            connection_factory=server_engine, retry=retry,
        ) as server_endpoint,
        trio_zttp.open_quic_endpoint(
            ("127.0.0.1", 0), client_configuration(ca), connection_factory=client_engine
        ) as client_endpoint,
        client_endpoint.connect(server_endpoint.local_address, server_name="localhost") as client,
    ):  # fmt: skip
        server = await server_endpoint.accept()
        assert client.alpn_protocol == server.alpn_protocol == "zttp-test"

        async def echo() -> None:
            async with await server.accept_stream() as stream:
                while data := await stream.receive_some():
                    await stream.send_all(data)
            await server.send_datagram(await server.receive_datagram())

        async with trio.open_nursery() as nursery:
            nursery.start_soon(echo)
            async with client.open_stream() as stream:

                async def send() -> None:
                    await stream.send_all(payload)
                    await stream.send_eof()

                nursery.start_soon(send)
                got = bytearray()
                while data := await stream.receive_some():
                    got += data
            assert got == payload
            await client.send_datagram(b"dgram")
            assert await client.receive_datagram() == b"dgram"

        # a reset and a stop-sending cross implementations with their codes
        stream = client.open_stream()
        await stream.send_all(b"x")
        peer = await server.accept_stream()
        assert await peer.receive_some() == b"x"
        stream.reset(0x1234)
        with pytest.raises(trio_zttp.StreamResetError) as reset:
            await peer.receive_some()
        assert reset.value.error_code == 0x1234

        await server.aclose(error_code=0x21, reason="done")
        with pytest.raises(trio_zttp.ConnectionClosedError) as closed:
            await client.accept_stream()
        assert (closed.value.error_code, closed.value.reason) == (0x21, "done")
        assert closed.value.by_peer and closed.value.application
        assert server_endpoint.statistics().retries_sent == (1 if retry == "always" else 0)
