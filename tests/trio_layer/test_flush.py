"""Who sends what the engine queued (``connection.py`` docstring, "Flushing"), checked on the
virtual network in virtual time: the tap records when each datagram leaves."""

from __future__ import annotations

from typing import Any

import trio

import trio_zttp
from trio_zttp import quic
from trio_zttp._trio.connection import FLUSH_DEFERRAL
from trio_zttp.testing import LinkConditions, WireDatagram, open_virtual_network

from ._helpers import ENGINE, client_configuration, connected_pair, server_configuration

DELAY = 0.005


async def test_flush_deferred_to_a_woken_task_that_stays_silent_still_leaves(
    ca, server_cert, autojump_clock
) -> None:
    # Two DATAGRAM frames in two packets: after the second the client owes an immediate ACK
    # (RFC 9000 §13.2.2), which is no timer of the engine's.  The task the second wakes
    # answers nothing and sleeps: the driver's deferred flush sends the ACK, after
    # FLUSH_DEFERRAL at most.
    seen: list[WireDatagram] = []
    async with (
        open_virtual_network(seed=3, conditions=LinkConditions(delay=DELAY)) as network,
        connected_pair(ca, server_cert) as pair,
    ):
        await trio.sleep(1)  # handshake leftovers settle
        woke = trio.Event()

        async def silent_reader() -> None:
            await pair.client.receive_datagram()
            await pair.client.receive_datagram()  # parked again: the second packet wakes it
            woke.set()
            await trio.sleep(10)  # never touches the connection again

        async with trio.open_nursery() as nursery:
            nursery.start_soon(silent_reader)
            await trio.sleep(0.1)
            network.tap = seen.append
            sent_at = trio.current_time()
            await pair.server.send_datagram(b"one")
            await pair.server.send_datagram(b"two")
            await woke.wait()
            await trio.sleep(0.1)
            network.tap = None
            nursery.cancel_scope.cancel()
    server = pair.server_endpoint.local_address
    to_server = [d.time for d in seen if (d.destination[0], d.destination[1]) == server]
    assert to_server, "the client never acknowledged"
    # Deferred when the batch woke the reader (most runs: trio orders each scheduling batch
    # at random, and when the second packet lands after the reader ran it is sent at once),
    # but never for longer than FLUSH_DEFERRAL.
    assert to_server[0] <= sent_at + DELAY + FLUSH_DEFERRAL + 1e-6, to_server[0] - sent_at


async def test_flush_a_reply_leaves_with_the_ack(ca, server_cert, autojump_clock) -> None:
    # The woken task answers at once: ACK and answer share one datagram.
    seen: list[WireDatagram] = []
    async with (
        open_virtual_network(seed=4, conditions=LinkConditions(delay=DELAY)) as network,
        connected_pair(ca, server_cert) as pair,
    ):
        await trio.sleep(1)

        async def echo() -> None:
            while True:
                await pair.server.send_datagram(await pair.server.receive_datagram())

        async with trio.open_nursery() as nursery:
            nursery.start_soon(echo)
            for _ in range(3):  # warm up
                await pair.client.send_datagram(b"x")
                await pair.client.receive_datagram()
            network.tap = seen.append
            for i in range(20):
                await pair.client.send_datagram(b"%d" % i)
                assert await pair.client.receive_datagram() == b"%d" % i
            network.tap = None
            nursery.cancel_scope.cancel()
    server = pair.server_endpoint.local_address
    to_server = sum(1 for d in seen if (d.destination[0], d.destination[1]) == server)
    assert (to_server, len(seen) - to_server) == (20, 20)


async def test_flush_a_synchronous_call_wakes_the_driver(ca, server_cert, autojump_clock) -> None:
    # reset() cannot send (it is no async call): the driver sends the RESET_STREAM at once.
    async with (
        open_virtual_network(seed=5, conditions=LinkConditions(delay=DELAY)),
        connected_pair(ca, server_cert) as pair,
    ):
        stream = pair.client.open_stream()
        await stream.send_all(b"hello")
        peer = await pair.server.accept_stream()
        assert await peer.receive_some() == b"hello"
        started = trio.current_time()
        stream.reset(7)
        with trio.fail_after(1):
            while True:
                try:
                    await peer.receive_some()
                except trio_zttp.StreamResetError as exc:
                    assert exc.error_code == 7
                    break
        assert trio.current_time() - started <= DELAY + 1e-6



async def test_flush_a_slow_batch_still_leaves_its_woken_task_the_deferral(
    ca, server_cert, autojump_clock, monkeypatch
) -> None:
    # The server's flight takes the client a while (a certificate chain to verify: here the
    # engine's receive_datagram moves the clock 5 ms).  The handshake it completes wakes the
    # task in connect(), which sends at once: its STREAM frame must leave in the datagram
    # that carries the client's Finished, not after it (a deferral counted from the batch's
    # start would already be over when the batch ends).
    original = quic.Connection.receive_datagram
    slow: set[int] = set()

    def receive_datagram(self: quic.Connection, *args: Any, **kwargs: Any) -> None:
        if id(self) in slow:
            autojump_clock.jump(0.005)
        original(self, *args, **kwargs)

    monkeypatch.setattr(quic.Connection, "receive_datagram", receive_datagram)
    def slow_engine(configuration: Any) -> quic.Connection:
        engine = ENGINE(configuration)
        slow.add(id(engine))
        return engine

    seen: list[WireDatagram] = []
    async with (
        open_virtual_network(seed=6, conditions=LinkConditions(delay=DELAY)) as network,
        trio_zttp.open_quic_endpoint(
            ("127.0.0.1", 0), server_configuration(server_cert), connection_factory=ENGINE
        ) as server_endpoint,
        trio_zttp.open_quic_endpoint(
            ("127.0.0.1", 0), client_configuration(ca), connection_factory=slow_engine
        ) as client_endpoint,
    ):
        server = server_endpoint.local_address
        network.tap = seen.append
        # trio runs each scheduling batch in a random order: several handshakes, so that the
        # driver's turn before the woken task's comes up (it did about every other time)
        for attempt in range(8):
            async with client_endpoint.connect(server, server_name="localhost") as client:
                stream = client.open_stream()
                await stream.send_all(b"first words")
                peer = await server_endpoint.accept()
                async with peer:
                    assert await (await peer.accept_stream()).receive_some() == b"first words"
                    sent = [d for d in seen if (d.destination[0], d.destination[1]) == server]
                    # the Initial, then Finished and the stream data together
                    assert len(sent) == 2, (attempt, [len(d.data) for d in sent])
                    seen.clear()
            seen.clear()
        network.tap = None
