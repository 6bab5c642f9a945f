"""When a connection acknowledges (RFC 9000 §13.2): once per batch, every second packet, and
inside data packets when it has data to send.

The handshake runs through the pair driver; then the tests hand datagrams from one
connection to the other themselves, so they control how many arrive before each
``datagrams_to_send``.
"""

from __future__ import annotations

from typing import Any

from trio_zttp.quic._connection import Connection
from trio_zttp.testing import Pair

from .conn_helpers import handshake, make_pair

CLIENT = ("10.0.0.1", 50000)
SERVER = ("10.0.0.2", 4433)


def _connected() -> tuple[Pair, Connection, Connection, float]:
    pair = make_pair("ours", "ours")
    handshake(pair)
    pair.run_for(0.5)  # HANDSHAKE_DONE, tickets and their ACKs settle
    client, server = pair.client, pair.server
    assert isinstance(client, Connection) and isinstance(server, Connection)
    return pair, client, server, pair.now + 0.01


def _data_datagrams(client: Connection, now: float, count: int) -> list[bytes]:
    """``count`` full datagrams of stream data from the client."""
    client.send_stream_data(0, bytes(1100 * count), end_stream=False)
    out = [data for data, _ in client.datagrams_to_send(now)]
    assert len(out) >= count
    return out[:count]


def _in_flight(connection: Any) -> int:
    return int(connection.statistics().bytes_in_flight)


def test_acks_one_ack_only_packet_for_a_batch() -> None:
    _, client, server, now = _connected()
    batch = _data_datagrams(client, now, 8)
    for data in batch:
        server.receive_datagram(data, CLIENT, now)
    answer = server.datagrams_to_send(now)
    assert len(answer) == 1  # one ACK for the whole batch, not one per packet
    assert len(answer[0][0]) < 100
    assert _in_flight(client) > 0
    client.receive_datagram(answer[0][0], SERVER, now + 0.001)
    assert _in_flight(client) == 0  # that one ACK covered all eight packets


def test_acks_every_second_ack_eliciting_packet() -> None:
    _, client, server, now = _connected()
    batch = _data_datagrams(client, now, 6)
    sent = []
    for data in batch:
        server.receive_datagram(data, CLIENT, now)
        sent.append(len(server.datagrams_to_send(now)))
    assert sent == [0, 1, 0, 1, 0, 1]
    # the odd one out is acknowledged within max_ack_delay
    extra = _data_datagrams(client, now, 1)
    server.receive_datagram(extra[0], CLIENT, now)
    assert server.datagrams_to_send(now) == []
    timer = server.get_timer()
    assert timer is not None and timer <= now + 0.025 + 1e-9
    server.handle_timer(timer)
    assert len(server.datagrams_to_send(timer)) == 1


def test_acks_ride_on_data_packets() -> None:
    _, client, server, now = _connected()
    batch = _data_datagrams(client, now, 4)
    for data in batch:
        server.receive_datagram(data, CLIENT, now)
    while server.next_event() is not None:
        pass
    server.send_stream_data(0, b"echo", end_stream=False)  # data going out anyway
    answer = server.datagrams_to_send(now)
    assert len(answer) == 1  # no separate ACK-only packet
    client.receive_datagram(answer[0][0], SERVER, now + 0.001)
    assert _in_flight(client) == 0  # the data packet carried the ACK
    events = []
    while (event := client.next_event()) is not None:
        events.append(event)
    assert any(getattr(e, "data", None) == b"echo" for e in events)
