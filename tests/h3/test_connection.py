"""h3.Connection between two of ours over an in-memory QUIC: the HTTP/3 machinery itself.

Fast (no handshake, no packets); the same behaviour against aioquic's HTTP/3 over real QUIC is
in test_connection_interop.py, and every peer-triggered error code in
test_connection_errors.py.
"""

from __future__ import annotations

import attrs
import pytest

from tests.h3.h3_support import (
    MemoryLink,
    MemorySide,
    connect_fields,
    data_frame,
    headers_frame,
    raw_client_link,
    request_fields,
    varint,
)
from trio_zttp import h3
from trio_zttp._buffer import Reader
from trio_zttp.h3._capsules import decode_h3_datagram, encode_h3_datagram
from trio_zttp.h3._frames import FrameParser, decode_stream_header
from trio_zttp.h3._settings import decode_settings

RESPONSE = [(b":status", b"200")]
DATAGRAMS = attrs.evolve(h3.DEFAULT_SETTINGS, h3_datagram=True)
CONNECT_SERVER = attrs.evolve(h3.DEFAULT_SETTINGS, h3_datagram=True, enable_connect_protocol=True)


def open_request(link: MemoryLink, fields: list[tuple[bytes, bytes]] | None = None,
                 end_stream: bool = False) -> int:
    client = link.side("client")
    stream_id = client.h3.get_next_request_stream_id()
    client.h3.send_headers(stream_id, fields or request_fields(), end_stream=end_stream)
    link.pump()
    return stream_id


def body(side: MemorySide, stream_id: int) -> bytes:
    return b"".join(e.data for e in side.of(h3.DataReceived, stream_id))


def ended(side: MemorySide, stream_id: int) -> bool:
    return any(getattr(e, "end_stream", False) for e in side.events
               if getattr(e, "stream_id", None) == stream_id)


# --------------------------------------------------------------------- setup, SETTINGS


def test_connection_opens_control_encoder_decoder_and_grease_streams() -> None:
    link = MemoryLink(client_settings=DATAGRAMS, server_settings=CONNECT_SERVER)
    sent = link.server_quic.sent
    # server-initiated unidirectional streams 3, 7, 11 (+15 GREASE), in that order
    assert sorted(sent) == [3, 7, 11, 15]
    types = {sid: decode_stream_header(bytes(data))[0] for sid, data in sent.items()}
    assert types[3] == h3.StreamType.CONTROL
    assert types[7] == h3.StreamType.QPACK_ENCODER
    assert types[11] == h3.StreamType.QPACK_DECODER
    assert h3.is_reserved_stream_type(types[15]) and 15 in link.server_quic.fins
    frames = FrameParser().feed(bytes(sent[3])[1:])
    # SETTINGS first, then a reserved frame type
    assert frames[0][0] == h3.FrameType.SETTINGS
    assert h3.is_reserved_frame_type(frames[1][0])
    settings = decode_settings(frames[0][1])
    assert settings == CONNECT_SERVER
    # one reserved setting identifier on the wire besides ours
    reader = Reader(frames[0][1])
    identifiers = []
    while not reader.eof():
        identifiers.append(reader.pull_varint())
        reader.pull_varint()
    assert {0x1, 0x6, 0x7, 0x8, 0x33} < set(identifiers)
    assert sum(h3.is_reserved_frame_type(i) for i in identifiers) == 1


def test_connection_without_grease_sends_only_the_three_streams() -> None:
    link = MemoryLink(grease=False)
    assert sorted(link.client_quic.sent) == [2, 6, 10]
    frames = FrameParser().feed(bytes(link.client_quic.sent[2])[1:])
    assert [t for t, _ in frames] == [h3.FrameType.SETTINGS]


def test_connection_reports_peer_settings() -> None:
    link = MemoryLink(client_settings=DATAGRAMS, server_settings=CONNECT_SERVER)
    client, server = link.side("client"), link.side("server")
    assert client.h3.peer_settings is None
    link.pump()
    assert client.of(h3.SettingsReceived)[0].settings == CONNECT_SERVER
    assert server.of(h3.SettingsReceived)[0].settings == DATAGRAMS
    assert client.h3.peer_settings == CONNECT_SERVER
    assert client.h3.local_settings == DATAGRAMS
    assert client.h3.datagrams_enabled and server.h3.datagrams_enabled


def test_connection_datagrams_need_both_settings_and_the_transport_parameter() -> None:
    link = MemoryLink(client_settings=DATAGRAMS)
    link.pump()
    assert not link.side("client").h3.datagrams_enabled  # server did not offer H3_DATAGRAM
    link = MemoryLink(client_settings=DATAGRAMS, server_settings=DATAGRAMS,
                      client_datagram_frame_size=None)
    link.pump()
    # the server has the client's SETTINGS_H3_DATAGRAM=1 without max_datagram_frame_size
    server = link.side("server")
    assert server.terminated is not None
    assert server.terminated.error_code == h3.ErrorCode.H3_SETTINGS_ERROR


# ------------------------------------------------------------- requests and responses


def test_connection_get_with_response_body() -> None:
    link = MemoryLink()
    link.pump()
    client, server = link.side("client"), link.side("server")
    stream_id = open_request(link, end_stream=True)
    request = server.of(h3.HeadersReceived)[0]
    assert request == h3.HeadersReceived(stream_id=0, headers=request_fields(), end_stream=True)
    server.h3.send_headers(stream_id, [(b":status", b"200"), (b"content-length", b"11")])
    server.h3.send_data(stream_id, b"hello ")
    server.h3.send_data(stream_id, b"world", end_stream=True)
    link.pump()
    response = client.of(h3.HeadersReceived)[0]
    assert response.headers == [(b":status", b"200"), (b"content-length", b"11")]
    assert not response.interim
    assert body(client, stream_id) == b"hello world"
    assert client.of(h3.DataReceived)[-1].end_stream
    assert client.h3.open_request_streams == 0 and server.h3.open_request_streams == 0


def test_connection_post_body_and_trailers_both_ways() -> None:
    link = MemoryLink()
    link.pump()
    client, server = link.side("client"), link.side("server")
    stream_id = open_request(link, request_fields(b"POST", b"/upload"))
    payload = bytes(range(256)) * 40  # large enough for the separate-payload path
    client.h3.send_data(stream_id, payload)
    client.h3.send_trailers(stream_id, [(b"x-checksum", b"abc")])
    link.pump()
    assert body(server, stream_id) == payload
    assert server.of(h3.TrailersReceived) == [
        h3.TrailersReceived(stream_id=stream_id, headers=[(b"x-checksum", b"abc")])]
    server.h3.send_headers(stream_id, RESPONSE)
    server.h3.send_data(stream_id, b"ok")
    server.h3.send_trailers(stream_id, [(b"grpc-status", b"0")])
    link.pump()
    assert body(client, stream_id) == b"ok"
    assert client.of(h3.TrailersReceived)[0].headers == [(b"grpc-status", b"0")]
    # trailers end the message: no extra end-of-stream event
    assert not any(e.end_stream for e in client.of(h3.DataReceived))


def test_connection_interim_responses_before_the_final_one() -> None:
    link = MemoryLink()
    link.pump()
    client, server = link.side("client"), link.side("server")
    stream_id = open_request(link, end_stream=True)
    server.h3.send_headers(stream_id, [(b":status", b"100")])
    server.h3.send_headers(stream_id, [(b":status", b"103"), (b"link", b"</a.css>")])
    server.h3.send_headers(stream_id, [(b":status", b"204")], end_stream=True)
    link.pump()
    heads = client.of(h3.HeadersReceived)
    assert [(e.headers[0][1], e.interim, e.end_stream) for e in heads] == [
        (b"100", True, False), (b"103", True, False), (b"204", False, True)]
    with pytest.raises(ValueError, match="interim"):
        open_and_interim_end(link)


def open_and_interim_end(link: MemoryLink) -> None:
    stream_id = open_request(link, end_stream=True)
    link.side("server").h3.send_headers(stream_id, [(b":status", b"100")], end_stream=True)


def test_connection_fin_alone_is_reported_as_empty_data() -> None:
    link = MemoryLink()
    link.pump()
    client, server = link.side("client"), link.side("server")
    stream_id = open_request(link, request_fields(b"POST"))
    client.h3.send_data(stream_id, b"abc")
    link.pump()
    client.h3.send_data(stream_id, b"", end_stream=True)
    link.pump()
    data = server.of(h3.DataReceived)
    assert [(e.data, e.end_stream) for e in data] == [(b"abc", False), (b"", True)]


def test_connection_one_hundred_concurrent_requests() -> None:
    link = MemoryLink()
    link.pump()
    client, server = link.side("client"), link.side("server")

    def respond(side: MemorySide, event: h3.Event) -> None:
        if isinstance(event, h3.HeadersReceived):
            path = dict(event.headers)[b":path"]
            side.h3.send_headers(event.stream_id, RESPONSE)
            side.h3.send_data(event.stream_id, path * 3, end_stream=True)

    server.handler = respond
    streams = {}
    for n in range(100):
        stream_id = client.h3.get_next_request_stream_id()
        path = f"/item/{n}".encode()
        client.h3.send_headers(stream_id, request_fields(b"GET", path,
                                                         (b"user-agent", b"trio-zttp-test")),
                               end_stream=True)
        streams[stream_id] = path
    link.pump()
    assert sorted(streams) == list(range(0, 400, 4))
    for stream_id, path in streams.items():
        assert body(client, stream_id) == path * 3
        assert ended(client, stream_id)
    assert client.h3.open_request_streams == 0 and server.h3.open_request_streams == 0


# ------------------------------------------------------------------------------ GOAWAY


def test_connection_goaway_from_server_drains_gracefully() -> None:
    link = MemoryLink()
    link.pump()
    client, server = link.side("client"), link.side("server")
    first = open_request(link, end_stream=True)
    second = open_request(link, end_stream=True)
    assert server.h3.send_goaway() == 8
    link.pump()
    assert client.of(h3.GoawayReceived) == [h3.GoawayReceived(identifier=8)]
    assert client.h3.goaway_received == 8 and server.h3.goaway_sent == 8
    with pytest.raises(h3.StateError, match="GOAWAY"):
        client.h3.get_next_request_stream_id()
    assert not server.h3.is_drained and not client.h3.is_drained
    for stream_id in (first, second):
        server.h3.send_headers(stream_id, RESPONSE, end_stream=True)
    link.pump()
    assert ended(client, first) and ended(client, second)
    assert server.h3.is_drained and client.h3.is_drained
    # a GOAWAY may shrink, never grow
    with pytest.raises(ValueError, match="grow"):
        server.h3.send_goaway(12)
    assert server.h3.send_goaway(4) == 4
    link.pump()
    assert client.h3.goaway_received == 4
    server.h3.close()
    link.pump()
    assert client.terminated == h3.ConnectionTerminated(
        error_code=h3.ErrorCode.H3_NO_ERROR, reason_phrase="", by_peer=True)


def test_connection_goaway_rejects_later_requests() -> None:
    link, peer, server = raw_client_link()
    peer.setup()
    first = peer.request(headers_frame(request_fields()), end_stream=True)
    assert server.h3.send_goaway() == first + 4
    late = peer.request(headers_frame(request_fields()))
    link.pump()
    assert link.server_quic.resets[late] == h3.ErrorCode.H3_REQUEST_REJECTED
    assert link.server_quic.stops[late] == h3.ErrorCode.H3_REQUEST_REJECTED
    assert [e.stream_id for e in server.of(h3.HeadersReceived)] == [first]
    # more data in flight on the rejected stream does not revive it
    peer.send(late, data_frame(b"x"), end_stream=True)
    assert [e.stream_id for e in server.of(h3.HeadersReceived)] == [first]
    assert server.terminated is None


def test_connection_goaway_two_step_and_from_client() -> None:
    link = MemoryLink()
    link.pump()
    client, server = link.side("client"), link.side("server")
    server.h3.send_goaway((1 << 62) - 4)
    link.pump()
    open_request(link, end_stream=True)  # still allowed below the first GOAWAY
    assert server.h3.send_goaway() == 4
    assert client.h3.send_goaway() == 0
    link.pump()
    assert server.of(h3.GoawayReceived) == [h3.GoawayReceived(identifier=0)]
    assert client.of(h3.GoawayReceived)[-1].identifier == 4


# --------------------------------------------------------------- extended CONNECT


def test_connection_extended_connect_needs_the_peer_setting() -> None:
    link = MemoryLink()  # the server does not enable extended CONNECT
    link.pump()
    client = link.side("client")
    with pytest.raises(ValueError, match="not enabled"):
        client.h3.send_headers(client.h3.get_next_request_stream_id(), connect_fields())
    link = MemoryLink(server_settings=CONNECT_SERVER)
    client, server = link.side("client"), link.side("server")
    stream_id = client.h3.get_next_request_stream_id()
    with pytest.raises(ValueError, match="not enabled"):  # SETTINGS not received yet
        client.h3.send_headers(stream_id, connect_fields())
    link.pump()
    client.h3.send_headers(stream_id, connect_fields())
    link.pump()
    request = server.of(h3.HeadersReceived)[0]
    assert (b":protocol", b"ping-pong") in request.headers
    server.h3.send_headers(stream_id, RESPONSE)
    server.h3.send_data(stream_id, b"tunnel bytes")
    client.h3.send_data(stream_id, b"more tunnel bytes")
    link.pump()
    assert body(client, stream_id) == b"tunnel bytes"
    assert body(server, stream_id) == b"more tunnel bytes"
    with pytest.raises(h3.StateError):
        client.h3.send_trailers(stream_id, [(b"x", b"y")])  # a tunnel has no trailers


# ------------------------------------------------------------------------- datagrams


def connect_link(**options: object) -> tuple[MemoryLink, int]:
    options.setdefault("client_settings", DATAGRAMS)
    options.setdefault("server_settings", CONNECT_SERVER)
    link = MemoryLink(**options)  # type: ignore[arg-type]
    link.pump()
    stream_id = open_request(link, connect_fields())
    link.side("server").h3.send_headers(stream_id, RESPONSE)
    link.pump()
    return link, stream_id


def test_connection_datagrams_both_ways_with_quarter_stream_id() -> None:
    link, _ = connect_link()
    client, server = link.side("client"), link.side("server")
    # a second CONNECT stream, to see the prefix change
    stream_id = open_request(link, connect_fields())
    server.h3.send_headers(stream_id, RESPONSE)
    client.h3.send_datagram(stream_id, b"ping")
    link.pump()
    assert link.client_quic.datagrams == [varint(stream_id // 4) + b"ping"]
    assert server.of(h3.DatagramReceived) == [h3.DatagramReceived(stream_id=4, data=b"ping")]
    server.h3.send_datagram(stream_id, b"")
    link.pump()
    assert client.of(h3.DatagramReceived) == [h3.DatagramReceived(stream_id=4, data=b"")]


def test_connection_datagrams_one_and_longer_quarter_stream_ids() -> None:
    """Streams below 256 take the one-byte Quarter Stream ID shortcut both ways, longer IDs
    the general varint codec: the same wire format (RFC 9297 §2.1) and the same events."""
    link, _ = connect_link()
    client, server = link.side("client"), link.side("server")
    sent = 0
    for round_ in range(80):  # streams 4 .. 320
        stream_id = open_request(link, connect_fields())
        server.h3.send_headers(stream_id, RESPONSE)
        if round_ % 7 and stream_id not in (252, 256, 260):
            continue
        payload = bytes([round_]) * round_
        client.h3.send_datagram(stream_id, payload)
        server.h3.send_datagram(stream_id, memoryview(payload))
        link.pump()
        sent += 1
        wire = encode_h3_datagram(stream_id, payload)
        assert link.client_quic.datagrams[-1] == link.server_quic.datagrams[-1] == wire
        assert decode_h3_datagram(wire) == (stream_id, payload)
        expected = h3.DatagramReceived(stream_id=stream_id, data=payload)
        assert server.of(h3.DatagramReceived)[-1] == expected
        assert client.of(h3.DatagramReceived)[-1] == expected
    assert sent >= 12 and len(server.of(h3.DatagramReceived)) == sent


def test_connection_datagrams_for_unknown_or_finished_streams_are_dropped() -> None:
    link, stream_id = connect_link()
    client, server = link.side("client"), link.side("server")
    link.client_quic.send_datagram_frame(varint(100) + b"unknown stream")
    link.pump()
    client.h3.send_data(stream_id, b"", end_stream=True)  # client's side done
    link.pump()
    link.client_quic.send_datagram_frame(varint(stream_id // 4) + b"after FIN")
    link.pump()
    assert server.of(h3.DatagramReceived) == []
    assert server.terminated is None
    # the server can still send on its open side; the client still receives
    server.h3.send_datagram(stream_id, b"still open")
    link.pump()
    assert client.of(h3.DatagramReceived)[0].data == b"still open"


def test_connection_datagram_refused_when_not_negotiated_or_not_connect() -> None:
    link, stream_id = connect_link(client_settings=h3.DEFAULT_SETTINGS)
    client = link.side("client")
    with pytest.raises(h3.StateError, match="not negotiated"):
        client.h3.send_datagram(stream_id, b"x")
    link = MemoryLink(client_settings=DATAGRAMS, server_settings=DATAGRAMS)
    link.pump()
    get = open_request(link)
    with pytest.raises(h3.StateError, match="not a CONNECT"):
        link.side("client").h3.send_datagram(get, b"x")


def test_connection_datagram_ignored_without_our_setting() -> None:
    link, stream_id = connect_link(server_settings=attrs.evolve(
        CONNECT_SERVER, h3_datagram=False))
    link.client_quic.send_datagram_frame(b"")  # not even parsed
    link.pump()
    assert link.side("server").terminated is None


# -------------------------------------------------------------------- capsule protocol


def test_connection_capsule_protocol_datagram_fallback_both_ways() -> None:
    link, stream_id = connect_link(client_settings=h3.DEFAULT_SETTINGS)  # no H3_DATAGRAM
    client, server = link.side("client"), link.side("server")
    client.h3.enable_capsule_protocol(stream_id)
    server.h3.enable_capsule_protocol(stream_id)
    client.h3.send_datagram(stream_id, b"via capsule")
    server.h3.send_datagram(stream_id, b"back")
    link.pump()
    assert link.client_quic.datagrams == []  # no QUIC DATAGRAM frames
    # on the wire: a DATA frame holding capsule 0x00
    assert bytes(link.client_quic.sent[stream_id]).endswith(
        data_frame(h3.encode_capsule(h3.CapsuleType.DATAGRAM, b"via capsule")))
    assert server.of(h3.DatagramReceived) == [
        h3.DatagramReceived(stream_id=stream_id, data=b"via capsule")]
    assert client.of(h3.DatagramReceived) == [
        h3.DatagramReceived(stream_id=stream_id, data=b"back")]
    assert server.of(h3.DataReceived) == []


def test_connection_capsules_unknown_surface_grease_skipped() -> None:
    link, stream_id = connect_link()
    client, server = link.side("client"), link.side("server")
    server.h3.enable_capsule_protocol(stream_id)
    client.h3.send_capsule(stream_id, 0x4242, b"extension")
    client.h3.send_capsule(stream_id, h3.grease_capsule_type(3), b"ignore me")
    # a capsule split across DATA frames
    capsule = h3.encode_capsule(h3.CapsuleType.DATAGRAM, b"split datagram")
    client.h3.send_data(stream_id, capsule[:5])
    client.h3.send_data(stream_id, capsule[5:])
    link.pump()
    events = [e for e in server.events if getattr(e, "stream_id", None) == stream_id][1:]
    assert events == [
        h3.CapsuleReceived(stream_id=stream_id, capsule_type=0x4242, value=b"extension"),
        h3.DatagramReceived(stream_id=stream_id, data=b"split datagram"),
    ]


def test_connection_capsule_switch_rereads_queued_data() -> None:
    link, stream_id = connect_link()
    client, server = link.side("client"), link.side("server")
    client.h3.send_capsule(stream_id, 0, b"early")
    client.h3.send_data(stream_id, b"", end_stream=True)
    for event in list(link.server_quic.inbox):
        server.h3.receive_quic_event(event)
    link.server_quic.inbox.clear()
    server.h3.enable_capsule_protocol(stream_id)  # the DataReceived is still queued
    pulled = []
    while (event := server.h3.next_event()) is not None:
        pulled.append(event)
    assert pulled == [h3.DatagramReceived(stream_id=stream_id, data=b"early"),
                      h3.DataReceived(stream_id=stream_id, data=b"", end_stream=True)]


def test_connection_capsule_truncated_by_fin_is_a_message_error() -> None:
    link, stream_id = connect_link()
    client, server = link.side("client"), link.side("server")
    server.h3.enable_capsule_protocol(stream_id)
    client.h3.send_data(stream_id, h3.encode_capsule(0x4242, b"whole")[:-1], end_stream=True)
    link.pump()
    assert server.of(h3.StreamReset) == [h3.StreamReset(
        stream_id=stream_id, error_code=h3.ErrorCode.H3_MESSAGE_ERROR, by_peer=False)]
    assert client.of(h3.StreamReset)[0].error_code == h3.ErrorCode.H3_MESSAGE_ERROR


# ---------------------------------------------------------------- QPACK blocked streams


def test_connection_blocked_header_block_waits_for_the_encoder_stream() -> None:
    link = MemoryLink()
    link.pump()
    client, server = link.side("client"), link.side("server")
    encoder_stream = 6  # the client's QPACK encoder stream
    server.held.add(encoder_stream)
    fields = request_fields(b"POST", b"/", (b"x-tenant", b"blue-team-of-the-north-wing"),
                            (b"x-trace", b"1234"))  # too large for literals only
    stream_id = client.h3.get_next_request_stream_id()
    client.h3.send_headers(stream_id, fields)
    client.h3.send_data(stream_id, b"body", end_stream=True)
    link.pump()
    assert server.of(h3.HeadersReceived) == []  # blocked: references entries not yet there
    assert server.held_events
    link.release("server", encoder_stream)
    assert [type(e).__name__ for e in server.events[1:]] == ["HeadersReceived", "DataReceived"]
    assert server.of(h3.HeadersReceived)[0].headers == fields
    assert body(server, stream_id) == b"body" and ended(server, stream_id)
    # the dynamic table really was used: smaller than the same fields without it
    second = open_request(link, fields)
    assert len(link.client_quic.sent[second]) < len(headers_frame(fields)) - 20
    assert server.of(h3.HeadersReceived)[1].headers == fields


def test_connection_reset_of_a_blocked_stream_cancels_it_at_the_encoder() -> None:
    link = MemoryLink()
    link.pump()
    client, server = link.side("client"), link.side("server")
    server.held.add(6)
    stream_id = client.h3.get_next_request_stream_id()
    client.h3.send_headers(stream_id, request_fields(b"GET", b"/", (b"x-a", b"b" * 40)))
    client.h3.reset_stream(stream_id)
    link.pump()
    decoder_stream = bytes(link.server_quic.sent[11])
    # Stream Cancellation (01xxxxxx) for stream 0 after the stream type byte
    assert decoder_stream[1:] == bytes([0x40 | stream_id])
    assert server.of(h3.StreamReset) == [h3.StreamReset(
        stream_id=stream_id, error_code=h3.ErrorCode.H3_REQUEST_CANCELLED)]
    link.release("server", 6)
    assert server.of(h3.HeadersReceived) == []  # the cancelled section stays dropped
    assert server.terminated is None


# ------------------------------------------------------------ resets, stop, misuse


def test_connection_stop_sending_from_peer_resets_our_side() -> None:
    link = MemoryLink()
    link.pump()
    client, server = link.side("client"), link.side("server")
    stream_id = open_request(link, end_stream=True)
    client.h3.stop_sending(stream_id)
    link.pump()
    assert server.of(h3.StopSendingReceived) == [h3.StopSendingReceived(
        stream_id=stream_id, error_code=h3.ErrorCode.H3_REQUEST_CANCELLED)]
    assert link.server_quic.resets[stream_id] == h3.ErrorCode.H3_REQUEST_CANCELLED
    with pytest.raises(h3.StateError):
        server.h3.send_headers(stream_id, RESPONSE)
    assert server.h3.open_request_streams == 0


def test_connection_commands_refused_in_the_wrong_state() -> None:
    link = MemoryLink()
    link.pump()
    client, server = link.side("client"), link.side("server")
    stream_id = open_request(link, request_fields(b"POST"))
    with pytest.raises(h3.StateError):
        server.h3.send_data(stream_id, b"before the response")
    with pytest.raises(h3.StateError):
        client.h3.send_headers(stream_id, request_fields())
    with pytest.raises(h3.StateError):
        server.h3.get_next_request_stream_id()
    with pytest.raises(h3.StateError):
        client.h3.send_headers(1, request_fields())  # not a request stream ID
    with pytest.raises(h3.StateError):
        server.h3.send_data(400, b"no such stream")
    with pytest.raises(ValueError, match="invalid response"):
        server.h3.send_headers(stream_id, [(b":status", b"101")])
    with pytest.raises(ValueError, match="invalid request"):
        client.h3.send_headers(4, [(b":method", b"GET"), (b"Bad", b"x")])
    with pytest.raises(ValueError, match="invalid trailers"):
        client.h3.send_trailers(stream_id, [(b":path", b"/")])
    client.h3.send_data(stream_id, b"", end_stream=True)
    with pytest.raises(h3.StateError):
        client.h3.send_data(stream_id, b"after the end")
    client.h3.close()
    with pytest.raises(h3.StateError, match="closed"):
        client.h3.get_next_request_stream_id()
    assert client.h3.is_closed


def test_connection_header_section_above_peer_limit_is_refused() -> None:
    link = MemoryLink(server_settings=attrs.evolve(h3.DEFAULT_SETTINGS,
                                                   max_field_section_size=200))
    link.pump()
    client = link.side("client")
    with pytest.raises(ValueError, match="MAX_FIELD_SECTION_SIZE"):
        client.h3.send_headers(0, request_fields(b"GET", b"/", (b"cookie", b"x" * 200)))


def test_connection_close_reports_once_and_ignores_later_events() -> None:
    link = MemoryLink()
    link.pump()
    client, server = link.side("client"), link.side("server")
    client.h3.close(h3.ErrorCode.H3_INTERNAL_ERROR, "bye")
    client.h3.close()  # no-op
    link.pump()
    assert client.of(h3.ConnectionTerminated) == [h3.ConnectionTerminated(
        error_code=h3.ErrorCode.H3_INTERNAL_ERROR, reason_phrase="bye", by_peer=False)]
    assert server.of(h3.ConnectionTerminated) == [h3.ConnectionTerminated(
        error_code=h3.ErrorCode.H3_INTERNAL_ERROR, reason_phrase="bye", by_peer=True)]
    server.h3.receive_quic_event(object())
    assert server.h3.next_event() is None


# ------------------------------------------------------------- ignored unknown things


def test_connection_ignores_unknown_frames_streams_and_settings() -> None:
    link, peer, server = raw_client_link()
    unknown_setting = (0x4242, 7)
    peer.control_id = peer.uni(h3.StreamType.CONTROL, h3.encode_frame(
        h3.FrameType.SETTINGS, varint(unknown_setting[0]) + varint(unknown_setting[1]))
        + h3.encode_frame(0x21, b"reserved") + h3.encode_frame(0x7777, b"unknown"))
    unknown = peer.uni(0x54, b"whatever", end_stream=False)
    grease = peer.uni(h3.grease_stream_type(5), b"x", end_stream=True)
    stream_id = peer.request(h3.encode_frame(0x21, b"") + headers_frame(request_fields())
                             + h3.encode_frame(0x7777, b"skip") + data_frame(b"body"),
                             end_stream=True)
    assert server.terminated is None
    assert server.of(h3.SettingsReceived)[0].settings.unknown == (unknown_setting,)
    assert link.server_quic.stops == {unknown: h3.ErrorCode.H3_STREAM_CREATION_ERROR}
    assert grease not in link.server_quic.stops  # already finished: nothing to stop
    assert body(server, stream_id) == b"body" and ended(server, stream_id)
    peer.send(unknown, b"more", end_stream=True)  # still ignored
    assert server.terminated is None


def test_connection_stream_type_split_across_chunks() -> None:
    link, peer, server = raw_client_link()
    control = peer.quic.get_next_available_stream_id(is_unidirectional=True)
    two_byte_type = varint(0x40)  # an unknown type needing a 2-byte varint
    peer.send(control, two_byte_type[:1])
    peer.send(control, two_byte_type[1:])
    assert link.server_quic.stops == {control: h3.ErrorCode.H3_STREAM_CREATION_ERROR}
    assert server.terminated is None


def test_connection_send_headers_checks_built_sections_in_its_own_context() -> None:
    # build_request_headers accepts extended CONNECT; send_headers still needs the peer's
    # setting, and still refuses what is malformed, however often the same list comes by
    link = MemoryLink()  # the server does not enable extended CONNECT
    link.pump()
    client = link.side("client")
    fields = h3.build_request_headers("CONNECT", "/", authority="localhost", protocol="x")
    for _ in range(2):
        with pytest.raises(ValueError, match="not enabled"):
            client.h3.send_headers(client.h3.get_next_request_stream_id(), fields)
        with pytest.raises(ValueError, match="invalid request"):
            client.h3.send_headers(client.h3.get_next_request_stream_id(),
                                   [*request_fields(), (b"connection", b"close")])
    client.h3.send_headers(client.h3.get_next_request_stream_id(), request_fields())


class _Pair(tuple):  # type: ignore[type-arg]
    """A tuple subclass: equal to a plain pair, but not what the connection keeps."""


@pytest.mark.parametrize(
    "shape",
    [
        lambda n, v: [n, v],
        lambda n, v: (bytearray(n), v),
        lambda n, v: (n, memoryview(v)),
        lambda n, v: _Pair((n, v)),
    ],
)
def test_connection_send_headers_takes_any_field_shape(shape: object) -> None:
    """Fields given as lists, bytearrays, memoryviews or tuple subclasses are copied into
    plain byte pairs: the same wire bytes and the same decoded request as plain tuples."""
    fields = request_fields(b"GET", b"/x", (b"x-a", b"1"))
    wires, decoded = [], []
    for given_fields in (fields, [shape(n, v) for n, v in fields]):  # type: ignore[operator]
        link = MemoryLink()
        link.pump()
        stream_id = open_request(link, given_fields, end_stream=True)
        wires.append(bytes(link.client_quic.sent[stream_id]))
        decoded.append(link.side("server").of(h3.HeadersReceived, stream_id)[0].headers)
    assert wires[0] == wires[1]
    assert decoded[0] == decoded[1] == fields
