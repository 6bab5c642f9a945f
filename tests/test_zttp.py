"""The zttp-style façade: ``trio_zttp.Connection(SERVER/CLIENT, protocol=HTTP3)``.

A real aioquic HTTP/3 client's datagrams go into the façade one by one (through the
``testing.Pair`` driver, in virtual time) and come out as ``Request`` events; the response
goes back to aioquic. The façade runs over our own ``quic.Connection``, and also over
aioquic's QUIC through the test adapter (its private ``_quic`` hook).
"""

from __future__ import annotations

from typing import Any

import pytest
from aioquic.buffer import Buffer  # type: ignore[attr-defined]
from aioquic.h3 import events as aioquic_h3
from aioquic.h3.connection import H3Connection
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from aioquic.quic.packet import pull_quic_header

import trio_zttp
from tests.h3.h3_support import AioquicTransport, Identity, make_identity
from trio_zttp import h3
from trio_zttp.quic._config import Configuration
from trio_zttp.testing import Address, Pair


@pytest.fixture(scope="module")
def identity() -> Identity:
    return make_identity()


class Driven:
    """The façade as a ``testing.Pair`` peer (``NEED_DATA`` becomes None)."""

    def __init__(self, conn: trio_zttp.Connection) -> None:
        self.conn = conn

    def connect(self, addr: Address, now: float) -> None:
        self.conn.connect(addr, now)

    def receive_datagram(self, data: bytes, addr: Address, now: float) -> None:
        self.conn.receive_datagram(data, addr=addr, now=now)

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Address]]:
        return self.conn.datagrams_to_send(now)

    def get_timer(self) -> float | None:
        return self.conn.get_timer()

    def handle_timer(self, now: float) -> None:
        self.conn.handle_timer(now)

    def next_event(self) -> object | None:
        event = self.conn.next_event()
        return None if event is trio_zttp.NEED_DATA else event


def aioquic_client(identity: Identity) -> QuicConnection:
    config = QuicConfiguration(is_client=True, alpn_protocols=["h3"], server_name="localhost")
    config.load_verify_locations(cadata=identity.ca.pem)
    return QuicConnection(configuration=config)


def aioquic_server_quic(identity: Identity, first_datagram: bytes) -> QuicConnection:
    """aioquic's server QUIC connection, made from the client's first datagram."""
    config = QuicConfiguration(is_client=False, alpn_protocols=["h3"])
    config.certificate = identity.leaf.certificate
    config.private_key = identity.leaf.private_key
    header = pull_quic_header(Buffer(data=first_datagram), host_cid_length=8)
    return QuicConnection(configuration=config,
                          original_destination_connection_id=header.destination_cid)


def aioquic_server_factory(identity: Identity) -> Any:
    """The façade's QUIC connection (aioquic's, adapted), made from the first datagram."""

    def factory(first_datagram: bytes, source: Address) -> AioquicTransport:
        return AioquicTransport(aioquic_server_quic(identity, first_datagram))

    return factory


def respond_to_requests(conn: trio_zttp.Connection, seen: list[Any]) -> Any:
    def on_event(side: str, event: object) -> None:
        if side != "server":
            return
        seen.append(event)
        if isinstance(event, trio_zttp.Request):
            conn.send_response(event.stream_id, 200, [("content-type", "text/plain")])
            conn.send_data(event.stream_id, b"hello " + (event.path or b""))
        elif isinstance(event, trio_zttp.EndOfMessage):
            conn.send_end_of_message(event.stream_id, [("x-done", "yes")])

    return on_event


def run_aioquic_client_against(server: trio_zttp.Connection, identity: Identity
                               ) -> tuple[Pair, list[Any], list[Any]]:
    """aioquic's HTTP/3 client sends GET /index.html and POST /form; returns the events."""
    client_quic = aioquic_client(identity)
    client_h3 = H3Connection(client_quic)
    client_events: list[Any] = []
    server_events: list[Any] = []
    respond = respond_to_requests(server, server_events)

    def on_event(side: str, event: object) -> None:
        if side == "client":
            client_events.extend(client_h3.handle_event(event))
        else:
            respond(side, event)

    pair = Pair(client_quic, Driven(server), on_event=on_event)
    pair.connect()
    get = client_quic.get_next_available_stream_id()
    client_h3.send_headers(get, [(b":method", b"GET"), (b":scheme", b"https"),
                                 (b":authority", b"localhost"), (b":path", b"/index.html")],
                           end_stream=True)
    post = client_quic.get_next_available_stream_id()
    client_h3.send_headers(post, [(b":method", b"POST"), (b":scheme", b"https"),
                                  (b":authority", b"localhost"), (b":path", b"/form")])
    client_h3.send_data(post, b"a=1&b=2", end_stream=True)

    def finished() -> bool:
        ends = [e for e in client_events if getattr(e, "stream_ended", False)]
        return len(ends) == 2

    pair.run_until(finished)
    return pair, client_events, server_events


def check_exchange(client_events: list[Any], server_events: list[Any]) -> None:
    requests = [e for e in server_events if isinstance(e, trio_zttp.Request)]
    assert [(r.method, r.path, r.stream_id, r.http_version) for r in requests] == [
        (b"GET", b"/index.html", 0, b"3"), (b"POST", b"/form", 4, b"3")]
    assert requests[0].authority == b"localhost" and requests[0].scheme == b"https"
    assert requests[0].headers == []  # pseudo-header fields are attributes, not headers
    post_events = [e for e in server_events if getattr(e, "stream_id", None) == 4]
    assert post_events[1:] == [trio_zttp.Data(data=b"a=1&b=2", stream_id=4),
                               trio_zttp.EndOfMessage(stream_id=4)]
    for stream_id, path in ((0, b"/index.html"), (4, b"/form")):
        heads = [e for e in client_events
                 if isinstance(e, aioquic_h3.HeadersReceived) and e.stream_id == stream_id]
        assert heads[0].headers == [(b":status", b"200"), (b"content-type", b"text/plain")]
        assert heads[1].headers == [(b"x-done", b"yes")] and heads[1].stream_ended
        body = b"".join(e.data for e in client_events
                        if isinstance(e, aioquic_h3.DataReceived) and e.stream_id == stream_id)
        assert body == b"hello " + path


def test_zttp_server_serves_aioquic_client(identity: Identity) -> None:
    server = trio_zttp.Connection(trio_zttp.SERVER, protocol=trio_zttp.HTTP3,
                                  _quic=aioquic_server_factory(identity))
    assert server.quic is None and server.datagrams_to_send(0.0) == []
    assert server.get_timer() is None
    assert server.next_event() is trio_zttp.NEED_DATA
    _, client_events, server_events = run_aioquic_client_against(server, identity)
    check_exchange(client_events, server_events)
    # h3 events without a zttp equivalent pass through
    assert any(isinstance(e, h3.SettingsReceived) for e in server_events)
    assert server.next_event() is trio_zttp.NEED_DATA


def test_zttp_server_over_our_quic_serves_aioquic_client(identity: Identity) -> None:
    configuration = Configuration(
        is_client=False, alpn_protocols=["h3"],
        certificate_chain=list(identity.leaf.chain), private_key=identity.leaf.private_key)
    server = trio_zttp.Connection(trio_zttp.SERVER, protocol=trio_zttp.HTTP3,
                                  configuration=configuration)
    _, client_events, server_events = run_aioquic_client_against(server, identity)
    check_exchange(client_events, server_events)


def test_zttp_client_against_aioquic_server(identity: Identity) -> None:
    client = trio_zttp.Connection(trio_zttp.CLIENT, protocol=trio_zttp.HTTP3,
                                  _quic=AioquicTransport(aioquic_client(identity)))
    server_h3: list[H3Connection] = []

    def factory(first: bytes, source: Address) -> QuicConnection:
        quic = aioquic_server_quic(identity, first)
        server_h3.append(H3Connection(quic))
        return quic

    events: list[Any] = []

    def on_event(side: str, event: object) -> None:
        if side == "client":
            events.append(event)
            return
        for h3_event in server_h3[0].handle_event(event):
            if isinstance(h3_event, aioquic_h3.HeadersReceived):
                conn = server_h3[0]
                sid = h3_event.stream_id
                conn.send_headers(sid, [(b":status", b"103"), (b"link", b"</s.css>")])
                conn.send_headers(sid, [(b":status", b"200"), (b"server", b"aioquic")])
                conn.send_data(sid, b"response body", end_stream=False)
                conn.send_headers(sid, [(b"x-trailer", b"1")], end_stream=True)

    pair = Pair(Driven(client), factory, on_event=on_event)
    pair.connect()
    stream_id = client.send_request("GET", "/page", authority="localhost",
                                    headers=[("accept", "*/*")], end_stream=True)
    assert stream_id == 0
    pair.run_until(lambda: any(isinstance(e, trio_zttp.EndOfMessage) for e in events))
    http = [e for e in events if not isinstance(e, h3.Event)]
    assert http == [
        trio_zttp.InformationalResponse(status_code=103, headers=[(b"link", b"</s.css>")],
                                        stream_id=0),
        trio_zttp.Response(status_code=200, headers=[(b"server", b"aioquic")], stream_id=0),
        trio_zttp.Data(data=b"response body", stream_id=0),
        trio_zttp.EndOfMessage(stream_id=0, headers=[(b"x-trailer", b"1")]),
    ]
    assert http[1].http_version == b"3"
    client.close()
    assert isinstance(client.next_event(), h3.ConnectionTerminated)
    assert client.next_event() is trio_zttp.NEED_DATA


def test_zttp_sentinels_and_arguments() -> None:
    assert repr(trio_zttp.NEED_DATA) == "NEED_DATA"
    assert trio_zttp.CLIENT is not trio_zttp.SERVER
    with pytest.raises(TypeError):
        trio_zttp.Connection("server")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="configuration"):
        trio_zttp.Connection(trio_zttp.SERVER)
    with pytest.raises(ValueError, match="is_client"):
        trio_zttp.Connection(trio_zttp.SERVER, configuration=Configuration(is_client=True))
    server = trio_zttp.Connection(trio_zttp.SERVER, _quic=lambda data, addr: None)
    assert server.our_role is trio_zttp.SERVER
    with pytest.raises(h3.StateError):
        server.connect(("127.0.0.1", 443), 0.0)
    with pytest.raises(h3.StateError):
        server.h3  # noqa: B018


def test_zttp_passes_ecn_codepoints_both_ways(identity: Identity) -> None:
    """The façade hands the IP header's codepoint to the engine and exposes the engine's
    choice: two façades whose 'sockets' carry the marks end ECN-capable, each having
    counted the other's ECT(0) packets."""
    client = trio_zttp.Connection(trio_zttp.CLIENT, configuration=Configuration(
        is_client=True, alpn_protocols=["h3"], server_name="localhost",
        cadata=identity.ca.pem))
    server = trio_zttp.Connection(trio_zttp.SERVER, configuration=Configuration(
        is_client=False, alpn_protocols=["h3"],
        certificate_chain=list(identity.leaf.chain), private_key=identity.leaf.private_key))
    client_addr, server_addr = ("10.0.0.1", 5000), ("10.0.0.2", 443)
    now = 0.0
    client.connect(server_addr, now)
    assert client.ecn_codepoint == 2  # ECT(0) while testing
    answered = False
    for step in range(50):
        now += 0.01
        for data, _ in client.datagrams_to_send(now):
            server.receive_datagram(data, client_addr, now, ecn=client.ecn_codepoint)
        while (event := server.next_event()) is not trio_zttp.NEED_DATA:
            if isinstance(event, trio_zttp.EndOfMessage):
                server.send_response(event.stream_id, 200)
                server.send_end_of_message(event.stream_id)
        for data, _ in server.datagrams_to_send(now):
            client.receive_datagram(data, server_addr, now, ecn=server.ecn_codepoint)
        while (event := client.next_event()) is not trio_zttp.NEED_DATA:
            answered = answered or isinstance(event, trio_zttp.EndOfMessage)
        if step == 5:
            client.send_request("GET", "/", authority="localhost", end_stream=True)
    assert answered
    for side in (client, server):
        stats = side.quic.statistics()
        assert stats.ecn_state == "capable", stats.ecn_failure
        assert stats.ecn_ect0_received > 0
        assert side.ecn_codepoint == 2
