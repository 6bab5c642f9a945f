"""All streams of one connection: creation, limits, flow control, frames in and out (RFC 9000 §2-4).

:class:`StreamManager` sits between the connection and the per-stream state machines of
:mod:`._streams`.  It handles the stream-related frames the connection dispatches to it,
appends the stream-related frames the packet builder asks for straight into the packet's
``bytearray`` (recording one small tuple per frame for loss recovery), and turns received data
into :class:`~._events.StreamDataReceived` / :class:`~._events.StreamReset` /
:class:`~._events.StopSendingReceived` events.

Flow control credit is granted as the application *consumes* data.  With
``consume_on_delivery`` (the default) data counts as consumed as soon as its event is queued;
otherwise the application reports what it read with :meth:`consume` (the trio layer does,
so a slow reader throttles the peer).

Streams the peer's MAX_STREAMS does not allow yet are created and buffered locally; they start
sending, in order, as the limit rises (a STREAMS_BLOCKED frame tells the peer).
"""

from __future__ import annotations

from collections import deque
from typing import Any, Final, final

from .._buffer import encode_varint
from ._errors import StreamStateError, StreamStateViolation, TransportError
from ._events import Event, StopSendingReceived, StreamDataReceived, StreamReset
from ._flow import ReceiveWindow, SendCredit, StreamLimits
from ._params import TransportParameters
from ._recv_stream import _RECV_FINISHED
from ._streams import _SEND_FINISHED, NO_ROOM, RecvStream, SendStream

__all__ = ["SEND_ALLOWANCE", "Stream", "StreamManager"]

#: Bytes ``send_stream_data`` may buffer beyond the peer's credit before
#: ``stream_send_capacity`` reports zero.
SEND_ALLOWANCE: Final = 64 * 1024

# frame records kept in SentPacket.frames (the connection dispatches them back here)
F_STREAM: Final = 10
F_RESET_STREAM: Final = 11
F_STOP_SENDING: Final = 12
F_MAX_DATA: Final = 13
F_MAX_STREAM_DATA: Final = 14
F_MAX_STREAMS: Final = 15
F_DATA_BLOCKED: Final = 16
F_STREAM_DATA_BLOCKED: Final = 17
F_STREAMS_BLOCKED: Final = 18

_FT_RESET_STREAM: Final = 0x04
_FT_STOP_SENDING: Final = 0x05
_FT_MAX_STREAM_DATA: Final = 0x11
_FT_STREAM_DATA_BLOCKED: Final = 0x15


def _tag(exc: TransportError, frame_type: int) -> None:
    if exc.frame_type is None:
        exc.frame_type = frame_type


@final
class Stream:
    """One stream: its sending part, its receiving part, or both."""

    __slots__ = ("control", "id_bytes", "opened", "queued", "recv", "send", "stop_code",
                 "stop_pending", "stream_id", "window_pending")

    def __init__(self, stream_id: int, send: SendStream | None, recv: RecvStream | None,
                 opened: bool) -> None:
        self.stream_id = stream_id
        # the stream ID as STREAM frames carry it (encode_varint, the usual widths inline)
        self.id_bytes = (bytes((stream_id,)) if stream_id < 0x40
                         else (stream_id | 0x4000).to_bytes(2) if stream_id < 0x4000
                         else encode_varint(stream_id))
        self.send = send
        self.recv = recv
        self.opened = opened  # counted against the peer's MAX_STREAMS (local streams)
        self.queued = False  # in the manager's send queue
        self.control = False  # in the manager's control queue
        self.stop_code: int | None = None
        self.stop_pending = False
        self.window_pending = False

    @property
    def is_finished(self) -> bool:
        send, recv = self.send, self.recv
        # send.is_finished and recv.is_finished, inline (private: their states)
        return (send is None or send._state in _SEND_FINISHED) and (
            recv is None or recv._state in _RECV_FINISHED)


@final
class StreamManager:
    """Streams, stream limits and connection-level flow control of one connection.

    Args:
        is_client: our role.
        events: the connection's event queue.
        max_data / max_data_limit: our connection receive window and its autotuning ceiling.
        max_stream_data / max_stream_data_limit: our stream receive window and its ceiling.
        max_streams_bidi / max_streams_uni: the peer-opened streams we allow.
        consume_on_delivery: count data as consumed as soon as it is delivered.
    """

    __slots__ = (
        "_consume_on_delivery",
        "_control",
        "_conn_credit",
        "_conn_window",
        "_events",
        "_is_client",
        "_limits",
        "_max_data_due",
        "_max_data_pending",
        "_max_stream_data",
        "_max_stream_data_limit",
        "_max_streams_pending",
        "_next_local",
        "_peer_next",
        "_peer",
        "_send_queue",
        "_streams",
        "_streams_blocked",
        "_waiting_open",
    )

    def __init__(
        self,
        *,
        is_client: bool,
        events: deque[Event],
        max_data: int,
        max_data_limit: int,
        max_stream_data: int,
        max_stream_data_limit: int,
        max_streams_bidi: int,
        max_streams_uni: int,
        consume_on_delivery: bool = True,
    ) -> None:
        self._is_client = is_client
        self._events = events
        self._consume_on_delivery = consume_on_delivery
        self._streams: dict[int, Stream] = {}
        self._limits = StreamLimits(
            is_client=is_client, max_bidi_streams=max_streams_bidi,
            max_uni_streams=max_streams_uni,
        )
        self._conn_credit = SendCredit(0)
        self._conn_window = ReceiveWindow(max_data, max_data_limit)
        self._max_stream_data = max_stream_data
        self._max_stream_data_limit = max_stream_data_limit
        self._peer = TransportParameters()  # the peer's limits (defaults: no credit)
        self._next_local = [0, 0]  # next local stream index: [bidi, uni]
        self._peer_next = [0, 0]  # next peer stream index not opened yet: [bidi, uni]
        self._send_queue: deque[Stream] = deque()
        self._control: deque[Stream] = deque()
        self._waiting_open: list[Stream] = []  # local streams beyond the peer's MAX_STREAMS
        self._max_data_pending = False
        self._max_data_due = False  # the connection window may need a MAX_DATA
        self._max_streams_pending = [0, 0]  # 1: raise the limit if due, 2: resend it
        self._streams_blocked: list[int | None] = [None, None]

    # -- parameters --------------------------------------------------------------------------

    def apply_peer_parameters(self, params: TransportParameters) -> None:
        """The peer's transport parameters (or the remembered ones, for 0-RTT)."""
        self._peer = params
        self._conn_credit.on_max(params.initial_max_data)
        self._limits.on_max_streams(True, params.initial_max_streams_bidi)
        self._limits.on_max_streams(False, params.initial_max_streams_uni)
        for stream in self._streams.values():
            if stream.send is not None:
                stream.send.on_max_stream_data(self._initial_send_credit(stream.stream_id))
                self._queue_send(stream)
        self._open_waiting()

    def _initial_send_credit(self, stream_id: int) -> int:
        peer = self._peer
        if stream_id & 2:
            return peer.initial_max_stream_data_uni
        if self._is_local(stream_id):
            return peer.initial_max_stream_data_bidi_remote
        return peer.initial_max_stream_data_bidi_local

    def _is_local(self, stream_id: int) -> bool:
        return (not stream_id & 1) == self._is_client

    # -- introspection -----------------------------------------------------------------------

    @property
    def connection_window(self) -> ReceiveWindow:
        return self._conn_window

    @property
    def connection_credit(self) -> SendCredit:
        return self._conn_credit

    def __len__(self) -> int:
        return len(self._streams)

    def get(self, stream_id: int) -> Stream | None:
        return self._streams.get(stream_id)

    def next_stream_id(self, unidirectional: bool) -> int:
        """The lowest local stream ID of the kind not created yet."""
        kind = (0 if self._is_client else 1) | (2 if unidirectional else 0)
        return (self._next_local[1 if unidirectional else 0] << 2) | kind

    # -- application commands -----------------------------------------------------------------

    def _local_stream_for_send(self, stream_id: int) -> Stream:
        stream = self._streams.get(stream_id)
        if stream is not None:
            return stream
        if stream_id < 0 or stream_id >= 1 << 62:
            raise ValueError(f"invalid stream ID {stream_id}")
        if (not stream_id & 1) != self._is_client:  # not self._is_local(stream_id)
            raise StreamStateError(f"stream {stream_id} is not open")
        uni = bool(stream_id & 2)
        index = stream_id >> 2
        slot = 1 if uni else 0
        if index < self._next_local[slot]:
            raise StreamStateError(f"stream {stream_id} is closed")
        self._next_local[slot] = index + 1
        # _initial_send_credit and _new_recv, inline
        peer = self._peer
        if uni:
            send = SendStream(stream_id, peer.initial_max_stream_data_uni,
                              connection=self._conn_credit)
            recv = None
        else:
            send = SendStream(stream_id, peer.initial_max_stream_data_bidi_remote,
                              connection=self._conn_credit)
            recv = RecvStream(stream_id, self._max_stream_data,
                              max_window=self._max_stream_data_limit,
                              connection=self._conn_window)
        stream = Stream(stream_id, send, recv, opened=False)
        self._streams[stream_id] = stream
        limits = self._limits
        if not self._waiting_open and index < limits.peer_limit(not uni):
            # nothing waits and the peer allows it: _open_waiting for this one stream
            while True:
                opened = limits.open_stream(not uni)
                if opened is None or opened >= stream_id:
                    break
            stream.opened = stream.queued = True  # _queue_send, inline
            self._send_queue.append(stream)
        else:
            self._waiting_open.append(stream)
            self._open_waiting()
        return stream

    def _new_recv(self, stream_id: int) -> RecvStream:
        return RecvStream(stream_id, self._max_stream_data,
                          max_window=self._max_stream_data_limit, connection=self._conn_window)

    def _open_waiting(self) -> None:
        """Open, in order, the local streams the peer's MAX_STREAMS now allows."""
        waiting = self._waiting_open
        if not waiting:
            return
        waiting.sort(key=lambda s: s.stream_id)
        limits = self._limits
        still: list[Stream] = []
        for stream in waiting:
            bidi = not stream.stream_id & 2
            if (stream.stream_id >> 2) < limits.peer_limit(bidi):
                while True:
                    opened = limits.open_stream(bidi)
                    if opened is None or opened >= stream.stream_id:
                        break
                stream.opened = True
                self._queue_send(stream)
            else:
                still.append(stream)
                self._streams_blocked[0 if bidi else 1] = limits.peer_limit(bidi)
        self._waiting_open = still

    def send(self, stream_id: int, data: bytes | bytearray | memoryview, end_stream: bool) -> None:
        stream = self._streams.get(stream_id)
        if stream is None:
            stream = self._local_stream_for_send(stream_id)
        send = stream.send
        if send is None:
            raise StreamStateError(f"stream {stream_id} is receive-only")
        send.write(data, end_stream)
        if not stream.queued and stream.opened:  # _queue_send, inline
            stream.queued = True
            self._send_queue.append(stream)

    def send_capacity(self, stream_id: int) -> int:
        stream = self._streams.get(stream_id)
        if stream is None:
            if not self._is_local(stream_id):
                return 0
            credit = self._initial_send_credit(stream_id)
            return max(0, min(credit, self._conn_credit.available) + SEND_ALLOWANCE)
        send = stream.send
        if send is None or send.is_finished or send.final_size is not None:
            return 0
        available = min(send.credit.available, self._conn_credit.available)
        unsent = send.write_offset - send.sent_offset
        return max(0, available + SEND_ALLOWANCE - unsent)

    def _is_closed(self, stream_id: int) -> bool:
        """Whether a stream existed and was forgotten once finished."""
        if stream_id in self._streams:
            return False
        if self._is_local(stream_id):
            return (stream_id >> 2) < self._next_local[1 if stream_id & 2 else 0]
        return (stream_id >> 2) < self._peer_next[1 if stream_id & 2 else 0]

    def reset(self, stream_id: int, error_code: int) -> None:
        if stream_id & 2 and not self._is_local(stream_id):
            raise StreamStateError(f"stream {stream_id} is receive-only")
        if self._is_closed(stream_id):
            return
        stream = self._local_stream_for_send(stream_id)
        if stream.send is None:
            raise StreamStateError(f"stream {stream_id} is receive-only")
        if stream.send.reset(error_code):
            self._queue_control(stream)

    def stop_sending(self, stream_id: int, error_code: int) -> None:
        stream = self._streams.get(stream_id)
        if stream is None and not (stream_id & 2 and self._is_local(stream_id)) and \
                self._is_closed(stream_id):
            return
        if stream is None or stream.recv is None:
            raise StreamStateError(f"stream {stream_id} has no receiving part here")
        recv = stream.recv
        if recv.is_finished or stream.stop_code is not None:
            return
        recv.stop_sending()
        if self._conn_window.update_due():
            self._max_data_due = True
        stream.stop_code = error_code
        stream.stop_pending = True
        self._queue_control(stream)

    def consume(self, stream_id: int, n: int) -> None:
        """The application read ``n`` bytes of a stream (manual flow control)."""
        if n < 0:
            raise ValueError("cannot consume a negative number of bytes")
        if self._consume_on_delivery or not n:
            return
        # on_consumed and update_due of both windows, inline
        window = self._conn_window
        window._consumed += n
        if window._limit - window._consumed <= window._window >> 1:
            self._max_data_due = True
        stream = self._streams.get(stream_id)
        if stream is not None:
            recv = stream.recv
            if recv is not None:
                window = recv._window
                window._consumed += n
                if window._limit - window._consumed <= window._window >> 1:
                    self._queue_control(stream)

    # -- queues ---------------------------------------------------------------------------------

    def _queue_send(self, stream: Stream) -> None:
        if not stream.queued and stream.opened and stream.send is not None:
            stream.queued = True
            self._send_queue.append(stream)

    def _queue_control(self, stream: Stream) -> None:
        if not stream.control:
            stream.control = True
            self._control.append(stream)

    def has_data(self) -> bool:
        """Whether stream frames may be waiting (a cheap, possibly optimistic check)."""
        return bool(self._send_queue)

    def has_control(self) -> bool:
        """Whether flow-control or stream-control frames wait (cheap: flags only)."""
        return bool(
            self._control or self._max_data_pending or self._max_data_due
            or self._max_streams_pending[0] or self._max_streams_pending[1]
            or self._streams_blocked[0] is not None or self._streams_blocked[1] is not None
            or self._conn_credit.blocked_due
        )

    # -- frames in -------------------------------------------------------------------------------

    def _stream_for_receive(self, stream_id: int, frame_type: int) -> Stream | None:
        """The stream a peer frame refers to; None when it is closed and forgotten."""
        stream = self._streams.get(stream_id)
        if stream is not None:
            return stream
        try:
            new_ids = self._limits.on_peer_stream(stream_id)
        except TransportError as exc:
            _tag(exc, frame_type)
            raise
        if new_ids:
            slot = 1 if stream_id & 2 else 0
            self._peer_next[slot] = (stream_id >> 2) + 1
        # _initial_send_credit (a peer's bidi stream) and _new_recv, inline
        send_credit = self._peer.initial_max_stream_data_bidi_local
        window, max_window = self._max_stream_data, self._max_stream_data_limit
        conn_window = self._conn_window
        stream = None
        for sid in new_ids:
            send = None if sid & 2 else SendStream(sid, send_credit,
                                                   connection=self._conn_credit)
            stream = self._streams[sid] = Stream(
                sid, send, RecvStream(sid, window, max_window=max_window,
                                      connection=conn_window), opened=True)
        return stream  # the last one opened is stream_id's (None: none opened, or closed)

    def _check_can_receive(self, stream_id: int, frame_type: int) -> None:
        if stream_id & 2 and self._is_local(stream_id):
            raise StreamStateViolation(
                f"frame for our unidirectional stream {stream_id}", frame_type=frame_type)

    def _check_can_send(self, stream_id: int, frame_type: int) -> None:
        if stream_id & 2 and not self._is_local(stream_id):
            raise StreamStateViolation(
                f"frame for the peer's unidirectional stream {stream_id}", frame_type=frame_type)

    def on_stream_frame(self, stream_id: int, offset: int, data: memoryview | bytes, fin: bool,
                        frame_type: int) -> None:
        stream = self._streams.get(stream_id)
        if stream is None:
            self._check_can_receive(stream_id, frame_type)
            stream = self._stream_for_receive(stream_id, frame_type)
            if stream is None:
                return
            recv = stream.recv
            if not fin:
                # a new stream's first frame without FIN: the general way below
                recv = None
        else:
            recv = stream.recv
            if recv is None:
                # our own unidirectional stream (the only kind without a receiving part)
                self._check_can_receive(stream_id, frame_type)  # raises
        if recv is not None:
            # in order with nothing buffered: straight to the application (no reassembly);
            # a frame with FIN is the whole rest of the stream (a small request or response)
            consume = self._consume_on_delivery
            try:
                chunk = (recv.receive_last(offset, data, consume) if fin
                         else recv.receive_in_order(offset, data, consume))
            except TransportError as exc:
                _tag(exc, frame_type)
                raise
            if chunk is not None:
                self._events.append(
                    StreamDataReceived(stream_id=stream_id, data=chunk, end_stream=fin))
                if consume or fin:
                    # window.update_due() of both windows, inline
                    window = recv._window
                    if window._limit - window._consumed <= window._window >> 1:
                        self._queue_control(stream)
                    window = self._conn_window
                    if window._limit - window._consumed <= window._window >> 1:
                        self._max_data_due = True
                if fin:
                    self._maybe_forget(stream)
                return
        recv = stream.recv
        assert recv is not None
        try:
            readable = recv.on_stream_frame(offset, data, fin)
        except TransportError as exc:
            _tag(exc, frame_type)
            raise
        if readable:
            self._deliver(stream, recv)
        elif stream.stop_code is not None and self._conn_window.update_due():
            self._max_data_due = True  # discarded data was credited back

    def _deliver(self, stream: Stream, recv: RecvStream) -> None:
        data = recv.read()
        n = len(data)
        if n and not self._consume_on_delivery:
            # delivered is not consumed: the application reports reads with consume()
            recv.window.on_consumed(-n)
            self._conn_window.on_consumed(-n)
        self._events.append(StreamDataReceived(
            stream_id=stream.stream_id, data=data, end_stream=recv.at_eof))
        if recv.window.update_due():
            self._queue_control(stream)
        if self._conn_window.update_due():
            self._max_data_due = True
        if recv.at_eof:
            self._maybe_forget(stream)

    def on_reset_stream(self, stream_id: int, error_code: int, final_size: int) -> None:
        self._check_can_receive(stream_id, _FT_RESET_STREAM)
        stream = self._stream_for_receive(stream_id, _FT_RESET_STREAM)
        if stream is None:
            return
        recv = stream.recv
        assert recv is not None
        try:
            newly = recv.on_reset(error_code, final_size)
        except TransportError as exc:
            _tag(exc, _FT_RESET_STREAM)
            raise
        if self._conn_window.update_due():
            self._max_data_due = True
        if newly:
            recv.read()  # the application learns of the reset with this event
            self._events.append(StreamReset(stream_id=stream_id, error_code=error_code))
            self._maybe_forget(stream)

    def on_stop_sending(self, stream_id: int, error_code: int) -> None:
        self._check_can_send(stream_id, _FT_STOP_SENDING)
        stream = self._stream_for_receive(stream_id, _FT_STOP_SENDING)
        if stream is None:
            return
        send = stream.send
        assert send is not None
        if send.reset(error_code):
            self._queue_control(stream)
        self._events.append(StopSendingReceived(stream_id=stream_id, error_code=error_code))

    def on_max_stream_data(self, stream_id: int, maximum: int) -> None:
        self._check_can_send(stream_id, _FT_MAX_STREAM_DATA)
        stream = self._stream_for_receive(stream_id, _FT_MAX_STREAM_DATA)
        if stream is not None and stream.send is not None and stream.send.on_max_stream_data(
                maximum):
            self._queue_send(stream)

    def on_stream_data_blocked(self, stream_id: int) -> None:
        self._check_can_receive(stream_id, _FT_STREAM_DATA_BLOCKED)
        self._stream_for_receive(stream_id, _FT_STREAM_DATA_BLOCKED)

    def on_max_data(self, maximum: int) -> None:
        if self._conn_credit.on_max(maximum):
            for stream in self._streams.values():
                if stream.send is not None and stream.send.has_data_to_send():
                    self._queue_send(stream)

    def on_max_streams(self, bidirectional: bool, maximum: int) -> None:
        if self._limits.on_max_streams(bidirectional, maximum):
            self._open_waiting()

    def _maybe_forget(self, stream: Stream) -> None:
        send, recv = stream.send, stream.recv
        # stream.is_finished, inline
        if (send is None or send._state in _SEND_FINISHED) and (
                recv is None or recv._state in _RECV_FINISHED) and \
                self._streams.get(stream.stream_id) is stream:
            stream_id = stream.stream_id
            del self._streams[stream_id]
            if (not stream_id & 1) != self._is_client:  # the peer's stream (not _is_local)
                self._limits.on_stream_closed(stream_id)  # (a no-op for ours)
                bidi = not stream_id & 2
                if self._limits.max_streams_due(bidi):
                    slot = 0 if bidi else 1
                    self._max_streams_pending[slot] = max(self._max_streams_pending[slot], 1)

    # -- frames out ------------------------------------------------------------------------------

    def write_control(self, buf: bytearray, limit: int, records: list[Any], now: float,
                      rtt: float) -> None:
        """Append flow-control and stream-control frames to ``buf`` up to ``limit`` bytes."""
        window = self._conn_window
        if self._max_data_pending or self._max_data_due:
            self._max_data_due = False
            update = window.get_update(now, rtt)
            value = update if update is not None else window.limit
            if update is not None or self._max_data_pending:
                frame = b"\x10" + encode_varint(value)
                if len(buf) + len(frame) > limit:
                    return
                buf += frame
                records.append((F_MAX_DATA, value))
                self._max_data_pending = False
        for slot in (0, 1):
            bidi = slot == 0
            pending = self._max_streams_pending[slot]
            if pending:
                raised = self._limits.get_max_streams(bidi)
                if raised is None and pending == 2:
                    raised = self._limits.local_limit(bidi)
                self._max_streams_pending[slot] = 0
                if raised is not None:
                    frame = (b"\x12" if bidi else b"\x13") + encode_varint(raised)
                    if len(buf) + len(frame) > limit:
                        self._max_streams_pending[slot] = 2
                        return
                    buf += frame
                    records.append((F_MAX_STREAMS, bidi, raised))
            blocked = self._streams_blocked[slot]
            if blocked is not None:
                frame = (b"\x16" if bidi else b"\x17") + encode_varint(blocked)
                if len(buf) + len(frame) > limit:
                    return
                buf += frame
                records.append((F_STREAMS_BLOCKED, bidi, blocked))
                self._streams_blocked[slot] = None
        credit = self._conn_credit
        if credit.is_blocked:
            at = credit.get_blocked()
            if at is not None:
                frame = b"\x14" + encode_varint(at)
                if len(buf) + len(frame) > limit:
                    credit.on_blocked_lost(at)
                    return
                buf += frame
                records.append((F_DATA_BLOCKED, at))
        control = self._control
        while control:
            stream = control[0]
            if not self._write_stream_control(stream, buf, limit, records, now, rtt):
                return
            control.popleft()
            stream.control = False
            self._maybe_forget(stream)

    def _write_stream_control(self, stream: Stream, buf: bytearray, limit: int,
                              records: list[Any], now: float, rtt: float) -> bool:
        """Write one stream's pending control frames; False when they did not fit."""
        sid = encode_varint(stream.stream_id)
        send = stream.send
        if send is not None:
            reset = send.get_reset()
            if reset is not None:
                code, final_size = reset
                frame = b"\x04" + sid + encode_varint(code) + encode_varint(final_size)
                if len(buf) + len(frame) > limit:
                    send.on_reset_lost()
                    return False
                buf += frame
                records.append((F_RESET_STREAM, stream))
        if stream.stop_pending and stream.stop_code is not None:
            frame = b"\x05" + sid + encode_varint(stream.stop_code)
            if len(buf) + len(frame) > limit:
                return False
            buf += frame
            records.append((F_STOP_SENDING, stream))
            stream.stop_pending = False
        recv = stream.recv
        if recv is not None and (stream.window_pending or recv.window.update_due()):
            update = recv.get_max_stream_data(now, rtt)
            if update is None and stream.window_pending and recv.final_size is None:
                update = recv.window.limit
            if update is not None:
                frame = b"\x11" + sid + encode_varint(update)
                if len(buf) + len(frame) > limit:
                    stream.window_pending = True
                    return False
                buf += frame
                records.append((F_MAX_STREAM_DATA, stream))
            stream.window_pending = False
        if send is not None:
            blocked = send.get_data_blocked()
            if blocked is not None:
                frame = b"\x15" + sid + encode_varint(blocked)
                if len(buf) + len(frame) > limit:
                    send.credit.on_blocked_lost(blocked)
                    return False
                buf += frame
                records.append((F_STREAM_DATA_BLOCKED, stream, blocked))
        return True

    def write_stream_frames(self, buf: bytearray, limit: int, records: list[Any]) -> None:
        """Append STREAM frames (round robin over the streams with data) up to ``limit``."""
        queue = self._send_queue
        while queue:
            stream = queue[0]
            send = stream.send
            assert send is not None
            written = send.write_frame(buf, limit - len(buf), stream.id_bytes)
            if written is None:
                # finished, or blocked on flow-control credit (MAX_DATA / MAX_STREAM_DATA
                # requeue it)
                queue.popleft()
                stream.queued = False
                if send.credit.is_blocked:
                    self._queue_control(stream)
                self._maybe_forget(stream)
                continue
            if written is NO_ROOM:
                return
            offset, length, fin, full = written
            records.append((F_STREAM, stream, offset, length, fin))
            if full:
                if len(queue) > 1:
                    queue.rotate(-1)
                return  # the packet is full
            if send._credit._blocked_at is not None:  # send.credit.is_blocked, inline
                self._queue_control(stream)
            # after its FIN the stream has nothing left (get_frame sends the lowest lost range
            # first, so a frame reaching the FIN leaves nothing pending)
            if fin or not send.has_data_to_send():
                queue.popleft()
                stream.queued = False
            elif len(queue) > 1:
                queue.rotate(-1)

    # -- fate of sent frames -----------------------------------------------------------------------

    def on_frame_acked(self, record: tuple[Any, ...]) -> None:
        kind = record[0]
        if kind == F_STREAM:
            stream: Stream = record[1]
            send = stream.send
            assert send is not None
            if send.on_data_acked(record[2], record[3], record[4]):
                self._maybe_forget(stream)
        elif kind == F_RESET_STREAM:
            stream = record[1]
            assert stream.send is not None
            stream.send.on_reset_acked()
            self._maybe_forget(stream)

    def on_frame_lost(self, record: tuple[Any, ...]) -> None:
        kind = record[0]
        if kind == F_STREAM:
            stream: Stream = record[1]
            send = stream.send
            assert send is not None
            send.on_data_lost(record[2], record[3], record[4])
            if send.has_data_to_send():
                self._queue_send(stream)
        elif kind == F_RESET_STREAM:
            stream = record[1]
            assert stream.send is not None
            stream.send.on_reset_lost()
            self._queue_control(stream)
        elif kind == F_STOP_SENDING:
            stream = record[1]
            if stream.recv is not None and not stream.recv.is_finished:
                stream.stop_pending = True
                self._queue_control(stream)
        elif kind == F_MAX_DATA:
            if record[1] == self._conn_window.limit:
                self._max_data_pending = True
        elif kind == F_MAX_STREAM_DATA:
            stream = record[1]
            if stream.recv is not None and stream.recv.final_size is None and \
                    self._streams.get(stream.stream_id) is stream:
                stream.window_pending = True
                self._queue_control(stream)
        elif kind == F_MAX_STREAMS:
            bidi = record[1]
            if record[2] == self._limits.local_limit(bidi):
                self._max_streams_pending[0 if bidi else 1] = 2
        elif kind == F_DATA_BLOCKED:
            self._conn_credit.on_blocked_lost(record[1])
        elif kind == F_STREAM_DATA_BLOCKED:
            stream = record[1]
            if stream.send is not None:
                stream.send.credit.on_blocked_lost(record[2])
                self._queue_control(stream)
        elif kind == F_STREAMS_BLOCKED:
            bidi, value = record[1], record[2]
            if value == self._limits.peer_limit(bidi) and self._waiting_open:
                self._streams_blocked[0 if bidi else 1] = value
