"""Our h3.Connection against aioquic's H3Connection, over aioquic's QUIC, both directions.

Each test runs with our client against aioquic's server and aioquic's client against our
server (``direction``), in virtual time through ``testing.Pair``. Our h3 sits on aioquic's
``QuicConnection`` through the ``AioquicTransport`` adapter until our QUIC connection lands;
then these run over ours too.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from typing import Any

import attrs
import pytest
from aioquic.h3 import events as aioquic_h3
from aioquic.quic import events as aioquic_quic

from tests.h3.h3_support import Identity, Kind, Session, Side, make_identity, varint
from trio_zttp import h3, qpack
from trio_zttp.testing import LinkConditions

DIRECTIONS = [("ours", "aioquic"), ("aioquic", "ours")]
IDS = ["ours-client", "ours-server"]
# ours against ours over aioquic's QUIC too, where both ends have something to show
WITH_OURS = [*DIRECTIONS, ("ours", "ours")]
WITH_OURS_IDS = [*IDS, "ours-both"]
FIVE_MB = 5 * 1024 * 1024


def pattern(length: int) -> bytes:
    return (bytes(range(251)) * (length // 251 + 1))[:length]


@pytest.fixture(scope="module")
def identity() -> Identity:
    return make_identity()


@attrs.define
class App:
    """One side's HTTP/3 API, the same whoever implements it; records what arrives."""

    side: Side
    heads: dict[int, list[list[tuple[bytes, bytes]]]] = attrs.field(
        factory=lambda: defaultdict(list))
    bodies: dict[int, bytearray] = attrs.field(factory=lambda: defaultdict(bytearray))
    datagrams: dict[int, list[bytes]] = attrs.field(factory=lambda: defaultdict(list))
    ended: set[int] = attrs.field(factory=set)
    resets: dict[int, int] = attrs.field(factory=dict)
    on_headers: Any = None  # (app, stream_id, headers, ended) -> None
    on_end: Any = None  # (app, stream_id) -> None
    on_datagram: Any = None  # (app, stream_id, data) -> None

    def __attrs_post_init__(self) -> None:
        self.side.handler = self._handle

    @property
    def ours(self) -> bool:
        return self.side.kind == "ours"

    def _handle(self, side: Side, event: Any) -> None:
        sid = getattr(event, "stream_id", None)
        end = False
        if isinstance(event, (h3.HeadersReceived, h3.TrailersReceived,
                              aioquic_h3.HeadersReceived)):
            self.heads[sid].append(event.headers)
            end = isinstance(event, h3.TrailersReceived) or getattr(
                event, "end_stream", getattr(event, "stream_ended", False))
            if self.on_headers is not None and len(self.heads[sid]) == 1:
                self.on_headers(self, sid, event.headers)
        elif isinstance(event, (h3.DataReceived, aioquic_h3.DataReceived)):
            self.bodies[sid] += event.data
            end = getattr(event, "end_stream", getattr(event, "stream_ended", False))
        elif isinstance(event, (h3.DatagramReceived, aioquic_h3.DatagramReceived)):
            self.datagrams[sid].append(event.data)
            if self.on_datagram is not None:
                self.on_datagram(self, sid, event.data)
        elif isinstance(event, h3.StreamReset):
            self.resets[sid] = event.error_code
        if end and sid not in self.ended:
            self.ended.add(sid)
            if self.on_end is not None:
                self.on_end(self, sid)

    def new_stream(self) -> int:
        if self.ours:
            return int(self.side.h3.get_next_request_stream_id())
        return int(self.side.aioquic.get_next_available_stream_id())

    def send_headers(self, sid: int, headers: list[tuple[bytes, bytes]], end: bool = False) -> None:
        self.side.h3.send_headers(sid, headers, end_stream=end)

    def send_data(self, sid: int, data: bytes, end: bool = False) -> None:
        self.side.h3.send_data(sid, data, end_stream=end)

    def send_trailers(self, sid: int, headers: list[tuple[bytes, bytes]]) -> None:
        if self.ours:
            self.side.h3.send_trailers(sid, headers)
        else:
            self.side.h3.send_headers(sid, headers, end_stream=True)

    def send_datagram(self, sid: int, data: bytes) -> None:
        self.side.h3.send_datagram(sid, data)  # aioquic takes the full stream ID too


def request(method: bytes, path: bytes, *extra: tuple[bytes, bytes],
            protocol: bytes | None = None) -> list[tuple[bytes, bytes]]:
    fields = [(b":method", method), (b":scheme", b"https"), (b":authority", b"localhost"),
              (b":path", path)]
    if protocol is not None:
        fields.append((b":protocol", protocol))
    return fields + list(extra)


def serve(app: App) -> None:
    """The test server: downloads, uploads with a digest, trailers, CONNECT echo."""

    def on_headers(app: App, sid: int, headers: list[tuple[bytes, bytes]]) -> None:
        fields = dict(headers)
        path = fields.get(b":path", b"")
        if fields[b":method"] == b"CONNECT":
            app.send_headers(sid, [(b":status", b"200")])
        elif path.startswith(b"/download/"):
            size = int(path.rsplit(b"/", 1)[1])
            app.send_headers(sid, [(b":status", b"200"),
                                   (b"content-length", str(size).encode())])
            app.send_data(sid, pattern(size), end=True)

    def on_end(app: App, sid: int) -> None:
        fields = dict(app.heads[sid][0])
        path = fields.get(b":path", b"")
        if path == b"/upload":
            digest = hashlib.sha256(app.bodies[sid]).hexdigest().encode()
            app.send_headers(sid, [(b":status", b"200")])
            app.send_data(sid, digest, end=True)
        elif path == b"/trailers":
            received = dict(app.heads[sid][-1]).get(b"x-request-trailer", b"none")
            app.send_headers(sid, [(b":status", b"200")])
            app.send_data(sid, bytes(app.bodies[sid]))
            app.send_trailers(sid, [(b"x-echo", received), (b"x-length",
                                                            str(len(app.bodies[sid])).encode())])

    def on_datagram(app: App, sid: int, data: bytes) -> None:
        app.send_datagram(sid, b"pong:" + data)

    app.on_headers, app.on_end, app.on_datagram = on_headers, on_end, on_datagram


def start(identity: Identity, client: Kind, server: Kind, **options: Any
          ) -> tuple[Session, App, App]:
    session = Session(client, server, identity, **options)
    session.handshake()
    client_app, server_app = App(session.client), App(session.server)
    serve(server_app)
    return session, client_app, server_app


@pytest.mark.parametrize(("client", "server"), DIRECTIONS, ids=IDS)
def test_interop_get_five_megabytes(identity: Identity, client: Kind, server: Kind) -> None:
    session, app, _ = start(identity, client, server)
    sid = app.new_stream()
    app.send_headers(sid, request(b"GET", f"/download/{FIVE_MB}".encode()), end=True)
    session.run_until(lambda: sid in app.ended)
    assert dict(app.heads[sid][0])[b":status"] == b"200"
    assert app.bodies[sid] == pattern(FIVE_MB)


@pytest.mark.parametrize(("client", "server"), DIRECTIONS, ids=IDS)
def test_interop_post_five_megabytes(identity: Identity, client: Kind, server: Kind) -> None:
    session, app, server_app = start(identity, client, server)
    payload = pattern(FIVE_MB)
    sid = app.new_stream()
    app.send_headers(sid, request(b"POST", b"/upload",
                                  (b"content-length", str(FIVE_MB).encode())))
    app.send_data(sid, payload[:1000])
    app.send_data(sid, payload[1000:], end=True)
    session.run_until(lambda: sid in app.ended)
    assert bytes(app.bodies[sid]) == hashlib.sha256(payload).hexdigest().encode()
    assert len(server_app.bodies[sid]) == FIVE_MB


@pytest.mark.parametrize(("client", "server"), DIRECTIONS, ids=IDS)
def test_interop_one_hundred_concurrent_requests(identity: Identity, client: Kind,
                                                 server: Kind) -> None:
    session, app, _ = start(identity, client, server)
    sizes = {}
    for n in range(100):
        sid = app.new_stream()
        sizes[sid] = n * 37
        app.send_headers(sid, request(b"GET", f"/download/{n * 37}".encode(),
                                      (b"x-request", str(n).encode())), end=True)
    session.run_until(lambda: len(app.ended) == 100)
    for sid, size in sizes.items():
        assert app.bodies[sid] == pattern(size)
    if session.client.kind == "ours":
        assert session.client.h3.open_request_streams == 0


@pytest.mark.parametrize(("client", "server"), DIRECTIONS, ids=IDS)
def test_interop_trailers_both_ways(identity: Identity, client: Kind, server: Kind) -> None:
    session, app, server_app = start(identity, client, server)
    sid = app.new_stream()
    app.send_headers(sid, request(b"POST", b"/trailers"))
    app.send_data(sid, b"with trailers")
    app.send_trailers(sid, [(b"x-request-trailer", b"yes")])
    session.run_until(lambda: sid in app.ended)
    assert server_app.heads[sid][-1] == [(b"x-request-trailer", b"yes")]
    assert app.bodies[sid] == b"with trailers"
    assert app.heads[sid][-1] == [(b"x-echo", b"yes"), (b"x-length", b"13")]


def test_interop_goaway_from_our_server(identity: Identity) -> None:
    session, app, server_app = start(identity, "aioquic", "ours")
    first = app.new_stream()
    app.send_headers(first, request(b"POST", b"/upload"))
    session.run_until(lambda: first in server_app.heads)
    assert session.server.h3.send_goaway() == first + 4
    late = app.new_stream()
    app.send_headers(late, request(b"GET", b"/download/10"), end=True)
    app.send_data(first, b"finish me", end=True)
    session.run_until(lambda: first in app.ended and any(
        isinstance(e, aioquic_quic.StreamReset) and e.stream_id == late
        for e in session.client.quic_events))
    # the request below the GOAWAY completed, the later one was rejected unprocessed
    assert app.bodies[first] == hashlib.sha256(b"finish me").hexdigest().encode()
    reset = [e for e in session.client.quic_events if isinstance(e, aioquic_quic.StreamReset)]
    assert [(e.stream_id, e.error_code) for e in reset] == [
        (late, h3.ErrorCode.H3_REQUEST_REJECTED)]
    assert late not in server_app.heads
    session.run_until(lambda: session.server.h3.is_drained)
    session.server.h3.close()
    session.run_until(lambda: any(isinstance(e, aioquic_quic.ConnectionTerminated)
                                  for e in session.client.quic_events))
    closed = [e for e in session.client.quic_events
              if isinstance(e, aioquic_quic.ConnectionTerminated)][0]
    assert closed.error_code == h3.ErrorCode.H3_NO_ERROR


def test_interop_goaway_from_aioquic_server(identity: Identity) -> None:
    session, app, _ = start(identity, "ours", "aioquic")
    first = app.new_stream()
    app.send_headers(first, request(b"GET", b"/download/100"), end=True)
    server_h3 = session.server.h3
    # aioquic has no GOAWAY command: write the frame on its control stream
    server_h3._quic.send_stream_data(server_h3._local_control_stream_id,
                                     h3.encode_frame(h3.FrameType.GOAWAY, varint(4)))
    client = session.client
    session.run_until(lambda: client.of(h3.GoawayReceived) and first in app.ended)
    assert client.of(h3.GoawayReceived) == [h3.GoawayReceived(identifier=4)]
    assert app.bodies[first] == pattern(100)
    with pytest.raises(h3.StateError, match="GOAWAY"):
        app.new_stream()
    assert client.h3.is_drained


@pytest.mark.parametrize(("client", "server"), WITH_OURS, ids=WITH_OURS_IDS)
def test_interop_extended_connect_tunnel(identity: Identity, client: Kind,
                                         server: Kind) -> None:
    session, app, server_app = start(identity, client, server)
    if session.client.kind == "ours":
        assert session.client.h3.peer_settings.enable_connect_protocol
    sid = app.new_stream()
    app.send_headers(sid, request(b"CONNECT", b"/chat", protocol=b"ping-pong"))
    session.run_until(lambda: sid in app.heads)
    assert dict(server_app.heads[sid][0])[b":protocol"] == b"ping-pong"
    assert dict(app.heads[sid][0])[b":status"] == b"200"
    app.send_data(sid, b"up the tunnel")
    server_app.send_data(sid, b"down the tunnel")
    session.run_until(lambda: app.bodies[sid] and server_app.bodies[sid])
    assert app.bodies[sid] == b"down the tunnel"
    assert server_app.bodies[sid] == b"up the tunnel"


@pytest.mark.parametrize(("client", "server"), WITH_OURS, ids=WITH_OURS_IDS)
def test_interop_http_datagrams_both_ways(identity: Identity, client: Kind,
                                          server: Kind) -> None:
    session, app, server_app = start(identity, client, server, datagrams=True)
    ours = session.client if session.client.kind == "ours" else session.server
    assert ours.h3.datagrams_enabled
    streams = []
    for _ in range(2):  # two CONNECT streams: each datagram must find its own
        sid = app.new_stream()
        app.send_headers(sid, request(b"CONNECT", b"/udp", (b"capsule-protocol", b"?1"),
                                      protocol=b"connect-udp"))
        streams.append(sid)
    session.run_until(lambda: all(sid in app.heads for sid in streams))
    for n, sid in enumerate(streams):
        app.send_datagram(sid, f"ping {n}".encode())
    session.run_until(lambda: all(app.datagrams[sid] for sid in streams))
    for n, sid in enumerate(streams):
        assert server_app.datagrams[sid] == [f"ping {n}".encode()]
        assert app.datagrams[sid] == [f"pong:ping {n}".encode()]


@pytest.mark.parametrize(("client", "server"), DIRECTIONS, ids=IDS)
def test_interop_datagram_capsule_fallback(identity: Identity, client: Kind,
                                           server: Kind) -> None:
    # QUIC DATAGRAM frames are not negotiated: HTTP datagrams travel as DATAGRAM capsules
    session, app, server_app = start(identity, client, server)
    server_app.on_datagram = None  # no echo here
    sid = app.new_stream()
    app.send_headers(sid, request(b"CONNECT", b"/udp", (b"capsule-protocol", b"?1"),
                                  protocol=b"connect-udp"))
    session.run_until(lambda: sid in app.heads)
    ours, theirs = (app, server_app) if session.client.kind == "ours" else (server_app, app)
    assert not ours.side.h3.datagrams_enabled
    ours.side.h3.enable_capsule_protocol(sid)
    ours.send_datagram(sid, b"from ours")
    capsule = h3.encode_capsule(h3.CapsuleType.DATAGRAM, b"from aioquic")
    theirs.send_data(sid, capsule[:3])
    theirs.send_data(sid, capsule[3:] + h3.encode_capsule(0x1234, b"unknown"))
    session.run_until(lambda: theirs.bodies[sid] and ours.datagrams[sid]
                      and ours.side.of(h3.CapsuleReceived))
    assert bytes(theirs.bodies[sid]) == h3.encode_capsule(h3.CapsuleType.DATAGRAM, b"from ours")
    assert ours.datagrams[sid] == [b"from aioquic"]
    assert ours.side.of(h3.CapsuleReceived) == [
        h3.CapsuleReceived(stream_id=sid, capsule_type=0x1234, value=b"unknown")]


def test_interop_connection_error_reaches_aioquic(identity: Identity) -> None:
    session, app, _ = start(identity, "aioquic", "ours")
    quic = session.client.aioquic
    # a second control stream, written raw on aioquic's QUIC connection
    stream_id = quic.get_next_available_stream_id(is_unidirectional=True)
    quic.send_stream_data(stream_id, varint(h3.StreamType.CONTROL)
                          + h3.encode_frame(h3.FrameType.SETTINGS, b""))
    session.run_until(lambda: any(isinstance(e, aioquic_quic.ConnectionTerminated)
                                  for e in session.client.quic_events))
    closed = [e for e in session.client.quic_events
              if isinstance(e, aioquic_quic.ConnectionTerminated)][0]
    assert closed.error_code == h3.ErrorCode.H3_STREAM_CREATION_ERROR
    assert session.server.of(h3.ConnectionTerminated)[0].by_peer is False


def test_interop_stream_error_reaches_aioquic(identity: Identity) -> None:
    session, app, server_app = start(identity, "aioquic", "ours")
    quic = session.client.aioquic
    sid = app.new_stream()
    section = session.client.h3._encoder.encode(sid, [(b":method", b"GET"), (b"Bad", b"x")])
    quic.send_stream_data(session.client.h3._local_encoder_stream_id, section[0])
    quic.send_stream_data(sid, h3.encode_frame(h3.FrameType.HEADERS, section[1]))
    session.run_until(lambda: any(isinstance(e, aioquic_quic.StreamReset)
                                  for e in session.client.quic_events))
    reset = [e for e in session.client.quic_events if isinstance(e, aioquic_quic.StreamReset)]
    assert [(e.stream_id, e.error_code) for e in reset] == [(sid, h3.ErrorCode.H3_MESSAGE_ERROR)]
    # the connection carries on
    other = app.new_stream()
    app.send_headers(other, request(b"GET", b"/download/5"), end=True)
    session.run_until(lambda: other in app.ended)
    assert app.bodies[other] == pattern(5)


def test_interop_lossy_link_with_blocked_qpack_streams(
    identity: Identity, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Loss and reordering make pylsqpack's dynamic-table references arrive before their
    encoder-stream inserts: our decoder blocks those streams and resumes them in order."""
    resumed: list[int] = []
    resume = qpack.Decoder.resume_header

    def spy(self: qpack.Decoder, stream_id: int) -> tuple[bytes, list[tuple[bytes, bytes]]]:
        resumed.append(stream_id)
        return resume(self, stream_id)

    monkeypatch.setattr(qpack.Decoder, "resume_header", spy)
    session, app, _ = start(identity, "aioquic", "ours",
                            link=LinkConditions(loss=0.1, reorder=0.2, delay=0.01), seed=4)
    sids = []
    for n in range(30):
        sid = app.new_stream()
        sids.append(sid)
        app.send_headers(sid, request(b"GET", f"/download/{n}".encode(),
                                      (b"x-session", f"token-{n % 3}".encode()),
                                      (b"x-large", b"v" * 200 + str(n).encode())), end=True)
    session.run_until(lambda: len(app.ended) == 30, timeout=60)
    assert all(app.bodies[sid] == pattern(n) for n, sid in enumerate(sids))
    assert resumed, "no stream was blocked: the test lost its point"
