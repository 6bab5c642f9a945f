"""The pytest side of the interop harness: start peer programs, talk to them, always clean up.

Peers are separate processes talking over loopback UDP. A peer is any command line that
honours the contract in ``tests/interop/README.md`` (JSON lines on stdout, a ``ready`` line
with the bound port for servers, one ``result`` line for clients, exit codes, SIGTERM stops a
server). :data:`IMPLEMENTATIONS` names the ones we have (aioquic, qh3, and our own once
``peers/ours_peer.py`` or ``$TRIO_ZTTP_INTEROP_OURS`` exists); ngtcp2's binaries have their
own command lines and are wrapped by ``tests/interop/ngtcp2.py``.

Every process is started through an :class:`InteropSession` (the ``interop`` fixture), which
stops whatever is still running at teardown, also when the test failed: SIGTERM, then SIGKILL
after a timeout, always by the PID it started. On Linux each child also gets
``PR_SET_PDEATHSIG`` so nothing outlives a killed pytest.
"""

from __future__ import annotations

import ctypes
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.interop.peers._peer_core import (
    EXIT_CHECK_FAILED,
    EXIT_CONNECTION_FAILED,
    EXIT_OK,
    EXIT_ORPHANED,
    EXIT_TIMEOUT,
    EXIT_USAGE,
    generated_body,
)

__all__ = [
    "CLIENT_GRACE",
    "EXIT_CHECK_FAILED",
    "EXIT_CONNECTION_FAILED",
    "EXIT_OK",
    "EXIT_ORPHANED",
    "EXIT_TIMEOUT",
    "EXIT_USAGE",
    "IMPLEMENTATIONS",
    "OURS_ENV",
    "OURS_MODES_ENV",
    "InteropCertificates",
    "ClientRun",
    "Implementation",
    "InteropSession",
    "PeerError",
    "PeerProcess",
    "available_implementations",
    "client_argv",
    "free_udp_port",
    "generated_body",
    "implementation",
    "peer_pairs",
    "pid_exists",
    "server_argv",
    "udp_port_bound_by",
]

PEERS_DIR = Path(__file__).resolve().parent / "peers"
REPO_ROOT = Path(__file__).resolve().parents[2]
OURS_ENV = "TRIO_ZTTP_INTEROP_OURS"
"""Environment variable: the command line (shell-quoted) of our own peer program."""
CLIENT_GRACE = 10.0
"""Seconds the harness waits past a client's own hard timeout (startup under load) before
killing it."""
OURS_MODES_ENV = "TRIO_ZTTP_INTEROP_OURS_MODES"
"""Environment variable: the modes our peer is tried in (default ``echo,h3``)."""


@dataclass(frozen=True)
class InteropCertificates:
    """PEM files for the peers (the ``interop_certs`` fixture writes them)."""

    cafile: Path
    """The CA certificate (what clients trust)."""
    cert: Path
    """Leaf chain for localhost, 127.0.0.1 and ::1 (what servers present)."""
    key: Path
    """The leaf's private key (PKCS#8 PEM)."""
    other_cafile: Path
    """A CA that issued nothing here: trusting it must make the handshake fail."""


class PeerError(AssertionError):
    """A peer did not do what the harness waited for (never ready, hung, died early).

    An ``AssertionError`` so pytest reports it as a test failure with the peer's log tail.
    """


# --------------------------------------------------------------------------------------
# implementations


@dataclass(frozen=True)
class Implementation:
    """A peer program that follows the harness contract.

    ``argv`` is the command prefix; the role (``server``/``client``) and flags follow it.
    """

    name: str
    argv: tuple[str, ...]
    roles: frozenset[str] = frozenset({"server", "client"})
    modes: frozenset[str] = frozenset({"echo", "h3"})
    notes: str = ""


def _python_peer(name: str, notes: str = "") -> Implementation:
    return Implementation(
        name=name, argv=(sys.executable, str(PEERS_DIR / f"{name}_peer.py")), notes=notes
    )


def _ours() -> Implementation | None:
    # THE SLOT FOR OUR OWN CLIENT/SERVER: a program following the same contract, either
    # named by $TRIO_ZTTP_INTEROP_OURS (e.g. "python -m trio_zttp.<something>") or
    # tests/interop/peers/ours_peer.py (a small trio program, not written yet).
    # $TRIO_ZTTP_INTEROP_OURS_MODES ("echo", "h3" or "echo,h3") narrows what it is tried for.
    command = os.environ.get(OURS_ENV)
    script = PEERS_DIR / "ours_peer.py"
    if command:
        argv = tuple(shlex.split(command))
    elif script.exists():
        argv = (sys.executable, str(script))
    else:
        return None
    modes = os.environ.get(OURS_MODES_ENV, "echo,h3")
    return Implementation(
        name="ours",
        argv=argv,
        modes=frozenset(mode.strip() for mode in modes.split(",") if mode.strip()),
    )


IMPLEMENTATIONS: dict[str, Implementation] = {
    "aioquic": _python_peer("aioquic"),
    "qh3": _python_peer("qh3", notes="qh3 server + aioquic client: ~1 s handshake stall"),
}
_ours_implementation = _ours()
if _ours_implementation is not None:
    IMPLEMENTATIONS["ours"] = _ours_implementation


def implementation(name: str) -> Implementation:
    """The implementation called ``name``; ``KeyError`` lists the known ones."""
    try:
        return IMPLEMENTATIONS[name]
    except KeyError:
        raise KeyError(f"unknown peer {name!r}; known: {sorted(IMPLEMENTATIONS)}") from None


def available_implementations(role: str | None = None, mode: str | None = None) -> list[str]:
    """Names of the implementations offering ``role`` and ``mode`` (for parametrize)."""
    return [
        name
        for name, impl in IMPLEMENTATIONS.items()
        if (role is None or role in impl.roles) and (mode is None or mode in impl.modes)
    ]


def peer_pairs(mode: str) -> list[tuple[str, str]]:
    """Every ``(client, server)`` pair of different implementations that offer ``mode``,
    plus ``("ours", "ours")`` once ours exists: the interop matrix for ``parametrize``."""
    clients = available_implementations("client", mode)
    servers = available_implementations("server", mode)
    return [
        (client, server)
        for client in clients
        for server in servers
        if client != server or client == "ours"
    ]


# --------------------------------------------------------------------------------------
# command lines of the contract


def _flag(argv: list[str], name: str, value: object) -> None:
    if value is None or value is False:
        return
    if value is True:
        argv.append(name)
    elif isinstance(value, list | tuple):
        for item in value:
            argv += [name, str(item)]
    else:
        argv += [name, str(value)]


def server_argv(
    mode: str,
    *,
    cert: str | os.PathLike[str],
    key: str | os.PathLike[str],
    host: str = "127.0.0.1",
    port: int = 0,
    alpn: Sequence[str] | None = None,
    quic_version: Sequence[str] | None = None,
    qlog_dir: str | os.PathLike[str] | None = None,
    max_datagram_frame_size: int | None = None,
    retry: bool = False,
    timeout: float = 30.0,
    extra: Sequence[str] = (),
) -> list[str]:
    """Flags for ``<peer> server`` (the role word included)."""
    argv = ["server", "--mode", mode, "--cert", os.fspath(cert), "--key", os.fspath(key)]
    _flag(argv, "--host", host)
    _flag(argv, "--port", port)
    _flag(argv, "--alpn", alpn)
    _flag(argv, "--quic-version", quic_version)
    _flag(argv, "--qlog-dir", None if qlog_dir is None else os.fspath(qlog_dir))
    _flag(argv, "--max-datagram-frame-size", max_datagram_frame_size)
    _flag(argv, "--retry", retry)
    _flag(argv, "--timeout", timeout)
    return argv + list(extra)


def client_argv(
    mode: str,
    *,
    host: str | None = None,
    port: int | None = None,
    url: str | None = None,
    cafile: str | os.PathLike[str] | None = None,
    insecure: bool = False,
    server_name: str | None = None,
    alpn: Sequence[str] | None = None,
    quic_version: Sequence[str] | None = None,
    qlog_dir: str | os.PathLike[str] | None = None,
    max_datagram_frame_size: int | None = None,
    bytes: int | None = None,
    streams: int | None = None,
    datagrams: int | None = None,
    datagram_size: int | None = None,
    requests: int | None = None,
    concurrency: int | None = None,
    expect_sha256: str | None = None,
    post: int | None = None,
    pingpong: bool = False,
    h3_datagrams: int | None = None,
    timeout: float = 20.0,
    extra: Sequence[str] = (),
) -> list[str]:
    """Flags for ``<peer> client`` (the role word included)."""
    argv = ["client", "--mode", mode]
    _flag(argv, "--host", host)
    _flag(argv, "--port", port)
    _flag(argv, "--url", url)
    _flag(argv, "--cafile", None if cafile is None else os.fspath(cafile))
    _flag(argv, "--insecure", insecure)
    _flag(argv, "--server-name", server_name)
    _flag(argv, "--alpn", alpn)
    _flag(argv, "--quic-version", quic_version)
    _flag(argv, "--qlog-dir", None if qlog_dir is None else os.fspath(qlog_dir))
    _flag(argv, "--max-datagram-frame-size", max_datagram_frame_size)
    _flag(argv, "--bytes", bytes)
    _flag(argv, "--streams", streams)
    _flag(argv, "--datagrams", datagrams)
    _flag(argv, "--datagram-size", datagram_size)
    _flag(argv, "--requests", requests)
    _flag(argv, "--concurrency", concurrency)
    _flag(argv, "--expect-sha256", expect_sha256)
    _flag(argv, "--post", post)
    _flag(argv, "--pingpong", pingpong)
    _flag(argv, "--h3-datagrams", h3_datagrams)
    _flag(argv, "--timeout", timeout)
    return argv + list(extra)


# --------------------------------------------------------------------------------------
# ports and processes


def free_udp_port(host: str = "127.0.0.1") -> int:
    """A UDP port that was free a moment ago (bind to port 0, read it, close).

    Another process may take it before the peer binds it: start with
    :meth:`InteropSession.spawn_on_free_port`, which retries on that race.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def pid_exists(pid: int) -> bool:
    """Whether a process (not a zombie) with this PID exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        status = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return status.rsplit(")", 1)[-1].split()[0] != "Z"


def udp_port_bound_by(pid: int, port: int) -> bool | None:
    """Whether process ``pid`` holds a UDP socket bound to ``port`` (Linux ``/proc``).

    None where ``/proc`` cannot tell. Used as the readiness test of programs that print
    nothing when ready (ngtcp2's server); probing by binding the port ourselves would race.
    """
    inodes: set[str] = set()
    try:
        for table in ("/proc/net/udp", "/proc/net/udp6"):
            with open(table) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    if int(fields[1].rsplit(":", 1)[1], 16) == port:
                        inodes.add(fields[9])
        if not inodes:
            return False
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:[") and target[8:-1] in inodes:
                return True
    except (OSError, StopIteration):
        return None
    return False


def _die_with_parent() -> None:  # pragma: no cover (runs in the child)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


@dataclass(eq=False)
class PeerProcess:
    """One started peer: its process, its log files and what it printed."""

    name: str
    argv: list[str]
    stdout_path: Path
    stderr_path: Path
    process: subprocess.Popen[bytes]
    port: int | None = None
    """The port it serves on, once known (from its ``ready`` line or chosen for it)."""
    started_at: float = field(default_factory=time.monotonic)

    @property
    def pid(self) -> int:
        return self.process.pid

    def __repr__(self) -> str:
        return f"PeerProcess({self.name}, pid={self.pid}, returncode={self.returncode})"

    @property
    def returncode(self) -> int | None:
        return self.process.poll()

    def running(self) -> bool:
        return self.process.poll() is None

    def output(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def errors(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        """The JSON objects it printed so far (other lines are skipped), optionally one kind."""
        records = []
        for line in self.output().splitlines():
            line = line.strip()
            if not line.startswith("{"):
                continue
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and (kind is None or record.get("event") == kind):
                records.append(record)
        return records

    def wait_for_event(self, kind: str, timeout: float) -> dict[str, Any]:
        """The first ``kind`` line; PeerError if the process exits or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.events(kind)
            if found:
                return found[0]
            if not self.running():
                found = self.events(kind)  # printed just before exiting
                if found:
                    return found[0]
                raise PeerError(f"{self.name} exited before printing {kind!r}\n{self.describe()}")
            if time.monotonic() >= deadline:
                raise PeerError(f"{self.name}: no {kind!r} within {timeout}s\n{self.describe()}")
            time.sleep(0.01)

    def wait_ready(self, timeout: float = 10.0) -> int:
        """Wait for the ``ready`` line; returns (and records) the bound port."""
        ready = self.wait_for_event("ready", timeout)
        self.port = int(ready["port"])
        return self.port

    def wait_bound(self, port: int, timeout: float = 10.0) -> int:
        """Wait until the process holds a UDP socket on ``port`` (for silent programs)."""
        deadline = time.monotonic() + timeout
        while True:
            bound = udp_port_bound_by(self.pid, port)
            if bound is None:  # no /proc: give it a moment and hope
                time.sleep(0.3)
                bound = self.running()
            if bound:
                self.port = port
                return port
            if not self.running():
                raise PeerError(f"{self.name} exited before binding {port}\n{self.describe()}")
            if time.monotonic() >= deadline:
                raise PeerError(
                    f"{self.name}: port {port} not bound in {timeout}s\n{self.describe()}"
                )
            time.sleep(0.01)

    def wait(self, timeout: float) -> int:
        """Wait for it to exit by itself; on timeout stop it and raise PeerError."""
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            message = f"{self.name} still running after {timeout}s\n{self.describe()}"
            raise PeerError(message) from None

    def stop(self, timeout: float = 5.0) -> int:
        """SIGTERM, wait up to ``timeout``, then SIGKILL; returns the exit code. Idempotent."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
        return self.process.returncode

    def result(self) -> dict[str, Any]:
        """Its (last) ``result`` line; PeerError if it printed none."""
        results = self.events("result")
        if not results:
            raise PeerError(f"{self.name} printed no result\n{self.describe()}")
        return results[-1]

    def describe(self, tail: int = 15) -> str:
        """Command line, exit status and the last lines of its output, for failure messages."""

        def last(text: str) -> str:
            lines = text.splitlines()[-tail:]
            return "\n".join("    " + line[:300] for line in lines) or "    (empty)"

        return (
            f"--- {self.name} pid {self.pid} exit {self.returncode}: {shlex.join(self.argv)}\n"
            f"  stdout ({self.stdout_path}):\n{last(self.output())}\n"
            f"  stderr ({self.stderr_path}):\n{last(self.errors())}"
        )


@dataclass
class ClientRun:
    """A client that ran to completion: its exit code, result line and process."""

    process: PeerProcess
    returncode: int
    result: dict[str, Any] | None

    @property
    def ok(self) -> bool:
        """Exit 0 and a result with ``ok: true``."""
        return self.returncode == EXIT_OK and bool(self.result and self.result.get("ok"))

    def describe(self) -> str:
        return self.process.describe()

    def __repr__(self) -> str:
        return f"ClientRun({self.process.name}, returncode={self.returncode}, ok={self.ok})"


class InteropSession:
    """Starts peers for one test and stops every one of them in :meth:`close`.

    Use it as a context manager, or through the ``interop`` fixture (which closes it even
    when the test fails).
    """

    def __init__(
        self,
        log_dir: Path,
        *,
        cert: Path | None = None,
        key: Path | None = None,
        cafile: Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.log_dir = log_dir
        self.cert = cert
        self.key = key
        self.cafile = cafile
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(REPO_ROOT), self.env.get("PYTHONPATH", "")) if p
        )
        self.processes: list[PeerProcess] = []
        log_dir.mkdir(parents=True, exist_ok=True)

    def __enter__(self) -> InteropSession:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def spawn(
        self,
        name: str,
        argv: Sequence[str],
        *,
        cwd: str | os.PathLike[str] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> PeerProcess:
        """Start any command; its stdout/stderr go to files in :attr:`log_dir`."""
        index = len(self.processes)
        stem = f"{index:02d}-{name}"
        stdout_path = self.log_dir / f"{stem}.stdout"
        stderr_path = self.log_dir / f"{stem}.stderr"
        with open(stdout_path, "wb") as out, open(stderr_path, "wb") as err:
            process = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                cwd=cwd,
                env={**self.env, **(env or {})},
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )
        peer = PeerProcess(
            name=name,
            argv=list(argv),
            stdout_path=stdout_path,
            stderr_path=stderr_path,
            process=process,
        )
        self.processes.append(peer)
        return peer

    def spawn_on_free_port(
        self,
        name: str,
        make_argv: Callable[[int], Sequence[str]],
        *,
        host: str = "127.0.0.1",
        attempts: int = 3,
        ready_timeout: float = 10.0,
        cwd: str | os.PathLike[str] | None = None,
    ) -> PeerProcess:
        """Start a server that needs its port up front; retry on a lost race for the port."""
        failure: PeerError | None = None
        for _ in range(attempts):
            port = free_udp_port(host)
            peer = self.spawn(name, make_argv(port), cwd=cwd)
            try:
                peer.wait_bound(port, ready_timeout)
                return peer
            except PeerError as exc:
                failure = exc
                peer.stop()
        assert failure is not None
        raise failure

    # the contract's roles ------------------------------------------------------------

    def server(
        self, impl: str | Implementation, mode: str, *, ready_timeout: float = 15.0, **options: Any
    ) -> PeerProcess:
        """Start ``impl``'s server on port 0 and wait for its ready line (``.port`` is set).

        ``options`` are :func:`server_argv` keywords; cert and key default to the session's.
        """
        impl = implementation(impl) if isinstance(impl, str) else impl
        options.setdefault("cert", self.cert)
        options.setdefault("key", self.key)
        peer = self.spawn(f"{impl.name}-server", [*impl.argv, *server_argv(mode, **options)])
        peer.wait_ready(ready_timeout)
        return peer

    def client(
        self,
        impl: str | Implementation,
        mode: str,
        *,
        timeout: float = 20.0,
        trust: bool = True,
        **options: Any,
    ) -> ClientRun:
        """Run ``impl``'s client to completion and return its result.

        ``options`` are :func:`client_argv` keywords; the session's CA is trusted unless
        ``cafile``/``insecure`` is given or ``trust`` is false. The peer's own hard
        ``--timeout`` is ``timeout``; the harness waits CLIENT_GRACE longer, then kills it.
        """
        impl = implementation(impl) if isinstance(impl, str) else impl
        if trust and "cafile" not in options and not options.get("insecure"):
            options["cafile"] = self.cafile
        peer = self.spawn(
            f"{impl.name}-client", [*impl.argv, *client_argv(mode, timeout=timeout, **options)]
        )
        return self.finish(peer, timeout + CLIENT_GRACE)

    def finish(self, peer: PeerProcess, timeout: float) -> ClientRun:
        """Wait for a started client to exit and collect its result line (if any)."""
        returncode = peer.wait(timeout)
        results = peer.events("result")
        return ClientRun(peer, returncode, results[-1] if results else None)

    def close(self, timeout: float = 5.0) -> None:
        """Stop every process still running (SIGTERM, then SIGKILL), by its PID."""
        for peer in reversed(self.processes):
            peer.stop(timeout)

    def describe(self) -> str:
        return "\n".join(peer.describe() for peer in self.processes)

    def __iter__(self) -> Iterator[PeerProcess]:
        return iter(self.processes)
