"""QuicStream / QuicSendStream / QuicReceiveStream over trio's fake network (autojump clock).

The streams run over two real endpoints talking QUIC through the sans-IO engine in
``_helpers.ENGINE`` (aioquic behind an adapter until trio_zttp's own connection lands).
"""

from __future__ import annotations

import hashlib
import tracemalloc

import pytest
import trio
import trio.testing

import trio_zttp
from trio_zttp.quic._stream_manager import SEND_ALLOWANCE as ALLOWANCE

from ._helpers import connected_pair

WINDOW = 64 * 1024
FLOW = {"max_stream_data": WINDOW, "max_data": 4 * WINDOW}


async def _handshake_byte(pair, *, unidirectional: bool = False):
    """A connected (send, receive) pair of fresh streams; the peer learns of a QUIC
    stream only from its first frame, so one byte goes through and is read."""
    if unidirectional:
        s = pair.client.open_unidirectional_stream()
        await s.send_all(b"\0")
        r = await pair.server.accept_unidirectional_stream()
    else:
        s = pair.client.open_stream()
        await s.send_all(b"\0")
        r = await pair.server.accept_stream()
    assert await r.receive_some(1) == b"\0"
    return s, r


async def _fill(s, already_sent: int) -> None:
    # Nearly the peer's credit plus the engine's allowance in one go, then single bytes
    # until one has to wait: a send cancelled before taking any byte changes nothing.
    await s.send_all(b"c" * (WINDOW + ALLOWANCE - already_sent - 64))
    while True:
        with trio.move_on_after(0.01) as scope:
            await s.send_all(b"c")
        if scope.cancelled_caught:
            return


async def _clog(s, r=None) -> None:
    # check_two_way_stream flips the pair, so a bidirectional pair is clogged both ways.
    await _fill(s, 1)
    if r is not None:
        await _fill(r, 0)


async def test_stream_passes_check_half_closeable_stream(
    fake_net, ca, server_cert, autojump_clock
) -> None:
    async with connected_pair(ca, server_cert, client=FLOW, server=FLOW) as pair:

        async def maker():
            return await _handshake_byte(pair)

        async def clogged_maker():
            s, r = await maker()
            await _clog(s, r)
            return s, r

        await trio.testing.check_half_closeable_stream(maker, clogged_maker)


async def test_unidirectional_stream_passes_check_one_way_stream(
    fake_net, ca, server_cert, autojump_clock
) -> None:
    async with connected_pair(ca, server_cert, client=FLOW, server=FLOW) as pair:

        async def maker():
            return await _handshake_byte(pair, unidirectional=True)

        async def clogged_maker():
            s, r = await maker()
            await _clog(s)
            return s, r

        await trio.testing.check_one_way_stream(maker, clogged_maker)


async def test_stream_echo_many_concurrent_streams(fake_net, ca, server_cert, autojump_clock):
    async with connected_pair(ca, server_cert) as pair:

        async def echo_server() -> None:
            async with trio.open_nursery() as nursery:
                for _ in range(20):
                    stream = await pair.server.accept_stream()
                    nursery.start_soon(echo_one, stream)

        async def echo_one(stream: trio_zttp.QuicStream) -> None:
            async with stream:
                while data := await stream.receive_some():
                    await stream.send_all(data)

        async def client(i: int) -> None:
            payload = bytes([i]) * (1000 * i + 1)
            async with pair.client.open_stream() as stream:
                await stream.send_all(payload)
                await stream.send_eof()
                got = b""
                while data := await stream.receive_some():
                    got += data
            assert got == payload

        async with trio.open_nursery() as nursery:
            nursery.start_soon(echo_server)
            for i in range(20):
                nursery.start_soon(client, i)
        stats = pair.client.statistics()
        assert stats.streams_opened == 20
        assert pair.server.statistics().streams_accepted == 20


async def test_stream_backpressure_bounds_memory(fake_net, ca, server_cert, autojump_clock):
    total = 1024 * 1024
    chunk = 64 * 1024
    async with connected_pair(ca, server_cert, client=FLOW, server=FLOW) as pair:
        sent = 0
        digest = hashlib.sha256()

        async def sender(stream: trio_zttp.QuicStream) -> None:
            nonlocal sent
            for i in range(total // chunk):
                block = bytes([i % 251]) * chunk
                digest.update(block)
                await stream.send_all(block)
                sent += chunk
            await stream.send_eof()

        stream = pair.client.open_stream()
        async with trio.open_nursery() as nursery:
            tracemalloc.start()
            try:
                nursery.start_soon(sender, stream)
                peer = await pair.server.accept_stream()
                await trio.sleep(5)  # the reader is not reading
                growth = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
            stalled_at = sent
            # the sender waits once the window and the allowance are used up
            assert stalled_at <= WINDOW + ALLOWANCE
            assert growth < 2 * 1024 * 1024
            await trio.sleep(5)
            assert sent == stalled_at  # still stalled: credit follows reads only
            received = hashlib.sha256()
            count = 0
            while data := await peer.receive_some(32 * 1024):
                received.update(data)
                count += len(data)
        assert count == total
        assert received.digest() == digest.digest()


async def test_stream_exit_by_exception_resets_and_stops(fake_net, ca, server_cert, autojump_clock):
    async with connected_pair(ca, server_cert) as pair:
        pair.client.stream_cancel_error_code = 0x42
        with pytest.raises(RuntimeError, match="boom"):
            async with pair.client.open_stream() as stream:
                await stream.send_all(b"hello")
                peer = await pair.server.accept_stream()
                assert await peer.receive_some() == b"hello"
                await peer.send_all(b"unread")
                await trio.sleep(1)
                raise RuntimeError("boom")
        with pytest.raises(trio_zttp.StreamResetError) as reset:
            await peer.receive_some()
        assert reset.value.error_code == 0x42
        assert reset.value.stream_id == stream.stream_id
        assert isinstance(reset.value, trio.BrokenResourceError)
        with pytest.raises(trio_zttp.StreamStoppedError) as stopped:
            for _ in range(100):
                await peer.send_all(b"more")
                await trio.sleep(0.1)
        assert stopped.value.error_code == 0x42


async def test_stream_exit_by_cancellation_resets(fake_net, ca, server_cert, autojump_clock):
    async with connected_pair(ca, server_cert) as pair:
        pair.client.stream_cancel_error_code = 0x43
        with trio.move_on_after(1):
            async with pair.client.open_stream() as stream:
                await stream.send_all(b"partial")
                await trio.sleep_forever()
        peer = await pair.server.accept_stream()
        # the data may or may not arrive first; the reset always does
        with pytest.raises(trio_zttp.StreamResetError) as reset:
            while await peer.receive_some():
                pass
        assert reset.value.error_code == 0x43


async def test_stream_cancelled_receive_keeps_data(fake_net, ca, server_cert, autojump_clock):
    async with connected_pair(ca, server_cert) as pair:
        async with pair.client.open_stream() as stream:
            await stream.send_all(b"q")
            peer = await pair.server.accept_stream()
            assert await peer.receive_some() == b"q"
            with trio.move_on_after(1) as scope:
                await stream.receive_some()
            assert scope.cancelled_caught
            await peer.send_all(b"late")
            await peer.send_eof()
            assert await stream.receive_some() == b"late"
            assert await stream.receive_some() == b""
            # nothing was sent for the cancelled read: the peer's side is untouched
            await stream.send_all(b"still fine")
            await stream.send_eof()
            assert await peer.receive_some() == b"still fine"
            assert await peer.receive_some() == b""


async def test_stream_cancelled_send_resets(fake_net, ca, server_cert, autojump_clock):
    async with connected_pair(ca, server_cert, client=FLOW, server=FLOW) as pair:
        pair.client.stream_cancel_error_code = 0x44
        stream = pair.client.open_stream()
        with trio.move_on_after(2) as scope:
            await stream.send_all(b"z" * (4 * WINDOW))  # blocks: the peer does not read
        assert scope.cancelled_caught
        with pytest.raises(trio.BrokenResourceError):
            await stream.send_all(b"more")
        peer = await pair.server.accept_stream()
        with pytest.raises(trio_zttp.StreamResetError) as reset:
            while await peer.receive_some():
                pass
        assert reset.value.error_code == 0x44
        await stream.aclose()


async def test_stream_explicit_reset_and_stop_sending(fake_net, ca, server_cert, autojump_clock):
    async with connected_pair(ca, server_cert) as pair:
        stream = pair.client.open_stream()
        await stream.send_all(b"x")
        peer = await pair.server.accept_stream()
        assert await peer.receive_some() == b"x"
        stream.reset(7)
        with pytest.raises(trio_zttp.StreamResetError) as reset:
            await peer.receive_some()
        assert reset.value.error_code == 7
        peer.stop_sending(9)
        with pytest.raises(trio.ClosedResourceError):
            await peer.receive_some()
        with pytest.raises(trio.ClosedResourceError):
            await stream.send_all(b"after reset")  # we reset it ourselves
        await peer.send_all(b"reply")
        await peer.send_eof()
        assert await stream.receive_some() == b"reply"
        assert await stream.receive_some() == b""
        await stream.aclose()
        await peer.aclose()


async def test_stream_peer_stop_sending_raises_on_send(fake_net, ca, server_cert, autojump_clock):
    async with connected_pair(ca, server_cert) as pair:
        stream = pair.client.open_stream()
        await stream.send_all(b"x")
        peer = await pair.server.accept_stream()
        peer.stop_sending(11)
        with pytest.raises(trio_zttp.StreamStoppedError) as stopped:
            for _ in range(100):
                await stream.send_all(b"y" * 1000)
                await trio.sleep(0.05)
        assert stopped.value.error_code == 11
        with pytest.raises(trio_zttp.StreamStoppedError):
            await stream.send_eof()


async def test_stream_aclose_with_unread_data_sends_stop_sending(
    fake_net, ca, server_cert, autojump_clock
):
    async with connected_pair(ca, server_cert) as pair:
        stream = pair.client.open_stream()
        await stream.send_all(b"request")
        peer = await pair.server.accept_stream()
        await peer.send_all(b"unread response")
        await trio.sleep(1)
        await stream.aclose()  # FIN for our side, STOP_SENDING for theirs
        assert await peer.receive_some() == b"request"
        assert await peer.receive_some() == b""
        with pytest.raises(trio_zttp.StreamStoppedError):
            for _ in range(100):
                await peer.send_all(b"more")
                await trio.sleep(0.05)


async def test_stream_receive_some_rejects_bad_sizes(fake_net, ca, server_cert, autojump_clock):
    async with connected_pair(ca, server_cert) as pair:
        async with pair.client.open_stream() as stream:
            with pytest.raises(ValueError):
                await stream.receive_some(0)
            with pytest.raises(TypeError):
                await stream.receive_some(1.5)  # type: ignore[arg-type]


async def test_stream_small_reads_of_a_large_buffer(fake_net, ca, server_cert, autojump_clock):
    async with connected_pair(ca, server_cert) as pair:
        payload = bytes(range(256)) * 200
        stream = pair.client.open_stream()
        await stream.send_all(payload)
        await stream.send_eof()
        peer = await pair.server.accept_stream()
        await trio.sleep(1)
        got = bytearray()
        while data := await peer.receive_some(7):
            assert len(data) <= 7
            got += data
        assert got == payload
        await stream.aclose()
        await peer.aclose()


async def test_stream_abort_after_both_sides_finished_keeps_the_error(
    fake_net, ca, server_cert, autojump_clock
) -> None:
    # Leaving by an exception resets the stream; when the stream already finished on both
    # sides there is nothing to reset, and the user's exception must come out unchanged.
    async with connected_pair(ca, server_cert) as pair:
        with pytest.raises(ZeroDivisionError):
            async with pair.client.open_stream() as stream:
                await stream.send_all(b"q")
                await stream.send_eof()
                peer = await pair.server.accept_stream()
                assert await peer.receive_some() == b"q"
                assert await peer.receive_some() == b""
                await peer.send_eof()
                assert await stream.receive_some() == b""
                await trio.sleep(1)  # every FIN acknowledged: the engine forgets the stream
                stream.reset(3)  # harmless too
                raise ZeroDivisionError
