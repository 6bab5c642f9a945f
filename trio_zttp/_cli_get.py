"""``trio-zttp get URL``: download over HTTP/3, with a progress bar on a terminal."""

from __future__ import annotations

import argparse
import math
import time
from typing import IO
from urllib.parse import urlsplit

import trio

from ._cli import Exit, describe_failure, engine_factory
from ._cli_serve import client_configuration
from ._trio.h3 import open_h3_connection
from ._trio.h3_request import H3Response

__all__ = ["get", "human_size"]

_PROGRESS_INTERVAL = 0.1


def human_size(size: float) -> str:
    """``1234567`` -> ``"1.2 MB"`` (decimal units)."""
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")  # pragma: no cover


class _Progress:
    """A one-line progress bar on a terminal's stderr (nothing elsewhere)."""

    def __init__(self, stream: IO[str], total: int | None, enabled: bool) -> None:
        self._stream = stream
        self._total = total
        self._enabled = enabled
        self._started = time.perf_counter()
        self._last = 0.0
        self.received = 0

    def update(self, n: int) -> None:
        self.received += n
        now = time.perf_counter()
        if self._enabled and now - self._last >= _PROGRESS_INTERVAL:
            self._last = now
            self._draw(now)

    def _draw(self, now: float) -> None:
        elapsed = max(now - self._started, 1e-9)
        rate = f"{human_size(self.received / elapsed)}/s"
        if self._total:
            done = min(self.received / self._total, 1.0)
            bar = "#" * int(done * 30)
            line = (
                f"[{bar:<30}] {done:4.0%} {human_size(self.received)} / "
                f"{human_size(self._total)} {rate}"
            )
        else:
            line = f"{human_size(self.received)} {rate}"
        self._stream.write("\r" + line.ljust(72))
        self._stream.flush()

    def finish(self) -> None:
        if self._enabled:
            self._stream.write("\r" + " " * 72 + "\r")
            self._stream.flush()


def _headers(values: list[str]) -> list[tuple[str, str]]:
    headers = []
    for value in values:
        name, sep, rest = value.partition(":")
        if not sep or not name.strip():
            raise ValueError(f"not a header (NAME: VALUE): {value!r}")
        headers.append((name.strip().lower(), rest.strip()))
    return headers


def _body(data: str | None) -> bytes | None:
    if data is None:
        return None
    if data.startswith("@"):
        with open(data[1:], "rb") as file:
            return file.read()
    return data.encode()


async def get(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    """Run ``get``; returns the exit code."""
    url = urlsplit(args.url)
    if url.scheme != "https" or not url.hostname:
        print(f"trio-zttp: not an https:// URL: {args.url}", file=err)
        return Exit.USAGE
    try:
        headers = _headers(args.header)
        body = _body(args.data)
    except (ValueError, OSError) as exc:
        print(f"trio-zttp: {exc}", file=err)
        return Exit.USAGE
    host = url.hostname
    port = url.port or 443
    target = f"{host}:{port}"
    method = args.method or ("POST" if body is not None else "GET")
    path = (url.path or "/") + (f"?{url.query}" if url.query else "")
    configuration = client_configuration(args, idle_timeout=max(args.timeout, 1.0))
    factory = engine_factory()
    times: dict[str, float] = {}
    started = time.perf_counter()
    stage = "handshake"
    try:
        with trio.fail_after(args.timeout) as handshake:
            async with open_h3_connection(
                host,
                port,
                configuration,
                server_name=args.server_name,
                connection_factory=factory,
            ) as connection:
                handshake.deadline = math.inf
                times["connected"] = time.perf_counter()
                stage = "response"
                with trio.fail_after(args.timeout):
                    response = await connection.request(
                        method, path, headers=headers, body=body
                    )
                times["first byte"] = time.perf_counter()
                if args.include:
                    _print_head(response, out)
                stage = "body"
                received = await _download(response, args, out, err)
                times["done"] = time.perf_counter()
    except trio.TooSlowError:
        what = {"handshake": "the handshake", "response": "the response"}.get(stage, "data")
        hint = " (is a server listening on that UDP port?)" if stage == "handshake" else ""
        print(f"trio-zttp: timed out after {args.timeout:g} s waiting for {what} "
              f"from {target}{hint}", file=err)
        return Exit.TIMEOUT
    except (OSError, trio.BrokenResourceError) as exc:
        code, message = describe_failure(exc, handshake_done="connected" in times, target=target)
        print(f"trio-zttp: {message}", file=err)
        return code
    if not args.quiet:
        connect_ms = (times["connected"] - started) * 1000
        first_ms = (times["first byte"] - times["connected"]) * 1000
        elapsed = times["done"] - started
        rate = human_size(received / max(times["done"] - times["first byte"], 1e-9))
        print(
            f"{response.status} · {human_size(received)} in {elapsed:.3f} s ({rate}/s) · "
            f"handshake {connect_ms:.1f} ms · first byte {first_ms:.1f} ms · {target}",
            file=err,
        )
    return Exit.HTTP_ERROR if response.status >= 400 else Exit.OK


def _print_head(response: H3Response, stream: IO[str]) -> None:
    stream.write(f"HTTP/3 {response.status}\n")
    for name, value in response.headers:
        stream.write(f"{name.decode('latin-1')}: {value.decode('latin-1')}\n")
    stream.write("\n")
    stream.flush()


async def _download(
    response: H3Response, args: argparse.Namespace, out: IO[str], err: IO[str]
) -> int:
    length = response.get_header("content-length")
    total = int(length) if length is not None and length.isdigit() else None
    progress = _Progress(err, total, enabled=not args.quiet and err.isatty())
    file: trio.abc.AsyncResource | None = None
    binary = getattr(out, "buffer", None)
    if args.output is not None:
        opened = await trio.open_file(args.output, "wb")
        file = opened

        async def write(data: bytes) -> None:
            await opened.write(data)

    elif binary is not None:
        out.flush()

        async def write(data: bytes) -> None:
            binary.write(data)

    else:

        async def write(data: bytes) -> None:
            out.write(data.decode("utf-8", "replace"))

    try:
        async with response:
            while True:
                with trio.fail_after(args.timeout):
                    data = await response.body.receive_some()
                if not data:
                    break
                await write(data)
                progress.update(len(data))
    finally:
        progress.finish()
        if file is not None:
            await file.aclose()
        elif binary is not None:
            binary.flush()
    return progress.received
