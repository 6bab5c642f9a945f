"""QuicConnection: one QUIC connection, driven by one task in its endpoint's nursery.

The driver task owns the sans-IO engine.  Each wake-up it drains every datagram the
endpoint queued for it, feeds them to the engine, runs the timer if it expired, dispatches
the engine's events (waking stream readers, queueing DATAGRAM frames and incoming streams),
then sends ``datagrams_to_send(now)`` in one batch and sleeps until the engine's timer, the
next datagram or the next local command, whichever comes first.

Driving (who runs that step for received datagrams): the endpoint's receive task queues each
datagram of a batch for its connection; after the batch, for each connection whose driver
is parked waiting for work, it runs the same step itself (``_run_inline``: all of the batch's
datagrams, then the timer, events and flush), which saves the driver's task switch on every
datagram of an established connection.  What that step cannot finish without waiting (a
full socket, a finished or failed engine) wakes the driver.  A driver that is awake (busy,
waiting for the socket, not started yet) is never bypassed: it drains its queue itself.

Flushing (who calls ``datagrams_to_send``):

* User tasks never wait on the socket.  Their commands go to the engine directly; an async
  call that queued something flushes it itself before it returns or parks (``_settle``):
  ``datagrams_to_send`` and a non-blocking send, so a request leaves from the task that made
  it, without a hop through the driver.  What the socket cannot take at once goes to the
  driver, which waits for the socket.  Commands from synchronous calls wake the driver.
* When a batch woke user tasks (a response for a waiting client, a request for a handler),
  the driver leaves its flush to them: what they answer leaves in the same packet as the
  ACK.  If none of them flushed within :data:`FLUSH_DEFERRAL` of the batch's end, the
  driver does; meanwhile a synchronous call's output waits for that flush too.
* The driver sleeps in one cancel scope until its deadline passes.  Flushes only ever move
  the deadline earlier (but for the deferred flush's, and closing: the closing period's end
  replaces every earlier timer); a deadline that passes before the engine's timer is due
  costs one empty wake-up.  A timer handled on a datagram's wake-up moves it either way.

Closing (DESIGN.md):

* ``async with conn`` left normally or :meth:`QuicConnection.aclose`: what the streams
  queued is flushed, then CONNECTION_CLOSE with NO_ERROR, then wait (shielded) until the
  engine ends its closing period, at most its own 3·PTO timer.  Data not yet acknowledged
  is not retransmitted after the close: close when the application protocol says the peer
  has everything (typically the client closes after the last response).
* left by an exception or cancellation: CONNECTION_CLOSE with
  :attr:`QuicConnection.internal_error_code` and the exception's type name, flushed at
  once (shielded); the exception propagates.
* the peer closes, the idle timer fires or the engine fails: every pending and later call
  raises :class:`ConnectionClosedError`.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from types import TracebackType
from typing import Any, Final, Self, TypeVar, final

import attrs
import trio
from cryptography import x509

from ..quic._config import Configuration
from ..quic._errors import QuicError
from ._conn_events import handle_events, stream_for
from ._conn_types import DATAGRAM_QUEUE_SIZE as DATAGRAM_QUEUE_SIZE
from ._conn_types import QuicConnectionStatistics, _Closed, _EndpointLink
from ._driver import FLUSH_DEFERRAL as FLUSH_DEFERRAL
from ._driver import TIMER_GRANULARITY as TIMER_GRANULARITY
from ._driver import deadline_after, run, run_inline, send_unsent, step, step_sync
from ._engine import Address, EcnEngine, Engine
from .errors import ConnectionClosedError
from .stream import QuicReceiveStream, QuicSendStream, QuicStream, _StreamCore

__all__ = ["QuicConnection", "QuicConnectionStatistics"]

_S = TypeVar("_S", QuicStream, QuicReceiveStream)

INCOMING_QUEUE_SIZE: Final = 320
"""UDP datagrams queued between the endpoint's receive task and a connection's driver: one
whole receive batch (``_udp.MAX_BATCH``, 256) plus the up to 64 GRO segments of its last
read, so an idle driver never loses part of a single batch."""
_CLOSE_WAIT_SLACK: Final = 0.05  # seconds aclose waits past the closing period's end
_INTERNAL_ERROR: Final = 0x1
_NO_ERROR: Final = 0x0


@final
class QuicConnection(trio.abc.AsyncResource):
    """A QUIC connection: streams, datagrams, and a close that follows trio's rules.

    Made by :meth:`QuicEndpoint.connect` (client) or :meth:`QuicEndpoint.accept` /
    :func:`serve_quic` (server), never directly.  Use it as an async context manager, or
    call :meth:`aclose`.

    Attributes:
        stream_cancel_error_code: The application error code for RESET_STREAM and
            STOP_SENDING sent because a stream block was left by an exception or a send
            was cancelled (HTTP/3 sets H3_REQUEST_CANCELLED).  Default 0.
        internal_error_code: The application error code of the CONNECTION_CLOSE sent
            when the connection block is left by an exception.  Default 1.
    """

    def __init__(
        self,
        endpoint: _EndpointLink,
        engine: Engine,
        configuration: Configuration,
        *,
        is_client: bool,
        remote_address: Address,
        preferred_local_addresses: tuple[Address, ...] = (),
    ) -> None:
        self._endpoint = endpoint
        self._engine = engine
        # trio.current_time() without its two wrapper calls (the run's clock never changes)
        self._current_time = trio.lowlevel.current_clock().current_time
        self._configuration = configuration
        self._is_client = is_client
        self._remote_address = remote_address
        # server: the endpoint's preferred-address sockets, and which one the current path
        # uses (0: the endpoint's own socket, i: preferred_local_addresses[i - 1])
        self._preferred_local_addresses = preferred_local_addresses
        self._path_socket = 0
        self.stream_cancel_error_code = 0
        self.internal_error_code = _INTERNAL_ERROR

        # datagrams (payload, source, ECN codepoint) the endpoint queued for the driver: a
        # plain deque, and the driver's task rescheduled directly (no memory channel)
        self._incoming: deque[tuple[bytes, Address, int]] = deque()
        self._incoming_closed = False  # the driver finished: nothing is queued any more
        self._parked: trio.lowlevel.Task | None = None  # the driver, waiting for work
        # ECN: the engine takes and chooses codepoints (see _engine.EcnEngine)
        self._ecn_engine: EcnEngine | None = (
            engine if getattr(engine, "ecn_codepoint", None) is not None else None  # type: ignore
        )
        # flushing (module docstring): the engine may hold output nobody took yet
        self._flush_pending = False
        self._sending = False  # a task waits for the socket: others queue behind it
        self._unsent: list[tuple[list[tuple[bytes, Address]], int]] = []  # batches, ECN
        self._wait_scope: trio.CancelScope | None = None
        self._wait_deadline = math.inf
        self._fallback_at = math.inf  # when a deferred flush falls back to the driver
        self._woke = False  # the batch being handled woke a task (it may answer)
        self._touched = False  # queued for the endpoint's after-batch pass
        self._handled_at = -math.inf  # when the driver last handled the engine's timer
        # reads since the last flush; the driver is poked for them once they could matter
        self._unflushed_consumed = 0
        self._consume_poke_threshold = max(
            1, min(configuration.max_stream_data, configuration.max_data) // 4
        )
        self._cids: set[bytes] = set()

        self._handshake_done = trio.Event()
        self._handshake_complete = False
        self._alpn_protocol: str | None = None
        self._peer_certificate: x509.Certificate | None = None
        self._session_resumed = False
        self._session_ticket: bytes | None = None
        self._new_token: bytes | None = None

        self._closed_info: _Closed | None = None
        self._failure: BaseException | None = None
        self._local_closed = False
        self._driver_done = trio.Event()
        self._driver_started = False
        # called (once) when the connection ends, however it ends: the HTTP/3 layer wakes
        # its own waiters from here instead of watching with a task of its own
        self._on_terminate: Callable[[], None] | None = None

        self._streams: dict[int, _StreamCore] = {}
        # next stream ID the peer has not opened yet, per type (index: stream_id & 3)
        self._next_peer_stream = [0, 1, 2, 3]
        self._peer_gaps: set[int] = set()
        self._accept_bidi: deque[QuicStream] = deque()
        self._accept_uni: deque[QuicReceiveStream] = deque()
        self._accept_lot = trio.lowlevel.ParkingLot()
        self._blocked_senders: set[_StreamCore] = set()
        self._datagrams: deque[bytes] = deque()
        self._datagram_lot = trio.lowlevel.ParkingLot()

        self._datagrams_received = 0
        self._datagrams_dropped = 0
        self._datagram_frames_received = 0
        self._datagram_frames_dropped = 0
        self._streams_opened = 0
        self._streams_accepted = 0

    # -- public properties --------------------------------------------------------------------

    @property
    def is_client(self) -> bool:
        """True for a connection we opened."""
        return self._is_client

    @property
    def configuration(self) -> Configuration:
        """The configuration this connection was made with."""
        return self._configuration

    @property
    def remote_address(self) -> Address:
        """The peer's current address (changes when the peer migrates)."""
        return self._remote_address

    @property
    def local_address(self) -> Address:
        """Our ``(host, port)`` on this connection's current path: the endpoint's (changes
        when we migrate: :meth:`migrate`), or, for a server connection whose client moved
        to the server's preferred address (RFC 9000 §9.6) and whose new path was validated,
        that preferred-address socket's."""
        socket = self._path_socket
        if socket:
            return self._preferred_local_addresses[socket - 1]
        return self._endpoint.local_address

    @property
    def alpn_protocol(self) -> str | None:
        """The negotiated ALPN protocol (None before the handshake completes)."""
        return self._alpn_protocol

    @property
    def peer_certificate(self) -> x509.Certificate | None:
        """The peer's leaf certificate, if it sent one and the engine exposes it."""
        return self._peer_certificate

    @property
    def session_resumed(self) -> bool:
        """True when the handshake resumed a session from a ticket."""
        return self._session_resumed

    @property
    def session_ticket(self) -> bytes | None:
        """The latest session ticket from the server (client), for resumption."""
        return self._session_ticket

    @property
    def new_token(self) -> bytes | None:
        """The latest address-validation token from the server (client; NEW_TOKEN).

        Give it as ``Configuration(token=...)`` to the next connection to the same server
        so that it skips address validation (no Retry round trip).
        """
        return self._new_token

    @property
    def closed(self) -> bool:
        """True once the connection has ended or we closed it."""
        return self._local_closed or self._closed_info is not None

    # -- streams ------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._local_closed:
            raise trio.ClosedResourceError("connection was closed")
        error = self._stream_error()
        if error is not None:
            try:
                raise error
            finally:
                del error  # the traceback holds this frame: no cycle through it

    def _open(self, *, unidirectional: bool) -> int:
        self._check_open()
        engine = self._engine
        sid = engine.get_next_available_stream_id(is_unidirectional=unidirectional)
        engine.send_stream_data(sid, b"")  # claims the ID; sends nothing
        self._streams_opened += 1
        return sid

    def open_stream(self) -> QuicStream:
        """Open a bidirectional stream (the peer sees it with the first data or FIN).

        Use it as ``async with conn.open_stream() as stream``.

        Raises:
            trio.ClosedResourceError: The connection was closed.
            ConnectionClosedError: The connection ended.
        """
        sid = self._open(unidirectional=False)
        stream = QuicStream(self, sid, can_send=True, can_receive=True)
        self._streams[sid] = stream
        return stream

    def open_unidirectional_stream(self) -> QuicSendStream:
        """Open a unidirectional stream we send on."""
        sid = self._open(unidirectional=True)
        stream = QuicSendStream(self, sid, can_send=True, can_receive=False)
        self._streams[sid] = stream
        return stream

    async def accept_stream(self) -> QuicStream:
        """Wait for the peer's next bidirectional stream.

        Raises:
            trio.ClosedResourceError: The connection was closed.
            ConnectionClosedError: The connection ended.
        """
        return await self._accept(self._accept_bidi)

    async def accept_unidirectional_stream(self) -> QuicReceiveStream:
        """Wait for the peer's next unidirectional stream."""
        return await self._accept(self._accept_uni)

    async def _accept(self, queue: deque[_S]) -> _S:
        await trio.lowlevel.checkpoint_if_cancelled()
        waited = False
        while not queue:
            self._check_open()
            self._settle()
            await self._accept_lot.park()
            waited = True
        if not waited:
            await trio.lowlevel.cancel_shielded_checkpoint()
        self._streams_accepted += 1
        return queue.popleft()

    # -- datagrams ----------------------------------------------------------------------------

    async def send_datagram(self, data: bytes | bytearray | memoryview) -> None:
        """Send an unreliable DATAGRAM frame (RFC 9221); never waits for the network.

        The connection queues a bounded number of frames; when the network is slower than
        the sender, the oldest queued ones are dropped, as UDP would.

        Raises:
            trio.ClosedResourceError: The connection was closed.
            ConnectionClosedError: The connection ended.
            trio_zttp.quic.QuicError: The peer does not accept DATAGRAM frames.
            ValueError: ``data`` is larger than the peer accepts.
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        self._check_open()
        self._engine.send_datagram_frame(bytes(data))
        self._flush_pending = True
        self._settle()
        await trio.lowlevel.cancel_shielded_checkpoint()

    async def receive_datagram(self) -> bytes:
        """Wait for the next DATAGRAM frame's payload.

        Frames are queued up to :data:`DATAGRAM_QUEUE_SIZE`; later ones are dropped (and
        counted) until the queue drains, so a slow reader never stalls the connection.

        Raises:
            trio.ClosedResourceError: The connection was closed.
            ConnectionClosedError: The connection ended and the queue is empty.
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        waited = False
        while not self._datagrams:
            self._check_open()
            self._settle()
            await self._datagram_lot.park()
            waited = True
        if not waited:
            await trio.lowlevel.cancel_shielded_checkpoint()
        return self._datagrams.popleft()

    # -- misc commands ------------------------------------------------------------------------

    def statistics(self) -> QuicConnectionStatistics:
        """Counters for this connection."""
        return QuicConnectionStatistics(
            datagrams_received=self._datagrams_received,
            datagrams_dropped=self._datagrams_dropped,
            datagram_frames_received=self._datagram_frames_received,
            datagram_frames_dropped=self._datagram_frames_dropped,
            streams_opened=self._streams_opened,
            streams_accepted=self._streams_accepted,
            transport=self._transport_statistics(),
        )

    def _transport_statistics(self) -> Any:
        statistics = self._engine.statistics()
        if self._preferred_local_addresses:  # the engine's peer address may carry a tag
            peer: Any = getattr(statistics, "peer_address", None)
            if isinstance(peer, tuple) and len(peer) > 2 and attrs.has(type(statistics)):
                statistics = attrs.evolve(statistics, peer_address=(peer[0], peer[1]))
        return statistics

    async def migrate(self, local_address: tuple[str, int] | None = None) -> Address:
        """Client: move to a new local address (active connection migration, RFC 9000 §9).

        Rebinds this connection's endpoint (:meth:`QuicEndpoint.rebind`), which must carry
        no other open connection; the endpoints of :func:`open_quic_connection` and
        :func:`open_h3_connection` carry one.

        Args:
            local_address: ``(host, port)`` for the new socket (default: the current host,
                a new port).

        Returns:
            The new local address.

        Raises:
            RuntimeError: A server connection, or an endpoint shared with other connections.
            QuicError: The connection cannot migrate (see :meth:`QuicEndpoint.rebind`).
            ValueError: ``local_address`` is of another address family.
            trio.ClosedResourceError: We closed the connection.
            ConnectionClosedError: The connection ended.
        """
        self._check_open()
        if not self._is_client:
            raise RuntimeError("only a client migrates (RFC 9000 §9)")
        if any(c is not self and not c.closed for c in self._endpoint._connections):
            raise RuntimeError("this connection's endpoint carries other connections: "
                               "QuicEndpoint.rebind() moves them all")
        return await self._endpoint.rebind(local_address)

    def request_key_update(self) -> None:
        """Start a 1-RTT key update (RFC 9001 §6)."""
        self._check_open()
        self._engine.request_key_update()
        self._poke()

    def change_connection_id(self) -> None:
        """Switch to a fresh connection ID of the peer's (RFC 9000 §9.5)."""
        self._check_open()
        self._engine.change_connection_id()
        self._poke()

    # -- closing ------------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_value is None:
            await self.aclose()
        else:
            await self._close(self.internal_error_code, type(exc_value).__name__, drain=False)

    async def aclose(self, *, error_code: int = _NO_ERROR, reason: str = "") -> None:
        """Close the connection: CONNECTION_CLOSE, then wait out the closing period.

        Idempotent.  Runs shielded from cancellation, bounded by the engine's closing
        timer (3·PTO, plus 50 ms of slack).

        Args:
            error_code: The application error code to send (0: NO_ERROR).
            reason: The reason phrase to send.
        """
        await self._close(error_code, reason, drain=True)

    async def _close(self, error_code: int, reason: str, *, drain: bool) -> None:
        if self._local_closed:
            await trio.lowlevel.checkpoint()
            return
        self._local_closed = True
        with trio.CancelScope(shield=True):
            if drain and self._closed_info is None:
                await self._flush()  # what the streams queued goes out before the close
            if self._closed_info is None:
                self._engine.close(error_code=error_code, reason_phrase=reason)
                # streams stop now, whenever the engine reports ConnectionTerminated
                self._terminate(_Closed(error_code, reason, False, True, None))
                await self._flush()
            if drain and self._driver_started:
                deadline = self._engine.get_timer()
                idle = self._configuration.idle_timeout
                if deadline is not None:
                    # the driver ends at that deadline and wakes us; the bound (for an engine
                    # that never ends its closing period) leaves it some slack, so that a late
                    # wake-up on a busy loop does not fire both (two cancellations)
                    bound = min(deadline, trio.current_time() + idle) + _CLOSE_WAIT_SLACK
                    with trio.move_on_at(bound):
                        await self._driver_done.wait()
        self._accept_lot.unpark_all()
        self._datagram_lot.unpark_all()
        await trio.lowlevel.checkpoint()

    def _begin_close(self, error_code: int, reason: str) -> None:
        """Endpoint shutdown: queue CONNECTION_CLOSE (the caller flushes)."""
        if not self._local_closed:
            self._local_closed = True
            if self._closed_info is None:
                self._engine.close(error_code=error_code, reason_phrase=reason)
                self._terminate(_Closed(error_code, reason, False, True, None))
        self._accept_lot.unpark_all()
        self._datagram_lot.unpark_all()

    # -- used by streams ----------------------------------------------------------------------

    def _stream_error(self) -> ConnectionClosedError | None:
        info = self._closed_info
        if info is None:
            return None
        return info.exception(self._failure)

    def _poke(self) -> None:
        """The engine has output: make sure it leaves soon (the driver flushes it, unless
        the calling task settles first)."""
        self._flush_pending = True
        if self._parked is not None and self._fallback_at == math.inf:
            # (a deferred flush takes this output along: the tasks its batch woke flush it,
            # or the driver at the deferral's deadline)
            self._wake()

    def _settle(self) -> None:
        """A user task is about to return or park: send what it (or a batch that woke it)
        left in the engine, from this task, unless the driver is busy with the socket."""
        if self._flush_pending and not self._sending and self._driver_started:
            self._flush_now()

    def _flush_now(self) -> None:
        """``datagrams_to_send`` and a non-blocking send; what the socket cannot take now
        (or that would overtake an earlier batch) is queued for the driver."""
        self._flush_pending = False
        self._unflushed_consumed = 0
        engine = self._engine
        try:
            datagrams = engine.datagrams_to_send(self._current_time())
            ecn = self._ecn_codepoint()
            self._handle_events()
        except Exception as exc:  # an engine bug: the driver ends the connection
            self._fail(exc)
            return
        if datagrams:
            if self._unsent or self._sending:
                self._unsent.append((datagrams, ecn))
            else:
                sent = self._endpoint._send_now(datagrams, ecn)
                if sent < len(datagrams):
                    self._unsent.append((datagrams[sent:], ecn))
            if self._unsent and self._parked is not None:
                self._wake()  # the driver waits for the socket (a busy driver checks anyway)
        timer = engine.get_timer()
        if self._fallback_at != math.inf:  # the deferred flush is done: its deadline goes
            self._fallback_at = math.inf
            self._move_wait_deadline(math.inf if timer is None else timer)
        elif timer is not None and (
            timer < self._wait_deadline
            # closing: the engine's last timer (its closing period) comes later than the
            # deadline of the timers it replaced; waking at theirs would be an empty wake-up
            or (timer > self._wait_deadline and self._closed_info is not None)
        ):
            self._move_wait_deadline(timer)

    def _move_wait_deadline(self, deadline: float) -> None:
        self._wait_deadline = deadline
        scope = self._wait_scope
        if scope is not None:
            scope.deadline = deadline

    def _wake(self) -> None:
        """Wake the driver if it waits for work (it then runs a whole step)."""
        task = self._parked
        if task is not None:
            self._parked = None
            trio.lowlevel.reschedule(task)

    async def _wait_for_work(self) -> None:
        """The driver: wait until a datagram is queued or :meth:`_wake` is called (a
        checkpoint either way: an expired deadline raises Cancelled here)."""
        if self._incoming:
            await trio.lowlevel.checkpoint()
            return
        self._parked = trio.lowlevel.current_task()

        def abort(_: object) -> trio.lowlevel.Abort:
            self._parked = None
            return trio.lowlevel.Abort.SUCCEEDED

        await trio.lowlevel.wait_task_rescheduled(abort)

    def _fail(self, exc: Exception) -> None:
        """The engine raised (a bug): end the connection as the driver would."""
        if self._failure is None:
            self._failure = exc
        if self._closed_info is None:
            self._terminate(
                _Closed(_INTERNAL_ERROR, f"internal error: {type(exc).__name__}", False,
                        False, None)
            )
        if self._parked is not None:
            self._wake()

    def _consume(self, sid: int, n: int) -> bool:
        """Report ``n`` bytes read; True once enough was read since the last flush for the
        new credit to matter (the reader then settles; in the driver, it flushes)."""
        if self._closed_info is None:
            self._engine.consume_stream_data(sid, n)
            # A flush for every read costs a datagrams_to_send per read; credit only needs
            # to move once a real part of the window was read.
            self._unflushed_consumed += n
            if self._unflushed_consumed >= self._consume_poke_threshold:
                self._flush_pending = True
                return True
        return False

    def _send_capacity(self, sid: int) -> int:
        return self._engine.stream_send_capacity(sid)

    def _send_stream_data(self, sid: int, data: bytes, end_stream: bool = False) -> None:
        """Queue stream data; the caller settles (async) or pokes (sync) afterwards."""
        self._engine.send_stream_data(sid, data, end_stream)
        self._flush_pending = True

    def _reset_stream(self, sid: int, error_code: int) -> None:
        try:
            self._engine.reset_stream(sid, error_code)
        except QuicError:
            return  # the engine already finished the stream: nothing left to abandon
        self._poke()

    def _stop_sending(self, sid: int, error_code: int) -> None:
        try:
            self._engine.stop_sending(sid, error_code)
        except QuicError:
            return  # the engine already finished the stream's receiving part
        self._poke()

    async def _wait_send_capacity(self, stream: _StreamCore) -> None:
        self._blocked_senders.add(stream)
        self._settle()
        try:
            await stream._send_lot.park()
        finally:
            self._blocked_senders.discard(stream)

    def _forget_stream(self, sid: int) -> None:
        self._streams.pop(sid, None)

    # -- used by the endpoint -----------------------------------------------------------------

    def _deliver(self, data: bytes, addr: Address, ecn: int = 0) -> bool:
        """Queue a datagram for the driver; False (and counted) when the queue is full.

        A queue half full marks the endpoint crowded: it then lets the drivers run before it
        routes another batch, so only a driver that really falls behind loses datagrams.
        """
        queue = self._incoming
        if len(queue) >= INCOMING_QUEUE_SIZE:
            self._datagrams_dropped += 1
            return False
        if self._incoming_closed:
            return False
        queue.append((data, addr, ecn))
        if len(queue) == INCOMING_QUEUE_SIZE // 2:
            self._endpoint._crowded.append(self)
        if self._parked is not None and not self._touched:
            self._touched = True
            self._endpoint._touched.append(self)
        return True

    def _add_cid(self, cid: bytes) -> None:
        self._cids.add(cid)
        self._endpoint._add_route(cid, self)

    # -- the driver ---------------------------------------------------------------------------

    def _send_first(self, datagrams: list[tuple[bytes, Address]]) -> None:
        """Server: send the answer to the first Initial (the engine already returned it)
        without waiting; what the socket cannot take now is left to the driver."""
        ecn = self._ecn_codepoint()
        sent = self._endpoint._send_now(datagrams, ecn)
        if sent < len(datagrams):
            self._unsent.append((datagrams[sent:], ecn))

    async def _drive(self) -> None:
        """The connection's task: runs until the engine has finished closing."""
        self._driver_started = True
        try:
            await self._run()
        except Exception as exc:  # an engine bug must not take the endpoint down
            self._fail(exc)
        finally:
            self._finish()

    async def _flush(self) -> None:
        """Flush now (the driver, closing, shutdown): waits for the socket if it must."""
        self._flush_now()
        if self._unsent:
            await self._send_unsent()

    def _ecn_codepoint(self) -> int:
        """The codepoint for the batch the engine just returned (0: engine without ECN)."""
        engine = self._ecn_engine
        return 0 if engine is None else engine.ecn_codepoint

    def _wake_senders(self) -> None:
        engine = self._engine
        for stream in list(self._blocked_senders):
            if engine.stream_send_capacity(stream._sid) > 0:
                self._blocked_senders.discard(stream)
                stream._on_capacity()

    def _finish(self) -> None:
        for cid in self._cids:
            self._endpoint._remove_route(cid, self)
        self._cids.clear()
        self._incoming_closed = True
        self._incoming.clear()
        if self._closed_info is None:
            self._terminate(_Closed(_INTERNAL_ERROR, "endpoint closed", False, False, None))
        self._streams.clear()  # no more events for them; they hold us (no cycle left)
        self._driver_done.set()
        self._endpoint._on_connection_finished(self)

    def _terminate(self, info: _Closed) -> None:
        self._closed_info = info
        self._handshake_done.set()
        for stream in list(self._streams.values()):
            stream._on_connection_closed()
        self._blocked_senders.clear()
        self._accept_lot.unpark_all()
        self._datagram_lot.unpark_all()
        hook = self._on_terminate
        if hook is not None:
            self._on_terminate = None
            hook()

    # -- events -------------------------------------------------------------------------------

    _handle_events = handle_events
    _stream_for = stream_for

    # -- the driver's step (``_driver``) ------------------------------------------------------

    _run = run
    _run_inline = run_inline
    _deadline_after = deadline_after
    _step = step
    _step_sync = step_sync
    _send_unsent = send_unsent

    async def _wait_handshake(self) -> None:
        """Client: wait for the handshake; raise ConnectionClosedError if it failed."""
        await self._handshake_done.wait()
        error = self._stream_error()
        if error is not None and not self._handshake_complete:
            try:
                raise error
            finally:
                del error  # the traceback holds this frame: no cycle through it

    def _drain_deadline(self) -> float:
        timer = self._engine.get_timer()
        if timer is None or self._driver_done.is_set():
            return -math.inf
        return min(timer, trio.current_time() + self._configuration.idle_timeout)

    def __repr__(self) -> str:
        role = "client" if self._is_client else "server"
        state = "closed" if self.closed else "open"
        return f"<QuicConnection {role} {state} peer={self._remote_address!r}>"

