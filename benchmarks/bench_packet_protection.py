"""Packet protection throughput: trio_zttp versus aioquic, in the same run.

Protects and unprotects 1-RTT (short header) packets with a 1200-byte payload, for
AES-128-GCM and ChaCha20-Poly1305, and prints packets per second for seal, open and the round
trip, with the ratio ours / aioquic (higher is better for us).  Numbers only, no assertions.

Run from the repository root:  python benchmarks/bench_packet_protection.py  (about 3 s)
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aioquic.quic.crypto import CryptoContext  # noqa: E402
from aioquic.tls import CipherSuite as AioquicCipherSuite  # noqa: E402

from trio_zttp._tls.suites import CipherSuite  # noqa: E402
from trio_zttp.quic._crypto import QUIC_VERSION_1, PacketOpener, PacketSealer  # noqa: E402

PACKETS = 5_000  # per timed batch
ROUNDS = 7  # batches per implementation and operation; the best one counts
PAYLOAD = bytes(range(256)) * 4 + bytes(176)  # 1200 bytes
DCID = bytes.fromhex("0011223344556677")
PN_OFFSET = 1 + len(DCID)
SECRET = bytes.fromhex("9ac312a7f877468ebe69422748ad00a15443f18203a07d6060f688f30f21632b")
SUITES = [
    ("AES-128-GCM", CipherSuite.AES_128_GCM_SHA256, AioquicCipherSuite.AES_128_GCM_SHA256),
    ("ChaCha20-Poly1305", CipherSuite.CHACHA20_POLY1305_SHA256,
     AioquicCipherSuite.CHACHA20_POLY1305_SHA256),
]


def header(packet_number: int) -> bytes:
    # short header, spin 0, key phase 0, 2-byte packet number (what aioquic sends)
    return b"\x41" + DCID + (packet_number & 0xFFFF).to_bytes(2, "big")


HEADERS = [header(pn) for pn in range(PACKETS)]


def ours(suite: CipherSuite) -> tuple[Callable[[], object], Callable[[], object],
                                      Callable[[], object]]:
    sealer = PacketSealer(QUIC_VERSION_1, suite, SECRET)
    opener = PacketOpener(QUIC_VERSION_1, suite, SECRET)
    seal, open_ = sealer.seal, opener.open
    packets = [seal(HEADERS[pn], PAYLOAD, pn) for pn in range(PACKETS)]

    def seal_batch() -> None:
        for pn in range(PACKETS):
            seal(HEADERS[pn], PAYLOAD, pn)

    def open_batch() -> None:
        for pn in range(PACKETS):
            open_(packets[pn], PN_OFFSET, pn)

    def round_trip_batch() -> None:
        for pn in range(PACKETS):
            open_(seal(HEADERS[pn], PAYLOAD, pn), PN_OFFSET, pn)

    return seal_batch, open_batch, round_trip_batch


def aioquic(suite: AioquicCipherSuite) -> tuple[Callable[[], object], Callable[[], object],
                                                Callable[[], object]]:
    send, recv = CryptoContext(), CryptoContext()
    send.setup(cipher_suite=suite, secret=SECRET, version=QUIC_VERSION_1)
    recv.setup(cipher_suite=suite, secret=SECRET, version=QUIC_VERSION_1)
    seal, open_ = send.encrypt_packet, recv.decrypt_packet
    packets = [seal(HEADERS[pn], PAYLOAD, pn) for pn in range(PACKETS)]

    def seal_batch() -> None:
        for pn in range(PACKETS):
            seal(HEADERS[pn], PAYLOAD, pn)

    def open_batch() -> None:
        for pn in range(PACKETS):
            open_(packets[pn], PN_OFFSET, pn)

    def round_trip_batch() -> None:
        for pn in range(PACKETS):
            open_(seal(HEADERS[pn], PAYLOAD, pn), PN_OFFSET, pn)

    return seal_batch, open_batch, round_trip_batch


def best_rate(batch: Callable[[], object], timings: list[float]) -> None:
    start = time.perf_counter()
    batch()
    timings.append(time.perf_counter() - start)


def main() -> None:
    print(f"packet protection, 1-RTT short header, {len(PAYLOAD)}-byte payload; "
          f"best of {ROUNDS} x {PACKETS} packets")
    print(f"{'suite':<18} {'operation':<11} {'trio_zttp pkt/s':>16} {'aioquic pkt/s':>14} "
          f"{'ratio':>6}")
    for label, our_suite, their_suite in SUITES:
        our_batches, their_batches = ours(our_suite), aioquic(their_suite)
        for name, our_batch, their_batch in zip(("seal", "open", "round trip"), our_batches,
                                                their_batches, strict=True):
            our_times: list[float] = []
            their_times: list[float] = []
            for _ in range(ROUNDS):  # interleaved so machine noise hits both alike
                best_rate(our_batch, our_times)
                best_rate(their_batch, their_times)
            our_rate = PACKETS / min(our_times)
            their_rate = PACKETS / min(their_times)
            print(f"{label:<18} {name:<11} {our_rate:>16,.0f} {their_rate:>14,.0f} "
                  f"{our_rate / their_rate:>6.2f}")


if __name__ == "__main__":
    main()
