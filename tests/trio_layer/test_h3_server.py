"""serve_h3 over trio's fake network: handlers, responses, errors, graceful shutdown."""

from __future__ import annotations

import hashlib

import pytest
import trio

import trio_zttp
from trio_zttp import h3

from ._h3_helpers import h3_client, served

H3_NO_ERROR = h3.ErrorCode.H3_NO_ERROR
H3_REQUEST_CANCELLED = h3.ErrorCode.H3_REQUEST_CANCELLED
H3_REQUEST_REJECTED = h3.ErrorCode.H3_REQUEST_REJECTED


async def test_serve_h3_request_attributes_and_echo(fake_net, ca, server_cert, autojump_clock):
    seen: list[trio_zttp.H3Request] = []

    async def handler(request: trio_zttp.H3Request) -> None:
        seen.append(request)
        body = await request.read()
        await request.respond(
            201,
            [("X-Echo-Path", request.path), ("content-type", "application/octet-stream")],
            body=hashlib.sha256(body).digest() + body,
        )

    payload = bytes(range(256)) * 3000
    async with served(handler, server_cert) as server, h3_client(ca, server.port) as conn:
        response = await conn.request(
            "PUT", "/upload?x=1", headers=[("X-Custom", "yes")], body=payload
        )
        assert response.status == 201
        assert response.get_header("x-echo-path") == b"/upload?x=1"
        assert response.get_header(b"Content-Length") == str(32 + len(payload)).encode()
        data = await response.read()
        assert data == hashlib.sha256(payload).digest() + payload
    (request,) = seen
    assert (request.method, request.path, request.scheme) == ("PUT", "/upload?x=1", "https")
    assert request.authority == f"127.0.0.1:{server.port}"
    assert request.protocol is None
    assert request.get_header("x-custom") == b"yes"
    assert request.stream_id == 0
    assert all(not name.startswith(b":") for name, _ in request.headers)
    assert request.raw_headers[0] == (b":method", b"PUT")


async def test_serve_h3_one_task_per_request_stream(fake_net, ca, server_cert, autojump_clock):
    in_flight = 0
    most = 0

    async def handler(request: trio_zttp.H3Request) -> None:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        await trio.sleep(1)  # every request is in its handler at once
        in_flight -= 1
        await request.respond(200, body=request.path.encode() * 1000)

    results: dict[int, bytes] = {}
    async with served(handler, server_cert) as server, h3_client(ca, server.port) as conn:

        async def get(i: int) -> None:
            response = await conn.request("GET", f"/{i}")
            results[i] = await response.read()

        with trio.fail_after(5):
            async with trio.open_nursery() as nursery:
                for i in range(20):
                    nursery.start_soon(get, i)
    assert most == 20
    assert results == {i: f"/{i}".encode() * 1000 for i in range(20)}


async def test_handler_without_response_sends_500(fake_net, ca, server_cert, autojump_clock):
    async def handler(request: trio_zttp.H3Request) -> None:
        pass

    async with served(handler, server_cert) as server, h3_client(ca, server.port) as conn:
        response = await conn.request("GET", "/")
        assert response.status == 500
        assert await response.read() == b""


async def test_handler_streams_body_then_trailers(fake_net, ca, server_cert, autojump_clock):
    async def handler(request: trio_zttp.H3Request) -> None:
        assert await request.read() == b"abc"
        assert request.trailers == [(b"x-request-trailer", b"1")]
        await request.respond(103, [("link", "</style.css>; rel=preload")])
        await request.respond(200)
        for i in range(5):
            await request.send_body(b"part%d;" % i)
        await request.send_trailers([("X-Checksum", "42")])

    async with served(handler, server_cert) as server, h3_client(ca, server.port) as conn:
        async with conn.open_request_stream() as stream:
            await stream.send_request_header("POST", "/t")
            await stream.send_all(b"abc")
            await stream.send_trailers([("x-request-trailer", "1")])
            response = await stream.read_response()
            assert response.status == 200
            link = (b"link", b"</style.css>; rel=preload")
            assert response.interim == [[(b":status", b"103"), link]]
            assert await response.read() == b"part0;part1;part2;part3;part4;"
            assert response.trailers == [(b"x-checksum", b"42")]


async def test_handler_misuse_raises_runtime_errors(fake_net, ca, server_cert, autojump_clock):
    errors: list[str] = []

    async def handler(request: trio_zttp.H3Request) -> None:
        for attempt in (lambda: request.send_body(b"x"), lambda: request.send_trailers([])):
            with pytest.raises(RuntimeError) as info:
                await attempt()
            errors.append(str(info.value))
        with pytest.raises(RuntimeError):
            request.http_stream()
        with pytest.raises(ValueError):
            await request.respond(200, [("connection", "close")])  # connection-specific field
        await request.respond(204)
        with pytest.raises(RuntimeError, match="already sent"):
            await request.respond(200)
        request.http_stream()
        with pytest.raises(RuntimeError, match="already"):
            request.http_stream()
        with pytest.raises(RuntimeError, match="taken over"):
            await request.send_body(b"x")

    async with served(handler, server_cert) as server, h3_client(ca, server.port) as conn:
        response = await conn.request("GET", "/")
        assert response.status == 204
        await response.read()
    assert errors == ["respond() first", "respond() first"]


async def test_early_response_stops_the_upload_with_no_error(
    fake_net, ca, server_cert, autojump_clock
):
    """RFC 9114 §4.1: a complete response may end the request early (STOP_SENDING with
    H3_NO_ERROR); the client's upload ends quietly and the response is delivered."""

    async def handler(request: trio_zttp.H3Request) -> None:
        first = await request.body.receive_some(1000)
        assert bool(first) == (request.method == "POST")
        await request.respond(413, body=b"too large")

    async with served(handler, server_cert) as server, h3_client(ca, server.port) as conn:
        with trio.fail_after(10):
            response = await conn.request("POST", "/", body=b"x" * 5_000_000)
        assert response.status == 413
        assert await response.read() == b"too large"
        # the connection is fine afterwards
        assert (await conn.request("GET", "/")).status == 413


async def test_handler_exception_resets_the_stream_and_propagates(
    fake_net, ca, server_cert, autojump_clock
):
    got_headers = trio.Event()

    async def handler(request: trio_zttp.H3Request) -> None:
        await request.respond(200)
        await request.send_body(b"partial")
        await got_headers.wait()
        raise KeyError("handler bug")

    reset: list[int] = []
    with pytest.raises(KeyError, match="handler bug"):
        async with served(handler, server_cert) as server:
            async with h3_client(ca, server.port) as conn:
                response = await conn.request("GET", "/")
                got_headers.set()
                with pytest.raises(
                    (trio_zttp.StreamResetError, trio_zttp.ConnectionClosedError)
                ) as info:
                    await response.read()
                reset.append(info.value.error_code)
            await trio.sleep_forever()  # the server's crash cancels this
    # the stream was reset with H3_REQUEST_CANCELLED, or the connection closed with
    # H3_INTERNAL_ERROR when the crash got there first
    assert reset in ([H3_REQUEST_CANCELLED], [h3.ErrorCode.H3_INTERNAL_ERROR])


async def test_handler_nursery_receives_handler_tasks(fake_net, ca, server_cert, autojump_clock):
    async def handler(request: trio_zttp.H3Request) -> None:
        await request.respond(200, body=b"ok")
        raise ValueError("into the handler nursery")

    with pytest.RaisesGroup(
        pytest.RaisesExc(ValueError, match="into the handler nursery"), flatten_subgroups=True
    ):
        async with trio.open_nursery() as handlers:
            async with served(handler, server_cert, handler_nursery=handlers) as server:
                async with h3_client(ca, server.port) as conn:
                    response = await conn.request("GET", "/")
                    assert await response.read() == b"ok"
                await trio.sleep_forever()


async def test_peer_reset_ends_only_that_request(fake_net, ca, server_cert, autojump_clock):
    outcome: list[BaseException] = []

    async def handler(request: trio_zttp.H3Request) -> None:
        if request.path == "/slow":
            try:
                await request.read()
            except trio_zttp.StreamResetError as exc:
                outcome.append(exc)
                raise  # swallowed by serve_h3: the client's doing
            return
        await request.respond(200, body=b"still serving")

    async with served(handler, server_cert) as server, h3_client(ca, server.port) as conn:
        async with conn.open_request_stream() as stream:
            await stream.send_request_header("POST", "/slow")
            await stream.send_all(b"some")
            await trio.sleep(0.5)
            stream.reset()
        await trio.sleep(0.5)
        response = await conn.request("GET", "/")
        assert await response.read() == b"still serving"
    assert [type(e) for e in outcome] == [trio_zttp.StreamResetError]
    assert outcome[0].error_code == H3_REQUEST_CANCELLED  # type: ignore[attr-defined]


async def test_graceful_shutdown_completes_requests_in_flight(
    fake_net, ca, server_cert, autojump_clock
):
    started = trio.Event()
    finished: list[str] = []

    async def handler(request: trio_zttp.H3Request) -> None:
        if request.path == "/long":
            started.set()
            await trio.sleep(2)  # still running when the shutdown begins
        finished.append(request.path)
        await request.respond(200, body=b"done " + request.path.encode())

    async with served(handler, server_cert, drain_timeout=10) as server:
        async with h3_client(ca, server.port) as conn:
            async with trio.open_nursery() as nursery:
                results: list[bytes] = []

                async def long() -> None:
                    response = await conn.request("GET", "/long")
                    results.append(await response.read())

                nursery.start_soon(long)
                await started.wait()
                server.scope.cancel()  # GOAWAY, then drain
                await trio.sleep(0.5)
                assert conn.goaway_received is not None
                with pytest.raises(trio.BrokenResourceError, match="GOAWAY"):
                    await conn.request("GET", "/late")
            assert results == [b"done /long"]
            # once the drained request is done the server closes the connection; a request
            # sent before that close arrives fails with GOAWAY instead, so give it time
            await trio.sleep(1)
            with pytest.raises(trio_zttp.ConnectionClosedError) as info:
                with trio.fail_after(5):
                    await conn.received_settings()
                    await conn.request("GET", "/after")
    assert finished == ["/long"]
    assert info.value.error_code == H3_NO_ERROR
    assert info.value.by_peer


async def test_graceful_shutdown_is_bounded_by_drain_timeout(
    fake_net, ca, server_cert, autojump_clock
):
    cancelled: list[bool] = []

    async def handler(request: trio_zttp.H3Request) -> None:
        try:
            await trio.sleep_forever()
        except trio.Cancelled:
            cancelled.append(True)
            raise

    async with h3_client_and_server(handler, ca, server_cert) as (server, conn):
        stream = conn.open_request_stream()
        await stream.send_request_header("GET", "/stuck", end_stream=True)
        await trio.sleep(0.2)
        begun = trio.current_time()
        server.scope.cancel()
        with pytest.raises((trio_zttp.StreamResetError, trio_zttp.ConnectionClosedError)):
            await stream.read_response()
        assert 1.4 <= trio.current_time() - begun < 3
        await stream.aclose()
    assert cancelled == [True]


def h3_client_and_server(handler, ca, cert):  # type: ignore[no-untyped-def]
    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def both():  # type: ignore[no-untyped-def]
        async with served(handler, cert, drain_timeout=1.5) as server:
            async with h3_client(ca, server.port) as conn:
                yield server, conn

    return both()


@pytest.mark.parametrize(("configured", "argument", "retries"), [
    (True, None, 1),  # the configuration's retry=True means "always", as for serve_quic
    (False, None, 0),  # under load only
    (True, "never", 0),  # the argument wins
    (False, "always", 1),
])
async def test_serve_h3_takes_retry_from_the_configuration(
    fake_net, ca, server_cert, autojump_clock, configured, argument, retries
):
    async def handler(request: trio_zttp.H3Request) -> None:
        await request.respond(200, body=b"ok")

    options = {} if argument is None else {"retry": argument}
    async with served(handler, server_cert, server={"retry": configured}, **options) as server, \
            h3_client(ca, server.port) as conn:
        assert await (await conn.request("GET", "/")).read() == b"ok"
        assert server.endpoint.statistics().retries_sent == retries


async def test_serve_h3_refuses_a_client_configuration(ca) -> None:
    from ._h3_helpers import client_configuration

    async def handler(request: trio_zttp.H3Request) -> None:
        raise AssertionError("never called")  # pragma: no cover

    with pytest.raises(ValueError, match="server configuration"):
        await trio_zttp.serve_h3(handler, "127.0.0.1", 0, client_configuration(ca))


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5, 6])
async def test_http3_over_a_terrible_network(ca, server_cert, autojump_clock, seed) -> None:
    """Seeded loss, duplication, reordering, corruption and delay (the virtual network):
    concurrent downloads and uploads arrive intact, the ping-pong reaches 10 with resends.
    (Seed 2 delivers request stream 16 before 0-12: the later ones are still new requests.)"""
    from trio_zttp.testing import LinkConditions, open_virtual_network

    from .test_h3_datagrams import pingpong_server

    terrible = LinkConditions(
        loss=0.05, duplicate=0.03, reorder=0.05, reorder_delay=0.02, corrupt=0.01,
        delay=0.02, jitter=0.005, mtu=1400,
    )  # fmt: skip

    async def handler(request: trio_zttp.H3Request) -> None:
        if request.method == "CONNECT":
            await pingpong_server(request)
        elif request.method == "POST":
            data = await request.read()
            await request.respond(200, body=hashlib.sha256(data).digest())
        else:
            await request.respond(200, body=hashlib.sha256(request.path.encode()).digest() * 4000)

    async with (
        open_virtual_network(seed=seed, conditions=terrible) as network,
        served(handler, server_cert) as server,
        h3_client(ca, server.port) as conn,
    ):
        results: dict[str, bytes] = {}

        async def get(path: str) -> None:
            results[path] = await (await conn.request("GET", path)).read()

        async def post(size: int) -> None:
            body = bytes(range(256)) * (size // 256)
            response = await conn.request("POST", "/", body=body)
            assert await response.read() == hashlib.sha256(body).digest()

        with trio.fail_after(120):
            async with trio.open_nursery() as nursery:
                for i in range(4):
                    nursery.start_soon(get, f"/{i}")
                nursery.start_soon(post, 200_000)
            async with conn.open_request_stream() as stream:
                await stream.send_request_header("CONNECT", "/", protocol="ping-pong")
                assert (await stream.read_response()).status == 200
                count = 1
                while count < 10:
                    await stream.send_datagram(b"%d" % count)
                    with trio.move_on_after(0.3):  # lost: send it again
                        while (reply := int(await stream.receive_datagram())) <= count:
                            pass
                        count = reply + 1 if reply < 10 else reply
        assert results == {
            f"/{i}": hashlib.sha256(f"/{i}".encode()).digest() * 4000 for i in range(4)
        }
        assert network.statistics().links.dropped_loss > 0


async def test_serve_h3_first_request_runs_beside_later_ones(
    fake_net, ca, server_cert, autojump_clock
):
    # The request that comes with the handshake starts in the connection's own task: it
    # still runs concurrently with later requests, and a failing one still ends them all.
    second_arrived = trio.Event()
    cancelled: list[str] = []

    async def handler(request: trio_zttp.H3Request) -> None:
        if request.path == "/first":
            await second_arrived.wait()  # needs the second request's handler to run
            await request.respond(200, body=b"first")
        elif request.path == "/second":
            second_arrived.set()
            await request.respond(200, body=b"second")
        elif request.path == "/boom":
            raise KeyError("handler bug")
        else:
            try:
                await trio.sleep_forever()
            finally:
                cancelled.append(request.path)

    async with served(handler, server_cert) as server, h3_client(ca, server.port) as conn:
        got: dict[str, bytes] = {}

        async def get(path: str) -> None:
            got[path] = await (await conn.request("GET", path)).read()

        with trio.fail_after(5):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(get, "/first")
                await trio.sleep(0.5)
                nursery.start_soon(get, "/second")
    assert got == {"/first": b"first", "/second": b"second"}

    with pytest.raises(KeyError, match="handler bug"):
        async with served(handler, server_cert) as server, h3_client(ca, server.port) as conn:
            with trio.fail_after(5):
                async with trio.open_nursery() as nursery:

                    async def wait(path: str) -> None:
                        try:
                            await conn.request("GET", path)
                        except trio.BrokenResourceError:
                            pass

                    nursery.start_soon(wait, "/slow")
                    await trio.sleep(0.5)
                    nursery.start_soon(wait, "/boom")
                    await trio.sleep(2)
    assert cancelled == ["/slow"]
