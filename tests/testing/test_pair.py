"""The sans-IO pair driver, against aioquic on both sides and against a tiny fake connection."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from typing import Any

import attrs
import pytest
from aioquic.quic.events import (
    ConnectionTerminated,
    HandshakeCompleted,
    StreamDataReceived,
)

from tests.testing._peers import Identity, aioquic_client, aioquic_server_factory, make_identity
from trio_zttp.testing import (
    Address,
    DriverTimeoutError,
    LinkConditions,
    Pair,
    Side,
    StalledError,
    WireDatagram,
)

MEGABYTE = bytes(range(256)) * 4096


@pytest.fixture(scope="module")
def identity() -> Identity:
    return make_identity()


def aioquic_pair(identity: Identity, *, idle_timeout: float = 60.0, **kwargs: Any) -> Pair:
    client = aioquic_client(identity, idle_timeout=idle_timeout)
    return Pair(client, aioquic_server_factory(identity, idle_timeout=idle_timeout), **kwargs)


@attrs.define
class StreamSink:
    """Collects one stream's data on one side and remembers when it ended."""

    side: Side
    data: bytearray = attrs.field(factory=bytearray)
    ended: bool = False

    def __call__(self, side: Side, event: object) -> None:
        if side == self.side and isinstance(event, StreamDataReceived) and event.stream_id == 0:
            self.data += event.data
            self.ended = self.ended or event.end_stream


def handshake(pair: Pair) -> None:
    pair.connect()
    pair.run_until_event("client", HandshakeCompleted)
    pair.run_until(lambda: any(isinstance(e, HandshakeCompleted) for e in pair.server_events))


def upload(pair: Pair, payload: bytes, *, timeout: float = 120.0) -> bytes:
    sink = StreamSink("server")
    pair.on_event = sink
    pair.client.send_stream_data(0, payload, end_stream=True)  # type: ignore[attr-defined]
    pair.run_until(lambda: sink.ended, timeout=timeout)
    return bytes(sink.data)


def test_pair_handshake_clean_link(identity: Identity) -> None:
    pair = aioquic_pair(identity, link=LinkConditions(delay=0.015))
    pair.connect()
    event = pair.run_until_event("client", HandshakeCompleted)
    assert isinstance(event, HandshakeCompleted)
    assert event.alpn_protocol == "test"
    # one round trip of 2 x 15 ms, no retransmission
    assert pair.now == pytest.approx(0.03)
    pair.run_until(lambda: any(isinstance(e, HandshakeCompleted) for e in pair.server_events))
    assert pair.now == pytest.approx(0.045)
    stats = pair.statistics()
    assert pair.client_to_server.statistics().dropped == 0
    assert stats.server_datagrams_received == stats.client_datagrams_sent
    assert stats.unroutable == stats.injected == 0


def test_pair_transfer_over_five_percent_loss(identity: Identity) -> None:
    pair = aioquic_pair(identity, link=LinkConditions(loss=0.05, delay=0.01), seed=3)
    handshake(pair)
    received = upload(pair, MEGABYTE)
    assert hashlib.sha256(received).digest() == hashlib.sha256(MEGABYTE).digest()
    lost = pair.client_to_server.statistics().dropped_loss
    assert lost > 20
    # everything lost was sent again
    assert pair.statistics().client_bytes_sent > len(MEGABYTE) + lost * 1000


def heavy_run(identity: Identity) -> tuple[bytes, list[object], list[tuple[float, int]]]:
    conditions = LinkConditions(loss=0.2, reorder=0.1, duplicate=0.1, delay=0.01, jitter=0.002)
    trace: list[object] = []
    wire: list[tuple[float, int]] = []
    sink = StreamSink("server")

    def on_event(side: Side, event: object) -> None:
        sink(side, event)
        trace.append((pair.now, side, type(event).__name__, getattr(event, "stream_id", None),
                      len(getattr(event, "data", b""))))

    pair = aioquic_pair(identity, link=conditions, seed=11, on_event=on_event,
                        tap=lambda side, d: wire.append((d.time, len(d.data))))
    pair.connect()
    pair.run_until_event("server", HandshakeCompleted)
    pair.client.send_stream_data(0, MEGABYTE, end_stream=True)  # type: ignore[attr-defined]
    pair.run_until(lambda: sink.ended, timeout=600.0)
    stats = pair.client_to_server.statistics()
    assert stats.dropped_loss > 100 and stats.duplicated > 50 and stats.reordered > 50
    trace += [stats, pair.server_to_client.statistics()]
    return bytes(sink.data), trace, wire


def test_pair_transfer_heavy_impairment_is_deterministic(identity: Identity) -> None:
    received, trace, wire = heavy_run(identity)
    assert hashlib.sha256(received).digest() == hashlib.sha256(MEGABYTE).digest()
    again, trace_again, wire_again = heavy_run(identity)
    assert again == received
    assert trace_again == trace
    assert wire_again == wire


def test_pair_handshake_survives_first_client_datagram_dropped(identity: Identity) -> None:
    sent_by_client: list[WireDatagram] = []
    pair = aioquic_pair(
        identity,
        client_to_server=LinkConditions(delay=0.01, drop_filter=lambda d, i: i == 0),
        server_to_client=LinkConditions(delay=0.01),
        tap=lambda side, d: sent_by_client.append(d) if side == "client" else None,
    )
    pair.connect()
    pair.run_until_event("client", HandshakeCompleted)
    assert pair.client_to_server.statistics().dropped_filter == 1
    # the client sent its Initial a second time after a probe timeout
    initials = [d for d in sent_by_client if d.data[0] & 0xF0 == 0xC0]
    assert len(initials) >= 2 and initials[1].time > 0.1
    assert pair.now > initials[1].time


def test_pair_corruption_is_ignored(identity: Identity) -> None:
    pair = aioquic_pair(identity, link=LinkConditions(delay=0.01), seed=5)
    handshake(pair)
    corrupting = LinkConditions(delay=0.01, corrupt=0.05)
    pair.client_to_server.conditions = corrupting
    pair.server_to_client.conditions = corrupting
    pair.inject("server", b"\x40" + bytes(range(100)))
    received = upload(pair, MEGABYTE)
    assert received == MEGABYTE
    assert pair.client_to_server.statistics().corrupted > 20
    assert pair.statistics().injected == 1
    assert not any(isinstance(e, ConnectionTerminated)
                   for e in pair.server_events + pair.client_events)


def test_pair_idle_timeout_fires_in_virtual_time(identity: Identity) -> None:
    pair = aioquic_pair(identity, idle_timeout=5.0, link=LinkConditions(delay=0.01))
    handshake(pair)
    started_virtual, started_wall = pair.now, time.perf_counter()
    event = pair.run_until_event("client", ConnectionTerminated)
    elapsed_virtual = pair.now - started_virtual
    elapsed_wall = time.perf_counter() - started_wall
    assert isinstance(event, ConnectionTerminated)
    assert event.reason_phrase == "Idle timeout"
    assert 5.0 <= elapsed_virtual < 6.0
    assert elapsed_wall < elapsed_virtual / 10


def test_pair_client_migration_mid_transfer(identity: Identity) -> None:
    def echo(side: Side, event: object) -> None:
        if side == "server" and isinstance(event, StreamDataReceived):
            pair.server.send_stream_data(  # type: ignore[attr-defined]
                event.stream_id, event.data, end_stream=event.end_stream)

    sink = StreamSink("client")

    def on_event(side: Side, event: object) -> None:
        echo(side, event)
        sink(side, event)

    destinations: set[Address] = set()
    pair = aioquic_pair(identity, link=LinkConditions(delay=0.01), seed=2, on_event=on_event,
                        tap=lambda side, d: destinations.add(d.destination)
                        if side == "server" else None)
    handshake(pair)
    pair.client.send_stream_data(0, MEGABYTE, end_stream=True)  # type: ignore[attr-defined]
    pair.run_until(lambda: len(sink.data) > 200_000)
    assert len(sink.data) < len(MEGABYTE)
    old = pair.address("client")
    pair.change_address("client", ("10.9.9.9", 61000))
    pair.run_until(lambda: sink.ended)
    assert bytes(sink.data) == MEGABYTE
    assert pair.server.get_peer_address() == ("10.9.9.9", 61000)  # type: ignore[attr-defined]
    assert destinations == {old, ("10.9.9.9", 61000)}
    # what was in flight to the old address got lost
    assert pair.statistics().unroutable > 0


# --- driver semantics, with a tiny fake connection ---------------------------------------------


@attrs.define
class Pinger:
    """Sends ``ping`` every ``interval`` seconds until it hears ``pong``; a server answers."""

    is_client: bool
    interval: float = 1.0
    pings: int = 0
    timer: float | None = None
    outbox: list[tuple[bytes, Address]] = attrs.field(factory=list)
    events: list[object] = attrs.field(factory=list)
    peer: Address | None = None

    def connect(self, addr: Address, now: float, /) -> None:
        self.peer = addr
        self.timer = now

    def receive_datagram(self, data: bytes, addr: Address, now: float, /) -> None:
        self.events.append((data, addr, now))
        if not self.is_client and data == b"ping":
            self.outbox.append((b"pong", addr))
        elif data == b"pong":
            self.timer = None

    def datagrams_to_send(self, now: float, /) -> Sequence[tuple[bytes, Address]]:
        out, self.outbox = self.outbox, []
        return out

    def get_timer(self) -> float | None:
        return self.timer

    def handle_timer(self, now: float, /) -> None:
        assert self.peer is not None and self.timer is not None and now >= self.timer
        self.pings += 1
        self.outbox.append((b"ping", self.peer))
        self.timer = now + self.interval

    def next_event(self) -> object | None:
        return self.events.pop(0) if self.events else None


def pinger_pair(**kwargs: Any) -> Pair:
    return Pair(Pinger(is_client=True), Pinger(is_client=False), **kwargs)


def test_pair_stalls_when_nothing_can_happen() -> None:
    pair = pinger_pair(link=LinkConditions(delay=0.25))
    pair.connect()
    pair.run_until(lambda: pair.client_events)
    assert pair.now == 0.5
    with pytest.raises(StalledError, match="nothing in flight"):
        pair.run_until(lambda: False)


def test_pair_times_out_in_virtual_time() -> None:
    pair = pinger_pair(link=LinkConditions(loss=1.0))
    pair.connect()
    with pytest.raises(DriverTimeoutError, match="virtual timeout"):
        pair.run_until(lambda: pair.client_events, timeout=10.5)
    assert pair.now == 10.5
    assert pair.client_to_server.statistics().dropped_loss == 11


def test_pair_max_steps() -> None:
    pair = pinger_pair(link=LinkConditions(loss=1.0))
    pair.connect()
    with pytest.raises(DriverTimeoutError, match="3 steps"):
        pair.run_until(lambda: False, max_steps=3)


def test_pair_run_for_moves_the_clock_exactly() -> None:
    pair = pinger_pair(start_time=100.0, link=LinkConditions(loss=1.0))
    pair.connect()
    pair.run_for(2.5)
    assert pair.now == 102.5
    assert pair.client.pings == 3  # type: ignore[attr-defined]


def test_pair_inject_tap_and_statistics() -> None:
    wire: list[tuple[Side | None, WireDatagram]] = []
    pair = pinger_pair(client_addr=("::1", 1, 0, 0), server_addr=("::2", 2, 0, 0),
                       tap=lambda side, d: wire.append((side, d)))
    pair.inject("client", b"hello", source=("::9", 9, 0, 0), delay=0.5)
    pair.run_until(lambda: pair.client_events)
    assert pair.client_events == [(b"hello", ("::9", 9, 0, 0), 0.5)]
    pair.connect()
    pair.run_until(lambda: len(pair.client_events) == 2)
    assert [(side, d.source, d.destination, d.data) for side, d in wire] == [
        (None, ("::9", 9, 0, 0), ("::1", 1, 0, 0), b"hello"),
        ("client", ("::1", 1, 0, 0), ("::2", 2, 0, 0), b"ping"),
        ("server", ("::2", 2, 0, 0), ("::1", 1, 0, 0), b"pong"),
    ]
    stats = pair.statistics()
    assert (stats.client_bytes_sent, stats.server_bytes_received, stats.server_bytes_sent) == (
        4, 4, 4)
    assert (stats.client_datagrams_received, stats.client_bytes_received) == (2, 9)
    assert stats.injected == 1


def test_pair_change_address_drops_old_unless_kept() -> None:
    pair = Pair(Pinger(is_client=True, interval=1.5), Pinger(is_client=False),
                link=LinkConditions(delay=1.0))
    pair.connect()
    pair.run_until(lambda: pair.server_events)  # ping arrived, pong in flight to the old address
    pair.change_address("client", ("10.0.0.5", 5))
    pair.run_until(lambda: len(pair.server_events) == 2)
    assert pair.server_events[1][1] == ("10.0.0.5", 5)  # type: ignore[index]
    assert pair.statistics().unroutable == 1
    pair.change_address("client", ("10.0.0.6", 6), keep_old=True)
    server = pair.server
    assert isinstance(server, Pinger)
    server.outbox.append((b"to old", ("10.0.0.5", 5)))
    count = len(pair.client_events)
    pair.run_until(lambda: len(pair.client_events) > count)
    assert pair.client_events[-1][:2] == (b"to old", pair.address("server"))  # type: ignore[index]
    assert pair.address("client") == ("10.0.0.6", 6)
    with pytest.raises(ValueError, match="belongs to the server"):
        pair.change_address("client", pair.address("server"))


def test_pair_server_factory_gets_first_datagram() -> None:
    made: list[tuple[bytes, Address]] = []

    def factory(data: bytes, source: Address) -> Pinger:
        made.append((data, source))
        return Pinger(is_client=False)

    pair = Pair(Pinger(is_client=True), factory)
    with pytest.raises(RuntimeError):
        pair.server  # noqa: B018
    pair.connect()
    pair.run_until(lambda: pair.client_events)
    assert made == [(b"ping", ("10.0.0.1", 50000))]
    assert isinstance(pair.server, Pinger)


def test_pair_on_event_can_issue_commands() -> None:
    calls: list[tuple[Side, object]] = []

    def on_event(side: Side, event: object) -> None:
        calls.append((side, event))
        if side == "client" and len(calls) < 6:
            server = pair.server
            assert isinstance(server, Pinger)
            server.outbox.append((b"extra", pair.address("client")))

    pair = pinger_pair(on_event=on_event)
    pair.connect()
    pair.run_until(lambda: len(pair.client_events) >= 4)
    assert [event[0] for side, event in calls if side == "client"][:4] == [  # type: ignore[index]
        b"pong", b"extra", b"extra", b"extra"]


def test_pair_rejects_unknown_side_and_shared_address() -> None:
    with pytest.raises(ValueError):
        pinger_pair(client_addr=("1.1.1.1", 1), server_addr=("1.1.1.1", 1))
    pair = pinger_pair()
    with pytest.raises(ValueError):
        pair.inject("middle", b"")  # type: ignore[arg-type]


def test_pair_timer_still_due_after_firing_waits_one_tick() -> None:
    # a connection whose timer stays at `now` after handle_timer must not spin the driver
    pair = Pair(Pinger(is_client=True, interval=0.0), Pinger(is_client=False),
                link=LinkConditions(loss=1.0))
    pair.connect()
    pair.run_for(10.5e-6)
    assert pair.client.pings == 11  # type: ignore[attr-defined]
