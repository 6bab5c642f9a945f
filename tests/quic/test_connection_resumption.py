"""Session resumption and 0-RTT on both sides, against ours and aioquic."""

from __future__ import annotations

from typing import Any

import pytest

from tests.quic.conn_helpers import (
    CLEAN,
    StreamCollector,
    aioquic_client,
    aioquic_server,
    client_config,
    events_named,
    handshake,
    ours_client,
    ours_server,
    server_config,
    transfer,
)
from trio_zttp.quic._packet import PacketType, iter_coalesced
from trio_zttp.testing import Pair, WireDatagram

TICKET_KEY = bytes(range(32))


def _client_packet_types(sent: list[WireDatagram]) -> set[PacketType]:
    return {h.packet_type for d in sent for h in iter_coalesced(d.data, 8)
            if h.packet_type is not None}


def _first_ticket(server: Any) -> bytes:
    pair = Pair(ours_client(client_config(enable_early_data=True)), server, link=CLEAN)
    handshake(pair)
    pair.run_for(0.1)
    tickets = events_named(pair.client_events, "SessionTicketReceived")
    assert tickets
    return tickets[0].ticket  # type: ignore[no-any-return]


def _early_upload(pair: Pair, data: bytes) -> StreamCollector:
    collector = StreamCollector()
    pair.on_event = collector
    pair.connect()
    pair.client.send_stream_data(0, data, end_stream=True)  # type: ignore[attr-defined]
    pair.run_until(lambda: ("server", 0) in collector.ended
                   and events_named(pair.client_events, "HandshakeCompleted"))
    assert bytes(collector.data["server", 0]) == data
    return collector


@pytest.mark.parametrize("server", ["ours", "aioquic"])
def test_resumption_with_0rtt_from_our_client(server: str) -> None:
    if server == "ours":
        config = server_config(ticket_key=TICKET_KEY, enable_early_data=True)
        factory = ours_server(config)
    else:
        store: dict[bytes, Any] = {}
        factory = aioquic_server(tickets=store)
    ticket = _first_ticket(factory)
    sent: list[WireDatagram] = []
    pair = Pair(ours_client(client_config(session_ticket=ticket, enable_early_data=True, seed=5)),
                factory, link=CLEAN,
                tap=lambda side, d: sent.append(d) if side == "client" else None)
    _early_upload(pair, b"early bird" * 100)
    assert PacketType.ZERO_RTT in _client_packet_types(sent)
    done = events_named(pair.client_events, "HandshakeCompleted")[0]
    assert done.session_resumed and done.early_data_accepted
    # the data came with the first flight: all of it is there after one round trip
    assert pair.now == pytest.approx(0.02)
    transfer(pair, 100_000)


def test_resumption_with_0rtt_from_aioquic_client() -> None:
    config = server_config(ticket_key=TICKET_KEY, enable_early_data=True)
    tickets: list[Any] = []
    first = Pair(aioquic_client(ticket_handler=tickets.append), ours_server(config), link=CLEAN)
    handshake(first)
    first.run_for(0.1)
    assert tickets
    pair = Pair(aioquic_client(session_ticket=tickets[0]), ours_server(config), link=CLEAN)
    _early_upload(pair, b"early" * 300)
    pair.run_until(lambda: events_named(pair.server_events, "HandshakeCompleted"))
    done = events_named(pair.server_events, "HandshakeCompleted")[0]
    assert done.session_resumed and done.early_data_accepted


def test_resumption_without_0rtt() -> None:
    config = server_config(ticket_key=TICKET_KEY)
    ticket = _first_ticket(ours_server(config))
    pair = Pair(ours_client(client_config(session_ticket=ticket, seed=5)), ours_server(config),
                link=CLEAN)
    handshake(pair)
    done = events_named(pair.client_events, "HandshakeCompleted")[0]
    assert done.session_resumed and not done.early_data_accepted


def test_0rtt_rejected_data_goes_again_in_1rtt() -> None:
    ticket = _first_ticket(ours_server(server_config(ticket_key=TICKET_KEY,
                                                     enable_early_data=True)))
    refusing = server_config(ticket_key=TICKET_KEY, enable_early_data=False)
    sent: list[WireDatagram] = []
    pair = Pair(ours_client(client_config(session_ticket=ticket, enable_early_data=True, seed=5)),
                ours_server(refusing), link=CLEAN,
                tap=lambda side, d: sent.append(d) if side == "client" else None)
    _early_upload(pair, b"too early" * 1000)
    assert PacketType.ZERO_RTT in _client_packet_types(sent)
    done = events_named(pair.client_events, "HandshakeCompleted")[0]
    assert done.session_resumed and not done.early_data_accepted


def test_resumption_with_a_ticket_from_another_server_is_a_full_handshake() -> None:
    ticket = _first_ticket(ours_server(server_config(ticket_key=TICKET_KEY)))
    pair = Pair(ours_client(client_config(session_ticket=ticket, enable_early_data=True, seed=5)),
                ours_server(server_config(ticket_key=bytes(32))), link=CLEAN)
    _early_upload(pair, b"data")
    done = events_named(pair.client_events, "HandshakeCompleted")[0]
    assert not done.session_resumed and not done.early_data_accepted
