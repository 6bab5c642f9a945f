"""QUIC streams as trio streams.

:class:`QuicStream` (bidirectional) is a :class:`trio.abc.HalfCloseableStream`;
:class:`QuicSendStream` and :class:`QuicReceiveStream` are the two ends of a
unidirectional stream.  All three share :class:`_StreamCore`, which holds the state and
the behaviour; the public classes only pick which methods exist.

Flow control reaches the application: received data stays buffered here until
``receive_some`` takes it, and only then is the engine told
(``consume_stream_data``) that it may extend credit, so a reader that stops reading
stops the peer.  ``send_all`` hands the engine at most ``stream_send_capacity`` bytes at
a time and waits for more credit, so a fast writer waits instead of filling memory.

Cancellation (DESIGN.md):

* ``receive_some`` cancelled: nothing on the wire, buffered data stays for the next read.
* ``send_all`` cancelled after part of its data went to the connection: RESET_STREAM
  with the connection's ``stream_cancel_error_code``; the stream is broken afterwards.
  Cancelled before any byte was taken: nothing happens.
* ``async with stream`` left by an exception or cancellation: RESET_STREAM, plus
  STOP_SENDING if the peer may still send.  Left normally: :meth:`aclose`.
* :meth:`aclose`: FIN if not sent yet (RESET_STREAM instead if a ``send_all`` was cut
  short by the close), STOP_SENDING if the peer may still send; unread data is dropped.
"""

from __future__ import annotations

import operator
from types import TracebackType
from typing import TYPE_CHECKING, final

import trio

from ._chunks import ChunkBuffer
from ._conn_types import unpark
from .errors import StreamResetError, StreamStoppedError

if TYPE_CHECKING:
    from .connection import QuicConnection

__all__ = ["QuicReceiveStream", "QuicSendStream", "QuicStream"]

_checkpoint_if_cancelled = trio.lowlevel.checkpoint_if_cancelled
_cancel_shielded_checkpoint = trio.lowlevel.cancel_shielded_checkpoint


class _StreamCore:
    """State and behaviour of one QUIC stream on the trio side."""

    __slots__ = (
        "_conn",
        "_sid",
        "_can_send",
        "_can_receive",
        "_closed",
        "_forgotten",
        # receive half
        "_buffer",
        "_eof",
        "_eof_read",
        "_reset_code",
        "_recv_stopped",
        "_receiving",
        "_recv_lot",
        # send half
        "_fin_sent",
        "_send_broken",
        "_user_reset",
        "_stop_code",
        "_sending",
        "_partial_send",
        "_send_lot",
    )

    def __init__(
        self, connection: QuicConnection, stream_id: int, *, can_send: bool, can_receive: bool
    ) -> None:
        self._conn = connection
        self._sid = stream_id
        self._can_send = can_send
        self._can_receive = can_receive
        self._closed = False
        self._forgotten = False
        self._buffer = ChunkBuffer()
        self._eof = not can_receive
        self._eof_read = not can_receive
        self._reset_code: int | None = None
        self._recv_stopped = False
        self._receiving = False
        self._recv_lot = trio.lowlevel.ParkingLot()
        self._fin_sent = not can_send
        self._send_broken = False
        self._user_reset = False
        self._stop_code: int | None = None
        self._sending = False
        self._partial_send = False
        self._send_lot = trio.lowlevel.ParkingLot()

    # -- shared -------------------------------------------------------------------------------

    @property
    def stream_id(self) -> int:
        """The QUIC stream ID."""
        return self._sid

    @property
    def connection(self) -> QuicConnection:
        """The connection this stream belongs to."""
        return self._conn

    def _maybe_forget(self) -> None:
        # Drop the connection's reference once neither half can produce anything more.
        if self._forgotten:
            return
        send_done = self._fin_sent or self._send_broken or self._stop_code is not None
        recv_done = self._eof_read or self._recv_stopped or self._reset_code is not None
        if self._closed or (send_done and recv_done):
            self._forgotten = True
            self._conn._forget_stream(self._sid)

    def _discard_buffer(self) -> None:
        if self._buffer.size:
            self._conn._consume(self._sid, self._buffer.clear())

    # -- events from the connection -----------------------------------------------------------

    def _on_data(self, data: bytes, end_stream: bool) -> None:
        if self._closed or self._recv_stopped or self._reset_code is not None or self._eof:
            if data:
                self._conn._consume(self._sid, len(data))
            return
        if data:
            self._buffer.append(data)
        if end_stream:
            self._eof = True
        if unpark(self._recv_lot):
            self._conn._woke = True

    def _on_reset(self, error_code: int) -> None:
        if self._eof_read or self._reset_code is not None:
            return
        self._reset_code = error_code
        self._discard_buffer()
        if unpark(self._recv_lot):
            self._conn._woke = True
        self._maybe_forget()

    def _on_stop_sending(self, error_code: int) -> None:
        if self._stop_code is None:
            self._stop_code = error_code
        if unpark(self._send_lot):
            self._conn._woke = True
        self._maybe_forget()

    def _on_capacity(self) -> None:
        if unpark(self._send_lot):
            self._conn._woke = True

    def _on_connection_closed(self) -> None:
        self._recv_lot.unpark_all()
        self._send_lot.unpark_all()

    # -- receive half ---------------------------------------------------------------------------


    async def _receive_some(self, max_bytes: int | None) -> bytes:
        if max_bytes is not None:
            max_bytes = operator.index(max_bytes)
            if max_bytes < 1:
                raise ValueError("max_bytes must be >= 1")
        if self._receiving:
            raise trio.BusyResourceError("another task is already receiving on this stream")
        self._receiving = True
        try:
            await _checkpoint_if_cancelled()
            waited = False
            while True:
                if self._closed:
                    error: BaseException = trio.ClosedResourceError("stream was closed")
                elif self._recv_stopped:
                    error = trio.ClosedResourceError("stop_sending() was called on this stream")
                elif self._buffer.size:
                    data = self._buffer.take(max_bytes)
                    if self._conn._consume(self._sid, len(data)):
                        self._conn._settle()  # the new credit leaves now
                    if not waited:
                        await _cancel_shielded_checkpoint()
                    return data
                elif self._eof:
                    if not self._eof_read:
                        self._eof_read = True
                        self._maybe_forget()
                    if not waited:
                        await _cancel_shielded_checkpoint()
                    return b""
                elif self._reset_code is not None:
                    error = StreamResetError(stream_id=self._sid, error_code=self._reset_code)
                else:
                    closed = self._conn._stream_error()
                    if closed is None:
                        self._conn._settle()
                        await self._recv_lot.park()
                        waited = True
                        continue
                    error, closed = closed, None
                if not waited:
                    await _cancel_shielded_checkpoint()
                try:
                    raise error
                finally:
                    del error  # the traceback holds this frame: no cycle through it
        finally:
            self._receiving = False

    # -- send half --------------------------------------------------------------------------------

    def _send_error(self) -> BaseException | None:
        if self._closed:
            return trio.ClosedResourceError("stream was closed")
        if self._stop_code is not None:
            return StreamStoppedError(stream_id=self._sid, error_code=self._stop_code)
        if self._user_reset:
            return trio.ClosedResourceError("reset() was called on this stream")
        if self._send_broken:
            return trio.BrokenResourceError("stream was reset after a cancelled or failed send")
        if self._fin_sent:
            return trio.ClosedResourceError("send_eof() was called on this stream")
        return self._conn._stream_error()

    def _claim_send(self) -> None:
        if self._sending:
            raise trio.BusyResourceError("another task is already sending on this stream")
        self._sending = True

    async def _send_all(self, data: bytes | bytearray | memoryview) -> None:
        self._claim_send()
        try:
            await _checkpoint_if_cancelled()
            error = self._send_error()
            if error is not None:
                await _cancel_shielded_checkpoint()
                try:
                    raise error
                finally:
                    del error  # the traceback holds this frame: no cycle through it
            total = len(data)
            if not total:
                await _cancel_shielded_checkpoint()
                return
            conn = self._conn
            sid = self._sid
            view: memoryview | None = None
            pos = 0
            waited = False
            while True:
                capacity = conn._send_capacity(sid)
                if capacity > 0:
                    n = min(capacity, total - pos)
                    if n == total and type(data) is bytes:
                        chunk = data
                    else:
                        if view is None:
                            view = memoryview(data).cast("B")
                        chunk = bytes(view[pos : pos + n])
                    conn._send_stream_data(sid, chunk)
                    pos += n
                    if pos == total:
                        break
                    self._partial_send = True
                try:
                    await conn._wait_send_capacity(self)
                except trio.Cancelled:
                    if pos:
                        self._abort_send()
                    raise
                waited = True
                error = self._send_error()
                if error is not None:
                    try:
                        raise error
                    finally:
                        del error  # the traceback holds this frame: no cycle through it
            conn._settle()
            if not waited:
                await _cancel_shielded_checkpoint()
        finally:
            self._partial_send = False
            self._sending = False

    def _abort_send(self) -> None:
        if self._send_broken or self._stop_code is not None or self._closed:
            return
        self._send_broken = True
        self._conn._reset_stream(self._sid, self._conn.stream_cancel_error_code)
        self._maybe_forget()

    async def _wait_send_all_might_not_block(self) -> None:
        self._claim_send()
        try:
            await _checkpoint_if_cancelled()
            waited = False
            while True:
                error = self._send_error()
                if error is not None:
                    if not waited:
                        await _cancel_shielded_checkpoint()
                    try:
                        raise error
                    finally:
                        del error  # the traceback holds this frame: no cycle through it
                if self._conn._send_capacity(self._sid) > 0:
                    break
                await self._conn._wait_send_capacity(self)
                waited = True
            if not waited:
                await _cancel_shielded_checkpoint()
        finally:
            self._sending = False

    async def _send_eof(self) -> None:
        self._claim_send()
        try:
            await _checkpoint_if_cancelled()
            if self._fin_sent and not self._closed and self._stop_code is None:
                await _cancel_shielded_checkpoint()
                return
            error = self._send_error()
            if error is None:
                self._fin_sent = True
                self._conn._send_stream_data(self._sid, b"", end_stream=True)
                self._maybe_forget()
                self._conn._settle()
            await _cancel_shielded_checkpoint()
            if error is not None:
                try:
                    raise error
                finally:
                    del error  # the traceback holds this frame: no cycle through it
        finally:
            self._sending = False

    # -- closing ------------------------------------------------------------------------------

    def _close(self, *, abort: bool) -> None:
        if self._closed:
            return
        conn = self._conn
        code = conn.stream_cancel_error_code
        alive = conn._stream_error() is None
        if alive and self._can_send and not self._send_broken and self._stop_code is None:
            if abort or self._partial_send:
                self._send_broken = True
                conn._reset_stream(self._sid, code)
            elif not self._fin_sent:
                self._fin_sent = True
                conn._send_stream_data(self._sid, b"", end_stream=True)
                conn._poke()
        if (alive and self._can_receive and not self._eof and not self._recv_stopped
                and self._reset_code is None):
            conn._stop_sending(self._sid, code)
        self._closed = True
        self._discard_buffer()
        self._recv_lot.unpark_all()
        self._send_lot.unpark_all()
        self._maybe_forget()

    def _reset(self, error_code: int) -> None:
        if not self._can_send:
            raise TypeError("cannot reset the receive-only end of a unidirectional stream")
        if self._closed or self._send_broken or self._stop_code is not None:
            return
        self._user_reset = True
        self._send_broken = True
        if self._conn._stream_error() is None:
            self._conn._reset_stream(self._sid, error_code)
        self._send_lot.unpark_all()
        self._maybe_forget()

    def _stop(self, error_code: int) -> None:
        if not self._can_receive:
            raise TypeError("cannot stop the send-only end of a unidirectional stream")
        if self._closed or self._recv_stopped:
            return
        if not self._eof and self._reset_code is None and self._conn._stream_error() is None:
            self._conn._stop_sending(self._sid, error_code)
        self._recv_stopped = True
        self._discard_buffer()
        self._recv_lot.unpark_all()
        self._maybe_forget()

    async def _aclose(self) -> None:
        self._close(abort=False)
        await trio.lowlevel.checkpoint()

    async def _aexit(self, exc_value: BaseException | None) -> None:
        if exc_value is None:
            await self._aclose()
        else:
            self._close(abort=True)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} id={self._sid}>"


@final
class QuicStream(_StreamCore, trio.abc.HalfCloseableStream):
    """A bidirectional QUIC stream, as a trio :class:`~trio.abc.HalfCloseableStream`.

    Made by :meth:`QuicConnection.open_stream` and :meth:`QuicConnection.accept_stream`,
    never directly.  ``send_eof`` sends FIN; leaving ``async with stream`` by an exception
    resets the stream (see the module docstring for every cancellation rule).
    """

    __slots__ = ()

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        """Send ``data``; waits for flow-control credit when the peer is not reading.

        Raises:
            trio.BusyResourceError: Another task is sending on this stream.
            trio.ClosedResourceError: This stream was closed or ``send_eof`` was called.
            StreamStoppedError: The peer sent STOP_SENDING.
            ConnectionClosedError: The connection ended.
        """
        await self._send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        """Return when the connection would take at least one byte without waiting."""
        await self._wait_send_all_might_not_block()

    async def send_eof(self) -> None:
        """Send FIN: the peer reads EOF after the data already sent.  Idempotent."""
        await self._send_eof()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        """Return up to ``max_bytes`` bytes (all buffered data if None); ``b""`` at EOF.

        Raises:
            trio.BusyResourceError: Another task is receiving on this stream.
            trio.ClosedResourceError: This stream was closed.
            StreamResetError: The peer reset the stream.
            ConnectionClosedError: The connection ended before EOF.
        """
        return await self._receive_some(max_bytes)

    def reset(self, error_code: int) -> None:
        """Abandon the send side now with RESET_STREAM(``error_code``)."""
        self._reset(error_code)

    def stop_sending(self, error_code: int) -> None:
        """Ask the peer to stop sending (STOP_SENDING); unread data is dropped.

        Later ``receive_some`` calls raise :class:`trio.ClosedResourceError`.
        """
        self._stop(error_code)

    async def aclose(self) -> None:
        """FIN if not yet sent, STOP_SENDING if the peer may still send; idempotent."""
        await self._aclose()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self._aexit(exc_value)


@final
class QuicSendStream(_StreamCore, trio.abc.SendStream):
    """The sending end of a unidirectional stream.

    Made by :meth:`QuicConnection.open_unidirectional_stream`.
    """

    __slots__ = ()

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        """Send ``data``; see :meth:`QuicStream.send_all`."""
        await self._send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        """Return when the connection would take at least one byte without waiting."""
        await self._wait_send_all_might_not_block()

    async def send_eof(self) -> None:
        """Send FIN.  Idempotent."""
        await self._send_eof()

    def reset(self, error_code: int) -> None:
        """Abandon the stream now with RESET_STREAM(``error_code``)."""
        self._reset(error_code)

    async def aclose(self) -> None:
        """Send FIN if not yet sent; idempotent."""
        await self._aclose()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self._aexit(exc_value)


@final
class QuicReceiveStream(_StreamCore, trio.abc.ReceiveStream):
    """The receiving end of a peer's unidirectional stream.

    Made by :meth:`QuicConnection.accept_unidirectional_stream`.
    """

    __slots__ = ()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        """Return up to ``max_bytes`` bytes; see :meth:`QuicStream.receive_some`."""
        return await self._receive_some(max_bytes)

    def stop_sending(self, error_code: int) -> None:
        """Ask the peer to stop sending (STOP_SENDING)."""
        self._stop(error_code)

    async def aclose(self) -> None:
        """STOP_SENDING if the peer may still send; idempotent."""
        await self._aclose()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self._aexit(exc_value)
