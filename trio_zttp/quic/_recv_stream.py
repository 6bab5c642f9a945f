"""The receiving part of a stream: reassembly, final size, flow control, reset (RFC 9000 §2.2,
§3.2, §4).

**Receive buffer.** One ``bytearray`` holds offsets from the read position up to the highest
byte received, out-of-order data written in place; a RangeSet records which parts arrived
beyond the contiguous prefix.  It never exceeds the flow-control window we advertised, and
the number of gaps is capped (``max_gaps``) so a peer cannot make the range bookkeeping grow
without bound.  Data that arrives in order with nothing buffered skips the buffer
(:meth:`RecvStream.receive_in_order`).  Re-exported by :mod:`._streams`.
"""

from __future__ import annotations

from typing import Final, final

from ._errors import FinalSizeError, ProtocolViolation
from ._flow import ReceiveWindow
from ._ranges import RangeSet
from ._stream_states import RecvEvent, RecvState, recv_transition

__all__ = ["RecvStream"]

NO_RANGES: Final = RangeSet()
"""The empty RangeSet streams share until they need one of their own (most never do): only
``add`` grows a RangeSet, and every ``add`` site swaps this one for a new one first; nothing
else mutates an empty RangeSet (``subtract``/``clear`` leave it empty)."""

# enum members bound once (a class attribute lookup on an enum is slow)
_RECV: Final = RecvState.RECV
_SIZE_KNOWN: Final = RecvState.SIZE_KNOWN
_R_DATA_RECVD: Final = RecvState.DATA_RECVD
_R_DATA_READ: Final = RecvState.DATA_READ
_R_RESET_RECVD: Final = RecvState.RESET_RECVD
_RECV_FINISHED: Final = (RecvState.DATA_READ, RecvState.RESET_READ)


@final
class RecvStream:
    """The receiving part of a stream: reassembly, final size, flow control, reset.

    Args:
        stream_id: the stream's ID.
        window: the initial MAX_STREAM_DATA we advertised.
        max_window: the autotuning ceiling for the stream window.
        connection: the connection-level receive window (MAX_DATA) this stream draws on.
        max_gaps: how many holes out-of-order data may leave before the peer is cut off.
    """

    __slots__ = (
        "_buf",
        "_connection",
        "_contig_end",
        "_fin_offset",
        "_highest",
        "_max_gaps",
        "_ranges",
        "_read_offset",
        "_reset_code",
        "_state",
        "_stopped",
        "_window",
        "stream_id",
    )

    def __init__(
        self,
        stream_id: int,
        window: int,
        *,
        max_window: int | None = None,
        connection: ReceiveWindow | None = None,
        max_gaps: int = 4096,
    ) -> None:
        self.stream_id = stream_id
        self._state = _RECV
        self._window = ReceiveWindow(window, max_window)
        self._connection = connection
        self._max_gaps = max_gaps
        self._buf = bytearray()
        self._read_offset = 0
        self._contig_end = 0
        self._highest = 0
        self._ranges = NO_RANGES  # received ranges above _contig_end (its own once needed)
        self._fin_offset: int | None = None
        self._reset_code: int | None = None
        self._stopped = False

    # -- introspection -----------------------------------------------------------------------

    @property
    def state(self) -> RecvState:
        return self._state

    @property
    def window(self) -> ReceiveWindow:
        """The stream-level receive window (our MAX_STREAM_DATA)."""
        return self._window

    @property
    def readable(self) -> int:
        """Bytes :meth:`read` can return now."""
        return self._contig_end - self._read_offset

    @property
    def read_offset(self) -> int:
        return self._read_offset

    @property
    def highest_received(self) -> int:
        return self._highest

    @property
    def final_size(self) -> int | None:
        return self._fin_offset

    @property
    def reset_error_code(self) -> int | None:
        return self._reset_code

    @property
    def at_eof(self) -> bool:
        """Everything up to FIN was read."""
        return self._state is _R_DATA_READ

    @property
    def is_finished(self) -> bool:
        """Terminal: all data read, or the reset delivered to the application."""
        return self._state in _RECV_FINISHED

    # -- frames in ---------------------------------------------------------------------------

    def _account(self, end: int) -> None:
        """The peer's highest offset grew to ``end``: charge both windows."""
        delta = end - self._highest
        window = self._window
        if end > window._limit:
            window.on_received(end)  # raises FlowControlError
        window._received = end  # the window's usage is always this stream's highest offset
        connection = self._connection
        if connection is not None:
            total = connection._received + delta
            if total > connection._limit:
                connection.on_received(total)  # raises FlowControlError
            connection._received = total
            if self._stopped:
                connection._consumed += delta
        self._highest = end

    def on_stream_frame(self, offset: int, data: bytes | memoryview, fin: bool = False) -> bool:
        """Take one STREAM frame; True if more data (or the end) became readable.

        Raises:
            FlowControlError: beyond the stream's or the connection's advertised limit.
            FinalSizeError: data beyond the final size, or a different final size.
            ProtocolViolation: too many gaps in out-of-order data.
        """
        length = len(data)
        end = offset + length
        fin_offset = self._fin_offset
        if fin:
            if fin_offset is not None and end != fin_offset:
                raise FinalSizeError(f"final size changed from {fin_offset} to {end}")
            if end < self._highest:
                raise FinalSizeError(f"final size {end} below data received up to {self._highest}")
        elif fin_offset is not None and end > fin_offset:
            raise FinalSizeError(f"data up to {end} beyond final size {fin_offset}")
        if end > self._highest:
            self._account(end)
        state = self._state
        if fin and fin_offset is None:
            self._fin_offset = end
            state = self._state = recv_transition(state, RecvEvent.RECV_FIN)
        if self._stopped or (state is not _RECV and state is not _SIZE_KNOWN):
            return False
        contig_end = self._contig_end
        grew = False
        if end > contig_end and length:
            start = offset
            if start < contig_end:
                data = memoryview(data)[contig_end - start :]
                start = contig_end
            buf = self._buf
            rel = start - self._read_offset
            if rel == len(buf):
                buf += data
            elif rel > len(buf):
                buf += bytes(rel - len(buf))
                buf += data
            else:
                buf[rel : rel + end - start] = data
            ranges = self._ranges  # data received above the contiguous prefix only
            if start == contig_end:
                if ranges:
                    # it may reach data that came out of order: take it in
                    ranges.add(start, end)
                    end = ranges.shift()[1]
                self._contig_end = end
                grew = True
            else:
                if ranges is NO_RANGES:
                    ranges = self._ranges = RangeSet()
                ranges.add(start, end)
                # holes: one before every range above the contiguous prefix
                if len(ranges) > self._max_gaps:
                    raise ProtocolViolation("too many gaps in received stream data")
        if self._fin_offset is not None and self._contig_end == self._fin_offset:
            self._state = recv_transition(state, RecvEvent.ALL_DATA_RECEIVED)
            self._ranges.clear()
            return True
        return grew

    def receive_in_order(self, offset: int, data: bytes | memoryview,
                         consume: bool) -> bytes | None:
        """A STREAM frame without FIN that continues the stream right where the application
        read up to, nothing else buffered: its data, read at once (no reassembly buffer).

        ``consume``: count the bytes as consumed (what :meth:`read` does).  Returns None,
        changing nothing, for any other frame: the caller then takes
        :meth:`on_stream_frame` and :meth:`read`.

        Raises:
            FlowControlError: beyond the stream's or the connection's advertised limit.
        """
        end = offset + len(data)
        # (RangeSet truthiness read from its bounds list: no __bool__ call on the hot path)
        if offset != self._read_offset or self._buf or self._ranges._bounds or not data \
                or self._fin_offset is not None or self._stopped or end < self._highest:
            return None
        # nothing buffered and no final size: only an empty frame can have reached beyond the
        # read offset, and not beyond this frame's end (checked). _account, inline (not
        # stopped: checked), then read()'s consumption
        window = self._window
        if end > window._limit:
            window.on_received(end)  # raises FlowControlError
        connection = self._connection
        if connection is not None:
            total = connection._received + end - self._highest
            if total > connection._limit:
                connection.on_received(total)  # raises FlowControlError
            connection._received = total
            if consume:
                connection._consumed += end - offset
        window._received = self._highest = self._contig_end = self._read_offset = end
        if consume:
            window._consumed += end - offset
        return bytes(data)

    def receive_last(self, offset: int, data: bytes | memoryview,
                     consume: bool) -> bytes | None:
        """A STREAM frame with FIN that continues the stream right where the application
        read up to, nothing else buffered (a small request or response in one frame): its
        data, read at once; the stream ends up in DATA_READ.

        :meth:`on_stream_frame` then :meth:`read` in one step, without the reassembly buffer.
        ``consume``: count the bytes as consumed (what :meth:`read` does).  Returns None,
        changing nothing, for any other frame.

        Raises:
            FlowControlError: beyond the stream's or the connection's advertised limit.
        """
        end = offset + len(data)
        # (RangeSet truthiness read from its bounds list: no __bool__ call on the hot path)
        if offset != self._read_offset or self._buf or self._ranges._bounds \
                or end < self._highest \
                or self._fin_offset is not None or self._stopped or self._state is not _RECV:
            return None
        window = self._window
        connection = self._connection
        if end > self._highest:
            # _account, inline (not stopped: checked)
            if end > window._limit:
                window.on_received(end)  # raises FlowControlError
            if connection is not None:
                total = connection._received + end - self._highest
                if total > connection._limit:
                    connection.on_received(total)  # raises FlowControlError
                connection._received = total
            window._received = self._highest = end
        self._fin_offset = self._contig_end = self._read_offset = end
        # RECV -> SIZE_KNOWN -> DATA_RECVD -> DATA_READ (RFC 9000 §3.2)
        self._state = _R_DATA_READ
        if consume:
            n = end - offset
            window._consumed += n
            if connection is not None:
                connection._consumed += n
        return bytes(data)

    def on_reset(self, error_code: int, final_size: int) -> bool:
        """Take a RESET_STREAM; True if the application should now learn of the reset.

        Raises:
            FlowControlError: ``final_size`` beyond the advertised limit.
            FinalSizeError: ``final_size`` differs from a known one or is below data received.
        """
        fin_offset = self._fin_offset
        if fin_offset is not None and final_size != fin_offset:
            raise FinalSizeError(f"final size changed from {fin_offset} to {final_size}")
        if final_size < self._highest:
            raise FinalSizeError(
                f"final size {final_size} below data received up to {self._highest}"
            )
        if final_size > self._highest:
            self._account(final_size)
        self._fin_offset = final_size
        state = self._state
        new_state = recv_transition(state, RecvEvent.RECV_RESET)
        self._state = new_state
        if new_state is not _R_RESET_RECVD or state is _R_RESET_RECVD:
            return False
        self._reset_code = error_code
        if not self._stopped:
            # the rest will never be read: give its connection credit back
            unread = final_size - self._read_offset
            if self._connection is not None:
                self._connection.on_consumed(unread)
        self._buf = bytearray()
        self._ranges.clear()
        self._contig_end = self._read_offset
        return True

    # -- application side --------------------------------------------------------------------

    def read(self, max_bytes: int = -1) -> bytes:
        """Up to ``max_bytes`` in-order bytes (all readable ones if negative).

        Returns ``b""`` when nothing is readable, at the end of the stream (then
        :attr:`at_eof`), and after a reset (then :attr:`reset_error_code` is set; the first
        such read moves the state to RESET_READ).
        """
        state = self._state
        if state is _R_RESET_RECVD:
            self._state = recv_transition(state, RecvEvent.APP_READ_RESET)
            return b""
        n = self._contig_end - self._read_offset
        if 0 <= max_bytes < n:
            n = max_bytes
        data = b""
        if n > 0:
            buf = self._buf
            if n == len(buf):
                data = bytes(buf)
                buf.clear()
            else:
                view = memoryview(buf)
                data = view[:n].tobytes()
                view.release()
                del buf[:n]
            self._read_offset += n
            self._window.on_consumed(n)
            if self._connection is not None:
                self._connection.on_consumed(n)
        if state is _R_DATA_RECVD and self._read_offset == self._fin_offset:
            self._state = recv_transition(state, RecvEvent.APP_READ_ALL)
        return data

    def stop_sending(self) -> None:
        """The application will read no more: drop buffered data, discard what arrives.

        Flow-control credit for dropped and future data is returned to the connection (the
        connection sends STOP_SENDING; the peer then resets the stream).
        """
        if self._stopped:
            return
        self._stopped = True
        unread = self._highest - self._read_offset
        if unread and self._connection is not None:
            self._connection.on_consumed(unread)
        self._buf = bytearray()
        self._ranges.clear()
        self._contig_end = self._read_offset

    def get_max_stream_data(self, now: float, rtt: float) -> int | None:
        """A new MAX_STREAM_DATA value when half the window was read, else None.

        Autotunes the window (see :class:`ReceiveWindow <trio_zttp.quic._flow.ReceiveWindow>`)
        and, when it grew, makes sure the connection window is at least 1.5 times as large.
        Nothing is sent once the final size is known or reading was stopped.
        """
        if self._state is not _RECV or self._stopped:
            return None
        window = self._window
        before = window.window
        update = window.get_update(now, rtt)
        if window.window > before and self._connection is not None:
            self._connection.ensure_minimum_window(window.window * 3 // 2)
        return update
