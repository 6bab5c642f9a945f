"""Our HTTP/3 (serve_h3 / open_h3_connection, through ``peers/ours_peer.py``) against peers
nobody here wrote: ngtcp2's ``gtlsclient`` / ``gtlsserver`` and aioquic, both directions.

Issue 7's "Must show": ngtcp2 downloads 10 MB bodies from our server and we from ngtcp2's,
several at once, with ngtcp2's packet loss, key update and client address change; aioquic
client and server both ways with GET/POST of 5 MB, extended CONNECT and the HTTP-datagram
ping-pong.

Our peer runs on our own ``quic.Connection`` (``TRIO_ZTTP_INTEROP_ENGINE=ours-only``: it
refuses to fall back to aioquic's engine).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.interop.harness import (
    EXIT_OK,
    InteropCertificates,
    InteropSession,
    PeerProcess,
    generated_body,
)
from tests.interop.ngtcp2 import check_downloads, run_gtlsclient, server_body, start_gtlsserver

MB = 1_000_000
ENGINE_ENV = "TRIO_ZTTP_INTEROP_ENGINE"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def ours(interop: InteropSession) -> str:
    """Our peer on our own QUIC engine, never a stand-in."""
    interop.env[ENGINE_ENV] = "ours-only"
    return "ours"


def our_server(session: InteropSession, **options: object) -> PeerProcess:
    peer = session.server("ours", "h3", **options)  # type: ignore[arg-type]
    assert peer.events("ready")[0]["engine"] == "trio_zttp"
    return peer


def test_ngtcp2_client_downloads_from_our_server_with_loss_key_update_and_migration(
    interop: InteropSession, gtlsclient: str, tmp_path: Path, ours: str
) -> None:
    peer = our_server(interop)
    uri = f"https://127.0.0.1:{peer.port}/{10 * MB}"
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
        key_update="50ms",
        change_local_addr="100ms",
        timeout=60.0,  # 30 MB through 2% loss each way: ~5 s here, much more on a busy machine
    )
    assert run.returncode == 0, run.describe()
    assert check_downloads(tmp_path / "dl", {uri: generated_body(10 * MB)}) == []
    assert peer.stop() == EXIT_OK, peer.describe()
    (stats,) = peer.events("stats")
    assert stats["requests_GET"] == 3
    assert stats["get_bytes"] == 30 * MB


def test_our_client_downloads_from_gtlsserver_with_loss(
    interop: InteropSession,
    interop_certs: InteropCertificates,
    gtlsserver: str,
    tmp_path: Path,
    ours: str,
) -> None:
    server = start_gtlsserver(
        interop,
        gtlsserver,
        key=interop_certs.key,
        cert=interop_certs.cert,
        htdocs=tmp_path,
        tx_loss=0.02,
        rx_loss=0.02,
    )
    run = interop.client(
        "ours",
        "h3",
        url=f"https://localhost:{server.port}/{10 * MB}",
        concurrency=3,
        expect_sha256=sha256(server_body(10 * MB)),
        timeout=60,
    )
    assert run.ok, run.describe()
    assert run.result is not None
    assert [(r["status"], r["bytes"], r["ok"]) for r in run.result["requests"]] == [
        (200, 10 * MB, True)
    ] * 3


def _check_h3_result(result: dict[str, object]) -> None:
    requests = result["requests"]
    assert isinstance(requests, list)
    expected = sha256(generated_body(5 * MB))
    assert [(r["status"], r["bytes"], r["sha256"]) for r in requests] == [
        (200, 5 * MB, expected)
    ] * 2
    post = result["post"]
    assert isinstance(post, dict)
    assert (post["status"], post["bytes"]) == (200, 5 * MB)
    assert post["sha256"] == post["sha256_sent"]
    pingpong = result["pingpong"]
    assert isinstance(pingpong, dict)
    assert (pingpong["status"], pingpong["final"], pingpong["server_fin"]) == (200, 10, True)
    datagrams = result["h3_datagrams"]
    assert isinstance(datagrams, dict)
    assert datagrams["received"] == datagrams["sent"] == 20


def _check_ecn_failed_harmlessly(transport: dict[str, object]) -> None:
    """aioquic neither reads nor reports ECN: our marks go unanswered, so we stop marking,
    and nothing counts as congestion (test_ecn_interop.py has the ECN-capable peer)."""
    assert transport["ecn_state"] == "failed", transport
    assert "without ECN counts" in str(transport["ecn_failure"])
    assert transport["ecn_ce_reported"] == 0
    assert transport["ecn_ect0_received"] == transport["ecn_ce_received"] == 0
    sent = transport["ecn_ect0_sent"]
    assert isinstance(sent, int) and 0 < sent < 50  # the testing period, then no more marks


def test_aioquic_client_against_our_server(interop: InteropSession, ours: str) -> None:
    peer = our_server(interop)
    run = interop.client(
        "aioquic",
        "h3",
        url=f"https://127.0.0.1:{peer.port}/{5 * MB}",
        concurrency=2,
        post=5 * MB,
        pingpong=True,
        h3_datagrams=20,
        timeout=60,
    )
    assert run.ok, run.describe()
    assert run.result is not None
    _check_h3_result(run.result)
    assert peer.stop() == EXIT_OK, peer.describe()
    (stats,) = peer.events("stats")
    assert stats["requests_GET"] == 2 and stats["requests_POST"] == 1
    assert stats["requests_CONNECT"] == 2
    assert stats["sessions_ping-pong"] == 1 and stats["sessions_echo"] == 1
    assert stats["datagrams"] >= 5 + 20  # 1, 3, 5, 7, 9 and the twenty echoes
    assert stats["post_bytes"] == 5 * MB
    (transport,) = peer.events("transport")
    _check_ecn_failed_harmlessly(transport)


def test_our_client_against_aioquic_server(interop: InteropSession, ours: str) -> None:
    peer = interop.server("aioquic", "h3")
    run = interop.client(
        "ours",
        "h3",
        url=f"https://127.0.0.1:{peer.port}/{5 * MB}",
        concurrency=2,
        post=5 * MB,
        pingpong=True,
        h3_datagrams=20,
        timeout=60,
    )
    assert run.ok, run.describe()
    assert run.result is not None
    _check_h3_result(run.result)
    _check_ecn_failed_harmlessly(run.result["transport"])
    settings = run.result["peer_settings"]
    assert settings["8"] == 1 and settings["51"] == 1  # extended CONNECT, HTTP datagrams
    assert peer.stop() == EXIT_OK, peer.describe()
    (stats,) = peer.events("stats")
    assert stats["sessions_ping-pong"] == 1
    assert stats["datagrams"] >= 5 + 20


def test_our_server_refuses_connect_without_h3_datagram(
    interop: InteropSession, ours: str
) -> None:
    """A client without SETTINGS_H3_DATAGRAM gets 400 for the ping-pong (our handler asks
    ``connection.peer_settings`` after ``received_settings()``)."""
    peer = our_server(interop)
    run = interop.client(
        "aioquic",
        "h3",
        url=f"https://127.0.0.1:{peer.port}/10",
        pingpong=True,
        max_datagram_frame_size=0,
    )
    assert run.result is not None
    assert not run.ok
    assert run.result["pingpong"]["status"] == 400, run.describe()
    assert run.result["requests"][0]["status"] == 200  # the rest of the connection is fine
