"""The one-write send path (``Connection._send_headers`` with a payload, which the trio layer
uses for ``respond(status, body=...)``) does what ``send_headers`` then
``send_data(..., end_stream=True)`` do: same stream bytes, same FIN, same peer events, same
errors, on many seeded inputs."""

from __future__ import annotations

import random

import attrs
import pytest

from tests.h3.h3_support import MemoryLink, connect_fields, request_fields
from trio_zttp import h3

CONNECT_SERVER = attrs.evolve(h3.DEFAULT_SETTINGS, h3_datagram=True, enable_connect_protocol=True)


def _general(conn: h3.Connection, sid: int, fields: list[tuple[bytes, bytes]],
             data: bytes) -> None:
    conn.send_headers(sid, fields)
    conn.send_data(sid, data, end_stream=True)


def _one_write(conn: h3.Connection, sid: int, fields: list[tuple[bytes, bytes]],
               data: bytes) -> None:
    conn._send_headers(sid, fields, False, data)


def _case(seed: int, send: object) -> object:
    rng = random.Random(seed)
    link = MemoryLink(server_settings=CONNECT_SERVER)
    link.pump()
    client, server = link.side("client"), link.side("server")
    outcome: list[object] = []
    for _ in range(rng.randrange(1, 4)):
        sid = client.h3.get_next_request_stream_id()
        connect = rng.random() < 0.2
        fields = connect_fields() if connect else request_fields()
        body_size = rng.choice([0, 1, 63, 64, 200, 1023, 1024, 5000])
        data = rng.randbytes(body_size)
        if rng.random() < 0.3:  # the client sends a request with content this way too
            try:
                send(client.h3, sid, fields, data)  # type: ignore[operator]
                outcome.append("ok")
            except (ValueError, h3.StateError) as exc:
                outcome.append(type(exc).__name__)
            link.pump()
            continue
        client.h3.send_headers(sid, fields, end_stream=not connect)
        link.pump()
        status = rng.choice([b"200", b"204", b"404", b"103", b"500"])
        response = [(b":status", status)]
        if rng.random() < 0.5:
            response.append((b"content-length", str(len(data)).encode()))
        if rng.random() < 0.2:
            response.append((b"x-extra", b"value"))
        if rng.random() < 0.2:
            server.h3.send_headers(sid, [(b":status", b"200")])  # a final one already sent
        try:
            send(server.h3, sid, response, data)  # type: ignore[operator]
            outcome.append("ok")
        except (ValueError, h3.StateError) as exc:
            outcome.append(type(exc).__name__)
        link.pump()
    outcome.append({sid: bytes(data) for sid, data in link.server_quic.sent.items()})
    outcome.append({sid: bytes(data) for sid, data in link.client_quic.sent.items()})
    outcome.append(sorted(link.server_quic.fins | link.client_quic.fins))
    # the peer's events, up to how the writes were cut into QUIC deliveries (a FIN arriving
    # with HEADERS marks that event, one arriving alone comes as an empty DataReceived)
    outcome.append(_normalized(client.events))
    outcome.append(_normalized(server.events))
    outcome.append((server.h3.open_request_streams, client.h3.open_request_streams))
    return outcome


def _normalized(events: list[h3.Event]) -> list[object]:
    out: list[object] = []
    for event in events:
        end = getattr(event, "end_stream", False)
        if isinstance(event, h3.DataReceived):
            if event.data:
                out.append(("data", event.stream_id, event.data))
        elif isinstance(event, h3.HeadersReceived):
            out.append(("headers", event.stream_id, event.headers, event.interim))
        else:
            out.append(repr(event))
        if end:
            out.append(("end", getattr(event, "stream_id", None)))
    return out


@pytest.mark.parametrize("seed", range(150))
def test_send_headers_with_data_matches_headers_then_data(seed: int) -> None:
    assert _case(seed, _one_write) == _case(seed, _general)


def test_send_headers_with_data_sends_one_write() -> None:
    link = MemoryLink()
    link.pump()
    client, server = link.side("client"), link.side("server")
    sid = client.h3.get_next_request_stream_id()
    client.h3.send_headers(sid, request_fields(), end_stream=True)
    link.pump()
    before = len(link.client_quic.inbox)
    server.h3._send_headers(sid, [(b":status", b"200")], False, b"hello")
    assert len(link.client_quic.inbox) == before + 1  # HEADERS, DATA and FIN together
    link.pump()
    data = [e for e in client.of(h3.DataReceived, sid) if e.data]
    assert [e.data for e in data] == [b"hello"]
    assert client.of(h3.DataReceived, sid)[-1].end_stream
