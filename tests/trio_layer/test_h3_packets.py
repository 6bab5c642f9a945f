"""Packets per exchange: what the driver's coalescing buys, counted on the virtual network.

A sequential GET costs one datagram each way once the connection is warm: the server's ACK,
its QPACK decoder instruction and the response leave together, and so do the client's ACK,
its QPACK acknowledgement and the next request.  Without the coalescing (flush as soon as
the driver has handled a datagram) the server sent three datagrams per GET and the client
two; the bounds below sit between the two behaviours.
"""

from __future__ import annotations

import trio

import trio_zttp
from trio_zttp.testing import LinkConditions, WireDatagram, open_virtual_network

from ._h3_helpers import h3_client, served

ROUNDS = 40


async def test_sequential_gets_cost_about_one_datagram_each_way(
    ca, server_cert, autojump_clock
) -> None:
    async def handler(request: trio_zttp.H3Request) -> None:
        await request.respond(200, body=b"x" * 100)

    seen: list[WireDatagram] = []
    async with (
        open_virtual_network(seed=1, conditions=LinkConditions(delay=0.005)) as network,
        served(handler, server_cert) as server,
        h3_client(ca, server.port) as conn,
    ):
        for _ in range(5):  # warm up: SETTINGS, QPACK dynamic table, the first ACKs
            await (await conn.request("GET", "/")).read()
        network.tap = seen.append
        with trio.fail_after(30):
            for _ in range(ROUNDS):
                assert len(await (await conn.request("GET", "/")).read()) == 100
        network.tap = None
    to_server = sum(1 for d in seen if d.destination[1] == server.port)
    to_client = len(seen) - to_server
    assert to_server <= 1.5 * ROUNDS, (to_server, to_client)
    assert to_client <= 1.5 * ROUNDS, (to_server, to_client)


async def test_datagram_echo_costs_one_datagram_each_way(
    ca, server_cert, autojump_clock
) -> None:
    async def handler(request: trio_zttp.H3Request) -> None:
        await request.respond(200)
        stream = request.http_stream()
        while True:
            try:
                data = await stream.receive_datagram()
            except trio.EndOfChannel:
                return
            await stream.send_datagram(data)

    seen: list[WireDatagram] = []
    async with (
        open_virtual_network(seed=2, conditions=LinkConditions(delay=0.005)) as network,
        served(handler, server_cert) as server,
        h3_client(ca, server.port) as conn,
        conn.open_request_stream() as stream,
    ):
        await stream.send_request_header("CONNECT", "/", protocol="echo")
        assert (await stream.read_response()).status == 200
        await stream.send_datagram(b"warm")
        assert await stream.receive_datagram() == b"warm"
        network.tap = seen.append
        with trio.fail_after(30):
            for i in range(ROUNDS):
                await stream.send_datagram(b"%d" % i)
                assert await stream.receive_datagram() == b"%d" % i
        network.tap = None
        await stream.send_eof()
    # one DATAGRAM frame each way per round trip, plus an ACK now and then (DATAGRAM frames
    # are ack-eliciting): well under two datagrams each way
    to_server = sum(1 for d in seen if d.destination[1] == server.port)
    to_client = len(seen) - to_server
    assert to_server <= 1.5 * ROUNDS, (to_server, to_client)
    assert to_client <= 1.5 * ROUNDS, (to_server, to_client)


async def test_new_connection_first_get_answered_in_one_datagram(
    ca, server_cert, autojump_clock
) -> None:
    # The client's Finished and its GET arrive together.  The server's connection task starts
    # straight from the driver and its handler answers before the driver's deferred flush:
    # HANDSHAKE_DONE, the ACKs and the response share one datagram (it used to take two:
    # attaching the HTTP/3 connection woke the driver, which sent the first alone).
    async def handler(request: trio_zttp.H3Request) -> None:
        await request.respond(200, body=b"x" * 100)

    for seed in range(3):
        seen: list[WireDatagram] = []
        async with (
            open_virtual_network(seed=10 + seed, conditions=LinkConditions(delay=0.005)) as net,
            served(handler, server_cert) as server,
        ):
            net.tap = seen.append
            with trio.fail_after(30):
                async with h3_client(ca, server.port) as conn:
                    started = trio.current_time()
                    assert len(await (await conn.request("GET", "/")).read()) == 100
                    answered = trio.current_time()
                    net.tap = None
        # the GET leaves with the client's Finished; its answer is one datagram later
        late = [d for d in seen if started <= d.time <= answered]
        to_client = [d for d in late if d.destination[1] != server.port]
        assert len(to_client) == 1, [(d.time - started, len(d.data)) for d in late]
