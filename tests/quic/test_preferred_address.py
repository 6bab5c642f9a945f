"""The server's preferred address (RFC 9000 §9.6, §5.1.1, §18.2).

A server configured with ``preferred_ipv4_address`` / ``preferred_ipv6_address`` advertises it
with a connection ID of sequence number 1 that routes to it at once. A client, once the
handshake is confirmed, validates the address of its own family with that connection ID
(never its current one, §9.5) in padded PATH_CHALLENGE datagrams (§8.2.1), and moves there
when a PATH_RESPONSE comes (``PathChanged``); if none comes it stays, and the connection ID
it used there is retired. Over the fake links of :class:`~trio_zttp.testing.Pair`, "the
server answers from its preferred address" is the server taking that address as its own
(``change_address(keep_old=True)``) when the client's first probe goes out.

The probes are not congestion-controlled (their loss says nothing about the path in use,
§9.4), the client keeps taking packets from the old address after the move (the server
sends from there until it sees the client at the new one, §9.6.2), and it does not probe an
address a hostile server aims at something else (§21.5.6).
"""

from __future__ import annotations

from typing import Any

import attrs
import pytest

from tests.quic.conn_helpers import CLEAN, events_named, handshake, make_pair, transfer
from trio_zttp.quic import Configuration, QuicError
from trio_zttp.testing import LinkConditions, Pair, WireDatagram

PREFERRED = ("10.0.0.3", 4434)
SERVER = ("10.0.0.2", 4433)  # (Pair's default server address)


def _dcid(data: bytes, length: int = 8) -> bytes:
    assert not data[0] & 0x80  # a 1-RTT packet
    return data[1 : 1 + length]


class _Wire:
    """What the client sends, by destination; optionally the server answers from PREFERRED
    as soon as the first probe is on the wire."""

    def __init__(self, pair: Pair, *, answer: bool) -> None:
        self.pair = pair
        self.answer = answer
        self.sent: list[WireDatagram] = []
        pair.tap = self

    def __call__(self, side: Any, datagram: WireDatagram) -> None:
        if side != "client":
            return
        self.sent.append(datagram)
        if self.answer and datagram.destination == PREFERRED \
                and self.pair.address("server") != PREFERRED:
            self.pair.change_address("server", PREFERRED, keep_old=True)

    def to(self, address: tuple[str, int]) -> list[WireDatagram]:
        return [d for d in self.sent if d.destination == address]


def _pair(*, client: dict[str, Any] | None = None, server: dict[str, Any] | None = None) -> Pair:
    options = {"preferred_ipv4_address": PREFERRED}
    options.update(server or {})
    return make_pair("ours", "ours", link=CLEAN, client_options=client, server_options=options)


def _preferred(pair: Pair) -> Any:
    return pair.client.peer_transport_parameters.preferred_address  # type: ignore[attr-defined]


def test_server_advertises_its_preferred_address_with_a_routed_connection_id() -> None:
    pair = _pair(server={"preferred_ipv6_address": ("2001:db8::1", 4435)})
    handshake(pair)
    preferred = _preferred(pair)
    assert preferred.ipv4 == PREFERRED and preferred.ipv6 == ("2001:db8::1", 4435)
    assert len(preferred.connection_id) == 8 and len(preferred.stateless_reset_token) == 16
    issued = [e.connection_id for e in events_named(pair.server_events, "ConnectionIdIssued")]
    assert preferred.connection_id in issued  # the endpoint routes it to the connection
    assert len(issued) == len(set(issued))  # and no later connection ID repeats it


def test_client_validates_and_moves_to_the_preferred_address() -> None:
    pair = _pair()
    wire = _Wire(pair, answer=True)
    handshake(pair)
    pair.run_until(lambda: events_named(pair.client_events, "PathChanged"), timeout=5)
    changed = events_named(pair.client_events, "PathChanged")
    assert [(e.old_address, e.new_address) for e in changed] == [(SERVER, PREFERRED)]
    preferred_cid = _preferred(pair).connection_id
    probes = wire.to(PREFERRED)
    assert probes and len(probes[0].data) >= 1200  # a PATH_CHALLENGE datagram is padded
    assert all(_dcid(d.data) == preferred_cid for d in probes)  # never the old ID there
    assert all(_dcid(d.data) != preferred_cid for d in wire.to(SERVER) if not d.data[0] & 0x80)
    before = len(wire.sent)
    transfer(pair, 100_000)
    transfer(pair, 100_000, upload=False)
    after = wire.sent[before:]
    assert after and all(d.destination == PREFERRED for d in after)
    # the client retired the connection ID it used at the old address
    retired = events_named(pair.server_events, "ConnectionIdRetired")
    assert len(retired) == 1 and retired[0].connection_id != preferred_cid


def test_client_stays_when_the_preferred_address_does_not_answer() -> None:
    pair = _pair()
    wire = _Wire(pair, answer=False)  # what goes to PREFERRED is lost
    handshake(pair)
    pair.run_for(15.0)
    assert not events_named(pair.client_events, "PathChanged")
    probes = wire.to(PREFERRED)
    assert len(probes) == 3  # the challenge went out three times (lost or not)
    gaps = [b.time - a.time for a, b in zip(probes, probes[1:], strict=False)]
    assert gaps[1] >= 1.9 * gaps[0] and gaps[0] >= 0.9  # a PTO (kInitialRtt), doubling
    before = len(wire.sent)
    transfer(pair, 50_000)
    assert all(d.destination == SERVER for d in wire.sent[before:])
    preferred_cid = _preferred(pair).connection_id
    assert all(_dcid(d.data) != preferred_cid for d in wire.sent[before:] if not d.data[0] & 0x80)
    # the connection ID used towards the preferred address is retired, never reused (§9.5)
    retired = [e.connection_id for e in events_named(pair.server_events, "ConnectionIdRetired")]
    assert retired == [preferred_cid]


def test_client_configured_not_to_follow_stays_and_keeps_the_spare() -> None:
    pair = _pair(client={"use_preferred_address": False})
    wire = _Wire(pair, answer=True)
    handshake(pair)
    pair.run_for(1.0)
    assert not wire.to(PREFERRED) and not events_named(pair.client_events, "PathChanged")
    pair.client.migrate()  # type: ignore[attr-defined]  # the preferred CID is a spare
    assert not events_named(pair.server_events, "ConnectionIdRetired")
    transfer(pair, 10_000)


def test_client_ignores_a_preferred_address_of_the_other_family() -> None:
    pair = make_pair("ours", "ours", link=CLEAN,
                     server_options={"preferred_ipv6_address": ("2001:db8::1", 4435)})
    wire = _Wire(pair, answer=False)
    handshake(pair)
    pair.run_for(1.0)
    assert all(d.destination == SERVER for d in wire.sent)
    assert not events_named(pair.client_events, "PathChanged")


def test_migrating_during_the_probe_ends_it() -> None:
    pair = _pair()
    wire = _Wire(pair, answer=False)
    handshake(pair)
    pair.run_until(lambda: bool(wire.to(PREFERRED)), timeout=5)
    pair.client.migrate()  # type: ignore[attr-defined]
    pair.change_address("client", ("10.0.0.9", 5000))
    pair.run_for(5.0)
    assert len(wire.to(PREFERRED)) == 1  # no more challenges there
    transfer(pair, 10_000)
    assert not events_named(pair.client_events, "PathChanged")


def test_server_retiring_the_preferred_connection_id_ends_the_probe() -> None:
    pair = _pair()
    wire = _Wire(pair, answer=False)
    handshake(pair)
    pair.run_until(lambda: bool(wire.to(PREFERRED)), timeout=5)
    client = pair.client
    # NEW_CONNECTION_ID(seq 5, retire_prior_to 2) as a server might send it (not ours: it
    # would later issue its own sequence 5, so the run stops before it does)
    client._on_new_connection_id_frame(5, b"\x05" * 8, b"\x55" * 16, 2)  # type: ignore
    pair.run_for(0.5)
    assert client._preferred_probe is None  # type: ignore[attr-defined]
    assert len(wire.to(PREFERRED)) == 1
    assert not events_named(pair.client_events, "PathChanged")
    current = client._peer_cids.current  # type: ignore[attr-defined]
    assert current != _preferred(pair).connection_id and current != b"\x05" * 8  # (seq 2)


@pytest.mark.parametrize(("field", "value", "message"), [
    ("preferred_ipv4_address", ("2001:db8::1", 443), "IPv4"),
    ("preferred_ipv6_address", ("192.0.2.1", 443), "IPv6"),
    ("preferred_ipv4_address", ("192.0.2.1", 0), "IPv4"),
    ("preferred_ipv4_address", ("0.0.0.0", 443), "IPv4"),
    ("preferred_ipv4_address", "192.0.2.1:443", "IPv4"),
    ("preferred_ipv4_address", ("192.0.2.1", "443"), "IPv4"),
    ("preferred_ipv4_address", ("224.0.0.1", 443), "IPv4"),
    ("preferred_ipv4_address", ("255.255.255.255", 443), "IPv4"),
    ("preferred_ipv6_address", ("ff02::1", 443), "IPv6"),
    ("preferred_ipv6_address", ("::ffff:192.0.2.1", 443), "IPv6"),
])
def test_bad_preferred_addresses_are_refused(field: str, value: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Configuration(is_client=False, alpn_protocols=("h3",), **{field: value})


def test_a_client_cannot_advertise_a_preferred_address() -> None:
    with pytest.raises(ValueError, match="server"):
        Configuration(is_client=True, alpn_protocols=("h3",),
                      preferred_ipv4_address=("192.0.2.1", 443))


def test_a_client_may_not_migrate_before_confirmation_even_with_a_preferred_address() -> None:
    pair = _pair()
    pair.connect()
    with pytest.raises(QuicError, match="confirmed"):
        pair.client.migrate()  # type: ignore[attr-defined]


def test_the_client_takes_packets_from_the_old_address_after_the_move() -> None:
    """A server keeps sending from its original address until it sees the client at the
    preferred one (§9.6.2): what arrives from there after the move is not dropped."""
    pair = _pair()
    wire = _Wire(pair, answer=True)
    handshake(pair)
    pair.run_until(lambda: events_named(pair.client_events, "PathChanged"), timeout=5)
    wire.answer = False
    pair.change_address("server", SERVER, keep_old=True)  # sends from the old address again
    transfer(pair, 200_000, upload=False, timeout=20)
    assert pair.server.statistics().packets_lost == 0  # type: ignore[attr-defined]
    assert all(d.destination == PREFERRED for d in wire.sent[-10:])  # the client stays moved


def test_unanswered_probes_do_not_cut_the_congestion_window() -> None:
    """Lost PATH_CHALLENGE datagrams to a silent preferred address are no congestion signal
    on the path in use (RFC 9000 §9.4)."""
    pair = _pair()
    _Wire(pair, answer=False)
    handshake(pair)
    transfer(pair, 200_000)
    window = pair.client._recovery.congestion.congestion_window  # type: ignore[attr-defined]
    pair.run_for(15.0)  # three probes, all lost, and the probe given up
    assert pair.client._preferred_probe is None  # type: ignore[attr-defined]
    assert pair.client._recovery.congestion.congestion_window >= window  # type: ignore


def test_the_preferred_connection_id_is_kept_for_the_probe_before_confirmation() -> None:
    """change_connection_id() between the handshake's completion and its confirmation must
    not take sequence 1: one connection ID never goes to two addresses (§9.5)."""
    pair = _pair()
    wire = _Wire(pair, answer=True)
    pair.connect()
    pair.run_until(lambda: events_named(pair.client_events, "HandshakeCompleted"), timeout=5)
    preferred_cid = _preferred(pair).connection_id
    pair.client.change_connection_id()  # type: ignore[attr-defined]
    assert pair.client._peer_cids.current != preferred_cid  # type: ignore[attr-defined]
    pair.run_until(lambda: events_named(pair.client_events, "PathChanged"), timeout=5)
    one_rtt = [d for d in wire.sent if not d.data[0] & 0x80]
    assert all(_dcid(d.data) == preferred_cid for d in one_rtt if d.destination == PREFERRED)
    assert all(_dcid(d.data) != preferred_cid for d in one_rtt if d.destination == SERVER)


def test_moving_to_another_host_resets_rtt_and_congestion() -> None:
    pair = _pair()
    wire = _Wire(pair, answer=False)  # the first probe is lost: the move comes a PTO later
    handshake(pair)
    congestion = pair.client._recovery.congestion  # type: ignore[attr-defined]
    initial = congestion.congestion_window
    transfer(pair, 300_000)  # the window grows on the old path
    grown = congestion.congestion_window
    assert not events_named(pair.client_events, "PathChanged") and grown > 4 * initial
    wire.answer = True
    pair.run_until(lambda: events_named(pair.client_events, "PathChanged"), timeout=5)
    assert congestion.congestion_window <= 2 * initial  # (from the initial window again)
    assert pair.client._recovery.rtt.first_sample_time is None \
        or pair.client._recovery.rtt.first_sample_time >= wire.to(PREFERRED)[-1].time  # type: ignore


def test_moving_to_another_port_of_the_same_host_keeps_the_estimates() -> None:
    pair = _pair(server={"preferred_ipv4_address": (SERVER[0], 4999)})
    wire = _Wire(pair, answer=False)
    handshake(pair)
    transfer(pair, 300_000)
    grown = pair.client._recovery.congestion.congestion_window  # type: ignore[attr-defined]
    pair.change_address("server", (SERVER[0], 4999), keep_old=True)
    pair.run_until(lambda: events_named(pair.client_events, "PathChanged"), timeout=10)
    assert wire.to((SERVER[0], 4999))
    assert pair.client._recovery.congestion.congestion_window >= grown  # type: ignore


@pytest.mark.parametrize("target", [
    ("0.0.0.0", 4434), ("127.0.0.1", 4434), ("224.0.0.251", 4434), ("255.255.255.255", 4434),
    ("10.0.0.3", 0), ("10.0.0.2", 4433),
])
def test_client_does_not_probe_implausible_addresses(target: tuple[str, int]) -> None:
    """A hostile server must not aim our probes at broadcast, multicast, loopback (we are not
    on loopback), unspecified addresses or port 0 (RFC 9000 §21.5.6); nor is where we are
    already a move. The server configuration refuses some of these, so the parameter is
    rewritten as a hostile server would send it."""
    pair = _pair()
    wire = _Wire(pair, answer=False)
    pair.connect()
    pair.run_until(lambda: events_named(pair.client_events, "HandshakeCompleted"), timeout=5)
    client = pair.client
    params = client._peer_params  # type: ignore[attr-defined]
    hostile = attrs.evolve(params.preferred_address, ipv4=target)
    client._peer_params = attrs.evolve(params, preferred_address=hostile)  # type: ignore
    pair.run_for(10.0)
    assert not wire.to(target) or target == SERVER
    assert not events_named(client_events := pair.client_events, "PathChanged"), client_events
    client.migrate()  # type: ignore[attr-defined]  # the preferred CID became a spare
    assert not [d for d in wire.sent if d.destination not in (SERVER,)]


def test_after_the_move_disable_active_migration_no_longer_holds() -> None:
    """RFC 9000 §18.2: disable_active_migration does not prohibit migration after a client
    acted on preferred_address."""
    pair = _pair(server={"disable_active_migration": True})
    wire = _Wire(pair, answer=False)  # the first probe is lost: the move comes a PTO later
    handshake(pair)
    pair.run_for(0.1)  # confirmed
    with pytest.raises(QuicError, match="disable_active_migration"):
        pair.client.migrate(dry_run=True)  # type: ignore[attr-defined]
    wire.answer = True
    pair.run_until(lambda: events_named(pair.client_events, "PathChanged"), timeout=5)
    pair.client.migrate()  # type: ignore[attr-defined]


def test_a_refused_migrate_leaves_the_probe_running() -> None:
    """With active_connection_id_limit=2 the only spare is the probe's: migrate() refuses
    and the probe goes on to move the connection."""
    pair = _pair(client={"active_connection_id_limit": 2})
    wire = _Wire(pair, answer=False)  # the first probe is lost: the move comes a PTO later
    handshake(pair)
    pair.run_for(0.1)  # confirmed
    with pytest.raises(QuicError, match="spare"):
        pair.client.migrate()  # type: ignore[attr-defined]
    wire.answer = True
    pair.run_until(lambda: events_named(pair.client_events, "PathChanged"), timeout=5)


def test_an_unused_connection_ids_reset_token_is_no_stateless_reset() -> None:
    """RFC 9000 §10.3.1: never check the token of a connection ID not used yet."""
    pair = _pair(client={"use_preferred_address": False})
    handshake(pair)
    preferred = _preferred(pair)
    fake = b"\x40" + bytes(30) + preferred.stateless_reset_token
    pair.inject("client", fake)
    pair.run_for(0.5)
    assert not events_named(pair.client_events, "ConnectionTerminated")
    transfer(pair, 10_000)


def test_ecn_is_tested_again_at_the_preferred_address() -> None:
    """RFC 9000 §13.4.2: ECN validation runs again when the client switches to the server's
    preferred address (here the old path bleached the marks, the new one keeps them)."""
    bleaching = True
    pair = _pair()
    pair.client_to_server.conditions = LinkConditions(
        ecn_rewrite=lambda d, ecn, i: 0 if bleaching else ecn)
    wire = _Wire(pair, answer=False)  # the first probe is lost: the move comes a PTO later
    handshake(pair)
    transfer(pair, 20_000)
    assert pair.client.statistics().ecn_state == "failed"  # type: ignore[attr-defined]
    bleaching = False
    wire.answer = True
    pair.run_until(lambda: events_named(pair.client_events, "PathChanged"), timeout=5)
    transfer(pair, 100_000)
    assert pair.client.statistics().ecn_state == "capable"  # type: ignore[attr-defined]
