"""Bulk transfer over loopback UDP: trio_zttp's trio layer vs aioquic and qh3, same run.

Two measurements, printed, never asserted (see benchmarks/README.md):

1. Datagram paths: 1200-byte datagrams between two trio_zttp transports in one trio run
   (one core), the portable path (``sendto``/``recvfrom``) against the Linux fast path
   (GSO ``sendmsg`` + GRO ``recvmsg_into``, drained per wake-up): datagrams per second.
2. Stream upload: the client sends ``--size`` MB on one stream to a server in another
   process, which answers with the byte count; MB/s and client CPU ms per MB, median of
   ``--runs``.  trio_zttp on both sides (each datagram path), then aioquic and qh3 (their
   asyncio APIs) on both sides, then the ratios of trio_zttp to each peer.

Run from the repository root with the project's venv (about a minute)::

    .venv/bin/python benchmarks/bench_transfer_udp.py --size 20 --runs 3
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import trio  # noqa: E402

import trio_zttp  # noqa: E402
from trio_zttp import quic  # noqa: E402
from trio_zttp._trio._udp import open_transport  # noqa: E402
from trio_zttp.testing import CertificateAuthority  # noqa: E402

ALPN = ["bench"]
CHUNK = 64 * 1024


# -- 1. datagram paths --------------------------------------------------------------------------


async def datagram_rate(fast: bool, seconds: float = 1.5) -> tuple[float, float]:
    sender = await open_transport(("127.0.0.1", 0), fast_path=fast)
    receiver = await open_transport(("127.0.0.1", 0), fast_path=fast)
    batch = [(bytes(1200), receiver.local_address)] * 32
    received = 0
    async with trio.open_nursery() as nursery:

        async def receive() -> None:
            nonlocal received
            while True:
                received += len(await receiver.receive())

        nursery.start_soon(receive)
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            await sender.send(batch)
            await trio.lowlevel.checkpoint()
        await trio.sleep(0.1)
        elapsed = time.perf_counter() - start
        nursery.cancel_scope.cancel()
    sender.close()
    receiver.close()
    return sender.datagrams_sent / elapsed, received / elapsed


def _write_port(port_file: str, port: int) -> None:
    Path(port_file).write_text(str(port))


# -- 2. stream upload: servers ------------------------------------------------------------------


async def ours_server(port_file: str, cert: str, key: str, fast: bool) -> None:
    config = quic.Configuration(is_client=False, alpn_protocols=ALPN)
    config.load_cert_chain(cert, key)

    async def handle(connection: trio_zttp.QuicConnection) -> None:
        try:
            while True:
                async with await connection.accept_stream() as stream:
                    count = 0
                    while data := await stream.receive_some():
                        count += len(data)
                    await stream.send_all(str(count).encode())
        except trio_zttp.ConnectionClosedError:
            pass

    async with trio_zttp.open_quic_endpoint(("127.0.0.1", 0), config, fast_path=fast) as ep:
        _write_port(port_file, ep.local_address[1])
        async with trio.open_nursery() as nursery:
            while True:
                connection = await ep.accept()
                nursery.start_soon(_run_handler, handle, connection)


async def _run_handler(handle, connection) -> None:  # type: ignore[no-untyped-def]
    async with connection:
        await handle(connection)


def asyncio_server(impl: str, port_file: str, cert: str, key: str) -> None:
    if impl == "aioquic":
        from aioquic.asyncio import serve
        from aioquic.quic.configuration import QuicConfiguration
    else:
        from qh3.asyncio import serve  # type: ignore[no-redef]
        from qh3.quic.configuration import QuicConfiguration  # type: ignore[no-redef]

    async def main() -> None:
        config = QuicConfiguration(is_client=False, alpn_protocols=ALPN)
        config.load_cert_chain(cert, key)

        def handler(reader, writer) -> None:  # type: ignore[no-untyped-def]
            async def run() -> None:
                count = 0
                while chunk := await reader.read(CHUNK):
                    count += len(chunk)
                writer.write(str(count).encode())
                writer.write_eof()

            asyncio.ensure_future(run())

        server = await serve("127.0.0.1", 0, configuration=config, stream_handler=handler)
        port = server._transport.get_extra_info("sockname")[1]
        _write_port(port_file, port)
        await asyncio.Future()

    asyncio.run(main())


# -- 2. stream upload: clients ------------------------------------------------------------------


async def ours_client(port: int, ca: str, size: int, fast: bool) -> float:
    config = quic.Configuration(alpn_protocols=ALPN, cafile=ca)
    block = bytes(CHUNK)
    async with (
        trio_zttp.open_quic_endpoint(("127.0.0.1", 0), config, fast_path=fast) as endpoint,
        endpoint.connect(("127.0.0.1", port), server_name="localhost") as connection,
    ):
        start = time.perf_counter()
        async with connection.open_stream() as stream:
            for _ in range(size // CHUNK):
                await stream.send_all(block)
            await stream.send_eof()
            reply = b""
            while data := await stream.receive_some():
                reply += data
        elapsed = time.perf_counter() - start
    assert int(reply) == size // CHUNK * CHUNK, reply
    return elapsed


def asyncio_client(impl: str, port: int, ca: str, size: int) -> float:
    if impl == "aioquic":
        from aioquic.asyncio import connect
        from aioquic.quic.configuration import QuicConfiguration
    else:
        from qh3.asyncio import connect  # type: ignore[no-redef]
        from qh3.quic.configuration import QuicConfiguration  # type: ignore[no-redef]

    async def main() -> float:
        config = QuicConfiguration(is_client=True, alpn_protocols=ALPN, server_name="localhost")
        config.load_verify_locations(ca)
        block = bytes(CHUNK)
        async with connect("127.0.0.1", port, configuration=config) as client:
            start = time.perf_counter()
            reader, writer = await client.create_stream()
            for _ in range(size // CHUNK):
                writer.write(block)
                if impl == "aioquic":
                    await writer.drain()
                else:
                    await asyncio.sleep(0)  # qh3's writer has no drain()
            writer.write_eof()
            reply = await reader.read()
            elapsed = time.perf_counter() - start
        assert int(reply) == size // CHUNK * CHUNK, reply
        return elapsed

    return asyncio.run(main())


# -- driver -------------------------------------------------------------------------------------


def run_impl(name: str, directory: str, size: int, runs: int) -> tuple[float, float]:
    port_file = os.path.join(directory, f"{name}.port")
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", name, "--dir", directory], stdout=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 20
        while not os.path.exists(port_file) or not Path(port_file).read_text():
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} server did not start")
            time.sleep(0.05)
        port = int(Path(port_file).read_text())
        ca = os.path.join(directory, "ca.pem")
        rates, cpus = [], []
        for _ in range(runs):
            cpu = time.process_time()
            if name.startswith("trio_zttp"):
                elapsed = trio.run(ours_client, port, ca, size, name.endswith("gso"))
            else:
                elapsed = asyncio_client(name, port, ca, size)
            cpus.append((time.process_time() - cpu) * 1000 / (size / 1e6))
            rates.append(size / 1e6 / elapsed)
        rate, cpu_per_mb = statistics.median(rates), statistics.median(cpus)
        print(f"  {name:<22} {rate:7.1f} MB/s   client CPU {cpu_per_mb:6.1f} ms/MB")
        return rate, cpu_per_mb
    finally:
        server.terminate()
        server.wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=20, help="MB per upload")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--serve")
    parser.add_argument("--dir")
    args = parser.parse_args()
    if args.serve:
        cert, key = os.path.join(args.dir, "cert.pem"), os.path.join(args.dir, "key.pem")
        port_file = os.path.join(args.dir, f"{args.serve}.port")
        if args.serve.startswith("trio_zttp"):
            trio.run(ours_server, port_file, cert, key, args.serve.endswith("gso"))
        else:
            asyncio_server(args.serve, port_file, cert, key)
        return

    print("datagram paths, 1200-byte datagrams, one trio run (sent/s, received/s):")
    path_rates = {}
    for fast in (False, True):
        try:
            sent, received = trio.run(datagram_rate, fast)
        except OSError as exc:
            print(f"  {'fast' if fast else 'portable':<10} unavailable: {exc}")
            continue
        label = "linux-gso-gro" if fast else "portable"
        path_rates[label] = received
        print(f"  {label:<14} {sent:12,.0f} {received:12,.0f}")
    if len(path_rates) == 2:
        print(f"  fast / portable: {path_rates['linux-gso-gro'] / path_rates['portable']:.2f}x")

    print(f"stream upload, {args.size} MB, median of {args.runs}, server in another process:")
    with tempfile.TemporaryDirectory() as directory:
        ca = CertificateAuthority.create()
        ca.write_pem(os.path.join(directory, "ca.pem"))
        ca.issue(["localhost", "127.0.0.1"]).write_pem(
            os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
        )
        results = {}
        for name in ("trio_zttp-portable", "trio_zttp-gso", "aioquic", "qh3"):
            results[name] = run_impl(name, directory, args.size * 1_000_000, args.runs)
    print("ratios (throughput; client CPU per MB, >1 means trio_zttp uses less):")
    for ours in ("trio_zttp-portable", "trio_zttp-gso"):
        for peer in ("aioquic", "qh3"):
            (rate, cpu), (peer_rate, peer_cpu) = results[ours], results[peer]
            print(f"  {ours:<20} / {peer:<8} {rate / peer_rate:5.2f}x   CPU {peer_cpu / cpu:5.2f}x")


if __name__ == "__main__":
    main()
