"""The endpoint's entry points: :func:`open_quic_endpoint`, :func:`open_quic_connection` and
:func:`serve_quic` (an endpoint per call, its receive task in the caller's nursery), and the
configuration checks they share.  Kept apart from :mod:`.endpoint` for size."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, Literal, NoReturn

import attrs
import trio

from ..quic._config import Configuration
from ._engine import ConnectionFactory, default_connection_factory
from ._groups import collapse_exception_groups
from ._udp import DatagramTransport, open_transport
from .connection import QuicConnection
from .endpoint import QuicEndpoint

__all__ = ["open_quic_connection", "open_quic_endpoint", "serve_quic"]


def _split_configurations(
    configuration: Configuration, server_configuration: Configuration | None
) -> tuple[Configuration | None, Configuration | None]:
    if configuration.is_client:
        client, server = configuration, server_configuration
    else:
        if server_configuration is not None:
            raise ValueError("configuration is already a server configuration")
        client, server = None, configuration
    if server is not None:
        if server.is_client:
            raise ValueError("server_configuration must have is_client=False")
        if not server.certificate_chain or server.private_key is None:
            raise ValueError("a server configuration needs certificate_chain and private_key")
    lengths = {c.connection_id_length for c in (client, server) if c is not None}
    if len(lengths) != 1 or 0 in lengths:
        raise ValueError(
            "the endpoint routes by connection ID: client and server configurations need the "
            "same connection_id_length, at least 1"
        )
    return client, server


def _endpoint_configuration(base: Configuration, key: bytes, *, share: bool) -> Configuration:
    """``base`` as an endpoint runs it (its own flow-control crediting and Retry decisions,
    the endpoint's reset key), made once per base and key: the TLS setup and other caches of
    a configuration are built once, however many endpoints use it."""

    def derive() -> Configuration:
        changes: dict[str, Any] = {"consume_on_delivery": False, "stateless_reset_key": key}
        if not base.is_client:
            changes["retry"] = False  # the endpoint decides on Retry
        return attrs.evolve(base, **changes)

    if not share:
        return derive()  # a key given to this endpoint alone: nothing to share
    derived: Configuration = base.shared(f"endpoint configuration {key.hex()}", derive)
    return derived


@asynccontextmanager
async def open_quic_endpoint(
    local_address: tuple[str, int],
    configuration: Configuration,
    *,
    server_configuration: Configuration | None = None,
    connection_factory: ConnectionFactory | None = None,
    retry: Literal["never", "under_load", "always"] | None = None,
    backlog: int = 128,
    stateless_reset_key: bytes | None = None,
    fast_path: bool | None = None,
) -> AsyncIterator[QuicEndpoint]:
    """Bind a UDP socket and run a QUIC endpoint on it for the duration of the block.

    ``configuration`` is the client configuration when ``is_client`` is true (then
    ``server_configuration`` optionally adds the server role on the same socket), or
    the server configuration otherwise.  Leaving the block closes every connection:
    NO_ERROR and a bounded drain after a normal exit, an error code after an exception.

    Args:
        local_address: ``(host, port)`` to bind; port 0 picks one.
        configuration: Client or server configuration.
        server_configuration: A server configuration for an endpoint that is both.
        connection_factory: Builds the sans-IO engine per connection (default
            :class:`trio_zttp.quic.Connection`).
        retry: When the server sends Retry to validate a client address before keeping
            any state for it: "never", "under_load" (once half the backlog is in use) or
            "always".  Default: "always" if the server configuration says ``retry=True``,
            else "under_load".  Tokens come from the server configuration's
            ``token_handler`` (share one between processes on one port).
        backlog: Most server connections in the handshake or waiting for
            :meth:`QuicEndpoint.accept` at once; further Initials are dropped.
        stateless_reset_key: 32-byte static key for stateless reset tokens (share it
            between processes on one port).  Default: the configuration's
            ``stateless_reset_key``, else random.  The endpoint's connections use it too.
        fast_path: None: GSO/GRO when the kernel has it; True: require it; False: never.

    The endpoint hands its connections copies of the configurations with
    ``consume_on_delivery=False`` (credit follows what the application reads),
    ``stateless_reset_key`` set to the endpoint's key, and ``retry=False`` (the endpoint
    sends Retry itself, statelessly).

    A server configuration with ``preferred_ipv4_address`` and / or
    ``preferred_ipv6_address`` (RFC 9000 §9.6) makes the endpoint bind one more socket at
    each (with the same ``fast_path``), closed with the endpoint: clients that follow the
    preferred address move there once the handshake is confirmed, and each connection
    answers from the socket its path uses (:attr:`QuicConnection.local_address`,
    :attr:`QuicEndpoint.preferred_addresses`, and the statistics'
    ``datagrams_received_at_preferred_address``).  That socket takes no handshakes.

    Raises:
        ValueError: ``backlog`` below 1.
        OSError: A socket could not be bound (none stays open).
    """
    client, server = _split_configurations(configuration, server_configuration)
    if backlog < 1:
        raise ValueError("backlog must be at least 1")
    if retry is None:
        retry = "always" if server is not None and server.retry else "under_load"
    key = stateless_reset_key
    for candidate in (server, client):
        if key is None and candidate is not None:
            key = candidate.stateless_reset_key
    if key is None:
        # one per configuration, not per endpoint: endpoints opened one per connection
        # (open_quic_connection) then share the derived configuration below and its caches
        key = configuration.shared("endpoint stateless reset key",
                                   lambda: configuration.random_bytes(32))
    share = stateless_reset_key is None
    if client is not None:
        client = _endpoint_configuration(client, key, share=share)
    if server is not None:
        server = _endpoint_configuration(server, key, share=share)
    factory = connection_factory if connection_factory is not None else (
        default_connection_factory()
    )
    random_bytes = configuration.random_bytes
    transport = await open_transport(local_address, fast_path=fast_path)
    preferred: list[DatagramTransport] = []
    try:
        if server is not None:
            for address in (server.preferred_ipv4_address, server.preferred_ipv6_address):
                if address is not None:
                    preferred.append(await open_transport(address, fast_path=fast_path))
    except BaseException:
        for opened in (transport, *preferred):
            opened.close()
        raise
    try:
        with collapse_exception_groups():
            async with trio.open_nursery() as nursery:
                endpoint = QuicEndpoint(
                    transport=transport,
                    nursery=nursery,
                    client_configuration=client,
                    server_configuration=server,
                    connection_factory=factory,
                    retry=retry,
                    backlog=backlog,
                    stateless_reset_key=key,
                    random_bytes=random_bytes,
                    connection_id_length=configuration.connection_id_length,
                    preferred_transports=tuple(preferred),
                )
                nursery.start_soon(endpoint._receive_loop)
                for tag in range(1, len(preferred) + 1):
                    nursery.start_soon(endpoint._receive_loop, tag)
                try:
                    yield endpoint
                except BaseException as exc:
                    await endpoint._shutdown(exc)
                    raise
                else:
                    await endpoint._shutdown(None)
                finally:
                    # closing the socket ends the receive task (ClosedResourceError, no
                    # cancellation to deliver); the cancel ends drivers still running.
                    # (The endpoint's socket: a rebind replaced the one opened here.)
                    transport = endpoint._transport
                    transport.close()
                    for extra in preferred:
                        extra.close()
                    nursery.cancel_scope.cancel()
    finally:
        transport.close()
        for extra in preferred:
            extra.close()


@asynccontextmanager
async def open_quic_connection(
    address: tuple[str, int],
    configuration: Configuration,
    *,
    server_name: str | None = None,
    local_address: tuple[str, int] | None = None,
    connection_factory: ConnectionFactory | None = None,
) -> AsyncIterator[QuicConnection]:
    """Open an endpoint of its own and one client connection on it.

    Args:
        address: The server's ``(host, port)``.
        configuration: A client configuration.
        server_name: See :meth:`QuicEndpoint.connect`.
        local_address: Where to bind (default: any address, port 0, matching the
            server address's family when it is an IP literal).
        connection_factory: See :func:`open_quic_endpoint`.
    """
    if local_address is None:
        local_address = ("::", 0) if ":" in address[0] else ("0.0.0.0", 0)
    async with (
        open_quic_endpoint(
            local_address, configuration, connection_factory=connection_factory
        ) as endpoint,
        endpoint.connect(address, server_name=server_name) as connection,
    ):
        yield connection


async def _run_handler(
    handler: Callable[[QuicConnection], Awaitable[object]], connection: QuicConnection
) -> None:
    async with connection:
        await handler(connection)


async def serve_quic(
    handler: Callable[[QuicConnection], Awaitable[object]],
    host: str,
    port: int,
    configuration: Configuration,
    *,
    handler_nursery: trio.Nursery | None = None,
    connection_factory: ConnectionFactory | None = None,
    task_status: trio.TaskStatus[QuicEndpoint] = trio.TASK_STATUS_IGNORED,
) -> NoReturn:
    """Serve QUIC forever: one ``handler(connection)`` task per incoming connection.

    Use with ``await nursery.start(serve_quic, handler, host, port, configuration)``,
    which returns the bound :class:`QuicEndpoint`.  Each handler runs inside
    ``async with connection``: returning closes the connection with NO_ERROR, an
    exception closes it with an error code and then propagates (as in
    :func:`trio.serve_tcp`), into ``handler_nursery`` if one is given.

    Args:
        handler: Called with each connection once its handshake completed.
        host: Address to bind.
        port: Port to bind (0 picks one; read it from the endpoint's ``local_address``).
        configuration: A server configuration.
        handler_nursery: Where handler tasks run (default: a nursery inside this task).
        connection_factory: See :func:`open_quic_endpoint`.
        task_status: Set by ``nursery.start``.
    """
    if configuration.is_client:
        raise ValueError("serve_quic needs a server configuration (is_client=False)")
    async with open_quic_endpoint(
        (host, port), configuration, connection_factory=connection_factory
    ) as endpoint:
        with collapse_exception_groups():
            async with trio.open_nursery() as nursery:
                task_status.started(endpoint)
                target = handler_nursery if handler_nursery is not None else nursery
                while True:
                    connection = await endpoint.accept()
                    target.start_soon(_run_handler, handler, connection)
    raise AssertionError("unreachable")  # pragma: no cover
