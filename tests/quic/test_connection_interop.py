"""The interop matrix of issue 4, and where each item is tested.

Against aioquic's sans-IO ``QuicConnection`` (ours as client and as server) and ours against
ours, through ``trio_zttp.testing.Pair``:

| item | tests |
|---|---|
| handshake | test_connection_handshake: one round trip, padding, hostile links |
| v1 and v2 | test_connection_versions: v2, Version Negotiation, compatible negotiation |
| 10 MB each way, clean / 5% / 20% + reordering + duplication | test_connection_streams |
| 200 concurrent streams of 50 KB | test_connection_streams (aioquic as client: slow marker) |
| handshake-packet loss | test_connection_handshake |
| corrupted packets | here; test_connection_hostile |
| Retry | test_connection_versions |
| resumption and 0-RTT | test_connection_resumption |
| ChaCha20 only | test_connection_versions |
| key update by each side mid-transfer | test_connection_migration |
| client migration and NAT rebinding | test_connection_migration |
| DATAGRAM frames each way | test_connection_datagrams |
| idle timeout | test_connection_close |
| application close codes seen by the peer | test_connection_close |
| server never above 3x before validation | test_connection_handshake |

Against qh3 (smaller): handshake, v2, 1 MB each way clean and lossy, DATAGRAMs, close codes,
Retry (qh3 client) in the files above, plus the qh3 rows below.
"""

from __future__ import annotations

import pytest

from tests.quic.conn_helpers import (
    CLEAN,
    events_named,
    handshake,
    make_pair,
    transfer,
)
from trio_zttp.testing import LinkConditions

MB = 1_000_000
ALL_ROLES = [("ours", "ours"), ("ours", "aioquic"), ("aioquic", "ours"), ("ours", "qh3"),
             ("qh3", "ours")]
QH3_ROLES = [("ours", "qh3"), ("qh3", "ours")]


@pytest.mark.parametrize(("client", "server"), ALL_ROLES)
def test_interop_corrupted_packets_during_transfer(client: str, server: str) -> None:
    link = LinkConditions(delay=0.005, bandwidth=50_000_000, corrupt=0.05)
    pair = make_pair(client, server, link=link, seed=21)
    handshake(pair)
    transfer(pair, MB)
    transfer(pair, MB, upload=False)
    for side in ("client", "server"):
        assert not events_named(pair.events(side), "ConnectionTerminated")  # type: ignore


@pytest.mark.parametrize(("client", "server"), QH3_ROLES)
def test_interop_qh3_hostile_link(client: str, server: str) -> None:
    link = LinkConditions(delay=0.005, loss=0.2, reorder=0.1, duplicate=0.05)
    pair = make_pair(client, server, link=link, seed=13)
    handshake(pair, timeout=120)
    transfer(pair, MB, timeout=3600)
    transfer(pair, MB, upload=False, timeout=3600)


@pytest.mark.parametrize(("client", "server"), QH3_ROLES)
@pytest.mark.parametrize("initiator", ["client", "server"])
def test_interop_qh3_key_update(client: str, server: str, initiator: str) -> None:
    pair = make_pair(client, server, link=LinkConditions(delay=0.005, bandwidth=20_000_000))
    handshake(pair)
    transfer(pair, 300_000)
    side = pair.client if initiator == "client" else pair.server
    side.request_key_update()  # type: ignore[attr-defined]
    transfer(pair, MB)
    transfer(pair, MB, upload=False)
    ours = pair.client if client == "ours" else pair.server
    assert ours.statistics().key_updates == 1  # type: ignore[attr-defined]


@pytest.mark.parametrize(("client", "server"), QH3_ROLES)
def test_interop_qh3_nat_rebinding(client: str, server: str) -> None:
    pair = make_pair(client, server, link=CLEAN)
    handshake(pair)
    transfer(pair, 200_000)
    pair.change_address("client", ("10.0.0.1", 50001))
    transfer(pair, 500_000)
    transfer(pair, 500_000, upload=False)


@pytest.mark.parametrize(("client", "server"), QH3_ROLES)
def test_interop_qh3_idle_timeout(client: str, server: str) -> None:
    options = {"idle_timeout": 2.0}
    pair = make_pair(client, server, link=CLEAN, client_options=options,
                     server_options=options)
    handshake(pair)
    ours = "client" if client == "ours" else "server"
    start = pair.now
    pair.run_until(lambda: events_named(pair.events(ours), "ConnectionTerminated"),  # type: ignore
                   timeout=30)
    assert 2.0 <= pair.now - start <= 3.0
