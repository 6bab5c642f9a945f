"""Datagram paths and the trio layer over real loopback UDP (no autojump: NOTES.md trap).

The fast path (GSO/GRO) needs Linux; the portable path runs everywhere, including trio's
fake network, which the last tests check.
"""

from __future__ import annotations

import socket
import sys
from functools import partial

import pytest
import trio

import trio_zttp
from trio_zttp._trio._udp import DatagramTransport, open_transport

from ._helpers import ENGINE, connected_pair

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="GSO/GRO is Linux")


def _has_ipv6() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


async def _collect(transport: DatagramTransport, count: int) -> list[tuple[bytes, tuple, int]]:
    got: list[tuple[bytes, tuple, int]] = []
    with trio.fail_after(5):
        while len(got) < count:
            got += await transport.receive()
    return got


@pytest.mark.parametrize(("sender_fast", "receiver_fast"), [
    (False, False),
    pytest.param(True, True, marks=linux_only),
    pytest.param(True, False, marks=linux_only),
    pytest.param(False, True, marks=linux_only),
])
async def test_udp_paths_deliver_in_order(sender_fast: bool, receiver_fast: bool) -> None:
    a = await open_transport(("127.0.0.1", 0), fast_path=sender_fast)
    b = await open_transport(("127.0.0.1", 0), fast_path=receiver_fast)
    try:
        assert a.kind == ("linux-gso-gro" if sender_fast else "portable")
        # a run of equal sizes, a shorter tail, then a bigger one (starts a new GSO run)
        payloads = [bytes([i]) * 1200 for i in range(20)] + [b"tail", b"z" * 1300]
        await a.send([(p, b.local_address) for p in payloads])
        got = await _collect(b, len(payloads))
        assert [data for data, _, _ in got] == payloads
        assert {addr for _, addr, _ in got} == {a.local_address}
        assert a.datagrams_sent == len(payloads)
        assert b.datagrams_received == len(payloads)
        if sender_fast:
            assert a.gso_sends >= 1  # type: ignore[attr-defined]
    finally:
        a.close()
        b.close()


@linux_only
async def test_udp_fast_path_batches_and_splits_by_destination() -> None:
    a = await open_transport(("127.0.0.1", 0), fast_path=True)
    b = await open_transport(("127.0.0.1", 0), fast_path=True)
    c = await open_transport(("127.0.0.1", 0), fast_path=True)
    try:
        batch = []
        for i in range(30):
            target = b if i % 10 < 5 else c
            batch.append((b"%03d" % i * 100, target.local_address))
        await a.send(batch)
        got_b = await _collect(b, 15)
        got_c = await _collect(c, 15)
        assert [d for d, _, _ in got_b] == [d for d, t in batch if t == b.local_address]
        assert [d for d, _, _ in got_c] == [d for d, t in batch if t == c.local_address]
        # one wake-up drains several datagrams
        await a.send([(b"x" * 100, b.local_address)] * 50)
        await trio.sleep(0.05)
        first = await b.receive()
        assert len(first) > 1
        rest = await _collect(b, 50 - len(first))
        assert len(first) + len(rest) == 50
    finally:
        for t in (a, b, c):
            t.close()


async def test_udp_portable_path_drains_a_batch_per_receive() -> None:
    # a real socket without GSO/GRO: non-blocking, drained per wake-up, like the fast path
    a = await open_transport(("127.0.0.1", 0), fast_path=False)
    b = await open_transport(("127.0.0.1", 0), fast_path=False)
    try:
        assert b.kind == "portable"
        payloads = [b"%02d" % i * 50 for i in range(40)]
        await a.send([(p, b.local_address) for p in payloads])
        await trio.sleep(0.05)
        first = await b.receive()
        assert len(first) > 1
        rest = await _collect(b, len(payloads) - len(first))
        assert [d for d, _, _ in first + rest] == payloads
        assert b.datagrams_received == len(payloads)
    finally:
        a.close()
        b.close()


@pytest.mark.parametrize("fast", [False, pytest.param(True, marks=linux_only)])
async def test_udp_close_wakes_a_blocked_receiver(fast: bool) -> None:
    transport = await open_transport(("127.0.0.1", 0), fast_path=fast)

    async def close_soon() -> None:
        await trio.sleep(0.05)
        transport.close()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(close_soon)
        with trio.fail_after(5), pytest.raises(trio.ClosedResourceError):
            await transport.receive()
    with pytest.raises(trio.ClosedResourceError):
        await transport.receive()


async def test_udp_fake_net_uses_the_portable_path(fake_net) -> None:
    transport = await open_transport(("127.0.0.1", 0))
    assert transport.kind == "portable"
    transport.close()
    with pytest.raises(OSError):
        await open_transport(("127.0.0.1", 0), fast_path=True)


@linux_only
async def test_udp_auto_picks_the_fast_path_on_linux() -> None:
    transport = await open_transport(("127.0.0.1", 0))
    assert transport.kind == "linux-gso-gro"
    transport.close()


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", pytest.param("::1", marks=pytest.mark.skipif(not _has_ipv6(), reason="no ::1"))],
)
async def test_loopback_stream_and_datagram_echo(ca, server_cert, host: str) -> None:
    with trio.fail_after(10):
        async with connected_pair(ca, server_cert, host=host) as pair:
            assert pair.server_endpoint.statistics().datagram_path == (
                "linux-gso-gro" if sys.platform.startswith("linux") else "portable"
            )
            payload = bytes(range(256)) * 2000  # 512 KB: many full-size datagrams

            async def echo() -> None:
                stream = await pair.server.accept_stream()
                async with stream:
                    while data := await stream.receive_some():
                        await stream.send_all(data)
                await pair.server.send_datagram(await pair.server.receive_datagram())

            async with trio.open_nursery() as nursery:
                nursery.start_soon(echo)
                async with pair.client.open_stream() as stream:

                    async def send() -> None:
                        await stream.send_all(payload)
                        await stream.send_eof()

                    nursery.start_soon(send)
                    got = bytearray()
                    while data := await stream.receive_some():
                        got += data
                assert got == payload
                await pair.client.send_datagram(b"datagram")
                assert await pair.client.receive_datagram() == b"datagram"


async def test_loopback_serve_quic_and_open_quic_connection(ca, server_cert) -> None:
    from ._helpers import client_configuration, server_configuration

    async def handler(connection: trio_zttp.QuicConnection) -> None:
        async with await connection.accept_stream() as stream:
            await stream.send_all(await stream.receive_some())

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            server = await nursery.start(
                partial(trio_zttp.serve_quic, connection_factory=ENGINE),
                handler, "127.0.0.1", 0, server_configuration(server_cert),
            )  # fmt: skip
            async with (
                trio_zttp.open_quic_connection(
                    server.local_address, client_configuration(ca), server_name="localhost",
                    connection_factory=ENGINE,
                ) as connection,
                connection.open_stream() as stream,
            ):  # fmt: skip
                await stream.send_all(b"over loopback")
                assert await stream.receive_some() == b"over loopback"
            nursery.cancel_scope.cancel()


class _NoGsoSocket:
    """A real socket whose sendmsg fails as on a device without segmentation offload."""

    def __init__(self, real: socket.socket) -> None:
        self.real = real
        self.family = real.family

    def getsockname(self):
        return self.real.getsockname()

    def fileno(self) -> int:
        return self.real.fileno()

    def sendmsg(self, *args):
        import errno

        raise OSError(errno.EIO, "no segmentation offload")

    def sendto(self, data, addr):
        return self.real.sendto(data, addr)

    def close(self) -> None:
        self.real.close()


@linux_only
async def test_udp_fast_path_falls_back_when_gso_fails() -> None:
    from trio_zttp._trio._udp import LinuxTransport

    raw = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    raw.bind(("127.0.0.1", 0))
    raw.setblocking(False)
    sender = LinuxTransport(_NoGsoSocket(raw))  # type: ignore[arg-type]
    receiver = await open_transport(("127.0.0.1", 0), fast_path=False)
    try:
        payloads = [bytes([i]) * 1000 for i in range(5)]
        await sender.send([(p, receiver.local_address) for p in payloads])
        assert not sender.gso  # switched off for good, silently
        got = await _collect(receiver, 5)
        assert [d for d, _, _ in got] == payloads
        assert sender.datagrams_sent == 5 and sender.send_errors == 0
    finally:
        sender.close()
        receiver.close()


@pytest.mark.parametrize("fast", [pytest.param(True, marks=linux_only), False])
async def test_udp_send_nowait_sends_synchronously_in_order(fast: bool) -> None:
    # what a task flushing its own data uses: no checkpoint, GSO groups on the fast path
    a = await open_transport(("127.0.0.1", 0), fast_path=fast)
    b = await open_transport(("127.0.0.1", 0), fast_path=fast)
    try:
        batch = [(b"%03d" % i * 400, b.local_address) for i in range(20)]
        batch.append((b"short", b.local_address))
        stats = trio.lowlevel.current_statistics
        runnable = stats().tasks_runnable
        assert a.send_nowait(batch) == len(batch)
        assert stats().tasks_runnable == runnable  # nothing scheduled, nothing awaited
        assert a.datagrams_sent == len(batch)
        got = await _collect(b, len(batch))
        assert [d for d, _, _ in got] == [d for d, _ in batch]
        if fast:
            assert a.gso_sends >= 1  # type: ignore[attr-defined]
        a.close()
        with pytest.raises(trio.ClosedResourceError):
            a.send_nowait(batch)
    finally:
        a.close()
        b.close()


async def test_udp_trio_sockets_cannot_send_nowait(fake_net) -> None:
    # trio's FakeNet sockets only have an async sendto: the driver sends for such transports
    a = await open_transport(("127.0.0.1", 0))
    b = await open_transport(("127.0.0.1", 0))
    try:
        assert a.send_nowait([(b"x", b.local_address)]) == 0
        assert a.datagrams_sent == 0
    finally:
        a.close()
        b.close()


def test_udp_is_ipv4_literal_agrees_with_ipaddress() -> None:
    # the fast check stands in for ipaddress: it must say yes exactly when ipaddress parses
    # an IPv4 address whose canonical form is the string itself
    import ipaddress
    import random

    from trio_zttp._trio._udp import is_ipv4_literal

    rng = random.Random(7)
    parts = ["0", "1", "01", "00", "9", "10", "127", "255", "256", "300", "-1", "", "a", " 1",
             "0x1", "1e2", "٣"]
    samples = ["127.0.0.1", "0.0.0.0", "::1", "::ffff:127.0.0.1", "localhost", "1.2.3",
               "1.2.3.4.5", "1.2.3.4 ", "", "1.2.3.4%eth0", "fe80::1%eth0"]
    for _ in range(3000):
        count = rng.choice([3, 4, 4, 4, 5])
        samples.append(".".join(rng.choice(parts) for _ in range(count)))
    for host in samples:
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            expected = False
        else:
            expected = ip.version == 4 and str(ip) == host
        assert is_ipv4_literal(host) == expected, host


@linux_only
@pytest.mark.parametrize("host", [
    "127.0.0.1",
    pytest.param("::1", marks=pytest.mark.skipif(not _has_ipv6(), reason="no IPv6")),
])
async def test_udp_fast_path_addresses_agree_with_normalize_address(host: str) -> None:
    """The fast path keeps an IPv4 ``(str, int)`` as it comes (no normalize_address call):
    both paths must still report the address normalize_address gives."""
    from trio_zttp._trio._udp import normalize_address

    senders = [await open_transport((host, 0), fast_path=False) for _ in range(3)]
    receivers = [await open_transport((host, 0), fast_path=fast) for fast in (True, False)]
    try:
        for receiver in receivers:
            for sender in senders:
                await sender.send([(b"from %d" % sender.local_address[1],
                                    receiver.local_address)])
            got = await _collect(receiver, len(senders))
            expected = {normalize_address(s.local_address) for s in senders}
            addrs = [addr for _, addr, _ in got]
            assert set(addrs) == expected
            assert all(type(a) is tuple and len(a) == 2 and type(a[0]) is str
                       and type(a[1]) is int for a in addrs)
    finally:
        for transport in senders + receivers:
            transport.close()
