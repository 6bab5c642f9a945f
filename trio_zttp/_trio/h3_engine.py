"""HTTP/3 inside the QUIC driver: an engine wrapper that feeds :class:`trio_zttp.h3.Connection`.

The trio QUIC layer drives one sans-IO engine per connection (``_engine.Engine``).  For
HTTP/3 the engine is wrapped in :class:`H3Engine`, built by the ``connection_factory`` that
:func:`~trio_zttp.serve_h3` and :func:`~trio_zttp.open_h3_connection` hand to the endpoint.
The wrapper passes every call through, and in :meth:`H3Engine.next_event` it keeps the QUIC
events HTTP/3 owns (stream data, resets, STOP_SENDING, DATAGRAM frames): it feeds them to
the sans-IO ``h3.Connection`` (created when the handshake completes) and dispatches the
HTTP/3 events to per-request :class:`StreamState` records, waking the tasks that wait on
them.  Connection-level events (handshake, connection IDs, paths, termination) continue to
the :class:`~trio_zttp.QuicConnection`, which still owns routing, timers and closing.  So
HTTP/3 adds no task and no channel hop: its parsing runs in the driver's own wake-up, once
per batch of datagrams (DESIGN.md, "feed h3.Connection").

Flow control reaches the application as in the QUIC layer: a request stream's bytes are
reported consumed (``consume_stream_data``) only as the application reads the body, minus
what is still buffered; frame overhead (HEADERS, DATA frame headers) is credited at once,
but only after the request's header section was decoded, so a stream whose QPACK decoding
is blocked cannot make us buffer more than one stream window.  Bytes of the peer's
unidirectional streams (control, QPACK) are credited as soon as ``h3.Connection`` took them.
"""

from __future__ import annotations

import weakref
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, final

import trio

from .. import h3
from ..h3._events import DatagramReceived as _DatagramReceived
from ..h3._events import DataReceived as _DataReceived
from ..h3._events import HeadersReceived as _HeadersReceived
from ..h3._stream import StateError
from ..quic._config import Configuration
from ..quic._events import (
    ConnectionTerminated,
    DatagramFrameReceived,
    Event,
    HandshakeCompleted,
    StopSendingReceived,
    StreamDataReceived,
    StreamReset,
)
from ._conn_types import unpark
from ._engine import Address, ConnectionFactory, Engine
from .errors import ConnectionClosedError
from .h3_stream import (
    DATAGRAM_QUEUE_SIZE,
    H3_INTERNAL_ERROR,
    NO_LOT,
    StreamState,
)

if TYPE_CHECKING:
    from .connection import QuicConnection

__all__ = ["H3Engine", "default_settings", "h3_connection_factory"]

_HEADERLESS_CREDIT: Final = 64 * 1024
"""Bytes of a request stream credited before its header section is decoded."""
#: The QUIC events HTTP/3 takes (all ``@final`` classes: their type is compared).
_OWNED_EVENTS: Final = frozenset(
    {StreamDataReceived, StreamReset, StopSendingReceived, DatagramFrameReceived}
)



def default_settings(configuration: Configuration) -> h3.Settings:
    """What we announce: ``h3.DEFAULT_SETTINGS``, HTTP datagrams when the QUIC configuration
    takes DATAGRAM frames, and extended CONNECT on servers."""
    key = (not configuration.is_client, bool(configuration.max_datagram_frame_size))
    settings = _default_settings.get(key)
    if settings is None:  # one of four, made once (Settings are immutable)
        settings = _default_settings[key] = h3.Settings(
            qpack_max_table_capacity=h3.DEFAULT_SETTINGS.qpack_max_table_capacity,
            qpack_blocked_streams=h3.DEFAULT_SETTINGS.qpack_blocked_streams,
            max_field_section_size=h3.DEFAULT_SETTINGS.max_field_section_size,
            enable_connect_protocol=key[0],
            h3_datagram=key[1],
        )
    return settings


_default_settings: dict[tuple[bool, bool], h3.Settings] = {}


def _no_connection() -> QuicConnection | None:
    return None


def h3_connection_factory(
    inner: ConnectionFactory, settings: h3.Settings | None = None
) -> ConnectionFactory:
    """A ``connection_factory`` whose engines speak HTTP/3 over those ``inner`` builds."""

    def factory(
        configuration: Configuration,
        *,
        original_destination_connection_id: bytes | None = None,
        retry_source_connection_id: bytes | None = None,
    ) -> Engine:
        engine = inner(
            configuration,
            original_destination_connection_id=original_destination_connection_id,
            retry_source_connection_id=retry_source_connection_id,
        )
        return H3Engine(
            engine,
            is_client=configuration.is_client,
            settings=settings if settings is not None else default_settings(configuration),
            random_bytes=configuration.random_bytes,
            window=min(configuration.max_stream_data, configuration.max_data),
        )

    return factory


@final
class H3Engine:
    """An engine that speaks HTTP/3: the QUIC engine's calls, plus the ``h3.Connection``.

    Made by :func:`h3_connection_factory`; the trio layer drives it like any engine.
    """

    def __init__(
        self,
        inner: Engine,
        *,
        is_client: bool,
        settings: h3.Settings,
        random_bytes: Callable[[int], bytes],
        window: int,
    ) -> None:
        self._inner = inner
        # the calls passed through unchanged are the inner engine's own bound methods (the
        # trio layer and h3.Connection call them per packet and per frame: no extra frame).
        # receive_datagram: the trio layer passes ``ecn`` only when ecn_codepoint is not
        # None, that is when the inner engine takes it (see _engine.EcnEngine).
        self.connect = inner.connect
        self.receive_datagram = inner.receive_datagram
        self.get_timer = inner.get_timer
        self.handle_timer = inner.handle_timer
        self.get_next_available_stream_id = inner.get_next_available_stream_id
        self.send_stream_data = inner.send_stream_data
        self.reset_stream = inner.reset_stream
        self.stop_sending = inner.stop_sending
        self.send_datagram_frame = inner.send_datagram_frame
        self.statistics = inner.statistics
        self.request_key_update = inner.request_key_update
        self.change_connection_id = inner.change_connection_id
        self.migrate = inner.migrate
        self.stream_send_capacity = self.send_capacity = inner.stream_send_capacity
        self.consume_stream_data = inner.consume_stream_data
        self.is_client = is_client
        self.local_settings = settings
        self._random_bytes = random_bytes
        self.h3: h3.Connection | None = None
        self._early: list[Event] = []
        self._conn_ref: Callable[[], QuicConnection | None] = _no_connection
        self._dirty = False
        self._engine_closed: tuple[int, str] | None = None
        self._terminated = False
        self.streams: dict[int, StreamState] = {}
        # server: the next request stream ID the client has not opened, and the lower ones
        # opened implicitly (RFC 9000 §2.1) whose data has not arrived yet
        self._next_peer_request = 0
        self._peer_request_gaps: set[int] = set()
        self.accept_queue: deque[StreamState] = deque()
        #: Server: called with each new request instead of queueing it (set by serve_h3,
        #: which starts the handler task right from the driver: no hop through a task).
        self.on_request: Callable[[StreamState], None] | None = None
        self.accept_lot = trio.lowlevel.ParkingLot()
        self._settings_event = trio.Event()
        self._blocked: set[StreamState] = set()
        self._unflushed_credit = 0
        self._credit_poke = max(1, window // 4)
        self._credit_due = False  # enough credit moved for a reader to settle
        self._datagrams_ready = False  # HTTP datagrams negotiated (cached once true)
        self.going_away = False
        self.goaway_received: int | None = None
        self.datagrams_dropped = 0

    # -- the QuicConnection this engine drives ----------------------------------------------

    def attach(self, connection: QuicConnection) -> None:
        """Called once the trio-level connection exists: commands may now wake its driver."""
        # weakly: the connection owns this engine (a strong back reference is a cycle that
        # only the cyclic GC frees); whoever can reach the engine holds the connection too
        self._conn_ref = weakref.ref(connection)
        if self._dirty:
            self._dirty = False
            connection._poke()

    @property
    def _connection(self) -> QuicConnection | None:
        return self._conn_ref()

    @property
    def connection(self) -> QuicConnection:
        connection = self._conn_ref()
        if connection is None:
            raise RuntimeError("the HTTP/3 engine is not attached to a connection")
        return connection

    def poke(self) -> None:
        """The engine has output: the driver sends it (unless a task settles first)."""
        connection = self._conn_ref()
        if connection is None:
            self._dirty = True
        else:
            connection._poke()

    def settle(self) -> None:
        """The calling task is about to return or park: it sends what is queued itself."""
        connection = self._conn_ref()
        if connection is not None:
            connection._settle()

    def settle_credit(self) -> None:
        """A reader is about to return: it sends the credit it freed, once that matters
        (not an ACK the driver left to it: its next command or park takes that along)."""
        if self._credit_due:
            self._credit_due = False
            self.settle()

    def connection_error(self) -> BaseException | None:
        """Why the connection cannot be used, or None while it can."""
        connection = self._conn_ref()
        if connection is None:
            if self._conn_ref is _no_connection:
                return None  # not attached yet: commands wait for attach()
            return trio.ClosedResourceError("the connection was closed")  # and collected
        if connection._closed_info is not None or connection._local_closed:
            error = connection._stream_error()
            if error is not None:
                return error
            return trio.ClosedResourceError("the connection was closed")
        return None

    def command(
        self, method: Callable[..., object], *args: Any, quiet: bool = False,
        settle: bool = False,
    ) -> None:
        """Run one ``h3.Connection`` command (``method(h3_connection, *args)``) and wake the
        driver to send its bytes; with ``settle``, the calling task promises to call
        :meth:`settle` before it returns or parks, and the driver is not woken.

        Raises:
            ConnectionClosedError, trio.ClosedResourceError: the connection is gone (not
                with ``quiet``, which drops the command instead).
        """
        conn = self.h3
        error = self.connection_error()
        if error is None and (conn is None or conn.is_closed or self._engine_closed):
            error = ConnectionClosedError(
                error_code=self._engine_closed[0] if self._engine_closed else H3_INTERNAL_ERROR,
                reason=self._engine_closed[1] if self._engine_closed else "HTTP/3 closed",
                by_peer=False,
                application=True,
            )
        if error is not None:
            if quiet:
                return
            try:
                raise error
            finally:
                del error  # the traceback holds this frame: no cycle through it
        assert conn is not None
        try:
            method(conn, *args)
        except StateError as exc:
            if quiet:
                return
            raise trio.BrokenResourceError(str(exc)) from None
        connection = self._conn_ref()
        if settle and connection is not None:
            connection._flush_pending = True
        else:
            self.poke()

    def send_datagram_settled(self, stream_id: int, data: bytes) -> None:
        """``command(h3.Connection.send_datagram, stream_id, data, settle=True)`` then
        :meth:`settle`, for a caller that has just found :meth:`connection_error` None
        (the HTTP datagram's direct path: one check and one call fewer).

        Raises:
            ConnectionClosedError, trio.BrokenResourceError: as :meth:`command`.
        """
        conn = self.h3
        if conn is None or conn.is_closed or self._engine_closed:
            self.command(h3.Connection.send_datagram, stream_id, data, settle=True)  # raises
            self.settle()
            return
        try:
            conn.send_datagram(stream_id, data)
        except StateError as exc:
            raise trio.BrokenResourceError(str(exc)) from None
        connection = self._conn_ref()
        if connection is not None:
            connection._flush_pending = True
            connection._settle()
        else:
            self.poke()

    # -- settings, GOAWAY ---------------------------------------------------------------------

    @property
    def peer_settings(self) -> h3.Settings | None:
        conn = self.h3
        return None if conn is None else conn.peer_settings

    @property
    def datagrams_enabled(self) -> bool:
        if self._datagrams_ready:
            return True
        conn = self.h3
        # both SETTINGS are final once the peer's arrived: the answer never changes again
        self._datagrams_ready = conn is not None and conn.datagrams_enabled
        return self._datagrams_ready

    async def received_settings(self) -> h3.Settings:
        """Wait for the peer's SETTINGS frame."""
        if not self._settings_event.is_set():
            self.settle()
        await self._settings_event.wait()
        settings = self.peer_settings
        if settings is None:
            error = self.connection_error()
            if error is None:
                error = trio.BrokenResourceError("the connection ended before the peer's SETTINGS")
            try:
                raise error
            finally:
                del error  # the traceback holds this frame: no cycle through it
        return settings

    def has_pending_requests(self) -> bool:
        """Server: a request stream opened whose header section has not arrived yet."""
        return any(
            state.headers is None and not state.closed and state.reset_code is None
            for state in self.streams.values()
        )

    def send_goaway(self) -> None:
        """Server: GOAWAY naming the first request we will not process; accept ends."""
        if self.going_away:
            return
        self.going_away = True
        self.command(h3.Connection.send_goaway, quiet=True)
        self.accept_lot.unpark_all()

    # -- flow control ------------------------------------------------------------------------

    async def wait_capacity(self, state: StreamState) -> None:
        self._blocked.add(state)
        self.settle()
        try:
            await state.parking_send_lot().park()
        finally:
            self._blocked.discard(state)

    def credit(self, state: StreamState) -> None:
        """Report the stream's consumed bytes: all but what the application has not read."""
        sid = state.stream_id
        if sid is None:
            return
        target = state.raw_in - state.buffer.size
        if state.headers is None and not state.closed and state.reset_code is None:
            target = min(target, _HEADERLESS_CREDIT)
        delta = target - state.credited
        if delta > 0:
            state.credited = target
            self._inner.consume_stream_data(sid, delta)
            self._unflushed_credit += delta
            if self._unflushed_credit >= self._credit_poke:
                # the reader settles (or the driver flushes: credit moved in its batch)
                self._unflushed_credit = 0
                self._credit_due = True
                connection = self._conn_ref()
                if connection is not None:
                    connection._flush_pending = True

    def register(self, state: StreamState, stream_id: int) -> None:
        state.stream_id = stream_id
        self.streams[stream_id] = state

    def forget(self, state: StreamState) -> None:
        sid = state.stream_id
        if sid is None:
            return
        self._blocked.discard(state)
        if self.streams.get(sid) is state:
            del self.streams[sid]
        # whatever arrived and was not read is consumed now
        state.buffer.clear()
        delta = state.raw_in - state.credited
        if delta > 0 and self.connection_error() is None:
            state.credited = state.raw_in
            self._inner.consume_stream_data(sid, delta)

    # -- the Engine protocol (pass-through) ----------------------------------------------------

    @property
    def local_connection_id(self) -> bytes:
        return self._inner.local_connection_id

    @property
    def peer_certificate(self) -> Any:
        return getattr(self._inner, "peer_certificate", None)

    @property
    def remote_max_datagram_frame_size(self) -> int | None:
        value: int | None = getattr(self._inner, "remote_max_datagram_frame_size", None)
        return value

    @property
    def ecn_codepoint(self) -> int | None:
        value: int | None = getattr(self._inner, "ecn_codepoint", None)
        return value

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Address]]:
        self._unflushed_credit = 0
        self._credit_due = False
        self._dirty = False
        return self._inner.datagrams_to_send(now)

    def close(self, error_code: int = 0, reason_phrase: str = "") -> None:
        if self._engine_closed is None:
            self._engine_closed = (error_code, reason_phrase)
        self._inner.close(error_code, reason_phrase)
        self.wake_everything()

    # -- events --------------------------------------------------------------------------------

    def next_event(self) -> Event | None:
        inner_next = self._inner.next_event
        while (event := inner_next()) is not None:
            if type(event) in _OWNED_EVENTS:
                if self.h3 is None:
                    self._early.append(event)
                else:
                    self._feed(event)
                continue
            if type(event) is HandshakeCompleted:
                self._start_h3()
            elif type(event) is ConnectionTerminated:
                self._on_terminated(event)
            return event
        if self._blocked or self._dirty:
            self._after_batch()
        return None

    def _start_h3(self) -> None:
        if self.h3 is not None:
            return
        self.h3 = h3.Connection(
            weakref.proxy(self),  # it lives only in self.h3: no cycle through it
            is_client=self.is_client,
            settings=self.local_settings,
            random_bytes=self._random_bytes,
        )
        self._dirty = True
        early, self._early = self._early, []
        for event in early:
            self._feed(event)

    def _on_terminated(self, event: ConnectionTerminated) -> None:
        self._terminated = True
        conn = self.h3
        if conn is not None:
            conn.receive_quic_event(event)
            self._dispatch()
        self.wake_everything()

    def wake_everything(self) -> None:
        """The connection ended: every waiter rechecks (and raises)."""
        self._settings_event.set()
        self.accept_lot.unpark_all()
        for state in list(self.streams.values()):
            state.wake_all()
        for state in list(self._blocked):
            state.wake_all()

    def _after_batch(self) -> None:
        blocked = self._blocked
        if blocked:
            capacity = self._inner.stream_send_capacity
            for state in list(blocked):
                sid = state.stream_id
                if sid is None or capacity(sid) > 0:
                    blocked.discard(state)
                    if unpark(state.send_lot) and (connection := self._conn_ref()) is not None:
                        connection._woke = True
        if self._dirty and (connection := self._conn_ref()) is not None:
            self._dirty = False
            connection._poke()

    def _feed(self, event: Event) -> None:
        conn = self.h3
        assert conn is not None
        if type(event) is StreamDataReceived:
            sid = event.stream_id
            n = len(event.data)
            if sid & 2:
                conn.receive_quic_event(event)
                if n:
                    self._inner.consume_stream_data(sid, n)
                self._dispatch()
                return
            state = self.streams.get(sid)
            if state is None and not self.is_client and self._is_new_request(sid):
                state = StreamState(self, sid)
                self.streams[sid] = state
            if state is None:
                conn.receive_quic_event(event)
                if n:
                    self._inner.consume_stream_data(sid, n)
                self._dispatch()
                return
            state.raw_in += n
            conn.receive_quic_event(event)
            self._dispatch()
            if state.headers is None and not self.is_client:
                goaway = conn.goaway_sent
                if goaway is not None and sid >= goaway:
                    # rejected by our GOAWAY: h3 reset it without an event
                    self._drop(state, int(h3.ErrorCode.H3_REQUEST_REJECTED))
                    return
            self.credit(state)
            return
        if type(event) is DatagramFrameReceived:
            taken = conn.receive_datagram_frame(event)
            if taken is None:
                self._dispatch()
            elif self._deliver_datagram(*taken) and (connection := self._conn_ref()) is not None:
                connection._woke = True
            return
        conn.receive_quic_event(event)
        self._dispatch()

    def _is_new_request(self, sid: int) -> bool:
        """Server: the first data of a request stream (not one already finished with)?"""
        expected = self._next_peer_request
        if sid >= expected:
            # opening a stream opens every lower one of its type (RFC 9000 §2.1)
            self._peer_request_gaps.update(range(expected, sid, 4))
            self._next_peer_request = sid + 4
            return True
        if sid in self._peer_request_gaps:
            self._peer_request_gaps.discard(sid)
            return True
        return False

    def _drop(self, state: StreamState, error_code: int) -> None:
        state.reset_code = error_code
        state.aborted = True
        state.eof = True
        state.wake_all()
        if state.headers is None:
            self.forget(state)
            self.accept_lot.unpark_all()
        else:
            self.credit(state)

    def _deliver_datagram(self, stream_id: int, data: bytes) -> bool:
        """Queue an HTTP datagram for its stream; whether that woke a task."""
        state = self.streams.get(stream_id)
        if state is None or state.closed:
            self.datagrams_dropped += 1
        elif len(state.datagrams) >= DATAGRAM_QUEUE_SIZE:
            state.datagrams_dropped += 1
            self.datagrams_dropped += 1
        else:
            state.datagrams.append(data)
            lot = state.datagram_lot
            if lot is not NO_LOT and lot:
                lot.unpark_all()
                return True
        return False

    def _dispatch(self) -> None:
        conn = self.h3
        assert conn is not None
        streams = self.streams
        woke = False
        # conn.next_event() without a call per event (re-read: enable_capsule_protocol
        # replaces the queue)
        while events := conn._events:
            event = events.popleft()
            if type(event) is _HeadersReceived:
                state = streams.get(event.stream_id)
                if state is None:
                    continue
                if event.interim:
                    state.interim += (event.headers,)
                else:
                    state.headers = event.headers
                    if not self.is_client:
                        state.is_connect = (b":method", b"CONNECT") in event.headers[:4]
                        if self.on_request is not None:
                            self.on_request(state)  # starts its handler task
                            woke = True
                        else:
                            self.accept_queue.append(state)
                        if self.on_request is None or self.going_away:
                            if unpark(self.accept_lot):  # accept_request, or a drain's check
                                woke = True
                if event.end_stream:
                    state.eof = True
                lot = state.recv_lot
                if lot is not NO_LOT and lot:
                    lot.unpark_all()
                    woke = True
            elif type(event) is _DataReceived:
                state = streams.get(event.stream_id)
                if state is None:
                    continue
                data = event.data
                if data and not state.closed:
                    state.buffer.append(data)
                lot = state.recv_lot
                if lot is not NO_LOT and lot:
                    lot.unpark_all()
                    woke = True
                if event.end_stream:
                    state.eof = True
                    lot = state.datagram_lot
                    if lot is not NO_LOT and lot:
                        lot.unpark_all()
                        woke = True
            elif type(event) is _DatagramReceived:
                if self._deliver_datagram(event.stream_id, event.data):
                    woke = True
            elif type(event) is h3.TrailersReceived:
                state = streams.get(event.stream_id)
                if state is not None:
                    state.trailers = event.headers  # they end the message
                    state.eof = True
                    if unpark(state.recv_lot):
                        woke = True
                    if unpark(state.datagram_lot):
                        woke = True
            elif type(event) is h3.StreamReset:
                state = streams.get(event.stream_id)
                if state is not None:
                    state.reset_code = event.error_code
                    if not event.by_peer:
                        state.aborted = True
                    state.buffer.clear()
                    state.wake_all()
                    woke = True
                    self.credit(state)
                    if state.headers is None and not self.is_client:
                        self.forget(state)  # never became a request
                        if unpark(self.accept_lot):
                            woke = True
            elif type(event) is h3.StopSendingReceived:
                state = streams.get(event.stream_id)
                if state is not None and state.stop_code is None:
                    state.stop_code = event.error_code
                    self._blocked.discard(state)
                    state.send_lot.unpark_all()
                    woke = True
            elif type(event) is h3.SettingsReceived:
                self._settings_event.set()
                woke = True
            elif type(event) is h3.GoawayReceived:
                self.goaway_received = event.identifier
                if self.is_client:
                    for sid, state in list(streams.items()):
                        if sid >= event.identifier and state.headers is None:
                            # not processed by the server (RFC 9114 §5.2): safe to retry
                            state.reset_code = int(h3.ErrorCode.H3_REQUEST_REJECTED)
                            state.wake_all()
                            woke = True
            elif type(event) is h3.ConnectionTerminated:
                self._terminated = True
                self._settings_event.set()
            # CapsuleReceived: the Capsule Protocol is left to the application (raw bytes)
        if woke and (connection := self._conn_ref()) is not None:
            connection._woke = True

    def __repr__(self) -> str:
        role = "client" if self.is_client else "server"
        return f"<H3Engine {role} streams={len(self.streams)}>"
