"""The command line: ``python -m trio_zttp`` (also installed as ``trio-zttp``).

Subcommands: ``serve`` (a directory or the demo site over HTTP/3, with a certificate made
on the fly), ``get URL`` (download), ``demo`` (server and client in one process: a request
and an HTTP-datagram ping-pong).  Failures print one line on stderr and exit with a code
scripts can test (:class:`Exit`).

``TRIO_ZTTP_QUIC_ENGINE=module:attribute`` picks another sans-IO QUIC engine (a
``connection_factory``), for tests and comparisons; the default is ``quic.Connection``.
"""

from __future__ import annotations

import argparse
import enum
import importlib
import os
import sys
from collections.abc import Sequence
from typing import IO, Any, Final

import trio

from . import __version__
from ._trio import _engine
from ._trio.errors import ConnectionClosedError, StreamResetError, StreamStoppedError

__all__ = ["Exit", "describe_failure", "engine_factory", "main"]

ENGINE_ENV: Final = "TRIO_ZTTP_QUIC_ENGINE"


class Exit(enum.IntEnum):
    """Exit codes of ``trio-zttp``."""

    #: Success.
    OK = 0
    #: An unexpected error.
    ERROR = 1
    #: Bad command line.
    USAGE = 2
    #: The host name did not resolve or the network is unreachable.
    UNREACHABLE = 3
    #: The peer refused the handshake (TLS alert, no common ALPN or version, closed).
    HANDSHAKE_REFUSED = 4
    #: The server's certificate failed verification (or ours was refused).
    CERTIFICATE = 5
    #: Nothing answered, or no progress, within the timeout.
    TIMEOUT = 6
    #: The connection or the request stream broke after the handshake.
    CONNECTION_LOST = 7
    #: The server answered with an HTTP error status (4xx or 5xx).
    HTTP_ERROR = 8


# RFC 9001 §4.8: CRYPTO_ERROR 0x100 + TLS alert; these alerts are about certificates
_CERTIFICATE_ALERTS: Final = frozenset(
    0x100 + alert for alert in (42, 43, 44, 45, 46, 48, 116)
)

EXIT_HELP: Final = "exit codes: " + ", ".join(
    f"{code.value} {code.name.lower().replace('_', ' ')}" for code in Exit
)


def engine_factory() -> _engine.ConnectionFactory:
    """The QUIC engine: ``$TRIO_ZTTP_QUIC_ENGINE`` (``module:attribute``) or the default."""
    spec = os.environ.get(ENGINE_ENV)
    if not spec:
        return _engine.default_connection_factory()
    module, _, attribute = spec.partition(":")
    factory: Any = importlib.import_module(module)
    for part in attribute.split(".") if attribute else ():
        factory = getattr(factory, part)
    return factory  # type: ignore[no-any-return]


def describe_failure(exc: BaseException, *, handshake_done: bool, target: str) -> tuple[Exit, str]:
    """The exit code and the one-line message for a failure talking to ``target``."""
    if isinstance(exc, ConnectionClosedError):
        cause = exc.__cause__
        if isinstance(cause, OSError):
            return Exit.UNREACHABLE, f"cannot reach {target}: {cause.strerror or cause}"
        code = exc.error_code
        if not exc.application and code in _CERTIFICATE_ALERTS:
            if exc.by_peer:
                return Exit.CERTIFICATE, f"{target} refused our certificate ({exc})"
            detail = exc.reason or "verification failed"
            return Exit.CERTIFICATE, (
                f"certificate of {target} not trusted: {detail} "
                "(--cafile FILE to trust a CA, --insecure to skip verification)"
            )
        if "idle timeout" in exc.reason.lower():
            stage = "" if handshake_done else " (is a server listening on that UDP port?)"
            return Exit.TIMEOUT, f"{target} stopped answering: idle timeout{stage}"
        if not handshake_done:
            return Exit.HANDSHAKE_REFUSED, f"handshake with {target} refused: {exc}"
        return Exit.CONNECTION_LOST, f"connection to {target} lost: {exc}"
    if isinstance(exc, StreamResetError | StreamStoppedError):
        return Exit.CONNECTION_LOST, f"{target} aborted the request: {exc}"
    if isinstance(exc, trio.BrokenResourceError):
        return Exit.CONNECTION_LOST, f"connection to {target} broken: {exc}"
    if isinstance(exc, OSError):
        detail = exc.strerror or str(exc) or type(exc).__name__
        return Exit.UNREACHABLE, f"cannot reach {target}: {detail}"
    return Exit.ERROR, f"{type(exc).__name__}: {exc}"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trio-zttp",
        description="HTTP/3 over trio: serve, download, and a self-contained demo.",
        epilog=EXIT_HELP,
    )
    parser.add_argument("--version", action="version", version=f"trio_zttp {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser(
        "serve", help="serve a directory (or the demo site) over HTTP/3", epilog=EXIT_HELP
    )
    serve.add_argument("directory", nargs="?", help="serve these files (default: the demo site)")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=4433, help="UDP port (default 4433, 0: any)")
    serve.add_argument("--cert", help="certificate chain (PEM, leaf first)")
    serve.add_argument("--key", help="private key (PEM) of --cert")
    serve.add_argument(
        "--cert-dir", help="where to write the generated CA and certificate (default: a temp dir)"
    )
    _common(serve)
    serve.add_argument("--quiet", "-q", action="store_true", help="no request log")

    get = commands.add_parser("get", help="download a URL over HTTP/3", epilog=EXIT_HELP)
    get.add_argument("url", help="https://HOST[:PORT]/PATH")
    get.add_argument("-o", "--output", help="write the body here (default: stdout)")
    verify = get.add_mutually_exclusive_group()
    verify.add_argument("--cafile", help="trust the CA certificates in this PEM file")
    verify.add_argument("-k", "--insecure", action="store_true", help="do not verify the server")
    get.add_argument(
        "-H", "--header", action="append", default=[], metavar="'NAME: VALUE'",
        help="add a request header (repeatable)",
    )
    get.add_argument("-X", "--method", default=None, help="request method (default GET, or POST)")
    get.add_argument("-d", "--data", help="request body (POST by default); @FILE reads a file")
    get.add_argument("-i", "--include", action="store_true", help="print the response headers")
    get.add_argument("--server-name", help="SNI and the name to verify (default: the URL host)")
    get.add_argument(
        "--timeout", type=float, default=10.0,
        help="seconds to wait for the handshake, the response, or each piece of the body",
    )
    get.add_argument("--quiet", "-q", action="store_true", help="no progress bar or summary")
    _common(get)

    demo = commands.add_parser(
        "demo", help="server and client in one process: a request and a datagram ping-pong"
    )
    demo.add_argument("--rounds", type=int, default=10, help="ping-pong up to this count")
    return parser


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--qlog-dir", help="write a qlog trace per connection here")
    parser.add_argument(
        "--secrets-log", default=os.environ.get("SSLKEYLOGFILE") or None,
        help="append TLS secrets here (NSS key log, for Wireshark; default $SSLKEYLOGFILE)",
    )


def main(
    argv: Sequence[str] | None = None,
    *,
    stdout: IO[str] | None = None,
    stderr: IO[str] | None = None,
) -> int:
    """Run the command line; returns the exit code."""
    out = stdout if stdout is not None else sys.stdout
    err = stderr if stderr is not None else sys.stderr
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    try:
        if args.command == "serve":
            from ._cli_serve import serve

            return trio.run(serve, args, out, err)
        if args.command == "get":
            from ._cli_get import get

            return trio.run(get, args, out, err)
        from ._cli_serve import demo

        return trio.run(demo, args, out, err)
    except KeyboardInterrupt:
        print("interrupted", file=err)
        return 130
    except RuntimeError as exc:
        print(f"trio-zttp: {exc}", file=err)
        return Exit.ERROR
