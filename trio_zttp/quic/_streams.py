"""Stream state machines, send buffering and receive reassembly (RFC 9000 §2, §3, §4).

Both halves of a stream are here, each a state machine written as a table (STYLE.md, in
:mod:`._stream_states`): an Enum of states, an Enum of events and a module-level
``{state: {event: next_state}}`` dict.
:func:`send_transition` and :func:`recv_transition` apply one move; a move missing from the
table raises :class:`~trio_zttp.quic._errors.StreamStateError`. Every move a *peer* can cause
(STREAM, RESET_STREAM arriving) exists in every receive state, so remote input never hits a
missing move; missing moves are local misuse.

Send side (RFC 9000 §3.1)::

    READY --data--> SEND --fin--> DATA_SENT --all acked--> DATA_RECVD
      |               |              |
      +---reset-------+----reset-----+--> RESET_SENT --reset acked--> RESET_RECVD

Receive side (RFC 9000 §3.2)::

    RECV --fin--> SIZE_KNOWN --all received--> DATA_RECVD --app read all--> DATA_READ
      |               |
      +----reset------+--> RESET_RECVD --app read reset--> RESET_READ

A RESET_STREAM arriving once all data is received (DATA_RECVD) is ignored apart from the
final-size check: the data is already here and the application can read it (RFC 9000 §3.2
leaves the choice to the implementation).

**Send buffer.** Written data is kept as immutable chunks of at most 32 KiB in a list
indexed by a parallel list of start offsets; a frame is a memoryview slice of one chunk (a
join only where a frame crosses a chunk boundary). Chunks are dropped as soon as the
acknowledged prefix passes them, so a 10 MB stream holds only its unacknowledged window.
Retransmissions come from a :class:`~trio_zttp.quic._ranges.RangeSet` of lost ranges minus
acknowledged ones and go out before new data.

**Receive buffer**: see :mod:`._recv_stream` (:class:`RecvStream` is re-exported here).
"""

from __future__ import annotations

from bisect import bisect_right
from typing import Final, final

from ._errors import StreamStateError
from ._flow import SendCredit
from ._ranges import RangeSet
from ._recv_stream import NO_RANGES, RecvStream
from ._stream_states import (
    RECV_TRANSITIONS,
    SEND_TRANSITIONS,
    RecvEvent,
    RecvState,
    SendEvent,
    SendState,
    recv_transition,
    send_transition,
)

__all__ = [
    "NO_ROOM",
    "RECV_TRANSITIONS",
    "SEND_TRANSITIONS",
    "RecvEvent",
    "RecvState",
    "RecvStream",
    "SendEvent",
    "SendState",
    "SendStream",
    "recv_transition",
    "send_transition",
]

CHUNK_SIZE: Final = 1 << 15
_QUARTER_CHUNK: Final = CHUNK_SIZE // 4  # smaller writes are gathered in the tail
_HALF_CHUNK: Final = CHUNK_SIZE // 2  # a tail this long becomes a chunk
_EMPTY: Final = memoryview(b"")
NO_ROOM: Final = (-1, 0, False, True)
"""What :meth:`SendStream.write_frame` returns when no data fits."""
_VARINT_MAX: Final = (1 << 62) - 1
NO_CHUNKS: Final[list[memoryview]] = []
NO_CHUNK_STARTS: Final[list[int]] = []
"""The empty chunk lists send streams share until they seal a chunk: only ``_append_chunk``
adds to them, and it gives the stream its own lists first (``_release`` and the readers never
write to an empty list)."""


def _data_capacity(room: int) -> int:
    """Most data bytes after a Length field within ``room`` bytes (-1: not even empty)."""
    best = -1
    for width, limit in ((1, 0x3F), (2, 0x3FFF), (4, 0x3FFFFFFF), (8, _VARINT_MAX)):
        n = min(room - width, limit)
        if n > best:
            best = n
    return best


def _write_stream_header(buf: bytearray, id_bytes: bytes, offset: int, length: int,
                         fin: bool) -> None:
    """Type (OFF when offset, LEN, FIN), stream ID, offset and length of a STREAM frame."""
    buf.append((0x0E if offset else 0x0A) | fin)
    buf += id_bytes
    if offset:
        if offset < 0x4000:
            buf += (offset | 0x4000).to_bytes(2) if offset >= 0x40 else bytes((offset,))
        elif offset < 0x40000000:
            buf += (offset | 0x80000000).to_bytes(4)
        else:
            buf += (offset | 0xC000000000000000).to_bytes(8)
    if length < 0x40:
        buf.append(length)
    elif length < 0x4000:
        buf += (length | 0x4000).to_bytes(2)
    else:
        buf += ((length | 0x80000000).to_bytes(4) if length < 0x40000000
                else (length | 0xC000000000000000).to_bytes(8))

# enum members bound once: reading ``SendState.READY`` costs an attribute lookup on the
# class each time, and tuples compare members by identity (frozensets would hash them)
_READY: Final = SendState.READY
_SEND: Final = SendState.SEND
_DATA_SENT: Final = SendState.DATA_SENT
_DATA_RECVD: Final = SendState.DATA_RECVD
_RESET_SENT: Final = SendState.RESET_SENT
_RESET_RECVD: Final = SendState.RESET_RECVD
_SEND_ACTIVE: Final = (_READY, _SEND, _DATA_SENT)
_SEND_WAITING_ACKS: Final = (_SEND, _DATA_SENT)
_SEND_FINISHED: Final = (_DATA_RECVD, _RESET_RECVD)


@final
class SendStream:
    """The sending part of a stream: buffer, retransmission queue, FIN, reset, credit.

    The connection writes application data with :meth:`write`, pulls frames with
    :meth:`get_frame` and reports each frame's fate with :meth:`on_data_acked` or
    :meth:`on_data_lost` (typically from ``(stream, offset, length, fin)`` records in
    :attr:`SentPacket.frames <trio_zttp.quic._recovery.SentPacket.frames>`).

    Args:
        stream_id: the stream's ID.
        max_stream_data: the peer's initial MAX_STREAM_DATA for this stream.
        connection: the connection-level credit (MAX_DATA) new data also draws on.
    """

    __slots__ = (
        "_acked",
        "_acked_prefix",
        "_chunk_starts",
        "_chunks",
        "_connection",
        "_credit",
        "_fin_acked",
        "_fin_lost",
        "_fin_offset",
        "_fin_sent",
        "_first",
        "_next_offset",
        "_pending",
        "_reset_code",
        "_reset_pending",
        "_sealed_end",
        "_state",
        "_tail",
        "stream_id",
    )

    def __init__(
        self, stream_id: int, max_stream_data: int = 0, *, connection: SendCredit | None = None
    ) -> None:
        self.stream_id = stream_id
        self._state = _READY
        self._credit = SendCredit(max_stream_data)
        self._connection = connection
        # the shared empty lists until the first chunk (most streams never seal one)
        self._chunks: list[memoryview] = NO_CHUNKS
        self._chunk_starts: list[int] = NO_CHUNK_STARTS
        self._first = 0
        self._sealed_end = 0
        self._tail = bytearray()
        self._next_offset = 0
        # lost ranges to resend, acknowledged ranges above _acked_prefix (their own once needed)
        self._pending = NO_RANGES
        self._acked = NO_RANGES
        self._acked_prefix = 0
        self._fin_offset: int | None = None
        self._fin_sent = False
        self._fin_lost = False
        self._fin_acked = False
        self._reset_code: int | None = None
        self._reset_pending = False

    # -- introspection -----------------------------------------------------------------------

    @property
    def state(self) -> SendState:
        return self._state

    @property
    def credit(self) -> SendCredit:
        """The stream-level credit (the peer's MAX_STREAM_DATA)."""
        return self._credit

    @property
    def write_offset(self) -> int:
        """Bytes written by the application so far."""
        return self._sealed_end + len(self._tail)

    @property
    def sent_offset(self) -> int:
        """Bytes sent at least once (the stream's flow-control usage)."""
        return self._next_offset

    @property
    def acked_offset(self) -> int:
        """Bytes acknowledged without a gap from offset 0."""
        return self._acked_prefix

    @property
    def buffered(self) -> int:
        """Bytes held in memory: written but not yet part of the acknowledged prefix."""
        if self._state not in _SEND_ACTIVE:
            return 0
        return self.write_offset - self._acked_prefix

    @property
    def final_size(self) -> int | None:
        """The stream's final size once FIN is written or the stream is reset."""
        return self._fin_offset

    @property
    def reset_error_code(self) -> int | None:
        return self._reset_code

    @property
    def is_finished(self) -> bool:
        """Terminal: everything acknowledged, or the reset acknowledged."""
        return self._state in _SEND_FINISHED

    def has_data_to_send(self) -> bool:
        """Whether :meth:`get_frame` would return a frame given enough space.

        Unsent data that flow control holds back does not count; the exhausted credit is
        then marked blocked, so (STREAM_)DATA_BLOCKED gets reported even if
        :meth:`get_frame` is never called.
        """
        if self._state not in _SEND_ACTIVE:
            return False
        # RangeSet truthiness read from its bounds list (no __bool__ call on the hot path)
        if self._pending._bounds or (self._fin_lost and not self._fin_acked):
            return True
        if self.write_offset > self._next_offset:
            if self._credit.available <= 0:
                self._credit.mark_blocked()
                return False
            if self._connection is not None and self._connection.available <= 0:
                self._connection.mark_blocked()
                return False
            return True
        return self._fin_offset == self._next_offset and not self._fin_sent

    # -- application side --------------------------------------------------------------------

    def write(self, data: bytes | bytearray | memoryview, fin: bool = False) -> None:
        """Queue ``data`` (copied) and, with ``fin``, end the stream after it.

        Raises:
            StreamStateError: the stream was reset or FIN was already written.
        """
        if self._state not in _SEND_ACTIVE:
            raise StreamStateError(f"cannot write in send state {self._state.value}")
        if self._fin_offset is not None:
            raise StreamStateError("cannot write after FIN")
        tail = self._tail
        if data.__class__ is bytes:
            size = len(data)
            if size + len(tail) <= CHUNK_SIZE and size < _QUARTER_CHUNK:
                # a small write (the usual one): into the tail, no view of it needed
                tail += data
                if len(tail) >= _HALF_CHUNK:
                    self._seal()
                if fin:
                    self._fin_offset = self._sealed_end + len(self._tail)
                return
        view = memoryview(data)
        if view.ndim != 1 or view.itemsize != 1:
            view = view.cast("B")
        size = view.nbytes
        if size:
            if size + len(tail) <= CHUNK_SIZE and size < _QUARTER_CHUNK:
                tail += view
                if len(tail) >= _HALF_CHUNK:
                    self._seal()
            else:
                self._seal()
                if size <= CHUNK_SIZE and isinstance(data, bytes):
                    self._append_chunk(memoryview(data))
                else:
                    for i in range(0, size, CHUNK_SIZE):
                        self._append_chunk(memoryview(view[i : i + CHUNK_SIZE].tobytes()))
        view.release()
        if fin:
            self._fin_offset = self.write_offset

    def reset(self, error_code: int) -> bool:
        """Abandon the stream: drop all data and queue RESET_STREAM.

        Returns False (and does nothing) when everything was already acknowledged or the
        stream was already reset.
        """
        if self._state not in _SEND_ACTIVE:
            return False
        self._state = send_transition(self._state, SendEvent.SEND_RESET)
        self._reset_code = error_code
        self._fin_offset = self._next_offset
        self._reset_pending = True
        self._chunks = NO_CHUNKS
        self._chunk_starts = NO_CHUNK_STARTS
        self._first = 0
        self._tail = bytearray()
        self._pending.clear()
        self._acked.clear()
        return True

    # -- frames out --------------------------------------------------------------------------

    def get_frame(self, max_size: int) -> tuple[int, memoryview, bool] | None:
        """The next STREAM frame's ``(offset, data, fin)`` with at most ``max_size`` bytes.

        Lost data goes first, then a lost lone FIN, then new data within the stream's and the
        connection's credit (which this consumes), then a FIN with no data. None when there
        is nothing to send; when credit ran out with data waiting, the credit object is
        marked blocked (see :meth:`SendCredit.get_blocked
        <trio_zttp.quic._flow.SendCredit.get_blocked>`).
        """
        state = self._state
        if state not in _SEND_ACTIVE:
            return None
        fin_offset = self._fin_offset
        pending = self._pending
        if pending and max_size > 0:
            start, stop = pending[0]
            if stop - start > max_size:
                stop = start + max_size
            pending.subtract(start, stop)
            fin = stop == fin_offset and not self._fin_acked
            if fin:
                self._fin_lost = False
                if not self._fin_sent:
                    # FIN written after this data was sent and lost: it rides with the
                    # retransmission, and that sends it (SEND -> DATA_SENT)
                    self._fin_sent = True
                    self._state = send_transition(state, SendEvent.SEND_FIN)
            return start, self._slice(start, stop), fin
        if self._fin_lost and not self._fin_acked and fin_offset is not None:
            self._fin_lost = False
            return fin_offset, _EMPTY, True

        offset = self._next_offset
        unsent = self._sealed_end + len(self._tail) - offset
        if unsent > 0 and max_size > 0:
            size = unsent if unsent < max_size else max_size
            credit = self._credit
            available = credit._limit - credit._used
            connection = self._connection
            if connection is not None:
                conn_available = connection._limit - connection._used
                if conn_available < available:
                    available = conn_available
            if size > available:
                size = available
            if size <= 0:
                credit.mark_blocked()
                if connection is not None:
                    connection.mark_blocked()
                return None
            stop = offset + size
            data = self._slice(offset, stop)
            self._next_offset = stop
            credit._used += size
            if connection is not None:
                connection._used += size
                if connection._used >= connection._limit and unsent > size:
                    connection.mark_blocked()
            if credit._used >= credit._limit and unsent > size:
                credit.mark_blocked()
            fin = stop == fin_offset
            if fin:
                self._fin_sent = True
                self._state = send_transition(state, SendEvent.SEND_FIN)
            elif state is _READY:
                self._state = _SEND
            return offset, data, fin
        if fin_offset == offset and not self._fin_sent:
            self._fin_sent = True
            self._state = send_transition(state, SendEvent.SEND_FIN)
            return offset, _EMPTY, True
        return None

    def write_frame(self, buf: bytearray, room: int,
                    id_bytes: bytes) -> tuple[int, int, bool, bool] | None:
        """Append the next STREAM frame (with the Length field) to ``buf``, in ``room`` bytes.

        :meth:`get_frame` and the frame's encoding in one call, the sender's hot path.
        ``id_bytes`` is the stream ID as a varint.

        Returns:
            ``(offset, length, fin, full)``, ``full`` when the data filled the room;
            :data:`NO_ROOM` when not even one byte of data fits (nothing written); None
            when there is nothing to send (as :meth:`get_frame`).
        """
        state = self._state
        offset = self._next_offset
        tail = self._tail
        sealed = self._sealed_end
        size = sealed + len(tail) - offset
        if 0 < size < 0x1000 and offset >= sealed and (state is _SEND or state is _READY) \
                and offset < 0x4000 and not self._pending._bounds and not self._fin_lost:
            # the usual frame: everything unsent, up to 4 KiB in the tail, with room to spare
            # (so not ``full``: the data stays below the capacity whatever width the Length
            # field takes) and within both credits: the header written inline
            head = (3 if offset >= 0x40 else 2 if offset else 1) + len(id_bytes)
            credit = self._credit
            connection = self._connection
            if head + size + 2 < room and size <= credit._limit - credit._used and (
                    connection is None or size <= connection._limit - connection._used):
                stop = offset + size
                self._next_offset = stop
                credit._used += size
                if connection is not None:
                    connection._used += size
                if stop == self._fin_offset:
                    self._fin_sent = True
                    self._state = _DATA_SENT  # SEND_FIN from READY or SEND (the table's move)
                    fin = True
                    buf.append(0x0F if offset else 0x0B)
                else:
                    if state is _READY:
                        self._state = _SEND
                    fin = False
                    buf.append(0x0E if offset else 0x0A)
                buf += id_bytes
                if offset:
                    if offset < 0x40:
                        buf.append(offset)
                    else:
                        buf += (offset | 0x4000).to_bytes(2)
                if size < 0x40:
                    buf.append(size)
                else:
                    buf += (size | 0x4000).to_bytes(2)
                buf += tail if offset == sealed else tail[offset - sealed:]
                return offset, size, fin, False
        return self._write_frame_general(buf, room, id_bytes)

    def _write_frame_general(self, buf: bytearray, room: int,
                             id_bytes: bytes) -> tuple[int, int, bool, bool] | None:
        """:meth:`write_frame` for every frame (its small-frame shortcut aside)."""
        state = self._state
        offset = self._next_offset
        room -= 1 + len(id_bytes)
        if offset:
            room -= (1 if offset < 0x40 else 2 if offset < 0x4000 else 4 if offset < 0x40000000
                     else 8)
        # room for the data after its Length field
        if room <= 0x40:
            capacity = room - 1
        elif room <= 0x4001:
            capacity = room - 2
        else:
            capacity = _data_capacity(room)
        if self._pending._bounds or self._fin_lost or (state is not _SEND and state is not _READY):
            # a retransmission, a lone FIN, or the end of the stream: the general way
            return self._write_frame_slow(buf, capacity, id_bytes)
        unsent = self._sealed_end + len(self._tail) - offset
        if unsent <= 0 or capacity < 1:
            if unsent <= 0 and self._fin_offset != offset:
                return None
            return self._write_frame_slow(buf, capacity, id_bytes)
        # new data, within the stream's and the connection's credit (get_frame, inlined)
        size = unsent if unsent < capacity else capacity
        credit = self._credit
        available = credit._limit - credit._used
        connection = self._connection
        if connection is not None:
            conn_available = connection._limit - connection._used
            if conn_available < available:
                available = conn_available
        if size > available:
            size = available
            if size <= 0:
                credit.mark_blocked()
                if connection is not None:
                    connection.mark_blocked()
                return None
        stop = offset + size
        self._next_offset = stop
        credit._used += size
        if connection is not None:
            connection._used += size
            if connection._used >= connection._limit and unsent > size:
                connection.mark_blocked()
        if credit._used >= credit._limit and unsent > size:
            credit.mark_blocked()
        fin = stop == self._fin_offset
        if fin:
            self._fin_sent = True
            self._state = _DATA_SENT  # SEND_FIN from READY or SEND (the table's move)
        elif state is _READY:
            self._state = _SEND
        _write_stream_header(buf, id_bytes, offset, size, fin)
        sealed = self._sealed_end
        if offset >= sealed:
            # all of it in the tail (small writes not sealed into a chunk yet): copied from
            # there, the tail stays as it is (a retransmission's _slice seals it)
            tail = self._tail
            if offset == sealed and size == len(tail):
                buf += tail
            else:
                buf += tail[offset - sealed:stop - sealed]
        else:
            buf += self._slice(offset, stop)
        return offset, size, fin, size >= capacity

    def _write_frame_slow(self, buf: bytearray, capacity: int,
                          id_bytes: bytes) -> tuple[int, int, bool, bool] | None:
        if capacity < 1:
            return NO_ROOM
        frame = self.get_frame(capacity)
        if frame is None:
            return None
        offset, data, fin = frame
        length = len(data)
        _write_stream_header(buf, id_bytes, offset, length, fin)
        buf += data
        return offset, length, fin, length >= capacity

    def get_reset(self) -> tuple[int, int] | None:
        """``(error_code, final_size)`` for a RESET_STREAM frame to send, once; else None."""
        if not self._reset_pending or self._reset_code is None or self._fin_offset is None:
            return None
        self._reset_pending = False
        return self._reset_code, self._fin_offset

    # -- fate of frames ----------------------------------------------------------------------

    def on_data_acked(self, offset: int, length: int, fin: bool) -> bool:
        """A STREAM frame ``[offset, offset + length)`` (with ``fin``) was acknowledged.

        Returns :attr:`is_finished`.
        """
        state = self._state
        if state is not _SEND and state is not _DATA_SENT:
            return state is _DATA_RECVD or state is _RESET_RECVD
        end = offset + length
        prefix = self._acked_prefix
        if fin and offset <= prefix and end == self._fin_offset:
            # the prefix reaches the FIN: everything is acknowledged (a small stream sent and
            # acknowledged at once, or the last frame of a stream acknowledged in order);
            # whatever was pending or acknowledged out of order lies below the end
            self._acked_prefix = end
            self._fin_acked = True
            self._fin_lost = False
            self._state = (_DATA_RECVD if state is _DATA_SENT
                           else send_transition(state, SendEvent.ALL_DATA_ACKED))
            if self._pending._bounds:
                self._pending.clear()
            self._chunks = NO_CHUNKS
            self._chunk_starts = NO_CHUNK_STARTS
            self._first = 0
            if self._acked._bounds:
                self._acked.clear()
            return True
        if end > prefix:
            if self._pending._bounds:  # RangeSet truthiness without the call
                self._pending.subtract(offset, end)
            acked = self._acked  # acknowledged ranges above the prefix only
            if offset <= prefix:
                # the prefix grows (the usual case: ACKs arrive in order)
                if acked._bounds:
                    # it may reach ranges acknowledged out of order: take them in
                    acked.add(prefix, end)
                    end = acked.shift()[1]
                self._acked_prefix = end
                # release the chunks the prefix passed (the first check of _release, inline)
                starts = self._chunk_starts
                i = self._first + 1
                if (starts[i] if i < len(starts) else self._sealed_end) <= end:
                    self._release()
            else:
                if acked is NO_RANGES:
                    acked = self._acked = RangeSet()
                acked.add(offset, end)
        if fin:
            self._fin_acked = True
            self._fin_lost = False
        if self._fin_acked and self._acked_prefix == self._fin_offset:
            self._state = (_DATA_RECVD if state is _DATA_SENT
                           else send_transition(state, SendEvent.ALL_DATA_ACKED))
            self._chunks = NO_CHUNKS
            self._chunk_starts = NO_CHUNK_STARTS
            self._first = 0
            self._acked.clear()
            return True
        return False

    def on_data_lost(self, offset: int, length: int, fin: bool) -> None:
        """A STREAM frame was declared lost: queue what of it is not acknowledged."""
        if self._state not in _SEND_WAITING_ACKS:
            return
        end = offset + length
        if end > self._acked_prefix:
            start = offset if offset > self._acked_prefix else self._acked_prefix
            pending = self._pending
            if pending is NO_RANGES:
                pending = self._pending = RangeSet()
            pending.add(start, end)
            for acked_start, acked_stop in self._acked.intersection(start, end):
                pending.subtract(acked_start, acked_stop)
        if fin and not self._fin_acked:
            self._fin_lost = True

    def on_max_stream_data(self, limit: int) -> bool:
        """The peer's MAX_STREAM_DATA; True if it raised the limit."""
        return self._credit.on_max(limit)

    def get_data_blocked(self) -> int | None:
        """The limit for a STREAM_DATA_BLOCKED frame, once per limit, while blocked."""
        if self._state not in _SEND_ACTIVE:
            return None
        return self._credit.get_blocked()

    def on_reset_acked(self) -> None:
        """The RESET_STREAM frame was acknowledged."""
        if self._state is _RESET_SENT:
            self._state = send_transition(self._state, SendEvent.RESET_ACKED)

    def on_reset_lost(self) -> None:
        """The RESET_STREAM frame was lost: :meth:`get_reset` returns it again."""
        if self._state is _RESET_SENT:
            self._reset_pending = True

    # -- buffer internals --------------------------------------------------------------------

    def _append_chunk(self, chunk: memoryview) -> None:
        if self._chunks is NO_CHUNKS:  # the stream's own lists, at its first chunk
            self._chunks = []
            self._chunk_starts = []
        self._chunks.append(chunk)
        self._chunk_starts.append(self._sealed_end)
        self._sealed_end += chunk.nbytes

    def _seal(self) -> None:
        if self._tail:
            self._append_chunk(memoryview(bytes(self._tail)))
            self._tail.clear()

    def _slice(self, start: int, stop: int) -> memoryview:
        if stop > self._sealed_end:
            self._seal()
        starts = self._chunk_starts
        chunks = self._chunks
        i = bisect_right(starts, start, self._first) - 1
        base = starts[i]
        chunk = chunks[i]
        if stop - base <= chunk.nbytes:
            return chunk[start - base : stop - base]
        parts = [chunk[start - base :]]
        while True:
            i += 1
            base = starts[i]
            chunk = chunks[i]
            if stop - base <= chunk.nbytes:
                parts.append(chunk[: stop - base])
                return memoryview(b"".join(parts))
            parts.append(chunk)

    def _release(self) -> None:
        prefix = self._acked_prefix
        starts = self._chunk_starts
        chunks = self._chunks
        n = len(chunks)
        i = self._first
        while i < n:
            end = starts[i + 1] if i + 1 < n else self._sealed_end
            if end > prefix:
                break
            chunks[i] = _EMPTY
            i += 1
        if i > 32 and 2 * i > n:
            del chunks[:i]
            del starts[:i]
            i = 0
        self._first = i
