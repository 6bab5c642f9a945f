"""HTTP/3 side by side, same run: trio_zttp vs aioquic (vs ngtcp2 where it can take part).

Printed as a table with ratios to aioquic, never asserted (see benchmarks/README.md):

1. bulk download of ``--size`` MB (default 100) on one request: ours<->ours,
   aioquic<->aioquic, ngtcp2<->ngtcp2 (``gtlsclient`` from ``gtlsserver``: the native
   ceiling, timed as the whole client process);
2. ``--requests`` (2,000) sequential small GETs on one connection;
3. ``--connections`` (100) new connections with one small GET each, closed each time:
   connections per second counting the handshake and the GET (from the first Initial to
   the response), and, on a row of its own, the closing period each side then waits
   (3 PTO in both libraries, RFC 9000 §10.2: a timer, not work, so not in the rate);
4. HTTP datagram round trips per second (100 bytes, one in flight) on an extended-CONNECT
   ``echo`` stream, for ``--seconds``;
5. the event loops' floor, no goal: plain UDP round trips (100 bytes), the same loop on both
   ends as in the rows above: a trio task to a trio echo process, an asyncio datagram
   protocol to an asyncio echo process.  A latency-bound row cannot beat its loop's floor:
   under the table, the floor of trio on both ends over aioquic's datagram rate is printed
   as the ceiling of the datagram row's ratio (what ours would reach with no QUIC work at
   all on either side).

A second table follows: CPU per exchange in the rows 2 to 5, user and system time apart,
of both processes of each stack (the client, this process, from ``os.times()``; the server,
from ``/proc/<pid>/stat``), taken over the timed part of each slice and summed over the
slices.  Each round trip also pays a fixed kernel cost in both processes, the same for
every stack, which bounds a latency row's wall ratio; this table shows each stack's own work.

Both tables come from the latency rows run where the OS places the processes.  By default
(``--placement os,one,two``) the rows 2 to 5 then run twice more, each printed as a table of
its own, no goals: with this process and the servers pinned to one CPU (a wake-up is a cheap
hand-off on that CPU, so a round trip costs what the two stacks compute), and pinned to two
different CPUs (each wake-up crosses CPUs, which costs the same for every stack).  The OS's
placement mixes the two at random, one reason its latency ratios swing between runs.  The
download runs once, unpinned, with the ``os`` placement only.

Servers are the interop peers (``tests/interop/peers``) in their own processes; clients run
in this process (trio for ours, asyncio for aioquic).  The latency rows (2 to 5) run in
``--slices`` (5) slices, ours and aioquic alternating: the rates are the slices' means, the
ratio is the median of the slices' ratios, each taken on about the same machine (these
shared machines change speed within seconds; the floor row shows how fast it was).
Issue 7's goals: at least 2x aioquic on bulk throughput and datagram round trips, 1.5x on
requests and new connections.

    .venv/bin/python benchmarks/bench_h3.py            # about a minute
    .venv/bin/python benchmarks/bench_h3.py --size 20 --requests 500 --connections 30
    .venv/bin/python benchmarks/bench_h3.py --placement os     # the first two tables only
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "interop" / "peers"))

import trio  # noqa: E402
from aioquic.asyncio import connect as aioquic_connect  # noqa: E402
from aioquic.asyncio.protocol import QuicConnectionProtocol  # noqa: E402
from aioquic.h3 import events as h3_events  # noqa: E402
from aioquic.quic.configuration import QuicConfiguration  # noqa: E402
from aioquic_peer import PeerH3Connection  # noqa: E402

import trio_zttp  # noqa: E402
from tests.interop.harness import InteropSession, PeerProcess  # noqa: E402
from tests.interop.ngtcp2 import GTLSCLIENT, GTLSSERVER, find_binary, start_gtlsserver  # noqa: E402
from trio_zttp import quic  # noqa: E402
from trio_zttp.testing import CertificateAuthority  # noqa: E402

MB = 1_000_000
SMALL = 100
_DATAGRAMS = "HTTP datagram round trips/s"
_FLOOR = "  UDP round trips/s, no QUIC (trio | asyncio)"


# -- CPU per exchange: both processes of a stack ---------------------------------------------------


def _proc_cpu(pid: int) -> tuple[float, float] | None:
    """(user, system) seconds used so far by process ``pid``, or None without Linux ``/proc``."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()  # the name, in parentheses, may hold spaces
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick  # fields 14 and 15: utime, stime


class _CpuMeter:
    """CPU of this process (the client) and of one server process, summed over the windows
    between :meth:`start` and :meth:`stop`, with the number of exchanges done in them.

    Both come from the kernel's tick accounting (10 ms a tick): meaningful over a second or
    more of summed windows, not for one short window.
    """

    __slots__ = ("_client_at", "_server_at", "client", "exchanges", "pid", "server")

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.client = [0.0, 0.0]  # user, system seconds
        self.server: list[float] | None = [0.0, 0.0]  # None once /proc failed us
        self.exchanges = 0
        self._client_at = os.times()
        self._server_at: tuple[float, float] | None = None

    def start(self) -> None:
        self._server_at = _proc_cpu(self.pid)
        self._client_at = os.times()

    def stop(self, exchanges: int) -> None:
        client = os.times()
        server = _proc_cpu(self.pid)
        self.client[0] += client.user - self._client_at.user
        self.client[1] += client.system - self._client_at.system
        if self.server is not None and server is not None and self._server_at is not None:
            self.server[0] += server[0] - self._server_at[0]
            self.server[1] += server[1] - self._server_at[1]
        else:
            self.server = None
        self.exchanges += exchanges

    def per_exchange(self) -> tuple[list[float], list[float] | None]:
        """Microseconds per exchange: client (user, system) and server (user, system)."""
        scale = 1e6 / max(self.exchanges, 1)
        server = None if self.server is None else [scale * t for t in self.server]
        return [scale * t for t in self.client], server


# -- ours (trio) -------------------------------------------------------------------------------


def _ours_config(cafile: str) -> quic.Configuration:
    return quic.Configuration(is_client=True, alpn_protocols=("h3",), cafile=cafile,
                              max_datagram_frame_size=65536, server_name="localhost")


async def _ours_bulk(port: int, cafile: str, size: int) -> float:
    """Best of two downloads on one connection (the first also warms the server's cache)."""
    best = 0.0
    async with trio_zttp.open_h3_connection("127.0.0.1", port, _ours_config(cafile)) as h3:
        for _ in range(2):
            started = time.perf_counter()
            response = await h3.request("GET", f"/{size}")
            received = 0
            while data := await response.body.receive_some():
                received += len(data)
            assert received == size, received
            best = max(best, size / MB / (time.perf_counter() - started))
    return best


async def _ours_requests(port: int, cafile: str, count: int, meter: _CpuMeter) -> float:
    async with trio_zttp.open_h3_connection("127.0.0.1", port, _ours_config(cafile)) as h3:
        await (await h3.request("GET", f"/{SMALL}")).read()
        meter.start()
        started = time.perf_counter()
        for _ in range(count):
            body = await (await h3.request("GET", f"/{SMALL}")).read()
            assert len(body) == SMALL
        elapsed = time.perf_counter() - started
        meter.stop(count)
        return count / elapsed


async def _ours_connections(port: int, cafile: str, count: int,
                            meter: _CpuMeter) -> tuple[float, float]:
    """(connections per second counting connect + GET only, mean closing period in ms).

    The CPU counts the closing too: the closing frames are work, its wait is none."""
    config = _ours_config(cafile)
    busy = closing = 0.0
    meter.start()
    for _ in range(count):
        started = time.perf_counter()
        async with trio_zttp.open_h3_connection("127.0.0.1", port, config) as h3:
            assert len(await (await h3.request("GET", f"/{SMALL}")).read()) == SMALL
            answered = time.perf_counter()
        closed = time.perf_counter()
        busy += answered - started
        closing += closed - answered
    meter.stop(count)
    return count / busy, 1000 * closing / count


async def _ours_datagrams(port: int, cafile: str, seconds: float, meter: _CpuMeter) -> float:
    async with trio_zttp.open_h3_connection("127.0.0.1", port, _ours_config(cafile)) as h3:
        async with h3.open_request_stream() as stream:
            await stream.send_request_header("CONNECT", "/echo", protocol="echo")
            assert (await stream.read_response()).status == 200
            payload = bytes(SMALL)
            rounds = 0
            meter.start()
            started = time.perf_counter()
            while time.perf_counter() - started < seconds:
                await stream.send_datagram(payload)
                with trio.move_on_after(0.5):
                    await stream.receive_datagram()
                    rounds += 1
            elapsed = time.perf_counter() - started
            meter.stop(rounds)
            await stream.send_eof()
    return rounds / elapsed


# -- aioquic (asyncio) ---------------------------------------------------------------------------


class _AioClient(QuicConnectionProtocol):  # type: ignore[misc]
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.h3 = PeerH3Connection(self._quic)
        self.waiters: dict[int, tuple[asyncio.Future[int], list[int]]] = {}
        self.datagrams: asyncio.Queue[bytes] = asyncio.Queue()

    def quic_event_received(self, event: Any) -> None:
        for h3_event in self.h3.handle_event(event):
            if isinstance(h3_event, h3_events.DatagramReceived):
                self.datagrams.put_nowait(h3_event.data)
                continue
            waiter = self.waiters.get(getattr(h3_event, "stream_id", -1))
            if waiter is None:
                continue
            future, counts = waiter
            if isinstance(h3_event, h3_events.HeadersReceived):
                counts[1] = int(dict(h3_event.headers)[b":status"])
                if not future.done() and counts[2]:  # CONNECT: the headers are the answer
                    future.set_result(counts[1])
            elif isinstance(h3_event, h3_events.DataReceived):
                counts[0] += len(h3_event.data)
            if getattr(h3_event, "stream_ended", False) and not future.done():
                future.set_result(counts[0])

    def request(self, method: str, path: str, protocol: str | None = None) -> asyncio.Future[int]:
        stream_id = self._quic.get_next_available_stream_id()
        headers = [(b":method", method.encode())]
        if protocol:
            headers.append((b":protocol", protocol.encode()))
        headers += [
            (b":scheme", b"https"), (b":authority", b"localhost"), (b":path", path.encode())
        ]
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.waiters[stream_id] = (future, [0, 0, 1 if protocol else 0])
        self.h3.send_headers(stream_id, headers, end_stream=protocol is None)
        self.transmit()
        self.last_stream = stream_id
        return future


def _aio_config(cafile: str) -> QuicConfiguration:
    config = QuicConfiguration(is_client=True, alpn_protocols=["h3"], server_name="localhost",
                               max_datagram_frame_size=65536, verify_mode=ssl.CERT_REQUIRED)
    config.load_verify_locations(cafile=cafile)
    return config


async def _aio(port: int, cafile: str, work: Callable[[_AioClient], Any]) -> Any:
    async with aioquic_connect("127.0.0.1", port, configuration=_aio_config(cafile),
                               create_protocol=_AioClient) as client:
        return await work(client)


async def _aio_bulk(port: int, cafile: str, size: int) -> float:
    async def work(client: _AioClient) -> float:
        best = 0.0
        for _ in range(2):  # as ours: best of two, the first warms the server's cache
            started = time.perf_counter()
            assert await client.request("GET", f"/{size}") == size
            best = max(best, size / MB / (time.perf_counter() - started))
        return best

    result: float = await _aio(port, cafile, work)
    return result


async def _aio_requests(port: int, cafile: str, count: int, meter: _CpuMeter) -> float:
    async def work(client: _AioClient) -> float:
        await client.request("GET", f"/{SMALL}")
        meter.start()
        started = time.perf_counter()
        for _ in range(count):
            assert await client.request("GET", f"/{SMALL}") == SMALL
        elapsed = time.perf_counter() - started
        meter.stop(count)
        return count / elapsed

    result: float = await _aio(port, cafile, work)
    return result


async def _aio_connections(port: int, cafile: str, count: int,
                           meter: _CpuMeter) -> tuple[float, float]:
    busy = closing = 0.0
    meter.start()
    for _ in range(count):
        started = time.perf_counter()

        async def work(client: _AioClient) -> float:
            assert await client.request("GET", f"/{SMALL}") == SMALL
            return time.perf_counter()

        answered = await _aio(port, cafile, work)
        closed = time.perf_counter()
        busy += answered - started
        closing += closed - answered
    meter.stop(count)
    return count / busy, 1000 * closing / count


async def _aio_datagrams(port: int, cafile: str, seconds: float, meter: _CpuMeter) -> float:
    async def work(client: _AioClient) -> float:
        assert await client.request("CONNECT", "/echo", protocol="echo") == 200
        stream_id = client.last_stream
        rounds = 0
        meter.start()
        started = time.perf_counter()
        while time.perf_counter() - started < seconds:
            client.h3.send_datagram(stream_id, bytes(SMALL))
            client.transmit()
            try:
                await asyncio.wait_for(client.datagrams.get(), 0.5)
                rounds += 1
            except TimeoutError:
                pass
        elapsed = time.perf_counter() - started
        meter.stop(rounds)
        return rounds / elapsed

    result: float = await _aio(port, cafile, work)
    return result


# -- the event loops' floor: UDP round trips with no QUIC at all ---------------------------------

_TRIO_ECHO = (
    "import socket, trio\n"
    "async def main():\n"
    "    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.setblocking(False)\n"
    "    s.bind(('127.0.0.1', 0)); print(s.getsockname()[1], flush=True)\n"
    "    while True:\n"
    "        await trio.lowlevel.wait_readable(s)\n"
    "        while True:\n"
    "            try: data, addr = s.recvfrom(2048)\n"
    "            except BlockingIOError: break\n"
    "            s.sendto(data, addr)\n"
    "trio.run(main)\n"
)
_ASYNCIO_ECHO = (
    "import asyncio\n"
    "class Echo(asyncio.DatagramProtocol):\n"
    "    def connection_made(self, transport): self.transport = transport\n"
    "    def datagram_received(self, data, addr): self.transport.sendto(data, addr)\n"
    "async def main():\n"
    "    loop = asyncio.get_running_loop()\n"
    "    transport, _ = await loop.create_datagram_endpoint(Echo, local_addr=('127.0.0.1', 0))\n"
    "    print(transport.get_extra_info('sockname')[1], flush=True)\n"
    "    await loop.create_future()\n"
    "asyncio.run(main())\n"
)


def _start_udp_echo(source: str) -> tuple[subprocess.Popen[str], int]:
    """A UDP echo in its own process, on the loop the stack under test runs on."""
    echo = subprocess.Popen([sys.executable, "-c", source], stdout=subprocess.PIPE, text=True)
    assert echo.stdout is not None
    return echo, int(echo.stdout.readline())


async def _trio_udp_floor(port: int, _cafile: str, seconds: float, meter: _CpuMeter) -> float:
    """What a trio task pays per UDP round trip: wait_readable, recvfrom, sendto."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    sock.bind(("127.0.0.1", 0))
    payload, rounds = bytes(SMALL), 0
    meter.start()
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        sock.sendto(payload, ("127.0.0.1", port))
        await trio.lowlevel.wait_readable(sock)
        sock.recvfrom(2048)
        rounds += 1
    elapsed = time.perf_counter() - started
    meter.stop(rounds)
    sock.close()
    return rounds / elapsed


class _AioUdp(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.waiter: asyncio.Future[bytes] | None = None

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(data)


async def _asyncio_udp_floor(port: int, _cafile: str, seconds: float,
                             meter: _CpuMeter) -> float:
    """The same with asyncio's datagram protocol, as aioquic uses it."""
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(
        _AioUdp, local_addr=("127.0.0.1", 0))
    payload, rounds = bytes(SMALL), 0
    meter.start()
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        protocol.waiter = loop.create_future()
        transport.sendto(payload, ("127.0.0.1", port))
        await protocol.waiter
        rounds += 1
    elapsed = time.perf_counter() - started
    meter.stop(rounds)
    transport.close()
    return rounds / elapsed


# -- ngtcp2 --------------------------------------------------------------------------------------


def _ngtcp2_bulk(session: InteropSession, certs: dict[str, str], size: int,
                 tmp: Path) -> float | None:
    server_bin, client_bin = find_binary(GTLSSERVER), find_binary(GTLSCLIENT)
    if server_bin is None or client_bin is None:
        return None
    server = start_gtlsserver(session, server_bin, key=certs["key"], cert=certs["cert"],
                              htdocs=tmp / "htdocs", max_dyn_length=f"{size * 2}")
    assert server.port is not None
    argv = [client_bin, "--quiet", "--exit-on-all-streams-close", "--download", str(tmp / "dl"),
            "127.0.0.1", str(server.port), f"https://localhost:{server.port}/{size}"]
    started = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True, timeout=120)
    elapsed = time.perf_counter() - started
    server.stop()
    return size / MB / elapsed


# -- CPU placement of the latency rows ------------------------------------------------------------

_PLACEMENTS = {  # each mode's table heading (the os mode's table is the first, with goals)
    "os": "",
    "one": "client and server on one CPU (the exchange costs what the two stacks compute)",
    "two": "client and server on two CPUs (each wake-up crosses CPUs)",
}
_Cpus = tuple[set[int], set[int]] | None  # (this process, the servers); None: the OS decides


def _placement_list(text: str) -> list[str]:
    """``--placement``: a comma-separated subset of the modes, run in their canonical order."""
    modes = {mode.strip() for mode in text.split(",") if mode.strip()}
    unknown = modes - _PLACEMENTS.keys()
    if unknown or not modes:
        raise argparse.ArgumentTypeError(f"choose from {','.join(_PLACEMENTS)}, not {text!r}")
    return [mode for mode in _PLACEMENTS if mode in modes]


def _placements(modes: list[str]) -> list[tuple[str, _Cpus]]:
    """The modes that can run here with their CPUs, from this process's original affinity;
    prints a one-line note for each that cannot."""
    pinning = hasattr(os, "sched_setaffinity") and hasattr(os, "sched_getaffinity")
    cpus = sorted(os.sched_getaffinity(0)) if pinning else []
    chosen: list[tuple[str, _Cpus]] = []
    for mode in modes:
        need = {"os": 0, "one": 1, "two": 2}[mode]
        if len(cpus) < need:
            why = (f"it needs {need} CPUs, this process may use {len(cpus)}" if pinning
                   else "this system has no os.sched_setaffinity")
            print(f"placement {mode!r} skipped: {why}", flush=True)
        else:
            chosen.append((mode, None if mode == "os" else ({cpus[0]}, {cpus[need - 1]})))
    return chosen


def _set_affinity(pid: int, cpus: set[int]) -> None:
    """Pin every thread of process ``pid``: sched_setaffinity moves only the one it names."""
    try:
        threads = [int(task.name) for task in Path(f"/proc/{pid}/task").iterdir()]
    except OSError:
        threads = [pid]
    for thread in threads:
        with contextlib.suppress(ProcessLookupError):  # a thread that ended meanwhile
            os.sched_setaffinity(thread, cpus)


@contextlib.contextmanager
def _placed(cpus: _Cpus, servers: list[int]) -> Iterator[None]:
    """This process on ``cpus[0]``, the ``servers`` on ``cpus[1]``, each one's original
    affinity restored after (``cpus`` None: nothing changes)."""
    if cpus is None:
        yield
        return
    saved = {pid: os.sched_getaffinity(pid) for pid in (os.getpid(), *servers)}
    try:
        _set_affinity(os.getpid(), cpus[0])
        for pid in servers:
            _set_affinity(pid, cpus[1])
        yield
    finally:
        for pid, original in saved.items():
            _set_affinity(pid, original)


# -- the run --------------------------------------------------------------------------------------


class _Table:
    """One placement's rows: the slices' means, the median ratio, the goal, the CPU meters."""

    __slots__ = ("cpu", "goals", "ratios", "rows")

    def __init__(self) -> None:
        self.rows: dict[str, dict[str, float | None]] = {}
        self.ratios: dict[str, float] = {}
        self.goals: dict[str, float | None] = {}
        self.cpu: dict[str, tuple[_CpuMeter, _CpuMeter]] = {}


def _paired(ours: Callable[[], Any], aio: Callable[[], Any], slices: int) -> tuple[list[Any],
                                                                                   list[Any]]:
    """Run both ``slices`` times, alternating which goes first: a shared machine changes
    speed within seconds, and each pair of slices sees about the same machine."""
    ours_values: list[Any] = []
    aio_values: list[Any] = []
    for i in range(slices):
        if i % 2:
            aio_values.append(aio())
            ours_values.append(ours())
        else:
            ours_values.append(ours())
            aio_values.append(aio())
    return ours_values, aio_values


def _row(table: _Table, name: str, ours: list[float], aio: list[float],
         goal: float | None) -> None:
    """A table row: the mean of the slices, and the median of the per-slice ratios."""
    table.rows[name] = {"ours": statistics.fmean(ours), "aioquic": statistics.fmean(aio),
                        "ngtcp2": None}
    table.ratios[name] = statistics.median(o / a for o, a in zip(ours, aio, strict=True))
    table.goals[name] = goal


def _measures(args: argparse.Namespace) -> list[tuple[str, str, Any, Any, int | float, float]]:
    """The latency rows 2 to 4: (row, CPU row, ours, aioquic, amount, goal)."""
    return [
        (f"{args.requests} sequential GETs, req/s", f"{args.requests} sequential GETs",
         _ours_requests, _aio_requests, args.requests, 1.5),
        (f"{args.connections} new connections + GET, conn/s",
         f"{args.connections} new connections + GET", _ours_connections,
         _aio_connections, args.connections, 1.5),
        (_DATAGRAMS, "HTTP datagram round trips", _ours_datagrams, _aio_datagrams,
         args.seconds, 2.0),
    ]


def _latency_rows(args: argparse.Namespace, table: _Table, servers: tuple[PeerProcess, ...],
                  cafile: str, cpus: _Cpus) -> None:
    """The rows 2 to 5 into ``table``, this process and the servers placed on ``cpus``."""
    ours, aio = servers
    assert ours.port is not None and aio.port is not None
    with _placed(cpus, [ours.pid, aio.pid]):
        for name, cpu_name, ours_fn, aio_fn, amount, row_goal in _measures(args):
            print(f"... {name}", file=sys.stderr, flush=True)
            part = amount / args.slices if isinstance(amount, float) else amount // args.slices
            table.cpu[cpu_name] = _CpuMeter(ours.pid), _CpuMeter(aio.pid)
            ours_values, aio_values = _paired(
                lambda fn=ours_fn, part=part, meter=table.cpu[cpu_name][0]: trio.run(
                    fn, ours.port, cafile, part, meter),
                lambda fn=aio_fn, part=part, meter=table.cpu[cpu_name][1]: asyncio.run(
                    fn(aio.port, cafile, part, meter)),
                args.slices,
            )
            if isinstance(ours_values[0], tuple):  # new connections: (rate, closing period)
                closing = "  then the closing period, ms (lower is less)"
                _row(table, name, [v[0] for v in ours_values], [v[0] for v in aio_values],
                     row_goal)
                _row(table, closing, [v[1] for v in ours_values], [v[1] for v in aio_values],
                     None)
                continue
            _row(table, name, ours_values, aio_values, row_goal)
        _floor_row(args, table, cafile, cpus)


def _floor_row(args: argparse.Namespace, table: _Table, cafile: str, cpus: _Cpus) -> None:
    """Row 5: plain UDP round trips to echo processes, placed as the servers are."""
    print("... UDP round trips without QUIC", file=sys.stderr, flush=True)
    trio_echo, trio_port = _start_udp_echo(_TRIO_ECHO)
    asyncio_echo, asyncio_port = _start_udp_echo(_ASYNCIO_ECHO)
    try:
        if cpus is not None:  # started by this process, they inherited its CPU: move them
            for echo in (trio_echo, asyncio_echo):
                _set_affinity(echo.pid, cpus[1])
        part = args.seconds / args.slices
        trio_meter, asyncio_meter = table.cpu["UDP round trips, no QUIC (trio | asyncio)"] = (
            _CpuMeter(trio_echo.pid), _CpuMeter(asyncio_echo.pid))
        ours_values, aio_values = _paired(
            lambda: trio.run(_trio_udp_floor, trio_port, cafile, part, trio_meter),
            lambda: asyncio.run(_asyncio_udp_floor(asyncio_port, cafile, part, asyncio_meter)),
            args.slices,
        )
        _row(table, _FLOOR, ours_values, aio_values, None)
    finally:
        for echo in (trio_echo, asyncio_echo):
            echo.kill()
            echo.wait()


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=100, help="MB for the bulk download")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--connections", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=3.0, help="datagram round trips")
    parser.add_argument("--slices", type=int, default=5,
                        help="latency rows: alternate ours and aioquic in this many slices")
    parser.add_argument("--placement", type=_placement_list, default=list(_PLACEMENTS),
                        help="CPU placements of the latency rows, a comma-separated subset of "
                        "os (the OS decides: the table with the goals, the download and the "
                        "CPU table), one (client and servers pinned to one CPU), two (pinned "
                        "to two CPUs); default: os,one,two")
    return parser.parse_args()


def main() -> None:
    args = _arguments()
    placements = _placements(args.placement)
    size = args.size * MB
    tmp = Path(tempfile.mkdtemp(prefix="bench-h3-"))
    ca = CertificateAuthority.create()
    leaf = ca.issue(["localhost", "127.0.0.1"])
    certs = {"ca": str(tmp / "ca.pem"), "cert": str(tmp / "cert.pem"), "key": str(tmp / "key.pem")}
    ca.write_pem(certs["ca"])
    leaf.write_pem(certs["cert"], certs["key"])
    tables = {mode: _Table() for mode, _ in placements}
    bulk = f"download {args.size} MB, MB/s"
    with InteropSession(tmp / "logs", cert=Path(certs["cert"]), key=Path(certs["key"]),
                        env={"TRIO_ZTTP_INTEROP_ENGINE": "ours-only"}) as session:
        ours = session.server("ours", "h3", timeout=3600)
        aio = session.server("aioquic", "h3", timeout=3600)
        assert ours.port is not None and aio.port is not None
        cafile = certs["ca"]
        if "os" in tables:  # the download runs once, unpinned: it uses both CPUs
            print(f"... {bulk}", file=sys.stderr, flush=True)
            ours_bulk = trio.run(_ours_bulk, ours.port, cafile, size)  # one slice
            aio_bulk = asyncio.run(_aio_bulk(aio.port, cafile, size))
            _row(tables["os"], bulk, [ours_bulk], [aio_bulk], 2.0)
        for mode, cpus in placements:
            print(f"... placement {mode}", file=sys.stderr, flush=True)
            _latency_rows(args, tables[mode], (ours, aio), cafile, cpus)
        if "os" in tables:
            print("... ngtcp2 download", file=sys.stderr, flush=True)
            tables["os"].rows[bulk]["ngtcp2"] = _ngtcp2_bulk(session, certs, size, tmp)
    shutil.rmtree(tmp, ignore_errors=True)
    if "os" in tables:
        _print_goals(tables["os"])
        _print_cpu(tables["os"].cpu)
    for mode, table in tables.items():
        if mode != "os":
            _print_placement(_PLACEMENTS[mode], table)


def _print_goals(table: _Table) -> None:
    """The first table: the OS's placement, with the ratios judged against the goals."""
    print(f"\n{'':44} {'ours':>10} {'aioquic':>10} {'ngtcp2':>10} {'ours/aioquic':>13} goal")
    for name, row in table.rows.items():
        ours_value, aio_value, native = row["ours"], row["aioquic"], row["ngtcp2"]
        assert ours_value is not None and aio_value is not None
        ratio = table.ratios[name]
        goal = table.goals[name]
        native_text = f"{native:10.1f}" if native is not None else f"{'-':>10}"
        if goal is None:
            print(f"{name:44} {ours_value:10.1f} {aio_value:10.1f} {native_text} "
                  f"{ratio:12.2f}x (no goal)")
            continue
        verdict = "met" if ratio >= goal else "not met"
        print(f"{name:44} {ours_value:10.1f} {aio_value:10.1f} {native_text} {ratio:12.2f}x "
              f">= {goal}x {verdict}")
    ceiling = table.rows[_FLOOR]["ours"]
    aio_datagrams = table.rows[_DATAGRAMS]["aioquic"]
    assert ceiling is not None and aio_datagrams is not None
    print(f"\nceiling of the datagram row's ratio with no QUIC work on either side "
          f"(trio's UDP floor / aioquic's datagram rate): {ceiling / aio_datagrams:.2f}x")


def _print_placement(title: str, table: _Table) -> None:
    """A pinned placement's latency rows: rates and ratios, no goals (judged on the OS's)."""
    print(f"\n{title}\n{'':44} {'ours':>10} {'aioquic':>10} {'ours/aioquic':>13}")
    for name, row in table.rows.items():
        ours_value, aio_value = row["ours"], row["aioquic"]
        assert ours_value is not None and aio_value is not None
        print(f"{name:44} {ours_value:10.1f} {aio_value:10.1f} {table.ratios[name]:12.2f}x")


def _cpu_cell(meter: _CpuMeter) -> tuple[str, float, float | None]:
    """"client+server | client+server" (user | system, us per exchange), the client's user
    CPU and the server's (None without ``/proc``)."""
    client, server = meter.per_exchange()
    if server is None:
        return f"{client[0]:.0f}+- | {client[1]:.0f}+-", client[0], None
    return (f"{client[0]:.0f}+{server[0]:.0f} | {client[1]:.0f}+{server[1]:.0f}", client[0],
            server[0])


def _print_cpu(cpu: dict[str, tuple[_CpuMeter, _CpuMeter]]) -> None:
    """The second table: CPU per exchange, each stack's client and server process."""
    print(f"\n{'CPU per exchange, us: client+server, user | sys':47} {'ours':>21} "
          f"{'aioquic':>21} {'ours/aioquic user':>18} {'exchanges':>13}")
    for name, (ours_meter, aio_meter) in cpu.items():
        ours_text, ours_user, ours_server = _cpu_cell(ours_meter)
        aio_text, aio_user, aio_server = _cpu_cell(aio_meter)
        if ours_server is not None and aio_server is not None:
            ours_user, aio_user = ours_user + ours_server, aio_user + aio_server
        ratio = f"{ours_user / aio_user:17.2f}x" if aio_user else f"{'-':>18}"
        exchanges = f"{ours_meter.exchanges} | {aio_meter.exchanges}"
        print(f"{name:47} {ours_text:>21} {aio_text:>21} {ratio} {exchanges:>13}")
    print("(user and system CPU of each process over the timed part of the slices, from the "
          "kernel's tick\n accounting: a tick is 10 ms, spread over the row's exchanges, so a "
          "row means something only\n over a second or more of run time; a server column "
          "reads - without Linux /proc;\n ours/aioquic user: client+server user CPU (the "
          "clients' alone without /proc), lower is less)")

if __name__ == "__main__":
    main()
