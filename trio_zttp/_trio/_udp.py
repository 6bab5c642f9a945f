"""Datagram I/O for endpoints: a portable path and a Linux GSO/GRO fast path.

Both give the endpoint the same two calls: ``await receive()`` returns a *batch* of
``(payload, (host, port), ecn)`` datagrams, ``await send(datagrams, ecn)`` sends a batch of
``(payload, (host, port))`` with one ECN codepoint.

* The portable path uses only ``sendto``/``recvfrom``, so it runs on any OS.  On a real
  socket (:class:`BatchedTransport`) it owns the plain socket, non-blocking, and waits with
  :func:`trio.lowlevel.wait_readable` / ``wait_writable``: ``receive`` drains the socket
  (up to :data:`MAX_BATCH` datagrams) and ``send`` writes a whole batch, one checkpoint per
  batch.  On a socket without a file descriptor, such as trio's FakeNet or
  :mod:`trio_zttp.testing`'s virtual network (:class:`PortableTransport`), it goes through
  the ``trio.socket`` methods, one datagram (and one checkpoint) at a time.
* :class:`LinuxTransport` is the batched path plus Linux's segmentation offloads:
  ``receive`` uses ``recvmsg_into`` and splits GRO super-datagrams (``UDP_GRO``) by the
  segment size the kernel reports; ``send`` coalesces runs of equally sized datagrams to
  one peer into one ``sendmsg`` with ``UDP_SEGMENT`` (GSO).  If the kernel refuses GSO at
  send time the transport falls back to one ``sendto`` per datagram, silently and for good.

:func:`open_transport` picks the fast path when the socket is a real Linux socket that
accepts both socket options, and the portable path otherwise.

**ECN** (RFC 3168 codepoints: 0 Not-ECT, 1 ECT(1), 2 ECT(0), 3 CE).  The Linux path turns on
``IP_RECVTOS`` (and ``IPV6_RECVTCLASS`` on IPv6 sockets, which also receive IPv4 through
v4-mapped addresses and then report ``IP_TOS``) and reads each datagram's codepoint from the
``recvmsg`` ancillary data; all segments of a GRO super-datagram share it.  Sending, it sets
the socket's ``IP_TOS`` (and ``IPV6_TCLASS`` on IPv6 sockets: each applies to its own kind of
destination, so v4-mapped ones need ``IP_TOS``) whenever a batch's codepoint differs from the
previous batch's: nothing per datagram, one ``setsockopt`` per change, which a per-datagram
``IP_TOS`` control message would cost on every send (about 1 µs more than ``sendto`` here).
The endpoint sends one batch at a time, so a batch never goes out with another's codepoint.
:class:`PortableTransport` does the same when its socket accepts ``IP_RECVTOS`` and hands
back ancillary data (:mod:`trio_zttp.testing`'s virtual network does, trio's FakeNet refuses
the option); :class:`BatchedTransport` (the portable path on real sockets) reports every
datagram as Not-ECT and sends unmarked.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
import struct
import sys
from collections.abc import Callable, Sequence
from typing import Final

import trio

from ._engine import Address

__all__ = [
    "MAX_BATCH",
    "is_ipv4_literal",
    "BatchedTransport",
    "DatagramTransport",
    "LinuxTransport",
    "PortableTransport",
    "open_transport",
]

# Python 3.11's socket module lacks these (NOTES.md); values from linux/udp.h.
SOL_UDP: Final = 17
UDP_SEGMENT: Final = 103
UDP_GRO: Final = 104
# ECN: the IP TOS / IPv6 traffic class options (Linux values where Python lacks them)
IPPROTO_IP: Final = socket.IPPROTO_IP
IPPROTO_IPV6: Final = socket.IPPROTO_IPV6
IP_TOS: Final = socket.IP_TOS
IP_RECVTOS: Final = getattr(socket, "IP_RECVTOS", 13)
IPV6_TCLASS: Final = getattr(socket, "IPV6_TCLASS", 67)
IPV6_RECVTCLASS: Final = getattr(socket, "IPV6_RECVTCLASS", 66)

MAX_BATCH: Final = 256
"""Most datagrams one ``receive`` returns on the fast path."""
_MAX_SEGMENTS: Final = 64  # UDP_MAX_SEGMENTS on older kernels; newer ones allow 128
_MAX_GSO_BYTES: Final = 65000
_RECV_BUFFER: Final = 65536
_SOCKET_BUFFER: Final = 4 << 20
_GSO_SIZE: Final = struct.Struct("=H")
# room for the GRO segment size and the TOS / traffic class control messages
_ANCILLARY_SIZE: Final = 3 * socket.CMSG_SPACE(4)


def normalize_address(addr: object) -> Address:
    """``(host, port)`` from a socket address (IPv6 flow info and scope dropped)."""
    host, port = addr[0], addr[1]  # type: ignore[index]
    return (str(host), int(port))


def is_ipv4_literal(host: str) -> bool:
    """Whether ``host`` is an IPv4 address in its canonical dotted form (what
    ``str(ipaddress.ip_address(host))`` gives back unchanged): ~1 µs, ``ipaddress`` ~10."""
    try:
        return socket.inet_ntop(socket.AF_INET, socket.inet_pton(socket.AF_INET, host)) == host
    except (OSError, ValueError):
        return False


def ecn_codepoint(ancillary: list[tuple[int, int, bytes]]) -> int:
    """The ECN codepoint in ``recvmsg`` ancillary data (``IP_TOS`` or ``IPV6_TCLASS``), or 0."""
    for level, kind, data in ancillary:
        if level == IPPROTO_IP and kind == IP_TOS and data:
            return data[0] & 3
        if level == IPPROTO_IPV6 and kind == IPV6_TCLASS and data:
            return int.from_bytes(data, sys.byteorder) & 3
    return 0


def _enable_ecn(sock: socket.socket | trio.socket.SocketType) -> bool:
    """Ask for each datagram's TOS / traffic class; False if the socket refuses."""
    try:
        sock.setsockopt(IPPROTO_IP, IP_RECVTOS, 1)
        if sock.family == socket.AF_INET6:
            sock.setsockopt(IPPROTO_IPV6, IPV6_RECVTCLASS, 1)
    except (OSError, NotImplementedError, AttributeError):
        return False
    return True


def _set_codepoint(sock: socket.socket | trio.socket.SocketType, codepoint: int) -> bool:
    """Send from now on with ``codepoint`` in the ECN bits (DSCP 0); False if refused."""
    try:
        if sock.family == socket.AF_INET6:
            sock.setsockopt(IPPROTO_IPV6, IPV6_TCLASS, codepoint)
            try:
                sock.setsockopt(IPPROTO_IP, IP_TOS, codepoint)  # v4-mapped destinations
            except OSError:
                pass  # an IPv6-only socket
        else:
            sock.setsockopt(IPPROTO_IP, IP_TOS, codepoint)
    except (OSError, NotImplementedError, AttributeError):
        return False
    return True


class DatagramTransport:
    """A bound UDP socket that moves datagrams in batches."""

    #: "portable" or "linux-gso-gro".
    kind: str = "portable"
    #: Whether :meth:`receive` reports ECN codepoints and :meth:`send` applies them.
    ecn: bool = False

    def __init__(self, sock: socket.socket | trio.socket.SocketType) -> None:
        #: Datagrams sent / received; send and receive errors swallowed (UDP semantics).
        self.datagrams_sent = 0
        self.datagrams_received = 0
        self.send_errors = 0
        self.receive_errors = 0
        self.closed = False
        self._address = normalize_address(sock.getsockname())
        self._family = int(sock.family)
        # recvfrom(65536) would allocate (and shrink) a 64 KiB bytes object per datagram
        self._buffer = bytearray(_RECV_BUFFER)
        self._view = memoryview(self._buffer)
        self._codepoint = 0  # the ECN codepoint the socket currently sends with

    @property
    def local_address(self) -> Address:
        """The bound ``(host, port)``."""
        return self._address

    @property
    def family(self) -> int:
        """``AF_INET`` or ``AF_INET6``."""
        return self._family

    def _apply_codepoint(self, sock: socket.socket | trio.socket.SocketType, ecn: int) -> None:
        """Send with ``ecn`` from now on (one setsockopt per change); a socket that refuses
        turns ECN off for this transport."""
        if ecn != self._codepoint and self.ecn:
            if _set_codepoint(sock, ecn):
                self._codepoint = ecn
            else:
                self.ecn = False

    async def send(self, datagrams: Sequence[tuple[bytes, Address]], ecn: int = 0) -> None:
        """Send every datagram with the ECN codepoint ``ecn`` (ignored without :attr:`ecn`);
        errors for single datagrams are counted, not raised."""
        raise NotImplementedError

    def send_nowait(self, datagrams: Sequence[tuple[bytes, Address]], ecn: int = 0) -> int:
        """Send from the start of ``datagrams`` without waiting: how many went (those that
        failed are counted, as in :meth:`send`).  Stops at the first one the socket cannot
        take now; 0 from a transport that cannot send synchronously.

        Raises:
            trio.ClosedResourceError: The transport was closed.
        """
        return 0

    async def receive(self) -> list[tuple[bytes, Address, int]]:
        """Wait for at least one datagram and return all that are ready, each with its ECN
        codepoint (0 without :attr:`ecn`).

        Raises:
            trio.ClosedResourceError: The transport was closed.
        """
        raise NotImplementedError

    def close(self) -> None:
        """Close the socket; a task blocked in :meth:`receive` gets ClosedResourceError."""
        raise NotImplementedError


class PortableTransport(DatagramTransport):
    """Plain ``trio.socket`` ``sendto`` / ``recvfrom``: works on any socket factory."""

    kind = "portable"

    def __init__(self, sock: trio.socket.SocketType, *, ecn: bool = False) -> None:
        super().__init__(sock)
        self._sock = sock
        self.ecn = ecn
        # trio_zttp.testing's virtual sockets can send synchronously; trio sockets cannot
        self._sendto_nowait: Callable[[bytes, Address], object] | None = getattr(
            sock, "sendto_nowait", None
        )

    def send_nowait(self, datagrams: Sequence[tuple[bytes, Address]], ecn: int = 0) -> int:
        sendto = self._sendto_nowait
        if sendto is None:
            return 0
        if self.closed:
            raise trio.ClosedResourceError("transport closed")
        self._apply_codepoint(self._sock, ecn)
        for data, addr in datagrams:
            try:
                sendto(data, addr)
            except OSError:
                self.send_errors += 1
            else:
                self.datagrams_sent += 1
        return len(datagrams)

    async def send(self, datagrams: Sequence[tuple[bytes, Address]], ecn: int = 0) -> None:
        sock = self._sock
        self._apply_codepoint(sock, ecn)
        for data, addr in datagrams:
            try:
                await sock.sendto(data, addr)
            except OSError:
                if self.closed:
                    raise trio.ClosedResourceError("transport closed") from None
                self.send_errors += 1
            else:
                self.datagrams_sent += 1

    async def receive(self) -> list[tuple[bytes, Address, int]]:
        while True:
            if self.closed:
                raise trio.ClosedResourceError("transport closed")
            ecn = 0
            try:
                if self.ecn:
                    n, ancillary, _flags, addr = await self._sock.recvmsg_into(
                        [self._buffer], _ANCILLARY_SIZE)
                    ecn = ecn_codepoint(ancillary)
                else:
                    n, addr = await self._sock.recvfrom_into(self._buffer)
            except OSError:
                # ICMP errors surfaced on some platforms; a closed socket ends the loop above
                self.receive_errors += 1
                await trio.lowlevel.checkpoint()
                continue
            self.datagrams_received += 1
            return [(bytes(self._view[:n]), normalize_address(addr), ecn)]

    def close(self) -> None:
        self.closed = True
        self._sock.close()


class BatchedTransport(DatagramTransport):
    """A real socket, non-blocking, drained per wake-up: one checkpoint per batch (any OS)."""

    kind = "portable"

    def __init__(self, sock: socket.socket) -> None:
        super().__init__(sock)
        self._sock = sock
        # Each receive() yields *before* it reads, never between reading and returning: so the
        # drivers a batch woke drain their queues before the next batch is routed to them.
        # After a batch that read the socket dry, that yield is the wait for readability (no
        # recv that would only fail); after a full batch, a plain checkpoint.
        self._drained = False
        self._full = False

    async def receive(self) -> list[tuple[bytes, Address, int]]:
        if self.closed:  # (before waiting on a closed socket's file descriptor)
            raise trio.ClosedResourceError("transport closed")
        sock = self._sock
        buffer = self._buffer
        view = self._view
        if self._drained:
            self._drained = False
            await trio.lowlevel.wait_readable(sock)
        elif self._full:
            self._full = False
            await trio.lowlevel.checkpoint()
        while True:
            if self.closed:
                raise trio.ClosedResourceError("transport closed")
            batch: list[tuple[bytes, Address, int]] = []
            for _ in range(MAX_BATCH):
                try:
                    n, raw_addr = sock.recvfrom_into(buffer)
                except BlockingIOError:
                    break
                except OSError:
                    # ICMP errors surfaced on some platforms (Windows: WSAECONNRESET)
                    if self.closed:
                        raise trio.ClosedResourceError("transport closed") from None
                    self.receive_errors += 1
                    continue
                batch.append((bytes(view[:n]), normalize_address(raw_addr), 0))
            if batch:
                self.datagrams_received += len(batch)
                if len(batch) < MAX_BATCH:
                    self._drained = True
                else:
                    self._full = True
                return batch
            await trio.lowlevel.wait_readable(sock)

    def send_nowait(self, datagrams: Sequence[tuple[bytes, Address]], ecn: int = 0) -> int:
        if self.closed:
            raise trio.ClosedResourceError("transport closed")
        self._apply_codepoint(self._sock, ecn)
        sendto = self._sendto_now
        for i, (data, addr) in enumerate(datagrams):
            if not sendto(data, addr):
                return i
        return len(datagrams)

    async def send(self, datagrams: Sequence[tuple[bytes, Address]], ecn: int = 0) -> None:
        sent = self.send_nowait(datagrams, ecn)
        for data, addr in datagrams[sent:]:
            await self._sendto(data, addr)  # waits until the socket is writable

    def _sendto_now(self, data: bytes, addr: Address) -> bool:
        """One datagram; False if the socket cannot take it now."""
        try:
            self._sock.sendto(data, addr)
        except BlockingIOError:
            return False
        except OSError:
            if self.closed:
                raise trio.ClosedResourceError("transport closed") from None
            self.send_errors += 1
            return True
        self.datagrams_sent += 1
        return True

    async def _sendto(self, data: bytes, addr: Address) -> None:
        while not self._sendto_now(data, addr):
            await trio.lowlevel.wait_writable(self._sock)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        trio.lowlevel.notify_closing(self._sock)
        self._sock.close()


class LinuxTransport(BatchedTransport):
    """Non-blocking socket with GSO sends and GRO receives, drained per wake-up."""

    kind = "linux-gso-gro"

    def __init__(self, sock: socket.socket, *, ecn: bool = False) -> None:
        super().__init__(sock)
        self._ancillary_size = _ANCILLARY_SIZE
        self.ecn = ecn
        self.gso = True
        #: How many sendmsg calls carried more than one datagram.
        self.gso_sends = 0

    async def receive(self) -> list[tuple[bytes, Address, int]]:
        if self.closed:  # (before waiting on a closed socket's file descriptor)
            raise trio.ClosedResourceError("transport closed")
        sock = self._sock
        view = self._view
        buffers = [self._buffer]
        ancillary_size = self._ancillary_size
        if self._drained:
            self._drained = False
            await trio.lowlevel.wait_readable(sock)
        elif self._full:
            self._full = False
            await trio.lowlevel.checkpoint()
        while True:
            if self.closed:
                raise trio.ClosedResourceError("transport closed")
            batch: list[tuple[bytes, Address, int]] = []
            for _ in range(MAX_BATCH):
                try:
                    n, ancillary, _flags, raw_addr = sock.recvmsg_into(buffers, ancillary_size)
                except BlockingIOError:
                    break
                except OSError:
                    if self.closed:
                        raise trio.ClosedResourceError("transport closed") from None
                    self.receive_errors += 1
                    continue
                # (an IPv4 address is already ``(str, int)``: normalize_address keeps it)
                addr = raw_addr if len(raw_addr) == 2 else normalize_address(raw_addr)
                segment = n
                ecn = 0
                for level, kind, cdata in ancillary:
                    if level == SOL_UDP:
                        if kind == UDP_GRO:
                            segment = int.from_bytes(cdata, sys.byteorder) or n
                    elif level == IPPROTO_IP:
                        if kind == IP_TOS:
                            ecn = cdata[0] & 3
                    elif level == IPPROTO_IPV6 and kind == IPV6_TCLASS:
                        ecn = int.from_bytes(cdata, sys.byteorder) & 3
                if segment >= n:
                    batch.append((bytes(view[:n]), addr, ecn))
                else:  # a GRO super-datagram: every segment had the same TOS
                    for start in range(0, n, segment):
                        batch.append((bytes(view[start : min(start + segment, n)]), addr, ecn))
                if len(batch) >= MAX_BATCH:
                    break
            if batch:
                self.datagrams_received += len(batch)
                if len(batch) < MAX_BATCH:
                    self._drained = True
                else:
                    self._full = True
                return batch
            await trio.lowlevel.wait_readable(sock)

    def send_nowait(self, datagrams: Sequence[tuple[bytes, Address]], ecn: int = 0) -> int:
        if self.closed:
            raise trio.ClosedResourceError("transport closed")
        self._apply_codepoint(self._sock, ecn)
        n = len(datagrams)
        if n == 1:
            return 1 if self._sendto_now(*datagrams[0]) else 0
        i = 0
        while i < n:
            j = self._group_end(datagrams, i)
            if j - i == 1:
                data, addr = datagrams[i]
                if not self._sendto_now(data, addr):
                    return i
            else:
                done = self._send_segments_now(datagrams[i:j], datagrams[i][1])
                if done is None:
                    return i
                if not done:  # the route cannot segment: one by one
                    for k in range(i, j):
                        data, addr = datagrams[k]
                        if not self._sendto_now(data, addr):
                            return k
            i = j
        return n

    async def send(self, datagrams: Sequence[tuple[bytes, Address]], ecn: int = 0) -> None:
        i = self.send_nowait(datagrams, ecn)
        n = len(datagrams)
        while i < n:  # the socket buffer is full: wait, one group at a time
            j = self._group_end(datagrams, i)
            if j - i == 1:
                await self._sendto(*datagrams[i])
            elif not await self._send_segments(datagrams[i:j], datagrams[i][1]):
                for segment, segment_addr in datagrams[i:j]:
                    await self._sendto(segment, segment_addr)
            i = j

    def _group_end(self, datagrams: Sequence[tuple[bytes, Address]], i: int) -> int:
        """The end of the GSO group starting at ``i``: same address, same size but the last."""
        n = len(datagrams)
        j = i + 1
        if self.gso:
            data, addr = datagrams[i]
            size = len(data)
            total = size
            while j < n and j - i < _MAX_SEGMENTS:
                following, following_addr = datagrams[j]
                length = len(following)
                if following_addr != addr or length > size or total + length > _MAX_GSO_BYTES:
                    break
                total += length
                j += 1
                if length < size:
                    break  # only the last segment may be shorter
        return j

    def _send_segments_now(
        self, group: Sequence[tuple[bytes, Address]], addr: Address
    ) -> bool | None:
        """One GSO send: True when done (or failed and counted), False when the route cannot
        segment (GSO is then off), None if the socket cannot take it now."""
        payload = b"".join(data for data, _ in group)
        control = [(SOL_UDP, UDP_SEGMENT, _GSO_SIZE.pack(len(group[0][0])))]
        try:
            self._sock.sendmsg([payload], control, 0, addr)
        except BlockingIOError:
            return None
        except OSError as exc:
            if self.closed:
                raise trio.ClosedResourceError("transport closed") from None
            if exc.errno in (errno.EIO, errno.EINVAL, errno.EOPNOTSUPP, errno.ENOPROTOOPT):
                self.gso = False  # the route's device cannot segment: plain sends from now on
                return False
            self.send_errors += len(group)
            return True
        self.datagrams_sent += len(group)
        self.gso_sends += 1
        return True

    async def _send_segments(self, group: Sequence[tuple[bytes, Address]], addr: Address) -> bool:
        while (done := self._send_segments_now(group, addr)) is None:
            await trio.lowlevel.wait_writable(self._sock)
        return done


def _best_effort_setsockopt(
    sock: socket.socket | trio.socket.SocketType, level: int, name: int, value: int
) -> None:
    try:
        sock.setsockopt(level, name, value)
    except (OSError, NotImplementedError):
        pass


async def _resolve_local(host: str, port: int) -> tuple[int, Address]:
    if host in ("", "*"):
        host = "0.0.0.0"
    if is_ipv4_literal(host):
        return int(socket.AF_INET), (host, port)
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        infos = await trio.socket.getaddrinfo(host, port, type=trio.socket.SOCK_DGRAM)
        if not infos:
            raise OSError(f"cannot resolve {host!r}") from None
        family, _, _, _, sockaddr = infos[0]
        return int(family), normalize_address(sockaddr)
    family = trio.socket.AF_INET6 if ip.version == 6 else trio.socket.AF_INET
    return int(family), (host, port)


async def open_transport(
    local_address: tuple[str, int], *, fast_path: bool | None = None
) -> DatagramTransport:
    """Bind a UDP socket and wrap it in the best datagram path available.

    Args:
        local_address: ``(host, port)``; port 0 picks a free port.
        fast_path: None picks automatically; True requires the Linux GSO/GRO path
            (OSError if unavailable); False forces the portable path.
    """
    host, port = local_address
    family, address = await _resolve_local(host, port)
    sock = trio.socket.socket(family, trio.socket.SOCK_DGRAM)
    raw = _detach(sock)
    if raw is None:  # a fake socket (FakeNet, the virtual network): its own calls throughout
        return await _open_fake(sock, family, address, fast_path)
    try:
        # a real socket: set up and bound directly, without trio's resolver and checkpoint
        # (a client endpoint's first Initial leaves a scheduling round sooner)
        if family == socket.AF_INET6:
            _best_effort_setsockopt(raw, socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        _best_effort_setsockopt(raw, socket.SOL_SOCKET, socket.SO_RCVBUF, _SOCKET_BUFFER)
        _best_effort_setsockopt(raw, socket.SOL_SOCKET, socket.SO_SNDBUF, _SOCKET_BUFFER)
        raw.bind(address)
        if fast_path is not False:
            fast = _try_fast_path(raw)
            if fast is not None:
                return fast
            if fast_path:
                raise OSError("the Linux GSO/GRO datagram path is not available here")
        return BatchedTransport(raw)
    except BaseException:
        raw.close()
        raise


async def _open_fake(
    sock: trio.socket.SocketType, family: int, address: Address, fast_path: bool | None
) -> DatagramTransport:
    try:
        if family == trio.socket.AF_INET6:
            _best_effort_setsockopt(sock, trio.socket.IPPROTO_IPV6, trio.socket.IPV6_V6ONLY, 0)
        _best_effort_setsockopt(sock, trio.socket.SOL_SOCKET, trio.socket.SO_RCVBUF, _SOCKET_BUFFER)
        _best_effort_setsockopt(sock, trio.socket.SOL_SOCKET, trio.socket.SO_SNDBUF, _SOCKET_BUFFER)
        await sock.bind(address)
        if fast_path:
            raise OSError("the Linux GSO/GRO datagram path is not available here")
        return PortableTransport(sock, ecn=_enable_ecn(sock))
    except BaseException:
        sock.close()
        raise


def _try_fast_path(sock: socket.socket) -> LinuxTransport | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        sock.setsockopt(SOL_UDP, UDP_SEGMENT, 0)
        sock.setsockopt(SOL_UDP, UDP_GRO, 1)
    except (OSError, NotImplementedError, AttributeError):
        return None
    return LinuxTransport(sock, ecn=_enable_ecn(sock))


def _detach(sock: trio.socket.SocketType) -> socket.socket | None:
    """The plain non-blocking socket under a real trio socket; None for a fake one (FakeNet,
    the virtual network: no file descriptor)."""
    try:
        fileno = sock.fileno()
    except (OSError, NotImplementedError, AttributeError):
        return None
    if fileno < 0:
        return None
    raw = socket.socket(fileno=sock.detach())
    raw.setblocking(False)
    return raw
