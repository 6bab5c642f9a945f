"""ECN through the trio layer: the Linux datagram path reads and sets the IP codepoint, the
endpoint and the driver carry it to and from the engine, and the virtual network can mark CE.

Real loopback tests run without autojump (NOTES.md trap); virtual-network ones with it.
"""

from __future__ import annotations

import socket
import struct
import sys
from typing import Any

import pytest
import trio

import trio_zttp
from trio_zttp._trio._udp import DatagramTransport, open_transport
from trio_zttp.testing import LinkConditions, open_virtual_network

from ._helpers import Pair, connected_pair, echo_through

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ECN path is Linux")


def _has_ipv6() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


ipv6 = pytest.mark.skipif(not _has_ipv6(), reason="no ::1")


async def _collect(transport: DatagramTransport, count: int) -> list[tuple[bytes, Any, int]]:
    got: list[tuple[bytes, Any, int]] = []
    with trio.fail_after(5):
        while len(got) < count:
            got += await transport.receive()
    return got


# -- the datagram path ----------------------------------------------------------------------


@linux_only
@pytest.mark.parametrize(("receiver_host", "sender_host", "destination"), [
    ("127.0.0.1", "127.0.0.1", "127.0.0.1"),
    pytest.param("::1", "::1", "::1", marks=ipv6),
    # dual-stack sockets: IPv4 traffic through v4-mapped addresses, both ways
    pytest.param("::", "127.0.0.1", "::ffff:127.0.0.1", marks=ipv6),
    pytest.param("127.0.0.1", "::", "::ffff:127.0.0.1", marks=ipv6),
])
async def test_ecn_fast_path_carries_the_codepoint(
    receiver_host: str, sender_host: str, destination: str
) -> None:
    receiver = await open_transport((receiver_host, 0), fast_path=True)
    sender = await open_transport((sender_host, 0), fast_path=True)
    try:
        assert receiver.ecn and sender.ecn
        port = receiver.local_address[1]
        for codepoint in (2, 3, 0, 1, 2):
            # equal sizes: one GSO send, received as one GRO super-datagram (or not)
            batch = [(bytes([codepoint, i]) * 600, (destination, port)) for i in range(8)]
            await sender.send(batch, codepoint)
            got = await _collect(receiver, len(batch))
            assert [data for data, _, _ in got] == [data for data, _ in batch]
            assert {ecn for _, _, ecn in got} == {codepoint}
    finally:
        receiver.close()
        sender.close()


@linux_only
async def test_ecn_fast_path_codepoint_with_a_plain_socket_peer() -> None:
    # what the transport sends is what the kernel puts in the IP header, seen by a plain socket
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.setsockopt(socket.IPPROTO_IP, 13, 1)  # IP_RECVTOS
    sender = await open_transport(("127.0.0.1", 0), fast_path=True)
    plain = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    plain.bind(("127.0.0.1", 0))
    transport = await open_transport(("127.0.0.1", 0), fast_path=True)
    try:
        await sender.send([(b"marked", receiver.getsockname())], 2)
        _, ancillary, _, _ = receiver.recvmsg(100, 64)
        assert ancillary == [(socket.IPPROTO_IP, socket.IP_TOS, b"\x02")]
        plain.sendmsg([b"ce"], [(socket.IPPROTO_IP, socket.IP_TOS, struct.pack("i", 3))], 0,
                      transport.local_address)
        plain.sendto(b"not-ect", transport.local_address)
        got = await _collect(transport, 2)
        assert [(data, ecn) for data, _, ecn in got] == [(b"ce", 3), (b"not-ect", 0)]
    finally:
        for s in (receiver, plain):
            s.close()
        sender.close()
        transport.close()


async def test_ecn_portable_real_socket_path_reports_not_ect() -> None:
    receiver = await open_transport(("127.0.0.1", 0), fast_path=False)
    sender = await open_transport(("127.0.0.1", 0), fast_path=sys.platform.startswith("linux"))
    try:
        assert not receiver.ecn
        await sender.send([(b"x" * 100, receiver.local_address)] * 3, 2)
        got = await _collect(receiver, 3)
        assert {ecn for _, _, ecn in got} == {0}
    finally:
        receiver.close()
        sender.close()


async def test_ecn_fake_net_transport_has_no_ecn(fake_net) -> None:
    transport = await open_transport(("127.0.0.1", 0))
    try:
        assert transport.kind == "portable" and not transport.ecn
    finally:
        transport.close()


# -- our client and our server over real loopback -------------------------------------------


async def _upload(pair: Pair, size: int) -> None:
    """``size`` bytes client -> server, echoed back, through one stream."""
    payload = bytes(range(256)) * (size // 256)
    assert await echo_through(pair, payload) == payload


def _transport_stats(connection: trio_zttp.QuicConnection) -> Any:
    return connection.statistics().transport


@linux_only
@pytest.mark.parametrize("host", ["127.0.0.1", pytest.param("::1", marks=ipv6)])
async def test_ecn_loopback_both_sides_validate(ca, server_cert, host: str) -> None:
    with trio.fail_after(20):
        async with connected_pair(ca, server_cert, host=host) as pair:
            await _upload(pair, 300_000)
            await trio.sleep(0.05)  # the last ACK frames
            for side, peer in ((pair.client, pair.server), (pair.server, pair.client)):
                stats, peer_stats = _transport_stats(side), _transport_stats(peer)
                assert stats.ecn_state == "capable", stats.ecn_failure
                assert stats.ecn_ect0_sent > 100
                assert peer_stats.ecn_ect0_received > 100
                assert stats.ecn_ce_reported == 0


@linux_only
async def test_ecn_loopback_disabled_side_still_reports(ca, server_cert) -> None:
    with trio.fail_after(20):
        async with connected_pair(ca, server_cert, server={"ecn": False}) as pair:
            await _upload(pair, 200_000)
            await trio.sleep(0.05)
            client, server = _transport_stats(pair.client), _transport_stats(pair.server)
            assert server.ecn_state == "disabled" and server.ecn_ect0_sent == 0
            assert client.ecn_ect0_received == 0  # the server never marked
            assert server.ecn_ect0_received > 100  # but it counted and reported the client's
            assert client.ecn_state == "capable", client.ecn_failure


async def test_ecn_loopback_without_the_fast_path_fails_harmlessly(ca, server_cert) -> None:
    # the portable path sends unmarked and reads no codepoint: validation fails at the first
    # ACK frame, nothing is marked afterwards, and nothing reduced the congestion window
    endpoint = {"fast_path": False}
    with trio.fail_after(20):
        async with connected_pair(ca, server_cert, endpoint=endpoint) as pair:
            await _upload(pair, 300_000)
            client = _transport_stats(pair.client)
            server = _transport_stats(pair.server)
    # the client's endpoint took the fast path where available: its marks reached nobody
    assert server.ecn_ect0_received == 0 and server.ecn_state == "failed"
    assert "without ECN counts" in server.ecn_failure
    assert client.ecn_state in ("failed", "capable")
    assert client.ecn_ce_reported == server.ecn_ce_reported == 0


# -- the virtual network: ECN end to end, and CE marking in virtual time -------------------


async def test_ecn_virtual_network_validates(ca, server_cert, autojump_clock) -> None:
    async with (
        open_virtual_network(seed=1, conditions=LinkConditions(delay=0.01)) as network,
        connected_pair(ca, server_cert) as pair,
    ):
        await _upload(pair, 200_000)
        await trio.sleep(0.1)
        for side in (pair.client, pair.server):
            stats = _transport_stats(side)
            assert stats.ecn_state == "capable", stats.ecn_failure
            assert stats.ecn_ect0_received > 50
        assert network.statistics().links.ce_marked == 0


async def _run_transfer(
    ca: Any, server_cert: Any, conditions: LinkConditions
) -> tuple[Any, Any, float]:
    async with (
        open_virtual_network(seed=3, conditions=conditions) as network,
        connected_pair(ca, server_cert, client={"congestion_control": "newreno"}) as pair,
    ):
        start = trio.current_time()
        await _upload(pair, 1_000_000)
        elapsed = trio.current_time() - start
        await trio.sleep(0.2)
        upstream = network.link_statistics(pair.client_endpoint.local_address,
                                           pair.server_endpoint.local_address)
        return _transport_stats(pair.client), upstream, elapsed


async def test_ecn_virtual_network_ce_marks_reduce_the_window(
    ca, server_cert, autojump_clock
) -> None:
    # a 10 MB/s bottleneck, 20 ms RTT: a 200 KB window fills it
    bottleneck = {"delay": 0.01, "bandwidth": 10e6, "queue_limit": 400_000}
    clean, _, clean_time = await _run_transfer(ca, server_cert, LinkConditions(**bottleneck))
    marked, links, marked_time = await _run_transfer(
        ca, server_cert, LinkConditions(**bottleneck, ce_threshold=20_000))
    assert marked.ecn_state == "capable"
    assert links.ce_marked > 0 and links.dropped_queue == 0 and marked.packets_lost == 0
    assert marked.ecn_ce_reported == links.ce_marked  # every upstream mark reached the client
    # an AQM that marks once 20 KB are queued: the sender keeps its window near the path's
    # capacity instead of filling the queue, and the transfer takes hardly longer (NewReno
    # halving below the 200 KB path capacity now and then costs a little: 0.23 s vs 0.20 s)
    assert clean.congestion_window > 600_000
    assert marked.congestion_window < 300_000
    assert marked_time == pytest.approx(clean_time, rel=0.2)


async def test_ecn_virtual_network_bleaching_path_costs_nothing(
    ca, server_cert, autojump_clock
) -> None:
    bottleneck = {"delay": 0.01, "bandwidth": 10e6, "queue_limit": 200_000}
    plain, _, plain_time = await _run_transfer(ca, server_cert, LinkConditions(**bottleneck))
    bleached, links, bleached_time = await _run_transfer(
        ca, server_cert, LinkConditions(**bottleneck, ecn_rewrite=lambda d, e, i: 0))
    assert bleached.ecn_state == "failed" and links.ecn_rewritten > 0
    assert plain.ecn_state == "capable"
    assert bleached_time == pytest.approx(plain_time, rel=0.1)
