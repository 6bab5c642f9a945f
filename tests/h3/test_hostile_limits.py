"""Limits a hostile peer meets (found by a fuzz campaign over the trio layer): frames queued
behind a QPACK-blocked field section stay few and cheap whatever their number on the wire
(consecutive DATA frames merge, unknown frame types are dropped, at most
``MAX_QUEUED_FRAMES`` entries), and a client takes at most ``MAX_INTERIM_RESPONSES``
interim responses to one request: beyond either, H3_EXCESSIVE_LOAD (RFC 9114 §8.1)."""

from __future__ import annotations

import time

from tests.h3.h3_support import MemoryLink, data_frame, headers_frame, request_fields, varint
from trio_zttp import h3
from trio_zttp.h3._receive import MAX_INTERIM_RESPONSES, MAX_QUEUED_FRAMES

ENCODER_STREAM = 6  # the client's QPACK encoder stream
BIG_FIELDS = request_fields(b"POST", b"/", (b"x-tenant", b"blue-team-of-the-north-wing"),
                            (b"x-trace", b"1234"))  # uses the dynamic table: can block


def _blocked_request(link: MemoryLink) -> int:
    client, server = link.side("client"), link.side("server")
    server.held.add(ENCODER_STREAM)
    stream_id = client.h3.get_next_request_stream_id()
    client.h3.send_headers(stream_id, BIG_FIELDS)
    link.pump()
    assert server.of(h3.HeadersReceived) == []  # blocked
    return stream_id


def test_many_tiny_frames_behind_a_blocked_section_are_cheap_and_arrive_whole() -> None:
    link = MemoryLink()
    link.pump()
    stream_id = _blocked_request(link)
    unknown = varint(0x21) + varint(0)  # a reserved frame type, empty
    started = time.process_time()
    pieces = []
    for i in range(20_000):
        piece = bytes([i % 251])
        pieces.append(piece)
        link.client_quic.send_stream_data(stream_id, data_frame(piece) + unknown + data_frame(b""))
    link.pump()
    server = link.side("server")
    assert len(server.h3._streams[stream_id].queued) == 1  # one merged DATA entry
    link.release("server", ENCODER_STREAM)
    assert time.process_time() - started < 5.0  # (linear: ~0.2 s here; quadratic took minutes)
    assert server.of(h3.HeadersReceived)[0].headers == BIG_FIELDS
    got = b"".join(e.data for e in server.of(h3.DataReceived, stream_id))
    assert got == b"".join(pieces)
    assert all(type(e.data) is bytes for e in server.of(h3.DataReceived, stream_id))


def test_too_many_frames_behind_a_blocked_section_is_excessive_load() -> None:
    link = MemoryLink()
    link.pump()
    stream_id = _blocked_request(link)
    trailers = headers_frame([(b"x-t", b"1")])
    for _ in range(MAX_QUEUED_FRAMES):  # DATA, HEADERS, DATA, ...: nothing merges
        link.client_quic.send_stream_data(stream_id, data_frame(b"x") + trailers)
    link.pump()
    closed = link.side("server").terminated
    assert closed is not None and closed.error_code == h3.ErrorCode.H3_EXCESSIVE_LOAD


def _interim_responses(count: int) -> MemoryLink:
    link = MemoryLink()
    link.pump()
    client = link.side("client")
    stream_id = client.h3.get_next_request_stream_id()
    client.h3.send_headers(stream_id, request_fields(), end_stream=True)
    link.pump()
    early_hints = headers_frame([(b":status", b"103"), (b"link", b"</a.css>; rel=preload")])
    for _ in range(count):
        link.server_quic.send_stream_data(stream_id, early_hints)
    link.server_quic.send_stream_data(stream_id, headers_frame([(b":status", b"200")]))
    link.pump()
    return link


def test_a_client_takes_a_few_interim_responses() -> None:
    client = _interim_responses(MAX_INTERIM_RESPONSES).side("client")
    received = client.of(h3.HeadersReceived)
    assert [e.interim for e in received] == [True] * MAX_INTERIM_RESPONSES + [False]
    assert client.terminated is None


def test_endless_interim_responses_are_excessive_load() -> None:
    client = _interim_responses(MAX_INTERIM_RESPONSES + 1).side("client")
    closed = client.terminated
    assert closed is not None and closed.error_code == h3.ErrorCode.H3_EXCESSIVE_LOAD
