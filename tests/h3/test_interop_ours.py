"""Our HTTP/3 over our QUIC against aioquic's and qh3's HTTP/3 over their own QUIC.

Each side is one implementation top to bottom: ``h3.Connection`` over ``quic.Connection``
(ours) against ``H3Connection`` over ``QuicConnection`` (aioquic's, or qh3's), joined by
``testing.Pair`` in virtual time. Every case runs in both roles: our client against their
server and their client against our server. The full matrix runs against aioquic; against
qh3 the same cases with 1 MB bodies instead of 5 MB, without the lossy transfer and the large
header sections (qh3 2.1 cannot encode those). The last section runs the zttp façade
(``trio_zttp.Connection``) against both. ``tests/h3/ours_support.py`` hides the peers' API
differences (see its docstring for their quirks).
"""

from __future__ import annotations

import hashlib

import pytest

from tests.h3.ours_support import (
    App,
    Identity,
    Kind,
    Session,
    make_identity,
    named,
    pattern,
    qpack_traffic,
    request,
    serve,
    start,
)
from trio_zttp import h3
from trio_zttp.quic import TransportErrorCode
from trio_zttp.testing import LinkConditions

AIOQUIC = [("ours", "aioquic"), ("aioquic", "ours")]
AIOQUIC_IDS = ["ours-client-aioquic-server", "aioquic-client-ours-server"]
QH3 = [("ours", "qh3"), ("qh3", "ours")]
QH3_IDS = ["ours-client-qh3-server", "qh3-client-ours-server"]
BOTH = AIOQUIC + QH3
BOTH_IDS = AIOQUIC_IDS + QH3_IDS

FIVE_MB = 5 * 1024 * 1024
ONE_MB = 1024 * 1024
#: Body size per peer: the issue asks for 5 MB against aioquic; qh3 gets the smaller set.
BODY = {"aioquic": FIVE_MB, "qh3": ONE_MB}
#: A link with a 20 ms round trip, so flow control and congestion windows take turns.
RTT_20MS = LinkConditions(delay=0.01)


def peer(client: Kind, server: Kind) -> Kind:
    return server if client == "ours" else client


@pytest.fixture(scope="module")
def identity() -> Identity:
    return make_identity()


def sha256(data: bytes | bytearray) -> bytes:
    return hashlib.sha256(data).digest()


# ------------------------------------------------------------------------- bodies


@pytest.mark.parametrize(("client", "server"), BOTH, ids=BOTH_IDS)
def test_interop_ours_get_large_body(identity: Identity, client: Kind, server: Kind) -> None:
    size = BODY[peer(client, server)]
    session, app, _ = start(identity, client, server, link=RTT_20MS)
    sid = app.new_stream()
    app.send_headers(sid, request(b"GET", f"/download/{size}".encode()), end=True)
    session.run_until(lambda: sid in app.ended)
    head = dict(app.heads[sid][0])
    assert head[b":status"] == b"200"
    assert head[b"content-length"] == str(size).encode()
    assert sha256(app.bodies[sid]) == sha256(pattern(size))
    assert session.client.terminated is None and session.server.terminated is None


@pytest.mark.parametrize(("client", "server"), BOTH, ids=BOTH_IDS)
def test_interop_ours_post_large_body(identity: Identity, client: Kind, server: Kind) -> None:
    size = BODY[peer(client, server)]
    session, app, server_app = start(identity, client, server, link=RTT_20MS)
    payload = pattern(size)
    sid = app.new_stream()
    app.send_headers(sid, request(b"POST", b"/upload",
                                  (b"content-length", str(size).encode())))
    app.send_data(sid, payload[:1000])  # a small DATA frame, then one big one
    app.send_data(sid, payload[1000:], end=True)
    session.run_until(lambda: sid in app.ended)
    # the server hashed what it received and sent the digest back
    assert bytes(app.bodies[sid]) == hashlib.sha256(payload).hexdigest().encode()
    assert len(server_app.bodies[sid]) == size


@pytest.mark.parametrize(("client", "server"), BOTH, ids=BOTH_IDS)
def test_interop_ours_one_hundred_concurrent_requests(identity: Identity, client: Kind,
                                                      server: Kind) -> None:
    session, app, server_app = start(identity, client, server, link=RTT_20MS)
    sizes = {}
    for n in range(100):
        sid = app.new_stream()
        sizes[sid] = n * 97
        app.send_headers(sid, request(b"GET", f"/download/{n * 97}".encode(),
                                      (b"x-request", str(n).encode())), end=True)
    # all 100 are open at once before anything is delivered
    assert len(sizes) == 100
    session.run_until(lambda: len(app.ended) == 100)
    for n, (sid, size) in enumerate(sizes.items()):
        assert app.bodies[sid] == pattern(size)
        assert dict(server_app.heads[sid][0])[b"x-request"] == str(n).encode()
    if session.client.kind == "ours":
        assert session.client.h3.open_request_streams == 0
    else:
        session.run_until(lambda: session.server.h3.open_request_streams == 0)


@pytest.mark.parametrize(("client", "server"), BOTH, ids=BOTH_IDS)
def test_interop_ours_trailers_both_ways(identity: Identity, client: Kind,
                                         server: Kind) -> None:
    session, app, server_app = start(identity, client, server)
    sid = app.new_stream()
    app.send_headers(sid, request(b"POST", b"/trailers"))
    app.send_data(sid, b"with trailers")
    app.send_trailers(sid, [(b"x-request-trailer", b"yes")])
    session.run_until(lambda: sid in app.ended)
    assert server_app.heads[sid][-1] == [(b"x-request-trailer", b"yes")]
    assert server_app.bodies[sid] == b"with trailers"
    assert app.bodies[sid] == b"with trailers"
    assert app.heads[sid][-1] == [(b"x-echo", b"yes"), (b"x-length", b"13")]
    if session.ours.role == "client":
        assert session.ours.of("TrailersReceived", sid)
    else:
        assert session.ours.of("TrailersReceived", sid)[0].headers == [
            (b"x-request-trailer", b"yes")]


@pytest.mark.parametrize(("client", "server"), BOTH, ids=BOTH_IDS)
def test_interop_ours_interim_response_before_the_final_one(identity: Identity, client: Kind,
                                                           server: Kind) -> None:
    session, app, server_app = start(identity, client, server)
    server_app.on_headers = server_app.on_end = None  # answered by hand
    sid = app.new_stream()
    app.send_headers(sid, request(b"GET", b"/early-hints"), end=True)
    session.run_until(lambda: sid in server_app.ended)
    server_app.send_headers(sid, [(b":status", b"103"), (b"link", b"</a.css>; rel=preload")])
    server_app.send_headers(sid, [(b":status", b"200")])
    server_app.send_data(sid, b"body", end=True)
    session.run_until(lambda: sid in app.ended)
    client = session.client
    heads = [e for e in client.events if getattr(e, "stream_id", None) == sid
             and named(e, "HeadersReceived", "InformationalHeadersReceived")]
    assert [dict(e.headers)[b":status"] for e in heads] == [b"103", b"200"]
    if client.kind == "ours":
        assert [e.interim for e in heads] == [True, False]
    assert app.bodies[sid] == b"body"


@pytest.mark.parametrize(("client", "server"), AIOQUIC, ids=AIOQUIC_IDS)
def test_interop_ours_large_header_sections(identity: Identity, client: Kind,
                                            server: Kind) -> None:
    # field sections spanning many packets, both ways (qh3 2.1 cannot encode such fields)
    session, app, server_app = start(identity, client, server)
    server_app.on_headers = None
    cookie, token = b"c" * 20_000, b"t" * 6_000
    sid = app.new_stream()
    app.send_headers(sid, request(b"GET", b"/big", (b"cookie", cookie), (b"x-token", token)),
                     end=True)
    session.run_until(lambda: sid in server_app.heads)
    assert dict(server_app.heads[sid][0])[b"cookie"] == cookie
    server_app.send_headers(sid, [(b":status", b"200"), (b"x-echo", token + cookie)], end=True)
    session.run_until(lambda: sid in app.ended)
    assert dict(app.heads[sid][0])[b"x-echo"] == token + cookie


# ------------------------------------------------------------------------- GOAWAY


@pytest.mark.parametrize("client", ["aioquic", "qh3"])
def test_interop_ours_goaway_from_our_server_drains(identity: Identity, client: Kind) -> None:
    session, app, server_app = start(identity, client, "ours")
    first = app.new_stream()
    app.send_headers(first, request(b"POST", b"/upload"))
    app.send_data(first, b"part one, ")
    session.run_until(lambda: first in server_app.heads)
    server = session.server
    assert server.h3.send_goaway() == first + 4
    # the client has not seen the GOAWAY yet: its next request crosses it on the wire
    late = app.new_stream()
    app.send_headers(late, request(b"GET", b"/download/10"), end=True)
    app.send_data(first, b"part two", end=True)

    def late_reset() -> bool:
        return any(e.stream_id == late for e in session.client.quic_of("StreamReset"))

    session.run_until(lambda: first in app.ended and late_reset())
    # the request in flight completed; the later one was refused unprocessed
    assert app.bodies[first] == hashlib.sha256(b"part one, part two").hexdigest().encode()
    resets = [(e.stream_id, e.error_code) for e in session.client.quic_of("StreamReset")]
    assert resets == [(late, h3.ErrorCode.H3_REQUEST_REJECTED)]
    assert late not in server_app.heads
    if client == "qh3":  # aioquic's H3 ignores GOAWAY; qh3 reports it
        assert [e.stream_id for e in session.client.of("GoawayReceived")] == [first + 4]
    session.run_until(lambda: server.h3.is_drained)
    server.h3.close()
    session.run_until(lambda: session.client.terminated is not None)
    assert session.client.terminated.error_code == h3.ErrorCode.H3_NO_ERROR
    assert server.of("ConnectionTerminated")[0].by_peer is False


@pytest.mark.parametrize("server", ["aioquic", "qh3"])
def test_interop_ours_goaway_from_their_server_drains(identity: Identity, server: Kind) -> None:
    session, app, server_app = start(identity, "ours", server)
    first = app.new_stream()
    app.send_headers(first, request(b"POST", b"/upload"))
    app.send_data(first, b"part one, ")
    session.run_until(lambda: first in server_app.heads)
    server_app.send_goaway(first + 4)
    client = session.client
    session.run_until(lambda: client.of("GoawayReceived"))
    assert client.of("GoawayReceived") == [h3.GoawayReceived(identifier=first + 4)]
    assert client.h3.goaway_received == first + 4
    # no new request once the server said so ...
    with pytest.raises(h3.StateError, match="GOAWAY"):
        app.new_stream()
    with pytest.raises(h3.StateError, match="GOAWAY"):
        client.h3.send_headers(first + 4, request(b"GET", b"/download/1"), end_stream=True)
    assert not client.h3.is_drained
    # ... but the one in flight completes
    app.send_data(first, b"part two", end=True)
    session.run_until(lambda: first in app.ended)
    assert app.bodies[first] == hashlib.sha256(b"part one, part two").hexdigest().encode()
    assert client.h3.is_drained
    client.h3.close()
    session.run_until(lambda: session.server.terminated is not None)
    assert session.server.terminated.error_code == h3.ErrorCode.H3_NO_ERROR
    assert first + 4 not in server_app.heads


# -------------------------------------------------------- extended CONNECT, datagrams


@pytest.mark.parametrize(("client", "server"), BOTH, ids=BOTH_IDS)
def test_interop_ours_extended_connect_tunnel(identity: Identity, client: Kind,
                                              server: Kind) -> None:
    session, app, server_app = start(identity, client, server)
    if session.client.kind == "ours":
        assert session.client.h3.peer_settings.enable_connect_protocol
    else:
        assert session.server.h3.local_settings.enable_connect_protocol
    sid = app.new_stream()
    app.send_headers(sid, request(b"CONNECT", b"/chat", protocol=b"ping-pong"))
    session.run_until(lambda: sid in app.heads)
    fields = dict(server_app.heads[sid][0])
    assert fields[b":protocol"] == b"ping-pong"
    assert fields[b":method"] == b"CONNECT"
    assert dict(app.heads[sid][0])[b":status"] == b"200"
    app.send_data(sid, b"up the tunnel")
    server_app.send_data(sid, b"down the tunnel")
    session.run_until(lambda: app.bodies[sid] and server_app.bodies[sid])
    app.send_data(sid, b", and more", end=True)
    server_app.send_data(sid, b", and more", end=True)
    session.run_until(lambda: sid in app.ended and sid in server_app.ended)
    assert app.bodies[sid] == b"down the tunnel, and more"
    assert server_app.bodies[sid] == b"up the tunnel, and more"


@pytest.mark.parametrize(("client", "server"), BOTH, ids=BOTH_IDS)
def test_interop_ours_http_datagrams_both_ways(identity: Identity, client: Kind,
                                               server: Kind) -> None:
    session, app, server_app = start(identity, client, server, datagrams=True)
    ours = session.ours
    assert ours.h3.datagrams_enabled
    assert ours.quic.remote_max_datagram_frame_size
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
    # they travelled as QUIC DATAGRAM frames, not on the streams
    assert len(session.client.quic_of("DatagramFrameReceived")) == 2
    assert len(session.server.quic_of("DatagramFrameReceived")) == 2
    assert not any(ours.of("CapsuleReceived"))


@pytest.mark.parametrize(("client", "server"), BOTH, ids=BOTH_IDS)
def test_interop_ours_http_datagram_sent_with_the_request(identity: Identity, client: Kind,
                                                          server: Kind) -> None:
    # a CONNECT-UDP client sends its first datagram at once, not after the response; aioquic
    # and qh3 put DATAGRAM frames before STREAM frames in a packet, so the datagram reaches
    # the server before the request: RFC 9297 §2.1 lets it buffer it until the stream exists
    session, app, server_app = start(identity, client, server, datagrams=True,
                                     link=LinkConditions(delay=0.01))
    sid = app.new_stream()
    app.send_headers(sid, request(b"CONNECT", b"/udp", (b"capsule-protocol", b"?1"),
                                  protocol=b"connect-udp"))
    app.send_datagram(sid, b"early")
    app.send_datagram(sid, b"early too")
    session.run_until(lambda: len(app.datagrams[sid]) == 2)
    assert server_app.datagrams[sid] == [b"early", b"early too"]
    assert app.datagrams[sid] == [b"pong:early", b"pong:early too"]
    if session.server.kind == "ours":
        # the request comes first, then its datagrams
        kinds = [type(e).__name__ for e in session.server.events if getattr(
            e, "stream_id", None) == sid]
        assert kinds == ["HeadersReceived", "DatagramReceived", "DatagramReceived"]


@pytest.mark.parametrize(("client", "server"), BOTH, ids=BOTH_IDS)
def test_interop_ours_datagram_capsule_path(identity: Identity, client: Kind,
                                            server: Kind) -> None:
    # QUIC DATAGRAM frames are not negotiated: HTTP datagrams travel as DATAGRAM capsules
    session, app, server_app = start(identity, client, server)
    server_app.on_datagram = None  # the peers have no capsule codec: no echo
    sid = app.new_stream()
    app.send_headers(sid, request(b"CONNECT", b"/udp", (b"capsule-protocol", b"?1"),
                                  protocol=b"connect-udp"))
    session.run_until(lambda: sid in app.heads)
    ours, theirs = (app, server_app) if session.client.kind == "ours" else (server_app, app)
    assert not ours.side.h3.datagrams_enabled
    # our QUIC never offered DATAGRAM frames (a qh3 client offers them whatever it is told)
    assert theirs.side.quic._remote_max_datagram_frame_size is None
    ours.side.h3.enable_capsule_protocol(sid)
    ours.send_datagram(sid, b"from ours")
    capsule = h3.encode_capsule(h3.CapsuleType.DATAGRAM, b"from " + theirs.side.kind.encode())
    theirs.send_data(sid, capsule[:3])  # a capsule split across DATA frames
    theirs.send_data(sid, capsule[3:] + h3.encode_capsule(0x1234, b"unknown"))
    session.run_until(lambda: theirs.bodies[sid] and ours.datagrams[sid]
                      and ours.side.of("CapsuleReceived"))
    assert bytes(theirs.bodies[sid]) == h3.encode_capsule(h3.CapsuleType.DATAGRAM, b"from ours")
    assert ours.datagrams[sid] == [b"from " + theirs.side.kind.encode()]
    assert ours.side.of("CapsuleReceived") == [
        h3.CapsuleReceived(stream_id=sid, capsule_type=0x1234, value=b"unknown")]
    # nothing went as a QUIC DATAGRAM frame
    assert not session.client.quic_of("DatagramFrameReceived")
    assert not session.server.quic_of("DatagramFrameReceived")


# --------------------------------------------------------------- lossy link, QPACK


def test_interop_ours_five_megabytes_over_lossy_reordering_link(identity: Identity) -> None:
    # our QUIC sends 5 MB to aioquic over 5% loss with reordering, both directions impaired
    link = LinkConditions(loss=0.05, reorder=0.05, reorder_delay=0.015, delay=0.01)
    session, app, _ = start(identity, "aioquic", "ours", link=link, seed=9)
    sid = app.new_stream()
    app.send_headers(sid, request(b"GET", f"/download/{FIVE_MB}".encode()), end=True)
    session.run_until(lambda: sid in app.ended, timeout=300)
    assert sha256(app.bodies[sid]) == sha256(pattern(FIVE_MB))
    down = session.pair.server_to_client.statistics()
    assert down.dropped_loss > 100 and down.reordered > 100
    up = session.pair.client_to_server.statistics()
    assert up.dropped_loss > 0  # acknowledgements were lost too
    assert session.client.terminated is None and session.server.terminated is None


@pytest.mark.parametrize(("client", "server"), BOTH, ids=BOTH_IDS)
def test_interop_ours_qpack_dynamic_table_used_both_ways(identity: Identity, client: Kind,
                                                         server: Kind) -> None:
    session, app, server_app = start(identity, client, server,
                                     link=LinkConditions(delay=0.005))
    cookie = b"session=" + b"c" * 120
    sids: list[int] = []
    # eight waves of five requests with the same large fields: pylsqpack indexes a field
    # the second time it sees it, and references entries freely once they are acknowledged
    for _ in range(8):
        wave = []
        for n in range(5):
            sid = app.new_stream()
            wave.append(sid)
            app.send_headers(sid, request(b"GET", b"/download/3", (b"cookie", cookie),
                                          (b"user-agent", b"interop/1.0"),
                                          (b"x-n", str(n).encode()),
                                          (b"x-echo", b"e" * 60)), end=True)
        session.run_until(lambda wave=wave: all(sid in app.ended for sid in wave))
        sids += wave
    for n, sid in enumerate(sids):
        fields = dict(server_app.heads[sid][0])
        assert fields[b"cookie"] == cookie and fields[b"x-n"] == str(n % 5).encode()
        assert dict(app.heads[sid][0])[b"content-length"] == b"3"
        assert app.bodies[sid] == pattern(3)
    # what the wire carried, parsed from the bytes each QUIC connection delivered
    to_server, to_client = qpack_traffic(session.server), qpack_traffic(session.client)
    assert to_server.sections == to_client.sections == 40
    assert to_server.inserts >= 3, to_server  # cookie, user-agent, x-n values ...
    assert to_client.inserts >= 1, to_client  # content-length: 3
    assert to_server.dynamic_sections >= 35, to_server
    assert to_client.dynamic_sections >= 35, to_client


def test_interop_ours_stock_qh3_server_without_datagram_parameter(identity: Identity) -> None:
    """qh3 as it ships offers SETTINGS_H3_DATAGRAM=1 whatever its QUIC configuration says.
    A qh3 server without max_datagram_frame_size thus breaks the RFC 9297 drafts' rule
    (which qh3 itself, aioquic and quic-go enforce too): our client closes with
    H3_SETTINGS_ERROR. The close may reach qh3 in a Handshake packet first, where an
    application close becomes APPLICATION_ERROR (RFC 9000 §10.2.3)."""
    session = Session("ours", "qh3", identity, stock_peers=True)
    session.pair.connect()
    session.run_until(lambda: session.client.of("ConnectionTerminated"))
    closed = session.client.of("ConnectionTerminated")[0]
    assert closed.error_code == h3.ErrorCode.H3_SETTINGS_ERROR
    assert closed.by_peer is False
    session.run_until(lambda: session.server.terminated is not None)
    assert session.server.terminated.error_code in (
        h3.ErrorCode.H3_SETTINGS_ERROR, TransportErrorCode.APPLICATION_ERROR)


def test_interop_ours_stock_qh3_client(identity: Identity) -> None:
    # a qh3 client offers DATAGRAM frames whatever it is told, so its SETTINGS_H3_DATAGRAM=1
    # is valid; our server offers no HTTP datagrams, and a request goes through
    session = Session("qh3", "ours", identity, stock_peers=True)
    session.handshake()
    assert session.server.h3.peer_settings.h3_datagram
    assert not session.server.h3.datagrams_enabled
    app, server_app = App(session.client), App(session.server)
    serve(server_app)
    sid = app.new_stream()
    app.send_headers(sid, request(b"GET", b"/download/1000"), end=True)
    session.run_until(lambda: sid in app.ended)
    assert app.bodies[sid] == pattern(1000)


# --------------------------------------------------------------------- the zttp façade

FACADE = [("zttp", "aioquic"), ("aioquic", "zttp"), ("zttp", "qh3"), ("qh3", "zttp")]
FACADE_IDS = ["zttp-client-aioquic-server", "aioquic-client-zttp-server",
              "zttp-client-qh3-server", "qh3-client-zttp-server"]


@pytest.mark.parametrize(("client", "server"), FACADE, ids=FACADE_IDS)
def test_interop_zttp_facade_requests_trailers_and_datagrams(
    identity: Identity, client: Kind, server: Kind
) -> None:
    # trio_zttp.Connection (our h3 over our QUIC behind Request/Response/Data/EndOfMessage)
    session, app, server_app = start(identity, client, server, datagrams=True)
    facade = session.ours
    assert facade.h3.h3.datagrams_enabled
    gets = {}
    for n in range(10):
        sid = app.new_stream()
        gets[sid] = n * 1000
        app.send_headers(sid, request(b"GET", f"/download/{n * 1000}".encode()), end=True)
    body = pattern(200_000)
    post = app.new_stream()
    app.send_headers(post, request(b"POST", b"/trailers"))
    app.send_data(post, body)
    app.send_trailers(post, [(b"x-request-trailer", b"yes")])
    tunnel = app.new_stream()
    app.send_headers(tunnel, request(b"CONNECT", b"/udp", (b"capsule-protocol", b"?1"),
                                     protocol=b"connect-udp"))
    session.run_until(lambda: tunnel in app.heads and post in app.ended
                      and all(sid in app.ended for sid in gets))
    for sid, size in gets.items():
        assert dict(app.heads[sid][0])[b":status"] == b"200"
        assert app.bodies[sid] == pattern(size)
    assert server_app.heads[post][-1] == [(b"x-request-trailer", b"yes")]
    assert sha256(app.bodies[post]) == sha256(body)
    assert app.heads[post][-1] == [(b"x-echo", b"yes"), (b"x-length", b"200000")]
    assert dict(server_app.heads[tunnel][0])[b":protocol"] == b"connect-udp"
    app.send_datagram(tunnel, b"ping")
    session.run_until(lambda: app.datagrams[tunnel])
    assert server_app.datagrams[tunnel] == [b"ping"]
    assert app.datagrams[tunnel] == [b"pong:ping"]
    if facade.role == "server":
        requests = facade.of("Request")
        assert [r.stream_id for r in requests] == [*gets, post, tunnel]
        assert all(r.http_version == b"3" for r in requests)
        assert requests[-1].method == b"CONNECT" and requests[-1].protocol == b"connect-udp"
    else:
        # the POST's response waits for the whole body, the tunnel's does not
        assert sorted(r.stream_id for r in facade.of("Response")) == [*gets, post, tunnel]
