"""QuicConnection over trio's fake network: datagrams, closing rows, failures, statistics."""

from __future__ import annotations

import pytest
import trio
from cryptography import x509

import trio_zttp
from trio_zttp.testing import CertificateAuthority

from ._helpers import ALPN, ENGINE, client_configuration, connected_pair, server_configuration


async def test_connection_datagram_echo(fake_net, ca, server_cert, autojump_clock) -> None:
    async with connected_pair(ca, server_cert) as pair:

        async def echo() -> None:
            for _ in range(10):
                await pair.server.send_datagram(await pair.server.receive_datagram())

        async with trio.open_nursery() as nursery:
            nursery.start_soon(echo)
            for i in range(10):
                payload = b"dgram %d " % i * (i + 1)
                await pair.client.send_datagram(payload)
                assert await pair.client.receive_datagram() == payload
        assert pair.client.statistics().datagram_frames_received == 10
        assert pair.server.statistics().datagram_frames_dropped == 0


async def test_connection_unread_datagrams_are_dropped_not_queued(
    fake_net, ca, server_cert, autojump_clock
) -> None:
    from trio_zttp._trio.connection import DATAGRAM_QUEUE_SIZE

    async with connected_pair(ca, server_cert) as pair:
        sent = 3 * DATAGRAM_QUEUE_SIZE
        for i in range(sent):
            await pair.client.send_datagram(i.to_bytes(4, "big"))
        # the connection keeps working while nobody reads the datagrams
        async with pair.client.open_stream() as stream:
            await stream.send_all(b"through")
            await stream.send_eof()
            peer = await pair.server.accept_stream()
            got = b""
            while data := await peer.receive_some():
                got += data
            assert got == b"through"
            await peer.aclose()
        stats = pair.server.statistics()
        assert stats.datagram_frames_received == sent
        assert stats.datagram_frames_dropped == sent - DATAGRAM_QUEUE_SIZE
        got = [await pair.server.receive_datagram() for _ in range(DATAGRAM_QUEUE_SIZE)]
        # the first ones are kept, in order
        assert got == [i.to_bytes(4, "big") for i in range(DATAGRAM_QUEUE_SIZE)]


async def test_connection_exposes_handshake_results(fake_net, ca, server_cert, autojump_clock):
    async with connected_pair(ca, server_cert) as pair:
        assert pair.client.alpn_protocol == ALPN[0]
        assert pair.server.alpn_protocol == ALPN[0]
        assert isinstance(pair.client.peer_certificate, x509.Certificate)
        assert pair.client.peer_certificate == server_cert.certificate
        assert pair.server.peer_certificate is None  # no client certificate
        assert pair.client.is_client and not pair.server.is_client
        assert pair.client.remote_address == pair.server_endpoint.local_address
        assert pair.server.remote_address == pair.client_endpoint.local_address
        assert not pair.client.session_resumed


async def test_connection_normal_exit_closes_with_no_error(
    fake_net, ca, server_cert, autojump_clock
) -> None:
    async with connected_pair(ca, server_cert) as pair:
        await pair.client.aclose()
        with pytest.raises(trio_zttp.ConnectionClosedError) as closed:
            await pair.server.accept_stream()
        assert closed.value.error_code == 0
        assert closed.value.by_peer
        assert closed.value.application
        assert isinstance(closed.value, trio.BrokenResourceError)
        # after our own close: ClosedResourceError on the connection, idempotent aclose
        with pytest.raises(trio.ClosedResourceError):
            pair.client.open_stream()
        with pytest.raises(trio.ClosedResourceError):
            await pair.client.send_datagram(b"x")
        await pair.client.aclose()
        assert pair.client.closed and pair.server.closed


async def test_connection_exit_by_exception_closes_with_error(
    fake_net, ca, server_cert, autojump_clock
) -> None:
    async with connected_pair(ca, server_cert) as pair:
        pair.client.internal_error_code = 0x77
        with pytest.raises(KeyError):
            async with pair.client:
                raise KeyError("inside")
        with pytest.raises(trio_zttp.ConnectionClosedError) as closed:
            await pair.server.receive_datagram()
        assert closed.value.error_code == 0x77
        assert closed.value.reason == "KeyError"  # type name only; no message leaks
        assert closed.value.by_peer


async def test_connection_exit_by_cancellation_closes_with_error(
    fake_net, ca, server_cert, autojump_clock
) -> None:
    async with connected_pair(ca, server_cert) as pair:
        with trio.move_on_after(1):
            async with pair.client:
                await trio.sleep_forever()
        with pytest.raises(trio_zttp.ConnectionClosedError) as closed:
            await pair.server.accept_stream()
        assert closed.value.error_code == pair.client.internal_error_code
        assert closed.value.reason == "Cancelled"


async def test_connection_peer_close_fails_pending_stream_calls(
    fake_net, ca, server_cert, autojump_clock
) -> None:
    async with connected_pair(ca, server_cert) as pair:
        stream = pair.client.open_stream()
        await stream.send_all(b"x")
        peer = await pair.server.accept_stream()
        assert await peer.receive_some() == b"x"

        async def close_soon() -> None:
            await trio.sleep(1)
            await pair.server.aclose(error_code=5, reason="bye")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(close_soon)
            with pytest.raises(trio_zttp.ConnectionClosedError) as closed:
                await stream.receive_some()
        assert (closed.value.error_code, closed.value.reason) == (5, "bye")
        with pytest.raises(trio_zttp.ConnectionClosedError):
            await stream.send_all(b"more")
        with pytest.raises(trio_zttp.ConnectionClosedError):
            pair.client.open_stream()
        # our side of the stream, as seen after our own close: ConnectionClosedError(by_peer=False)
        with pytest.raises(trio_zttp.ConnectionClosedError) as local:
            await peer.send_all(b"late")
        assert not local.value.by_peer


async def test_connection_idle_timeout(fake_net, ca, server_cert, autojump_clock) -> None:
    short = {"idle_timeout": 3.0}
    async with connected_pair(ca, server_cert, client=short, server=short) as pair:
        fake_net.route_packet = lambda packet: None  # the network goes away
        start = trio.current_time()
        with pytest.raises(trio_zttp.ConnectionClosedError) as closed:
            await pair.client.accept_stream()
        assert closed.value.by_peer
        assert 2.0 <= trio.current_time() - start <= 10.0
        with pytest.raises(trio_zttp.ConnectionClosedError):
            await pair.server.receive_datagram()
        await trio.sleep(5)
        assert pair.client_endpoint.statistics().connections == 0
        assert pair.server_endpoint.statistics().connections == 0
        fake_net.route_packet = None


async def test_connection_handshake_failure_raises(fake_net, server_cert, autojump_clock) -> None:
    stranger = CertificateAuthority.create()
    async with (
        trio_zttp.open_quic_endpoint(
            ("127.0.0.1", 0), server_configuration(server_cert), connection_factory=ENGINE
        ) as server,
        trio_zttp.open_quic_endpoint(
            ("127.0.0.1", 0), client_configuration(stranger), connection_factory=ENGINE
        ) as client,
    ):
        with pytest.raises(trio_zttp.ConnectionClosedError) as failed:
            async with client.connect(server.local_address, server_name="localhost"):
                pytest.fail("the handshake must not succeed")  # pragma: no cover
        assert not failed.value.by_peer
        assert 0x100 <= failed.value.error_code <= 0x1FF  # CRYPTO_ERROR + TLS alert
        await trio.sleep(30)
        assert server.statistics().half_open_connections == 0
        assert server.statistics().connections == 0
        assert client.statistics().connections == 0


async def test_connection_unidirectional_streams(fake_net, ca, server_cert, autojump_clock):
    async with connected_pair(ca, server_cert) as pair:
        async with pair.server.open_unidirectional_stream() as out:
            await out.send_all(b"one way")
        incoming = await pair.client.accept_unidirectional_stream()
        assert isinstance(incoming, trio_zttp.QuicReceiveStream)
        assert await incoming.receive_some() == b"one way"
        assert await incoming.receive_some() == b""
        assert incoming.stream_id & 3 == 3  # server-initiated, unidirectional
        assert not hasattr(incoming, "send_all")
        assert not hasattr(out, "receive_some")


async def test_connection_key_update_and_cid_change_keep_data_flowing(
    fake_net, ca, server_cert, autojump_clock
) -> None:
    async with connected_pair(ca, server_cert) as pair:
        for i in range(3):
            pair.client.request_key_update()
            pair.client.change_connection_id()
            async with pair.client.open_stream() as stream:
                await stream.send_all(b"round %d" % i)
                await stream.send_eof()
                peer = await pair.server.accept_stream()
                assert await peer.receive_some() == b"round %d" % i
                await peer.aclose()
            await trio.sleep(1)


async def test_connection_statistics_count(fake_net, ca, server_cert, autojump_clock) -> None:
    async with connected_pair(ca, server_cert) as pair:
        before = pair.client.statistics()
        async with pair.client.open_stream() as stream:
            await stream.send_all(b"x" * 5000)
        await trio.sleep(1)
        after = pair.client.statistics()
        assert after.datagrams_received > before.datagrams_received
        assert after.streams_opened == before.streams_opened + 1
        assert after.datagrams_dropped == 0
        assert after.transport is not None


async def test_connection_connect_to_nobody(fake_net, ca, autojump_clock) -> None:
    async with trio_zttp.open_quic_endpoint(
        ("127.0.0.1", 0), client_configuration(ca, idle_timeout=3.0), connection_factory=ENGINE
    ) as client:
        # cancelled while the handshake waits: the connection is closed and forgotten
        with trio.move_on_after(1) as scope:
            async with client.connect(("127.0.0.1", 9), server_name="localhost"):
                pytest.fail("nobody answers")  # pragma: no cover
        assert scope.cancelled_caught
        # not cancelled: the idle timer ends the handshake
        start = trio.current_time()
        with pytest.raises(trio_zttp.ConnectionClosedError) as closed:
            async with client.connect(("127.0.0.1", 9), server_name="localhost"):
                pytest.fail("nobody answers")  # pragma: no cover
        assert closed.value.by_peer
        assert 2.0 <= trio.current_time() - start <= 10.0
        await trio.sleep(5)
        assert client.statistics().connections == 0
