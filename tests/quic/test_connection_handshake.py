"""Handshakes of ``quic.Connection``: ours against ours, aioquic and qh3, both roles."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from tests.quic.conn_helpers import (
    CLEAN,
    CLIENTS,
    ca,
    events_named,
    handshake,
    make_pair,
    ours_client,
    ours_server,
    server_config,
)
from trio_zttp.quic._packet import PacketType, iter_coalesced
from trio_zttp.testing import KeyType, LinkConditions, Pair, WireDatagram

PEERS = [("ours", "ours"), ("ours", "aioquic"), ("aioquic", "ours"), ("ours", "qh3"),
         ("qh3", "ours")]


@pytest.mark.parametrize(("client", "server"), PEERS)
def test_handshake_completes_in_one_round_trip(client: str, server: str) -> None:
    pair = make_pair(client, server, link=CLEAN)
    pair.connect()
    pair.run_until(lambda: events_named(pair.client_events, "HandshakeCompleted"))
    # 1 RTT for the handshake, on a 10 ms one-way link
    assert pair.now == pytest.approx(0.02)
    pair.run_until(lambda: events_named(pair.server_events, "HandshakeCompleted"))
    completed = events_named(pair.client_events, "HandshakeCompleted")[0]
    assert completed.alpn_protocol == "hq-test"
    assert not completed.session_resumed


def _long_types(datagram: bytes) -> list[PacketType]:
    return [h.packet_type for h in iter_coalesced(datagram, 8) if h.packet_type is not None]


@pytest.mark.parametrize("server", ["ours", "aioquic"])
def test_handshake_client_initials_are_padded(server: str) -> None:
    sent: list[WireDatagram] = []
    pair = make_pair("ours", server, link=CLEAN,
                     tap=lambda side, d: sent.append(d) if side == "client" else None)
    handshake(pair)
    initials = [d for d in sent if PacketType.INITIAL in _long_types(d.data)]
    assert initials
    assert all(len(d.data) >= 1200 for d in initials)


@pytest.mark.parametrize("client", ["ours", "aioquic"])
def test_handshake_server_pads_ack_eliciting_initials(client: str) -> None:
    sent: list[WireDatagram] = []
    pair = make_pair(client, "ours", link=CLEAN,
                     tap=lambda side, d: sent.append(d) if side == "server" else None)
    handshake(pair)
    first = sent[0].data
    assert PacketType.INITIAL in _long_types(first)
    assert len(first) >= 1200


@pytest.mark.parametrize("client", ["ours", "aioquic"])
def test_handshake_server_respects_amplification_limit(client: str) -> None:
    """Only the client's first datagram gets through: the server may send 3x its size."""
    received = 0
    sent = 0

    def tap(side: object, datagram: WireDatagram) -> None:
        nonlocal sent
        if side == "server":
            sent += len(datagram.data)

    def drop(datagram: bytes, index: int) -> bool:
        nonlocal received
        if index == 0:
            received += len(datagram)
            return False
        return True

    pair = make_pair(client, "ours", client_to_server=LinkConditions(delay=0.01, drop_filter=drop),
                     server_to_client=CLEAN, tap=tap)
    pair.connect()
    pair.run_for(5.0)
    assert received >= 1200
    assert 0 < sent <= 3 * received


@pytest.mark.parametrize("client", ["ours", "aioquic"])
def test_handshake_with_a_chain_beyond_the_amplification_limit(client: str) -> None:
    """A chain larger than 3x the client's Initial: the server waits for the client's ACKs."""
    authority = ca()
    for _ in range(5):
        authority = authority.intermediate(key_type=KeyType.RSA_2048)
    issued = authority.issue(["localhost"], key_type=KeyType.RSA_2048)
    assert sum(len(c.public_bytes(Encoding.DER)) for c in issued.chain) > 3600
    sent = received = 0

    def tap(side: object, datagram: WireDatagram) -> None:
        nonlocal sent, received
        if side == "server":
            sent += len(datagram.data)
            assert sent <= 3 * received or pair.server._paths.current.validated  # type: ignore
        elif side == "client":
            received += len(datagram.data)

    server = ours_server(server_config(certificate_chain=issued.chain,
                                       private_key=issued.private_key))
    pair = Pair(CLIENTS[client](), server, link=CLEAN, tap=tap)
    handshake(pair)
    assert pair.now < 0.2


@pytest.mark.parametrize(("client", "server"), PEERS[:3])
def test_handshake_survives_lost_handshake_packets(client: str, server: str) -> None:
    # drop the first two datagrams each way: the Initials and the first Handshake flight
    link = LinkConditions(delay=0.01, drop_filter=lambda d, i: i < 2)
    pair = make_pair(client, server, link=link)
    handshake(pair)
    assert events_named(pair.client_events, "HandshakeCompleted")


@pytest.mark.parametrize(("client", "server"), PEERS[:3])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_handshake_over_a_hostile_link(client: str, server: str, seed: int) -> None:
    link = LinkConditions(delay=0.01, loss=0.2, reorder=0.1, duplicate=0.05, corrupt=0.02)
    pair = make_pair(client, server, link=link, seed=seed)
    handshake(pair, timeout=60.0)


def test_handshake_discards_initial_and_handshake_keys() -> None:
    sent: list[tuple[str, bytes]] = []
    pair = make_pair("ours", "ours", link=CLEAN,
                     tap=lambda side, d: sent.append((str(side), d.data)))
    handshake(pair)
    pair.run_for(0.1)
    sent.clear()
    client = pair.client
    client.send_stream_data(0, b"x" * 5000, end_stream=True)  # type: ignore[attr-defined]
    pair.run_for(1.0)
    assert sent
    for _side, data in sent:
        assert not data[0] & 0x80, "a long header packet after the handshake was confirmed"


def test_handshake_fails_with_unknown_ca() -> None:
    from tests.quic.conn_helpers import client_config

    other = __import__("trio_zttp.testing", fromlist=["CertificateAuthority"]
                       ).CertificateAuthority.create()
    pair = Pair(ours_client(client_config(cadata=other.pem)), ours_server(), link=CLEAN)
    pair.connect()
    pair.run_until(lambda: events_named(pair.client_events, "ConnectionTerminated")
                   and events_named(pair.server_events, "ConnectionTerminated"))
    client_end = events_named(pair.client_events, "ConnectionTerminated")[0]
    server_end = events_named(pair.server_events, "ConnectionTerminated")[0]
    assert 0x100 <= client_end.error_code <= 0x1FF  # CRYPTO_ERROR: a TLS alert
    assert not client_end.by_peer
    assert server_end.error_code == client_end.error_code
    assert server_end.by_peer


def test_handshake_alpn_mismatch_closes_with_no_application_protocol() -> None:
    pair = Pair(ours_client(), ours_server(server_config(alpn_protocols=["other"])), link=CLEAN)
    pair.connect()
    pair.run_until(lambda: events_named(pair.client_events, "ConnectionTerminated"))
    end = events_named(pair.client_events, "ConnectionTerminated")[0]
    assert end.error_code == 0x100 + 120  # no_application_protocol
