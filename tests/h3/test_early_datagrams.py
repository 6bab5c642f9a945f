"""HTTP/3 datagrams that reach a server before their request (RFC 9297 §2.1).

aioquic and qh3 put DATAGRAM frames before STREAM frames in a packet, so a client's first
datagram, sent together with its CONNECT request, arrives first (seen in
test_interop_ours.py). The server holds a bounded number of such datagrams until the
request's header section is read. Here a raw client (no HTTP/3 of its own) writes the
bytes over the in-memory QUIC of ``h3_support``.
"""

from __future__ import annotations

import attrs

from tests.h3.h3_support import (
    MemoryLink,
    MemorySide,
    RawPeer,
    connect_fields,
    headers_frame,
    raw_client_link,
    request_fields,
    varint,
)
from trio_zttp import h3
from trio_zttp.h3._receive import MAX_EARLY_DATAGRAM_BYTES, MAX_EARLY_DATAGRAMS

SERVER = attrs.evolve(h3.DEFAULT_SETTINGS, h3_datagram=True, enable_connect_protocol=True)


def datagram(stream_id: int, payload: bytes) -> bytes:
    return varint(stream_id // 4) + payload


def setup() -> tuple[MemoryLink, RawPeer, MemorySide]:
    link, peer, server = raw_client_link(server_settings=SERVER)
    peer.setup()
    return link, peer, server


def stream_events(server: MemorySide, stream_id: int) -> list[h3.Event]:
    return [e for e in server.events if getattr(e, "stream_id", None) == stream_id]


def test_early_datagrams_delivered_after_the_request_in_order() -> None:
    link, peer, server = setup()
    quic = link.client_quic
    quic.send_datagram_frame(datagram(0, b"first"))
    quic.send_datagram_frame(datagram(0, b"second"))
    link.pump()
    assert stream_events(server, 0) == []
    peer.request(headers_frame(connect_fields(b"connect-udp")))
    events = stream_events(server, 0)
    assert [type(e) for e in events] == [
        h3.HeadersReceived, h3.DatagramReceived, h3.DatagramReceived]
    assert [e.data for e in events[1:]] == [b"first", b"second"]
    # later ones go straight through
    quic.send_datagram_frame(datagram(0, b"third"))
    link.pump()
    assert stream_events(server, 0)[-1] == h3.DatagramReceived(stream_id=0, data=b"third")


def test_early_datagram_waits_for_a_request_split_across_packets() -> None:
    # the stream exists (part of its HEADERS frame arrived) but the request is not read yet
    link, peer, server = setup()
    frame = headers_frame(connect_fields(b"connect-udp"))
    sid = peer.request(frame[:3])
    link.client_quic.send_datagram_frame(datagram(sid, b"early"))
    link.pump()
    assert stream_events(server, sid) == []
    peer.send(sid, frame[3:])
    assert stream_events(server, sid)[1:] == [h3.DatagramReceived(stream_id=sid, data=b"early")]


def test_early_datagram_for_a_request_without_datagrams_aborts_it() -> None:
    # a datagram tied to a GET: the request has no datagram semantics (RFC 9297 §2)
    link, peer, server = setup()
    link.client_quic.send_datagram_frame(datagram(0, b"stray"))
    link.pump()
    peer.request(headers_frame(request_fields()))
    events = stream_events(server, 0)
    assert [type(e) for e in events] == [h3.HeadersReceived, h3.StreamReset]
    assert events[1].error_code == h3.ErrorCode.H3_DATAGRAM_ERROR
    assert link.server_quic.resets == {0: h3.ErrorCode.H3_DATAGRAM_ERROR}


def test_early_datagrams_are_bounded_in_number_and_bytes() -> None:
    link, peer, server = setup()
    quic = link.client_quic
    for n in range(MAX_EARLY_DATAGRAMS + 5):
        quic.send_datagram_frame(datagram(4 * (n % 3), str(n).encode()))
    link.pump()
    for _ in range(3):
        peer.request(headers_frame(connect_fields(b"connect-udp")))
    received = [e for e in server.events
                if isinstance(e, h3.DatagramReceived)]
    assert len(received) == MAX_EARLY_DATAGRAMS
    # the first ones were kept, the excess dropped
    assert sorted(int(e.data) for e in received) == list(range(MAX_EARLY_DATAGRAMS))

    link, peer, server = setup()
    quic = link.client_quic
    big = b"x" * (MAX_EARLY_DATAGRAM_BYTES // 2 + 1)
    quic.send_datagram_frame(datagram(0, big))
    quic.send_datagram_frame(datagram(0, big))  # over the byte budget: dropped
    quic.send_datagram_frame(datagram(0, b"small"))
    link.pump()
    peer.request(headers_frame(connect_fields(b"connect-udp")))
    assert [e.data for e in stream_events(server, 0)[1:]] == [big, b"small"]


def test_early_datagrams_dropped_with_their_stream() -> None:
    link, peer, server = setup()
    quic = link.client_quic
    # stream 0 is reset before its request arrives: its datagram goes, and its slot is free
    quic.send_datagram_frame(datagram(0, b"for a reset stream"))
    link.pump()
    quic.reset_stream(0, h3.ErrorCode.H3_REQUEST_CANCELLED)
    link.pump()
    for n in range(MAX_EARLY_DATAGRAMS):
        quic.send_datagram_frame(datagram(4, str(n).encode()))
    link.pump()
    quic.send_stream_data(4, headers_frame(connect_fields(b"connect-udp")))
    link.pump()
    received = server.of(h3.DatagramReceived)
    assert [e.stream_id for e in received] == [4] * MAX_EARLY_DATAGRAMS
    assert stream_events(server, 0) == []


def test_early_datagrams_not_held_for_requests_a_goaway_rejects() -> None:
    link, peer, server = setup()
    sid = peer.request(headers_frame(connect_fields(b"connect-udp")))
    assert server.h3.send_goaway() == sid + 4
    link.pump()
    link.client_quic.send_datagram_frame(datagram(sid + 4, b"after GOAWAY"))
    link.pump()
    late = peer.request(headers_frame(connect_fields(b"connect-udp")))
    assert late == sid + 4
    assert link.server_quic.resets[late] == h3.ErrorCode.H3_REQUEST_REJECTED
    assert server.of(h3.DatagramReceived) == []
