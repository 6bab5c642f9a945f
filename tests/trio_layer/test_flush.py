"""Who sends what the engine queued (``connection.py`` docstring, "Flushing"), checked on the
virtual network in virtual time: the tap records when each datagram leaves."""

from __future__ import annotations

import trio

import trio_zttp
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


async def test_flush_first_flights_leave_from_the_tasks_that_made_them(
    ca, server_cert, autojump_clock
) -> None:
    # The client's first Initial leaves from the task that called connect, the server's
    # answer from the endpoint's receive task: neither waits a scheduling round for the new
    # connection's driver to start.
    senders: list[str] = []

    def tap(datagram: WireDatagram) -> None:
        senders.append(trio.lowlevel.current_task().name)

    async with open_virtual_network(seed=5, tap=tap):
        async with connected_pair(ca, server_cert) as pair:
            assert pair.client.alpn_protocol is not None
    assert len(senders) > 2
    assert "_receive_loop" not in senders[0] and "_drive" not in senders[0], senders
    assert senders[1].endswith("_receive_loop"), senders


class _DriverSteps(trio.abc.Instrument):
    """Counts the scheduling steps of the connections' driver tasks while ``on``."""

    def __init__(self) -> None:
        self.on = False
        self.steps: dict[bool, int] = {True: 0, False: 0}  # by is_client

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        if self.on and task.name.endswith("._drive"):
            frame = task.coro.cr_frame  # the driver's connection: is it the client's?
            connection = frame.f_locals["self"] if frame is not None else None
            if connection is not None:
                self.steps[connection.is_client] += 1


async def test_flush_closing_period_costs_the_driver_one_wake_up(
    ca, server_cert, autojump_clock
) -> None:
    # The server closes with data in flight: its timer was the PTO, and becomes the closing
    # period's end, later.  The driver wakes when the closing period ends, not also at the
    # PTO's stale deadline.
    counter = _DriverSteps()
    async with open_virtual_network(seed=6, conditions=LinkConditions(delay=DELAY)):
        async with connected_pair(ca, server_cert) as pair:
            stream = pair.client.open_stream()
            await stream.send_all(b"hello")
            peer = await pair.server.accept_stream()
            assert await peer.receive_some() == b"hello"
            await trio.sleep(1)  # every ACK went: nothing in flight but what follows
            await peer.send_all(b"world")
            trio.lowlevel.add_instrument(counter)
            counter.on = True
            await pair.server.aclose()  # waits out its closing period
            counter.on = False
            trio.lowlevel.remove_instrument(counter)
    assert counter.steps[False] == 1, counter.steps


class _SlowEngine:
    """Our engine, whose ``receive_datagram`` takes ``cost`` seconds of (mock) time."""

    def __init__(self, clock: trio.testing.MockClock, *args: object, **kwargs: object) -> None:
        self._inner = ENGINE(*args, **kwargs)
        self._clock = clock
        self.cost = 0.0

    def receive_datagram(self, *args: object, **kwargs: object) -> None:
        self._clock.jump(self.cost)
        self._inner.receive_datagram(*args, **kwargs)

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)


async def test_flush_deferral_counts_from_the_end_of_a_slow_batch(
    ca, server_cert, autojump_clock
) -> None:
    # Reading the server's last handshake flight takes longer than FLUSH_DEFERRAL (it can,
    # on a busy machine): the task it wakes still gets its FLUSH_DEFERRAL to answer, so the
    # client's Finished and its first stream data share one datagram (when the deferral
    # counted from the wake-up, the driver often sent the Finished alone).
    engines: list[_SlowEngine] = []

    def factory(*args: object, **kwargs: object) -> _SlowEngine:
        engine = _SlowEngine(autojump_clock, *args, **kwargs)
        engine.cost = 2 * FLUSH_DEFERRAL
        engines.append(engine)
        return engine

    for seed in range(6):
        seen: list[WireDatagram] = []
        async with (
            open_virtual_network(
                seed=10 + seed, conditions=LinkConditions(delay=DELAY), tap=seen.append
            ),
            trio_zttp.open_quic_endpoint(
                ("127.0.0.1", 0), server_configuration(server_cert), connection_factory=ENGINE
            ) as server_endpoint,
            trio_zttp.open_quic_endpoint(
                ("127.0.0.1", 0), client_configuration(ca), connection_factory=factory
            ) as client_endpoint,
        ):
            async with client_endpoint.connect(
                server_endpoint.local_address, server_name="localhost"
            ) as client:
                ready = trio.current_time()
                stream = client.open_stream()
                await stream.send_all(b"hello")
                server = await server_endpoint.accept()
                async with server:
                    peer = await server.accept_stream()
                    assert await peer.receive_some() == b"hello"
                    got = trio.current_time()
            late = [
                d for d in seen
                if d.destination == server_endpoint.local_address and ready <= d.time < got
            ]
            assert len(late) == 1, (seed, [(d.time - ready, len(d.data)) for d in late])


async def test_flush_an_idle_connection_is_driven_by_the_receive_task(
    ca, server_cert, autojump_clock
) -> None:
    # Datagram ping-pong on an established connection: each datagram finds its connection's
    # driver waiting, so the endpoint's receive task handles it right after routing the batch
    # (connection.py, "Driving"), and the task it wakes sends the answer.  The drivers only
    # wake for timers (a few ACK delays at most), not once per datagram.
    counter = _DriverSteps()
    rounds = 20
    async with open_virtual_network(seed=8, conditions=LinkConditions(delay=DELAY)):
        async with connected_pair(ca, server_cert) as pair:

            async def echo() -> None:
                while True:
                    await pair.server.send_datagram(await pair.server.receive_datagram())

            async with trio.open_nursery() as nursery:
                nursery.start_soon(echo)
                await trio.sleep(1)  # handshake leftovers settle
                trio.lowlevel.add_instrument(counter)
                counter.on = True
                for i in range(rounds):
                    await pair.client.send_datagram(b"%d" % i)
                    assert await pair.client.receive_datagram() == b"%d" % i
                counter.on = False
                trio.lowlevel.remove_instrument(counter)
                nursery.cancel_scope.cancel()
    assert counter.steps[True] + counter.steps[False] <= 4, counter.steps


async def test_flush_batches_that_keep_waking_silent_tasks_do_not_push_it_back(
    ca, server_cert, autojump_clock
) -> None:
    # Ten datagrams half a FLUSH_DEFERRAL apart, each waking a reader that then sleeps
    # without touching the connection: every batch would defer the flush again.  The first
    # deferral's deadline stands, so the ACK leaves FLUSH_DEFERRAL after the first datagram,
    # not after the last.
    seen: list[WireDatagram] = []
    count = 10
    async with (
        open_virtual_network(seed=5, conditions=LinkConditions(delay=DELAY)) as network,
        connected_pair(ca, server_cert) as pair,
    ):
        await trio.sleep(1)  # handshake leftovers settle

        async def silent_reader() -> None:
            await pair.client.receive_datagram()
            await trio.sleep(10)  # never touches the connection again

        async with trio.open_nursery() as nursery:
            for _ in range(count):
                nursery.start_soon(silent_reader)
            await trio.sleep(0.1)
            network.tap = seen.append
            sent_at = trio.current_time()
            for i in range(count):
                await pair.server.send_datagram(b"%d" % i)
                await trio.sleep(FLUSH_DEFERRAL / 2)
            await trio.sleep(0.1)
            network.tap = None
            nursery.cancel_scope.cancel()
    server = pair.server_endpoint.local_address
    to_server = [d.time for d in seen if (d.destination[0], d.destination[1]) == server]
    assert to_server, "the client never acknowledged"
    assert to_server[0] <= sent_at + DELAY + FLUSH_DEFERRAL * 1.5 + 1e-6, to_server[0] - sent_at
