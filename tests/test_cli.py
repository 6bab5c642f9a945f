"""The command line (``python -m trio_zttp``): demo, serve, get, errors and exit codes.

Over real loopback UDP; the QUIC engine comes from ``$TRIO_ZTTP_QUIC_ENGINE``, set here to
the trio-layer tests' engine (our ``quic.Connection`` once it exists, aioquic's until then).
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

import trio_zttp
from trio_zttp import _cli
from trio_zttp._cli import Exit
from trio_zttp._cli_get import _Progress, human_size
from trio_zttp.testing import CertificateAuthority

ENGINE = "tests.trio_layer._h3_helpers:ENGINE"
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def engine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(_cli.ENGINE_ENV, ENGINE)
    monkeypatch.delenv("SSLKEYLOGFILE", raising=False)


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = _cli.main(list(argv), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def subprocess_env() -> dict[str, str]:
    env = {**os.environ, _cli.ENGINE_ENV: ENGINE, "PYTHONUNBUFFERED": "1"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    return env


class Server:
    """``serve_h3`` with the demo site in a thread of its own (its own trio.run)."""

    def __init__(self, directory: Path, site_root: Path | None = None) -> None:
        from trio_zttp._cli_serve import server_configuration
        from trio_zttp._cli_site import Site

        self.ca = CertificateAuthority.create()
        leaf = self.ca.issue(["localhost", "127.0.0.1"])
        self.cafile = directory / "ca.pem"
        self.ca.write_pem(self.cafile)
        self._configuration = server_configuration(leaf.chain, leaf.private_key)
        self._site = Site(site_root)
        self._ready = threading.Event()
        self._token: trio.lowlevel.TrioToken | None = None
        self._scope: trio.CancelScope | None = None
        self.port = 0
        self._thread = threading.Thread(target=trio.run, args=(self._main,), daemon=True)

    async def _main(self) -> None:
        self._token = trio.lowlevel.current_trio_token()
        with trio.CancelScope() as self._scope:
            async with trio.open_nursery() as nursery:
                endpoint = await nursery.start(
                    lambda task_status: trio_zttp.serve_h3(
                        self._site, "127.0.0.1", 0, self._configuration,
                        connection_factory=_cli.engine_factory(), task_status=task_status,
                    )
                )
                self.port = endpoint.local_address[1]
                self._ready.set()

    def __enter__(self) -> Server:
        self._thread.start()
        assert self._ready.wait(10), "server did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._token is not None and self._scope is not None
        trio.from_thread.run_sync(self._scope.cancel, trio_token=self._token)
        self._thread.join(10)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    with Server(tmp_path) as running:
        yield running


def test_demo_shows_a_request_and_a_datagram_pingpong() -> None:
    code, out, err = run("demo", "--rounds", "6")
    assert code == Exit.OK, err
    assert "GET /hello -> 200" in out
    assert "h3_datagram=1, enable_connect_protocol=1" in out
    assert re.findall(r"(client|server) -> (\d+)", out) == [
        ("client", "1"), ("server", "2"), ("client", "3"), ("server", "4"), ("client", "5"),
        ("server", "6"),
    ]
    assert "ping-pong reached 6" in out
    assert out.rstrip().endswith("done")


def test_get_downloads_to_a_file_with_a_summary(server: Server, tmp_path: Path) -> None:
    target = tmp_path / "body.bin"
    code, out, err = run(
        "get", "--cafile", str(server.cafile), "-o", str(target),
        f"https://localhost:{server.port}/bytes/300000",
    )
    assert code == Exit.OK, err
    data = target.read_bytes()
    assert len(data) == 300_000
    from trio_zttp._cli_site import generated

    assert data == generated(300_000)
    assert re.search(r"^200 · 300\.0 kB in [\d.]+ s .* handshake [\d.]+ ms · first byte", err)
    assert out == ""


def test_get_prints_headers_and_body_to_stdout(server: Server) -> None:
    code, out, err = run(
        "get", "-i", "-q", "--cafile", str(server.cafile), "-H", "X-Probe: 42",
        f"https://localhost:{server.port}/headers",
    )
    assert code == Exit.OK, err
    head, _, body = out.partition("\n\n")
    assert head.splitlines()[0] == "HTTP/3 200"
    assert "content-type: text/plain; charset=utf-8" in head
    assert ":method: GET" in body and "x-probe: 42" in body
    assert err == ""


def test_get_posts_data(server: Server) -> None:
    code, out, err = run(
        "get", "-q", "--cafile", str(server.cafile), "-d", "posted body",
        f"https://localhost:{server.port}/echo",
    )
    assert (code, out) == (Exit.OK, "posted body"), err


def test_get_writes_qlog_and_key_log(server: Server, tmp_path: Path) -> None:
    keys = tmp_path / "keys.log"
    code, out, err = run(
        "get", "-q", "--cafile", str(server.cafile), "--secrets-log", str(keys),
        "--qlog-dir", str(tmp_path / "qlog"), f"https://localhost:{server.port}/hello",
    )
    assert code == Exit.OK, err
    labels = {line.split()[0] for line in keys.read_text().splitlines()}
    assert {"CLIENT_HANDSHAKE_TRAFFIC_SECRET", "CLIENT_TRAFFIC_SECRET_0"} <= labels
    (trace,) = (tmp_path / "qlog").glob("*-client.sqlog")
    first = trace.read_text().split("\x1e")[1]
    assert '"vantage_point":{"type":"client"' in first


def test_get_http_error_status_exit_code(server: Server) -> None:
    code, out, err = run(
        "get", "-q", "--cafile", str(server.cafile), f"https://localhost:{server.port}/missing"
    )
    assert (code, out) == (Exit.HTTP_ERROR, "not found\n")


def test_get_untrusted_certificate(server: Server) -> None:
    code, out, err = run("get", f"https://localhost:{server.port}/hello")
    assert code == Exit.CERTIFICATE
    assert out == ""
    lines = [line for line in err.splitlines() if line.startswith("trio-zttp:")]
    assert len(lines) == 1 and "not trusted" in lines[0] and "--cafile" in lines[0]


def test_get_insecure_skips_verification(server: Server) -> None:
    code, out, err = run("get", "-k", "-q", f"https://localhost:{server.port}/hello")
    assert (code, out) == (Exit.OK, "Hello from trio_zttp over HTTP/3!\n"), err


def test_get_timeout_when_nothing_answers() -> None:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:  # bound, never answers
        silent.bind(("127.0.0.1", 0))
        port = silent.getsockname()[1]
        code, out, err = run("get", "-k", "--timeout", "0.5", f"https://127.0.0.1:{port}/")
    assert code == Exit.TIMEOUT
    assert err.startswith("trio-zttp: timed out after 0.5 s waiting for the handshake")
    assert len(err.splitlines()) == 1


def test_get_unresolvable_host() -> None:
    code, out, err = run("get", "-k", "--timeout", "3", "https://no-such-host.invalid/")
    assert code in (Exit.UNREACHABLE, Exit.TIMEOUT)  # no DNS at all ends in the timeout
    assert len(err.splitlines()) == 1 and "no-such-host.invalid" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["get", "http://example.com/"], "not an https:// URL"),
        (["get", "-H", "no colon", "https://localhost/"], "not a header"),
        (["serve", "/does/not/exist"], "not a directory"),
        (["serve", "--cert", "x.pem"], "--cert and --key go together"),
    ],
)
def test_usage_errors(argv: list[str], message: str) -> None:
    code, out, err = run(*argv)
    assert code == Exit.USAGE
    assert message in err


def test_describe_failure_maps_errors_to_exit_codes() -> None:
    closed = trio_zttp.ConnectionClosedError
    cases = [
        (closed(error_code=0x100 + 48, reason="unknown ca", by_peer=False), False,
         Exit.CERTIFICATE),
        (closed(error_code=0x100 + 42, reason="", by_peer=True), False, Exit.CERTIFICATE),
        (closed(error_code=0x100 + 120, reason="no ALPN", by_peer=True), False,
         Exit.HANDSHAKE_REFUSED),
        (closed(error_code=0x1, reason="Idle timeout", by_peer=True), False, Exit.TIMEOUT),
        (closed(error_code=0x102, reason="", by_peer=True, application=True), True,
         Exit.CONNECTION_LOST),
        (trio_zttp.StreamResetError(stream_id=0, error_code=0x10C), True, Exit.CONNECTION_LOST),
        (OSError(101, "Network is unreachable"), False, Exit.UNREACHABLE),
    ]
    for exc, done, expected in cases:
        code, message = _cli.describe_failure(exc, handshake_done=done, target="h:1")
        assert code == expected, (exc, message)
        assert "\n" not in message and "h:1" in message
    # an application close code that happens to look like a CRYPTO_ERROR is not one
    app = closed(error_code=0x12A, reason="", by_peer=True, application=True)
    assert _cli.describe_failure(app, handshake_done=True, target="h")[0] == Exit.CONNECTION_LOST
    unreachable = closed(error_code=1, reason="internal error: OSError", by_peer=False)
    unreachable.__cause__ = OSError(101, "Network is unreachable")
    assert _cli.describe_failure(unreachable, handshake_done=False, target="h")[0] == (
        Exit.UNREACHABLE
    )


def test_progress_bar_draws_on_a_terminal_only() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    progress = _Progress(terminal, 1000, enabled=terminal.isatty())
    progress.update(500)
    assert "[###############" in terminal.getvalue() and "50%" in terminal.getvalue()
    progress.finish()
    assert terminal.getvalue().endswith("\r")
    quiet = io.StringIO()
    progress = _Progress(quiet, None, enabled=quiet.isatty())
    progress.update(10)
    progress.finish()
    assert quiet.getvalue() == ""
    assert [human_size(n) for n in (999, 1000, 1_234_567, 5e9)] == [
        "999 B", "1.0 kB", "1.2 MB", "5.0 GB"
    ]


def test_python_m_serve_then_get_then_sigterm(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("<h1>hi</h1>\n")
    (site / "data.bin").write_bytes(os.urandom(200_000))
    process = subprocess.Popen(
        [sys.executable, "-m", "trio_zttp", "serve", str(site), "--port", "0",
         "--cert-dir", str(tmp_path / "certs")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=subprocess_env(),
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        match = re.search(r"UDP 127\.0\.0\.1:(\d+)", first)
        assert match, first + (process.stderr.read() if process.stderr else "")
        port = match.group(1)
        cafile = str(tmp_path / "certs" / "ca.pem")
        code, out, err = run("get", "-q", "--cafile", cafile, f"https://localhost:{port}/")
        assert (code, out) == (Exit.OK, "<h1>hi</h1>\n"), err
        target = tmp_path / "copy.bin"
        code, _, err = run("get", "--cafile", cafile, "-o", str(target),
                           f"https://localhost:{port}/data.bin")
        assert code == Exit.OK, err
        assert hashlib.sha256(target.read_bytes()).digest() == hashlib.sha256(
            (site / "data.bin").read_bytes()).digest()
    finally:
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=15)
    assert process.returncode == 0, stderr
    assert "GET /data.bin -> 200 (200000 bytes" in stdout
    assert "shutting down" in stdout


def test_python_m_trio_zttp_demo_and_help() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "trio_zttp", "demo"], capture_output=True, text=True,
        env=subprocess_env(), timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "ping-pong reached 10" in result.stdout
    result = subprocess.run(
        [sys.executable, "-m", "trio_zttp", "--help"], capture_output=True, text=True,
        env=subprocess_env(), timeout=60,
    )
    assert result.returncode == 0
    assert "serve" in result.stdout and "exit codes: 0 ok" in result.stdout
