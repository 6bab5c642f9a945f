"""A pool of HTTP/3 connections keyed by origin: :func:`open_h3_pool`.

One connection per origin (scheme, host, port), opened on first use and shared by every
request to that origin (HTTP/3 multiplexes them).  A connection that closed, or whose server
sent GOAWAY, is replaced on the next request; a request the server did not process (refused
by GOAWAY, or reset with H3_REQUEST_REJECTED, RFC 9114 §5.2) is retried once on a fresh
connection when its body can be sent again.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Final, final
from urllib.parse import urlsplit

import trio

from .. import h3
from ..quic._config import Configuration
from ._engine import ConnectionFactory
from ._groups import collapse_exception_groups
from .errors import StreamResetError
from .h3 import Body, H3Connection, client_configuration, open_h3_connection
from .h3_request import H3Response, HeaderInput

__all__ = ["H3ConnectionPool", "open_h3_pool"]

_REJECTED: Final = int(h3.ErrorCode.H3_REQUEST_REJECTED)
Origin = tuple[str, str, int]


class _Slot:
    __slots__ = ("connection", "ready", "done", "error")

    def __init__(self) -> None:
        self.connection: H3Connection | None = None
        self.ready = trio.Event()
        self.done = trio.Event()
        self.error: BaseException | None = None


def _origin(url: str) -> Origin:
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise ValueError(f"not an https:// URL: {url!r}")
    return parts.scheme, parts.hostname, parts.port or 443


@final
class H3ConnectionPool:
    """HTTP/3 connections by origin, for requests by absolute URL.

    Made by :func:`open_h3_pool`, never directly.
    """

    def __init__(
        self,
        nursery: trio.Nursery,
        configuration: Configuration,
        settings: h3.Settings | None,
        connection_factory: ConnectionFactory | None,
    ) -> None:
        self._nursery = nursery
        self._configuration = configuration
        self._settings = settings
        self._factory = connection_factory
        self._slots: dict[Origin, _Slot] = {}
        self._closed = False
        #: Connections opened so far (handshakes done).
        self.connections_opened = 0

    async def connection(self, url: str) -> H3Connection:
        """The pooled connection to ``url``'s origin, opened now if there is none usable.

        Raises:
            ConnectionClosedError, OSError: It could not be opened.
        """
        origin = _origin(url)
        while True:
            if self._closed:
                raise trio.ClosedResourceError("the pool was closed")
            slot = self._slots.get(origin)
            if slot is None:
                slot = self._slots[origin] = _Slot()
                self._nursery.start_soon(self._run, origin, slot)
            await slot.ready.wait()
            connection = slot.connection
            if connection is not None and not connection.closed and (
                connection.goaway_received is None
            ):
                return connection
            self._evict(origin, slot)
            if slot.error is not None:
                raise slot.error

    def _evict(self, origin: Origin, slot: _Slot) -> None:
        if self._slots.get(origin) is slot:
            del self._slots[origin]
        slot.done.set()

    async def _run(self, origin: Origin, slot: _Slot) -> None:
        _, host, port = origin
        try:
            async with open_h3_connection(
                host, port, self._configuration, settings=self._settings,
                server_name=host, connection_factory=self._factory,
            ) as connection:
                self.connections_opened += 1
                slot.connection = connection
                slot.ready.set()
                await slot.done.wait()
        except (OSError, trio.BrokenResourceError) as exc:
            slot.error = exc  # the requester that waits for it raises it
        finally:
            slot.ready.set()
            if self._slots.get(origin) is slot:
                del self._slots[origin]

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: HeaderInput = (),
        body: Body | None = None,
    ) -> H3Response:
        """:meth:`H3Connection.request` on the pooled connection to ``url``'s origin.

        A request the server did not process (GOAWAY, H3_REQUEST_REJECTED) is retried once
        on a new connection, unless its body is an async iterable (it cannot be replayed).
        """
        retryable = body is None or isinstance(body, bytes | bytearray | memoryview)
        origin = _origin(url)
        for attempt in (0, 1):
            connection = await self.connection(url)
            try:
                return await connection.request(method, url, headers=headers, body=body)
            except StreamResetError as exc:
                if exc.error_code != _REJECTED or attempt or not retryable:
                    raise
            except trio.BrokenResourceError as exc:
                if "GOAWAY" not in str(exc) or attempt or not retryable:
                    raise
            slot = self._slots.get(origin)
            if slot is not None and slot.connection is connection:
                self._evict(origin, slot)  # not processed there: the next try gets a new one
        raise AssertionError("unreachable")  # pragma: no cover

    async def aclose(self) -> None:
        """Close every pooled connection (H3_NO_ERROR)."""
        self._closed = True
        for origin, slot in list(self._slots.items()):
            self._evict(origin, slot)
        await trio.lowlevel.checkpoint()


@asynccontextmanager
async def open_h3_pool(
    configuration: Configuration | None = None,
    *,
    settings: h3.Settings | None = None,
    connection_factory: ConnectionFactory | None = None,
) -> AsyncIterator[H3ConnectionPool]:
    """A pool of HTTP/3 connections, one per origin, closed when the block ends::

        async with trio_zttp.open_h3_pool() as pool:
            response = await pool.request("GET", "https://example.net/")

    Args:
        configuration: The QUIC client configuration for every connection (the server
            name is each origin's host).
        settings: The HTTP/3 SETTINGS to announce.
        connection_factory: The sans-IO QUIC engine (default ``quic.Connection``).
    """
    cfg = client_configuration(configuration)
    with collapse_exception_groups():
        async with trio.open_nursery() as nursery:
            pool = H3ConnectionPool(nursery, cfg, settings, connection_factory)
            try:
                yield pool
            finally:
                await pool.aclose()
