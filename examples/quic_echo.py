# A QUIC echo server and client with trio_zttp's trio layer, in one process.
#
# It shows: serve_quic with one handler task per connection; a client endpoint and
# connection as async context managers; a bidirectional stream used as a trio
# HalfCloseableStream (send_all, send_eof, receive_some until b""); an unreliable
# DATAGRAM frame echoed back; and how closing works (leaving `async with` closes).
#
# Run it with trio_zttp installed (`pip install -e .` in a checkout), from anywhere:
#
#     python examples/quic_echo.py                 # echo "hello, QUIC" once
#     python examples/quic_echo.py --size 1000000  # echo a megabyte
#
# The certificates are made on the fly by trio_zttp.testing.CertificateAuthority; a real
# server would use Configuration.load_cert_chain() and clients the system trust store.

from __future__ import annotations

import argparse
import time

import trio

import trio_zttp
from trio_zttp import quic
from trio_zttp.testing import CertificateAuthority

ALPN = ["echo"]


async def handle(connection: trio_zttp.QuicConnection) -> None:
    """One task per connection: echo every stream and every datagram until the peer leaves."""

    async def echo_stream(stream: trio_zttp.QuicStream) -> None:
        async with stream:
            while data := await stream.receive_some():
                await stream.send_all(data)
            # leaving the block sends our FIN: the client reads b"" after the echo

    async def echo_datagrams() -> None:
        while True:
            await connection.send_datagram(await connection.receive_datagram())

    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(echo_datagrams)
            while True:
                nursery.start_soon(echo_stream, await connection.accept_stream())
    except* trio_zttp.ConnectionClosedError:
        pass  # the client closed the connection: this handler is done


async def client(address: tuple[str, int], configuration: quic.Configuration, size: int) -> None:
    message = b"hello, QUIC" if size <= 0 else bytes(i % 251 for i in range(size))
    async with (
        trio_zttp.open_quic_endpoint(("127.0.0.1", 0), configuration) as endpoint,
        endpoint.connect(address, server_name="localhost") as connection,
    ):
        print(f"connected to {address}, ALPN {connection.alpn_protocol!r}")
        start = time.perf_counter()
        async with connection.open_stream() as stream, trio.open_nursery() as nursery:

            async def send() -> None:
                await stream.send_all(message)
                await stream.send_eof()

            nursery.start_soon(send)
            echoed = bytearray()
            while data := await stream.receive_some():
                echoed += data
        elapsed = time.perf_counter() - start
        assert echoed == message, "the echo differs"
        shown = message if len(message) < 40 else f"{len(message)} bytes".encode()
        print(f"stream echo: {shown.decode()} in {elapsed * 1000:.1f} ms")

        await connection.send_datagram(b"ping")
        print(f"datagram echo: {(await connection.receive_datagram()).decode()}")
    # leaving the blocks closed the connection (NO_ERROR) and then the endpoint


async def main(size: int) -> None:
    ca = CertificateAuthority.create()
    leaf = ca.issue(["localhost", "127.0.0.1"])
    server_configuration = quic.Configuration(
        is_client=False,
        alpn_protocols=ALPN,
        certificate_chain=leaf.chain,
        private_key=leaf.private_key,
        max_datagram_frame_size=65536,
    )
    client_configuration = quic.Configuration(
        alpn_protocols=ALPN, cadata=ca.pem, max_datagram_frame_size=65536
    )
    async with trio.open_nursery() as nursery:
        server = await nursery.start(
            trio_zttp.serve_quic, handle, "127.0.0.1", 0, server_configuration
        )
        print(f"serving on {server.local_address} ({server.statistics().datagram_path} path)")
        await client(server.local_address, client_configuration, size)
        nursery.cancel_scope.cancel()  # stop serving


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=0, help="echo this many bytes")
    trio.run(main, parser.parse_args().size)
