"""HTTP/3 per-exchange CPU cost, sans-IO, in process: trio_zttp vs aioquic, same run.

No sockets, no event loop: a client and a server connection hand each other their datagrams
directly, so the numbers are the protocol stack's own CPU cost (QUIC packets, HTTP/3 frames,
QPACK, header validation, events) for the exchanges that ``bench_h3.py`` times over
loopback, where the latency-bound rows add the I/O layer's cost on top:

1. a small GET (100-byte body) on a warm connection, both sides, microseconds per request;
2. an HTTP datagram echo (100 bytes) on an extended-CONNECT stream, microseconds per round
   trip (aioquic's side uses its ``H3Connection.send_datagram``).

Both stacks are pumped the same way: after each command, datagrams go back and forth until
neither side has anything to send.  Printed, never asserted (see benchmarks/README.md).

    .venv/bin/python benchmarks/bench_h3_sansio.py [--rounds 3000] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aioquic.h3 import events as aioquic_events  # noqa: E402
from aioquic.h3.connection import H3Connection as AioH3  # noqa: E402
from aioquic.quic.configuration import QuicConfiguration  # noqa: E402
from aioquic.quic.connection import QuicConnection as AioQuic  # noqa: E402

import trio_zttp  # noqa: E402
from trio_zttp import h3, quic  # noqa: E402
from trio_zttp.testing import CertificateAuthority  # noqa: E402

CLIENT_ADDR = ("10.0.0.1", 50000)
SERVER_ADDR = ("10.0.0.2", 4433)
BODY = b"x" * 100


class Certs:
    def __init__(self) -> None:
        folder = Path(tempfile.mkdtemp(prefix="bench-h3-sansio-"))
        ca = CertificateAuthority.create()
        leaf = ca.issue(["localhost"])
        self.ca = str(folder / "ca.pem")
        self.cert = str(folder / "cert.pem")
        self.key = str(folder / "key.pem")
        ca.write_pem(self.ca)
        leaf.write_pem(self.cert, self.key)


# -- ours: the zttp façade over quic.Connection --------------------------------------------------


class Ours:
    def __init__(self, certs: Certs) -> None:
        server_config = quic.Configuration(is_client=False, alpn_protocols=("h3",),
                                           max_datagram_frame_size=65536)
        server_config.load_cert_chain(certs.cert, certs.key)
        client_config = quic.Configuration(is_client=True, alpn_protocols=("h3",),
                                           cafile=certs.ca, server_name="localhost",
                                           max_datagram_frame_size=65536)
        # as serve_h3 / open_h3_connection: QPACK dynamic table, datagrams, extended CONNECT
        settings = attrs.evolve(h3.DEFAULT_SETTINGS, h3_datagram=True,
                                enable_connect_protocol=True)
        self.client = trio_zttp.Connection(trio_zttp.CLIENT, configuration=client_config,
                                           settings=settings)
        self.server = trio_zttp.Connection(trio_zttp.SERVER, configuration=server_config,
                                           settings=settings)
        self.now = 0.0
        self.client.connect(SERVER_ADDR, self.now)
        self.answered = False
        self.echoed = b""
        self.pump()
        self.tunnel = self.client.send_request("CONNECT", "/", authority="localhost",
                                               protocol="echo")
        self.pump()

    def pump(self) -> None:
        client, server, now = self.client, self.server, self.now
        moved = True
        while moved:
            moved = False
            for data, _ in client.datagrams_to_send(now):
                server.receive_datagram(data, CLIENT_ADDR, now)
                moved = True
            self._serve()
            for data, _ in server.datagrams_to_send(now):
                client.receive_datagram(data, SERVER_ADDR, now)
                moved = True
            self._read()

    def _serve(self) -> None:
        server = self.server
        while (event := server.next_event()) is not trio_zttp.NEED_DATA:
            if isinstance(event, trio_zttp.Request) and event.method == b"CONNECT":
                server.send_response(event.stream_id, 200)
            elif isinstance(event, trio_zttp.EndOfMessage):
                server.send_response(event.stream_id, 200)
                server.send_data(event.stream_id, BODY, end_stream=True)
            elif isinstance(event, h3.DatagramReceived):
                server.h3.send_datagram(event.stream_id, event.data)

    def _read(self) -> None:
        client = self.client
        while (event := client.next_event()) is not trio_zttp.NEED_DATA:
            if isinstance(event, trio_zttp.EndOfMessage):
                self.answered = True
            elif isinstance(event, h3.DatagramReceived):
                self.echoed = event.data

    def request(self) -> None:
        self.now += 0.001
        self.answered = False
        self.client.send_request("GET", "/", authority="localhost", end_stream=True)
        self.pump()
        assert self.answered

    def datagram(self) -> None:
        self.now += 0.001
        self.echoed = b""
        self.client.h3.send_datagram(self.tunnel, BODY)
        self.pump()
        assert self.echoed == BODY


# -- aioquic: H3Connection over QuicConnection ---------------------------------------------------


class Aioquic:
    def __init__(self, certs: Certs) -> None:
        client_config = QuicConfiguration(is_client=True, alpn_protocols=["h3"],
                                          server_name="localhost",
                                          max_datagram_frame_size=65536)
        client_config.load_verify_locations(certs.ca)
        server_config = QuicConfiguration(is_client=False, alpn_protocols=["h3"],
                                          max_datagram_frame_size=65536)
        server_config.load_cert_chain(certs.cert, certs.key)
        self.client_quic = AioQuic(configuration=client_config)
        self.server_quic = AioQuic(
            configuration=server_config,
            original_destination_connection_id=self.client_quic.original_destination_connection_id,
        )
        # aioquic offers HTTP datagrams only with WebTransport enabled
        self.client = AioH3(self.client_quic, enable_webtransport=True)
        self.server = AioH3(self.server_quic, enable_webtransport=True)
        self.now = 0.0
        self.client_quic.connect(SERVER_ADDR, self.now)
        self.answered = False
        self.echoed = b""
        self.pump()
        self.tunnel = self.client_quic.get_next_available_stream_id()
        self.client.send_headers(self.tunnel, [
            (b":method", b"CONNECT"), (b":protocol", b"webtransport"), (b":scheme", b"https"),
            (b":authority", b"localhost"), (b":path", b"/"),
        ])
        self.pump()

    def pump(self) -> None:
        now = self.now
        moved = True
        while moved:
            moved = False
            for data, _ in self.client_quic.datagrams_to_send(now):
                self.server_quic.receive_datagram(data, CLIENT_ADDR, now)
                moved = True
            self._serve()
            for data, _ in self.server_quic.datagrams_to_send(now):
                self.client_quic.receive_datagram(data, SERVER_ADDR, now)
                moved = True
            self._read()

    def _serve(self) -> None:
        server = self.server
        while (quic_event := self.server_quic.next_event()) is not None:
            for event in server.handle_event(quic_event):
                if isinstance(event, aioquic_events.HeadersReceived):
                    if event.stream_ended:
                        server.send_headers(event.stream_id, [(b":status", b"200")])
                        server.send_data(event.stream_id, BODY, end_stream=True)
                    else:
                        server.send_headers(event.stream_id, [(b":status", b"200")])
                elif isinstance(event, aioquic_events.DatagramReceived):
                    server.send_datagram(event.stream_id, event.data)

    def _read(self) -> None:
        while (quic_event := self.client_quic.next_event()) is not None:
            for event in self.client.handle_event(quic_event):
                if isinstance(event, aioquic_events.DataReceived) and event.stream_ended:
                    self.answered = True
                elif isinstance(event, aioquic_events.DatagramReceived):
                    self.echoed = event.data

    def request(self) -> None:
        self.now += 0.001
        self.answered = False
        stream_id = self.client_quic.get_next_available_stream_id()
        self.client.send_headers(stream_id, [
            (b":method", b"GET"), (b":scheme", b"https"), (b":authority", b"localhost"),
            (b":path", b"/"),
        ], end_stream=True)
        self.pump()
        assert self.answered

    def datagram(self) -> None:
        self.now += 0.001
        self.echoed = b""
        self.client.send_datagram(self.tunnel, BODY)
        self.pump()
        assert self.echoed == BODY


def _cost(work: Callable[[], None], rounds: int, profile: bool) -> float:
    """Best of three: CPU microseconds per call."""
    for _ in range(50):
        work()
    best = float("inf")
    for _ in range(3):
        profiler = cProfile.Profile() if profile else None
        if profiler is not None:
            profiler.enable()
        started = time.process_time()
        for _ in range(rounds):
            work()
        best = min(best, (time.process_time() - started) / rounds * 1e6)
        if profiler is not None:
            profiler.disable()
            pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
            break
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3000)
    parser.add_argument("--profile", action="store_true", help="cProfile ours (one pass)")
    args = parser.parse_args()
    certs = Certs()
    rows: list[tuple[str, float, float]] = []
    for name in ("request", "datagram"):
        ours: Any = Ours(certs)
        theirs: Any = Aioquic(certs)
        ours_us = _cost(getattr(ours, name), args.rounds, args.profile)
        aio_us = _cost(getattr(theirs, name), args.rounds, False)
        rows.append((name, ours_us, aio_us))
    print(f"\n{'CPU per exchange, both sides, us':40} {'ours':>8} {'aioquic':>8} "
          f"{'aioquic/ours':>13}")
    labels = {"request": "small GET (100-byte body)", "datagram": "HTTP datagram echo (100 B)"}
    for name, ours_us, aio_us in rows:
        print(f"{labels[name]:40} {ours_us:8.0f} {aio_us:8.0f} {aio_us / ours_us:12.2f}x")


if __name__ == "__main__":
    main()
