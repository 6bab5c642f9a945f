"""The objects HTTP/3 users hold: requests, responses, bodies, and taken-over streams.

Each is a view on one :class:`~.h3_stream.StreamState` (a request stream's buffers and
waiters); none is built by users.

* :class:`H3Request` (server): what a ``serve_h3`` handler receives; ``respond``,
  ``send_body``, ``send_trailers``, and :meth:`H3Request.http_stream` to take the stream
  over after the response headers.
* :class:`H3Response` (client): status, headers, a streaming :attr:`~H3Response.body`.
* :class:`H3RequestStream` (client, low level): request header now, response later, raw
  DATA bytes and HTTP datagrams in between.
* :class:`H3Stream`: a request stream taken over (``http_stream()``): a trio
  :class:`~trio.abc.HalfCloseableStream` of the DATA bytes (what the Capsule Protocol runs
  on) plus ``send_datagram`` / ``receive_datagram`` (RFC 9297).
* :class:`H3Body`: a :class:`~trio.abc.ReceiveStream` of a message's content.

Cancellation follows DESIGN.md: leaving a request by an exception or cancellation resets
the stream with H3_REQUEST_CANCELLED (RESET_STREAM, plus STOP_SENDING if the peer may still
send); a ``send_all`` / ``send_body`` cancelled after part of its data went out resets the
stream; a cancelled receive leaves buffered data for the next read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Generic, Self, TypeVar, final, overload

import trio

from .. import h3
from ..h3._headers import simple_request as _simple_request
from ..h3._headers import simple_response as _simple_response
from ._engine import Address
from .h3_stream import H3_NO_ERROR, H3_REQUEST_CANCELLED, StreamState

if TYPE_CHECKING:
    from .h3 import H3Connection

__all__ = ["H3Body", "H3Request", "H3RequestStream", "H3Response", "H3Stream"]

HeaderInput = Iterable[tuple[str | bytes, str | bytes]]

_T = TypeVar("_T")


def _regular(fields: h3.Headers) -> h3.Headers:
    """The regular fields of a header section (its pseudo-header fields left out)."""
    return [field for field in fields if not field[0].startswith(b":")]


def _pseudo(fields: h3.Headers, name: bytes) -> bytes | None:
    """The value of pseudo-header field ``name``; they come first in a validated section."""
    for field, value in fields:
        if field == name:
            return value
        if not field.startswith(b":"):
            break
    return None


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("ascii", "replace")


class _lazy(Generic[_T]):
    """A read-only-looking attribute computed on first access and then stored on the
    instance (a non-data descriptor: the stored value shadows it; it may be reassigned)."""

    __slots__ = ("_compute", "_name")

    def __init__(self, compute: Callable[[Any], _T]) -> None:
        self._compute = compute
        self._name = compute.__name__

    @overload
    def __get__(self, instance: None, owner: type[Any]) -> Self: ...
    @overload
    def __get__(self, instance: object, owner: type[Any]) -> _T: ...
    def __get__(self, instance: object | None, owner: type[Any]) -> _T | Self:
        if instance is None:
            return self
        value = instance.__dict__[self._name] = self._compute(instance)
        return value


def _get(headers: h3.Headers, name: str | bytes) -> bytes | None:
    key = (name.encode("ascii") if isinstance(name, str) else name).lower()
    for field, value in headers:
        if field == key:
            return value
    return None


def _normalize(headers: HeaderInput) -> list[tuple[bytes, bytes]]:
    out = []
    for name, value in headers:
        n = name.encode("ascii") if isinstance(name, str) else bytes(name)
        v = value.encode("ascii") if isinstance(value, str) else bytes(value)
        out.append((n.lower(), v))
    return out


#: ``h3.Connection`` with already validated fields (built by ``h3.build_*_headers``); with
#: a payload, the DATA frame and FIN follow the header section in the same QUIC write.
_SEND_HEADERS: Final = h3.Connection._send_headers

async def _read_all(body: H3Body, max_size: int | None) -> bytes:
    if body._closed:
        await trio.lowlevel.checkpoint()
        raise trio.ClosedResourceError("the body was closed")
    return await body._state.receive_all(max_size)


@final
class H3Body(trio.abc.ReceiveStream):
    """The content of a request (server) or response (client), as a trio receive stream.

    ``receive_some`` returns the DATA payloads in order and ``b""`` at the end; the
    trailers, if any, are on the request or response once the end was read.
    :meth:`aclose` abandons the rest (STOP_SENDING).
    """

    def __init__(self, state: StreamState, stop_error_code: int) -> None:
        self._state = state
        self._stop_error_code = stop_error_code
        self._closed = False

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        """Up to ``max_bytes`` bytes (everything buffered if None); ``b""`` at the end.

        Raises:
            trio.ClosedResourceError: The body (or its stream) was closed.
            StreamResetError: The peer reset the stream.
            ConnectionClosedError: The connection ended.
        """
        if self._closed:
            await trio.lowlevel.checkpoint()
            raise trio.ClosedResourceError("the body was closed")
        return await self._state.receive_some(max_bytes)

    async def aclose(self) -> None:
        """Abandon the rest of the content (STOP_SENDING if the peer is still sending)."""
        if not self._closed:
            self._closed = True
            self._state.abort_receive(self._stop_error_code)
        await trio.lowlevel.checkpoint()


class _DatagramMixin:
    _state: StreamState

    @property
    def stream_id(self) -> int:
        """The QUIC stream ID of the request stream."""
        return self._state.sid

    async def send_datagram(self, data: bytes | bytearray | memoryview) -> None:
        """Send an HTTP datagram on this request stream (RFC 9297), in a QUIC DATAGRAM frame.

        Waits for the peer's SETTINGS first if they have not arrived (an HTTP datagram may
        only be sent once the peer said SETTINGS_H3_DATAGRAM=1).  Unreliable: it may be
        lost, and is dropped if larger than the path allows.

        Raises:
            RuntimeError: HTTP datagrams were not negotiated, or the request is not an
                (extended) CONNECT.
            trio.ClosedResourceError: The stream was closed or its sending side finished.
            ConnectionClosedError: The connection ended.
        """
        await self._state.send_datagram(data)

    async def receive_datagram(self) -> bytes:
        """The next HTTP datagram the peer sent on this request stream.

        Up to :data:`~trio_zttp._trio.h3_stream.DATAGRAM_QUEUE_SIZE` are kept; later ones
        are dropped while nobody reads.

        Raises:
            trio.EndOfChannel: The peer finished the stream and no datagram is queued.
            StreamResetError: The peer reset the stream.
            trio.ClosedResourceError: The stream was closed.
            ConnectionClosedError: The connection ended.
        """
        return await self._state.receive_datagram()

    @property
    def datagrams_dropped(self) -> int:
        """HTTP datagrams dropped on this stream because the queue was full."""
        return self._state.datagrams_dropped


class _StreamMixin(_DatagramMixin):
    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        """Send ``data`` in DATA frames; waits for flow-control credit.

        Raises:
            trio.BusyResourceError: Another task is sending on this stream.
            trio.ClosedResourceError: The stream was closed, or ``send_eof`` was called.
            StreamStoppedError: The peer sent STOP_SENDING.
            ConnectionClosedError: The connection ended.
        """
        await self._state.send_data(data)

    async def wait_send_all_might_not_block(self) -> None:
        """Return when the stream would take at least one byte without waiting."""
        state = self._state
        state.claim_send()
        try:
            await trio.lowlevel.checkpoint_if_cancelled()
            while True:
                error = state.send_error()
                if error is not None:
                    try:
                        raise error
                    finally:
                        del error  # the traceback holds this frame: no cycle through it
                if state.engine.send_capacity(state.sid) > 0:
                    break
                await state.engine.wait_capacity(state)
            await trio.lowlevel.cancel_shielded_checkpoint()
        finally:
            state.sending = False

    async def send_eof(self) -> None:
        """Finish our side of the stream (FIN).  Idempotent."""
        state = self._state
        if state.fin_sent and not state.closed:
            await trio.lowlevel.checkpoint()
            return
        await state.send_data(b"", end_stream=True)

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        """Up to ``max_bytes`` bytes of the peer's DATA; ``b""`` once it finished.

        Raises:
            trio.BusyResourceError: Another task is receiving on this stream.
            trio.ClosedResourceError: The stream was closed.
            StreamResetError: The peer reset the stream.
            ConnectionClosedError: The connection ended.
        """
        return await self._state.receive_some(max_bytes)

    def reset(self, error_code: int = H3_REQUEST_CANCELLED) -> None:
        """Abandon our sending side now (RESET_STREAM)."""
        self._state.abort_send(error_code)

    def stop_sending(self, error_code: int = H3_REQUEST_CANCELLED) -> None:
        """Ask the peer to stop sending (STOP_SENDING); unread data is dropped."""
        self._state.abort_receive(error_code)


@final
class H3Stream(_StreamMixin, trio.abc.HalfCloseableStream):
    """A request stream taken over after the response headers (``request.http_stream()``).

    ``send_all`` / ``receive_some`` carry the stream's DATA bytes both ways (with the
    Capsule Protocol, RFC 9297 §3, these bytes are the capsules: encode them with
    :func:`trio_zttp.h3.encode_capsule`); ``send_datagram`` / ``receive_datagram`` carry HTTP
    datagrams.  ``send_eof`` sends FIN; :meth:`aclose` FIN plus STOP_SENDING if the peer may
    still send; leaving ``async with`` by an exception resets the stream.
    """

    def __init__(self, connection: H3Connection, state: StreamState) -> None:
        self._connection = connection
        self._state = state

    @property
    def connection(self) -> H3Connection:
        """The HTTP/3 connection."""
        return self._connection

    async def aclose(self) -> None:
        """FIN if not sent, STOP_SENDING if the peer may still send; idempotent."""
        self._state.close(abort=False)
        await trio.lowlevel.checkpoint()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_value is None:
            await self.aclose()
        else:
            self._state.close(abort=True)

    def __repr__(self) -> str:
        return f"<H3Stream id={self._state.stream_id}>"


@final
class H3Request:
    """An HTTP/3 request, as a ``serve_h3`` handler receives it.

    Attributes:
        method: The request method (``"GET"``, ``"CONNECT"`` ...).
        path: ``:path`` (path and query), or ``""`` for a plain CONNECT.
        scheme: ``:scheme`` (``"https"``), None for a plain CONNECT.
        authority: ``:authority``.
        protocol: ``:protocol`` of an extended CONNECT (RFC 9220), else None.
        headers: The regular header fields, ``(name, value)`` bytes, names lowercase.
        raw_headers: The whole header section as received, pseudo-header fields first.
    """

    def __init__(self, connection: H3Connection, state: StreamState) -> None:
        self._connection = connection
        self._state = state
        raw = state.headers
        assert raw is not None
        self.raw_headers: h3.Headers = raw
        self._body = H3Body(state, H3_NO_ERROR)
        self._status: int | None = None
        self._taken_over = False

    # the request line and the regular fields are worked out when first read
    @_lazy
    def headers(self) -> h3.Headers:
        return _regular(self.raw_headers)

    @_lazy
    def method(self) -> str:
        return _text(_pseudo(self.raw_headers, b":method")) or ""

    @_lazy
    def path(self) -> str:
        return _text(_pseudo(self.raw_headers, b":path")) or ""

    @_lazy
    def scheme(self) -> str | None:
        return _text(_pseudo(self.raw_headers, b":scheme"))

    @_lazy
    def authority(self) -> str | None:
        return _text(_pseudo(self.raw_headers, b":authority"))

    @_lazy
    def protocol(self) -> str | None:
        return _text(_pseudo(self.raw_headers, b":protocol"))

    @property
    def connection(self) -> H3Connection:
        """The HTTP/3 connection (peer settings, addresses ...)."""
        return self._connection

    @property
    def stream_id(self) -> int:
        """The QUIC stream ID of the request stream."""
        return self._state.sid

    @property
    def remote_address(self) -> Address:
        """The client's address."""
        return self._connection.remote_address

    def get_header(self, name: str | bytes) -> bytes | None:
        """The first value of a regular header field, or None."""
        return _get(self.headers, name)

    @property
    def body(self) -> H3Body:
        """The request content as a trio receive stream."""
        return self._body

    async def read(self, max_size: int | None = None) -> bytes:
        """The whole request content.

        Raises:
            ValueError: It is larger than ``max_size``.
        """
        return await _read_all(self._body, max_size)

    @property
    def trailers(self) -> h3.Headers | None:
        """The request's trailer fields, once the body was read to its end (else None)."""
        return self._state.trailers

    @property
    def response_status(self) -> int | None:
        """The final status sent so far, or None before :meth:`respond`."""
        return self._status

    async def respond(
        self,
        status: int,
        headers: HeaderInput = (),
        *,
        body: bytes | bytearray | memoryview | None = None,
    ) -> None:
        """Send the response header section (a 1xx status sends an interim response).

        Without ``body`` the stream stays open for :meth:`send_body`, trailers, or
        :meth:`http_stream`; the response ends at the latest when the handler returns.
        With ``body``, a ``content-length`` is added and the response is complete.

        Raises:
            ValueError: A malformed header section.
            RuntimeError: A final response was already sent.
            StreamStoppedError: The client no longer reads the response.
            ConnectionClosedError: The connection ended.
        """
        state = self._state
        if self._status is not None:
            await trio.lowlevel.checkpoint()
            raise RuntimeError(f"a {self._status} response was already sent")
        if headers == () and body is not None:
            fields = _simple_response(status, len(body))
        else:
            extra = _normalize(headers)
            if body is not None and all(name != b"content-length" for name, _ in extra):
                extra.append((b"content-length", str(len(body)).encode()))
            fields = h3.build_response_headers(status, extra)
        await trio.lowlevel.checkpoint_if_cancelled()
        error = state.send_error()
        if error is not None:
            try:
                raise error
            finally:
                del error  # the traceback holds this frame: no cycle through it
        interim = 100 <= status < 200
        engine = state.engine
        sid = state.sid
        if (
            body
            and not interim
            and not state.sending
            and engine.send_capacity(sid) >= len(body)
        ):
            # the whole response in one command and one QUIC write: what send_headers and
            # send_data(body, end_stream=True) would queue, since all of it fits the credit
            engine.command(
                _SEND_HEADERS, sid, fields, False,
                body if type(body) is bytes else bytes(body), settle=True,
            )
            self._status = status
            state.final_sent = True
            state.fin_sent = True
            engine.settle()
            await trio.lowlevel.cancel_shielded_checkpoint()
            return
        end = body is not None and not body
        engine.command(_SEND_HEADERS, sid, fields, end, None, settle=True)
        if not interim:
            self._status = status
            state.final_sent = True
            if end:
                state.fin_sent = True
        if body:
            await state.send_data(body, end_stream=True)  # settles
        else:
            engine.settle()
            await trio.lowlevel.cancel_shielded_checkpoint()

    async def send_body(
        self, data: bytes | bytearray | memoryview, *, end_stream: bool = False
    ) -> None:
        """Send response content (after :meth:`respond`); ``end_stream`` finishes it.

        Raises:
            RuntimeError: No final response was sent yet, or the stream was taken over.
        """
        self._check_body()
        await self._state.send_data(data, end_stream)

    async def send_trailers(self, headers: HeaderInput) -> None:
        """Send trailer fields; they end the response.

        Raises:
            ValueError: Malformed trailers (pseudo-header fields ...).
            RuntimeError: No final response was sent yet, or the stream was taken over.
        """
        self._check_body()
        state = self._state
        fields = _normalize(headers)
        await trio.lowlevel.checkpoint_if_cancelled()
        error = state.send_error()
        if error is not None:
            try:
                raise error
            finally:
                del error  # the traceback holds this frame: no cycle through it
        state.fin_sent = True
        try:
            state.engine.command(h3.Connection.send_trailers, state.sid, fields, settle=True)
        except ValueError:
            state.fin_sent = False
            raise
        state.engine.settle()
        await trio.lowlevel.cancel_shielded_checkpoint()

    def _check_body(self) -> None:
        if self._status is None:
            raise RuntimeError("respond() first")
        if self._taken_over:
            raise RuntimeError("the stream was taken over by http_stream()")

    def http_stream(self) -> H3Stream:
        """Take the stream over after the response headers: raw DATA bytes both ways (for
        the Capsule Protocol) and HTTP datagrams.

        Raises:
            RuntimeError: No final response was sent yet, or it was already taken over.
        """
        if self._status is None:
            raise RuntimeError("send the response headers (respond()) before http_stream()")
        if self._taken_over:
            raise RuntimeError("http_stream() was already called")
        self._taken_over = True
        return H3Stream(self._connection, self._state)

    async def send_datagram(self, data: bytes | bytearray | memoryview) -> None:
        """Send an HTTP datagram on this (CONNECT) request stream; see :class:`H3Stream`."""
        await self._state.send_datagram(data)

    async def receive_datagram(self) -> bytes:
        """The next HTTP datagram on this request stream; see :class:`H3Stream`."""
        return await self._state.receive_datagram()

    def _finish(self) -> None:
        """The handler returned: complete the response (500 if none was sent)."""
        state = self._state
        if self._status is None and state.send_error() is None:
            try:
                state.engine.command(_SEND_HEADERS, state.sid, _simple_response(500, 0), True,
                                     None)
                state.fin_sent = True
                self._status = 500
            except trio.BrokenResourceError:
                pass
        # RFC 9114 §4.1: a complete response may end the request early with H3_NO_ERROR
        state.close(abort=False, stop_error_code=H3_NO_ERROR)

    def _abort(self) -> None:
        self._state.close(abort=True)

    def __repr__(self) -> str:
        return f"<H3Request {self.method} {self.path} id={self._state.stream_id}>"


@final
class H3Response:
    """An HTTP/3 response, as a client receives it.

    Attributes:
        status: The final status code.
        headers: The regular header fields, ``(name, value)`` bytes.
        raw_headers: The whole header section, ``:status`` first.
        interim: Header sections of interim (1xx) responses that came before.
    """

    def __init__(self, state: StreamState, *, owns_stream: bool) -> None:
        self._state = state
        self._owns = owns_stream
        raw = state.headers
        assert raw is not None
        self.raw_headers: h3.Headers = raw
        self.status = int(_pseudo(raw, b":status") or b"0")
        self.interim: list[h3.Headers] = list(state.interim)
        self._body = H3Body(state, H3_REQUEST_CANCELLED)

    @_lazy
    def headers(self) -> h3.Headers:
        return _regular(self.raw_headers)

    @property
    def stream_id(self) -> int:
        """The QUIC stream ID of the request stream."""
        return self._state.sid

    def get_header(self, name: str | bytes) -> bytes | None:
        """The first value of a regular header field, or None."""
        return _get(self.headers, name)

    @property
    def body(self) -> H3Body:
        """The response content as a trio receive stream."""
        return self._body

    async def read(self, max_size: int | None = None) -> bytes:
        """The whole response content (then the stream is done).

        Raises:
            ValueError: It is larger than ``max_size``.
        """
        data = await _read_all(self._body, max_size)
        if self._owns:
            self._state.close(abort=False)
        return data

    @property
    def trailers(self) -> h3.Headers | None:
        """The trailer fields, once the body was read to its end (else None)."""
        return self._state.trailers

    async def aclose(self) -> None:
        """Done with the response: the rest of the body is abandoned (STOP_SENDING)."""
        if self._owns:
            self._state.close(abort=False)
        else:
            self._state.abort_receive(H3_REQUEST_CANCELLED)
        await trio.lowlevel.checkpoint()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_value is not None and self._owns:
            self._state.close(abort=True)
        else:
            await self.aclose()

    def __repr__(self) -> str:
        return f"<H3Response {self.status} id={self._state.stream_id}>"


@final
class H3RequestStream(_StreamMixin, trio.abc.HalfCloseableStream):
    """A client request stream, low level: the request now, the response when it comes.

    Made by :meth:`H3Connection.open_request_stream`; use it as an async context manager.
    After :meth:`send_request_header`, ``send_all`` sends request content (DATA),
    ``send_datagram`` HTTP datagrams (even before the response: RFC 9297 allows it),
    :meth:`read_response` waits for the final response, and ``receive_some`` reads the
    response content (or the tunnel's bytes after a 2xx to CONNECT).  Leaving the block
    normally sends FIN and abandons unread content; by an exception, it resets the stream
    with H3_REQUEST_CANCELLED.
    """

    def __init__(self, connection: H3Connection, state: StreamState) -> None:
        self._connection = connection
        self._state = state
        self._response: H3Response | None = None

    @property
    def connection(self) -> H3Connection:
        """The HTTP/3 connection."""
        return self._connection

    async def send_request_header(
        self,
        method: str,
        path: str | None = "/",
        *,
        headers: HeaderInput = (),
        authority: str | None = None,
        scheme: str | None = None,
        protocol: str | None = None,
        end_stream: bool = False,
    ) -> None:
        """Send the request header section; the stream gets its ID here.

        Args:
            method: ``"GET"``, ``"POST"``, ``"CONNECT"`` ...
            path: Path and query (None only for a plain CONNECT).
            headers: Regular header fields.
            authority: ``:authority`` (default: the connection's host and port).
            scheme: ``:scheme`` (default ``"https"``; none for a plain CONNECT).
            protocol: ``:protocol`` for extended CONNECT (RFC 9220), e.g. ``"ping-pong"``;
                the server must have sent SETTINGS_ENABLE_CONNECT_PROTOCOL=1 (waited for).
            end_stream: No content follows (FIN with the header section).

        Raises:
            RuntimeError: The request header was already sent.
            ValueError: A malformed request.
            trio.BrokenResourceError: The server sent GOAWAY (open a new connection), or
                does not accept extended CONNECT.
            ConnectionClosedError: The connection ended.
        """
        await self._send_request_header(method, path, headers, authority, scheme, protocol,
                                        end_stream)
        self._state.engine.settle()
        await trio.lowlevel.cancel_shielded_checkpoint()

    async def _send_request_header(
        self,
        method: str,
        path: str | None,
        headers: HeaderInput,
        authority: str | None,
        scheme: str | None,
        protocol: str | None,
        end_stream: bool,
        body: bytes | None = None,
    ) -> bool:
        """:meth:`send_request_header` without its final settle and checkpoint (a caller that
        parks right after, such as :meth:`H3Connection.request`, settles there anyway).

        A non-empty ``body`` that the stream's credit takes whole goes in the same command
        (what ``send_data(body, end_stream=True)`` would send): then True is returned."""
        state = self._state
        if state.request_sent:
            await trio.lowlevel.checkpoint()
            raise RuntimeError("the request header was already sent")
        connection = self._connection
        if authority is None:
            authority = connection.authority
        if method == "CONNECT" and protocol is None and path == "/":
            path = None  # a plain CONNECT has no :path
        if headers == () and protocol is None:
            fields = _simple_request(method, path, authority, scheme)
        else:
            fields = h3.build_request_headers(
                method,
                path,
                authority=authority,
                scheme=scheme,
                protocol=protocol,
                headers=headers,
            )
        engine = state.engine
        if protocol is not None and engine.peer_settings is None:
            await engine.received_settings()  # extended CONNECT needs the server's SETTINGS
        else:
            await trio.lowlevel.checkpoint_if_cancelled()
        if state.request_sent:
            raise RuntimeError("the request header was already sent")
        error = engine.connection_error()
        if error is not None:
            try:
                raise error
            finally:
                del error  # the traceback holds this frame: no cycle through it
        conn = engine.h3
        assert conn is not None
        try:
            stream_id = conn.get_next_request_stream_id()
        except h3.StateError as exc:
            raise trio.BrokenResourceError(str(exc)) from None
        engine.register(state, stream_id)
        state.is_connect = method == "CONNECT"
        if body and engine.send_capacity(stream_id) < len(body):
            body = None  # flow control: the caller sends it (send_data waits for credit)
        try:
            engine.command(_SEND_HEADERS, stream_id, fields, end_stream, body or None,
                           settle=True)
        except (ValueError, trio.BrokenResourceError):
            engine.forget(state)
            state.stream_id = None
            raise
        state.request_sent = True
        if end_stream or body:
            state.fin_sent = True
        return bool(body)

    async def send_trailers(self, headers: HeaderInput) -> None:
        """Send request trailer fields; they end the request."""
        state = self._state
        await trio.lowlevel.checkpoint_if_cancelled()
        error = state.send_error()
        if error is not None:
            try:
                raise error
            finally:
                del error  # the traceback holds this frame: no cycle through it
        state.engine.command(h3.Connection.send_trailers, state.sid, _normalize(headers),
                             settle=True)
        state.fin_sent = True
        state.engine.settle()
        await trio.lowlevel.cancel_shielded_checkpoint()

    async def read_response(self) -> H3Response:
        """Wait for the final response's header section (interim ones are collected in
        :attr:`H3Response.interim`).

        Raises:
            StreamResetError: The server reset the stream (H3_REQUEST_REJECTED: it was not
                processed and can be retried).
            ConnectionClosedError: The connection ended.
        """
        if self._response is None:
            await self._state.wait_headers()
            self._response = H3Response(self._state, owns_stream=False)
        else:
            await trio.lowlevel.checkpoint()
        return self._response

    @property
    def response(self) -> H3Response | None:
        """The response, once :meth:`read_response` returned it."""
        return self._response

    async def aclose(self) -> None:
        """FIN if not sent, STOP_SENDING if the response is not finished; idempotent."""
        self._state.close(abort=False)
        await trio.lowlevel.checkpoint()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_value is None:
            await self.aclose()
        else:
            self._state.close(abort=True)

    def __repr__(self) -> str:
        return f"<H3RequestStream id={self._state.stream_id}>"
