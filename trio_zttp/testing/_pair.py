"""Drive two sans-IO QUIC connections against each other over seeded lossy links, in virtual time.

:class:`Pair` works with any connection object that has the pull API of the sans-IO contract
(``receive_datagram(data, addr, now)``, ``datagrams_to_send(now)``, ``get_timer()``,
``handle_timer(now)``, ``next_event()``, and ``connect(addr, now)`` on the client):
``trio_zttp.quic.Connection`` and aioquic's ``QuicConnection`` alike. Each direction has its own
:class:`~trio_zttp.testing.Link`, seeded from the pair's seed, so a run is reproducible
whenever the connections themselves are.

Example, a handshake then an echo over a lossy link::

    pair = Pair(client, server_factory, link=LinkConditions(loss=0.05, delay=0.02), seed=1)
    pair.connect()
    pair.run_until_event("client", HandshakeCompleted)
    client.send_stream_data(0, b"ping", end_stream=True)
    pair.run_until(lambda: any(getattr(e, "end_stream", False) for e in pair.server_events))

**ECN.** A connection with an ``ecn_codepoint`` attribute (``trio_zttp.quic.Connection``) has
its datagrams sent with that codepoint, read after each ``datagrams_to_send``; the links may
rewrite it or mark CE (:class:`~trio_zttp.testing.LinkConditions`), and it reaches the other
side as ``receive_datagram(..., ecn=codepoint)`` if that side has ``ecn_codepoint`` too (other
connections, such as aioquic's, get the datagram as if the network had cleared the mark).

The driver's loop, one step at a time: deliver every datagram due at ``now`` (draining the
receiver's events after each one), fire every timer due at ``now`` (each at most once per clock
value, see :data:`TIMER_RESOLUTION`), flush both sides' sends into
their links, then jump ``now`` to the earliest pending delivery or timer. Nothing sleeps, so
hours of virtual time cost only the connections' own work.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Sequence
from typing import Literal, Protocol, TypeAlias, TypeVar, final, runtime_checkable

import attrs

from ._link import Address, Link, LinkConditions, WireDatagram

__all__ = [
    "DriverError",
    "DriverTimeoutError",
    "Pair",
    "PairStatistics",
    "SansIOClient",
    "SansIOConnection",
    "ServerFactory",
    "Side",
    "StalledError",
]

Side: TypeAlias = Literal["client", "server"]
_SIDES: tuple[Side, Side] = ("client", "server")
_BOTH = (0, 1)
_E = TypeVar("_E")

TIMER_RESOLUTION = 1e-6
"""A timer fires at most once per clock value: if it is still due after ``handle_timer(now)``,
it fires again ``TIMER_RESOLUTION`` seconds later (sooner if something else happens first)."""


@runtime_checkable
class SansIOConnection(Protocol):
    """What the driver needs from a connection (the sans-IO contract's pull API)."""

    def receive_datagram(self, data: bytes, addr: Address, now: float, /) -> None: ...

    def datagrams_to_send(self, now: float, /) -> Sequence[tuple[bytes, Address]]: ...

    def get_timer(self) -> float | None: ...

    def handle_timer(self, now: float, /) -> None: ...

    def next_event(self) -> object | None: ...


@runtime_checkable
class SansIOClient(SansIOConnection, Protocol):
    """A client connection: a :class:`SansIOConnection` that can ``connect``."""

    def connect(self, addr: Address, now: float, /) -> None: ...


ServerFactory: TypeAlias = Callable[[bytes, Address], SansIOConnection]
"""Builds the server connection from the first datagram it receives and that datagram's source
(aioquic's server needs the client's original destination connection ID, for instance)."""


class DriverError(Exception):
    """The pair driver could not reach the condition it was asked to run until."""


class StalledError(DriverError):
    """Nothing can happen any more: no datagram in flight and no timer armed."""


class DriverTimeoutError(DriverError):
    """The virtual-time timeout passed, or the step budget ran out, first."""


@final
@attrs.frozen(kw_only=True)
class PairStatistics:
    """Datagram and byte counts per side. ``sent`` counts what a side emitted (before the link),
    ``received`` what was handed to its ``receive_datagram`` (after the link).

    Attributes:
        client_datagrams_sent: Datagrams the client emitted.
        client_bytes_sent: Their bytes.
        client_datagrams_received: Datagrams delivered to the client.
        client_bytes_received: Their bytes.
        server_datagrams_sent: Datagrams the server emitted.
        server_bytes_sent: Their bytes.
        server_datagrams_received: Datagrams delivered to the server.
        server_bytes_received: Their bytes.
        injected: Datagrams added with :meth:`Pair.inject`.
        unroutable: Deliveries to an address neither side holds (dropped).
    """

    client_datagrams_sent: int
    client_bytes_sent: int
    client_datagrams_received: int
    client_bytes_received: int
    server_datagrams_sent: int
    server_bytes_sent: int
    server_datagrams_received: int
    server_bytes_received: int
    injected: int
    unroutable: int


def _index(side: Side) -> int:
    if side == "client":
        return 0
    if side == "server":
        return 1
    raise ValueError(f"side must be 'client' or 'server', not {side!r}")


@final
class Pair:
    """A client and a server connection joined by two seeded links and a virtual clock.

    Args:
        client: The client connection; :meth:`connect` calls its ``connect``.
        server: The server connection, or a :data:`ServerFactory` called with the first
            datagram delivered to ``server_addr``.
        client_addr: The client's address as the server sees it.
        server_addr: The server's address.
        link: Conditions for both directions (default: a perfect link).
        client_to_server: Conditions for the client-to-server direction, overriding ``link``.
        server_to_client: Conditions for the server-to-client direction, overriding ``link``.
        seed: Seeds both links (each direction draws from its own generator).
        start_time: The virtual clock's starting value.
        on_event: Called as ``on_event(side, event)`` for every event, right after it is
            drained; it may issue commands on either connection (e.g. echo data).
        tap: Called as ``tap(side, datagram)`` for every datagram put on the wire, before the
            link's impairments; ``side`` is ``None`` for :meth:`inject`-ed datagrams.
    """

    __slots__ = (
        "_addrs", "_client", "_conns", "_dirty", "_ecn", "_events", "_factory", "_fired_at",
        "_heap",
        "_injected", "_links", "_now", "_owners", "_recv_bytes", "_recv_datagrams",
        "_sent_bytes", "_sent_datagrams", "_seq", "_stale", "_timers", "_unroutable", "on_event",
        "tap",
    )

    def __init__(
        self,
        client: SansIOClient,
        server: SansIOConnection | ServerFactory,
        *,
        client_addr: Address = ("10.0.0.1", 50000),
        server_addr: Address = ("10.0.0.2", 4433),
        link: LinkConditions | None = None,
        client_to_server: LinkConditions | None = None,
        server_to_client: LinkConditions | None = None,
        seed: int = 0,
        start_time: float = 0.0,
        on_event: Callable[[Side, object], None] | None = None,
        tap: Callable[[Side | None, WireDatagram], None] | None = None,
    ) -> None:
        if client_addr == server_addr:
            raise ValueError("the client and the server need different addresses")
        self._client = client
        self._conns: list[SansIOConnection | None] = [client, None]
        self._factory: ServerFactory | None = None
        if isinstance(server, SansIOConnection):
            self._conns[1] = server
        else:
            self._factory = server
        self._addrs: list[Address] = [tuple(client_addr), tuple(server_addr)]
        self._owners: dict[Address, int] = {self._addrs[0]: 0, self._addrs[1]: 1}
        self._links = (
            Link(client_to_server or link, seed=f"{seed}:client->server"),
            Link(server_to_client or link, seed=f"{seed}:server->client"),
        )
        self._now = float(start_time)
        # (deliver at, tie-breaker, destination, source, datagram, ECN codepoint)
        self._heap: list[tuple[float, int, Address, Address, bytes, int]] = []
        # per side: None until its connection exists, then whether it takes ECN codepoints
        self._ecn: list[bool | None] = [None, None]
        self._seq = 0
        self._dirty = [True, True]
        self._timers: list[float | None] = [None, None]
        # a connection's timer changes only when the driver calls it: re-read it only then
        self._stale = [True, True]
        self._fired_at = [float("-inf"), float("-inf")]
        self._events: tuple[list[object], list[object]] = ([], [])
        self._sent_datagrams = [0, 0]
        self._sent_bytes = [0, 0]
        self._recv_datagrams = [0, 0]
        self._recv_bytes = [0, 0]
        self._injected = 0
        self._unroutable = 0
        self.on_event = on_event
        self.tap = tap

    # ------------------------------------------------------------------ state

    @property
    def now(self) -> float:
        """The virtual clock, in seconds."""
        return self._now

    @property
    def client(self) -> SansIOClient:
        """The client connection."""
        return self._client

    @property
    def server(self) -> SansIOConnection:
        """The server connection.

        Raises:
            RuntimeError: A server factory was given and no datagram has reached it yet.
        """
        server = self._conns[1]
        if server is None:
            raise RuntimeError("the server connection does not exist until its first datagram")
        return server

    @property
    def client_events(self) -> list[object]:
        """Every event the client produced, in order."""
        return self._events[0]

    @property
    def server_events(self) -> list[object]:
        """Every event the server produced, in order."""
        return self._events[1]

    @property
    def client_to_server(self) -> Link:
        """The client-to-server link: its conditions can be changed mid-run."""
        return self._links[0]

    @property
    def server_to_client(self) -> Link:
        """The server-to-client link: its conditions can be changed mid-run."""
        return self._links[1]

    @property
    def in_flight(self) -> int:
        """Datagrams scheduled for delivery and not yet delivered."""
        return len(self._heap)

    def address(self, side: Side) -> Address:
        """The address ``side`` currently sends from."""
        return self._addrs[_index(side)]

    def events(self, side: Side) -> list[object]:
        """Every event ``side`` produced, in order."""
        return self._events[_index(side)]

    def statistics(self) -> PairStatistics:
        """A snapshot of the per-side counters (the links have their own statistics)."""
        return PairStatistics(
            client_datagrams_sent=self._sent_datagrams[0],
            client_bytes_sent=self._sent_bytes[0],
            client_datagrams_received=self._recv_datagrams[0],
            client_bytes_received=self._recv_bytes[0],
            server_datagrams_sent=self._sent_datagrams[1],
            server_bytes_sent=self._sent_bytes[1],
            server_datagrams_received=self._recv_datagrams[1],
            server_bytes_received=self._recv_bytes[1],
            injected=self._injected,
            unroutable=self._unroutable,
        )

    # --------------------------------------------------------------- commands

    def connect(self) -> None:
        """Start the handshake: ``client.connect(server_addr, now)``."""
        self.client.connect(self._addrs[1], self._now)

    def change_address(self, side: Side, address: Address, *, keep_old: bool = False) -> None:
        """Move ``side`` to a new address, as after NAT rebinding or a migration.

        From now on ``side`` sends from ``address`` and receives what is sent to it. Datagrams
        still addressed to the old address are dropped (counted as ``unroutable``) unless
        ``keep_old`` is true, in which case the side keeps receiving on both.
        """
        i = _index(side)
        address = tuple(address)
        owner = self._owners.get(address)
        if owner is not None and owner != i:
            raise ValueError(f"{address!r} belongs to the {_SIDES[owner]}")
        if not keep_old:
            del self._owners[self._addrs[i]]
        self._owners[address] = i
        self._addrs[i] = address

    def inject(
        self,
        to: Side,
        data: bytes,
        *,
        source: Address | None = None,
        delay: float = 0.0,
        ecn: int = 0,
    ) -> None:
        """Deliver a raw datagram to ``to`` after ``delay`` virtual seconds, bypassing the links.

        Args:
            to: The receiving side (the datagram goes to its current address).
            data: The datagram.
            source: The source address the receiver sees (default: the other side's).
            delay: Seconds from now.
            ecn: The datagram's ECN codepoint (0-3; see the module documentation).
        """
        i = _index(to)
        if source is None:
            source = self._addrs[1 - i]
        destination = self._addrs[i]
        if self.tap is not None:
            self.tap(None, WireDatagram(
                time=self._now, source=source, destination=destination, data=bytes(data), ecn=ecn))
        self._injected += 1
        self._push(self._now + delay, destination, tuple(source), bytes(data), ecn)

    # ---------------------------------------------------------------- running

    def run_until(
        self,
        predicate: Callable[[], object],
        *,
        timeout: float = 60.0,
        max_steps: int = 1_000_000,
    ) -> None:
        """Step until ``predicate()`` is true; it is checked after every step's sends.

        Args:
            predicate: Checked before the first step and after each one.
            timeout: Virtual seconds to allow.
            max_steps: Steps to allow (one step handles every delivery and timer due at once).

        Raises:
            StalledError: Nothing is in flight and no timer is armed, so nothing can change.
            DriverTimeoutError: ``timeout`` virtual seconds or ``max_steps`` steps passed.
        """
        self._run(predicate, self._now + timeout, max_steps)

    def run_until_event(
        self,
        side: Side,
        event_type: type[_E],
        *,
        timeout: float = 60.0,
        max_steps: int = 1_000_000,
    ) -> _E:
        """Step until ``side`` produces an event of ``event_type`` and return it.

        Only events produced after the call count. Raises as :meth:`run_until` does.
        """
        events = self._events[_index(side)]
        start = len(events)
        found: list[_E] = []

        def seen() -> bool:
            for event in events[start:]:
                if isinstance(event, event_type):
                    found.append(event)
                    return True
            return False

        self._run(seen, self._now + timeout, max_steps)
        return found[0]

    def run_for(self, duration: float, *, max_steps: int = 1_000_000) -> None:
        """Step for ``duration`` virtual seconds; :attr:`now` ends at exactly ``now + duration``.

        Never raises :class:`StalledError`: with nothing left to do, the clock just moves on.
        """
        self._run(None, self._now + duration, max_steps)

    def _run(
        self, predicate: Callable[[], object] | None, deadline: float, max_steps: int
    ) -> None:
        # the caller may have issued commands on either connection since the last step
        self._dirty = [True, True]
        self._stale = [True, True]
        steps = 0
        while True:
            self._flush()
            if predicate is not None and predicate():
                return
            at = self._next_time()
            if at is None or at > deadline:
                if predicate is None:
                    self._now = max(self._now, deadline)
                    return
                if at is None:
                    raise StalledError(self._describe("stalled: nothing in flight, no timers"))
                self._now = max(self._now, deadline)
                raise DriverTimeoutError(self._describe("virtual timeout"))
            steps += 1
            if steps > max_steps:
                raise DriverTimeoutError(self._describe(f"{max_steps} steps taken"))
            if at > self._now:
                self._now = at
            self._process_due()

    def _next_time(self) -> float | None:
        at = self._heap[0][0] if self._heap else None
        conns = self._conns
        stale = self._stale
        timers = self._timers
        fired_at = self._fired_at
        for i in _BOTH:
            conn = conns[i]
            if conn is None:
                continue
            if stale[i]:
                stale[i] = False
                timer = timers[i] = conn.get_timer()
            else:
                timer = timers[i]
            if timer is None:
                continue
            if timer <= fired_at[i]:
                # still due right after firing: a real clock would have moved on by now, and
                # some connections wait for that (e.g. a loss time that rounds back to itself)
                timer = fired_at[i] + TIMER_RESOLUTION
            if at is None or timer < at:
                at = timer
        return at

    def _process_due(self) -> None:
        now = self._now
        heap = self._heap
        conns = self._conns
        dirty = self._dirty
        stale = self._stale
        owners = self._owners
        while heap and heap[0][0] <= now:
            _, _, destination, source, data, ecn = heapq.heappop(heap)
            i = owners.get(destination)
            if i is None:
                self._unroutable += 1
                continue
            conn = conns[i]
            if conn is None:
                assert self._factory is not None
                conn = conns[i] = self._factory(data, source)
            self._recv_datagrams[i] += 1
            self._recv_bytes[i] += len(data)
            if ecn and self._takes_ecn(i, conn):
                conn.receive_datagram(data, source, now, ecn=ecn)  # type: ignore[call-arg]
            else:
                conn.receive_datagram(data, source, now)
            dirty[i] = stale[i] = True
            if (event := conn.next_event()) is not None:
                self._drain(i, conn, event)
        timers = self._timers
        fired_at = self._fired_at
        for i in _BOTH:
            conn = conns[i]
            if conn is None:
                continue
            if stale[i]:
                stale[i] = False
                timer = timers[i] = conn.get_timer()
            else:
                timer = timers[i]
            if timer is not None and timer <= now and fired_at[i] < now:
                fired_at[i] = now
                conn.handle_timer(now)
                dirty[i] = stale[i] = True
                if (event := conn.next_event()) is not None:
                    self._drain(i, conn, event)

    def _flush(self) -> None:
        dirty = self._dirty
        conns = self._conns
        for i in _BOTH:
            if not dirty[i]:
                continue
            conn = conns[i]
            if conn is None:
                continue
            dirty[i] = False
            self._stale[i] = True
            if (event := conn.next_event()) is not None:
                self._drain(i, conn, event)
            datagrams = conn.datagrams_to_send(self._now)
            if datagrams:
                ecn = conn.ecn_codepoint if self._takes_ecn(i, conn) else 0  # type: ignore
                self._transmit(i, datagrams, ecn)
            if (event := conn.next_event()) is not None:
                self._drain(i, conn, event)

    def _takes_ecn(self, i: int, conn: SansIOConnection) -> bool:
        aware = self._ecn[i]
        if aware is None:
            aware = self._ecn[i] = hasattr(conn, "ecn_codepoint")
        return aware

    def _transmit(self, i: int, datagrams: Sequence[tuple[bytes, Address]], ecn: int) -> None:
        now = self._now
        tap = self.tap
        link = self._links[i]
        source = self._addrs[i]
        heap = self._heap
        self._sent_datagrams[i] += len(datagrams)
        for data, destination in datagrams:
            self._sent_bytes[i] += len(data)
            if tap is not None:
                tap(_SIDES[i], WireDatagram(
                    time=now, source=source, destination=destination, data=data, ecn=ecn))
            for at, delivered, codepoint in link.send_with_ecn(data, now, ecn):
                heapq.heappush(heap, (at, self._seq, destination, source, delivered, codepoint))
                self._seq += 1

    def _push(self, at: float, destination: Address, source: Address, data: bytes,
              ecn: int) -> None:
        heapq.heappush(self._heap, (at, self._seq, destination, source, data, ecn))
        self._seq += 1

    def _drain(self, i: int, conn: SansIOConnection, event: object | None = None) -> None:
        """Collect the connection's events (``event``: the first one, already taken)."""
        if event is None:
            event = conn.next_event()
        events = self._events[i]
        hook = self.on_event
        while event is not None:
            events.append(event)
            if hook is not None:
                hook(_SIDES[i], event)
                # the hook may have issued commands on either side
                self._dirty[0] = self._dirty[1] = True
                self._stale[0] = self._stale[1] = True
            event = conn.next_event()

    def _describe(self, what: str) -> str:
        timers = []
        for side, conn in zip(_SIDES, self._conns, strict=True):
            timers.append(f"{side} timer={conn.get_timer() if conn is not None else None}")
        last = [
            f"{side} last events={[type(e).__name__ for e in events[-3:]]}"
            for side, events in zip(_SIDES, self._events, strict=True)
        ]
        return (f"{what} at t={self._now:.6f}: {len(self._heap)} datagrams in flight, "
                f"{', '.join(timers)}; {'; '.join(last)}")
