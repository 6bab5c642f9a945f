"""Unreliable DATAGRAM frames (RFC 9221), against ours, aioquic and qh3."""

from __future__ import annotations

import pytest

from tests.quic.conn_helpers import (
    CLEAN,
    LOSSY,
    events_named,
    handshake,
    make_pair,
)
from trio_zttp import quic
from trio_zttp.testing import Pair

ON = {"max_datagram_frame_size": 65536}
ROLES = [("ours", "ours"), ("ours", "aioquic"), ("aioquic", "ours"), ("ours", "qh3"),
         ("qh3", "ours")]


def _pair(client: str, server: str, **options: object) -> Pair:
    pair = make_pair(client, server, client_options=ON, server_options=ON, **options)  # type: ignore
    handshake(pair)
    return pair


@pytest.mark.parametrize(("client", "server"), ROLES)
def test_datagrams_each_way(client: str, server: str) -> None:
    pair = _pair(client, server, link=CLEAN)
    pair.client.send_datagram_frame(b"ping")  # type: ignore[attr-defined]
    pair.server.send_datagram_frame(b"pong" * 100)  # type: ignore[attr-defined]
    pair.run_until(lambda: events_named(pair.server_events, "DatagramFrameReceived")
                   and events_named(pair.client_events, "DatagramFrameReceived"))
    assert events_named(pair.server_events, "DatagramFrameReceived")[0].data == b"ping"
    assert events_named(pair.client_events, "DatagramFrameReceived")[0].data == b"pong" * 100


def test_datagrams_many_alongside_a_stream() -> None:
    pair = _pair("ours", "ours", link=CLEAN)
    client = pair.client
    client.send_stream_data(0, b"s" * 200_000, end_stream=True)  # type: ignore[attr-defined]
    for i in range(300):
        client.send_datagram_frame(i.to_bytes(2, "big") * 50)  # type: ignore[attr-defined]
    pair.run_for(2.0)
    got = [e.data for e in events_named(pair.server_events, "DatagramFrameReceived")]
    # 256 queue at most: the 44 oldest were dropped, the rest arrive in order
    assert got == [i.to_bytes(2, "big") * 50 for i in range(44, 300)]
    assert pair.client.statistics().datagrams_dropped == 44  # type: ignore[attr-defined]


def test_datagrams_are_not_retransmitted() -> None:
    pair = _pair("ours", "ours", link=LOSSY, seed=3)
    for i in range(200):
        pair.client.send_datagram_frame(bytes([i]) * 20)  # type: ignore[attr-defined]
        pair.run_for(0.01)
    pair.run_for(2.0)
    got = events_named(pair.server_events, "DatagramFrameReceived")
    assert 150 <= len(got) < 200  # about 5% lost, never resent
    assert len({e.data for e in got}) == len(got)


def test_datagrams_too_large_for_the_peer_raises() -> None:
    pair = make_pair("ours", "ours", link=CLEAN, client_options=ON,
                     server_options={"max_datagram_frame_size": 100})
    handshake(pair)
    with pytest.raises(ValueError):
        pair.client.send_datagram_frame(b"x" * 200)  # type: ignore[attr-defined]
    pair.client.send_datagram_frame(b"x" * 90)  # type: ignore[attr-defined]


def test_datagrams_refused_when_the_peer_did_not_offer_them() -> None:
    pair = make_pair("ours", "ours", link=CLEAN, client_options=ON)
    handshake(pair)
    with pytest.raises(quic.QuicError):
        pair.client.send_datagram_frame(b"x")  # type: ignore[attr-defined]


def test_datagrams_larger_than_the_path_are_dropped_and_counted() -> None:
    pair = _pair("ours", "ours", link=CLEAN)
    pair.client.send_datagram_frame(b"x" * 5000)  # type: ignore[attr-defined]
    pair.client.send_datagram_frame(b"small")  # type: ignore[attr-defined]
    pair.run_until(lambda: events_named(pair.server_events, "DatagramFrameReceived"))
    assert [e.data for e in events_named(pair.server_events, "DatagramFrameReceived")] == [
        b"small"]
    assert pair.client.statistics().datagrams_dropped == 1  # type: ignore[attr-defined]
