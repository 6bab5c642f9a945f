"""1-RTT key update limits and 0-RTT key retention (RFC 9001 §6.2, §4.9.3).

RFC 9001 §6.2: "If an endpoint detects a second update before it has sent any packets with
updated keys containing an acknowledgment for the packet that initiated the key update, it
indicates that its peer has updated keys twice without awaiting confirmation.  An endpoint MAY
treat such consecutive key updates as a connection error of type KEY_UPDATE_ERROR."  A
conforming client never does this (it waits for an acknowledgement, §6.1), so the client here
is forced to update twice in a row; the datagrams are carried by hand, so whether the server
acknowledged in between is the one thing that differs between the two tests.
"""

from __future__ import annotations

from typing import Any

from tests.quic.conn_helpers import (
    CLEAN,
    client_config,
    events_named,
    handshake,
    ours_client,
    ours_server,
    server_config,
    transfer,
)
from trio_zttp.quic import Connection
from trio_zttp.quic._errors import TransportErrorCode
from trio_zttp.quic._packet import PacketType, iter_coalesced
from trio_zttp.testing import Pair

MAX_ACK_DELAY = 0.025


def _established() -> tuple[Pair, Connection, Connection]:
    pair = Pair(ours_client(client_config()), ours_server(server_config()), link=CLEAN)
    handshake(pair)
    pair.run_for(1.0)  # HANDSHAKE_DONE and the first ACKs settle
    client, server = pair.client, pair.server
    assert isinstance(client, Connection) and isinstance(server, Connection)
    return pair, client, server


def _carry(pair: Pair, sender: Connection, receiver: Connection, now: float) -> int:
    source = pair.address("client" if sender is pair.client else "server")
    datagrams = sender.datagrams_to_send(now)
    for data, _ in datagrams:
        receiver.receive_datagram(data, source, now)
    return len(datagrams)


def _events(conn: Connection) -> list[Any]:
    out = []
    while (event := conn.next_event()) is not None:
        out.append(event)
    return out


def _forced_update(pair: Pair, client: Connection, server: Connection, now: float) -> None:
    """The client moves to the next key phase at once and sends a packet with it."""
    client._update_send_key()  # what request_key_update() would wait for an ACK to do
    client.send_stream_data(0, b"x" * 100)
    assert _carry(pair, client, server, now) >= 1


def test_key_update_twice_without_an_ack_in_between_is_key_update_error() -> None:
    pair, client, server = _established()
    now = pair.now
    _forced_update(pair, client, server, now)
    assert server.statistics().key_updates == 1  # answered the first update
    _events(server)
    _forced_update(pair, client, server, now + 0.001)  # the server has sent nothing since
    closed = events_named(_events(server), "ConnectionTerminated")
    assert closed and closed[0].error_code == TransportErrorCode.KEY_UPDATE_ERROR
    assert not closed[0].by_peer


def test_key_update_twice_with_an_ack_in_between_is_fine() -> None:
    pair, client, server = _established()
    now = pair.now
    _forced_update(pair, client, server, now)
    now += 2 * MAX_ACK_DELAY
    assert _carry(pair, server, client, now) >= 1  # the ACK, with the server's new keys
    _events(server)
    _forced_update(pair, client, server, now)
    assert not events_named(_events(server), "ConnectionTerminated")
    assert server.statistics().key_updates == 2
    pair.run_for(1.0)  # and the connection carries on
    assert not events_named(pair.server_events, "ConnectionTerminated")
    assert not events_named(pair.client_events, "ConnectionTerminated")


# -- 0-RTT keys on the server (RFC 9001 §4.9.3) ------------------------------------------------
# "Servers MAY temporarily retain 0-RTT keys to allow decrypting reordered packets without
# requiring their contents to be retransmitted with 1-RTT keys.  After receiving a 1-RTT packet,
# servers MUST discard 0-RTT keys within a short time; the RECOMMENDED time period is three
# times the Probe Timeout (PTO)."

TICKET_KEY = bytes(range(32))


def _resumed_with_0rtt() -> tuple[Pair, Connection, list[bytes], list[float]]:
    """A resumed connection whose client sent 0-RTT; its 0-RTT datagrams and the times the
    client sent 1-RTT datagrams."""
    config = server_config(ticket_key=TICKET_KEY, enable_early_data=True)
    first = Pair(ours_client(client_config(enable_early_data=True)), ours_server(config),
                 link=CLEAN)
    handshake(first)
    first.run_for(0.1)
    ticket = events_named(first.client_events, "SessionTicketReceived")[0].ticket
    early: list[bytes] = []
    one_rtt: list[float] = []

    def tap(side: Any, datagram: Any) -> None:
        if side != "client":
            return
        for header in iter_coalesced(datagram.data, 8):
            if header.packet_type is PacketType.ZERO_RTT:
                early.append(datagram.data[header.start:header.end])  # the packet alone
            elif header.packet_type is PacketType.ONE_RTT:
                one_rtt.append(datagram.time)

    pair = Pair(ours_client(client_config(session_ticket=ticket, enable_early_data=True,
                                          seed=5)),
                ours_server(config), link=CLEAN, tap=tap)
    pair.connect()
    pair.client.send_stream_data(0, b"early" * 100, end_stream=True)  # type: ignore[attr-defined]
    pair.run_until(lambda: events_named(pair.server_events, "HandshakeCompleted")
                   and bool(one_rtt))
    done = events_named(pair.client_events, "HandshakeCompleted")[0]
    assert done.early_data_accepted and early
    server = pair.server
    assert isinstance(server, Connection)
    return pair, server, early, one_rtt


def test_server_keeps_0rtt_keys_a_little_after_the_first_1rtt_packet() -> None:
    pair, server, early, one_rtt = _resumed_with_0rtt()
    pair.run_until(lambda: server.statistics().packets_received > 0 and pair.in_flight == 0)
    assert pair.now - one_rtt[0] < 3 * 0.02  # well within 3 PTO (PTO > RTT)
    pair.inject("server", early[0])  # a reordered copy: decrypts (a duplicate)
    pair.run_for(0.001)
    assert server.statistics().zero_rtt_dropped == 0


def test_server_discards_0rtt_keys_three_pto_after_the_first_1rtt_packet() -> None:
    pair, server, early, one_rtt = _resumed_with_0rtt()
    pair.run_for(1.0)
    stats = server.statistics()
    pto = stats.smoothed_rtt + max(4 * stats.rttvar, 0.001) + MAX_ACK_DELAY  # RFC 9002 §6.2.1
    assert pair.now > one_rtt[0] + 3 * pto + 0.1
    pair.inject("server", early[0])
    pair.run_for(0.1)
    assert server.statistics().zero_rtt_dropped == 1  # dropped, not an error
    assert not events_named(pair.server_events, "ConnectionTerminated")
    transfer(pair, 10_000)  # the connection is fine
