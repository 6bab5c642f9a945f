"""qlog output (JSON-SEQ, the qvis event schema) and ``Connection.statistics()``."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from tests.quic.conn_helpers import (
    CLEAN,
    LOSSY,
    client_config,
    handshake,
    ours_client,
    ours_server,
    server_config,
    transfer,
)
from trio_zttp import quic
from trio_zttp.testing import Pair


def _records(text: str) -> list[dict[str, Any]]:
    chunks = text.split("\x1e")
    assert chunks[0] == ""
    assert all(chunk.endswith("\n") for chunk in chunks[1:])
    return [json.loads(chunk) for chunk in chunks[1:]]


def test_qlog_trace_of_a_connection() -> None:
    client_log, server_log = io.StringIO(), io.StringIO()
    pair = Pair(ours_client(client_config(qlog=quic.QlogTracer(client_log))),
                ours_server(server_config(qlog=lambda odcid, is_client: quic.QlogTracer(
                    server_log, title=odcid.hex()))), link=LOSSY, seed=4)
    handshake(pair)
    transfer(pair, 300_000)
    transfer(pair, 300_000, upload=False)
    pair.client.close(error_code=5)  # type: ignore[attr-defined]
    pair.run_for(1.0)
    for log, vantage in ((client_log, "client"), (server_log, "server")):
        header, *events = _records(log.getvalue())
        assert header["qlog_format"] == "JSON-SEQ"
        assert header["trace"]["vantage_point"]["type"] == vantage
        names = [e["name"] for e in events]
        for expected in ("connectivity:connection_started", "transport:packet_sent",
                         "transport:packet_received", "recovery:metrics_updated",
                         "security:key_updated", "recovery:packet_lost",
                         "transport:connection_closed"):
            assert expected in names, (vantage, expected)
        times = [e["time"] for e in events]
        assert times == sorted(times)
        sent = [e for e in events if e["name"] == "transport:packet_sent"]
        kinds = {f["frame_type"] for e in sent for f in e["data"]["frames"]}
        assert {"ack", "crypto"} <= kinds
    client_events = _records(client_log.getvalue())[1:]
    streams = [f for e in client_events if e["name"] == "transport:packet_sent"
               for f in e["data"]["frames"] if f["frame_type"] == "stream"]
    assert sum(f["length"] for f in streams) >= 300_000


def test_statistics_agree_between_the_two_ends() -> None:
    pair = Pair(ours_client(), ours_server(), link=CLEAN)
    handshake(pair)
    transfer(pair, 500_000)
    pair.run_for(1.0)
    client = pair.client.statistics()  # type: ignore[attr-defined]
    server = pair.server.statistics()  # type: ignore[attr-defined]
    assert client.packets_sent == server.packets_received
    assert server.packets_sent == client.packets_received
    assert client.bytes_sent == server.bytes_received
    assert client.packets_lost == 0
    assert abs(client.smoothed_rtt - 0.02) < 0.005
    assert client.min_rtt == pytest.approx(0.02)
    assert client.congestion_window > 12_000  # grew from the initial window
    assert client.bytes_in_flight == 0
    assert client.peer_address == ("10.0.0.2", 4433)
    assert client.bytes_sent > 500_000


def test_statistics_count_losses() -> None:
    pair = Pair(ours_client(), ours_server(), link=LOSSY, seed=8)
    handshake(pair)
    transfer(pair, 500_000)
    stats = pair.client.statistics()  # type: ignore[attr-defined]
    assert stats.packets_lost > 0
    assert stats.packets_sent > 430  # 500 kB plus retransmissions
