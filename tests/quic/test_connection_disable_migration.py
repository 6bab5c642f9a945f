"""The disable_active_migration transport parameter (RFC 9000 §9, §18.2).

A server that sends it: our client refuses to migrate actively (``Connection.migrate``
raises), while NAT rebinding, which no endpoint controls, keeps working: the server still
validates the new path and follows the client (the second choice RFC 9000 §9 allows).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.quic.conn_helpers import (
    CLEAN,
    events_named,
    handshake,
    make_pair,
    transfer,
)
from trio_zttp.quic import QuicError
from trio_zttp.testing import Pair

DISABLED = {"disable_active_migration": True}


def _retired_by_server(pair: Pair) -> int:
    return len(events_named(pair.server_events, "ConnectionIdRetired"))


@pytest.mark.parametrize("configured", [False, True])
def test_disable_active_migration_sent_by_server_when_configured(configured: bool) -> None:
    pair = make_pair("ours", "ours", link=CLEAN,
                     server_options={"disable_active_migration": configured})
    handshake(pair)
    peer = pair.client.peer_transport_parameters  # type: ignore[attr-defined]
    assert peer.disable_active_migration is configured
    ours = pair.server.peer_transport_parameters  # type: ignore[attr-defined]
    assert ours.disable_active_migration is False  # the client was not configured so


def test_disable_active_migration_sent_by_client_when_configured() -> None:
    pair = make_pair("ours", "ours", link=CLEAN, client_options=DISABLED)
    handshake(pair)
    assert pair.server.peer_transport_parameters.disable_active_migration  # type: ignore


@pytest.mark.parametrize("server", ["ours", "aioquic"])
def test_client_migrate_moves_to_a_new_connection_id(server: str) -> None:
    pair = make_pair("ours", server, link=CLEAN)
    handshake(pair)
    pair.run_for(0.1)
    pair.client.migrate()  # type: ignore[attr-defined]
    pair.change_address("client", ("10.9.9.9", 4000))
    transfer(pair, 50_000)
    transfer(pair, 50_000, upload=False)
    if server == "ours":
        assert _retired_by_server(pair) == 1
        assert events_named(pair.server_events, "PathChanged")[-1].new_address == (
            "10.9.9.9", 4000)


def test_client_migrate_refused_when_the_server_disabled_active_migration() -> None:
    pair = make_pair("ours", "ours", link=CLEAN, server_options=DISABLED)
    handshake(pair)
    pair.run_for(0.1)
    with pytest.raises(QuicError, match="disable_active_migration"):
        pair.client.migrate()  # type: ignore[attr-defined]
    transfer(pair, 10_000)  # the connection is unharmed and kept its connection ID
    assert _retired_by_server(pair) == 0


def test_client_migrate_refused_before_the_handshake_is_confirmed() -> None:
    pair = make_pair("ours", "ours", link=CLEAN)
    pair.connect()
    with pytest.raises(QuicError, match="confirmed"):
        pair.client.migrate()  # type: ignore[attr-defined]


def test_server_migrate_refused() -> None:
    pair = make_pair("ours", "ours", link=CLEAN)
    handshake(pair)
    with pytest.raises(QuicError, match="client"):
        pair.server.migrate()  # type: ignore[attr-defined]


def test_client_migrate_refused_without_a_spare_connection_id() -> None:
    pair = make_pair("ours", "ours", link=CLEAN,
                     client_options={"active_connection_id_limit": 2})
    handshake(pair)
    pair.run_for(0.1)
    pair.client.migrate()  # type: ignore[attr-defined]  # uses the one spare
    with pytest.raises(QuicError, match="connection ID"):
        pair.client.migrate()  # type: ignore[attr-defined]


@pytest.mark.parametrize("client", ["ours", "aioquic"])
def test_nat_rebinding_followed_by_a_server_that_disabled_active_migration(client: str) -> None:
    pair = make_pair(client, "ours", link=CLEAN, server_options=DISABLED)
    handshake(pair)
    transfer(pair, 50_000)
    pair.change_address("client", ("10.0.0.1", 50001))  # the NAT picked a new port
    transfer(pair, 50_000)
    transfer(pair, 50_000, upload=False)
    changed = events_named(pair.server_events, "PathChanged")
    assert [(e.old_address, e.new_address) for e in changed] == [
        (("10.0.0.1", 50000), ("10.0.0.1", 50001))]
    assert pair.server.statistics().peer_address == ("10.0.0.1", 50001)  # type: ignore


def test_client_migrate_dry_run_checks_without_spending_a_connection_id() -> None:
    pair = make_pair("ours", "ours", link=CLEAN,
                     client_options={"active_connection_id_limit": 2})
    handshake(pair)
    pair.run_for(0.1)
    for _ in range(3):
        pair.client.migrate(dry_run=True)  # type: ignore[attr-defined]  # the spare stays
    pair.client.migrate()  # type: ignore[attr-defined]  # uses the one spare
    with pytest.raises(QuicError, match="connection ID"):
        pair.client.migrate(dry_run=True)  # type: ignore[attr-defined]
    transfer(pair, 10_000)
    assert _retired_by_server(pair) == 1  # one move, not four


def test_client_migrate_dry_run_refuses_as_migrate_does() -> None:
    pair = make_pair("ours", "ours", link=CLEAN, server_options=DISABLED)
    handshake(pair)
    pair.run_for(0.1)
    with pytest.raises(QuicError, match="disable_active_migration"):
        pair.client.migrate(dry_run=True)  # type: ignore[attr-defined]


def _server_dcids_by_destination(pair: Pair) -> dict[Any, set[bytes]]:
    seen: dict[Any, set[bytes]] = {}

    def tap(side: Any, datagram: Any) -> None:
        if side == "server" and not datagram.data[0] & 0x80:
            seen.setdefault(datagram.destination, set()).add(datagram.data[1:9])

    pair.tap = tap
    return seen


def test_server_answers_an_active_migration_with_a_new_connection_id() -> None:
    """RFC 9000 §9.5: the client moved to a new connection ID of the server's (an active
    migration): the server's packets to its new address carry a new one of the client's too,
    so the two paths cannot be linked."""
    pair = make_pair("ours", "ours", link=CLEAN)
    seen = _server_dcids_by_destination(pair)
    handshake(pair)
    transfer(pair, 20_000, upload=False)
    old = pair.address("client")
    pair.client.migrate()  # type: ignore[attr-defined]
    pair.change_address("client", ("10.9.9.9", 4000))
    transfer(pair, 50_000, upload=False)
    assert seen[old] and seen[("10.9.9.9", 4000)]
    assert not seen[old] & seen[("10.9.9.9", 4000)]


def test_server_keeps_its_connection_id_across_a_nat_rebinding() -> None:
    """A NAT rebinding (same connection ID from a new address) is no migration of the
    client's: the server may keep its connection ID (§9.5) and does, sparing one."""
    pair = make_pair("ours", "ours", link=CLEAN)
    seen = _server_dcids_by_destination(pair)
    handshake(pair)
    transfer(pair, 20_000, upload=False)
    old = pair.address("client")
    pair.change_address("client", ("10.0.0.1", 50001))
    transfer(pair, 50_000, upload=False)
    assert seen[old] == seen[("10.0.0.1", 50001)]
