"""HTTP/3 sessions over real QUIC stacks, each side from one implementation, for interop tests.

A side is one of:

* ``"ours"``: ``trio_zttp.h3.Connection`` over ``trio_zttp.quic.Connection`` (both ours);
* ``"aioquic"``: aioquic's ``H3Connection`` over aioquic's ``QuicConnection``;
* ``"qh3"``: qh3's ``H3Connection`` over qh3's ``QuicConnection``;
* ``"zttp"``: the zttp façade, ``trio_zttp.Connection(CLIENT/SERVER, protocol=HTTP3)``, which
  is our h3 over our QUIC behind ``Request`` / ``Response`` / ``Data`` / ``EndOfMessage``.

:class:`Session` joins a client and a server through ``trio_zttp.testing.Pair`` (virtual time,
seeded link). :class:`App` gives every side the same small HTTP/3 API (new request stream,
headers, data, trailers, HTTP datagrams, GOAWAY) and records what arrives, so one test body
runs for every pairing. The peers' quirks handled here (NOTES.md):

* aioquic offers SETTINGS_H3_DATAGRAM only with WebTransport: :class:`AioquicH3` adds it to its
  local settings when the session wants HTTP datagrams.
* qh3 always offers SETTINGS_H3_DATAGRAM=1 and never SETTINGS_ENABLE_CONNECT_PROTOCOL:
  :class:`Qh3H3` offers exactly what the session asks for (so a qh3 server accepts
  extended CONNECT, and a qh3 side without QUIC datagrams does not offer HTTP datagrams).
* aioquic's ``send_datagram`` takes the request stream ID, qh3's the quarter stream ID, and
  qh3's ``DatagramReceived`` carries the quarter stream ID as ``flow_id``.
* qh3 refuses a CA certificate used directly as the server certificate: servers use a leaf
  issued by ``testing.CertificateAuthority``.
"""

from __future__ import annotations

import hashlib
import random
from collections import defaultdict
from collections.abc import Callable
from typing import Any, Literal

import attrs
from aioquic.buffer import Buffer as AioquicBuffer  # type: ignore[attr-defined]
from aioquic.h3.connection import H3Connection as AioquicH3Connection
from aioquic.h3.connection import Setting as AioquicSetting
from aioquic.quic.configuration import QuicConfiguration as AioquicConfiguration
from aioquic.quic.connection import QuicConnection as AioquicQuicConnection
from aioquic.quic.packet import pull_quic_header as aioquic_pull_header
from qh3 import tls as qh3_tls
from qh3._hazmat import Buffer as Qh3Buffer
from qh3.h3.connection import H3Connection as Qh3H3Connection
from qh3.h3.connection import Setting as Qh3Setting
from qh3.quic.configuration import QuicConfiguration as Qh3Configuration
from qh3.quic.connection import QuicConnection as Qh3QuicConnection
from qh3.quic.packet import pull_quic_header as qh3_pull_header

import trio_zttp
from trio_zttp import h3, quic
from trio_zttp._buffer import decode_varint, encode_varint
from trio_zttp.qpack._instructions import (
    Duplicate,
    InsertWithLiteralName,
    InsertWithNameReference,
    decode_integer,
    parse_encoder_instruction,
)
from trio_zttp.testing import Address, CertificateAuthority, IssuedCertificate, Pair

Kind = Literal["ours", "aioquic", "qh3", "zttp"]
Role = Literal["client", "server"]
Fields = list[tuple[bytes, bytes]]

#: The datagram limit every side advertises when a session wants HTTP datagrams.
DATAGRAM_FRAME_SIZE = 65536


def pattern(length: int) -> bytes:
    """``length`` bytes of a pattern whose period (251) does not divide any frame size."""
    return (bytes(range(251)) * (length // 251 + 1))[:length]


def request(method: bytes, path: bytes, *extra: tuple[bytes, bytes],
            protocol: bytes | None = None) -> Fields:
    fields = [(b":method", method), (b":scheme", b"https"), (b":authority", b"localhost"),
              (b":path", path)]
    if protocol is not None:
        fields.append((b":protocol", protocol))
    return fields + list(extra)


def named(event: object, *names: str) -> bool:
    return type(event).__name__ in names


@attrs.define
class Identity:
    ca: CertificateAuthority
    leaf: IssuedCertificate


def make_identity() -> Identity:
    ca = CertificateAuthority.create()
    return Identity(ca=ca, leaf=ca.issue(["localhost"]))


# ------------------------------------------------------------------------- their HTTP/3


class AioquicH3(AioquicH3Connection):  # type: ignore[misc]
    """aioquic's H3Connection, offering SETTINGS_H3_DATAGRAM=1 without WebTransport when
    ``offer_datagrams`` (it sends ENABLE_CONNECT_PROTOCOL=1 by itself)."""

    def __init__(self, quic_connection: Any, *, offer_datagrams: bool) -> None:
        self.offer_datagrams = offer_datagrams
        super().__init__(quic_connection)

    def _get_local_settings(self) -> dict[int, int]:
        settings: dict[int, int] = super()._get_local_settings()
        if self.offer_datagrams:
            settings[AioquicSetting.H3_DATAGRAM] = 1
        return settings


class Qh3H3(Qh3H3Connection):  # type: ignore[misc]
    """qh3's H3Connection offering SETTINGS_H3_DATAGRAM only when ``offer_datagrams`` and
    SETTINGS_ENABLE_CONNECT_PROTOCOL=1 on servers (qh3 handles ``:protocol`` but never
    announces it)."""

    def __init__(self, quic_connection: Any, *, offer_datagrams: bool) -> None:
        self.offer_datagrams = offer_datagrams
        super().__init__(quic_connection)

    def _get_local_settings(self) -> dict[int, int]:
        settings: dict[int, int] = super()._get_local_settings()
        if not self.offer_datagrams:
            settings.pop(Qh3Setting.H3_DATAGRAM, None)
        if not self._is_client:
            settings[Qh3Setting.ENABLE_CONNECT_PROTOCOL] = 1
        return settings


# ---------------------------------------------------------------------------- QUIC sides


def seeded(seed: int) -> Callable[[int], bytes]:
    return random.Random(seed).randbytes


def our_configuration(role: Role, identity: Identity, *, datagrams: bool,
                      seed: int) -> quic.Configuration:
    settings: dict[str, Any] = {
        "is_client": role == "client", "alpn_protocols": ["h3"], "idle_timeout": 60.0,
        "random_bytes": seeded(seed),
        "max_datagram_frame_size": DATAGRAM_FRAME_SIZE if datagrams else None,
    }
    if role == "client":
        settings.update(server_name="localhost", cadata=identity.ca.pem)
    else:
        settings.update(certificate_chain=identity.leaf.chain,
                        private_key=identity.leaf.private_key)
    return quic.Configuration(**settings)


class Zttp:
    """The zttp façade as a ``testing.Pair`` peer: its events come out of ``next_event``
    (``NEED_DATA`` becomes None)."""

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


def aioquic_quic(role: Role, identity: Identity, first_datagram: bytes | None, *,
                 datagrams: bool) -> Any:
    config = AioquicConfiguration(
        is_client=role == "client", alpn_protocols=["h3"], idle_timeout=60.0,
        max_datagram_frame_size=DATAGRAM_FRAME_SIZE if datagrams else None)
    if role == "client":
        config.server_name = "localhost"
        config.load_verify_locations(cadata=identity.ca.pem)
        return AioquicQuicConnection(configuration=config)
    assert first_datagram is not None
    config.certificate = identity.leaf.certificate
    config.certificate_chain = list(identity.leaf.chain[1:])
    config.private_key = identity.leaf.private_key
    header = aioquic_pull_header(AioquicBuffer(data=first_datagram), host_cid_length=8)
    return AioquicQuicConnection(configuration=config,
                                 original_destination_connection_id=header.destination_cid)


def qh3_quic(role: Role, identity: Identity, first_datagram: bytes | None, *,
             datagrams: bool) -> Any:
    config = Qh3Configuration(
        is_client=role == "client", alpn_protocols=["h3"], idle_timeout=60.0,
        max_datagram_frame_size=DATAGRAM_FRAME_SIZE if datagrams else None)
    if role == "client":
        config.server_name = "localhost"
        config.load_verify_locations(cadata=identity.ca.pem)
        return Qh3QuicConnection(configuration=config)
    assert first_datagram is not None
    certificates = qh3_tls.load_pem_x509_certificates(identity.leaf.certificate_pem)
    config.certificate = certificates[0]
    config.certificate_chain = certificates[1:]
    config.private_key = qh3_tls.load_pem_private_key(identity.leaf.private_key_pem)
    header = qh3_pull_header(Qh3Buffer(data=first_datagram), host_cid_length=8)
    return Qh3QuicConnection(configuration=config,
                             original_destination_connection_id=header.destination_cid)


# ------------------------------------------------------------------------------ sessions


@attrs.define
class Side:
    """One end of a :class:`Session`: its QUIC connection, its HTTP/3 layer, what happened."""

    kind: Kind
    role: Role
    quic: Any
    h3: Any
    #: HTTP/3 events, in order
    events: list[Any] = attrs.field(factory=list)
    #: QUIC events, in order (aioquic's H3 layer hides resets and closes)
    quic_events: list[Any] = attrs.field(factory=list)
    handler: Callable[[Side, Any], None] | None = None

    def of(self, name: str, stream_id: int | None = None) -> list[Any]:
        """HTTP/3 events of the class called ``name`` (any implementation's)."""
        return [e for e in self.events if named(e, name)
                and (stream_id is None or getattr(e, "stream_id", None) == stream_id)]

    def quic_of(self, name: str) -> list[Any]:
        """QUIC events of the class called ``name`` (any implementation's)."""
        return [e for e in self.quic_events if named(e, name)]

    @property
    def settings_received(self) -> bool:
        if self.kind == "zttp":
            return self.h3.quic is not None and self.h3.h3.peer_settings is not None
        if self.kind == "ours":
            return self.h3.peer_settings is not None
        return self.h3.received_settings is not None

    @property
    def terminated(self) -> Any:
        """The QUIC connection's ConnectionTerminated event, or None."""
        found = self.quic_of("ConnectionTerminated")
        return found[0] if found else None

    def received_stream_data(self) -> dict[int, bytes]:
        """Every stream's bytes as this side's QUIC connection delivered them."""
        streams: dict[int, bytearray] = defaultdict(bytearray)
        for event in self.quic_of("StreamDataReceived"):
            streams[event.stream_id] += event.data
        return {sid: bytes(data) for sid, data in streams.items()}


class Session:
    """An HTTP/3 client and server, each ``"ours"``, ``"aioquic"`` or ``"qh3"``, over their
    own QUIC stacks, joined by ``testing.Pair``.

    Args:
        client, server: The implementation of each side.
        identity: The server's leaf certificate and the CA the client trusts.
        datagrams: Every QUIC side advertises max_datagram_frame_size and every HTTP/3 side
            offers SETTINGS_H3_DATAGRAM=1.
        settings: Our h3 settings (default: h3's defaults, with ``h3_datagram`` as above
            and, for our server, extended CONNECT).
        stock_peers: Use aioquic's and qh3's ``H3Connection`` as they ship, without the
            settings adjustments of :class:`AioquicH3` and :class:`Qh3H3`.
        pair_options: For ``testing.Pair`` (``link``, ``seed`` ...).
    """

    def __init__(self, client: Kind, server: Kind, identity: Identity, *,
                 datagrams: bool = False, settings: h3.Settings | None = None,
                 stock_peers: bool = False, **pair_options: Any) -> None:
        self.identity = identity
        self.stock_peers = stock_peers
        self.datagrams = datagrams
        self._settings = settings
        self.client = self._make_side("client", client, None)
        self.server_kind = server
        self._server: Side | None = None
        self.pair = Pair(self.client.quic, self._server_factory, on_event=self._on_event,
                         **pair_options)

    def _make_side(self, role: Role, kind: Kind, first_datagram: bytes | None) -> Side:
        datagrams = self.datagrams
        if kind in ("ours", "zttp"):
            config = our_configuration(role, self.identity, datagrams=datagrams,
                                       seed=11 if role == "client" else 12)
            settings = self._settings or attrs.evolve(
                h3.DEFAULT_SETTINGS, h3_datagram=datagrams,
                enable_connect_protocol=role == "server")
            if kind == "zttp":
                facade = trio_zttp.Connection(
                    trio_zttp.CLIENT if role == "client" else trio_zttp.SERVER,
                    protocol=trio_zttp.HTTP3, configuration=config, settings=settings)
                return Side(kind, role, Zttp(facade), facade)
            conn = quic.Connection(config)
            layer = h3.Connection(conn, is_client=role == "client", settings=settings,
                                  random_bytes=seeded(21 if role == "client" else 22))
            return Side(kind, role, conn, layer)
        if kind == "aioquic":
            conn = aioquic_quic(role, self.identity, first_datagram, datagrams=datagrams)
            if self.stock_peers:
                return Side(kind, role, conn, AioquicH3Connection(conn))
            return Side(kind, role, conn, AioquicH3(conn, offer_datagrams=datagrams))
        conn = qh3_quic(role, self.identity, first_datagram, datagrams=datagrams)
        if self.stock_peers:
            return Side(kind, role, conn, Qh3H3Connection(conn))
        return Side(kind, role, conn, Qh3H3(conn, offer_datagrams=datagrams))

    def _server_factory(self, first_datagram: bytes, source: Address) -> Any:
        self._server = self._make_side("server", self.server_kind, first_datagram)
        return self._server.quic

    @property
    def server(self) -> Side:
        assert self._server is not None, "no server until the first datagram"
        return self._server

    @property
    def ours(self) -> Side:
        """Our side (the client, if both are ours)."""
        return self.client if self.client.kind in ("ours", "zttp") else self.server

    @property
    def theirs(self) -> Side:
        """The other implementation's side."""
        return self.server if self.client.kind in ("ours", "zttp") else self.client

    def _on_event(self, name: str, event: object) -> None:
        side = self.client if name == "client" else self._server
        assert side is not None
        side.quic_events.append(event)
        if side.kind == "zttp":  # the façade's own events (it consumes its QUIC events)
            side.events.append(event)
            if side.handler is not None:
                side.handler(side, event)
        elif side.kind == "ours":
            side.h3.receive_quic_event(event)
            while (h3_event := side.h3.next_event()) is not None:
                side.events.append(h3_event)
                if side.handler is not None:
                    side.handler(side, h3_event)
        else:
            for h3_event in side.h3.handle_event(event):
                side.events.append(h3_event)
                if side.handler is not None:
                    side.handler(side, h3_event)

    def handshake(self) -> None:
        """Connect and run until both sides have the other's SETTINGS."""
        self.pair.connect()
        self.run_until(lambda: self._server is not None and self.client.settings_received
                       and self.server.settings_received)

    def run_until(self, predicate: Callable[[], object], timeout: float = 60.0) -> None:
        self.pair.run_until(predicate, timeout=timeout)


# -------------------------------------------------------------------------------- the app


@attrs.define
class App:
    """One side's HTTP/3 API, the same whoever implements it; records what arrives."""

    side: Side
    heads: dict[int, list[Fields]] = attrs.field(factory=lambda: defaultdict(list))
    bodies: dict[int, bytearray] = attrs.field(factory=lambda: defaultdict(bytearray))
    datagrams: dict[int, list[bytes]] = attrs.field(factory=lambda: defaultdict(list))
    ended: set[int] = attrs.field(factory=set)
    on_headers: Any = None  # (app, stream_id, headers) -> None, for the first header section
    on_end: Any = None  # (app, stream_id) -> None
    on_datagram: Any = None  # (app, stream_id, data) -> None

    def __attrs_post_init__(self) -> None:
        self.side.handler = self._handle

    @property
    def ours(self) -> bool:
        return self.side.kind == "ours"

    def _handle(self, side: Side, event: Any) -> None:
        end = False
        sid = getattr(event, "stream_id", None)
        if side.kind == "zttp" and named(event, "Request", "Response", "EndOfMessage", "Data"):
            # the façade's events, turned back into header sections
            if named(event, "Request"):
                pseudo = [(b":method", event.method), (b":scheme", event.scheme),
                          (b":authority", event.authority), (b":path", event.path),
                          (b":protocol", event.protocol)]
                fields = [(n, v) for n, v in pseudo if v is not None] + event.headers
            elif named(event, "Response"):
                fields = [(b":status", str(event.status_code).encode()), *event.headers]
            elif named(event, "Data"):
                self.bodies[sid] += event.data
                return
            else:
                if event.headers:
                    self.heads[sid].append(list(event.headers))
                fields, end = [], True
            if fields:
                self.heads[sid].append(fields)
                if self.on_headers is not None and len(self.heads[sid]) == 1:
                    self.on_headers(self, sid, fields)
        elif named(event, "HeadersReceived", "TrailersReceived"):
            sid = event.stream_id
            if getattr(event, "interim", False):
                return
            self.heads[sid].append(list(event.headers))
            end = named(event, "TrailersReceived") or getattr(
                event, "end_stream", getattr(event, "stream_ended", False))
            if self.on_headers is not None and len(self.heads[sid]) == 1:
                self.on_headers(self, sid, list(event.headers))
        elif named(event, "DataReceived"):
            sid = event.stream_id
            self.bodies[sid] += event.data
            end = getattr(event, "end_stream", getattr(event, "stream_ended", False))
        elif named(event, "DatagramReceived"):
            # qh3 reports the quarter stream ID as flow_id
            sid = event.stream_id if hasattr(event, "stream_id") else event.flow_id * 4
            self.datagrams[sid].append(event.data)
            if self.on_datagram is not None:
                self.on_datagram(self, sid, event.data)
        if end and sid not in self.ended:
            self.ended.add(sid)
            if self.on_end is not None:
                self.on_end(self, sid)

    def new_stream(self) -> int:
        if self.side.kind == "zttp":
            return int(self.side.h3.h3.get_next_request_stream_id())
        if self.ours:
            return int(self.side.h3.get_next_request_stream_id())
        return int(self.side.quic.get_next_available_stream_id())

    def send_headers(self, sid: int, headers: Fields, end: bool = False) -> None:
        if self.side.kind != "zttp":
            self.side.h3.send_headers(sid, headers, end_stream=end)
            return
        facade = self.side.h3
        pseudo = {n: v for n, v in headers if n.startswith(b":")}
        regular = [(n, v) for n, v in headers if not n.startswith(b":")]
        if self.side.role == "server":
            facade.send_response(sid, int(pseudo[b":status"]), regular, end_stream=end)
            return
        opened = facade.send_request(
            pseudo[b":method"], pseudo.get(b":path"), authority=pseudo.get(b":authority"),
            scheme=pseudo.get(b":scheme"), protocol=pseudo.get(b":protocol"),
            headers=regular, end_stream=end)
        assert opened == sid

    def send_data(self, sid: int, data: bytes, end: bool = False) -> None:
        self.side.h3.send_data(sid, data, end_stream=end)

    def send_trailers(self, sid: int, headers: Fields) -> None:
        if self.side.kind == "zttp":
            self.side.h3.send_end_of_message(sid, headers)
        elif self.ours:
            self.side.h3.send_trailers(sid, headers)
        else:
            self.side.h3.send_headers(sid, headers, end_stream=True)

    def send_datagram(self, sid: int, data: bytes) -> None:
        if self.side.kind == "zttp":
            self.side.h3.h3.send_datagram(sid, data)
        elif self.side.kind == "qh3":
            self.side.h3.send_datagram(sid // 4, data)  # qh3 takes the quarter stream ID
        else:
            self.side.h3.send_datagram(sid, data)

    def send_goaway(self, identifier: int) -> None:
        if self.ours:
            self.side.h3.send_goaway(identifier)
        else:
            # neither aioquic nor qh3 has a GOAWAY command: write the frame on its control stream
            self.side.quic.send_stream_data(
                self.side.h3._local_control_stream_id,
                h3.encode_frame(h3.FrameType.GOAWAY, encode_varint(identifier)))


def serve(app: App) -> None:
    """The test server: downloads, uploads answered with a sha256, trailers, CONNECT echo."""

    def on_headers(app: App, sid: int, headers: Fields) -> None:
        fields = dict(headers)
        path = fields.get(b":path", b"")
        if fields[b":method"] == b"CONNECT":
            app.send_headers(sid, [(b":status", b"200"), (b"capsule-protocol", b"?1")])
        elif path.startswith(b"/download/"):
            size = int(path.rsplit(b"/", 1)[1])
            # x-echo comes back (a response large enough for the QPACK dynamic table)
            echo = [(b"x-echo", fields[b"x-echo"])] if b"x-echo" in fields else []
            app.send_headers(sid, [(b":status", b"200"), (b"content-length",
                                                          str(size).encode()), *echo])
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
            app.send_trailers(sid, [(b"x-echo", received),
                                    (b"x-length", str(len(app.bodies[sid])).encode())])

    def on_datagram(app: App, sid: int, data: bytes) -> None:
        app.send_datagram(sid, b"pong:" + data)

    app.on_headers, app.on_end, app.on_datagram = on_headers, on_end, on_datagram


def start(identity: Identity, client: Kind, server: Kind, **options: Any
          ) -> tuple[Session, App, App]:
    """A session after both SETTINGS arrived, with :func:`serve` on the server side."""
    session = Session(client, server, identity, **options)
    session.handshake()
    client_app, server_app = App(session.client), App(session.server)
    serve(server_app)
    return session, client_app, server_app


# ------------------------------------------------------------------------------- QPACK wire


@attrs.frozen
class QpackTraffic:
    """What one direction's QPACK encoder stream and request header sections carried."""

    #: Insert instructions (with name reference, literal name, duplicate) on the encoder stream
    inserts: int
    #: Header sections whose Required Insert Count is non-zero (they use the dynamic table)
    dynamic_sections: int
    #: Header sections in all
    sections: int


def qpack_traffic(receiver: Side) -> QpackTraffic:
    """Parse the bytes ``receiver``'s QUIC connection delivered: the peer's QPACK encoder
    stream (unidirectional, type 0x02) and the first HEADERS frame of every bidirectional
    stream. Only the wire is read, so it shows what the peer's encoder really did."""
    inserts = dynamic = sections = 0
    for sid, data in receiver.received_stream_data().items():
        if sid & 2:
            if data[:1] != b"\x02":
                continue
            pos = 1
            while pos < len(data):
                instruction, pos = parse_encoder_instruction(data, pos, 1 << 20)
                if isinstance(instruction, (InsertWithNameReference, InsertWithLiteralName,
                                            Duplicate)):
                    inserts += 1
        else:
            # the first HEADERS frame of the stream (reserved frames before it are skipped)
            pos = 0
            while pos < len(data):
                frame_type, pos = decode_varint(data, pos)
                length, pos = decode_varint(data, pos)
                if frame_type == h3.FrameType.HEADERS:
                    required, _ = decode_integer(data, pos, 8)
                    sections += 1
                    dynamic += required != 0
                    break
                pos += length
    return QpackTraffic(inserts=inserts, dynamic_sections=dynamic, sections=sections)
