"""Every HTTP/3 and QPACK error a peer can trigger, by injecting its bytes on a stream.

A raw peer (no HTTP/3 layer of its own) writes exactly the bytes of each case to our server
or our client over the in-memory QUIC; the test checks the CONNECTION_CLOSE (connection
errors) or the RESET_STREAM + STOP_SENDING (stream errors) with the RFC's code, and the event
our side reports. Nothing may raise out of ``receive_quic_event``.

Codes a peer cannot trigger here: H3_NO_ERROR and H3_REQUEST_CANCELLED (ours to send),
H3_INTERNAL_ERROR (a bug), H3_CONNECT_ERROR (the CONNECT proxy's business, not this layer's),
H3_VERSION_FALLBACK (never sent), H3_GENERAL_PROTOCOL_ERROR (no rule here lacks a more
specific code). H3_REQUEST_REJECTED is in test_connection.py (GOAWAY).
"""

from __future__ import annotations

from collections.abc import Callable

import attrs
import pytest

from tests.h3.h3_support import (
    MemorySide,
    RawPeer,
    connect_fields,
    data_frame,
    headers_frame,
    raw_client_link,
    raw_server_link,
    request_fields,
    settings_frame,
    varint,
)
from trio_zttp import h3, qpack

E = h3.ErrorCode
FT = h3.FrameType
ST = h3.StreamType
Case = Callable[[RawPeer], None]


def frame(frame_type: int, payload: bytes = b"") -> bytes:
    return h3.encode_frame(frame_type, payload)


def id_frame(frame_type: int, value: int) -> bytes:
    return frame(frame_type, varint(value))


# ------------------------------------------------------------- connection errors, server

SERVER_CONNECTION_ERRORS: dict[str, tuple[Case, int]] = {
    # H3_STREAM_CREATION_ERROR (RFC 9114 §6.2.1, §6.2.2, RFC 9204 §4.2)
    "second control stream": (lambda p: (p.setup(), p.control()), E.H3_STREAM_CREATION_ERROR),
    "second encoder stream": (lambda p: (p.setup(), p.uni(ST.QPACK_ENCODER)),
                              E.H3_STREAM_CREATION_ERROR),
    "second decoder stream": (lambda p: (p.setup(), p.uni(ST.QPACK_DECODER)),
                              E.H3_STREAM_CREATION_ERROR),
    "push stream from a client": (lambda p: p.uni(ST.PUSH, varint(0)),
                                  E.H3_STREAM_CREATION_ERROR),
    # H3_CLOSED_CRITICAL_STREAM (RFC 9114 §6.2.1, RFC 9204 §4.2)
    "control stream FIN": (lambda p: p.control(end_stream=True), E.H3_CLOSED_CRITICAL_STREAM),
    "encoder stream FIN": (lambda p: p.uni(ST.QPACK_ENCODER, end_stream=True),
                           E.H3_CLOSED_CRITICAL_STREAM),
    "decoder stream FIN": (lambda p: p.uni(ST.QPACK_DECODER, end_stream=True),
                           E.H3_CLOSED_CRITICAL_STREAM),
    "control stream reset": (lambda p: (p.setup(), p.quic.reset_stream(p.control_id, 0x100),
                                        p.link.pump()), E.H3_CLOSED_CRITICAL_STREAM),
    "encoder stream reset": (lambda p: (p.setup(), p.quic.reset_stream(p.encoder_id, 0x100),
                                        p.link.pump()), E.H3_CLOSED_CRITICAL_STREAM),
    "STOP_SENDING on our control stream": (
        lambda p: (p.quic.stop_sending(3, 0x100), p.link.pump()), E.H3_CLOSED_CRITICAL_STREAM),
    "STOP_SENDING on our decoder stream": (
        lambda p: (p.quic.stop_sending(11, 0x100), p.link.pump()), E.H3_CLOSED_CRITICAL_STREAM),
    # H3_MISSING_SETTINGS (§6.2.1)
    "GOAWAY before SETTINGS": (lambda p: p.uni(ST.CONTROL, id_frame(FT.GOAWAY, 0)),
                               E.H3_MISSING_SETTINGS),
    "unknown frame before SETTINGS": (lambda p: p.uni(ST.CONTROL, frame(0x21) + frame(FT.SETTINGS)),
                                      E.H3_MISSING_SETTINGS),
    # H3_FRAME_UNEXPECTED (§7.2)
    "second SETTINGS": (lambda p: p.control(settings_frame()), E.H3_FRAME_UNEXPECTED),
    "DATA on the control stream": (lambda p: p.control(data_frame(b"x")), E.H3_FRAME_UNEXPECTED),
    "HEADERS on the control stream": (lambda p: p.control(headers_frame(request_fields())),
                                      E.H3_FRAME_UNEXPECTED),
    "HTTP/2 PRIORITY frame on the control stream": (lambda p: p.control(frame(0x2, b"xx")),
                                                    E.H3_FRAME_UNEXPECTED),
    "HTTP/2 WINDOW_UPDATE on a request stream": (lambda p: p.request(frame(0x8, b"\x00")),
                                                 E.H3_FRAME_UNEXPECTED),
    "PUSH_PROMISE to a server": (
        lambda p: p.request(headers_frame(request_fields())
                            + frame(FT.PUSH_PROMISE, b"\x00\x00\x00")),
        E.H3_FRAME_UNEXPECTED),
    "DATA before HEADERS": (lambda p: p.request(data_frame(b"early")), E.H3_FRAME_UNEXPECTED),
    "HEADERS after trailers": (
        lambda p: p.request(headers_frame(request_fields(b"POST")) + headers_frame([(b"a", b"b")])
                            + headers_frame([(b"c", b"d")])), E.H3_FRAME_UNEXPECTED),
    "DATA after trailers": (
        lambda p: p.request(headers_frame(request_fields(b"POST")) + headers_frame([(b"a", b"b")])
                            + data_frame(b"late")), E.H3_FRAME_UNEXPECTED),
    "SETTINGS on a request stream": (lambda p: p.request(settings_frame()),
                                     E.H3_FRAME_UNEXPECTED),
    "GOAWAY on a request stream": (
        lambda p: p.request(headers_frame(request_fields()) + id_frame(FT.GOAWAY, 0)),
        E.H3_FRAME_UNEXPECTED),
    "HEADERS inside a CONNECT tunnel": (
        lambda p: p.request(headers_frame(request_fields(b"CONNECT")[:1] + [
            (b":authority", b"example.com:443")]) + headers_frame([(b"a", b"b")])),
        E.H3_FRAME_UNEXPECTED),
    # H3_FRAME_ERROR (§7.1, §7.2.6)
    "GOAWAY with trailing bytes": (lambda p: p.control(frame(FT.GOAWAY, b"\x00\x00")),
                                   E.H3_FRAME_ERROR),
    "empty MAX_PUSH_ID": (lambda p: p.control(frame(FT.MAX_PUSH_ID)), E.H3_FRAME_ERROR),
    "truncated SETTINGS": (lambda p: p.uni(ST.CONTROL, frame(FT.SETTINGS, b"\x01")),
                           E.H3_FRAME_ERROR),
    "request stream ends inside a frame": (
        lambda p: p.request(headers_frame(request_fields(b"POST")) + b"\x00\x05ab",
                            end_stream=True), E.H3_FRAME_ERROR),
    # H3_EXCESSIVE_LOAD: a frame longer than we buffer
    "huge HEADERS frame": (lambda p: p.request(varint(FT.HEADERS) + varint(10**7)),
                           E.H3_EXCESSIVE_LOAD),
    "huge SETTINGS frame": (lambda p: p.uni(ST.CONTROL, varint(FT.SETTINGS) + varint(10**6)),
                            E.H3_EXCESSIVE_LOAD),
    # H3_ID_ERROR (§7.2.3, §7.2.7)
    "CANCEL_PUSH for a push never promised": (lambda p: p.control(id_frame(FT.CANCEL_PUSH, 0)),
                                              E.H3_ID_ERROR),
    "MAX_PUSH_ID shrinking": (lambda p: p.control(id_frame(FT.MAX_PUSH_ID, 5)
                                                  + id_frame(FT.MAX_PUSH_ID, 3)), E.H3_ID_ERROR),
    # H3_SETTINGS_ERROR (§7.2.4, §7.2.4.1, RFC 9297 §2.1.1)
    "HTTP/2 setting": (lambda p: p.uni(ST.CONTROL, settings_frame((0x2, 1))),
                       E.H3_SETTINGS_ERROR),
    "duplicate setting": (lambda p: p.uni(ST.CONTROL, settings_frame((0x1, 0), (0x1, 0))),
                          E.H3_SETTINGS_ERROR),
    "H3_DATAGRAM=2": (lambda p: p.uni(ST.CONTROL, settings_frame((0x33, 2))),
                      E.H3_SETTINGS_ERROR),
    "ENABLE_CONNECT_PROTOCOL=2": (lambda p: p.uni(ST.CONTROL, settings_frame((0x8, 2))),
                                  E.H3_SETTINGS_ERROR),
    # H3_DATAGRAM_ERROR (RFC 9297 §2.1)
    "datagram too short for the Quarter Stream ID": (
        lambda p: (p.quic.send_datagram_frame(b""), p.link.pump()), E.H3_DATAGRAM_ERROR),
    "datagram Quarter Stream ID above 2**60-1": (
        lambda p: (p.quic.send_datagram_frame(varint(1 << 60) + b"x"), p.link.pump()),
        E.H3_DATAGRAM_ERROR),
    # QPACK (RFC 9204 §6)
    "field section with a bad static index": (
        lambda p: p.request(frame(FT.HEADERS, b"\x00\x00\xff\x24")),
        E.QPACK_DECOMPRESSION_FAILED),
    "field section referencing a dynamic table we never allowed entries in": (
        lambda p: p.request(frame(FT.HEADERS, b"\x00\x00\x80")), E.QPACK_DECOMPRESSION_FAILED),
    "more blocked streams than SETTINGS_QPACK_BLOCKED_STREAMS": (
        lambda p: [p.request(frame(FT.HEADERS, b"\x02\x00\x80")) for _ in range(17)],
        E.QPACK_DECOMPRESSION_FAILED),
    "encoder stream: Duplicate of a missing entry": (
        lambda p: p.uni(ST.QPACK_ENCODER, b"\x00"), E.QPACK_ENCODER_STREAM_ERROR),
    "encoder stream: capacity above our maximum": (
        lambda p: p.uni(ST.QPACK_ENCODER, b"\x3f\xe9\x26"), E.QPACK_ENCODER_STREAM_ERROR),
    "decoder stream: Insert Count Increment of 0": (
        lambda p: p.uni(ST.QPACK_DECODER, b"\x00"), E.QPACK_DECODER_STREAM_ERROR),
    "decoder stream: Section Acknowledgment for nothing": (
        lambda p: p.uni(ST.QPACK_DECODER, b"\x84"), E.QPACK_DECODER_STREAM_ERROR),
}

DATAGRAM_SERVER = attrs.evolve(h3.DEFAULT_SETTINGS, h3_datagram=True)


def assert_connection_error(quic_closed: tuple[int, str] | None, side: MemorySide,
                            code: int) -> None:
    assert quic_closed is not None, "the connection was not closed"
    assert quic_closed[0] == code, (h3.ErrorCode(quic_closed[0]).name, quic_closed[1])
    terminated = side.terminated
    assert terminated is not None
    assert (terminated.error_code, terminated.by_peer) == (code, False)
    assert terminated.reason_phrase == quic_closed[1]


@pytest.mark.parametrize("name", list(SERVER_CONNECTION_ERRORS))
def test_connection_error_at_server(name: str) -> None:
    case, code = SERVER_CONNECTION_ERRORS[name]
    link, peer, server = raw_client_link(server_settings=DATAGRAM_SERVER)
    case(peer)
    assert_connection_error(link.server_quic.closed, server, code)
    # nothing more is reported, whatever else arrives
    before = len(server.events)
    peer.request(headers_frame(request_fields()), end_stream=True)
    assert len(server.events) == before


def test_connection_error_h3_datagram_without_transport_parameter() -> None:
    link, peer, server = raw_client_link(client_datagram_frame_size=None)
    peer.uni(ST.CONTROL, settings_frame((0x33, 1)))
    assert_connection_error(link.server_quic.closed, server, E.H3_SETTINGS_ERROR)
    # the same SETTINGS are fine from a peer that takes DATAGRAM frames
    link, peer, server = raw_client_link()
    peer.uni(ST.CONTROL, settings_frame((0x33, 1)))
    assert server.terminated is None
    assert server.h3.peer_settings is not None and server.h3.peer_settings.h3_datagram


# ------------------------------------------------------------------ stream errors, server

AUTHORITY = (b":authority", b"localhost")
STREAM_ERRORS: dict[str, tuple[bytes, int]] = {
    # H3_REQUEST_INCOMPLETE (RFC 9114 §4.1)
    "FIN without any frame": (b"", E.H3_REQUEST_INCOMPLETE),
    "FIN after an unknown frame only": (frame(0x21, b"xy"), E.H3_REQUEST_INCOMPLETE),
    # H3_MESSAGE_ERROR (§4.1.2, §4.2, §4.3)
    "uppercase field name": (headers_frame(request_fields(b"GET", b"/", (b"X-Up", b"1"))),
                             E.H3_MESSAGE_ERROR),
    "missing :path": (headers_frame(request_fields()[:3]), E.H3_MESSAGE_ERROR),
    "missing :method": (headers_frame(request_fields()[1:]), E.H3_MESSAGE_ERROR),
    "unknown pseudo-header": (headers_frame(request_fields() + [(b":color", b"red")]),
                              E.H3_MESSAGE_ERROR),
    "pseudo-header after a regular field": (
        headers_frame([(b":method", b"GET"), (b"a", b"b"), (b":path", b"/"),
                       (b":scheme", b"https"), AUTHORITY]), E.H3_MESSAGE_ERROR),
    "connection-specific field": (headers_frame(request_fields(b"GET", b"/",
                                                               (b"connection", b"close"))),
                                  E.H3_MESSAGE_ERROR),
    "te other than trailers": (headers_frame(request_fields(b"GET", b"/", (b"te", b"gzip"))),
                               E.H3_MESSAGE_ERROR),
    "value with a newline": (headers_frame(request_fields(b"GET", b"/", (b"a", b"b\nc"))),
                             E.H3_MESSAGE_ERROR),
    "content longer than content-length": (
        headers_frame(request_fields(b"POST", b"/", (b"content-length", b"3")))
        + data_frame(b"four"), E.H3_MESSAGE_ERROR),
    "content shorter than content-length": (
        headers_frame(request_fields(b"POST", b"/", (b"content-length", b"5")))
        + data_frame(b"four"), E.H3_MESSAGE_ERROR),
    "conflicting content-length values": (
        headers_frame(request_fields(b"POST", b"/", (b"content-length", b"1"),
                                     (b"content-length", b"2"))), E.H3_MESSAGE_ERROR),
    "pseudo-header in trailers": (
        headers_frame(request_fields(b"POST")) + headers_frame([(b":path", b"/")]),
        E.H3_MESSAGE_ERROR),
    "extended CONNECT not enabled": (headers_frame(connect_fields()), E.H3_MESSAGE_ERROR),
    "Capsule Protocol with content-length": (
        headers_frame(request_fields(b"POST", b"/", (b"capsule-protocol", b"?1"),
                                     (b"content-length", b"0"))), E.H3_MESSAGE_ERROR),
}


@pytest.mark.parametrize("name", list(STREAM_ERRORS))
def test_connection_stream_error_at_server(name: str) -> None:
    data, code = STREAM_ERRORS[name]
    link, peer, server = raw_client_link()
    peer.setup()
    stream_id = peer.request(data, end_stream=True)
    assert server.terminated is None
    assert link.server_quic.closed is None
    assert link.server_quic.resets[stream_id] == code
    assert link.server_quic.stops[stream_id] == code
    assert server.of(h3.StreamReset) == [h3.StreamReset(stream_id=stream_id, error_code=code,
                                                        by_peer=False)]
    assert server.h3.open_request_streams == 0
    # the connection carries on
    other = peer.request(headers_frame(request_fields()), end_stream=True)
    assert server.of(h3.HeadersReceived)[-1].stream_id == other


def test_connection_stream_error_field_section_too_large() -> None:
    link, peer, server = raw_client_link(server_settings=attrs.evolve(
        h3.DEFAULT_SETTINGS, max_field_section_size=300))
    peer.setup()
    stream_id = peer.request(headers_frame(request_fields(b"GET", b"/",
                                                          (b"cookie", b"c" * 400))))
    assert link.server_quic.resets[stream_id] == E.H3_MESSAGE_ERROR
    assert server.terminated is None


def test_connection_stream_error_datagram_for_a_request_without_datagrams() -> None:
    link, peer, server = raw_client_link(server_settings=DATAGRAM_SERVER)
    peer.setup()
    stream_id = peer.request(headers_frame(request_fields(b"POST")))
    peer.quic.send_datagram_frame(varint(stream_id // 4) + b"no semantics for this")
    link.pump()
    assert link.server_quic.resets[stream_id] == E.H3_DATAGRAM_ERROR
    assert server.of(h3.StreamReset)[0].error_code == E.H3_DATAGRAM_ERROR
    assert server.of(h3.DatagramReceived) == []
    assert server.terminated is None


# -------------------------------------------------------------------- errors at a client


def client_with_request(**options: object) -> tuple[RawPeer, MemorySide, int]:
    link, peer, client = raw_server_link(**options)  # type: ignore[arg-type]
    peer.setup()
    stream_id = client.h3.get_next_request_stream_id()
    client.h3.send_headers(stream_id, request_fields(), end_stream=True)
    link.pump()
    return peer, client, stream_id


CLIENT_CONNECTION_ERRORS: dict[str, tuple[Callable[[RawPeer, int], object], int]] = {
    "server-initiated bidirectional stream": (
        lambda p, s: p.send(1, headers_frame(request_fields())), E.H3_STREAM_CREATION_ERROR),
    "push stream without MAX_PUSH_ID": (lambda p, s: p.uni(ST.PUSH, varint(0) + b""),
                                        E.H3_ID_ERROR),
    "PUSH_PROMISE without MAX_PUSH_ID": (
        lambda p, s: p.send(s, frame(FT.PUSH_PROMISE, varint(0) + b"\x00\x00")), E.H3_ID_ERROR),
    "MAX_PUSH_ID sent to a client": (
        lambda p, s: p.send(p.control_id, id_frame(FT.MAX_PUSH_ID, 4)), E.H3_FRAME_UNEXPECTED),
    "GOAWAY naming a non-request stream": (
        lambda p, s: p.send(p.control_id, id_frame(FT.GOAWAY, 2)), E.H3_ID_ERROR),
    "GOAWAY identifier growing": (
        lambda p, s: p.send(p.control_id, id_frame(FT.GOAWAY, 4) + id_frame(FT.GOAWAY, 8)),
        E.H3_ID_ERROR),
    "DATA before the response HEADERS": (lambda p, s: p.send(s, data_frame(b"x")),
                                         E.H3_FRAME_UNEXPECTED),
}


@pytest.mark.parametrize("name", list(CLIENT_CONNECTION_ERRORS))
def test_connection_error_at_client(name: str) -> None:
    case, code = CLIENT_CONNECTION_ERRORS[name]
    peer, client, stream_id = client_with_request()
    case(peer, stream_id)
    assert_connection_error(peer.link.client_quic.closed, client, code)


CLIENT_STREAM_ERRORS: dict[str, tuple[bytes, int]] = {
    "101 response": (headers_frame([(b":status", b"101")]), E.H3_MESSAGE_ERROR),
    "response without :status": (headers_frame([(b"server", b"x")]), E.H3_MESSAGE_ERROR),
    "request pseudo-header in a response": (
        headers_frame([(b":status", b"200"), (b":path", b"/")]), E.H3_MESSAGE_ERROR),
    "stream ends after an interim response": (headers_frame([(b":status", b"103")]),
                                              E.H3_MESSAGE_ERROR),
    "content-length mismatch": (
        headers_frame([(b":status", b"200"), (b"content-length", b"2")]) + data_frame(b"abc"),
        E.H3_MESSAGE_ERROR),
    "204 with content": (headers_frame([(b":status", b"204")]) + data_frame(b"x"),
                         E.H3_MESSAGE_ERROR),
}


@pytest.mark.parametrize("name", list(CLIENT_STREAM_ERRORS))
def test_connection_stream_error_at_client(name: str) -> None:
    data, code = CLIENT_STREAM_ERRORS[name]
    peer, client, stream_id = client_with_request()
    peer.send(stream_id, data, end_stream=True)
    quic = peer.link.client_quic
    assert quic.closed is None
    assert quic.stops[stream_id] == code  # the client's own side already ended (FIN)
    assert client.of(h3.StreamReset) == [h3.StreamReset(stream_id=stream_id, error_code=code,
                                                        by_peer=False)]
    assert client.of(h3.HeadersReceived) == [] or code == E.H3_MESSAGE_ERROR


def test_connection_errors_never_escape_split_at_every_byte() -> None:
    """A whole valid exchange fed one byte at a time works; cut short, it is a clean error."""
    message = headers_frame(request_fields(b"POST", b"/", (b"content-length", b"5"))) \
        + data_frame(b"hello")
    exchange = message + headers_frame([(b"x-t", b"1")])
    for cut in range(len(exchange) + 1):
        link, peer, server = raw_client_link()
        peer.setup()
        stream_id = peer.quic.get_next_available_stream_id()
        for i in range(cut):
            peer.send(stream_id, exchange[i:i + 1])
        peer.send(stream_id, b"", end_stream=True)
        if cut in (len(message), len(exchange)):  # complete, without or with trailers
            assert b"".join(e.data for e in server.of(h3.DataReceived)) == b"hello"
            trailers = server.of(h3.TrailersReceived)
            assert [t.headers for t in trailers] == ([[(b"x-t", b"1")]] if cut > len(message)
                                                     else [])
            assert server.terminated is None and not link.server_quic.resets
        elif server.terminated is not None:
            assert server.terminated.error_code == E.H3_FRAME_ERROR  # cut inside a frame
        else:
            # cut between frames: an incomplete request or a content-length shortfall
            assert link.server_quic.resets[stream_id] in (E.H3_REQUEST_INCOMPLETE,
                                                          E.H3_MESSAGE_ERROR)


def test_connection_stream_error_too_large_trailers_behind_blocked_headers() -> None:
    # the trailers wait behind a header section blocked on the encoder stream; once it
    # arrives, their size is a stream error (RFC 9114 §4.2.2), not a connection error
    link, peer, server = raw_client_link(server_settings=attrs.evolve(
        h3.DEFAULT_SETTINGS, max_field_section_size=300))
    peer.setup()
    encoder = qpack.Encoder()
    encoder_data = encoder.apply_settings(max_table_capacity=4096, blocked_streams=16)
    stream_id = peer.quic.get_next_available_stream_id()
    inserts, section = encoder.encode(stream_id, request_fields(b"GET", b"/", (b"x-a", b"b")))
    assert inserts, "the header section must reference entries not yet sent"
    # too big for the 4096-byte table: a literal, so it decodes as soon as it is reached
    more, trailers = encoder.encode(stream_id, [(b"x-trailer", b"t" * 5000)])
    assert not more
    peer.request(frame(FT.HEADERS, section) + frame(FT.HEADERS, trailers), end_stream=True)
    assert server.of(h3.HeadersReceived) == []
    peer.send(peer.encoder_id, encoder_data + inserts)
    link.pump()
    assert server.terminated is None
    assert link.server_quic.resets[stream_id] == E.H3_MESSAGE_ERROR
    assert server.of(h3.HeadersReceived)[0].stream_id == stream_id


def test_connection_same_malformed_request_is_reset_every_time() -> None:
    # validation results are remembered for valid sections: a malformed one that comes again
    # (after valid ones that share its fields) must be caught again
    link, peer, server = raw_client_link()
    peer.setup()
    good = headers_frame(request_fields(b"GET", b"/", (b"x-a", b"1")))
    bad = headers_frame(request_fields(b"GET", b"/", (b"x-a", b"1"), (b"X-Up", b"1")))
    for _ in range(3):
        ok = peer.request(good, end_stream=True)
        assert server.of(h3.HeadersReceived)[-1].stream_id == ok
        stream_id = peer.request(bad, end_stream=True)
        assert link.server_quic.resets[stream_id] == E.H3_MESSAGE_ERROR
        assert server.of(h3.StreamReset)[-1] == h3.StreamReset(
            stream_id=stream_id, error_code=E.H3_MESSAGE_ERROR, by_peer=False)
    assert link.server_quic.closed is None
