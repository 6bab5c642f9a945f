"""The trio layer over trio_zttp.testing's virtual network: seeded loss, duplication,
reordering, corruption, delay and MTU (autojump clock)."""

from __future__ import annotations

import hashlib

import pytest
import trio

import trio_zttp
from trio_zttp.testing import LinkConditions, open_virtual_network

from ._helpers import connected_pair, echo_through

TERRIBLE = LinkConditions(
    loss=0.05, duplicate=0.03, reorder=0.05, reorder_delay=0.02, corrupt=0.01,
    delay=0.02, jitter=0.005, mtu=1400,
)  # fmt: skip


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_virtual_network_lossy_stream_echo(ca, server_cert, autojump_clock, seed) -> None:
    payload = hashlib.sha256(b"%d" % seed).digest() * 4096  # 128 KiB
    async with (
        open_virtual_network(seed=seed, conditions=TERRIBLE) as network,
        connected_pair(ca, server_cert, host="127.0.0.1") as pair,
    ):
        assert await echo_through(pair, payload) == payload
        stats = network.statistics()
        assert stats.links.dropped_loss > 0  # the network really was lossy
        assert stats.links.corrupted + stats.links.duplicated + stats.links.reordered > 0
        # datagrams still work best-effort, and losing some is fine
        for i in range(50):
            await pair.client.send_datagram(b"%d" % i)
        await trio.sleep(1)
        received = pair.server.statistics().datagram_frames_received
        assert 25 <= received <= 50


async def test_virtual_network_close_is_bounded_when_the_peer_vanishes(
    ca, server_cert, autojump_clock
) -> None:
    async with (
        open_virtual_network(seed=7) as network,
        connected_pair(ca, server_cert) as pair,
    ):
        address = pair.server_endpoint.local_address
        network.set_link_conditions(
            pair.client_endpoint.local_address[0], address[0], LinkConditions(loss=1.0)
        )
        start = trio.current_time()
        await pair.client.aclose()  # NO_ERROR, then the drain: bounded by 3 PTO
        assert trio.current_time() - start < 5
        with pytest.raises(trio_zttp.ConnectionClosedError):
            await pair.server.accept_stream()  # the close got through, or the idle timer
