"""``trio-zttp serve`` and ``trio-zttp demo``, and the configurations both build."""

from __future__ import annotations

import argparse
import os
import signal
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import trio

from ._cli import Exit, describe_failure, engine_factory
from ._cli_site import PINGPONG, Site
from ._trio.endpoint import QuicEndpoint
from ._trio.h3 import H3Connection, open_h3_connection, serve_h3
from .quic._config import Configuration
from .quic._qlog import QlogTracer
from .testing import CertificateAuthority

__all__ = ["client_configuration", "demo", "serve", "server_configuration"]

_DATAGRAMS = 65536


def _qlog_factory(directory: str) -> Callable[[bytes, bool], QlogTracer]:
    """One qlog file per connection, ``<odcid>-<role>.sqlog`` in ``directory``."""
    os.makedirs(directory, exist_ok=True)

    def tracer(odcid: bytes, is_client: bool) -> QlogTracer:
        role = "client" if is_client else "server"
        path = os.path.join(directory, f"{odcid.hex()}-{role}.sqlog")
        # line-buffered: a trace is readable while its connection still runs
        return QlogTracer(open(path, "w", buffering=1), title=f"trio_zttp {role}")  # noqa: SIM115

    return tracer


def _plumbing(args: argparse.Namespace) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if getattr(args, "qlog_dir", None):
        values["qlog"] = _qlog_factory(args.qlog_dir)
    if getattr(args, "secrets_log", None):
        values["secrets_log_file"] = open(args.secrets_log, "a")  # noqa: SIM115
    return values


def client_configuration(args: argparse.Namespace, **overrides: Any) -> Configuration:
    """The client configuration of ``get`` (and ``demo``): ALPN h3, verification as asked."""
    values: dict[str, Any] = {
        "is_client": True,
        "alpn_protocols": ("h3",),
        "max_datagram_frame_size": _DATAGRAMS,
        **_plumbing(args),
    }
    if getattr(args, "insecure", False):
        values["verify_peer"] = False
    elif getattr(args, "cafile", None):
        values["cafile"] = args.cafile
    values.update(overrides)
    return Configuration(**values)


def server_configuration(
    certificate_chain: Any, private_key: Any, args: argparse.Namespace | None = None
) -> Configuration:
    return Configuration(
        is_client=False,
        alpn_protocols=("h3",),
        certificate_chain=certificate_chain,
        private_key=private_key,
        max_datagram_frame_size=_DATAGRAMS,
        **(_plumbing(args) if args is not None else {}),
    )


def _names(host: str) -> list[str]:
    names = ["localhost", "127.0.0.1", "::1"]
    if host not in ("", "0.0.0.0", "::") and host not in names:
        names.append(host)
    return names


def _prepare(args: argparse.Namespace) -> tuple[Configuration, list[str], Path | None]:
    """Check the arguments and build the server configuration (before the event loop:
    this touches files).

    Raises:
        ValueError: A usage error, with its message.
    """
    if args.directory is not None and not os.path.isdir(args.directory):
        raise ValueError(f"not a directory: {args.directory}")
    if (args.cert is None) != (args.key is None):
        raise ValueError("--cert and --key go together")
    lines: list[str] = []
    if args.cert is not None:
        configuration = Configuration(is_client=False, alpn_protocols=("h3",),
                                      max_datagram_frame_size=_DATAGRAMS, **_plumbing(args))
        try:
            configuration.load_cert_chain(args.cert, args.key)
        except (OSError, ValueError) as exc:
            raise ValueError(f"cannot load the certificate: {exc}") from None
        return configuration, lines, None
    directory = Path(args.cert_dir or tempfile.mkdtemp(prefix="trio-zttp-"))
    directory.mkdir(parents=True, exist_ok=True)
    ca = CertificateAuthority.create(name="trio-zttp serve CA")
    leaf = ca.issue(_names(args.host))
    cafile = directory / "ca.pem"
    ca.write_pem(cafile)
    leaf.write_pem(directory / "cert.pem", directory / "key.pem")
    lines.append(f"certificate: {directory / 'cert.pem'} (key {directory / 'key.pem'}), "
                 f"issued by a CA made just now: {cafile}")
    if args.directory is not None:
        args.directory = os.path.abspath(args.directory)
    return server_configuration(leaf.chain, leaf.private_key, args), lines, cafile


async def serve(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    """Run ``serve`` until Ctrl-C / SIGTERM; returns the exit code."""
    try:
        configuration, lines, cafile = _prepare(args)
    except ValueError as exc:
        print(f"trio-zttp: {exc}", file=err)
        return Exit.USAGE
    log: Callable[[str], object] | None = None
    if not args.quiet:
        def log(line: str) -> None:
            print(line, file=out, flush=True)

    site = Site(args.directory, log=log)
    try:
        factory = engine_factory()
    except RuntimeError as exc:
        print(f"trio-zttp: {exc}", file=err)
        return Exit.ERROR
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            try:
                endpoint: QuicEndpoint = await nursery.start(
                    lambda task_status: serve_h3(
                        site, args.host, args.port, configuration,
                        connection_factory=factory, task_status=task_status,
                    )
                )
            except OSError as exc:
                print(f"trio-zttp: cannot listen on {args.host}:{args.port}: "
                      f"{exc.strerror or exc}", file=err)
                return Exit.UNREACHABLE
            host, port = endpoint.local_address[:2]
            shown = "localhost" if host in ("127.0.0.1", "::1", "0.0.0.0", "::") else host
            what = f"files in {args.directory}" if args.directory else "the demo site"
            print(f"serving {what} over HTTP/3 on https://{shown}:{port}/ (UDP {host}:{port})",
                  file=out)
            for line in lines:
                print(line, file=out)
            trust = f"--cafile {cafile}" if cafile is not None else "--cafile YOUR-CA.pem"
            print(f"try: python -m trio_zttp get {trust} https://{shown}:{port}/"
                  f"{'' if args.directory else 'hello'}", file=out)
            print("Ctrl-C stops (graceful: GOAWAY, then up to 5 s for requests in progress)",
                  file=out, flush=True)
            async for _ in signals:
                break
            print("shutting down", file=out, flush=True)
            nursery.cancel_scope.cancel()
    return Exit.OK


async def demo(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    """Run ``demo``: a server and a client on loopback in this process."""

    def say(line: str) -> None:
        print(line, file=out, flush=True)

    try:
        factory = engine_factory()
    except RuntimeError as exc:
        print(f"trio-zttp: {exc}", file=err)
        return Exit.ERROR
    say("trio_zttp demo: an HTTP/3 server and client in one process, over loopback UDP")
    ca = CertificateAuthority.create(name="trio-zttp demo CA")
    leaf = ca.issue(["localhost", "127.0.0.1"])
    async with trio.open_nursery() as nursery:
        endpoint: QuicEndpoint = await nursery.start(
            lambda task_status: serve_h3(
                Site(log=lambda line: say(f"  server: {line}")),
                "127.0.0.1", 0, server_configuration(leaf.chain, leaf.private_key),
                connection_factory=factory, task_status=task_status,
            )
        )
        port = endpoint.local_address[1]
        say(f"  server: listening on https://localhost:{port}/ "
            "(certificate from a CA made in memory)")
        configuration = client_configuration(args, cadata=ca.pem)
        target = f"localhost:{port}"
        handshake_done = False
        try:
            with trio.fail_after(10):
                started = time.perf_counter()
                async with open_h3_connection(
                    "127.0.0.1", port, configuration, server_name="localhost",
                    connection_factory=factory,
                ) as connection:
                    handshake_done = True
                    say(f"  client: connected in {(time.perf_counter() - started) * 1000:.1f} ms"
                        f" (ALPN {connection.quic.alpn_protocol})")
                    await _demo_requests(connection, args.rounds, say)
                say("  client: connection closed (H3_NO_ERROR)")
        except (OSError, trio.BrokenResourceError, trio.TooSlowError) as exc:
            if isinstance(exc, trio.TooSlowError):
                print("trio-zttp: the demo timed out", file=err)
                nursery.cancel_scope.cancel()
                return Exit.TIMEOUT
            code, message = describe_failure(exc, handshake_done=handshake_done, target=target)
            print(f"trio-zttp: {message}", file=err)
            nursery.cancel_scope.cancel()
            return code
        nursery.cancel_scope.cancel()
    say("done")
    return Exit.OK


async def _demo_requests(
    connection: H3Connection, rounds: int, say: Callable[[str], None]
) -> None:
    started = time.perf_counter()
    response = await connection.request("GET", "/hello")
    body = await response.read()
    elapsed = (time.perf_counter() - started) * 1000
    kind = (response.get_header("content-type") or b"").decode()
    say(f"  client: GET /hello -> {response.status} ({kind}), {len(body)} bytes in "
        f"{elapsed:.1f} ms: {body.decode().strip()!r}")
    settings = await connection.received_settings()
    say(f"  client: server SETTINGS: h3_datagram={int(settings.h3_datagram)}, "
        f"enable_connect_protocol={int(settings.enable_connect_protocol)}, "
        f"qpack_max_table_capacity={settings.qpack_max_table_capacity}")
    started = time.perf_counter()
    async with connection.open_request_stream() as stream:
        await stream.send_request_header("CONNECT", "/ping-pong", protocol=PINGPONG)
        response = await stream.read_response()
        say(f"  client: CONNECT :protocol {PINGPONG} -> {response.status}; "
            "HTTP datagrams on stream "
            f"{stream.stream_id}:")
        if response.status != 200:
            raise RuntimeError(f"the server refused the ping-pong ({response.status})")
        count = 1
        resends = 0
        while True:
            say(f"    client -> {count}")
            await stream.send_datagram(b"%d" % count)
            with trio.move_on_after(0.25) as scope:
                while (reply := int(await stream.receive_datagram())) != count + 1:
                    pass
                say(f"    server -> {reply}")
            if scope.cancelled_caught:
                resends += 1  # a datagram was lost: send the same count again
                continue
            if reply >= rounds:
                break
            count = reply + 1
        await stream.send_eof()
        while await stream.receive_some():
            pass
    elapsed = (time.perf_counter() - started) * 1000
    lost = f", {resends} resent" if resends else ""
    say(f"  client: ping-pong reached {rounds} in {elapsed:.1f} ms{lost}")
