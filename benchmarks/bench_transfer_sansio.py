"""Bulk transfer through the in-process sans-IO driver: trio_zttp versus aioquic, same run.

One client uploads ``--size`` bytes on one stream to its server, both driven by
``trio_zttp.testing.Pair`` over a clean link (5 ms one way, 100 MB/s), so only the two QUIC
implementations' own CPU time counts (plus the driver's, the same for both).  Prints MB/s of
CPU time for ours<->ours and aioquic<->aioquic, alternating rounds, the best round each, and
the ratio (higher is better for us); with ``--profile``, the top functions of a cProfile run
of ours.  Numbers only, no assertions.

Run from the repository root:
    python benchmarks/bench_transfer_sansio.py [--size 10] [--rounds 3] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import io
import pstats
import random
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aioquic.buffer import Buffer  # noqa: E402
from aioquic.quic.configuration import QuicConfiguration  # noqa: E402
from aioquic.quic.connection import QuicConnection  # noqa: E402
from aioquic.quic.packet import pull_quic_header  # noqa: E402

from trio_zttp import quic  # noqa: E402
from trio_zttp.testing import CertificateAuthority, LinkConditions, Pair  # noqa: E402

ALPN = ["bench"]
LINK = LinkConditions(delay=0.005, bandwidth=100_000_000)
CA = CertificateAuthority.create()
LEAF = CA.issue(["localhost"])


def ours() -> tuple[Any, Any]:
    rng = random.Random(1)
    client = quic.Connection(quic.Configuration(
        is_client=True, alpn_protocols=ALPN, server_name="localhost", cadata=CA.pem,
        random_bytes=rng.randbytes, max_data=16 << 20, max_stream_data=8 << 20))
    server_config = quic.Configuration(
        is_client=False, alpn_protocols=ALPN, certificate_chain=LEAF.chain,
        private_key=LEAF.private_key, random_bytes=rng.randbytes, max_data=16 << 20,
        max_stream_data=8 << 20)
    return client, lambda data, addr: quic.Connection(server_config)


def aioquic() -> tuple[Any, Any]:
    config = QuicConfiguration(is_client=True, alpn_protocols=ALPN, server_name="localhost",
                               max_data=16 << 20, max_stream_data=8 << 20)
    config.load_verify_locations(cadata=CA.pem)
    client = QuicConnection(configuration=config)

    def server(data: bytes, addr: Any) -> QuicConnection:
        server_config = QuicConfiguration(is_client=False, alpn_protocols=ALPN,
                                          max_data=16 << 20, max_stream_data=8 << 20)
        server_config.certificate = LEAF.certificate
        server_config.private_key = LEAF.private_key
        header = pull_quic_header(Buffer(data=data), host_cid_length=8)
        return QuicConnection(configuration=server_config,
                              original_destination_connection_id=header.destination_cid)

    return client, server


def run(factory: Any, payload: bytes) -> float:
    """Seconds of CPU time to move ``payload`` after the handshake."""
    client, server = factory()
    received = bytearray()
    # events are read from the driver's list, not through an on_event hook: a hook may issue
    # commands, so the driver would then flush both sides after every event
    pair = Pair(client, server, link=LINK)
    events = pair.server_events
    seen = [0]

    def done() -> bool:
        start = seen[0]
        seen[0] = len(events)
        for event in events[start:]:
            if type(event).__name__ == "StreamDataReceived":
                received.extend(event.data)
                if event.end_stream:
                    return True
        return False

    pair.connect()
    pair.run_until(lambda: any(type(e).__name__ == "HandshakeCompleted"
                               for e in pair.server_events))
    seen[0] = len(events)
    start = time.process_time()
    client.send_stream_data(0, payload, end_stream=True)
    pair.run_until(done, timeout=3600)
    elapsed = time.process_time() - start
    if hashlib.sha256(received).digest() != hashlib.sha256(payload).digest():
        raise SystemExit("transfer corrupted")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=float, default=10.0, help="megabytes (default 10)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds each (default 3)")
    parser.add_argument("--profile", action="store_true",
                        help="then profile one more round of ours (cProfile, by own time)")
    parser.add_argument("--profile-lines", type=int, default=25)
    args = parser.parse_args()
    payload = random.Random(7).randbytes(int(args.size * 1_000_000))
    megabytes = len(payload) / 1e6
    best = {"trio_zttp": float("inf"), "aioquic": float("inf")}
    for _ in range(args.rounds):
        for name, factory in (("trio_zttp", ours), ("aioquic", aioquic)):
            best[name] = min(best[name], run(factory, payload))
    for name, seconds in best.items():
        print(f"{name:10s} {megabytes / seconds:7.1f} MB/s  ({seconds:.2f} s CPU for "
              f"{megabytes:.0f} MB, both ends and the driver)")
    print(f"ratio trio_zttp / aioquic: {best['aioquic'] / best['trio_zttp']:.2f}x")
    if not args.profile:
        return
    profiler = cProfile.Profile()
    profiler.runcall(run, ours, payload)
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(args.profile_lines)
    print("\nhot spots of trio_zttp (cProfile, by own time):")
    print("\n".join(line for line in out.getvalue().splitlines()[6:] if line.strip()))


if __name__ == "__main__":
    main()
