"""The shared core of the asyncio interop peers (``aioquic_peer.py``, ``qh3_peer.py``).

aioquic and qh3 expose the same asyncio API (qh3 is a fork), so the roles are written once here
against a :class:`Library` adapter that each peer program fills with its own classes and its
few differences (HTTP/3 SETTINGS, the ``send_datagram`` id convention).

This module holds the contract (exit codes, output, the generated body, the command line) and
never imports either library, so the pytest side imports it for those shared facts.
``_peer_protocols.py`` has the per-connection behaviour, ``_peer_roles.py`` the server and
client programs.

The contract every peer program honours (``tests/interop/README.md`` has the full text):
stdout carries one JSON object per line; a server prints ``{"event": "ready", "port": P, ...}``
once it is bound, a client prints exactly one ``{"event": "result", "ok": ..., ...}`` line; the
exit code says how it went (``EXIT_*`` below); SIGTERM stops a server cleanly (exit 0 after a
``stats`` line); ``--timeout`` is a hard deadline after which the program exits by itself.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

EXIT_OK = 0
"""Everything the client was asked to do succeeded (a server: stopped by SIGTERM)."""
EXIT_CHECK_FAILED = 1
"""Connected, but a check failed: digest mismatch, wrong status, missing echoes."""
EXIT_USAGE = 2
"""Bad command line (argparse's own code)."""
EXIT_CONNECTION_FAILED = 3
"""No usable connection: handshake failure (e.g. certificate rejected), peer closed it."""
EXIT_TIMEOUT = 124
"""The hard ``--timeout`` expired (same code as coreutils ``timeout``)."""
EXIT_ORPHANED = 125
"""The parent process went away; the peer exits rather than linger."""

GENERATED_SEED = b"trio_zttp interop body"
PINGPONG_PROTOCOL = "ping-pong"
ECHO_PROTOCOL = "echo"
QUIC_VERSIONS = {"v1": 0x00000001, "v2": 0x6B3343CF}


def generated_body(size: int) -> bytes:
    """The body of ``GET /<size>``: the first ``size`` bytes of SHAKE-128 over a fixed seed.

    Deterministic, prefix-stable (``generated_body(n)`` is a prefix of ``generated_body(m)``
    for ``n <= m``) and without repeats, so reordered or duplicated chunks change the digest.
    """
    return hashlib.shake_128(GENERATED_SEED).digest(size)


def parse_quic_version(text: str) -> int:
    """``v1``, ``v2`` or a hex (``0x...``) or decimal version number."""
    lowered = text.lower()
    if lowered in QUIC_VERSIONS:
        return QUIC_VERSIONS[lowered]
    return int(lowered, 0)


# --------------------------------------------------------------------------------------
# output and watchdog


_OUTPUT_LOCK = threading.Lock()


def emit(record: Mapping[str, Any]) -> None:
    """Write one JSON line to stdout, atomically with respect to the watchdog thread."""
    data = (json.dumps(record, separators=(",", ":")) + "\n").encode()
    with _OUTPUT_LOCK:
        view = memoryview(data)
        while view:
            written = os.write(1, view)
            view = view[written:]


def start_watchdog(timeout: float, on_timeout: Mapping[str, Any]) -> None:
    """Exit with EXIT_TIMEOUT after ``timeout`` seconds, or EXIT_ORPHANED if the parent dies.

    A thread with ``os._exit`` works even when the event loop is stuck in a callback.
    """
    deadline = time.monotonic() + timeout
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(0.1)
            if os.getppid() != parent:
                os._exit(EXIT_ORPHANED)
            if time.monotonic() >= deadline:
                emit(on_timeout)
                os._exit(EXIT_TIMEOUT)

    threading.Thread(target=watch, name="watchdog", daemon=True).start()


# --------------------------------------------------------------------------------------
# the library adapter


@dataclass(frozen=True)
class Library:
    """What the shared roles need from aioquic or qh3."""

    name: str
    version: str
    configuration: Callable[..., Any]
    """``QuicConfiguration``."""
    protocol_base: type
    """``QuicConnectionProtocol``."""
    connect: Callable[..., Any]
    """``asyncio.connect`` (an async context manager)."""
    serve: Callable[..., Awaitable[Any]]
    """``asyncio.serve``."""
    file_logger: Callable[[str], Any]
    """``QuicFileLogger`` (qlog directory)."""
    quic_events: Any
    """The ``quic.events`` module."""
    h3_events: Any
    """The ``h3.events`` module."""
    h3_connection: Callable[[Any], Any]
    """Builds an H3 connection that offers ENABLE_CONNECT_PROTOCOL (server) and H3_DATAGRAM."""
    h3_send_datagram: Callable[[Any, int, bytes], None]
    """``(h3, request_stream_id, payload)``: hides the stream id / quarter stream id split."""
    h3_datagram_stream_id: Callable[[Any], int]
    """The request stream id of a received ``DatagramReceived``."""
    h3_alpn: Sequence[str] = ("h3",)
    h3_settings: Mapping[str, int] = field(
        default_factory=lambda: {"ENABLE_CONNECT_PROTOCOL": 0x08, "H3_DATAGRAM": 0x33}
    )


# --------------------------------------------------------------------------------------
# command line


def build_parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="asyncio QUIC/HTTP/3 interop peer")
    roles = parser.add_subparsers(dest="role", required=True)
    server = roles.add_parser("server", help="accept connections until SIGTERM or --timeout")
    client = roles.add_parser("client", help="run one connection's work, print a result")
    for sub in (server, client):
        sub.add_argument("--mode", choices=("echo", "h3"), default="echo")
        sub.add_argument("--host", default=None, help="bind (server) or connect (client) address")
        sub.add_argument("--port", type=int, default=None, help="0 (server default): any port")
        sub.add_argument(
            "--alpn",
            action="append",
            default=None,
            help="ALPN (repeatable); default 'echo' or 'h3' by mode",
        )
        sub.add_argument(
            "--quic-version",
            action="append",
            default=None,
            help="v1, v2 or 0x...; repeat for a preference list (client: "
            "the first is the initial version)",
        )
        sub.add_argument("--qlog-dir", default=None)
        sub.add_argument("--secrets-log", default=None, help="append NSS key log lines here")
        sub.add_argument(
            "--max-datagram-frame-size",
            type=int,
            default=65536,
            help="DATAGRAM frame support (RFC 9221); 0 disables",
        )
        sub.add_argument("--idle-timeout", type=float, default=10.0)
        sub.add_argument(
            "--timeout",
            type=float,
            default=30.0,
            help=f"hard deadline in seconds; exit {EXIT_TIMEOUT} when it expires",
        )
    server.add_argument("--cert", required=True)
    server.add_argument("--key", required=True)
    server.add_argument("--retry", action="store_true", help="validate addresses with Retry")
    verify = client.add_mutually_exclusive_group()
    verify.add_argument("--cafile", default=None, help="trust this CA (PEM)")
    verify.add_argument("--insecure", action="store_true", help="do not verify the server")
    client.add_argument("--server-name", default=None, help="SNI / name to verify")
    # raw echo
    client.add_argument("--bytes", type=int, default=1000, help="bytes per stream (echo)")
    client.add_argument("--streams", type=int, default=1, help="bidirectional streams (echo)")
    client.add_argument("--datagrams", type=int, default=0, help="DATAGRAM frames (echo)")
    client.add_argument("--datagram-size", type=int, default=100)
    client.add_argument(
        "--datagram-wait",
        type=float,
        default=3.0,
        help="seconds to wait for the last datagram echoes",
    )
    # HTTP/3
    client.add_argument("--url", default=None, help="https://HOST:PORT/PATH to GET (h3)")
    client.add_argument(
        "--requests", type=int, default=None, help="GETs of --url (default: --concurrency; 0: none)"
    )
    client.add_argument("--concurrency", type=int, default=1, help="GETs in flight")
    client.add_argument(
        "--expect-sha256",
        default=None,
        help="expected body digest of each GET (default: generated body of GET /N; 'none' to skip)",
    )
    client.add_argument(
        "--post",
        type=int,
        default=None,
        metavar="BYTES",
        help="also POST this many random bytes to --post-path, check the echo",
    )
    client.add_argument("--post-path", default="/echo")
    client.add_argument(
        "--pingpong",
        action="store_true",
        help="extended CONNECT :protocol ping-pong, counter in HTTP datagrams",
    )
    client.add_argument("--pingpong-rounds", type=int, default=10, help="final counter value")
    client.add_argument(
        "--h3-datagrams",
        type=int,
        default=0,
        help="extended CONNECT :protocol echo, send this many HTTP datagrams",
    )
    return parser


def configuration(library: Library, args: argparse.Namespace, *, is_client: bool) -> Any:
    alpn = args.alpn or (list(library.h3_alpn) if args.mode == "h3" else ["echo"])
    config = library.configuration(
        is_client=is_client,
        alpn_protocols=alpn,
        idle_timeout=args.idle_timeout,
        max_datagram_frame_size=args.max_datagram_frame_size or None,
    )
    if args.quic_version:
        versions = [parse_quic_version(v) for v in args.quic_version]
        config.supported_versions = versions
        if is_client:
            config.original_version = versions[0]
    if args.qlog_dir:
        os.makedirs(args.qlog_dir, exist_ok=True)
        config.quic_logger = library.file_logger(args.qlog_dir)
    if args.secrets_log:
        config.secrets_log_file = open(args.secrets_log, "a")  # noqa: SIM115 (kept open for the process)
    return config


def base_record(library: Library, args: argparse.Namespace) -> dict[str, Any]:
    return {"peer": library.name, "peer_version": library.version, "mode": args.mode}


def connection_facts(quic: Any) -> dict[str, Any]:
    facts: dict[str, Any] = {}
    version = getattr(quic, "_version", None)
    if version is not None:
        facts["quic_version"] = f"0x{int(version):08x}"
    return facts
