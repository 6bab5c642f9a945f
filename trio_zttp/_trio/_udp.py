"""Datagram I/O for endpoints: a portable path and a Linux GSO/GRO fast path.

Both give the endpoint the same two calls: ``await receive()`` returns a *batch* of
``(payload, (host, port))`` datagrams, ``await send(datagrams)`` sends a batch.

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
"""

from __future__ import annotations

import errno
import ipaddress
import socket
import struct
import sys
from collections.abc import Sequence
from typing import Final

import trio

from ._engine import Address

__all__ = [
    "MAX_BATCH",
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

MAX_BATCH: Final = 256
"""Most datagrams one ``receive`` returns on the fast path."""
_MAX_SEGMENTS: Final = 64  # UDP_MAX_SEGMENTS on older kernels; newer ones allow 128
_MAX_GSO_BYTES: Final = 65000
_RECV_BUFFER: Final = 65536
_SOCKET_BUFFER: Final = 4 << 20
_GSO_SIZE: Final = struct.Struct("=H")


def normalize_address(addr: object) -> Address:
    """``(host, port)`` from a socket address (IPv6 flow info and scope dropped)."""
    host, port = addr[0], addr[1]  # type: ignore[index]
    return (str(host), int(port))


class DatagramTransport:
    """A bound UDP socket that moves datagrams in batches."""

    #: "portable" or "linux-gso-gro".
    kind: str = "portable"

    def __init__(self) -> None:
        #: Datagrams sent / received; send and receive errors swallowed (UDP semantics).
        self.datagrams_sent = 0
        self.datagrams_received = 0
        self.send_errors = 0
        self.receive_errors = 0
        self.closed = False

    @property
    def local_address(self) -> Address:
        """The bound ``(host, port)``."""
        raise NotImplementedError

    @property
    def family(self) -> int:
        """``AF_INET`` or ``AF_INET6``."""
        raise NotImplementedError

    async def send(self, datagrams: Sequence[tuple[bytes, Address]]) -> None:
        """Send every datagram; errors for single datagrams are counted, not raised."""
        raise NotImplementedError

    async def receive(self) -> list[tuple[bytes, Address]]:
        """Wait for at least one datagram and return all that are ready.

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

    def __init__(self, sock: trio.socket.SocketType) -> None:
        super().__init__()
        self._sock = sock
        self._address = normalize_address(sock.getsockname())
        # recvfrom(65536) would allocate (and shrink) a 64 KiB bytes object per datagram
        self._buffer = bytearray(_RECV_BUFFER)
        self._view = memoryview(self._buffer)

    @property
    def local_address(self) -> Address:
        return self._address

    @property
    def family(self) -> int:
        return int(self._sock.family)

    async def send(self, datagrams: Sequence[tuple[bytes, Address]]) -> None:
        sock = self._sock
        for data, addr in datagrams:
            try:
                await sock.sendto(data, addr)
            except OSError:
                if self.closed:
                    raise trio.ClosedResourceError("transport closed") from None
                self.send_errors += 1
            else:
                self.datagrams_sent += 1

    async def receive(self) -> list[tuple[bytes, Address]]:
        while True:
            if self.closed:
                raise trio.ClosedResourceError("transport closed")
            try:
                n, addr = await self._sock.recvfrom_into(self._buffer)
            except OSError:
                # ICMP errors surfaced on some platforms; a closed socket ends the loop above
                self.receive_errors += 1
                await trio.lowlevel.checkpoint()
                continue
            self.datagrams_received += 1
            return [(bytes(self._view[:n]), normalize_address(addr))]

    def close(self) -> None:
        self.closed = True
        self._sock.close()


class BatchedTransport(DatagramTransport):
    """A real socket, non-blocking, drained per wake-up: one checkpoint per batch (any OS)."""

    kind = "portable"

    def __init__(self, sock: socket.socket) -> None:
        super().__init__()
        self._sock = sock
        self._address = normalize_address(sock.getsockname())
        self._buffer = bytearray(_RECV_BUFFER)
        self._view = memoryview(self._buffer)
        # Each receive() yields *before* it reads, never between reading and returning: so the
        # drivers a batch woke drain their queues before the next batch is routed to them.
        # After a batch that read the socket dry, that yield is the wait for readability (no
        # recv that would only fail); after a full batch, a plain checkpoint.
        self._drained = False
        self._full = False

    @property
    def local_address(self) -> Address:
        return self._address

    @property
    def family(self) -> int:
        return int(self._sock.family)

    async def receive(self) -> list[tuple[bytes, Address]]:
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
            batch: list[tuple[bytes, Address]] = []
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
                batch.append((bytes(view[:n]), normalize_address(raw_addr)))
            if batch:
                self.datagrams_received += len(batch)
                if len(batch) < MAX_BATCH:
                    self._drained = True
                else:
                    self._full = True
                return batch
            await trio.lowlevel.wait_readable(sock)

    async def send(self, datagrams: Sequence[tuple[bytes, Address]]) -> None:
        sock = self._sock
        for data, addr in datagrams:
            try:
                sock.sendto(data, addr)
            except BlockingIOError:
                await self._sendto(data, addr)  # waits until the socket is writable
            except OSError:
                if self.closed:
                    raise trio.ClosedResourceError("transport closed") from None
                self.send_errors += 1
            else:
                self.datagrams_sent += 1

    async def _sendto(self, data: bytes, addr: Address) -> None:
        while True:
            try:
                self._sock.sendto(data, addr)
            except BlockingIOError:
                await trio.lowlevel.wait_writable(self._sock)
                continue
            except OSError:
                if self.closed:
                    raise trio.ClosedResourceError("transport closed") from None
                self.send_errors += 1
                return
            self.datagrams_sent += 1
            return

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        trio.lowlevel.notify_closing(self._sock)
        self._sock.close()


class LinuxTransport(BatchedTransport):
    """Non-blocking socket with GSO sends and GRO receives, drained per wake-up."""

    kind = "linux-gso-gro"

    def __init__(self, sock: socket.socket) -> None:
        super().__init__(sock)
        self._ancillary_size = socket.CMSG_SPACE(4)
        self.gso = True
        #: How many sendmsg calls carried more than one datagram.
        self.gso_sends = 0

    async def receive(self) -> list[tuple[bytes, Address]]:
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
            batch: list[tuple[bytes, Address]] = []
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
                addr = normalize_address(raw_addr)
                segment = n
                for level, kind, cdata in ancillary:
                    if level == SOL_UDP and kind == UDP_GRO:
                        segment = int.from_bytes(cdata, sys.byteorder) or n
                if segment >= n:
                    batch.append((bytes(view[:n]), addr))
                else:
                    for start in range(0, n, segment):
                        batch.append((bytes(view[start : min(start + segment, n)]), addr))
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

    async def send(self, datagrams: Sequence[tuple[bytes, Address]]) -> None:
        i = 0
        n = len(datagrams)
        while i < n:
            data, addr = datagrams[i]
            j = i + 1
            if self.gso:
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
            if j - i == 1:
                await self._sendto(data, addr)
            elif not await self._send_segments(datagrams[i:j], addr):
                for segment, segment_addr in datagrams[i:j]:
                    await self._sendto(segment, segment_addr)
            i = j

    async def _send_segments(self, group: Sequence[tuple[bytes, Address]], addr: Address) -> bool:
        payload = b"".join(data for data, _ in group)
        control = [(SOL_UDP, UDP_SEGMENT, _GSO_SIZE.pack(len(group[0][0])))]
        while True:
            try:
                self._sock.sendmsg([payload], control, 0, addr)
            except BlockingIOError:
                await trio.lowlevel.wait_writable(self._sock)
                continue
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


def _best_effort_setsockopt(
    sock: trio.socket.SocketType, level: int, name: int, value: int
) -> None:
    try:
        sock.setsockopt(level, name, value)
    except (OSError, NotImplementedError):
        pass


async def _resolve_local(host: str, port: int) -> tuple[int, Address]:
    if host in ("", "*"):
        host = "0.0.0.0"
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
    try:
        if family == trio.socket.AF_INET6:
            _best_effort_setsockopt(sock, trio.socket.IPPROTO_IPV6, trio.socket.IPV6_V6ONLY, 0)
        _best_effort_setsockopt(sock, trio.socket.SOL_SOCKET, trio.socket.SO_RCVBUF, _SOCKET_BUFFER)
        _best_effort_setsockopt(sock, trio.socket.SOL_SOCKET, trio.socket.SO_SNDBUF, _SOCKET_BUFFER)
        await sock.bind(address)
        if fast_path is not False:
            fast = _try_fast_path(sock)
            if fast is not None:
                return fast
            if fast_path:
                raise OSError("the Linux GSO/GRO datagram path is not available here")
        raw = _detach(sock)
        if raw is not None:
            return BatchedTransport(raw)
        return PortableTransport(sock)
    except BaseException:
        sock.close()
        raise


def _try_fast_path(sock: trio.socket.SocketType) -> LinuxTransport | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        sock.fileno()
        sock.setsockopt(SOL_UDP, UDP_SEGMENT, 0)
        sock.setsockopt(SOL_UDP, UDP_GRO, 1)
    except (OSError, NotImplementedError, AttributeError):
        return None
    raw = _detach(sock)
    return None if raw is None else LinuxTransport(raw)


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
