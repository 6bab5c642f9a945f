"""QuicEndpoint: one UDP socket, a receive task, and one driver task per connection.

The receive task reads batches of datagrams and looks only at each header's invariant
fields (:func:`~trio_zttp.quic._packet.peek_dcid`):

* a Destination Connection ID that routes to a connection: appended to that connection's
  bounded queue (full: the datagram is dropped and counted).  After the batch, a connection
  whose driver waits for work has its queue handled by the receive task itself; a busy
  driver is woken instead (``connection.py``, "Driving").  Once a queue is half full the
  receive task gives that connection's driver a few scheduling rounds before it routes the
  next batch, so only a driver that really falls behind loses datagrams;
* a long header with a version the server does not speak: Version Negotiation
  (datagrams of at least 1200 bytes only, rate-limited);
* an Initial for an unknown connection ID (server role): admission.  A valid Retry or
  NEW_TOKEN token admits at once; otherwise, with ``retry="always"``, or ``"under_load"``
  once half the backlog is in use, the client gets a Retry (stateless; the token is
  AEAD-protected, address-bound and expiring, minted by the server configuration's
  ``token_handler``, the same one its connections check).  An invalid Retry token is
  dropped.  Past the backlog, Initials are dropped.  An admitted Initial that the engine
  cannot read (no response) leaves no state behind;
* a short header for an unknown connection ID from the address of one of our peers: that
  peer's connections, which check whether it is a stateless reset for them (RFC 9000
  §10.3.1; a reset's connection ID is random, so it cannot be routed by it);
* a short header for an unknown connection ID from anyone else: a stateless reset
  (rate-limited, smaller than the datagram that triggered it, token from the endpoint's
  static key);
* anything else: dropped and counted.

**Preferred address** (RFC 9000 §9.6): a server configured with ``preferred_ipv4_address``
and / or ``preferred_ipv6_address`` has one more socket bound at each, with a receive task of
its own.  A path is (client address, our socket): a datagram that arrived at preferred
socket *i* (1, 2) reaches its connection's engine from the *tagged* address
``(host, port, i)``: the engine sees the same client through another address of ours (it
answers a PATH_CHALLENGE on that path with a connection ID of the client's not used from
the original address, validates the path once a non-probing packet arrives there, and only
then moves to it, for good: RFC 9000 §9.6.2, §9.5).  A dual-stack main socket sees an IPv4
client as ``::ffff:a.b.c.d``: an IPv4 preferred socket's sources are written so too.  A
datagram the engine addresses to a tagged address leaves from that socket, to ``(host,
port)``; the tag is stripped wherever an address leaves the endpoint (``remote_address``,
the peer map, statistics).
That socket is for migration only: long-header packets there are dropped (an unknown
version gets Version Negotiation, from there), and a short header for no connection of the
server gets a stateless reset, from there too.  An endpoint without a preferred address
pays one attribute test per batch sent, nothing per datagram.

Nothing a peer sends can raise out of the receive task, and everything the endpoint
holds per peer is bounded: connections by the backlog, queued datagrams per connection by
:data:`~trio_zttp._trio.connection.INCOMING_QUEUE_SIZE`, responses by rate limits.
"""

from __future__ import annotations

import functools
import ipaddress
import math
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, Final, Literal, final

import attrs
import trio

from ..quic._cids import stateless_reset_token
from ..quic._config import Configuration
from ..quic._handshake import default_token_handler
from ..quic._packet import (
    MalformedPacketError,
    PacketType,
    encode_retry,
    encode_version_negotiation,
    parse_header,
    peek_dcid,
)
from ._engine import Address, ConnectionFactory
from ._udp import DatagramTransport, is_ipv4_literal, normalize_address, open_transport
from .connection import INCOMING_QUEUE_SIZE, QuicConnection

__all__ = ["QuicEndpoint", "QuicEndpointStatistics"]

_MIN_INITIAL_DATAGRAM: Final = 1200  # RFC 9000 §14.1
_MIN_CLIENT_DCID: Final = 8  # RFC 9000 §7.2
_MIN_STATELESS_RESET: Final = 21  # RFC 9000 §10.3: 5 unpredictable bytes + 16-byte token
_MAX_STATELESS_RESET: Final = 43
_RESPONSE_RATE: Final = 100.0  # stateless resets and Version Negotiations per second, each
_CLIENT_CONFIGURATIONS: Final = 32  # client configurations cached per server name
_CROWDED_QUEUE: Final = INCOMING_QUEUE_SIZE // 2  # a driver this far behind gets to run first
_DRAIN_ROUNDS: Final = 8  # scheduling rounds the receive task waits for such drivers


class _RateLimiter:
    """A token bucket: ``rate`` events per second, bursts up to ``burst``."""

    __slots__ = ("_rate", "_burst", "_tokens", "_stamp")

    def __init__(self, rate: float, burst: float) -> None:
        self._rate = rate
        self._burst = burst
        self._tokens = burst
        self._stamp = -math.inf

    def allow(self, now: float) -> bool:
        self._tokens = min(self._burst, self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


@final
@attrs.frozen(kw_only=True)
class QuicEndpointStatistics:
    """Counters of one endpoint."""

    #: UDP datagrams read from / written to the socket.
    datagrams_received: int
    datagrams_sent: int
    #: Datagrams whose header could not be parsed.
    datagrams_malformed: int
    #: Datagrams for no connection that got no answer (too small, wrong type, no server).
    datagrams_unroutable: int
    #: Datagrams dropped because their connection's queue was full.
    datagrams_dropped: int
    version_negotiations_sent: int
    retries_sent: int
    stateless_resets_sent: int
    #: Connections alive now, and those of them still in the handshake (server side).
    connections: int
    half_open_connections: int
    #: Server connections admitted since the endpoint opened.
    connections_accepted: int
    #: Initials dropped because the backlog was full or the engine could not read them.
    connections_refused: int
    #: Unexpected exceptions caught in the receive task or a driver (should stay 0).
    internal_errors: int
    #: "portable" or "linux-gso-gro".
    datagram_path: str
    #: Of ``datagrams_received``: those that arrived at the server's preferred address(es)
    #: (RFC 9000 §9.6; 0 without one).  ``datagrams_sent`` counts every socket too.
    datagrams_received_at_preferred_address: int = 0


@final
class QuicEndpoint:
    """A UDP socket that carries any number of QUIC connections, as client and/or server.

    Made by :func:`open_quic_endpoint` or :func:`serve_quic`, never directly.
    """

    def __init__(
        self,
        *,
        transport: DatagramTransport,
        nursery: trio.Nursery,
        client_configuration: Configuration | None,
        server_configuration: Configuration | None,
        connection_factory: ConnectionFactory,
        retry: Literal["never", "under_load", "always"],
        backlog: int,
        stateless_reset_key: bytes,
        random_bytes: Callable[[int], bytes],
        connection_id_length: int,
        preferred_transports: tuple[DatagramTransport, ...] = (),
    ) -> None:
        self._transport = transport
        # the server's preferred-address sockets: tag i (a third address item) is [i - 1]
        self._preferred = preferred_transports
        self._preferred_addresses = tuple(t.local_address for t in preferred_transports)
        # a dual-stack main socket sees an IPv4 client as ::ffff:a.b.c.d: an IPv4 preferred
        # socket's sources are written so too, or the engine would see another host
        dual = ":" in str(transport.local_address[0])
        self._mapped = tuple(dual and ":" not in str(a[0]) for a in self._preferred_addresses)
        self._nursery = nursery
        self._client_config = client_configuration
        self._server_config = server_configuration
        self._factory = connection_factory
        self._retry = retry
        self._backlog = backlog
        self._retry_threshold = backlog // 2
        self._reset_key = stateless_reset_key
        self._token_handler = (
            default_token_handler(server_configuration) if server_configuration else None
        )
        either = server_configuration if server_configuration is not None else (
            client_configuration
        )
        assert either is not None
        self._wall_clock = either.wall_clock
        self._random = random_bytes
        self._client_configs: dict[str, Configuration] = {}
        self._cid_length = connection_id_length
        self._server_versions: tuple[int, ...] = (
            tuple(server_configuration.supported_versions) if server_configuration else ()
        )
        self._routes: dict[bytes, QuicConnection] = {}
        self._connections: set[QuicConnection] = set()
        self._by_address: dict[Address, set[QuicConnection]] = {}
        self._half_open: set[QuicConnection] = set()
        self._accept_queue: deque[QuicConnection] = deque()
        self._accept_lot = trio.lowlevel.ParkingLot()
        # set by a server that starts a task per connection (serve_h3): called from the
        # driver as each handshake completes, instead of queueing for accept()
        self._on_accept: Callable[[QuicConnection], None] | None = None
        self._outbox: list[tuple[bytes, Address]] = []
        self._send_lock = trio.Lock()
        self._closed = False
        self._reset_limiter = _RateLimiter(_RESPONSE_RATE, _RESPONSE_RATE)
        self._vn_limiter = _RateLimiter(_RESPONSE_RATE, _RESPONSE_RATE)
        self._malformed = 0
        self._unroutable = 0
        self._dropped = 0
        self._crowded: list[QuicConnection] = []
        self._touched: list[QuicConnection] = []  # got datagrams in this batch, driver parked
        self._vn_sent = 0
        self._retries_sent = 0
        self._resets_sent = 0
        self._accepted = 0
        self._refused = 0
        self._internal_errors = 0

    # -- public -------------------------------------------------------------------------------

    @property
    def local_address(self) -> Address:
        """The ``(host, port)`` the socket is bound to."""
        return self._transport.local_address

    @property
    def preferred_addresses(self) -> tuple[Address, ...]:
        """The ``(host, port)`` of each preferred-address socket (server configurations
        with ``preferred_ipv4_address`` / ``preferred_ipv6_address``; RFC 9000 §9.6), in
        that order; empty without one."""
        return self._preferred_addresses

    def statistics(self) -> QuicEndpointStatistics:
        """Counters for this endpoint."""
        transport = self._transport
        at_preferred = sum(t.datagrams_received for t in self._preferred)
        return QuicEndpointStatistics(
            datagrams_received=transport.datagrams_received + at_preferred,
            datagrams_sent=transport.datagrams_sent + sum(
                t.datagrams_sent for t in self._preferred),
            datagrams_malformed=self._malformed,
            datagrams_unroutable=self._unroutable,
            datagrams_dropped=self._dropped,
            version_negotiations_sent=self._vn_sent,
            retries_sent=self._retries_sent,
            stateless_resets_sent=self._resets_sent,
            connections=len(self._connections),
            half_open_connections=len(self._half_open),
            connections_accepted=self._accepted,
            connections_refused=self._refused,
            internal_errors=self._internal_errors + sum(
                1 for c in self._connections if c._failure is not None
            ),
            datagram_path=transport.kind,
            datagrams_received_at_preferred_address=at_preferred,
        )

    @asynccontextmanager
    async def connect(
        self, address: tuple[str, int], *, server_name: str | None = None
    ) -> AsyncIterator[QuicConnection]:
        """Open a client connection and wait for its handshake.

        Leaving the block closes the connection (see :class:`QuicConnection`).

        Args:
            address: The server's ``(host, port)``; host names are resolved.
            server_name: SNI and the name to verify the certificate against (default: the
                configuration's ``server_name``, else the host in ``address``).

        Raises:
            RuntimeError: The endpoint has no client configuration.
            ConnectionClosedError: The handshake failed.
        """
        connection = await self._open_client(address, server_name)
        async with connection:
            await connection._wait_handshake()
            yield connection

    async def rebind(self, local_address: tuple[str, int] | None = None) -> Address:
        """Move this client endpoint to a new UDP socket: its connections migrate with it
        (active connection migration, RFC 9000 §9), as on a change of network.

        Each open connection first moves to a spare connection ID of its peer's (one
        connection ID is never used from two local addresses, §9.5); then the new socket
        replaces the old one, which is closed: packets still on their way to it are lost
        and recovered as any loss.  The peer validates the new path itself (§9.3).

        Args:
            local_address: ``(host, port)`` to bind the new socket to (default: the current
                host and a new port).

        Returns:
            The new local address.

        Raises:
            RuntimeError: The endpoint also serves (a server keeps its address).
            ValueError: ``local_address`` is of another address family than the socket.
            QuicError: A connection cannot migrate: its handshake is not confirmed, its peer
                sent ``disable_active_migration``, or its peer gave no spare connection ID.
                The endpoint then stays on its socket and no connection changed.
            trio.ClosedResourceError: The endpoint is closing.
            OSError: The new socket cannot be bound.
        """
        if self._server_config is not None:
            raise RuntimeError("a server endpoint keeps its address: only a client migrates")
        if self._closed:
            raise trio.ClosedResourceError("endpoint is closing")
        old = self._transport
        if local_address is None:
            local_address = (old.local_address[0], 0)
        # the same datagram path as before: GSO/GRO when the old socket had it (or the
        # kernel does), the portable path when the old one was forced onto it
        new = await open_transport(local_address,
                                   fast_path=None if old.kind != "portable" else False)
        try:
            if new.family != old.family:
                raise ValueError(f"cannot move an endpoint of address family {old.family} "
                                 f"to {local_address!r}")
            async with self._send_lock:  # no batch of the old socket's is half sent
                if self._closed:
                    raise trio.ClosedResourceError("endpoint is closing")
                old = self._transport  # (another rebind may have moved it meanwhile)
                moving = [c for c in self._connections if not c.closed]
                for connection in moving:  # all can move, or none does
                    connection._engine.migrate(dry_run=True)
                for connection in moving:
                    connection._engine.migrate()
                    # batches built for the old address carry the old connection ID, which
                    # must not leave from the new one (§9.5): dropped, recovered as loss
                    connection._unsent.clear()
                new.datagrams_sent += old.datagrams_sent
                new.datagrams_received += old.datagrams_received
                self._transport = new
        except BaseException:
            new.close()
            raise
        old.close()  # the receive task goes on with the new socket
        for connection in moving:
            connection._poke()  # what goes out next leaves from the new address
        return new.local_address

    async def accept(self) -> QuicConnection:
        """Wait for the next incoming connection whose handshake completed.

        Raises:
            RuntimeError: The endpoint has no server configuration.
            trio.ClosedResourceError: The endpoint is closing.
        """
        if self._server_config is None:
            raise RuntimeError("this endpoint has no server configuration")
        await trio.lowlevel.checkpoint_if_cancelled()
        waited = False
        while True:
            while self._accept_queue:
                connection = self._accept_queue.popleft()
                if not connection.closed:
                    if not waited:
                        await trio.lowlevel.cancel_shielded_checkpoint()
                    return connection
            if self._closed:
                raise trio.ClosedResourceError("endpoint is closing")
            await self._accept_lot.park()
            waited = True

    # -- client -------------------------------------------------------------------------------

    async def _resolve(self, address: tuple[str, int]) -> Address:
        host, port = address[0], address[1]
        family = self._transport.family
        if family == trio.socket.AF_INET and is_ipv4_literal(host):
            return (host, int(port))  # the common case, without ipaddress
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            infos = await trio.socket.getaddrinfo(
                host, port, family=family, type=trio.socket.SOCK_DGRAM
            )
            if not infos:
                raise OSError(f"cannot resolve {host!r}") from None
            return normalize_address(infos[0][4])
        if ip.version == 4 and family == trio.socket.AF_INET6:
            ip = ipaddress.IPv6Address(f"::ffff:{ip}")
        elif ip.version == 6 and family != trio.socket.AF_INET6:
            raise ValueError(f"cannot reach IPv6 address {host} from an IPv4 endpoint")
        return (str(ip), int(port))

    async def _open_client(
        self, address: tuple[str, int], server_name: str | None
    ) -> QuicConnection:
        base = self._client_config
        if base is None:
            raise RuntimeError("this endpoint has no client configuration")
        if self._closed:
            raise trio.ClosedResourceError("endpoint is closing")
        addr = await self._resolve(address)
        name = server_name if server_name is not None else (base.server_name or address[0])
        configuration = self._client_configuration(base, name)
        engine = self._factory(configuration)
        engine.connect(addr, trio.current_time())
        connection = QuicConnection(
            self, engine, configuration, is_client=True, remote_address=addr
        )
        self._add_connection(connection)
        connection._add_cid(engine.local_connection_id)
        connection._flush_now()  # the first Initial leaves now, not when the driver starts
        self._nursery.start_soon(connection._drive)
        return connection

    def _client_configuration(self, base: Configuration, name: str) -> Configuration:
        # One evolved configuration per server name, so its TLS setup is built once; the
        # base itself for its own name, so that endpoints sharing it share that setup too.
        if name == base.server_name:
            return base
        configuration = self._client_configs.get(name)
        if configuration is None:
            if len(self._client_configs) >= _CLIENT_CONFIGURATIONS:
                del self._client_configs[next(iter(self._client_configs))]
            configuration = attrs.evolve(base, server_name=name)
            self._client_configs[name] = configuration
        return configuration

    # -- receive path ---------------------------------------------------------------------------

    async def _receive_loop(self, tag: int = 0) -> None:
        """The receive task of the endpoint's socket, or (``tag`` i) of preferred-address
        socket i, whose datagrams are dispatched from tagged addresses (module docstring)."""
        if tag:
            transport = self._preferred[tag - 1]
            dispatch: Callable[[bytes, Any, float, int], None] = functools.partial(
                self._dispatch_preferred, tag)
        else:
            transport = self._transport
            dispatch = self._dispatch
        current_time = trio.lowlevel.current_clock().current_time  # (the run's clock)
        while True:
            if not tag and transport is not self._transport:  # rebound meanwhile
                transport = self._transport
            try:
                batch = await transport.receive()
            except trio.ClosedResourceError:
                if tag or self._closed or self._transport is transport:
                    return
                transport = self._transport  # rebound (rebind): go on with the new socket
                continue
            now = current_time()
            for data, addr, ecn in batch:
                try:
                    dispatch(data, addr, now, ecn)
                except Exception:  # hostile input must never end the receive task
                    self._internal_errors += 1
            touched = self._touched
            if touched:
                self._touched = []
                for connection in touched:
                    connection._run_inline()
            if self._outbox:
                outbox, self._outbox = self._outbox, []
                await self._send_datagrams(outbox)
            if self._crowded:
                await self._let_drivers_drain()

    async def _let_drivers_drain(self) -> None:
        """Some connection's queue is half full: give its driver a few scheduling rounds to
        drain it before the next batch is routed.  A driver that is really stuck (a full
        socket buffer, a slow handler) still loses what overflows, which is the point."""
        crowded = self._crowded
        for _ in range(_DRAIN_ROUNDS):
            await trio.lowlevel.cancel_shielded_checkpoint()
            crowded[:] = [c for c in crowded if len(c._incoming) >= _CROWDED_QUEUE]
            if not crowded:
                return
        crowded.clear()

    def _dispatch(self, data: bytes, addr: Address, now: float, ecn: int = 0) -> None:
        try:
            is_long, version, dcid = peek_dcid(data, self._cid_length)
        except MalformedPacketError:
            self._malformed += 1
            return
        connection = self._routes.get(dcid)
        if connection is not None:
            if not connection._deliver(data, addr, ecn):
                self._dropped += 1
            return
        if not is_long:
            peers = self._by_address.get(addr)
            if peers:
                for peer in peers:  # maybe its peer's stateless reset
                    if not peer._deliver(data, addr, ecn):
                        self._dropped += 1
                return
            self._send_stateless_reset(data, dcid, addr, now)
            return
        if self._server_config is None or version == 0:
            self._unroutable += 1
            return
        if version not in self._server_versions:
            self._send_version_negotiation(data, addr, now)
            return
        if len(data) < _MIN_INITIAL_DATAGRAM:
            self._unroutable += 1
            return
        try:
            header = parse_header(data, 0, self._cid_length)
        except MalformedPacketError:
            self._malformed += 1
            return
        if header.packet_type is not PacketType.INITIAL or len(header.dcid) < _MIN_CLIENT_DCID:
            self._unroutable += 1
            return
        self._admit(data, addr, now, header.dcid, header.scid, header.token, header.version, ecn)

    def _dispatch_preferred(self, tag: int, data: bytes, addr: Any, now: float,
                            ecn: int = 0) -> None:
        """A datagram at preferred-address socket ``tag``: for migration only, handed on
        from the tagged address (module docstring)."""
        addr = (f"::ffff:{addr[0]}" if self._mapped[tag - 1] else addr[0], addr[1], tag)
        try:
            is_long, version, dcid = peek_dcid(data, self._cid_length)
        except MalformedPacketError:
            self._malformed += 1
            return
        if is_long:
            # no handshake here (a client comes only once the handshake is confirmed)
            if version != 0 and version not in self._server_versions:
                self._send_version_negotiation(data, addr, now)
            else:
                self._unroutable += 1
            return
        connection = self._routes.get(dcid)
        if connection is not None:
            if connection._is_client:
                self._unroutable += 1  # our client's ID: no business here, never a reset
            elif not connection._deliver(data, addr, ecn):
                self._dropped += 1
            return
        peers = self._by_address.get((addr[0], addr[1]))
        if peers:
            for peer in peers:  # maybe its peer's stateless reset
                if not peer._is_client and not peer._deliver(data, addr, ecn):
                    self._dropped += 1
            return
        self._send_stateless_reset(data, dcid, addr, now)

    def _send_stateless_reset(self, data: bytes, dcid: bytes, addr: Address, now: float) -> None:
        size = min(len(data) - 1, _MAX_STATELESS_RESET)
        if size < _MIN_STATELESS_RESET or not self._reset_limiter.allow(now):
            self._unroutable += 1
            return
        filler = self._random(size - 16)
        first = (filler[0] & 0x3F) | 0x40  # short header form, fixed bit set
        packet = bytes((first,)) + filler[1:] + stateless_reset_token(self._reset_key, dcid)
        self._outbox.append((packet, addr))
        self._resets_sent += 1

    def _send_version_negotiation(self, data: bytes, addr: Address, now: float) -> None:
        if len(data) < _MIN_INITIAL_DATAGRAM or not self._vn_limiter.allow(now):
            self._unroutable += 1
            return
        try:
            header = parse_header(data, 0, self._cid_length)
        except MalformedPacketError:
            self._malformed += 1
            return
        noise = int.from_bytes(self._random(5), "big")
        grease = (noise & 0xF0F0F0F0) | 0x0A0A0A0A  # a reserved version (RFC 9000 §15)
        packet = encode_version_negotiation(
            header.scid, header.dcid, (*self._server_versions, grease), noise >> 32
        )
        self._outbox.append((packet, addr))
        self._vn_sent += 1

    def _admit(
        self,
        data: bytes,
        addr: Address,
        now: float,
        dcid: bytes,
        scid: bytes,
        token: bytes,
        version: int | None,
        ecn: int = 0,
    ) -> None:
        configuration = self._server_config
        assert configuration is not None and version is not None
        original_dcid = dcid
        retry_scid: bytes | None = None
        validated = False
        if token:
            handler = self._token_handler
            assert handler is not None
            wall = self._wall_clock().timestamp()
            if handler.is_retry_token(token):
                result = handler.check_retry_token(token, addr, wall)
                if result is None or result[1] != dcid:
                    # The client will not take a second Retry (RFC 9000 §8.1.3): drop it.
                    self._refused += 1
                    return
                original_dcid, retry_scid = result
                validated = True
            else:
                validated = handler.check_new_token(token, addr, wall)
        pending = len(self._half_open) + len(self._accept_queue)
        if not validated and (
            self._retry == "always"
            or (self._retry == "under_load" and pending >= self._retry_threshold)
        ):
            self._send_retry(addr, now, dcid, scid, version)
            return
        if pending >= self._backlog:
            self._refused += 1
            return
        engine = self._factory(
            configuration,
            original_destination_connection_id=original_dcid,
            retry_source_connection_id=retry_scid,
        )
        if ecn and getattr(engine, "ecn_codepoint", None) is not None:
            engine.receive_datagram(data, addr, now, ecn=ecn)  # type: ignore[call-arg]
        else:
            engine.receive_datagram(data, addr, now)
        first = engine.datagrams_to_send(now)
        if not first:
            self._refused += 1  # nothing the engine could read: keep no state
            return
        connection = QuicConnection(
            self, engine, configuration, is_client=False, remote_address=addr,
            preferred_local_addresses=self._preferred_addresses,
        )
        self._add_connection(connection)
        self._half_open.add(connection)
        self._accepted += 1
        connection._add_cid(dcid)
        connection._add_cid(engine.local_connection_id)
        connection._handle_events()
        connection._send_first(first)  # from this task: the driver starts a round later
        self._nursery.start_soon(connection._drive)

    def _send_retry(
        self, addr: Address, now: float, dcid: bytes, scid: bytes, version: int
    ) -> None:
        new_scid = self._random(max(self._cid_length, _MIN_CLIENT_DCID))
        handler = self._token_handler
        assert handler is not None
        token = handler.mint_retry_token(addr, dcid, new_scid, self._wall_clock().timestamp())
        packet = encode_retry(
            version, scid, new_scid, dcid, token, unused_bits=self._random(1)[0]
        )
        self._outbox.append((packet, addr))
        self._retries_sent += 1

    # -- used by connections --------------------------------------------------------------------

    def _send_now(self, datagrams: list[tuple[bytes, Address]], ecn: int = 0) -> int:
        """Send from the start of ``datagrams`` without waiting: how many went (the rest need
        :meth:`_send_datagrams`); 0 while another task holds the socket for a batch."""
        if self._send_lock.locked():
            return 0
        try:
            if self._preferred:
                return self._send_now_split(datagrams, ecn)
            return self._transport.send_nowait(datagrams, ecn)
        except trio.ClosedResourceError:
            return len(datagrams)  # the endpoint is closing: they would be dropped anyway

    def _send_now_split(self, datagrams: list[tuple[bytes, Address]], ecn: int) -> int:
        sent = 0
        for transport, run in self._runs(self._transport, datagrams):
            done = transport.send_nowait(run, ecn)
            sent += done
            if done < len(run):
                break
        return sent

    def _runs(
        self, main: DatagramTransport, datagrams: list[tuple[bytes, Address]]
    ) -> list[tuple[DatagramTransport, list[tuple[bytes, Address]]]]:
        """``datagrams`` cut into runs of consecutive ones that leave from one socket: a
        tagged destination ``(host, port, i)`` from preferred socket ``i``, to ``(host,
        port)``; the others from ``main``."""
        preferred = self._preferred
        runs: list[tuple[DatagramTransport, list[tuple[bytes, Address]]]] = []
        current: DatagramTransport | None = None
        run: list[tuple[bytes, Address]] = []
        destination: Any  # (tagged addresses are 3-tuples, typed as Address in the engine)
        for data, destination in datagrams:
            if len(destination) == 2:
                transport = main
            else:
                tag = destination[2]
                transport = preferred[tag - 1]
                host = destination[0]
                if self._mapped[tag - 1] and host.startswith("::ffff:"):
                    host = host[7:]
                destination = (host, destination[1])
            if transport is not current:
                run = []
                runs.append((transport, run))
                current = transport
            run.append((data, destination))
        return runs

    async def _send_datagrams(
        self, datagrams: list[tuple[bytes, Address]], ecn: int = 0
    ) -> None:
        lock = self._send_lock
        # the socket these were built for: if a rebind replaces it while this waits for the
        # lock, they carry a connection ID of the old address and are dropped (as loss)
        transport = self._transport
        try:
            lock.acquire_nowait()
        except trio.WouldBlock:
            await lock.acquire()
        try:
            if self._preferred:
                for run_transport, run in self._runs(transport, datagrams):
                    try:
                        await run_transport.send(run, ecn)
                    except trio.ClosedResourceError:
                        pass
            else:
                await transport.send(datagrams, ecn)
        except trio.ClosedResourceError:
            pass
        finally:
            lock.release()

    def _add_route(self, cid: bytes, connection: QuicConnection) -> None:
        self._routes.setdefault(cid, connection)

    def _remove_route(self, cid: bytes, connection: QuicConnection) -> None:
        if self._routes.get(cid) is connection:
            del self._routes[cid]

    def _on_handshake_complete(self, connection: QuicConnection) -> None:
        if connection in self._half_open:
            self._half_open.discard(connection)
            hook = self._on_accept
            if hook is not None:
                hook(connection)
            else:
                self._accept_queue.append(connection)
                self._accept_lot.unpark_all()

    def _add_connection(self, connection: QuicConnection) -> None:
        self._connections.add(connection)
        self._by_address.setdefault(connection.remote_address, set()).add(connection)

    def _forget_address(self, connection: QuicConnection, address: Address) -> None:
        peers = self._by_address.get(address)
        if peers is not None:
            peers.discard(connection)
            if not peers:
                del self._by_address[address]

    def _on_path_changed(self, connection: QuicConnection, old: Address, new: Address) -> None:
        self._forget_address(connection, old)
        self._by_address.setdefault(new, set()).add(connection)

    def _on_connection_finished(self, connection: QuicConnection) -> None:
        self._forget_address(connection, connection.remote_address)
        self._connections.discard(connection)
        self._half_open.discard(connection)
        if connection in self._accept_queue:
            self._accept_queue.remove(connection)

    # -- shutdown -------------------------------------------------------------------------------

    async def _shutdown(self, error: BaseException | None) -> None:
        """Close every connection (NO_ERROR and drain, or an error code), shielded."""
        with trio.CancelScope(shield=True):
            self._closed = True
            self._accept_lot.unpark_all()
            connections = list(self._connections)
            for connection in connections:
                if error is None:
                    connection._begin_close(0, "")
                else:
                    connection._begin_close(
                        connection.internal_error_code, type(error).__name__
                    )
            for connection in connections:
                try:
                    await connection._flush()
                except Exception:
                    self._internal_errors += 1
            if error is None:
                deadline = max((c._drain_deadline() for c in connections), default=-math.inf)
                if deadline > -math.inf:
                    with trio.move_on_at(deadline):
                        for connection in connections:
                            await connection._driver_done.wait()
