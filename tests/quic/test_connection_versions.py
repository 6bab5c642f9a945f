"""Retry, NEW_TOKEN, Version Negotiation, QUIC v2, compatible version negotiation (RFC 9368)
and cipher suites, against ours, aioquic and qh3."""

from __future__ import annotations

import pytest

from tests.quic.conn_helpers import (
    CLEAN,
    CLIENTS,
    RetryingServer,
    aioquic_retrying_server,
    client_config,
    events_named,
    handshake,
    make_pair,
    ours_client,
    ours_server,
    server_config,
    transfer,
)
from trio_zttp import quic
from trio_zttp.quic._packet import PacketType, iter_coalesced, parse_header
from trio_zttp.testing import LinkConditions, Pair, WireDatagram

V1, V2 = quic.QUIC_V1, quic.QUIC_V2


def _server_packet_types(sent: list[WireDatagram]) -> list[PacketType | None]:
    return [parse_header(d.data, 0, 8).packet_type for d in sent if d.data[0] & 0x80]


# -- Retry ----------------------------------------------------------------------------------


@pytest.mark.parametrize("client", ["ours", "aioquic", "qh3"])
def test_retry_by_our_server(client: str) -> None:
    sent: list[WireDatagram] = []
    pair = make_pair(client, "ours", link=CLEAN, server_options={"retry": True},
                     tap=lambda side, d: sent.append(d) if side == "server" else None)
    handshake(pair)
    types = _server_packet_types(sent)
    assert types[0] is PacketType.RETRY
    # one per client Initial without a token (qh3 splits its ClientHello over two)
    assert types.count(PacketType.RETRY) == (2 if client == "qh3" else 1)
    assert pair.now == pytest.approx(0.05)  # one round trip more than without Retry
    transfer(pair, 100_000)


@pytest.mark.parametrize("server", ["ours", "aioquic"])
def test_retry_by_an_endpoint_in_front_of_the_connection(server: str) -> None:
    if server == "ours":
        config = server_config()
        shim = RetryingServer(lambda odcid, scid: quic.Connection(
            config, original_destination_connection_id=odcid, retry_source_connection_id=scid))
    else:
        shim = aioquic_retrying_server()
    pair = Pair(ours_client(), shim, link=CLEAN)
    handshake(pair)
    assert shim.retries == 1
    transfer(pair, 100_000)


def test_retry_with_a_lost_first_initial_after_retry() -> None:
    link = LinkConditions(delay=0.01, drop_filter=lambda d, i: i == 1)
    pair = Pair(ours_client(), ours_server(server_config(retry=True)),
                client_to_server=link, server_to_client=CLEAN)
    handshake(pair)


def test_retry_token_is_bound_to_the_client_address() -> None:
    sent: list[WireDatagram] = []
    pair = Pair(ours_client(), ours_server(server_config(retry=True)), link=CLEAN,
                tap=lambda side, d: sent.append(d) if side == "client" else None)
    pair.connect()
    pair.run_for(0.015)  # the Retry is on its way back
    pair.change_address("client", ("10.0.0.7", 50000))
    pair.run_for(1.0)
    assert not events_named(pair.client_events, "HandshakeCompleted")


# -- NEW_TOKEN ------------------------------------------------------------------------------


def test_new_token_validates_the_next_connection() -> None:
    config = server_config(retry=True)
    first = Pair(ours_client(), ours_server(config), link=CLEAN)
    handshake(first)
    first.run_for(0.1)
    tokens = events_named(first.client_events, "NewTokenReceived")
    assert len(tokens) == 1
    sent: list[WireDatagram] = []
    second = Pair(ours_client(client_config(token=tokens[0].token, seed=9)),
                  ours_server(config), link=CLEAN,
                  tap=lambda side, d: sent.append(d) if side == "server" else None)
    handshake(second)
    assert PacketType.RETRY not in _server_packet_types(sent)  # the token skipped the Retry
    assert second.now == pytest.approx(0.03)


def test_new_token_from_another_address_is_ignored() -> None:
    config = server_config(retry=True)
    first = Pair(ours_client(), ours_server(config), link=CLEAN)
    handshake(first)
    first.run_for(0.1)
    token = events_named(first.client_events, "NewTokenReceived")[0].token
    sent: list[WireDatagram] = []
    second = Pair(ours_client(client_config(token=token, seed=9)), ours_server(config),
                  link=CLEAN, client_addr=("10.0.0.99", 1234),
                  tap=lambda side, d: sent.append(d) if side == "server" else None)
    handshake(second)
    assert _server_packet_types(sent)[0] is PacketType.RETRY


# -- versions -------------------------------------------------------------------------------


@pytest.mark.parametrize(("client", "server"), [
    ("ours", "ours"), ("ours", "aioquic"), ("aioquic", "ours"), ("ours", "qh3"), ("qh3", "ours")])
def test_quic_v2_handshake_and_transfer(client: str, server: str) -> None:
    versions = {"ours": {"supported_versions": (V2,)}, "aioquic": {"supported_versions": [V2]},
                "qh3": {"supported_versions": [V2]}}
    sent: list[WireDatagram] = []
    pair = make_pair(client, server, link=CLEAN, client_options=versions[client],
                     server_options=versions[server],
                     tap=lambda side, d: sent.append(d))
    handshake(pair)
    transfer(pair, 200_000)
    long_versions = {int.from_bytes(d.data[1:5], "big") for d in sent if d.data[0] & 0x80}
    assert long_versions == {V2}


@pytest.mark.parametrize("client", ["ours", "aioquic"])
def test_version_negotiation_from_our_server(client: str) -> None:
    options = ({"supported_versions": (V2, V1)} if client == "ours"
               else {"supported_versions": [V2, V1]})
    sent: list[WireDatagram] = []
    pair = Pair(CLIENTS[client](**options),
                ours_server(server_config(supported_versions=(V1,))), link=CLEAN,
                tap=lambda side, d: sent.append(d) if side == "server" else None)
    handshake(pair)
    types = _server_packet_types(sent)
    assert types[0] is PacketType.VERSION_NEGOTIATION
    assert types.count(PacketType.VERSION_NEGOTIATION) == 1
    if client == "ours":
        assert pair.client.version == V1  # type: ignore[attr-defined]
    transfer(pair, 50_000)


def test_version_negotiation_without_a_common_version_ends_the_attempt() -> None:
    pair = Pair(ours_client(client_config(supported_versions=(V2,))),
                ours_server(server_config(supported_versions=(V1,))), link=CLEAN)
    pair.connect()
    pair.run_until(lambda: events_named(pair.client_events, "ConnectionTerminated"))
    end = events_named(pair.client_events, "ConnectionTerminated")[0]
    assert end.error_code == quic.TransportErrorCode.VERSION_NEGOTIATION_ERROR


@pytest.mark.parametrize("server", ["ours", "aioquic"])
def test_compatible_version_negotiation_upgrades_to_v2(server: str) -> None:
    """Client starts in v1 offering v2; a server preferring v2 switches without a round trip."""
    server_options = ({"supported_versions": (V2, V1)} if server == "ours"
                      else {"supported_versions": [V2, V1]})
    sent: list[WireDatagram] = []
    pair = make_pair("ours", server, link=CLEAN,
                     client_options={"supported_versions": (V2, V1), "original_version": V1},
                     server_options=server_options, tap=lambda side, d: sent.append(d))
    handshake(pair)
    assert pair.client.version == V2  # type: ignore[attr-defined]
    assert pair.now == pytest.approx(0.03)  # no extra round trip
    client_versions = [int.from_bytes(d.data[1:5], "big") for d in sent
                       if d.source == ("10.0.0.1", 50000) and d.data[0] & 0x80]
    assert client_versions[0] == V1 and client_versions[-1] == V2
    transfer(pair, 100_000)


def test_compatible_version_negotiation_kept_when_server_prefers_v1() -> None:
    pair = make_pair("ours", "ours", link=CLEAN, client_options={"supported_versions": (V1, V2)},
                     server_options={"supported_versions": (V1, V2)})
    handshake(pair)
    assert pair.client.version == V1  # type: ignore[attr-defined]


# -- cipher suites ----------------------------------------------------------------------------


@pytest.mark.parametrize(("client", "server"), [("ours", "ours"), ("ours", "aioquic"),
                                                ("aioquic", "ours")])
def test_chacha20_only(client: str, server: str) -> None:
    chacha = {"ours": {"cipher_suites": [0x1303]},
              "aioquic": {"cipher_suites": [__import__("aioquic.tls", fromlist=["CipherSuite"]
                                                       ).CipherSuite.CHACHA20_POLY1305_SHA256]}}
    pair = make_pair(client, server, link=LinkConditions(delay=0.01, loss=0.02),
                     client_options=chacha[client], server_options=chacha[server], seed=2)
    handshake(pair)
    transfer(pair, 500_000)
    transfer(pair, 500_000, upload=False)


def test_coalesced_packets_are_all_read() -> None:
    sent: list[WireDatagram] = []
    pair = make_pair("ours", "ours", link=CLEAN,
                     tap=lambda side, d: sent.append(d) if side == "server" else None)
    handshake(pair)
    first = sent[0].data
    types = [h.packet_type for h in iter_coalesced(first, 8)]
    assert types[:2] == [PacketType.INITIAL, PacketType.HANDSHAKE]
