"""QPACK: trio_zttp.qpack against pylsqpack (ls-qpack, C) over the synthetic corpus.

For the dynamic table on (capacity 4096, 16 blocked streams) and off (capacity 0), in the
same run:

* compressed size: encoder-stream plus field-section bytes for the whole corpus, each
  implementation encoding with in-order delivery and its own decoder acknowledging;
* encode throughput: field sections per second and raw header MB/s (name + value bytes);
* decode throughput: both decoders replay the *same* recorded trace (ls-qpack's encoding,
  then ours), so the decoders are compared on identical input.

Timings are the median of ``--runs`` passes over the corpus.  Run from the repository root:

    python benchmarks/bench_qpack.py [--runs 15] [--repeat 4]

It is a benchmark, not a test: numbers vary between runs and machines; compare only
numbers from one run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pylsqpack

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from trio_zttp import qpack  # noqa: E402

CORPUS = Path(__file__).resolve().parent.parent / "tests" / "vectors" / "qpack" / "corpus.json"
Headers = list[tuple[bytes, bytes]]
Trace = list[tuple[bytes, int, bytes]]  # (encoder-stream bytes, stream id, field section)

IMPLEMENTATIONS: dict[str, tuple[Callable[[], Any], Callable[[int, int], Any]]] = {
    "trio_zttp": (qpack.Encoder, lambda cap, blocked: qpack.Decoder(cap, blocked)),
    "pylsqpack": (pylsqpack.Encoder, lambda cap, blocked: pylsqpack.Decoder(cap, blocked)),
}


def load_corpus(repeat: int) -> list[Headers]:
    sets = json.loads(CORPUS.read_text())["sets"]
    one = [
        [(n.encode("latin-1"), v.encode("latin-1")) for n, v in headers]
        for group in sets.values() for headers in group
    ]
    return one * repeat


def encode_pass(name: str, corpus: list[Headers], cap: int, blocked: int) -> tuple[float, Trace]:
    """Encode the corpus once (in-order delivery, acknowledged); return encode time, trace."""
    make_encoder, make_decoder = IMPLEMENTATIONS[name]
    encoder, decoder = make_encoder(), make_decoder(cap, blocked)
    trace: Trace = []
    setup = encoder.apply_settings(cap, blocked)
    decoder.feed_encoder(setup)
    trace.append((setup, -1, b""))
    clock = time.perf_counter
    spent = 0.0
    for n, headers in enumerate(corpus):
        stream_id = 4 * n
        started = clock()
        encoder_data, section = encoder.encode(stream_id, headers)
        spent += clock() - started
        decoder.feed_encoder(encoder_data)
        control, decoded = decoder.feed_header(stream_id, section)
        if decoded != headers:
            raise AssertionError(f"{name} round trip differs on stream {stream_id}")
        extra = decoder.data_to_send() if hasattr(decoder, "data_to_send") else b""
        started = clock()
        encoder.feed_decoder(control + extra)
        spent += clock() - started
        trace.append((encoder_data, stream_id, section))
    return spent, trace


def decode_pass(name: str, trace: Trace, cap: int, blocked: int) -> float:
    """Replay a recorded trace into a fresh decoder; return the time spent decoding."""
    decoder = IMPLEMENTATIONS[name][1](cap, blocked)
    clock = time.perf_counter
    started = clock()
    for encoder_data, stream_id, section in trace:
        decoder.feed_encoder(encoder_data)
        if stream_id >= 0:
            decoder.feed_header(stream_id, section)
    return clock() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=15, help="timed passes (median)")
    parser.add_argument("--repeat", type=int, default=4, help="corpus copies per pass")
    args = parser.parse_args()
    corpus = load_corpus(args.repeat)
    sections = len(corpus)
    raw = sum(len(n) + len(v) for headers in corpus for n, v in headers)
    print(f"corpus: {sections} field sections per pass, {raw / 1e3:.1f} kB of names+values, "
          f"{args.runs} passes, Python {sys.version.split()[0]}")
    rows = []
    for mode, cap, blocked in (("dynamic 4096/16", 4096, 16), ("static only", 0, 0)):
        traces: dict[str, Trace] = {}
        sizes: dict[str, int] = {}
        encode_times: dict[str, list[float]] = {name: [] for name in IMPLEMENTATIONS}
        decode_times: dict[str, dict[str, list[float]]] = {
            name: {src: [] for src in IMPLEMENTATIONS} for name in IMPLEMENTATIONS
        }
        for _ in range(args.runs):
            for name in IMPLEMENTATIONS:
                spent, trace = encode_pass(name, corpus, cap, blocked)
                encode_times[name].append(spent)
                traces[name] = trace
        for name, trace in traces.items():
            sizes[name] = sum(len(e) + len(s) for e, _, s in trace)
        for _ in range(args.runs):
            for name in IMPLEMENTATIONS:
                for source, trace in traces.items():
                    decode_times[name][source].append(decode_pass(name, trace, cap, blocked))
        for name in IMPLEMENTATIONS:
            enc = statistics.median(encode_times[name])
            dec_ls = statistics.median(decode_times[name]["pylsqpack"])
            dec_ours = statistics.median(decode_times[name]["trio_zttp"])
            rows.append((mode, name, sizes[name], sizes[name] / raw,
                         sizes[name] / sizes["pylsqpack"], sections / enc, raw / enc / 1e6,
                         sections / dec_ls, sections / dec_ours))
    header = ("mode", "implementation", "bytes", "of raw", "vs ls", "enc sect/s", "enc MB/s",
              "dec sect/s*", "dec sect/s**")
    print()
    print(f"{header[0]:<16} {header[1]:<10} {header[2]:>8} {header[3]:>7} {header[4]:>6} "
          f"{header[5]:>11} {header[6]:>8} {header[7]:>12} {header[8]:>12}")
    for mode, name, size, of_raw, vs_ls, enc_rate, enc_mb, dec_ls, dec_ours in rows:
        print(f"{mode:<16} {name:<10} {size:>8} {of_raw:>6.1%} {vs_ls:>6.2f} "
              f"{enc_rate:>11,.0f} {enc_mb:>8.1f} {dec_ls:>12,.0f} {dec_ours:>12,.0f}")
    print("\nbytes: encoder stream + field sections for one pass; of raw: bytes / names+values;")
    print("vs ls: size relative to pylsqpack; * decoding pylsqpack's encoding of the corpus;")
    print("** decoding trio_zttp's encoding (same input for both decoders in each column)")


if __name__ == "__main__":
    main()
