"""Key updates, connection IDs, path validation, client migration and NAT rebinding."""

from __future__ import annotations

from typing import Any

import pytest

from tests.quic.conn_helpers import (
    CLEAN,
    StreamCollector,
    events_named,
    handshake,
    make_pair,
    payload,
    transfer,
)
from trio_zttp.quic._cids import MAX_ISSUED
from trio_zttp.testing import LinkConditions, Pair

MB = 1_000_000
ROLES = [("ours", "ours"), ("ours", "aioquic"), ("aioquic", "ours")]
LINK = LinkConditions(delay=0.01, bandwidth=20_000_000)


def _start_upload(pair: Pair, size: int) -> StreamCollector:
    collector = StreamCollector()
    pair.on_event = collector
    pair.client.send_stream_data(0, payload(size), end_stream=True)  # type: ignore[attr-defined]
    return collector


def _finish_upload(pair: Pair, collector: StreamCollector, size: int) -> None:
    pair.run_until(lambda: ("server", 0) in collector.ended, timeout=120)
    assert bytes(collector.data["server", 0]) == payload(size)


def _key_updates(conn: Any) -> int | None:
    stats = getattr(conn, "statistics", None)
    return stats().key_updates if callable(stats) else None


# -- key update -----------------------------------------------------------------------------


@pytest.mark.parametrize(("client", "server"), ROLES)
@pytest.mark.parametrize("initiator", ["client", "server"])
def test_key_update_mid_transfer(client: str, server: str, initiator: str) -> None:
    pair = make_pair(client, server, link=LINK)
    handshake(pair)
    collector = _start_upload(pair, 2 * MB)
    pair.run_until(lambda: len(collector.data.get(("server", 0), b"")) > 300_000)
    side = pair.client if initiator == "client" else pair.server
    side.request_key_update()  # type: ignore[attr-defined]
    pair.run_until(lambda: len(collector.data.get(("server", 0), b"")) > 1_000_000)
    side.request_key_update()  # type: ignore[attr-defined]  # and a second one
    _finish_upload(pair, collector, 2 * MB)
    for conn in (pair.client, pair.server):
        updates = _key_updates(conn)
        if updates is not None:
            assert updates == 2


def test_key_update_waits_for_the_previous_one_to_be_acknowledged() -> None:
    pair = make_pair("ours", "ours", link=CLEAN)
    handshake(pair)
    pair.client.request_key_update()  # type: ignore[attr-defined]
    pair.client.request_key_update()  # type: ignore[attr-defined]  # merges with the first
    transfer(pair, 100_000)
    assert pair.client.statistics().key_updates == 1  # type: ignore[attr-defined]


def test_key_update_both_sides_at_once() -> None:
    pair = make_pair("ours", "ours", link=CLEAN)
    handshake(pair)
    pair.client.request_key_update()  # type: ignore[attr-defined]
    pair.server.request_key_update()  # type: ignore[attr-defined]
    transfer(pair, 300_000)
    transfer(pair, 300_000, upload=False)
    assert pair.client.statistics().key_updates >= 1  # type: ignore[attr-defined]


# -- connection IDs -------------------------------------------------------------------------


def test_connection_ids_issued_up_to_the_peer_limit() -> None:
    pair = make_pair("ours", "ours", link=CLEAN, client_options={"active_connection_id_limit": 3})
    handshake(pair)
    issued = events_named(pair.server_events, "ConnectionIdIssued")
    assert len(issued) == 2  # plus the one in the handshake: 3 (below MAX_ISSUED)
    assert pair.server.local_connection_id not in {e.connection_id for e in issued}  # type: ignore


@pytest.mark.parametrize("server", ["ours", "aioquic"])
def test_connection_id_change_retires_the_old_one(server: str) -> None:
    pair = make_pair("ours", server, link=CLEAN)
    handshake(pair)
    pair.run_for(0.1)
    sent: list[bytes] = []
    pair.tap = lambda side, d: sent.append(d.data) if side == "client" else None
    pair.client.change_connection_id()  # type: ignore[attr-defined]
    transfer(pair, 50_000)
    dcids = {d[1:9] for d in sent if not d[0] & 0x80}
    assert len(dcids) == 1  # one new DCID from the change on
    if server == "ours":
        retired = events_named(pair.server_events, "ConnectionIdRetired")
        assert len(retired) == 1
        assert retired[0].connection_id not in dcids
        issued_after = events_named(pair.server_events, "ConnectionIdIssued")
        # MAX_ISSUED - 1 after the handshake, then a replacement
        assert len(issued_after) == MAX_ISSUED


# -- migration ------------------------------------------------------------------------------


@pytest.mark.parametrize(("client", "server"), ROLES)
def test_nat_rebinding_mid_transfer(client: str, server: str) -> None:
    pair = make_pair(client, server, link=LINK)
    handshake(pair)
    collector = _start_upload(pair, MB)
    pair.run_until(lambda: len(collector.data.get(("server", 0), b"")) > 200_000)
    pair.change_address("client", ("10.0.0.1", 50001))  # same host, new port
    _finish_upload(pair, collector, MB)
    if server == "ours":
        changed = events_named(pair.server_events, "PathChanged")
        assert [(e.old_address, e.new_address) for e in changed] == [
            (("10.0.0.1", 50000), ("10.0.0.1", 50001))]
        assert pair.server.statistics().peer_address == ("10.0.0.1", 50001)  # type: ignore


@pytest.mark.parametrize(("client", "server"), ROLES)
def test_client_migration_with_a_new_connection_id(client: str, server: str) -> None:
    pair = make_pair(client, server, link=LINK)
    handshake(pair)
    collector = _start_upload(pair, MB)
    pair.run_until(lambda: len(collector.data.get(("server", 0), b"")) > 200_000)
    pair.client.change_connection_id()  # type: ignore[attr-defined]
    pair.change_address("client", ("10.9.9.9", 4000))
    _finish_upload(pair, collector, MB)
    # and the server's data reaches the client at its new address
    transfer(pair, 100_000, upload=False)
    if server == "ours":
        assert events_named(pair.server_events, "PathChanged")[-1].new_address == (
            "10.9.9.9", 4000)


@pytest.mark.parametrize("client_keeps_talking", [False, True])
def test_migration_to_a_spoofed_address_fails_validation(client_keeps_talking: bool) -> None:
    """An attacker withholds a client packet and replays it from another address: the server
    follows, probes that address, gets no answer, and returns to the validated path."""
    pair = make_pair("ours", "ours", link=CLEAN)
    handshake(pair)
    pair.run_for(0.1)
    captured: list[bytes] = []

    def steal(datagram: bytes, index: int) -> bool:
        if not captured:
            captured.append(datagram)
            return True
        return False

    pair.client_to_server.conditions = LinkConditions(delay=0.01, drop_filter=steal)
    pair.client.send_stream_data(0, b"hello")  # type: ignore[attr-defined]
    pair.run_for(0.005)
    assert captured
    sent_to_attacker: list[int] = []
    pair.tap = lambda side, d: sent_to_attacker.append(len(d.data)) if (
        side == "server" and d.destination == ("192.0.2.66", 9999)) else None
    pair.inject("server", captured[0], source=("192.0.2.66", 9999))
    if client_keeps_talking:
        pair.run_for(0.02)
        pair.client.send_stream_data(0, b" world")  # type: ignore[attr-defined]
    pair.run_for(5.0)
    assert sent_to_attacker  # the server probed the new address ...
    assert sum(sent_to_attacker) <= 3 * len(captured[0])  # ... within 3x of what came from it
    transfer(pair, 10_000, upload=False)
    assert not events_named(pair.server_events, "PathChanged")
    assert pair.server.statistics().peer_address == ("10.0.0.1", 50000)  # type: ignore
