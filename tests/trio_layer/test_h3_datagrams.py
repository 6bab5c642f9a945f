"""SETTINGS negotiation, extended CONNECT, stream takeover and HTTP datagrams (RFC 9297)."""

from __future__ import annotations

import pytest
import trio

import trio_zttp
from trio_zttp import h3

from ._h3_helpers import h3_client, served


async def pingpong_server(request: trio_zttp.H3Request) -> None:
    """The issue-7 ping-pong: answer n with n + 1 until the client finishes the stream."""
    if request.method != "CONNECT" or request.protocol != "ping-pong":
        await request.respond(501 if request.method == "CONNECT" else 404)
        return
    with trio.move_on_after(5):
        await request.connection.received_settings()
    settings = request.connection.peer_settings
    if settings is None or not settings.h3_datagram:
        await request.respond(400)
        return
    await request.respond(200)
    stream = request.http_stream()
    while True:
        try:
            data = await stream.receive_datagram()
        except trio.EndOfChannel:
            return  # the client finished: the handler returns, the stream gets FIN
        await stream.send_datagram(b"%d" % (int(data) + 1))


async def test_settings_are_exchanged_both_ways(fake_net, ca, server_cert, autojump_clock):
    server_view: list[h3.Settings] = []

    async def handler(request: trio_zttp.H3Request) -> None:
        server_view.append(await request.connection.received_settings())
        await request.respond(204)

    custom = h3.Settings(
        qpack_max_table_capacity=0, h3_datagram=True, unknown=((0x1234, 7),)
    )
    async with served(handler, server_cert) as server:
        async with trio_zttp.open_h3_connection(
            "127.0.0.1", server.port, _client_config(ca), server_name="localhost",
            settings=custom, connection_factory=_engine(),
        ) as conn:
            assert conn.local_settings == custom
            settings = await conn.received_settings()
            assert conn.peer_settings is settings
            assert settings.enable_connect_protocol and settings.h3_datagram
            assert settings.qpack_max_table_capacity == 4096
            assert conn.datagrams_enabled
            assert (await conn.request("GET", "/")).status == 204
    (seen,) = server_view
    assert seen.h3_datagram and not seen.enable_connect_protocol
    assert seen.qpack_max_table_capacity == 0
    assert seen.unknown == ((0x1234, 7),)


def _client_config(ca, **overrides):  # type: ignore[no-untyped-def]
    from ._h3_helpers import client_configuration

    return client_configuration(ca, **overrides)


def _engine():  # type: ignore[no-untyped-def]
    from ._h3_helpers import ENGINE

    return ENGINE


async def test_datagram_pingpong_to_ten(fake_net, ca, server_cert, autojump_clock):
    async with served(pingpong_server, server_cert) as server:
        async with h3_client(ca, server.port) as conn:
            async with conn.open_request_stream() as stream:
                await stream.send_request_header("CONNECT", "/chat", protocol="ping-pong")
                await stream.send_datagram(b"1")  # before the response: RFC 9297 allows it
                response = await stream.read_response()
                assert response.status == 200
                values = []
                count = 1
                while count < 10:
                    with trio.move_on_after(0.25):  # resend if the datagram was lost
                        reply = int(await stream.receive_datagram())
                        values.append(reply)
                        count = reply + 1 if reply < 10 else reply
                        if count < 10:
                            await stream.send_datagram(b"%d" % count)
                        continue
                    await stream.send_datagram(b"%d" % count)
                await stream.send_eof()
                assert await stream.receive_some() == b""  # the server's handler returned
                with pytest.raises(trio.EndOfChannel):
                    await stream.receive_datagram()
            assert values == [2, 4, 6, 8, 10]


async def test_datagrams_need_the_setting(fake_net, ca, server_cert, autojump_clock):
    async with served(pingpong_server, server_cert) as server:
        async with h3_client(ca, server.port, max_datagram_frame_size=None) as conn:
            assert not conn.local_settings.h3_datagram
            async with conn.open_request_stream() as stream:
                await stream.send_request_header("CONNECT", "/chat", protocol="ping-pong")
                assert (await stream.read_response()).status == 400
                with pytest.raises(RuntimeError, match="SETTINGS_H3_DATAGRAM"):
                    await stream.send_datagram(b"1")
            assert not conn.datagrams_enabled


async def test_datagrams_belong_to_connect_requests(fake_net, ca, server_cert, autojump_clock):
    async with served(pingpong_server, server_cert) as server:
        async with h3_client(ca, server.port) as conn:
            async with conn.open_request_stream() as stream:
                await stream.send_request_header("GET", "/", end_stream=True)
                with pytest.raises(RuntimeError, match="CONNECT"):
                    await stream.send_datagram(b"x")
                assert (await stream.read_response()).status == 404
            async with conn.open_request_stream() as stream:
                await stream.send_request_header("CONNECT", "/", protocol="other")
                assert (await stream.read_response()).status == 501


async def test_takeover_carries_raw_capsule_bytes(fake_net, ca, server_cert, autojump_clock):
    """After the response headers the stream is raw DATA bytes: the Capsule Protocol's."""
    received: list[bytes] = []

    async def handler(request: trio_zttp.H3Request) -> None:
        assert request.get_header("capsule-protocol") == b"?1"
        await request.respond(200, [("capsule-protocol", "?1")])
        async with request.http_stream() as stream:
            data = b""
            while chunk := await stream.receive_some():
                data += chunk
            received.append(data)
            await stream.send_all(h3.encode_capsule(0x2A, b"server capsule"))

    capsules = h3.encode_capsule(0x2A, b"hello") + h3.encode_capsule(
        h3.CapsuleType.DATAGRAM, b"reliable datagram"
    )
    async with served(handler, server_cert) as server, h3_client(ca, server.port) as conn:
        async with conn.open_request_stream() as stream:
            await stream.send_request_header(
                "CONNECT", "/capsules", protocol="capsules", headers=[("capsule-protocol", "?1")]
            )
            response = await stream.read_response()
            assert response.get_header("capsule-protocol") == b"?1"
            for i in range(0, len(capsules), 7):  # any split: it is a byte stream
                await stream.send_all(capsules[i : i + 7])
            await stream.send_eof()
            data = b""
            while chunk := await stream.receive_some():
                data += chunk
    assert received == [capsules]
    assert data == h3.encode_capsule(0x2A, b"server capsule")


async def test_unread_datagrams_are_dropped_not_queued(fake_net, ca, server_cert, autojump_clock):
    from trio_zttp._trio.h3_stream import DATAGRAM_QUEUE_SIZE

    gate = trio.Event()
    kept: list[bytes] = []
    dropped: list[int] = []

    async def handler(request: trio_zttp.H3Request) -> None:
        await request.respond(200)
        stream = request.http_stream()
        await gate.wait()
        dropped.append(stream.datagrams_dropped)
        while len(kept) < DATAGRAM_QUEUE_SIZE:
            kept.append(await stream.receive_datagram())

    sent = 2 * DATAGRAM_QUEUE_SIZE
    async with served(handler, server_cert) as server, h3_client(ca, server.port) as conn:
        async with conn.open_request_stream() as stream:
            await stream.send_request_header("CONNECT", "/", protocol="sink")
            await stream.read_response()
            for i in range(sent):
                await stream.send_datagram(i.to_bytes(2, "big"))
                if i % 16 == 15:
                    await trio.sleep(0.01)  # let them through (no loss on this network)
            await trio.sleep(0.5)
            gate.set()
            await trio.sleep(0.5)
    assert dropped == [sent - DATAGRAM_QUEUE_SIZE]
    assert kept == [i.to_bytes(2, "big") for i in range(DATAGRAM_QUEUE_SIZE)]


async def test_server_request_can_use_datagrams_without_takeover(
    fake_net, ca, server_cert, autojump_clock
):
    async def handler(request: trio_zttp.H3Request) -> None:
        await request.respond(200)
        await request.send_datagram(b"from the request object")
        assert await request.receive_datagram() == b"thanks"

    async with served(handler, server_cert) as server, h3_client(ca, server.port) as conn:
        async with conn.open_request_stream() as stream:
            await stream.send_request_header("CONNECT", "/", protocol="direct")
            await stream.read_response()
            assert await stream.receive_datagram() == b"from the request object"
            await stream.send_datagram(b"thanks")
            assert await stream.receive_some() == b""


async def test_datagram_sent_with_the_request_header_is_not_lost(
    fake_net, ca, server_cert, autojump_clock
):
    """A datagram may overtake the HEADERS it belongs to (it often shares their packet,
    ahead of the STREAM frame): the server holds it until the request exists (RFC 9297
    §2.1) instead of dropping it."""
    got: list[bytes] = []

    async def handler(request: trio_zttp.H3Request) -> None:
        await request.respond(200)
        with trio.move_on_after(1):
            got.append(await request.receive_datagram())

    async with served(handler, server_cert) as server, h3_client(ca, server.port) as conn:
        await conn.received_settings()
        for i in range(3):
            async with conn.open_request_stream() as stream:
                await stream.send_request_header("CONNECT", "/", protocol="early")
                await stream.send_datagram(b"early %d" % i)  # sent once, never again
                await stream.read_response()
                assert await stream.receive_some() == b""  # the handler returned
    assert got == [b"early 0", b"early 1", b"early 2"]


async def test_send_datagram_fails_as_the_general_command_path(
    fake_net, ca, server_cert, autojump_clock
):
    """``send_datagram``'s direct path raises what the general command path (``send_all``
    here) raises, on an open stream of a connection closed locally or by the peer."""
    outcomes: list[tuple[str, type[BaseException], type[BaseException]]] = []

    async def failure(send) -> type[BaseException]:  # type: ignore[no-untyped-def]
        with pytest.raises((trio_zttp.ConnectionClosedError, trio.ClosedResourceError,
                            trio.BrokenResourceError)) as info:
            await send()
        return info.type

    for closer in ("local", "peer"):
        async def handler(request: trio_zttp.H3Request, closer: str = closer) -> None:
            await request.respond(200)
            # the client's first datagram arrives on an open connection (closing right after
            # the response raced with it)
            await request.http_stream().receive_datagram()
            if closer == "peer":
                await request.connection.aclose()
            else:
                await trio.sleep(1)

        async with served(handler, server_cert) as server, h3_client(ca, server.port) as conn:
            async with conn.open_request_stream() as stream:
                await stream.send_request_header("CONNECT", "/", protocol="closing")
                await stream.read_response()
                await stream.send_datagram(b"while open")
                if closer == "local":
                    await conn.aclose()
                else:
                    await trio.sleep(0.5)
                direct = await failure(lambda: stream.send_datagram(b"x"))
                general = await failure(lambda: stream.send_all(b"x"))
                outcomes.append((closer, direct, general))
    assert len(outcomes) == 2, outcomes
    for _closer, direct, general in outcomes:
        assert direct is general
