"""HTTP/3 for trio: :func:`serve_h3`, :func:`open_h3_connection` and :class:`H3Connection`.

Built on the trio QUIC layer (one endpoint task, one driver task per connection) and the
sans-IO :class:`trio_zttp.h3.Connection`, which runs inside each connection's driver (see
:mod:`.h3_engine`).  What users see::

    async def handler(request):                 # one task per request stream
        await request.respond(200, [("content-type", "text/plain")], body=b"hi")

    await nursery.start(serve_h3, handler, "127.0.0.1", 4433, configuration)

    async with open_h3_connection("localhost", 4433, configuration) as h3:
        response = await h3.request("GET", "/")
        print(response.status, await response.read())

Server lifecycle: each connection gets a task that accepts requests and starts
``handler(request)`` for each (in ``handler_nursery`` if given, else in a nursery of the
connection's task).  A handler that returns completes the response (a 500 if it sent
none) and ends the request stream; one that raises resets the stream with
H3_REQUEST_CANCELLED, and the exception propagates (as with :func:`trio.serve_tcp`) unless
it is the peer's doing (:class:`StreamResetError`, :class:`StreamStoppedError`,
:class:`ConnectionClosedError`), which only ends that request.  Cancelling the scope around
``serve_h3`` shuts down gracefully: GOAWAY on every connection, requests already received
run to completion for at most ``drain_timeout`` seconds, then every connection closes with
H3_NO_ERROR.

Errors on the connection: leaving ``open_h3_connection`` normally closes with H3_NO_ERROR;
by an exception, with H3_INTERNAL_ERROR (:attr:`H3Connection.internal_error_code`), or any
code given to :meth:`H3Connection.aclose`.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Final, Literal, NoReturn, final
from urllib.parse import urlsplit

import attrs
import trio

from .. import h3
from ..quic._config import Configuration
from . import _engine
from ._engine import Address, ConnectionFactory
from ._groups import collapse_exception_groups, leaves
from .connection import QuicConnection
from .endpoint import QuicEndpoint
from .errors import ConnectionClosedError, StreamResetError, StreamStoppedError
from .h3_engine import H3Engine, h3_connection_factory
from .h3_request import H3Request, H3RequestStream, H3Response, HeaderInput
from .h3_stream import H3_INTERNAL_ERROR, H3_NO_ERROR, H3_REQUEST_CANCELLED, StreamState
from .quic_api import open_quic_connection, open_quic_endpoint

__all__ = ["H3Connection", "open_h3_connection", "serve_h3"]

H3_ALPN: Final = ("h3",)
DEFAULT_DRAIN_TIMEOUT: Final = 5.0
"""Seconds a graceful shutdown waits for requests in progress."""

Body = bytes | bytearray | memoryview | AsyncIterable[bytes]


def _engine_of(quic: QuicConnection) -> H3Engine:
    engine = quic._engine
    if not isinstance(engine, H3Engine):
        raise TypeError("this QUIC connection was not made for HTTP/3")
    return engine


def _authority(host: str, port: int) -> str:
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return host if port == 443 else f"{host}:{port}"


def _with_h3_alpn(configuration: Configuration) -> Configuration:
    if configuration.alpn_protocols:
        return configuration
    return attrs.evolve(configuration, alpn_protocols=H3_ALPN)


@final
class H3Connection:
    """One HTTP/3 connection (client or server side).

    Made by :func:`open_h3_connection` (client) or by :func:`serve_h3` (server, reached
    as ``request.connection``), never directly.
    """

    def __init__(
        self, quic: QuicConnection, engine: H3Engine, *, authority: str | None = None
    ) -> None:
        self._quic = quic
        self._engine = engine
        self._authority = authority
        self._active = 0
        self._idle_lot = trio.lowlevel.ParkingLot()
        quic.internal_error_code = H3_INTERNAL_ERROR
        quic.stream_cancel_error_code = H3_REQUEST_CANCELLED
        engine.attach(quic)

    # -- state ----------------------------------------------------------------------------------

    @property
    def quic(self) -> QuicConnection:
        """The QUIC connection underneath (addresses, statistics, key update ...)."""
        return self._quic

    @property
    def is_client(self) -> bool:
        """True on the client side."""
        return self._engine.is_client

    @property
    def remote_address(self) -> Address:
        """The peer's address."""
        return self._quic.remote_address

    @property
    def authority(self) -> str | None:
        """Client: the ``:authority`` sent by default (``host`` or ``host:port``)."""
        return self._authority

    @property
    def local_settings(self) -> h3.Settings:
        """The SETTINGS we announced."""
        return self._engine.local_settings

    @property
    def peer_settings(self) -> h3.Settings | None:
        """The peer's SETTINGS (``h3_datagram``, ``enable_connect_protocol``, QPACK limits,
        ``unknown`` ones), or None until they arrive: SETTINGS travel on the peer's control
        stream, independently of request streams, so a request may come first."""
        return self._engine.peer_settings

    async def received_settings(self) -> h3.Settings:
        """Wait for the peer's SETTINGS and return them.

        Raises:
            ConnectionClosedError: The connection ended first.
        """
        return await self._engine.received_settings()

    @property
    def datagrams_enabled(self) -> bool:
        """True once both sides announced SETTINGS_H3_DATAGRAM=1 and the peer takes QUIC
        DATAGRAM frames: HTTP datagrams can flow."""
        return self._engine.datagrams_enabled

    @property
    def goaway_received(self) -> int | None:
        """Client: the stream ID from the server's GOAWAY (no new requests here), or None."""
        return self._engine.goaway_received

    @property
    def internal_error_code(self) -> int:
        """The code sent when the connection block is left by an exception."""
        return self._quic.internal_error_code

    @internal_error_code.setter
    def internal_error_code(self, value: int) -> None:
        self._quic.internal_error_code = value

    @property
    def closed(self) -> bool:
        """True once the connection ended or was closed."""
        return self._quic.closed

    # -- client ---------------------------------------------------------------------------------

    def open_request_stream(self) -> H3RequestStream:
        """A new request stream (its ID comes with ``send_request_header``).

        Use it as ``async with h3.open_request_stream() as stream``.

        Raises:
            RuntimeError: This is the server side.
            ConnectionClosedError, trio.ClosedResourceError: The connection is gone.
        """
        engine = self._engine
        if not engine.is_client:
            raise RuntimeError("only clients open request streams")
        error = engine.connection_error()
        if error is not None:
            try:
                raise error
            finally:
                del error  # the traceback holds this frame: no cycle through it
        return H3RequestStream(self, StreamState(engine, None))

    def _target(self, url: str) -> tuple[str, str | None, str | None]:
        if url.startswith("/") or url == "*":
            return url, None, None
        parts = urlsplit(url)
        if not parts.scheme or not parts.netloc:
            raise ValueError(f"not an absolute URL or a path: {url!r}")
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        return path, parts.netloc, parts.scheme

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: HeaderInput = (),
        body: Body | None = None,
    ) -> H3Response:
        """Send a request and wait for the response's header section.

        The response's content streams through :attr:`H3Response.body` (or
        :meth:`H3Response.read`); read it to its end or close the response
        (``async with await h3.request(...) as response``) so the stream is released.
        The request content is sent in full before the response is awaited; a server
        that answers early and sends STOP_SENDING ends the upload without an error.
        For full-duplex exchanges use :meth:`open_request_stream`.

        Args:
            method: ``"GET"``, ``"POST"`` ...
            url: A path (``"/index.html"``) or an absolute URL whose scheme and authority
                are sent instead of the connection's.
            headers: Regular header fields.
            body: Request content: bytes, or an async iterable of bytes.

        Raises:
            StreamResetError: The server reset the request (H3_REQUEST_REJECTED: not
                processed, safe to retry).
            ConnectionClosedError: The connection ended.
        """
        path, authority, scheme = self._target(url)
        stream = self.open_request_stream()
        state = stream._state
        try:
            whole = body if type(body) is bytes else None  # (others: no copy made here)
            sent = await stream._send_request_header(
                method, path, headers, authority, scheme, None, body is None, whole
            )
            if body is not None and not sent:
                try:
                    if isinstance(body, bytes | bytearray | memoryview):
                        await state.send_data(body, end_stream=True)
                    else:
                        async for chunk in body:
                            await state.send_data(chunk)
                        await state.send_data(b"", end_stream=True)
                except StreamStoppedError:
                    pass  # the server answered without reading everything (RFC 9114 §4.1)
            await state.wait_headers()
        except BaseException:
            state.close(abort=True)
            raise
        return H3Response(state, owns_stream=True)

    # -- server ---------------------------------------------------------------------------------

    async def accept_request(self) -> H3Request | None:
        """Server: the next request whose header section arrived, or None when no more will
        come (the connection ended, or GOAWAY was sent and the requests before it arrived)."""
        engine = self._engine
        await trio.lowlevel.checkpoint_if_cancelled()
        waited = False
        while True:
            queue = engine.accept_queue
            while queue:
                state = queue.popleft()
                if state.closed or state.reset_code is not None:
                    state.close(abort=False)
                    continue
                if not waited:
                    await trio.lowlevel.cancel_shielded_checkpoint()
                return H3Request(self, state)
            if engine.connection_error() is not None or (
                engine.going_away and not engine.has_pending_requests()
            ):
                if not waited:
                    await trio.lowlevel.cancel_shielded_checkpoint()
                return None
            await engine.accept_lot.park()
            waited = True

    def send_goaway(self) -> None:
        """Server: start a graceful shutdown (GOAWAY); requests already received complete,
        later ones are refused with H3_REQUEST_REJECTED.  Idempotent."""
        self._engine.send_goaway()

    # -- closing --------------------------------------------------------------------------------

    async def aclose(self, *, error_code: int = H3_NO_ERROR, reason: str = "") -> None:
        """Close the connection (CONNECTION_CLOSE with ``error_code``) and wait out its
        closing period (bounded, shielded).  Idempotent."""
        await self._quic.aclose(error_code=error_code, reason=reason)

    def _watch(self) -> None:
        """Wake every waiter once the QUIC connection ends, however it ends (at once if it
        already has)."""
        quic = self._quic
        if quic._closed_info is not None:
            self._engine.wake_everything()
        else:
            quic._on_terminate = self._engine.wake_everything

    def _serve(self, start: Callable[[H3Request], None]) -> None:
        """Server: hand every request to ``start``: those already decoded (they arrived with
        the handshake) now, each later one as soon as the driver decodes it."""
        queue = self._engine.accept_queue
        while queue:
            state = queue.popleft()
            if state.closed or state.reset_code is not None:
                state.close(abort=False)  # as accept_request does: nothing left to handle
            else:
                start(H3Request(self, state))

        def on_request(state: StreamState) -> None:
            start(H3Request(self, state))

        self._engine.on_request = on_request

    async def _wait_done(self) -> None:
        """Server: until no more requests will come (connection ended, or GOAWAY drained)."""
        engine = self._engine
        while not (
            engine.connection_error() is not None
            or (engine.going_away and not engine.has_pending_requests())
        ):
            await engine.accept_lot.park()
        await trio.lowlevel.checkpoint()

    def _request_started(self) -> None:
        self._active += 1

    def _request_done(self) -> None:
        self._active -= 1
        if not self._active:
            self._idle_lot.unpark_all()

    async def _wait_idle(self) -> None:
        while self._active:
            await self._idle_lot.park()
        await trio.lowlevel.checkpoint()

    def __repr__(self) -> str:
        role = "client" if self.is_client else "server"
        state = "closed" if self.closed else "open"
        return f"<H3Connection {role} {state} peer={self.remote_address!r}>"


# -- server ---------------------------------------------------------------------------------


Handler = Callable[[H3Request], Awaitable[object]]

_PEER_ERRORS: Final = (StreamResetError, StreamStoppedError, ConnectionClosedError)


class _Server:
    """One ``serve_h3``: its endpoint, connections and graceful shutdown.

    The endpoint, its connections and their handlers run in :meth:`run`, inside a shielded
    cancel scope, so that cancelling ``serve_h3`` does not cut them off: the task that was
    cancelled calls :meth:`shutdown` instead, which sends GOAWAY everywhere, bounds the
    rest by ``drain_timeout`` (the shielded scope's own deadline) and waits.
    """

    def __init__(
        self,
        handler: Handler,
        handler_nursery: trio.Nursery | None,
        drain_timeout: float,
    ) -> None:
        self._handler = handler
        self._handler_nursery = handler_nursery
        self._drain_timeout = drain_timeout
        self._connections: set[H3Connection] = set()
        self._draining = False
        self._stop = trio.Event()
        self._done = trio.Event()
        self._scope = trio.CancelScope(shield=True)
        self._work_scope = trio.CancelScope()

    async def run(
        self,
        local_address: tuple[str, int],
        configuration: Configuration,
        factory: ConnectionFactory,
        retry: Literal["never", "under_load", "always"] | None,
        *,
        task_status: trio.TaskStatus[QuicEndpoint],
    ) -> None:
        try:
            with self._scope:
                async with open_quic_endpoint(
                    local_address, configuration, connection_factory=factory, retry=retry
                ) as endpoint:
                    # the drain deadline cuts the connection tasks, not the endpoint: its
                    # drivers must live on to send their CONNECTION_CLOSE
                    with self._work_scope:
                        async with trio.open_nursery() as work:

                            def accept(quic: QuicConnection) -> None:
                                # from the driver whose handshake completed: no accept task
                                # in between, so the connection's task starts a round sooner
                                work.start_soon(self.serve_connection, quic)

                            endpoint._on_accept = accept
                            try:
                                task_status.started(endpoint)
                                await self._stop.wait()
                            finally:
                                endpoint._on_accept = None  # later ones wait for shutdown
        finally:
            self._done.set()

    async def shutdown(self) -> None:
        """GOAWAY on every connection; wait (at most ``drain_timeout``) until they end."""
        self._draining = True
        for connection in list(self._connections):
            connection.send_goaway()
        scope = self._work_scope
        scope.deadline = min(scope.deadline, trio.current_time() + self._drain_timeout)
        self._stop.set()
        await self._done.wait()

    async def serve_connection(self, quic: QuicConnection) -> None:
        connection = H3Connection(quic, _engine_of(quic))
        self._connections.add(connection)
        if self._draining:
            connection.send_goaway()
        try:
            async with trio.open_nursery() as nursery:
                connection._watch()
                target = self._handler_nursery or nursery
                # Without a handler nursery, the first request that came with the handshake
                # runs in this task (inside the connection's nursery, as its siblings do): it
                # starts now, not a scheduling round later in a task of its own.
                first: list[H3Request] = []
                take_first = [self._handler_nursery is None]

                def start(request: H3Request) -> None:
                    connection._request_started()
                    if take_first[0]:
                        take_first[0] = False
                        first.append(request)
                    else:
                        target.start_soon(self._run_handler, connection, request)

                connection._serve(start)
                take_first[0] = False  # later requests come from the driver: tasks of their own
                if first:
                    await self._run_handler(connection, first.pop())
                await connection._wait_done()
                await connection._wait_idle()
                nursery.cancel_scope.cancel()
        except BaseException as exc:
            # cut by the drain deadline: still a shutdown (H3_NO_ERROR); else a failure
            found = leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc]
            cut = self._draining and all(isinstance(e, trio.Cancelled) for e in found)
            with trio.CancelScope(shield=True):
                await quic.aclose(
                    error_code=H3_NO_ERROR if cut else quic.internal_error_code,
                    reason="" if cut else type(exc).__name__,
                )
            raise
        else:
            await quic.aclose(error_code=H3_NO_ERROR)
        finally:
            self._connections.discard(connection)
            connection._engine.on_request = None  # its closure holds the connection: no cycle

    async def _run_handler(self, connection: H3Connection, request: H3Request) -> None:
        try:
            await self._handler(request)
        except _PEER_ERRORS:
            request._abort()  # the client went away: nothing to report
        except BaseException:
            request._abort()
            raise
        else:
            request._finish()
        finally:
            connection._request_done()


async def serve_h3(
    handler: Handler,
    host: str,
    port: int,
    configuration: Configuration,
    *,
    handler_nursery: trio.Nursery | None = None,
    settings: h3.Settings | None = None,
    connection_factory: ConnectionFactory | None = None,
    drain_timeout: float = DEFAULT_DRAIN_TIMEOUT,
    retry: Literal["never", "under_load", "always"] | None = None,
    task_status: trio.TaskStatus[QuicEndpoint] = trio.TASK_STATUS_IGNORED,
) -> NoReturn:
    """Serve HTTP/3 forever: one ``handler(request)`` task per request stream.

    Use ``await nursery.start(serve_h3, handler, host, port, configuration)``, which
    returns the bound :class:`QuicEndpoint` (its ``local_address`` has the port).  Cancel
    the surrounding scope to shut down gracefully (GOAWAY, then at most ``drain_timeout``
    seconds for the requests in progress).

    Args:
        handler: ``async def handler(request: H3Request)``.
        host: Address to bind.
        port: Port to bind (0 picks one).
        configuration: A QUIC server configuration (certificate, key); ALPN defaults to
            ``h3``, and HTTP datagrams are offered when ``max_datagram_frame_size`` is set.
        handler_nursery: Where handler tasks run (default: a nursery per connection).
        settings: The HTTP/3 SETTINGS to announce (default: QPACK dynamic table, extended
            CONNECT, HTTP datagrams when the QUIC configuration takes DATAGRAM frames).
        connection_factory: The sans-IO QUIC engine (default ``quic.Connection``).
        drain_timeout: Seconds a graceful shutdown waits for requests in progress.
        retry: Address validation with Retry, as for :func:`open_quic_endpoint` (default:
            "always" if the configuration says ``retry=True``, else "under_load").
        task_status: Set by ``nursery.start``.
    """
    if configuration.is_client:
        raise ValueError("serve_h3 needs a server configuration (is_client=False)")
    if drain_timeout < 0 or math.isnan(drain_timeout):
        raise ValueError("drain_timeout must be >= 0")
    inner = connection_factory if connection_factory is not None else (
        _engine.default_connection_factory()
    )
    factory = h3_connection_factory(inner, settings)
    server = _Server(handler, handler_nursery, drain_timeout)
    with collapse_exception_groups():
        async with trio.open_nursery() as nursery:
            try:
                endpoint: QuicEndpoint = await nursery.start(
                    server.run, (host, port), _with_h3_alpn(configuration), factory, retry
                )
                task_status.started(endpoint)
                await trio.sleep_forever()
            finally:
                with trio.CancelScope(shield=True):
                    await server.shutdown()
    raise AssertionError("unreachable")  # pragma: no cover


# -- client ---------------------------------------------------------------------------------


def client_configuration(configuration: Configuration | None = None) -> Configuration:
    """``configuration`` with ALPN ``h3`` if it names none; a default client configuration
    (system trust store, HTTP datagrams on) when None."""
    if configuration is None:
        return Configuration(
            is_client=True, alpn_protocols=H3_ALPN, max_datagram_frame_size=65536
        )
    if not configuration.is_client:
        raise ValueError("open_h3_connection needs a client configuration (is_client=True)")
    return _with_h3_alpn(configuration)


@asynccontextmanager
async def open_h3_connection(
    host: str,
    port: int = 443,
    configuration: Configuration | None = None,
    *,
    settings: h3.Settings | None = None,
    server_name: str | None = None,
    local_address: tuple[str, int] | None = None,
    connection_factory: ConnectionFactory | None = None,
) -> AsyncIterator[H3Connection]:
    """Open an HTTP/3 connection (on an endpoint of its own) for the duration of the block.

    Leaving the block normally closes with H3_NO_ERROR; by an exception, with
    H3_INTERNAL_ERROR (the exception propagates).

    Args:
        host: The server's name or address (also the default ``:authority`` and SNI).
        port: The server's UDP port.
        configuration: A QUIC client configuration (default: ALPN ``h3``, the system
            trust store, HTTP datagrams on).
        settings: The HTTP/3 SETTINGS to announce.
        server_name: SNI and the name to verify (default: ``host``).
        local_address: Where to bind (default: any address, port 0).
        connection_factory: The sans-IO QUIC engine (default ``quic.Connection``).

    Raises:
        ConnectionClosedError: The handshake failed (e.g. the certificate was refused).
        OSError: The host name could not be resolved or the network is unreachable.
    """
    cfg = client_configuration(configuration)
    inner = connection_factory if connection_factory is not None else (
        _engine.default_connection_factory()
    )
    factory = h3_connection_factory(inner, settings)
    with collapse_exception_groups():
        async with open_quic_connection(
            (host, port),
            cfg,
            server_name=server_name,
            local_address=local_address,
            connection_factory=factory,
        ) as quic:
            connection = H3Connection(quic, _engine_of(quic), authority=_authority(host, port))
            connection._watch()
            try:
                yield connection
            finally:
                connection._engine.wake_everything()  # waiters outside the block recheck
            await connection.aclose()
