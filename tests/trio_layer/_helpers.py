"""Shared helpers for the trio-layer tests: configurations and connected pairs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import attrs
import trio

import trio_zttp
from trio_zttp import quic
from trio_zttp.quic._config import Configuration
from trio_zttp.testing import CertificateAuthority, IssuedCertificate

#: The engine every trio-layer test runs on.
ENGINE = quic.Connection
ALPN = ("zttp-test",)


def client_configuration(ca: CertificateAuthority, **overrides: Any) -> Configuration:
    values: dict[str, Any] = {
        "is_client": True,
        "alpn_protocols": ALPN,
        "cadata": ca.pem,
        "max_datagram_frame_size": 65536,
        "idle_timeout": 10.0,
    }
    values.update(overrides)
    return Configuration(**values)


def server_configuration(cert: IssuedCertificate, **overrides: Any) -> Configuration:
    values: dict[str, Any] = {
        "is_client": False,
        "alpn_protocols": ALPN,
        "certificate_chain": cert.chain,
        "private_key": cert.private_key,
        "max_datagram_frame_size": 65536,
        "idle_timeout": 10.0,
    }
    values.update(overrides)
    return Configuration(**values)


@attrs.frozen
class Pair:
    client: trio_zttp.QuicConnection
    server: trio_zttp.QuicConnection
    client_endpoint: trio_zttp.QuicEndpoint
    server_endpoint: trio_zttp.QuicEndpoint


@asynccontextmanager
async def connected_pair(
    ca: CertificateAuthority,
    cert: IssuedCertificate,
    *,
    host: str = "127.0.0.1",
    client: dict[str, Any] | None = None,
    server: dict[str, Any] | None = None,
    endpoint: dict[str, Any] | None = None,
) -> AsyncIterator[Pair]:
    """A client and a server connection over two endpoints on ``host``."""
    async with (
        trio_zttp.open_quic_endpoint(
            (host, 0), server_configuration(cert, **(server or {})), connection_factory=ENGINE,
            **(endpoint or {}),
        ) as server_endpoint,
        trio_zttp.open_quic_endpoint(
            (host, 0), client_configuration(ca, **(client or {})), connection_factory=ENGINE
        ) as client_endpoint,
        client_endpoint.connect(
            server_endpoint.local_address, server_name="localhost"
        ) as client_connection,
    ):
        server_connection = await server_endpoint.accept()
        async with server_connection:
            yield Pair(client_connection, server_connection, client_endpoint, server_endpoint)
        assert server_endpoint.statistics().internal_errors == 0
        assert client_endpoint.statistics().internal_errors == 0


async def echo_through(pair: Pair, payload: bytes) -> bytes:
    """Send ``payload`` client -> server on one stream while the server echoes it back;
    returns what came back (the caller compares)."""

    async def echo() -> None:
        async with await pair.server.accept_stream() as stream:
            while data := await stream.receive_some():
                await stream.send_all(data)

    got = bytearray()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(echo)
        async with pair.client.open_stream() as stream:

            async def send() -> None:
                await stream.send_all(payload)
                await stream.send_eof()

            nursery.start_soon(send)
            while data := await stream.receive_some():
                got += data
    return bytes(got)
