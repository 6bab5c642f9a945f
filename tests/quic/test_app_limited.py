"""RFC 9002 §7.8 through whole connections: the congestion window grows only when it is used.

"When bytes in flight is smaller than the congestion window and sending is not pacing
limited, the congestion window is underutilized.  This can happen due to insufficient
application data or flow control limits.  When this occurs, the congestion window SHOULD NOT
be increased in either slow start or congestion avoidance."

Two of our connections over the sans-IO pair driver: one small request at a time, a sender
blocked by the peer's flow control, and a bulk transfer, for NewReno and CUBIC.
"""

from __future__ import annotations

from typing import Any

import pytest

from trio_zttp.quic._congestion import initial_window
from trio_zttp.testing import LinkConditions, Pair

from .conn_helpers import StreamCollector, handshake, make_pair

LINK = LinkConditions(delay=0.005, bandwidth=100_000_000)
IW = initial_window(1200)
CONTROLLERS = ["newreno", "cubic"]


def _pair(controller: str, **server_options: Any) -> tuple[Pair, StreamCollector]:
    pair = make_pair("ours", "ours", link=LINK,
                     client_options={"congestion_control": controller},
                     server_options={"congestion_control": controller, **server_options})
    collector = StreamCollector()
    pair.on_event = collector
    handshake(pair)
    pair.run_for(0.2)  # HANDSHAKE_DONE, tickets and their ACKs settle
    return pair, collector


def _cwnd(connection: Any) -> int:
    return int(connection.statistics().congestion_window)


@pytest.mark.parametrize("controller", CONTROLLERS)
def test_app_limited_request_response_does_not_grow_the_window(controller: str) -> None:
    pair, collector = _pair(controller)
    client, server = pair.client, pair.server
    assert _cwnd(client) == IW and _cwnd(server) == IW
    for i in range(60):  # one small request at a time, each answered before the next
        stream_id = 4 * i
        client.send_stream_data(stream_id, b"GET /%d" % i, end_stream=True)  # type: ignore
        pair.run_until(lambda s=stream_id: ("server", s) in collector.ended)  # type: ignore
        server.send_stream_data(stream_id, bytes(3000), end_stream=True)  # type: ignore
        pair.run_until(lambda s=stream_id: ("client", s) in collector.ended)  # type: ignore
    pair.run_for(0.2)
    # 60 round trips of acknowledged packets, none sent with the window in full use
    assert _cwnd(client) == IW
    assert _cwnd(server) == IW


@pytest.mark.parametrize("controller", CONTROLLERS)
def test_app_limited_flow_control_blocked_does_not_grow_the_window(controller: str) -> None:
    # the server never reads and allows 4 kB: the client is stopped by flow control
    pair, collector = _pair(controller, max_data=4000, max_data_limit=4000,
                            consume_on_delivery=False)
    client = pair.client
    client.send_stream_data(0, bytes(100_000), end_stream=True)  # type: ignore[attr-defined]
    pair.run_for(2.0)
    assert len(collector.data["server", 0]) == 4000
    assert client.statistics().bytes_in_flight == 0  # type: ignore[attr-defined]
    assert _cwnd(client) == IW


@pytest.mark.parametrize("controller", CONTROLLERS)
def test_app_limited_bulk_transfer_still_ramps_up(controller: str) -> None:
    pair, collector = _pair(controller)
    client = pair.client
    client.send_stream_data(0, bytes(2_000_000), end_stream=True)  # type: ignore[attr-defined]
    pair.run_until(lambda: ("server", 0) in collector.ended, timeout=30.0)
    assert len(collector.data["server", 0]) == 2_000_000
    # slow start over a clean link: far past the initial window
    assert _cwnd(client) >= 20 * IW
