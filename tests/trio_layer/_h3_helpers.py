"""Shared helpers for the HTTP/3 trio tests: the engine, configurations, a served pair.

The QUIC engine is our ``trio_zttp.quic.Connection``.  :class:`AioquicH3Engine` (aioquic's
sans-IO connection behind the trio layer's test adapter, plus the one property
``h3.QuicTransport`` needs that the adapter lacks) stays available as a stand-in for
comparisons (``ours_peer.py`` with ``TRIO_ZTTP_INTEROP_ENGINE=aioquic``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import attrs
import trio

import trio_zttp
from trio_zttp import quic
from trio_zttp._trio._groups import collapse_exception_groups
from trio_zttp.quic._config import Configuration
from trio_zttp.testing import CertificateAuthority, IssuedCertificate

from ._aioquic_adapter import AioquicEngine


class AioquicH3Engine(AioquicEngine):
    """The trio layer's aioquic adapter, with what ``h3.QuicTransport`` also needs."""

    @property
    def remote_max_datagram_frame_size(self) -> int | None:
        value: int | None = self._conn._remote_max_datagram_frame_size
        return value


#: The QUIC engine of these tests: our own.
ENGINE: Any = quic.Connection


def client_configuration(ca: CertificateAuthority, **overrides: Any) -> Configuration:
    values: dict[str, Any] = {
        "is_client": True,
        "alpn_protocols": ("h3",),
        "cadata": ca.pem,
        "max_datagram_frame_size": 65536,
        "idle_timeout": 10.0,
    }
    values.update(overrides)
    return Configuration(**values)


def server_configuration(cert: IssuedCertificate, **overrides: Any) -> Configuration:
    values: dict[str, Any] = {
        "is_client": False,
        "alpn_protocols": ("h3",),
        "certificate_chain": cert.chain,
        "private_key": cert.private_key,
        "max_datagram_frame_size": 65536,
        "idle_timeout": 10.0,
    }
    values.update(overrides)
    return Configuration(**values)


Handler = Callable[[trio_zttp.H3Request], Awaitable[object]]


@attrs.define
class Served:
    """A running ``serve_h3`` and what a test needs to reach and stop it."""

    endpoint: trio_zttp.QuicEndpoint
    scope: trio.CancelScope
    nursery: trio.Nursery

    @property
    def port(self) -> int:
        return self.endpoint.local_address[1]


@asynccontextmanager
async def served(
    handler: Handler,
    cert: IssuedCertificate,
    *,
    server: dict[str, Any] | None = None,
    **serve_options: Any,
) -> AsyncIterator[Served]:
    """``serve_h3`` on 127.0.0.1, port 0, in a nursery of its own; stopped at the end.

    A lone exception (say, from a handler) comes out as itself, not in a group.
    """
    with collapse_exception_groups():
        async with trio.open_nursery() as nursery:
            scope = trio.CancelScope()

            async def run(task_status: trio.TaskStatus[trio_zttp.QuicEndpoint]) -> None:
                with scope:
                    await trio_zttp.serve_h3(
                        handler,
                        "127.0.0.1",
                        0,
                        server_configuration(cert, **(server or {})),
                        connection_factory=ENGINE,
                        task_status=task_status,
                        **serve_options,
                    )

            endpoint: trio_zttp.QuicEndpoint = await nursery.start(run)
            try:
                yield Served(endpoint, scope, nursery)
            finally:
                scope.cancel()


@asynccontextmanager
async def h3_client(
    ca: CertificateAuthority, port: int, **client: Any
) -> AsyncIterator[trio_zttp.H3Connection]:
    """``open_h3_connection`` to ``localhost:port`` over 127.0.0.1 with the test CA."""
    async with trio_zttp.open_h3_connection(
        "127.0.0.1",
        port,
        client_configuration(ca, **client),
        server_name="localhost",
        connection_factory=ENGINE,
    ) as connection:
        yield connection
