"""open_h3_connection over trio's fake network: requests, low-level streams, cancellation,
connection close codes, GOAWAY, flow control reaching the application."""

from __future__ import annotations

import pytest
import trio

import trio_zttp
from trio_zttp import h3

from ._h3_helpers import ENGINE, client_configuration, h3_client, served

H3_NO_ERROR = h3.ErrorCode.H3_NO_ERROR
H3_INTERNAL_ERROR = h3.ErrorCode.H3_INTERNAL_ERROR
H3_REQUEST_CANCELLED = h3.ErrorCode.H3_REQUEST_CANCELLED


async def echo(request: trio_zttp.H3Request) -> None:
    body = await request.read()
    await request.respond(
        200, [("x-authority", request.authority or ""), ("x-scheme", request.scheme or "")],
        body=body or request.path.encode(),
    )


async def test_request_absolute_url_sets_scheme_and_authority(
    fake_net, ca, server_cert, autojump_clock
):
    async with served(echo, server_cert) as server, h3_client(ca, server.port) as conn:
        assert conn.is_client
        assert conn.authority == f"127.0.0.1:{server.port}"
        response = await conn.request("GET", "https://example.com:8443/a/b?c=d")
        assert response.get_header("x-authority") == b"example.com:8443"
        assert response.get_header("x-scheme") == b"https"
        assert await response.read() == b"/a/b?c=d"
        with pytest.raises(ValueError, match="absolute URL"):
            await conn.request("GET", "no-slash")


async def test_request_body_from_an_async_iterable(fake_net, ca, server_cert, autojump_clock):
    async def parts():  # type: ignore[no-untyped-def]
        for i in range(50):
            yield b"%04d" % i * 500

    async with served(echo, server_cert) as server, h3_client(ca, server.port) as conn:
        response = await conn.request("POST", "/", body=parts())
        assert await response.read() == b"".join(b"%04d" % i * 500 for i in range(50))


async def test_response_body_streams_and_read_limits(fake_net, ca, server_cert, autojump_clock):
    async def handler(request: trio_zttp.H3Request) -> None:
        await request.respond(200)
        for _ in range(10):
            await request.send_body(b"z" * 10_000)
            await trio.sleep(0.01)

    async with served(handler, server_cert) as server, h3_client(ca, server.port) as conn:
        async with await conn.request("GET", "/") as response:
            chunk = await response.body.receive_some(100)
            assert chunk == b"z" * 100
            total = len(chunk)
            while data := await response.body.receive_some():
                total += len(data)
            assert total == 100_000
        response = await conn.request("GET", "/")
        with pytest.raises(ValueError, match="max_size"):
            await response.read(max_size=50_000)
        await response.aclose()
        with pytest.raises(trio.ClosedResourceError):
            await response.body.receive_some()


async def test_request_stream_full_duplex(fake_net, ca, server_cert, autojump_clock):
    """Server streams back what it reads while the client still sends: needs the low level."""

    async def handler(request: trio_zttp.H3Request) -> None:
        await request.respond(200)
        while data := await request.body.receive_some():
            await request.send_body(data.upper())

    async with served(handler, server_cert) as server, h3_client(ca, server.port) as conn:
        async with conn.open_request_stream() as stream:
            await stream.send_request_header("POST", "/duplex")
            response = await stream.read_response()
            assert response.status == 200
            got = b""
            for i in range(200):
                await stream.send_all(b"chunk %d;" % i * 100)
                got += await stream.receive_some()
            await stream.send_eof()
            while data := await stream.receive_some():
                got += data
        assert got == b"".join(b"CHUNK %d;" % i * 100 for i in range(200))


async def test_concurrent_requests_share_one_connection(fake_net, ca, server_cert, autojump_clock):
    async with served(echo, server_cert) as server, h3_client(ca, server.port) as conn:
        results: dict[int, bytes] = {}

        async def post(i: int) -> None:
            response = await conn.request("POST", "/", body=bytes([i]) * 50_000)
            results[i] = await response.read()

        async with trio.open_nursery() as nursery:
            for i in range(12):
                nursery.start_soon(post, i)
        assert results == {i: bytes([i]) * 50_000 for i in range(12)}
        assert conn.quic.statistics().streams_opened == 0  # every stream is HTTP/3's


@pytest.mark.parametrize("how", ["cancel", "exception"])
async def test_leaving_a_request_stream_early_resets_it(
    fake_net, ca, server_cert, autojump_clock, how: str
):
    seen: list[BaseException] = []
    handler_saw = trio.Event()

    async def handler(request: trio_zttp.H3Request) -> None:
        try:
            await request.read()
        except trio_zttp.StreamResetError as exc:
            seen.append(exc)
            handler_saw.set()
            raise
        await request.respond(200, body=b"unexpected")

    async with served(handler, server_cert) as server, h3_client(ca, server.port) as conn:
        if how == "cancel":
            with trio.move_on_after(1):
                async with conn.open_request_stream() as stream:
                    await stream.send_request_header("POST", "/")
                    await stream.send_all(b"partial body")
                    await trio.sleep_forever()
        else:
            with pytest.raises(ZeroDivisionError):
                async with conn.open_request_stream() as stream:
                    await stream.send_request_header("POST", "/")
                    await stream.send_all(b"partial body")
                    await trio.sleep(0.1)
                    _ = 1 / 0
        with trio.fail_after(2):
            await handler_saw.wait()
    assert len(seen) == 1
    assert seen[0].error_code == H3_REQUEST_CANCELLED  # type: ignore[attr-defined]


async def test_cancelled_request_call_resets_the_stream(fake_net, ca, server_cert, autojump_clock):
    handler_saw: list[int] = []
    waiting = trio.Event()

    async def handler(request: trio_zttp.H3Request) -> None:
        waiting.set()
        try:
            await request.read()
            await trio.sleep_forever()  # never answers
        finally:
            # the client's RESET_STREAM / STOP_SENDING arrive as errors on the next send
            with trio.CancelScope(shield=True), pytest.raises(
                (trio_zttp.StreamStoppedError, trio_zttp.ConnectionClosedError)
            ) as info:
                await trio.sleep(0.5)
                await request.respond(200, body=b"late")
            handler_saw.append(info.value.error_code)

    async with served(handler, server_cert) as server, h3_client(ca, server.port) as conn:
        with trio.move_on_after(1):
            await conn.request("GET", "/")
        assert waiting.is_set()
        await trio.sleep(1)
    assert handler_saw == [H3_REQUEST_CANCELLED]


@pytest.mark.parametrize(
    ("exit_with", "code"), [(None, H3_NO_ERROR), (KeyError, H3_INTERNAL_ERROR), (0x1FF, 0x1FF)]
)
async def test_connection_close_codes(
    fake_net, ca, server_cert, autojump_clock, exit_with: object, code: int
):
    closed: list[trio_zttp.ConnectionClosedError] = []
    arrived = trio.Event()
    done = trio.Event()

    async def handler(request: trio_zttp.H3Request) -> None:
        arrived.set()
        try:
            await request.connection.quic.accept_stream()  # raises when the client closes
        except trio_zttp.ConnectionClosedError as exc:
            closed.append(exc)
            done.set()

    async with served(handler, server_cert) as server:
        with pytest.raises(KeyError) if exit_with is KeyError else _nothing():
            async with h3_client(ca, server.port) as conn:
                stream = conn.open_request_stream()
                await stream.send_request_header("GET", "/", end_stream=True)
                await arrived.wait()
                if exit_with is KeyError:
                    raise KeyError("client bug")
                if isinstance(exit_with, int):
                    await conn.aclose(error_code=exit_with, reason="bye")
        with trio.fail_after(2):
            await done.wait()
    assert [(c.error_code, c.by_peer, c.application) for c in closed] == [(code, True, True)]


def _nothing():  # type: ignore[no-untyped-def]
    from contextlib import nullcontext

    return nullcontext()


async def test_goaway_makes_new_requests_fail_fast(fake_net, ca, server_cert, autojump_clock):
    gate = trio.Event()

    async def handler(request: trio_zttp.H3Request) -> None:
        if request.path == "/goaway":
            request.connection.send_goaway()
            await gate.wait()
        await request.respond(200, body=request.path.encode())

    async with served(handler, server_cert) as server, h3_client(ca, server.port) as conn:
        async with trio.open_nursery() as nursery:
            got: list[bytes] = []

            async def first() -> None:
                got.append(await (await conn.request("GET", "/goaway")).read())

            nursery.start_soon(first)
            await trio.sleep(0.5)
            assert conn.goaway_received == 4  # the request in flight (stream 0) completes
            with pytest.raises(trio.BrokenResourceError, match="GOAWAY"):
                await conn.request("GET", "/refused")
            gate.set()
        assert got == [b"/goaway"]


async def test_unread_response_backpressures_the_server(fake_net, ca, server_cert, autojump_clock):
    """Flow control reaches the application: a client that does not read stops the server's
    send_body once the stream window (plus the engine's allowance) is full."""
    sent = 0

    async def handler(request: trio_zttp.H3Request) -> None:
        nonlocal sent
        await request.respond(200)
        for _ in range(100):
            await request.send_body(b"b" * 10_000)
            sent += 10_000
        await request.send_body(b"", end_stream=True)

    window = 64 * 1024
    async with served(handler, server_cert) as server, h3_client(
        ca, server.port, max_stream_data=window, max_data=4 * window
    ) as conn:
        response = await conn.request("GET", "/")
        await trio.sleep(2)
        assert window <= sent <= window + 64 * 1024
        assert len(await response.read()) == 1_000_000
        assert sent == 1_000_000


async def test_small_windows_carry_large_bodies_both_ways(
    fake_net, ca, server_cert, autojump_clock
):
    """Frame overhead is credited too: many windows' worth of DATA frames go through."""
    window = 16 * 1024
    async with served(
        echo, server_cert, server={"max_stream_data": window, "max_data": 2 * window}
    ) as server, h3_client(ca, server.port, max_stream_data=window, max_data=2 * window) as conn:
        payload = bytes(range(256)) * 4000  # 1 MB: 64 stream windows
        with trio.fail_after(30):
            response = await conn.request("POST", "/", body=payload)
            assert await response.read() == payload


async def test_open_h3_connection_needs_a_client_configuration(server_cert) -> None:
    from ._h3_helpers import server_configuration

    with pytest.raises(ValueError, match="client configuration"):
        async with trio_zttp.open_h3_connection(
            "127.0.0.1", 4433, server_configuration(server_cert), connection_factory=ENGINE
        ):
            pass  # pragma: no cover


async def test_handshake_failure_raises_connection_closed(fake_net, server_cert, autojump_clock):
    from trio_zttp.testing import CertificateAuthority

    other = CertificateAuthority.create(name="someone else")
    async with served(echo, server_cert) as server:
        with pytest.raises(trio_zttp.ConnectionClosedError) as info:
            async with trio_zttp.open_h3_connection(
                "127.0.0.1", server.port, client_configuration(other),
                server_name="localhost", connection_factory=ENGINE,
            ):
                pass  # pragma: no cover
    assert 0x100 <= info.value.error_code < 0x200  # CRYPTO_ERROR: the TLS alert
    assert not info.value.by_peer


async def test_closing_the_quic_connection_wakes_a_waiting_request(
    fake_net, ca, server_cert, autojump_clock
):
    # A close from underneath (the QUIC connection's own aclose) wakes the HTTP/3 waiters at
    # once, not when the engine reports the end after its closing period.
    arrived = trio.Event()

    async def handler(request: trio_zttp.H3Request) -> None:
        arrived.set()
        await trio.sleep_forever()

    async with served(handler, server_cert) as server, h3_client(ca, server.port) as conn:
        failed: list[BaseException] = []
        woke_at: list[float] = []

        async def waiting_request() -> None:
            try:
                await conn.request("GET", "/")
            except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                failed.append(exc)
                woke_at.append(trio.current_time())

        async with trio.open_nursery() as nursery:
            nursery.start_soon(waiting_request)
            await arrived.wait()
            closed_at = trio.current_time()
            await conn.quic.aclose()  # waits out the closing period
        assert len(failed) == 1
        assert woke_at[0] - closed_at < 0.01, woke_at[0] - closed_at


class _FailingEngine:
    """Our QUIC engine, whose ``datagrams_to_send`` raises once ``boom`` is set (a bug)."""

    boom = False

    def __init__(self, *args: object, **kwargs: object) -> None:
        self._inner = ENGINE(*args, **kwargs)

    def datagrams_to_send(self, now: float) -> object:
        if self.boom:
            raise RuntimeError("engine bug")
        return self._inner.datagrams_to_send(now)

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)


async def test_an_engine_failure_wakes_a_waiting_request(
    fake_net, ca, server_cert, autojump_clock
):
    # The connection ends without the engine saying so (it raised): the HTTP/3 waiters still
    # wake, and fail.
    arrived = trio.Event()
    engines: list[_FailingEngine] = []

    def factory(*args: object, **kwargs: object) -> _FailingEngine:
        engines.append(_FailingEngine(*args, **kwargs))
        return engines[-1]

    async def handler(request: trio_zttp.H3Request) -> None:
        arrived.set()
        await trio.sleep_forever()

    async with served(handler, server_cert) as server:
        failed: list[BaseException] = []
        async with trio_zttp.open_h3_connection(
            "127.0.0.1", server.port, client_configuration(ca),
            server_name="localhost", connection_factory=factory,
        ) as conn:

            async def waiting_request() -> None:
                try:
                    await conn.request("GET", "/")
                except trio_zttp.ConnectionClosedError as exc:
                    failed.append(exc)

            with trio.fail_after(5):
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(waiting_request)
                    await arrived.wait()
                    engines[0].boom = True
                    conn.quic.request_key_update()  # the driver flushes: the engine raises
        assert len(failed) == 1


async def test_request_bodies_of_every_kind_and_size_arrive_whole(
    fake_net, ca, server_cert, autojump_clock
):
    # bytes that the stream's credit takes whole go with the request header (one write);
    # other kinds and sizes beyond the credit take send_data's path: the same result
    window = 16 * 1024
    async with served(echo, server_cert, server={"max_stream_data": window}) as server, \
            h3_client(ca, server.port) as conn:
        for size in (1, 63, 1023, 1024, 5000, window - 10, window + 10, 3 * window):
            payload = bytes(range(256)) * (size // 256) + bytes(size % 256)
            for body in (payload, bytearray(payload), memoryview(payload)):
                with trio.fail_after(10):
                    response = await conn.request("POST", f"/{size}", body=body)
                    assert await response.read() == payload, (size, type(body))
        response = await conn.request("POST", "/empty", body=b"")
        assert await response.read() == b"/empty"
