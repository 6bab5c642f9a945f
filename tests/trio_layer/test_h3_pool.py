"""open_h3_pool: one connection per origin, replaced after GOAWAY or close."""

from __future__ import annotations

import pytest
import trio

import trio_zttp

from ._h3_helpers import ENGINE, client_configuration, served


def pool(ca):  # type: ignore[no-untyped-def]
    return trio_zttp.open_h3_pool(
        client_configuration(ca), connection_factory=ENGINE
    )


async def test_pool_shares_one_connection_per_origin(fake_net, ca, server_cert, autojump_clock):
    connections: set[int] = set()

    async def handler(request: trio_zttp.H3Request) -> None:
        connections.add(id(request.connection))
        await request.respond(200, body=request.authority.encode() if request.authority else b"")

    async with served(handler, server_cert) as a, served(handler, server_cert) as b:
        async with pool(ca) as p:
            urls = [f"https://127.0.0.1:{port}/{i}" for port in (a.port, b.port) for i in range(5)]
            got: list[bytes] = []

            async def get(url: str) -> None:
                got.append(await (await p.request("GET", url)).read())

            async with trio.open_nursery() as nursery:
                for url in urls:
                    nursery.start_soon(get, url)
            assert sorted(got) == sorted(f"127.0.0.1:{url.split(':')[2].split('/')[0]}".encode()
                                         for url in urls)
            assert p.connections_opened == 2
            assert (await p.connection(urls[0])) is (await p.connection(urls[1]))
    assert len(connections) == 2


async def test_pool_replaces_a_connection_after_goaway(fake_net, ca, server_cert, autojump_clock):
    connections: list[int] = []

    async def handler(request: trio_zttp.H3Request) -> None:
        connections.append(id(request.connection))
        if request.path == "/bye":
            request.connection.send_goaway()
        await request.respond(200, body=b"ok")

    async with served(handler, server_cert) as server, pool(ca) as p:
        url = f"https://127.0.0.1:{server.port}"
        assert await (await p.request("GET", url + "/bye")).read() == b"ok"
        await trio.sleep(0.5)  # the GOAWAY arrives
        assert await (await p.request("GET", url + "/after")).read() == b"ok"
        assert p.connections_opened == 2
    assert len(set(connections)) == 2


async def test_pool_reopens_after_the_server_closed(fake_net, ca, server_cert, autojump_clock):
    async def handler(request: trio_zttp.H3Request) -> None:
        await request.respond(200, body=b"ok")
        if request.path == "/close":
            await trio.sleep(0.1)  # closing at once would discard the response in flight
            await request.connection.aclose()

    async with served(handler, server_cert) as server, pool(ca) as p:
        url = f"https://127.0.0.1:{server.port}"
        assert await (await p.request("GET", url + "/close")).read() == b"ok"
        await trio.sleep(0.5)
        assert await (await p.request("GET", url + "/")).read() == b"ok"
        assert p.connections_opened == 2


async def test_pool_reports_connection_failures(fake_net, server_cert, autojump_clock) -> None:
    from trio_zttp.testing import CertificateAuthority

    async def handler(request: trio_zttp.H3Request) -> None:
        await request.respond(204)  # pragma: no cover

    async with served(handler, server_cert) as server, pool(CertificateAuthority.create()) as p:
        with pytest.raises(trio_zttp.ConnectionClosedError):
            await p.request("GET", f"https://127.0.0.1:{server.port}/")
        with pytest.raises(ValueError, match="https"):
            await p.request("GET", "/relative")
