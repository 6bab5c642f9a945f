"""Wrappers around ngtcp2's example programs from Debian (``ngtcp2-client``/``ngtcp2-server``).

Version 0.12 (bookworm) installs ``/usr/bin/gtlsclient`` and ``/usr/sbin/gtlsserver``
(GnuTLS + nghttp3). What they do, measured here (see also ``/work/shared/NOTES.md``):

- HTTP/3 only (ALPN ``h3``); no HTTP datagrams, no extended CONNECT, no raw-QUIC echo.
- ``gtlsserver [OPTS] ADDR PORT KEY CERT`` needs its port up front and prints nothing when it
  is ready: :func:`start_gtlsserver` picks a free port and waits until the process holds it.
  ``GET /N`` answers N **zero bytes** (up to ``--max-dyn-length``); other paths are files
  under ``-d DIR``. Its default ``--initial-rtt`` of 333 ms paces HANDSHAKE_DONE: pass
  ``10ms`` (the default here) for handshake timings.
- ``gtlsclient [OPTS] HOST PORT URI...`` does **not** verify the server certificate. It exits
  0 even when a response is a 404, so results are checked on the files it downloads
  (``--download=DIR``, one file per URI named after the last path segment).
- QUIC v1 and the v2 *draft* only (``-v v2draft``), not final v2 (RFC 9369).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from tests.interop.harness import ClientRun, InteropSession, PeerProcess

__all__ = [
    "Download",
    "check_downloads",
    "download_name",
    "downloads",
    "find_binary",
    "gtlsclient_argv",
    "gtlsserver_argv",
    "installed_version",
    "run_gtlsclient",
    "server_body",
    "start_gtlsserver",
]

GTLSCLIENT = "gtlsclient"
GTLSSERVER = "gtlsserver"


def find_binary(name: str) -> str | None:
    """Path of ``gtlsclient``/``gtlsserver``: PATH first, then Debian's sbin/bin (not on a
    non-root PATH)."""
    found = shutil.which(name)
    if found:
        return found
    for directory in ("/usr/sbin", "/usr/bin", "/usr/local/bin", "/usr/local/sbin"):
        candidate = os.path.join(directory, name)
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def installed_version() -> str | None:
    """The Debian package version of ``ngtcp2-client`` (the binaries have no ``--version``)."""
    try:
        completed = subprocess.run(
            ["dpkg-query", "-W", "-f", "${Version}", "ngtcp2-client"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return completed.stdout.strip() or None


def server_body(size: int) -> bytes:
    """What ``gtlsserver`` answers to ``GET /<size>``: ``size`` zero bytes."""
    return bytes(size)


def _opt(argv: list[str], name: str, value: object) -> None:
    if value is None or value is False:
        return
    argv.append(name if value is True else f"{name}={value}")


def gtlsserver_argv(
    binary: str,
    host: str,
    port: int,
    key: str | os.PathLike[str],
    cert: str | os.PathLike[str],
    *,
    htdocs: str | os.PathLike[str] | None = None,
    quiet: bool = True,
    initial_rtt: str | None = "10ms",
    validate_addr: bool = False,
    idle_timeout: str | None = None,
    max_dyn_length: str | None = None,
    tx_loss: float | None = None,
    rx_loss: float | None = None,
    qlog_dir: str | os.PathLike[str] | None = None,
    extra: Sequence[str] = (),
) -> list[str]:
    """``gtlsserver [OPTS] ADDR PORT KEY CERT``; durations are ngtcp2 strings (``10ms``)."""
    argv = [binary]
    _opt(argv, "--htdocs", None if htdocs is None else os.fspath(htdocs))
    _opt(argv, "--quiet", quiet)
    _opt(argv, "--initial-rtt", initial_rtt)
    _opt(argv, "--validate-addr", validate_addr)
    _opt(argv, "--timeout", idle_timeout)
    _opt(argv, "--max-dyn-length", max_dyn_length)
    _opt(argv, "--tx-loss", tx_loss)
    _opt(argv, "--rx-loss", rx_loss)
    _opt(argv, "--qlog-dir", None if qlog_dir is None else os.fspath(qlog_dir))
    argv += list(extra)
    return [*argv, host, str(port), os.fspath(key), os.fspath(cert)]


def gtlsclient_argv(
    binary: str,
    host: str,
    port: int,
    uris: Sequence[str],
    *,
    download: str | os.PathLike[str] | None = None,
    exit_on_all_streams_close: bool = True,
    quiet: bool = True,
    nstreams: int | None = None,
    method: str | None = None,
    data: str | os.PathLike[str] | None = None,
    idle_timeout: str | None = "10s",
    handshake_timeout: str | None = "10s",
    tx_loss: float | None = None,
    rx_loss: float | None = None,
    key_update: str | None = None,
    change_local_addr: str | None = None,
    nat_rebinding: bool = False,
    quic_version: str | None = None,
    initial_rtt: str | None = None,
    session_file: str | os.PathLike[str] | None = None,
    tp_file: str | os.PathLike[str] | None = None,
    qlog_dir: str | os.PathLike[str] | None = None,
    extra: Sequence[str] = (),
) -> list[str]:
    """``gtlsclient [OPTS] HOST PORT URI...``.

    ``nstreams`` is ``-n`` (requests, URIs wrapped), ``method``/``data`` are ``-m``/``-d``
    (POST a file), ``key_update``/``change_local_addr`` are durations after the handshake,
    ``quic_version`` is ``v1``, ``v2draft`` or hex.
    """
    argv = [binary]
    _opt(argv, "--download", None if download is None else os.fspath(download))
    _opt(argv, "--exit-on-all-streams-close", exit_on_all_streams_close)
    _opt(argv, "--quiet", quiet)
    _opt(argv, "--nstreams", nstreams)
    _opt(argv, "--http-method", method)
    _opt(argv, "--data", None if data is None else os.fspath(data))
    _opt(argv, "--timeout", idle_timeout)
    _opt(argv, "--handshake-timeout", handshake_timeout)
    _opt(argv, "--tx-loss", tx_loss)
    _opt(argv, "--rx-loss", rx_loss)
    _opt(argv, "--key-update", key_update)
    _opt(argv, "--change-local-addr", change_local_addr)
    _opt(argv, "--nat-rebinding", nat_rebinding)
    _opt(argv, "--version", quic_version)
    _opt(argv, "--initial-rtt", initial_rtt)
    _opt(argv, "--session-file", None if session_file is None else os.fspath(session_file))
    _opt(argv, "--tp-file", None if tp_file is None else os.fspath(tp_file))
    _opt(argv, "--qlog-dir", None if qlog_dir is None else os.fspath(qlog_dir))
    argv += list(extra)
    return [*argv, host, str(port), *uris]


def start_gtlsserver(
    session: InteropSession,
    binary: str,
    *,
    key: str | os.PathLike[str],
    cert: str | os.PathLike[str],
    htdocs: Path,
    host: str = "127.0.0.1",
    ready_timeout: float = 10.0,
    **options: object,
) -> PeerProcess:
    """Start ``gtlsserver`` on a free port (``.port``) serving ``htdocs``; waits until bound.

    ``options`` are :func:`gtlsserver_argv` keywords.
    """
    htdocs.mkdir(parents=True, exist_ok=True)
    return session.spawn_on_free_port(
        "gtlsserver",
        lambda port: gtlsserver_argv(
            binary,
            host,
            port,
            key,
            cert,
            htdocs=htdocs,
            **options,  # type: ignore[arg-type]
        ),
        host=host,
        ready_timeout=ready_timeout,
        cwd=htdocs,
    )


def run_gtlsclient(
    session: InteropSession,
    binary: str,
    host: str,
    port: int,
    uris: Sequence[str],
    *,
    download: Path,
    timeout: float = 20.0,
    **options: object,
) -> ClientRun:
    """Run ``gtlsclient`` to completion (killed after ``timeout``); downloads go to
    ``download``. Its ``result`` is None: check files with :func:`check_downloads`."""
    download.mkdir(parents=True, exist_ok=True)
    argv = gtlsclient_argv(binary, host, port, uris, download=download, **options)  # type: ignore[arg-type]
    peer = session.spawn("gtlsclient", argv)
    return session.finish(peer, timeout)


@dataclass(frozen=True)
class Download:
    """One file gtlsclient saved."""

    name: str
    size: int
    sha256: str


def downloads(directory: Path) -> dict[str, Download]:
    """Every file in ``directory`` with its size and digest."""
    found = {}
    for path in sorted(directory.iterdir()):
        if path.is_file():
            data = path.read_bytes()
            digest = hashlib.sha256(data).hexdigest()
            found[path.name] = Download(name=path.name, size=len(data), sha256=digest)
    return found


def download_name(uri: str) -> str:
    """The file name gtlsclient saves ``uri`` under (last path segment, else index.html)."""
    segment = urlsplit(uri).path.rsplit("/", 1)[-1]
    return segment or "index.html"


def check_downloads(directory: Path, expected: Mapping[str, bytes]) -> list[str]:
    """Problems with the downloads: ``expected`` maps file name (or URI) to the body.

    Returns an empty list when every expected file is there with exactly that content.
    """
    found = downloads(directory)
    problems = []
    for key, body in expected.items():
        name = download_name(key) if "/" in key else key
        got = found.get(name)
        want = hashlib.sha256(body).hexdigest()
        if got is None:
            problems.append(f"{name}: not downloaded (have {sorted(found)})")
        elif got.size != len(body) or got.sha256 != want:
            problems.append(
                f"{name}: {got.size} bytes sha256 {got.sha256}, expected {len(body)} bytes "
                f"sha256 {want}"
            )
    return problems
