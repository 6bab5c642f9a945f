"""A virtual UDP network for trio programs, with seeded impairments, for use with ``MockClock``.

Inside ``async with open_virtual_network(...)``, :func:`trio.socket.socket` returns virtual
UDP sockets (``AF_INET`` / ``AF_INET6``, ``SOCK_DGRAM``) that reach each other through seeded
:class:`~trio_zttp.testing.Link` objects, one per (source, destination) address pair, and
:func:`trio.socket.getaddrinfo` resolves names from the network's ``hosts`` table. Nothing
touches the operating system, so with ``trio.testing.MockClock(autojump_threshold=0)`` (the
``autojump_clock`` fixture of pytest-trio) delays, timeouts and bandwidth limits cost no wall
time::

    from trio_zttp.testing import LinkConditions, open_virtual_network

    async def test_echo(autojump_clock):
        lossy = LinkConditions(loss=0.1, delay=0.05, mtu=1400)
        async with open_virtual_network(seed=1, conditions=lossy) as network:
            server = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
            await server.bind(("10.0.0.2", 4433))
            client = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
            await client.sendto(b"ping", ("10.0.0.2", 4433))
            data, peer = await server.recvfrom(2048)  # 50 ms later, unless the 10% loss hits
            network.set_link_conditions("10.0.0.2", peer[0], LinkConditions())  # clean now
            print(network.statistics())

The virtual sockets support ``bind`` (any numeric address; port 0 picks an ephemeral port from
50000; ``0.0.0.0`` / ``::`` receive for every address of their family on that port and send from
``127.0.0.1`` / ``::1``), ``connect`` (sets the default destination and filters what is received),
``getsockname``, ``getpeername``, ``send``, ``sendto``, ``sendmsg`` (ancillary data is ignored
except ``UDP_SEGMENT``, which splits the buffer into datagrams as GSO does, and ``IP_TOS`` /
``IPV6_TCLASS``), ``recv``, ``recv_into``, ``recvfrom``, ``recvfrom_into``, ``recvmsg``,
``recvmsg_into`` (datagrams longer than the buffer are truncated and the rest discarded, with
``MSG_TRUNC`` in ``recvmsg``'s flags; the only ancillary data is the TOS, see below),
``is_readable``, ``wait_readable`` (an extra, since there is no file descriptor for
:func:`trio.lowlevel.wait_readable`), ``wait_writable`` and ``close`` (a task blocked receiving
gets :exc:`trio.ClosedResourceError`). ``setsockopt`` stores the value and ``getsockopt``
returns it (0 if never set), so best-effort socket tuning works unchanged. These options have
an effect: ``SO_RCVBUF`` bounds the bytes queued for reading, 4 MiB by default, beyond which
datagrams are dropped as the kernel does; and ECN works as on Linux: each datagram carries the
ECN bits of the sender's ``IP_TOS`` (IPv4) or ``IPV6_TCLASS`` (IPv6) option, or of the same
control message given to ``sendmsg``; the links may rewrite them or mark CE
(:class:`~trio_zttp.testing.LinkConditions` ``ce_mark``, ``ce_threshold``, ``ecn_rewrite``);
and a socket with ``IP_RECVTOS`` / ``IPV6_RECVTCLASS`` set gets them back from ``recvmsg`` as
an ``IP_TOS`` (one byte) / ``IPV6_TCLASS`` (an int) control message. Names must be numeric
except through ``getaddrinfo``; ``fileno`` raises :exc:`NotImplementedError`; no send or
receive flags.

How it compares with trio's own (private) ``trio.testing._fake_net.FakeNet``: FakeNet delivers
every datagram at once and perfectly; it has no ``setsockopt``/``getsockopt`` (they raise
``OSError``), no ``connect``, no ancillary data, no ``fileno``, no ``wait_readable``, no name
resolution and no MTU. This network adds seeded loss, duplication, reordering, corruption, delay,
jitter, bandwidth with a bounded queue and MTU per address pair (changeable while running), a tap
that sees every datagram, statistics, a hosts table, receive-buffer limits and GSO splitting.
"""

from __future__ import annotations

import errno
import heapq
import ipaddress
import math
import os
import socket as _stdlib_socket
import struct
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Self, TypeAlias, final, overload

import attrs
import trio

from ._link import Address, Link, LinkConditions, LinkStatistics, WireDatagram

if TYPE_CHECKING:
    import builtins
    from types import TracebackType

    from typing_extensions import Buffer

__all__ = [
    "HostSpec",
    "NetworkStatistics",
    "VirtualNetwork",
    "VirtualSocket",
    "open_virtual_network",
]

_Key: TypeAlias = tuple[str, int]
"""An endpoint inside the network: (compressed IP, port)."""
HostSpec: TypeAlias = str | tuple[str, int]
"""A host (``"10.0.0.1"``) or an endpoint (``("10.0.0.1", 4433)``)."""

_SOL_UDP = 17
_UDP_SEGMENT = 103
_IPPROTO_IP = _stdlib_socket.IPPROTO_IP
_IPPROTO_IPV6 = _stdlib_socket.IPPROTO_IPV6
_IP_TOS = _stdlib_socket.IP_TOS
_IP_RECVTOS: int = getattr(_stdlib_socket, "IP_RECVTOS", 13)
_IPV6_TCLASS: int = getattr(_stdlib_socket, "IPV6_TCLASS", 67)
_IPV6_RECVTCLASS: int = getattr(_stdlib_socket, "IPV6_RECVTCLASS", 66)
_MAX_PAYLOAD: dict[int, int] = {_stdlib_socket.AF_INET: 65507, _stdlib_socket.AF_INET6: 65527}
_WILDCARD: dict[int, str] = {_stdlib_socket.AF_INET: "0.0.0.0", _stdlib_socket.AF_INET6: "::"}
_LOOPBACK: dict[int, str] = {_stdlib_socket.AF_INET: "127.0.0.1", _stdlib_socket.AF_INET6: "::1"}
_DEFAULT_RECEIVE_BUFFER = 4 * 1024 * 1024
_TYPE_FLAGS = getattr(_stdlib_socket, "SOCK_NONBLOCK", 0) | getattr(
    _stdlib_socket, "SOCK_CLOEXEC", 0)


def _os_error(code: int, detail: str = "") -> OSError:
    text = os.strerror(code)
    return OSError(code, f"{text}: {detail}" if detail else text)


def _parse_ip(host: object, family: int) -> str:
    if not isinstance(host, str):
        raise TypeError(f"host must be a str, not {type(host).__name__}")
    if host == "":
        return _WILDCARD[family]
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        raise _stdlib_socket.gaierror(
            _stdlib_socket.EAI_NONAME,
            f"virtual sockets take numeric addresses only, not {host!r} "
            "(resolve names with trio.socket.getaddrinfo)") from None
    ip_family = _stdlib_socket.AF_INET if ip.version == 4 else _stdlib_socket.AF_INET6
    if ip_family != family:
        raise _os_error(errno.EAFNOSUPPORT, f"{host!r} in a socket of family {family!r}")
    return ip.compressed


def _key(address: object, family: int) -> _Key:
    if not isinstance(address, tuple) or len(address) not in (2, 4):
        raise TypeError(f"expected a (host, port) tuple, not {address!r}")
    ip = _parse_ip(address[0], family)
    port = address[1]
    if not isinstance(port, int) or not 0 <= port <= 65535:
        raise OverflowError(f"port must be 0-65535, not {port!r}")
    return ip, port


def _sockaddr(key: _Key) -> Address:
    return key if ":" not in key[0] else (key[0], key[1], 0, 0)


def _endpoint(address: tuple[str, int]) -> _Key:
    return ipaddress.ip_address(address[0]).compressed, int(address[1])


def _spec(spec: HostSpec) -> str | _Key:
    if isinstance(spec, str):
        return ipaddress.ip_address(spec).compressed
    return _endpoint(spec)


@final
@attrs.frozen(kw_only=True)
class NetworkStatistics:
    """Counters of a :class:`VirtualNetwork`.

    Attributes:
        links: The sum of every link's :class:`~trio_zttp.testing.LinkStatistics`.
        delivered: Datagrams put in a socket's receive queue.
        unroutable: Datagrams that reached an address no socket is bound to (or a connected
            socket they did not come from).
        overflowed: Datagrams dropped because the receiving socket's buffer was full.
    """

    links: LinkStatistics
    delivered: int
    unroutable: int
    overflowed: int


@final
class VirtualNetwork:
    """A virtual UDP network with seeded impairments; see the module documentation.

    Args:
        seed: Seeds every link; link (a -> b) draws from its own generator, seeded with ``seed``
            and both addresses, so one link's traffic never changes another's decisions.
        conditions: Conditions of every link that no :meth:`set_link_conditions` rule covers.
        hosts: Names for :func:`trio.socket.getaddrinfo`, each mapped to one address or a list
            (default: ``localhost`` is ``127.0.0.1`` and ``::1``).
        tap: Called with a :class:`~trio_zttp.testing.WireDatagram` for every datagram sent,
            before the link's impairments; settable later as :attr:`tap`.
    """

    def __init__(
        self,
        *,
        seed: int = 0,
        conditions: LinkConditions | None = None,
        hosts: Mapping[str, str | Sequence[str]] | None = None,
        tap: Callable[[WireDatagram], None] | None = None,
    ) -> None:
        self._seed = seed
        self._default = conditions if conditions is not None else LinkConditions()
        self._rules: dict[tuple[str | _Key, str | _Key], LinkConditions] = {}
        self._links: dict[tuple[_Key, _Key], Link] = {}
        if hosts is None:
            hosts = {"localhost": ["127.0.0.1", "::1"]}
        self._hosts = {
            name.lower(): [ipaddress.ip_address(a).compressed
                           for a in ([value] if isinstance(value, str) else value)]
            for name, value in hosts.items()
        }
        self._bound: dict[_Key, VirtualSocket] = {}
        self._sockets: set[VirtualSocket] = set()
        self._next_port = 50000
        # (deliver at, tie-breaker, destination, source, datagram, ECN codepoint)
        self._heap: list[tuple[float, int, _Key, Address, bytes, int]] = []
        self._seq = 0
        self._wakeup: trio.CancelScope | None = None
        self._running = False
        self._delivered = 0
        self._unroutable = 0
        self._overflowed = 0
        self.tap = tap

    # ------------------------------------------------------------- conditions

    def set_link_conditions(
        self,
        source: HostSpec,
        destination: HostSpec,
        conditions: LinkConditions,
        *,
        both_directions: bool = True,
    ) -> None:
        """Set the conditions between two hosts (``"10.0.0.1"``) or endpoints
        (``("10.0.0.1", 4433)``), effective for the next datagram.

        The most specific rule wins: endpoint to endpoint, then endpoint to host, host to
        endpoint, host to host, then the network's default conditions.
        """
        a, b = _spec(source), _spec(destination)
        self._rules[a, b] = conditions
        if both_directions:
            self._rules[b, a] = conditions
        for (src, dst), link in self._links.items():
            link.conditions = self._conditions_for(src, dst)

    def link_statistics(
        self, source: tuple[str, int], destination: tuple[str, int]
    ) -> LinkStatistics:
        """The statistics of the link from one endpoint to another (zero if it was never used)."""
        link = self._links.get((_endpoint(source), _endpoint(destination)))
        return link.statistics() if link is not None else LinkStatistics()

    def statistics(self) -> NetworkStatistics:
        """A snapshot of the network's counters."""
        total = LinkStatistics()
        for link in self._links.values():
            total = total + link.statistics()
        return NetworkStatistics(links=total, delivered=self._delivered,
                                 unroutable=self._unroutable, overflowed=self._overflowed)

    def _conditions_for(self, source: _Key, destination: _Key) -> LinkConditions:
        rules = self._rules
        for key in ((source, destination), (source, destination[0]),
                    (source[0], destination), (source[0], destination[0])):
            conditions = rules.get(key)
            if conditions is not None:
                return conditions
        return self._default

    # ---------------------------------------------------------------- running

    @asynccontextmanager
    async def run(self) -> AsyncIterator[Self]:
        """Install the network for the current :func:`trio.run` and run its delivery task.

        On exit the previous socket factory and resolver come back, pending datagrams are
        discarded and the network's sockets are closed.
        """
        if self._running:
            raise RuntimeError("this network is already running")
        self._running = True
        old_factory = trio.socket.set_custom_socket_factory(_Factory(self))
        old_resolver = trio.socket.set_custom_hostname_resolver(_Resolver(self))
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._deliver_forever)
                try:
                    yield self
                finally:
                    nursery.cancel_scope.cancel()
        finally:
            trio.socket.set_custom_socket_factory(old_factory)
            trio.socket.set_custom_hostname_resolver(old_resolver)
            self._running = False
            self._heap.clear()
            for sock in list(self._sockets):
                sock.close()

    async def _deliver_forever(self) -> None:
        heap = self._heap
        while True:
            with trio.CancelScope(deadline=heap[0][0] if heap else math.inf) as scope:
                self._wakeup = scope
                await trio.sleep_forever()
            self._wakeup = None
            now = trio.current_time()
            while heap and heap[0][0] <= now:
                _, _, destination, source, data, ecn = heapq.heappop(heap)
                self._deliver(destination, source, data, ecn)

    # ---------------------------------------------------------------- routing

    def _transmit(self, source: _Key, destination: _Key, data: bytes, ecn: int = 0) -> None:
        now = trio.current_time()
        source_address = _sockaddr(source)
        if self.tap is not None:
            self.tap(WireDatagram(time=now, source=source_address,
                                  destination=_sockaddr(destination), data=data, ecn=ecn))
        link = self._links.get((source, destination))
        if link is None:
            link = self._links[source, destination] = Link(
                self._conditions_for(source, destination),
                seed=f"{self._seed}:{source[0]}:{source[1]}->{destination[0]}:{destination[1]}")
        heap = self._heap
        for at, delivered, codepoint in link.send_with_ecn(data, now, ecn):
            if at <= now and not (heap and heap[0][0] <= now):
                self._deliver(destination, source_address, delivered, codepoint)
                continue
            heapq.heappush(heap, (at, self._seq, destination, source_address, delivered,
                                  codepoint))
            self._seq += 1
            if self._wakeup is not None and at < self._wakeup.deadline:
                self._wakeup.deadline = at

    def _deliver(self, destination: _Key, source: Address, data: bytes, ecn: int) -> None:
        sock = self._bound.get(destination)
        if sock is None:
            family = _stdlib_socket.AF_INET6 if ":" in destination[0] else _stdlib_socket.AF_INET
            sock = self._bound.get((_WILDCARD[family], destination[1]))
        if sock is None or not sock._accepts(source):
            self._unroutable += 1
        elif sock._enqueue(data, source, ecn):
            self._delivered += 1
        else:
            self._overflowed += 1

    def _bind(self, sock: VirtualSocket, key: _Key) -> _Key:
        family = sock.family
        wildcard = _WILDCARD[family]
        if key[1] == 0:
            for _ in range(65536 - 1024):
                port = self._next_port
                self._next_port = port + 1 if port < 65535 else 1024
                if not self._in_use((key[0], port), wildcard):
                    key = (key[0], port)
                    break
            else:  # pragma: no cover - 64k sockets
                raise _os_error(errno.EADDRINUSE)
        elif self._in_use(key, wildcard):
            raise _os_error(errno.EADDRINUSE, f"{key[0]} port {key[1]}")
        self._bound[key] = sock
        return key

    def _in_use(self, key: _Key, wildcard: str) -> bool:
        if key in self._bound or (wildcard, key[1]) in self._bound:
            return True
        if key[0] == wildcard:
            return any(port == key[1] and (":" in ip) == (":" in wildcard)
                       for ip, port in self._bound)
        return False


@final
class VirtualSocket(trio.socket.SocketType):
    """A UDP socket of a :class:`VirtualNetwork`; made by :func:`trio.socket.socket` inside
    :meth:`VirtualNetwork.run`. See the module documentation for what it supports."""

    def __init__(self, network: VirtualNetwork, family: int, type: int, proto: int) -> None:
        super().__init__()
        self._network = network
        self._family = _stdlib_socket.AddressFamily(family)
        self._type = _stdlib_socket.SocketKind(type)
        self._proto = proto
        self._local: _Key | None = None
        self._peer: _Key | None = None
        self._closed = False
        self._queue: deque[tuple[bytes, Address, int]] = deque()  # datagram, source, ECN
        self._queued_bytes = 0
        self._options: dict[tuple[int, int], int | bytes] = {}
        self._receive_buffer = _DEFAULT_RECEIVE_BUFFER
        self._lot = trio.lowlevel.ParkingLot()
        network._sockets.add(self)

    # ---------------------------------------------------------------- queries

    @property
    def family(self) -> _stdlib_socket.AddressFamily:
        return self._family

    @property
    def type(self) -> _stdlib_socket.SocketKind:
        return self._type

    @property
    def proto(self) -> int:
        return self._proto

    @property
    def did_shutdown_SHUT_WR(self) -> bool:  # noqa: N802 - trio's name
        return False

    def __repr__(self) -> str:
        state = "closed" if self._closed else (
            f"bound to {self._local[0]}:{self._local[1]}" if self._local else "unbound")
        return f"<VirtualSocket {self._family.name} {state}>"

    def getsockname(self) -> Address:
        self._check_open()
        return _sockaddr(self._local if self._local else (_WILDCARD[self._family], 0))

    def getpeername(self) -> Address:
        self._check_open()
        if self._peer is None:
            raise _os_error(errno.ENOTCONN)
        return _sockaddr(self._peer)

    def is_readable(self) -> bool:
        return bool(self._queue) or self._closed

    def fileno(self) -> int:
        raise NotImplementedError("virtual sockets have no file descriptor")

    def get_inheritable(self) -> bool:
        return False

    def set_inheritable(self, inheritable: bool) -> None:
        if inheritable:
            raise NotImplementedError("virtual sockets cannot be inherited")

    @overload
    def getsockopt(self, level: int, optname: int) -> int: ...

    @overload
    def getsockopt(self, level: int, optname: int, buflen: int) -> bytes: ...

    def getsockopt(self, level: int, optname: int, buflen: int | None = None) -> int | bytes:
        self._check_open()
        if (level, optname) == (_stdlib_socket.SOL_SOCKET, _stdlib_socket.SO_RCVBUF):
            value: int | bytes = self._receive_buffer
        else:
            value = self._options.get((level, optname), 0)
        if buflen is None:
            return value if isinstance(value, int) else int.from_bytes(value[:4], "little")
        if isinstance(value, int):
            value = struct.pack("i", value)
        return value[:buflen]

    @overload
    def setsockopt(self, level: int, optname: int, value: int | Buffer) -> None: ...

    @overload
    def setsockopt(self, level: int, optname: int, value: None, optlen: int) -> None: ...

    def setsockopt(
        self, level: int, optname: int, value: int | Buffer | None, optlen: int | None = None
    ) -> None:
        self._check_open()
        stored = bytes(optlen or 0) if value is None else (
            value if isinstance(value, int) else bytes(value))
        if (level, optname) == (_stdlib_socket.SOL_SOCKET, _stdlib_socket.SO_RCVBUF):
            size = stored if isinstance(stored, int) else int.from_bytes(stored[:4], "little")
            self._receive_buffer = max(size, 256)
        else:
            self._options[level, optname] = stored

    # ------------------------------------------------------------- lifecycle

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        network = self._network
        if self._local is not None and network._bound.get(self._local) is self:
            del network._bound[self._local]
        network._sockets.discard(self)
        self._queue.clear()
        self._queued_bytes = 0
        self._lot.unpark_all()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: builtins.type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise _os_error(errno.EBADF)

    async def bind(self, address: Address) -> None:
        await trio.lowlevel.checkpoint()
        self._bind_now(address)

    def _bind_now(self, address: object) -> None:
        self._check_open()
        if self._local is not None:
            raise _os_error(errno.EINVAL, "already bound")
        self._local = self._network._bind(self, _key(address, self._family))

    async def connect(self, address: Address) -> None:
        await trio.lowlevel.checkpoint()
        self._check_open()
        peer = _key(address, self._family)
        if self._local is None:
            self._bind_now((_WILDCARD[self._family], 0))
        self._peer = peer

    # ------------------------------------------------------------------ send

    async def sendto(self, *args: Any) -> int:
        """``sendto(data, address)`` or ``sendto(data, flags, address)``; flags must be 0."""
        if len(args) == 2:
            data, address = args
            flags = 0
        elif len(args) == 3:
            data, flags, address = args
        else:
            raise TypeError(f"sendto() takes 2 or 3 arguments ({len(args)} given)")
        return await self._send([data], flags, address, ())

    async def send(self, data: Buffer, flags: int = 0) -> int:
        return await self._send([data], flags, None, ())

    async def sendmsg(
        self,
        buffers: Iterable[Buffer],
        ancdata: Iterable[tuple[int, int, Buffer]] = (),
        flags: int = 0,
        address: Address | None = None,
    ) -> int:
        return await self._send(buffers, flags, address, ancdata)

    async def _send(
        self,
        buffers: Iterable[Buffer],
        flags: int,
        address: object,
        ancdata: Iterable[tuple[int, int, Buffer]],
    ) -> int:
        await trio.lowlevel.checkpoint()
        return self._send_now(buffers, flags, address, ancdata)

    def sendto_nowait(self, data: Buffer, address: object) -> int:
        """``sendto`` without the checkpoint (a virtual socket never blocks): what trio_zttp's
        endpoint uses to send from the task that queued the data."""
        return self._send_now([data], 0, address, ())

    def _send_now(
        self,
        buffers: Iterable[Buffer],
        flags: int,
        address: object,
        ancdata: Iterable[tuple[int, int, Buffer]],
    ) -> int:
        self._check_open()
        if flags:
            raise NotImplementedError(f"virtual sockets take no send flags, not {flags!r}")
        if address is None:
            if self._peer is None:
                raise _os_error(errno.EDESTADDRREQ)
            destination = self._peer
        else:
            destination = _key(address, self._family)
        payload = b"".join(bytes(memoryview(b)) for b in buffers)
        segment = 0
        ecn_level, ecn_option = (_IPPROTO_IPV6, _IPV6_TCLASS) if (
            self._family == _stdlib_socket.AF_INET6) else (_IPPROTO_IP, _IP_TOS)
        tos = self._options.get((ecn_level, ecn_option), 0)
        ecn = (tos if isinstance(tos, int) else int.from_bytes(tos[:4], "little")) & 3
        for level, kind, value in ancdata:
            if (level, kind) == (_SOL_UDP, _UDP_SEGMENT):
                (segment,) = struct.unpack("=H", bytes(value)[:2])
            elif (level, kind) == (ecn_level, ecn_option):
                ecn = int.from_bytes(bytes(value)[:4], "little") & 3
        if segment and len(payload) > segment:
            pieces = [payload[i:i + segment] for i in range(0, len(payload), segment)]
        else:
            pieces = [payload]
        if any(len(piece) > _MAX_PAYLOAD[self._family] for piece in pieces):
            raise _os_error(errno.EMSGSIZE)
        if self._local is None:
            self._bind_now((_WILDCARD[self._family], 0))
        assert self._local is not None
        source = self._local
        if source[0] == _WILDCARD[self._family]:
            source = (_LOOPBACK[self._family], source[1])
        for piece in pieces:
            self._network._transmit(source, destination, piece, ecn)
        return len(payload)

    # --------------------------------------------------------------- receive

    def _accepts(self, source: Address) -> bool:
        return self._peer is None or _sockaddr(self._peer)[:2] == source[:2]

    def _enqueue(self, data: bytes, source: Address, ecn: int = 0) -> bool:
        if self._closed or self._queued_bytes + len(data) > self._receive_buffer:
            return False
        self._queue.append((data, source, ecn))
        self._queued_bytes += len(data)
        self._lot.unpark_all()
        return True

    async def wait_readable(self) -> None:
        """Wait until a datagram is queued (or the socket is closed)."""
        await self._wait_for_datagram()

    async def wait_writable(self) -> None:
        await trio.lowlevel.checkpoint()

    async def _wait_for_datagram(self) -> None:
        self._check_open()
        if self._local is None:
            raise _os_error(errno.EINVAL, "receiving on an unbound virtual socket never returns")
        await trio.lowlevel.checkpoint_if_cancelled()
        if self._queue:
            await trio.lowlevel.cancel_shielded_checkpoint()
        else:
            while not self._queue and not self._closed:
                await self._lot.park()
        if self._closed:
            raise trio.ClosedResourceError("the virtual socket was closed")

    async def _receive(self) -> tuple[bytes, Address]:
        data, source, _ = await self._receive_with_ecn()
        return data, source

    async def _receive_with_ecn(self) -> tuple[bytes, Address, int]:
        while True:
            await self._wait_for_datagram()
            if self._queue:  # another task may have taken it while this one was woken
                data, source, ecn = self._queue.popleft()
                self._queued_bytes -= len(data)
                return data, source, ecn

    def _ancillary(self, ecn: int, ancbufsize: int) -> list[tuple[int, int, bytes]]:
        """The TOS / traffic class control message, if asked for and there is room."""
        if ancbufsize <= 0:
            return []
        if self._family == _stdlib_socket.AF_INET6:
            if self._options.get((_IPPROTO_IPV6, _IPV6_RECVTCLASS)):
                return [(_IPPROTO_IPV6, _IPV6_TCLASS, struct.pack("i", ecn))]
        elif self._options.get((_IPPROTO_IP, _IP_RECVTOS)):
            return [(_IPPROTO_IP, _IP_TOS, bytes((ecn,)))]
        return []

    def _no_flags(self, flags: int) -> None:
        if flags:
            raise NotImplementedError(f"virtual sockets take no receive flags, not {flags!r}")

    async def recv(self, bufsize: int, flags: int = 0) -> bytes:
        self._no_flags(flags)
        data, _ = await self._receive()
        return data[:bufsize]

    async def recvfrom(
        self, bufsize: int, flags: int = 0
    ) -> tuple[bytes, Address]:
        self._no_flags(flags)
        data, source = await self._receive()
        return data[:bufsize], source

    async def recv_into(
        self, buffer: Buffer, nbytes: int = 0, flags: int = 0
    ) -> int:
        return (await self.recvfrom_into(buffer, nbytes, flags))[0]

    async def recvfrom_into(
        self, buffer: Buffer, nbytes: int = 0, flags: int = 0
    ) -> tuple[int, Address]:
        self._no_flags(flags)
        data, source = await self._receive()
        with memoryview(buffer) as view:
            size = min(len(data), nbytes or view.nbytes, view.nbytes)
            view.cast("B")[:size] = data[:size]
        return size, source

    async def recvmsg(
        self, bufsize: int, ancbufsize: int = 0, flags: int = 0
    ) -> tuple[bytes, list[tuple[int, int, bytes]], int, Address]:
        self._no_flags(flags)
        data, source, ecn = await self._receive_with_ecn()
        truncated = _stdlib_socket.MSG_TRUNC if len(data) > bufsize else 0
        return data[:bufsize], self._ancillary(ecn, ancbufsize), truncated, source

    async def recvmsg_into(
        self, buffers: Iterable[Buffer], ancbufsize: int = 0, flags: int = 0
    ) -> tuple[int, list[tuple[int, int, bytes]], int, Address]:
        self._no_flags(flags)
        data, source, ecn = await self._receive_with_ecn()
        written = 0
        for buffer in buffers:
            with memoryview(buffer) as view:
                piece = data[written:written + view.nbytes]
                view.cast("B")[:len(piece)] = piece
            written += len(piece)
            if written == len(data):
                break
        truncated = _stdlib_socket.MSG_TRUNC if written < len(data) else 0
        return written, self._ancillary(ecn, ancbufsize), truncated, source


@final
class _Factory(trio.abc.SocketFactory):
    def __init__(self, network: VirtualNetwork) -> None:
        self._network = network

    def socket(
        self,
        family: _stdlib_socket.AddressFamily | int = _stdlib_socket.AF_INET,
        type: _stdlib_socket.SocketKind | int = _stdlib_socket.SOCK_STREAM,
        proto: int = 0,
    ) -> trio.socket.SocketType:
        kind = type & ~_TYPE_FLAGS
        if family not in _WILDCARD or kind != _stdlib_socket.SOCK_DGRAM:
            raise NotImplementedError(
                f"the virtual network has UDP sockets only (AF_INET/AF_INET6, SOCK_DGRAM), "
                f"not family={family!r} type={type!r}")
        return VirtualSocket(self._network, family, kind, proto)


@final
class _Resolver(trio.abc.HostnameResolver):
    def __init__(self, network: VirtualNetwork) -> None:
        self._network = network

    async def getaddrinfo(
        self,
        host: bytes | None,
        port: bytes | str | int | None,
        family: int = 0,
        type: int = 0,
        proto: int = 0,
        flags: int = 0,
    ) -> list[tuple[Any, ...]]:
        await trio.lowlevel.checkpoint()
        name = (host or b"localhost").decode("ascii").lower().rstrip(".")
        addresses = self._network._hosts.get(name)
        if addresses is None:
            raise _stdlib_socket.gaierror(_stdlib_socket.EAI_NONAME, f"unknown host {name!r}")
        if isinstance(port, bytes):
            port = port.decode("ascii")
        try:
            number = int(port or 0)
        except ValueError:
            raise _stdlib_socket.gaierror(
                _stdlib_socket.EAI_SERVICE, f"numeric ports only, not {port!r}") from None
        kind = _stdlib_socket.SocketKind(type or _stdlib_socket.SOCK_DGRAM)
        entries: list[tuple[Any, ...]] = []
        for ip in addresses:
            ip_family = _stdlib_socket.AF_INET6 if ":" in ip else _stdlib_socket.AF_INET
            if family in (0, ip_family):
                entries.append((ip_family, kind, proto or _stdlib_socket.IPPROTO_UDP, "",
                                _sockaddr((ip, number))))
        if not entries:
            raise _stdlib_socket.gaierror(_stdlib_socket.EAI_ADDRFAMILY, f"{name!r} in {family}")
        return entries

    async def getnameinfo(
        self, sockaddr: tuple[str, int] | tuple[str, int, int, int], flags: int
    ) -> tuple[str, str]:
        await trio.lowlevel.checkpoint()
        ip = ipaddress.ip_address(sockaddr[0]).compressed
        for name, addresses in self._network._hosts.items():
            if ip in addresses:
                return name, str(sockaddr[1])
        return ip, str(sockaddr[1])


@asynccontextmanager
async def open_virtual_network(
    *,
    seed: int = 0,
    conditions: LinkConditions | None = None,
    hosts: Mapping[str, str | Sequence[str]] | None = None,
    tap: Callable[[WireDatagram], None] | None = None,
) -> AsyncIterator[VirtualNetwork]:
    """Create a :class:`VirtualNetwork` and run it for the duration of the block.

    Arguments are those of :class:`VirtualNetwork`.
    """
    network = VirtualNetwork(seed=seed, conditions=conditions, hosts=hosts, tap=tap)
    async with network.run():
        yield network
