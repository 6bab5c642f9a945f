"""The interop harness checked with peers nobody here wrote, against each other.

aioquic and qh3 (asyncio programs in ``peers/``) and ngtcp2 (Debian's binaries) talk over
loopback UDP through the same harness our own client and server will use. Each test is bounded
by the peers' hard ``--timeout`` and the harness's wait.
"""

from __future__ import annotations

import hashlib
import os
import socket
import sys
import time
from pathlib import Path

import pytest

from tests.interop.harness import (
    EXIT_CHECK_FAILED,
    EXIT_CONNECTION_FAILED,
    EXIT_OK,
    EXIT_TIMEOUT,
    InteropCertificates,
    InteropSession,
    PeerError,
    available_implementations,
    free_udp_port,
    generated_body,
    peer_pairs,
    pid_exists,
    udp_port_bound_by,
)
from tests.interop.ngtcp2 import (
    check_downloads,
    run_gtlsclient,
    server_body,
    start_gtlsserver,
)

MB = 1_000_000


def pairs(mode: str) -> list[object]:
    # aioquic <-> qh3 both ways today; ours joins the matrix when it exists (README.md)
    return [pytest.param(c, s, id=f"{c}-client-{s}-server") for c, s in peer_pairs(mode)]


CRYPTO_ERRORS = range(0x100, 0x200)  # RFC 9001 §4.8: CRYPTO_ERROR carries the TLS alert


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize(("client", "server"), pairs("echo"))
def test_raw_echo_streams_and_datagrams(interop: InteropSession, client: str, server: str) -> None:
    peer = interop.server(server, "echo")
    run = interop.client(client, "echo", port=peer.port, bytes=MB, streams=2, datagrams=20)
    assert run.returncode == EXIT_OK, run.describe()
    assert run.ok, run.describe()
    result = run.result
    assert result is not None
    assert [s["bytes_received"] for s in result["streams"]] == [MB, MB]
    for stream in result["streams"]:
        assert stream["sha256_received"] == stream["sha256_sent"]
    assert result["datagrams"] == {**result["datagrams"], "sent": 20, "received": 20, "wrong": 0}
    assert result["quic_version"] == "0x00000001"

    assert peer.stop() == EXIT_OK, peer.describe()
    (stats,) = peer.events("stats")
    assert stats["streams"] == 2
    assert stats["stream_bytes"] == 2 * MB
    assert stats["datagrams"] == 20
    assert [c["alpn"] for c in peer.events("connection")] == ["echo"]


@pytest.mark.parametrize(("client", "server"), pairs("h3"))
def test_h3_get_post_and_datagram_pingpong(
    interop: InteropSession, client: str, server: str
) -> None:
    peer = interop.server(server, "h3")
    run = interop.client(
        client,
        "h3",
        url=f"https://127.0.0.1:{peer.port}/{MB}",
        concurrency=2,
        post=100_000,
        pingpong=True,
        h3_datagrams=10,
    )
    assert run.ok, run.describe()
    result = run.result
    assert result is not None
    expected = sha256(generated_body(MB))
    assert [(r["status"], r["bytes"], r["sha256"]) for r in result["requests"]] == [
        (200, MB, expected)
    ] * 2
    assert result["post"]["status"] == 200
    assert result["post"]["bytes"] == 100_000
    assert result["post"]["sha256"] == result["post"]["sha256_sent"]
    pingpong = result["pingpong"]
    assert pingpong["status"] == 200
    assert pingpong["final"] == 10
    assert pingpong["received"][-1] == "10"
    assert pingpong["server_fin"] is True
    assert result["h3_datagrams"]["received"] == 10

    assert peer.stop() == EXIT_OK, peer.describe()
    (stats,) = peer.events("stats")
    assert stats["requests_GET"] == 2
    assert stats["sessions_ping-pong"] == 1
    assert stats["datagrams"] >= 5 + 10  # at least 1,3,5,7,9 and the ten echoes


@pytest.mark.parametrize("server", available_implementations("server", "h3"))
def test_ngtcp2_client_downloads_from_h3_server(
    interop: InteropSession, gtlsclient: str, tmp_path: Path, server: str
) -> None:
    peer = interop.server(server, "h3")
    base = f"https://127.0.0.1:{peer.port}"
    uris = [f"{base}/{MB}", f"{base}/1234", f"{base}/missing"]
    run = run_gtlsclient(
        interop, gtlsclient, "127.0.0.1", peer.port, uris, download=tmp_path / "dl"
    )
    assert run.returncode == 0, run.describe()
    problems = check_downloads(
        tmp_path / "dl",
        {uris[0]: generated_body(MB), uris[1]: generated_body(1234), uris[2]: b"x"},
    )
    # gtlsclient exits 0 whatever the status: the 404 shows only in the file it saved
    assert len(problems) == 1, problems
    assert problems[0].startswith("missing: 0 bytes"), problems

    peer.stop()
    (stats,) = peer.events("stats")
    assert stats["requests_GET"] == 3
    assert stats["get_bytes"] == MB + 1234


def test_ngtcp2_client_with_loss_key_update_and_migration(
    interop: InteropSession, gtlsclient: str, tmp_path: Path
) -> None:
    peer = interop.server("aioquic", "h3")
    uri = f"https://127.0.0.1:{peer.port}/{MB}"
    run = run_gtlsclient(
        interop,
        gtlsclient,
        "127.0.0.1",
        peer.port,
        [uri],
        download=tmp_path / "dl",
        nstreams=3,
        tx_loss=0.02,
        rx_loss=0.02,
        key_update="20ms",
        change_local_addr="40ms",
    )
    assert run.returncode == 0, run.describe()
    assert check_downloads(tmp_path / "dl", {uri: generated_body(MB)}) == []
    peer.stop()
    assert peer.events("stats")[0]["requests_GET"] == 3


@pytest.mark.parametrize("client", available_implementations("client", "h3"))
def test_client_downloads_from_gtlsserver(
    interop: InteropSession,
    interop_certs: InteropCertificates,
    gtlsserver: str,
    tmp_path: Path,
    client: str,
) -> None:
    server = start_gtlsserver(
        interop, gtlsserver, key=interop_certs.key, cert=interop_certs.cert, htdocs=tmp_path
    )
    assert server.port is not None and udp_port_bound_by(server.pid, server.port)
    run = interop.client(
        client,
        "h3",
        url=f"https://localhost:{server.port}/{MB}",
        expect_sha256=sha256(server_body(MB)),
        post=10_000,
        extra=["--post-path", "/missing"],
    )
    # the download checks out; ngtcp2 has no POST echo, so that part fails as it must
    assert run.returncode == EXIT_CHECK_FAILED, run.describe()
    result = run.result
    assert result is not None
    assert [(r["status"], r["bytes"], r["ok"]) for r in result["requests"]] == [(200, MB, True)]
    assert result["post"]["status"] == 404
    assert result["failures"] == ["POST echo failed: status 404"]


@pytest.mark.parametrize(("client", "server"), pairs("echo"))
def test_untrusted_server_certificate_fails_the_handshake(
    interop: InteropSession, interop_certs: InteropCertificates, client: str, server: str
) -> None:
    peer = interop.server(server, "echo")
    run = interop.client(client, "echo", port=peer.port, cafile=interop_certs.other_cafile)
    assert run.returncode == EXIT_CONNECTION_FAILED, run.describe()
    assert run.result is not None and run.result["ok"] is False
    assert run.result["error"].startswith("handshake failed")
    assert run.result["close"]["error_code"] in CRYPTO_ERRORS, run.describe()
    assert peer.events("connection") == []


def test_wrong_content_is_a_failure(interop: InteropSession) -> None:
    peer = interop.server("aioquic", "h3")
    run = interop.client(
        "qh3", "h3", url=f"https://127.0.0.1:{peer.port}/1000", expect_sha256="0" * 64
    )
    assert run.returncode == EXIT_CHECK_FAILED, run.describe()
    assert run.result is not None
    assert run.result["requests"][0]["sha256"] == sha256(generated_body(1000))
    assert run.result["failures"]


def test_quic_v2_is_negotiated_when_asked(interop: InteropSession) -> None:
    peer = interop.server("aioquic", "echo", quic_version=["v1", "v2"])
    run = interop.client("qh3", "echo", port=peer.port, quic_version=["v2", "v1"])
    assert run.ok, run.describe()
    assert run.result is not None and run.result["quic_version"] == "0x6b3343cf"


def test_hard_timeout_ends_a_client_with_no_server(interop: InteropSession) -> None:
    # nothing listens: without the hard timeout aioquic would retry for its 10 s idle timeout
    run = interop.client("aioquic", "echo", port=free_udp_port(), timeout=1.0)
    assert run.returncode == EXIT_TIMEOUT, run.describe()
    assert run.result is not None and run.result["ok"] is False
    assert "timeout" in run.result["error"]


def test_hard_timeout_ends_a_server(interop: InteropSession) -> None:
    peer = interop.server("qh3", "echo", timeout=1.0)
    assert peer.wait(10) == EXIT_TIMEOUT
    assert peer.events("timeout")


def test_stop_terminates_by_pid_and_kills_if_ignored(tmp_path: Path) -> None:
    stubborn = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); " + (
        'print(\'{"event": "ready", "port": 0}\', flush=True); time.sleep(60)'
    )
    with InteropSession(tmp_path) as session:
        server = session.spawn("stub", [sys.executable, "-c", stubborn])
        server.wait_ready()
        started = time.monotonic()
        assert server.stop(timeout=0.5) == -9  # SIGTERM ignored: SIGKILL after the timeout
        assert time.monotonic() - started < 3
        assert not pid_exists(server.pid)


def test_session_cleans_up_when_the_test_fails(
    tmp_path: Path, interop_certs: InteropCertificates
) -> None:
    pids = []
    with pytest.raises(RuntimeError, match="test body failed"):
        with InteropSession(tmp_path, cert=interop_certs.cert, key=interop_certs.key) as session:
            for impl in ("aioquic", "qh3"):
                pids.append(session.server(impl, "h3").pid)
            assert all(pid_exists(pid) for pid in pids)
            raise RuntimeError("test body failed")
    assert pids and not any(pid_exists(pid) for pid in pids)
    # stopped with SIGTERM, each printed its stats and exited cleanly
    assert [p.returncode for p in session] == [EXIT_OK, EXIT_OK]
    assert all(p.events("stats") for p in session)


def test_peer_error_carries_the_log_tail(tmp_path: Path) -> None:
    with InteropSession(tmp_path) as session:
        broken = session.spawn(
            "broken", [sys.executable, "-c", "print('boom'); raise SystemExit(7)"]
        )
        with pytest.raises(PeerError, match=r"(?s)exited before printing 'ready'.*boom"):
            broken.wait_ready(timeout=10)
        assert broken.returncode == 7


def test_free_port_and_bound_detection() -> None:
    port = free_udp_port()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        assert udp_port_bound_by(os.getpid(), port) is False
        sock.bind(("127.0.0.1", port))
        assert udp_port_bound_by(os.getpid(), port) is True
