"""Full TLS 1.3 handshakes per second, in process: trio_zttp <-> trio_zttp vs aioquic <-> aioquic.

Both sides run in one thread with no I/O: the client's and the server's handshake messages are
handed over directly, so the numbers are CPU cost only (key exchange, ECDSA P-256 signing and
verification, certificate-chain verification, key schedule, codecs).  Same certificate, same
group (x25519), same suite (TLS_AES_128_GCM_SHA256), no session tickets, for both.

Run from the repository root:

    python benchmarks/bench_tls_handshake.py [--seconds 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aioquic import tls as aq  # noqa: E402
from aioquic.buffer import Buffer  # noqa: E402

from trio_zttp._tls.config import TlsConfiguration  # noqa: E402
from trio_zttp._tls.handshake import Handshake, SendCryptoData  # noqa: E402
from trio_zttp._tls.suites import CipherSuite  # noqa: E402
from trio_zttp.testing import CertificateAuthority  # noqa: E402

CA = CertificateAuthority.create()
LEAF = CA.issue(["localhost"])
SUITE = CipherSuite.AES_128_GCM_SHA256


def ours_once(client_config: TlsConfiguration, server_config: TlsConfiguration) -> None:
    client = Handshake(client_config, transport_parameters=b"client")
    server = Handshake(server_config, transport_parameters=b"server")
    client.start()
    queue = [(server, u) for u in client.take_updates() if isinstance(u, SendCryptoData)]
    while queue:
        target, update = queue.pop(0)
        target.receive(update.epoch, update.data)
        other = client if target is server else server
        queue.extend((other, u) for u in target.take_updates() if isinstance(u, SendCryptoData))
    assert client.is_complete and server.is_complete


def ours() -> Callable[[], None]:
    client_config = TlsConfiguration(
        is_client=True,
        alpn_protocols=("h3",),
        server_name="localhost",
        cadata=CA.pem,
        cipher_suites=(SUITE,),
    )
    server_config = TlsConfiguration(
        is_client=False,
        alpn_protocols=("h3",),
        certificate_chain=LEAF.chain,
        private_key=LEAF.private_key,
        cipher_suites=(SUITE,),
    )
    return lambda: ours_once(client_config, server_config)


def aioquic_once() -> None:
    client = aq.Context(
        is_client=True,
        alpn_protocols=["h3"],
        cadata=CA.pem,
        server_name="localhost",
        cipher_suites=[aq.CipherSuite(SUITE)],
    )
    server = aq.Context(
        is_client=False, alpn_protocols=["h3"], cipher_suites=[aq.CipherSuite(SUITE)]
    )
    server.certificate = LEAF.certificate
    server.certificate_private_key = LEAF.private_key
    client.handshake_extensions = [(0x39, b"client")]
    server.handshake_extensions = [(0x39, b"server")]

    def step(context: aq.Context, data: bytes) -> list[bytes]:
        buffers = {e: Buffer(capacity=16384) for e in aq.Epoch}
        context.handle_message(data, buffers)
        return [buffers[e].data for e in aq.Epoch if buffers[e].data]

    queue = [(server, d) for d in step(client, b"")]
    while queue:
        target, data = queue.pop(0)
        other = client if target is server else server
        queue.extend((other, d) for d in step(target, data))
    assert client.state == aq.State.CLIENT_POST_HANDSHAKE
    assert server.state == aq.State.SERVER_POST_HANDSHAKE


def timed_round(run: Callable[[], None], seconds: float) -> float:
    """Handshakes per second over one round of about ``seconds``."""
    count = 0
    start = time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        run()
        count += 1
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="time per implementation")
    parser.add_argument("--rounds", type=int, default=6, help="alternating rounds each")
    args = parser.parse_args()
    implementations = {"trio_zttp": ours(), "aioquic": aioquic_once}
    for run in implementations.values():
        for _ in range(20):  # warm-up: caches, trust store, first-use imports
            run()
    # alternate short rounds so that load from other processes hits both alike
    rates: dict[str, list[float]] = {name: [] for name in implementations}
    for _ in range(args.rounds):
        for name, run in implementations.items():
            rates[name].append(timed_round(run, args.seconds / args.rounds))
    ours_rate = statistics.median(rates["trio_zttp"])
    theirs_rate = statistics.median(rates["aioquic"])
    print(f"trio_zttp <-> trio_zttp: {ours_rate:8.1f} handshakes/s (median of {args.rounds})")
    print(f"aioquic   <-> aioquic:   {theirs_rate:8.1f} handshakes/s (median of {args.rounds})")
    print(f"ratio (trio_zttp / aioquic): {ours_rate / theirs_rate:.2f}")


if __name__ == "__main__":
    main()
