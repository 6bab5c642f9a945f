"""One HTTP/3 request stream on the trio side: :class:`StreamState`.

Buffers and waiters of a request stream, shared by the public views
(:mod:`.h3_request`): the received DATA payloads (credited to the peer as they are read),
the header sections, the HTTP datagram queue, and the send side, which hands
``h3.Connection`` DATA only as the peer's flow-control credit allows.  The engine
(:mod:`.h3_engine`) fills it from inside the QUIC driver.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Final

import trio

from .. import h3
from ._chunks import ChunkBuffer
from .errors import StreamResetError, StreamStoppedError

if TYPE_CHECKING:
    from .h3_engine import H3Engine

__all__ = [
    "DATAGRAM_QUEUE_SIZE",
    "H3_INTERNAL_ERROR",
    "H3_NO_ERROR",
    "H3_REQUEST_CANCELLED",
    "StreamState",
]

H3_NO_ERROR: Final = int(h3.ErrorCode.H3_NO_ERROR)
H3_INTERNAL_ERROR: Final = int(h3.ErrorCode.H3_INTERNAL_ERROR)
H3_REQUEST_CANCELLED: Final = int(h3.ErrorCode.H3_REQUEST_CANCELLED)

DATAGRAM_QUEUE_SIZE: Final = 128
"""HTTP datagrams kept per request stream until ``receive_datagram`` takes them; later ones
are dropped (and counted) while the queue is full."""


_SEND_DATA: Final = h3.Connection.send_data
_RESET_STREAM: Final = h3.Connection.reset_stream
_STOP_SENDING: Final = h3.Connection.stop_sending

_checkpoint_if_cancelled = trio.lowlevel.checkpoint_if_cancelled
_cancel_shielded_checkpoint = trio.lowlevel.cancel_shielded_checkpoint
_ParkingLot = trio.lowlevel.ParkingLot

NO_LOT: Final = _ParkingLot()
"""Stands for a stream's parking lot until a task first waits there: most request streams
never wait to send or for a datagram, and a server's often never waits to receive.  Shared
and always empty (nobody parks on it: the waiting code makes the stream's own lot first),
so waking it is a no-op."""


class StreamState:
    """One request stream as the trio side sees it: buffers, waiters and send state.

    The public objects (``H3Request``, ``H3Response``, ``H3RequestStream``, ``H3Stream``)
    are views on it.  ``stream_id`` is None for a client stream whose request header has
    not been sent yet.
    """

    # No __slots__: most fields keep their class-level default for the stream's whole life
    # (a request's is made per request, and 26 slot stores cost more than the instance dict
    # of the few that change).  Only the mutable containers are made per instance.
    raw_in: int = 0
    credited: int = 0
    #: the request (server) or final response (client) header section
    headers: h3.Headers | None = None
    #: interim (1xx) header sections, in order (a new tuple per section: rare)
    interim: tuple[h3.Headers, ...] = ()
    eof: bool = False
    eof_read: bool = False
    trailers: h3.Headers | None = None
    #: the peer reset its sending side (or this layer aborted the stream)
    reset_code: int | None = None
    #: the peer sent STOP_SENDING
    stop_code: int | None = None
    aborted: bool = False
    datagrams_dropped: int = 0
    # each made on first use (see NO_LOT) and kept once made
    recv_lot: trio.lowlevel.ParkingLot = NO_LOT
    send_lot: trio.lowlevel.ParkingLot = NO_LOT
    datagram_lot: trio.lowlevel.ParkingLot = NO_LOT
    request_sent: bool = False
    final_sent: bool = False
    fin_sent: bool = False
    send_broken: bool = False
    closed: bool = False
    receiving: bool = False
    sending: bool = False
    is_connect: bool = False

    def __init__(self, engine: H3Engine, stream_id: int | None) -> None:
        self.engine = engine
        self.stream_id = stream_id
        self.buffer = ChunkBuffer()
        self.datagrams: deque[bytes] = deque()

    @property
    def sid(self) -> int:
        sid = self.stream_id
        if sid is None:
            raise RuntimeError("send the request header first")
        return sid

    def _recv_lot(self) -> trio.lowlevel.ParkingLot:
        lot = self.recv_lot
        if lot is NO_LOT:
            lot = self.recv_lot = _ParkingLot()
        return lot

    def parking_send_lot(self) -> trio.lowlevel.ParkingLot:
        """The lot a sender waiting for flow-control credit parks in (made on first use)."""
        lot = self.send_lot
        if lot is NO_LOT:
            lot = self.send_lot = _ParkingLot()
        return lot

    # -- called by the engine (in the driver) ----------------------------------------------

    def wake_all(self) -> None:
        if self.recv_lot is not NO_LOT:
            self.recv_lot.unpark_all()
        if self.send_lot is not NO_LOT:
            self.send_lot.unpark_all()
        if self.datagram_lot is not NO_LOT:
            self.datagram_lot.unpark_all()

    # -- receive ---------------------------------------------------------------------------

    def recv_error(self) -> BaseException | None:
        if self.closed:
            return trio.ClosedResourceError("the request stream was closed")
        if self.reset_code is not None:
            return StreamResetError(stream_id=self.sid, error_code=self.reset_code)
        return self.engine.connection_error()


    def _take_now(self, max_bytes: int | None) -> bytes | None:
        """Buffered content (``b""`` at the end), None if it must wait; raises the error."""
        if self.closed:
            raise trio.ClosedResourceError("the request stream was closed")
        if self.buffer.size:
            data = self.buffer.take(max_bytes)
            self.engine.credit(self)
            return data
        if self.eof:
            self.eof_read = True
            return b""
        error = self.recv_error()
        if error is not None:
            try:
                raise error
            finally:
                del error  # the traceback holds this frame: no cycle through it
        return None

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if max_bytes is not None and max_bytes < 1:
            raise ValueError("max_bytes must be >= 1")
        return await self._receive(max_bytes, whole=False, max_size=None)

    async def receive_all(self, max_size: int | None = None) -> bytes:
        """The content up to its end: one checkpoint when all of it is already buffered.

        Raises:
            ValueError: It is larger than ``max_size``.
        """
        return await self._receive(None, whole=True, max_size=max_size)

    async def _receive(self, max_bytes: int | None, *, whole: bool,
                       max_size: int | None) -> bytes:
        if self.receiving:
            raise trio.BusyResourceError("another task is already receiving on this stream")
        self.receiving = True
        try:
            await _checkpoint_if_cancelled()
            waited = False
            parts: list[bytes] = []
            size = 0
            try:
                while True:
                    data = self._take_now(max_bytes)
                    if data is None:
                        waited = True
                        self.engine.settle()
                        await self._recv_lot().park()
                        continue
                    if not whole:
                        break
                    if not data:
                        data = b"".join(parts)
                        break
                    size += len(data)
                    if max_size is not None and size > max_size:
                        raise ValueError(f"the body is larger than max_size={max_size}")
                    parts.append(data)
            except BaseException:
                if not waited:
                    await _cancel_shielded_checkpoint()
                raise
            self.engine.settle_credit()
            if not waited:
                await _cancel_shielded_checkpoint()
            return data
        finally:
            self.receiving = False

    async def wait_headers(self) -> h3.Headers:
        """The header section (request or final response), once it arrived."""
        await _checkpoint_if_cancelled()
        self.engine.settle()  # typically the request just queued: it leaves now
        waited = False
        while self.headers is None:
            error = self.recv_error()
            if error is None and self.eof:
                error = trio.BrokenResourceError("the stream ended without a header section")
            if error is not None:
                if not waited:
                    await _cancel_shielded_checkpoint()
                try:
                    raise error
                finally:
                    del error  # the traceback holds this frame: no cycle through it
            await self._recv_lot().park()
            waited = True
        if not waited:
            await _cancel_shielded_checkpoint()
        return self.headers

    async def receive_datagram(self) -> bytes:
        await _checkpoint_if_cancelled()
        waited = False
        while not self.datagrams:
            if self.closed:
                error: BaseException | None = trio.ClosedResourceError(
                    "the request stream was closed"
                )
            elif self.eof:
                error = trio.EndOfChannel()
            else:
                error = self.recv_error()
            if error is not None:
                if not waited:
                    await _cancel_shielded_checkpoint()
                try:
                    raise error
                finally:
                    del error  # the traceback holds this frame: no cycle through it
            self.engine.settle()
            lot = self.datagram_lot
            if lot is NO_LOT:
                lot = self.datagram_lot = _ParkingLot()
            await lot.park()
            waited = True
        if not waited:
            await _cancel_shielded_checkpoint()
        return self.datagrams.popleft()

    # -- send ------------------------------------------------------------------------------

    def send_error(self) -> BaseException | None:
        if self.closed:
            return trio.ClosedResourceError("the request stream was closed")
        if self.stop_code is not None:
            return StreamStoppedError(stream_id=self.sid, error_code=self.stop_code)
        if self.aborted and self.reset_code is not None:
            return StreamResetError(stream_id=self.sid, error_code=self.reset_code)
        if self.send_broken:
            return trio.BrokenResourceError("the stream was reset after a cancelled send")
        if self.fin_sent:
            return trio.ClosedResourceError("the sending side of this stream is finished")
        return self.engine.connection_error()

    def claim_send(self) -> None:
        if self.sending:
            raise trio.BusyResourceError("another task is already sending on this stream")
        self.sending = True

    async def send_data(
        self, data: bytes | bytearray | memoryview, end_stream: bool = False
    ) -> None:
        """DATA frames as the peer's credit allows; FIN after them with ``end_stream``."""
        self.claim_send()
        try:
            await _checkpoint_if_cancelled()
            error = self.send_error()
            if error is not None:
                await _cancel_shielded_checkpoint()
                try:
                    raise error
                finally:
                    del error  # the traceback holds this frame: no cycle through it
            engine = self.engine
            sid = self.sid
            total = len(data)
            if not total:
                if end_stream:
                    self.fin_sent = True
                    engine.command(_SEND_DATA, sid, b"", True, settle=True)
                    engine.settle()
                await _cancel_shielded_checkpoint()
                return
            view: memoryview | None = None
            pos = 0
            waited = False
            while True:
                capacity = engine.send_capacity(sid)
                if capacity > 0:
                    n = min(capacity, total - pos)
                    if n == total and type(data) is bytes:
                        chunk = data
                    else:
                        if view is None:
                            view = memoryview(data).cast("B")
                        chunk = bytes(view[pos : pos + n])
                    pos += n
                    last = pos == total
                    if last and end_stream:
                        self.fin_sent = True
                    engine.command(_SEND_DATA, sid, chunk, last and end_stream, settle=True)
                    if last:
                        break
                try:
                    await engine.wait_capacity(self)
                except trio.Cancelled:
                    if pos:
                        self.abort_send()
                    raise
                waited = True
                error = self.send_error()
                if error is not None:
                    try:
                        raise error
                    finally:
                        del error  # the traceback holds this frame: no cycle through it
            engine.settle()
            if not waited:
                await _cancel_shielded_checkpoint()
        finally:
            self.sending = False

    def abort_send(self, error_code: int = H3_REQUEST_CANCELLED) -> None:
        """RESET_STREAM on our side (a cancelled send, or leaving by an exception)."""
        if self.send_broken or self.fin_sent or self.stop_code is not None or self.aborted:
            return
        self.send_broken = True
        if self.stream_id is not None and self.engine.connection_error() is None:
            self.engine.command(_RESET_STREAM, self.stream_id, error_code, quiet=True)
        self.send_lot.unpark_all()

    def abort_receive(self, error_code: int = H3_REQUEST_CANCELLED) -> None:
        """STOP_SENDING if the peer may still send; unread data is dropped."""
        if (
            self.stream_id is not None
            and not self.eof
            and self.reset_code is None
            and not self.aborted
            and self.engine.connection_error() is None
        ):
            self.engine.command(_STOP_SENDING, self.stream_id, error_code, quiet=True)
            self.eof = True  # nothing more will be delivered
        self.buffer.clear()
        if self.raw_in != self.credited:  # (else credit() finds nothing to report)
            self.engine.credit(self)

    def close(
        self,
        *,
        abort: bool,
        error_code: int = H3_REQUEST_CANCELLED,
        stop_error_code: int | None = None,
    ) -> None:
        """Done with the stream: FIN (or RESET_STREAM with ``error_code`` when aborting),
        STOP_SENDING (``stop_error_code``, default ``error_code``) if the peer may still
        send, then forget it.  Idempotent."""
        if self.closed:
            return
        if self.stream_id is not None:
            if abort:
                self.abort_send(error_code)
            elif (
                not self.fin_sent
                and not self.send_broken
                and self.stop_code is None
                and not self.aborted
                and self.engine.connection_error() is None
            ):
                self.fin_sent = True
                self.engine.command(_SEND_DATA, self.stream_id, b"", True, quiet=True)
            self.abort_receive(error_code if stop_error_code is None else stop_error_code)
        self.closed = True
        self.wake_all()
        self.engine.forget(self)

    # -- datagrams -------------------------------------------------------------------------

    async def send_datagram(self, data: bytes | bytearray | memoryview) -> None:
        await _checkpoint_if_cancelled()
        if not self.is_connect:
            await _cancel_shielded_checkpoint()
            raise RuntimeError("HTTP datagrams belong to CONNECT requests (RFC 9297 §2)")
        engine = self.engine
        if not engine.datagrams_enabled:
            if engine.peer_settings is None:
                await engine.received_settings()
            if not engine.datagrams_enabled and engine.connection_error() is None:
                await _cancel_shielded_checkpoint()
                raise RuntimeError(
                    "HTTP datagrams are not available on this connection: both sides must "
                    "send SETTINGS_H3_DATAGRAM=1 and the peer must take QUIC DATAGRAM frames"
                )
        error = self.send_error()
        if error is not None:
            await _cancel_shielded_checkpoint()
            try:
                raise error
            finally:
                del error  # the traceback holds this frame: no cycle through it
        engine.send_datagram_settled(self.sid, data if type(data) is bytes else bytes(data))
        await _cancel_shielded_checkpoint()

    def __repr__(self) -> str:
        return f"<StreamState id={self.stream_id}>"
