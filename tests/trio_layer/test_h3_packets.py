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


async def test_a_new_connection_answers_finished_and_request_in_one_datagram(
    ca, server_cert, autojump_clock
) -> None:
    # Client: its Finished and the first request leave together.  Server: HANDSHAKE_DONE,
    # the session ticket, its SETTINGS and the response leave together, although the batch
    # also started the connection's tasks (one of them parks in accept at once) and attached
    # the HTTP/3 engine (a synchronous poke): neither may flush before the handler answers.
    async def handler(request: trio_zttp.H3Request) -> None:
        await request.respond(200, body=b"x" * 100)

    seen: list[WireDatagram] = []
    async with (
        open_virtual_network(seed=2, conditions=LinkConditions(delay=0.005)) as network,
        served(handler, server_cert) as server,
    ):
        network.tap = seen.append
        async with h3_client(ca, server.port) as conn:
            assert len(await (await conn.request("GET", "/")).read()) == 100
            network.tap = None
    flights: dict[tuple[bool, float], int] = {}
    for datagram in seen:
        key = (datagram.destination[1] == server.port, round(datagram.time, 6))
        flights[key] = flights.get(key, 0) + 1
    to_server = [count for (upstream, _), count in sorted(flights.items(), key=lambda i: i[0][1])
                 if upstream]
    to_client = [count for (upstream, _), count in sorted(flights.items(), key=lambda i: i[0][1])
                 if not upstream]
    assert to_server[:2] == [1, 1], flights  # the Initial; Finished + request
    assert to_client[1] == 1, flights  # after the handshake flight: one answer
