"""ECN (RFC 9000 §13.4) against a peer nobody here wrote, over real loopback UDP.

ngtcp2 (``gtlsserver`` / ``gtlsclient``) marks its packets ECT(0) with ``IP_TOS``, reads the
codepoint with ``IP_RECVTOS`` and validates ours: both directions must end ``capable``, each
side counting the other's marks.  Our side's view comes from our peer's output
(``transport_record`` in ``peers/ours_peer.py``); ngtcp2's from its qlog, whose ACK frames
carry the ECN counts (``ect0``, ``ect1``, ``ce``) it sent and received.

aioquic does not do ECN (its ACK frames carry no counts): our side must give up marking
(``failed``) without any congestion signal; ``test_h3_interop.py``'s aioquic tests check it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

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


@pytest.fixture
def ours(interop: InteropSession) -> str:
    """Our peer on our own QUIC engine, never a stand-in."""
    interop.env["TRIO_ZTTP_INTEROP_ENGINE"] = "ours-only"
    return "ours"


def our_server(session: InteropSession) -> PeerProcess:
    peer = session.server("ours", "h3")
    assert peer.events("ready")[0]["engine"] == "trio_zttp"
    return peer


def qlog_ack_frames(directory: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """ACK frames in ngtcp2's qlog files (JSON-SEQ): (those it sent, those it received)."""
    sent: list[dict[str, Any]] = []
    received: list[dict[str, Any]] = []
    files = sorted(directory.glob("*.sqlog"))
    assert files, f"no qlog in {directory}"
    for path in files:
        for record in path.read_text().split("\x1e"):
            record = record.strip()
            if not record:
                continue
            try:
                event = json.loads(record)
            except json.JSONDecodeError:
                continue  # a record cut short when the process stopped
            name = str(event.get("name", ""))
            frames = event.get("data", {}).get("frames", [])
            acks = [frame for frame in frames if frame.get("frame_type") == "ack"]
            if name.endswith("packet_sent"):
                sent += acks
            elif name.endswith("packet_received"):
                received += acks
    return sent, received


def test_our_client_validates_ecn_with_gtlsserver(
    interop: InteropSession,
    interop_certs: InteropCertificates,
    gtlsserver: str,
    tmp_path: Path,
    ours: str,
) -> None:
    qlog = tmp_path / "qlog"
    qlog.mkdir()
    server = start_gtlsserver(interop, gtlsserver, key=interop_certs.key,
                              cert=interop_certs.cert, htdocs=tmp_path / "htdocs",
                              qlog_dir=qlog)
    run = interop.client("ours", "h3", url=f"https://localhost:{server.port}/{2 * MB}",
                         expect_sha256=hashlib.sha256(server_body(2 * MB)).hexdigest(),
                         timeout=30)
    assert run.ok, run.describe()
    assert run.result is not None
    transport = run.result["transport"]
    # ngtcp2 validated our marks (its ACK_ECN counts matched them) and marks its own
    assert transport["ecn_state"] == "capable", transport
    assert transport["ecn_failure"] is None
    assert transport["ecn_ect0_sent"] > 10
    assert transport["ecn_ect0_received"] > 1000  # 2 MB of ECT(0) packets from ngtcp2
    assert transport["ecn_ce_received"] == transport["ecn_ce_reported"] == 0
    server.stop()
    sent, received = qlog_ack_frames(qlog)
    # ngtcp2's side: it counted our ECT(0) packets, and read our ACK_ECN counts of its own
    assert max(ack.get("ect0", 0) for ack in sent) > 10
    assert max(ack.get("ect0", 0) for ack in received) > 1000
    assert all(ack.get("ect1", 0) == 0 and ack.get("ce", 0) == 0 for ack in sent + received)


def test_gtlsclient_validates_ecn_with_our_server(
    interop: InteropSession, gtlsclient: str, tmp_path: Path, ours: str
) -> None:
    qlog = tmp_path / "qlog"
    qlog.mkdir()
    peer = our_server(interop)
    uri = f"https://127.0.0.1:{peer.port}/{2 * MB}"
    run = run_gtlsclient(interop, gtlsclient, "127.0.0.1", peer.port, [uri],
                         download=tmp_path / "dl", qlog_dir=qlog)
    assert run.returncode == 0, run.describe()
    assert check_downloads(tmp_path / "dl", {uri: generated_body(2 * MB)}) == []
    assert peer.stop() == EXIT_OK, peer.describe()
    (transport,) = peer.events("transport")
    assert transport["ecn_state"] == "capable", transport
    assert transport["ecn_ect0_sent"] > 1000  # the 2 MB went out marked ECT(0)
    assert transport["ecn_ect0_received"] > 10  # gtlsclient marks too
    assert transport["ecn_ce_received"] == transport["ecn_ce_reported"] == 0
    sent, received = qlog_ack_frames(qlog)
    assert max(ack.get("ect0", 0) for ack in sent) > 1000  # ngtcp2 counted our marks
    assert max(ack.get("ect0", 0) for ack in received) > 10  # and read our counts of its own
