"""Issue 5's virtual-time checks: a 5 MB transfer through 10% loss on our virtual network and on
trio's own FakeNet, and PTO / idle timers firing in virtual time (autojump clock)."""

from __future__ import annotations

import hashlib
import random
import time
from typing import Any

import pytest
import trio

from trio_zttp.testing import LinkConditions, open_virtual_network

from ._helpers import connected_pair

FIVE_MB = 5 * 1024 * 1024


async def upload(pair: Any, payload: bytes) -> bytes:
    """The client sends ``payload`` on one stream; the server returns what it read."""
    got = bytearray()

    async def serve() -> None:
        async with await pair.server.accept_stream() as stream:
            while data := await stream.receive_some(65536):
                got.extend(data)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(serve)
        async with pair.client.open_stream() as stream:
            await stream.send_all(payload)
            await stream.send_eof()
            assert await stream.receive_some() == b""
    return bytes(got)


@pytest.mark.parametrize("network", ["virtual", "fakenet"])
async def test_virtual_time_5mb_through_10_percent_loss(
    ca: Any, server_cert: Any, autojump_clock: Any, network: str
) -> None:
    payload = random.Random(5).randbytes(FIVE_MB)
    started = time.monotonic()
    if network == "virtual":
        async with (
            open_virtual_network(seed=10, conditions=LinkConditions(loss=0.10, delay=0.005))
            as net,
            connected_pair(ca, server_cert) as pair,
        ):
            got = await upload(pair, payload)
            assert net.statistics().links.dropped_loss > 100
    else:
        from trio.testing._fake_net import FakeNet

        fake = FakeNet()
        rng = random.Random(10)
        dropped = 0
        deliver = fake.deliver_packet

        def lossy(packet: Any) -> None:
            nonlocal dropped
            if rng.random() < 0.10:
                dropped += 1
                return
            deliver(packet)

        fake.route_packet = lossy  # type: ignore[method-assign]
        fake.enable()
        async with connected_pair(ca, server_cert) as pair:
            got = await upload(pair, payload)
        assert dropped > 100
    assert hashlib.sha256(got).digest() == hashlib.sha256(payload).digest()
    assert time.monotonic() - started < 120  # wall time stays bounded


async def test_virtual_time_pto_and_idle_timeout_fire(
    ca: Any, server_cert: Any, autojump_clock: Any
) -> None:
    async with (
        open_virtual_network(seed=3) as net,
        connected_pair(ca, server_cert, client={"idle_timeout": 5.0},
                       server={"idle_timeout": 5.0}) as pair,
    ):
        client_addr = pair.client_endpoint.local_address
        server_addr = pair.server_endpoint.local_address
        # black-hole the path: a stream write now needs PTO probes, then the idle timer ends it
        net.set_link_conditions(client_addr, server_addr, LinkConditions(loss=1.0))
        before_sent = pair.client.statistics().transport.packets_sent
        start = trio.current_time()
        async with pair.client.open_stream() as stream:
            await stream.send_all(b"into the void")
            with pytest.raises(trio.BrokenResourceError):
                while True:
                    await stream.receive_some()
        elapsed = trio.current_time() - start
        # probes went out (PTO fired in virtual time) and the idle timeout closed the connection
        transport = pair.client.statistics().transport
        assert transport.packets_sent >= before_sent + 3
        assert transport.pto_count >= 2
        assert 4.0 <= elapsed <= 16.0
