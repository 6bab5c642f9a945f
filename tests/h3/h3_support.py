"""Harnesses for the h3.Connection tests.

* :class:`MemoryQuic`: an in-memory QUIC connection (reliable ordered streams, no packets)
  implementing ``h3.QuicTransport``, joined to its twin; :class:`MemoryLink` pumps events
  between two ``h3.Connection`` and can hold a stream back (to block QPACK on purpose) or
  inject raw bytes. Fast: no handshake, no crypto.
* :class:`AioquicTransport`: aioquic's sans-IO ``QuicConnection`` seen through
  ``h3.QuicTransport`` (and through the ``testing.Pair`` driver), its events converted to
  ``trio_zttp.quic`` events.
* :class:`Session`: a client and a server over real QUIC (aioquic's), each side either our
  ``h3.Connection`` or aioquic's ``H3Connection``, driven by ``testing.Pair`` in virtual time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import attrs
from aioquic.buffer import Buffer  # type: ignore[attr-defined]
from aioquic.h3.connection import H3Connection, Setting
from aioquic.quic import events as aioquic_events
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from aioquic.quic.packet import pull_quic_header

from trio_zttp import h3, qpack
from trio_zttp._buffer import encode_varint
from trio_zttp.quic._events import (
    ConnectionTerminated,
    DatagramFrameReceived,
    HandshakeCompleted,
    StopSendingReceived,
    StreamDataReceived,
    StreamReset,
)
from trio_zttp.testing import Address, CertificateAuthority, IssuedCertificate, Pair

QuicEvent = Any


def seeded_random(seed: int = 7) -> Callable[[int], bytes]:
    """A deterministic ``random_bytes`` for GREASE values."""
    state = [seed]

    def random_bytes(n: int) -> bytes:
        out = bytearray()
        for _ in range(n):
            state[0] = (state[0] * 1103515245 + 12345) & 0x7FFFFFFF
            out.append(state[0] >> 16 & 0xFF)
        return bytes(out)

    return random_bytes


# --------------------------------------------------------------------------- in memory


class MemoryQuic:
    """One end of an in-memory QUIC connection; what it sends lands in its twin's inbox."""

    def __init__(self, *, is_client: bool, max_datagram_frame_size: int | None = 65536) -> None:
        self.is_client = is_client
        self.max_datagram_frame_size = max_datagram_frame_size
        self.twin: MemoryQuic | None = None
        self.inbox: list[QuicEvent] = []
        self._next = {False: 0 if is_client else 1, True: 2 if is_client else 3}
        self.closed: tuple[int, str] | None = None
        self.resets: dict[int, int] = {}
        self.stops: dict[int, int] = {}
        self.sent: dict[int, bytearray] = {}
        self.fins: set[int] = set()
        self.datagrams: list[bytes] = []

    def _deliver(self, event: QuicEvent) -> None:
        assert self.twin is not None
        if self.closed is None:
            self.twin.inbox.append(event)

    def get_next_available_stream_id(self, is_unidirectional: bool = False) -> int:
        return self._next[is_unidirectional]

    def send_stream_data(self, stream_id: int, data: bytes, end_stream: bool = False) -> None:
        assert stream_id not in self.fins, f"data after FIN on {stream_id}"
        unidirectional = bool(stream_id & 2)
        if (stream_id & 1) == (not self.is_client) and stream_id >= self._next[unidirectional]:
            self._next[unidirectional] = stream_id + 4
        self.sent.setdefault(stream_id, bytearray()).extend(data)
        if end_stream:
            self.fins.add(stream_id)
        self._deliver(StreamDataReceived(stream_id=stream_id, data=bytes(data),
                                         end_stream=end_stream))

    def reset_stream(self, stream_id: int, error_code: int) -> None:
        self.resets[stream_id] = error_code
        self._deliver(StreamReset(stream_id=stream_id, error_code=error_code))

    def stop_sending(self, stream_id: int, error_code: int) -> None:
        self.stops[stream_id] = error_code
        self._deliver(StopSendingReceived(stream_id=stream_id, error_code=error_code))

    def send_datagram_frame(self, data: bytes) -> None:
        self.datagrams.append(bytes(data))
        self._deliver(DatagramFrameReceived(data=bytes(data)))

    def close(self, error_code: int, reason_phrase: str = "") -> None:
        if self.closed is None:
            self._deliver(ConnectionTerminated(
                error_code=error_code, frame_type=None, reason_phrase=reason_phrase,
                by_peer=True, application=True))
            self.closed = (error_code, reason_phrase)

    @property
    def remote_max_datagram_frame_size(self) -> int | None:
        assert self.twin is not None
        return self.twin.max_datagram_frame_size


@attrs.define
class MemorySide:
    quic: MemoryQuic
    h3: h3.Connection
    events: list[h3.Event] = attrs.field(factory=list)
    #: stream IDs whose incoming data is held back (not delivered) until released
    held: set[int] = attrs.field(factory=set)
    held_events: list[QuicEvent] = attrs.field(factory=list)
    handler: Callable[[MemorySide, h3.Event], None] | None = None

    def of(self, kind: type[Any], stream_id: int | None = None) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)
                and (stream_id is None or getattr(e, "stream_id", None) == stream_id)]

    @property
    def terminated(self) -> h3.ConnectionTerminated | None:
        found = self.of(h3.ConnectionTerminated)
        return found[0] if found else None


class MemoryLink:
    """Two ``h3.Connection`` over :class:`MemoryQuic`; :meth:`pump` delivers until quiet.

    ``raw_client=True`` makes the client side a bare :class:`MemoryQuic` (no HTTP/3): the
    test writes whatever bytes it likes and watches the server's reaction.
    """

    def __init__(
        self,
        *,
        client_settings: h3.Settings = h3.DEFAULT_SETTINGS,
        server_settings: h3.Settings = h3.DEFAULT_SETTINGS,
        client_datagram_frame_size: int | None = 65536,
        server_datagram_frame_size: int | None = 65536,
        grease: bool = True,
        raw_client: bool = False,
        raw_server: bool = False,
    ) -> None:
        cq = MemoryQuic(is_client=True, max_datagram_frame_size=client_datagram_frame_size)
        sq = MemoryQuic(is_client=False, max_datagram_frame_size=server_datagram_frame_size)
        cq.twin, sq.twin = sq, cq
        self.client_quic, self.server_quic = cq, sq
        self.client = None if raw_client else MemorySide(cq, h3.Connection(
            cq, is_client=True, settings=client_settings, grease=grease,
            random_bytes=seeded_random(1)))
        self.server = None if raw_server else MemorySide(sq, h3.Connection(
            sq, is_client=False, settings=server_settings, grease=grease,
            random_bytes=seeded_random(2)))

    def side(self, name: Literal["client", "server"]) -> MemorySide:
        side = self.client if name == "client" else self.server
        assert side is not None
        return side

    def pump(self, max_rounds: int = 10_000) -> None:
        for _ in range(max_rounds):
            for side in (self.client, self.server):
                if side is not None:
                    self._drain(side)
            moved = False
            for quic, side in ((self.client_quic, self.client), (self.server_quic, self.server)):
                if not quic.inbox:
                    continue
                batch, quic.inbox[:] = list(quic.inbox), []
                moved = True
                for event in batch:
                    if side is None:
                        continue
                    sid = getattr(event, "stream_id", None)
                    if sid is not None and sid in side.held:
                        side.held_events.append(event)
                        continue
                    side.h3.receive_quic_event(event)
                    self._drain(side)
            if not moved:
                return
        raise AssertionError("the link never went quiet")

    def _drain(self, side: MemorySide) -> None:
        while (event := side.h3.next_event()) is not None:
            side.events.append(event)
            if side.handler is not None:
                side.handler(side, event)

    def release(self, name: Literal["client", "server"], stream_id: int) -> None:
        side = self.side(name)
        side.held.discard(stream_id)
        events = [e for e in side.held_events if getattr(e, "stream_id", None) == stream_id]
        side.held_events = [e for e in side.held_events if e not in events]
        for event in events:
            side.h3.receive_quic_event(event)
            self._drain(side)
        self.pump()


# ------------------------------------------------------------------------------ aioquic


class AioquicTransport:
    """aioquic's ``QuicConnection`` as an ``h3.QuicTransport`` and a ``testing.Pair`` peer."""

    def __init__(self, quic: QuicConnection) -> None:
        self.quic = quic
        self._closed_by_us = False

    # h3.QuicTransport
    def get_next_available_stream_id(self, is_unidirectional: bool = False) -> int:
        return int(self.quic.get_next_available_stream_id(is_unidirectional=is_unidirectional))

    def send_stream_data(self, stream_id: int, data: bytes, end_stream: bool = False) -> None:
        self.quic.send_stream_data(stream_id, data, end_stream)

    def reset_stream(self, stream_id: int, error_code: int) -> None:
        self.quic.reset_stream(stream_id, error_code)

    def stop_sending(self, stream_id: int, error_code: int) -> None:
        try:
            self.quic.stop_stream(stream_id, error_code)
        except ValueError:  # aioquic already discarded the stream: nothing to stop
            pass

    def send_datagram_frame(self, data: bytes) -> None:
        self.quic.send_datagram_frame(data)

    def close(self, error_code: int, reason_phrase: str = "") -> None:
        self._closed_by_us = True
        self.quic.close(error_code=error_code, reason_phrase=reason_phrase)

    @property
    def remote_max_datagram_frame_size(self) -> int | None:
        value: int | None = self.quic._remote_max_datagram_frame_size
        return value

    # testing.SansIOClient
    def connect(self, addr: Address, now: float) -> None:
        self.quic.connect(addr, now)

    def receive_datagram(self, data: bytes, addr: Address, now: float) -> None:
        self.quic.receive_datagram(data, addr, now)

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Address]]:
        return list(self.quic.datagrams_to_send(now))

    def get_timer(self) -> float | None:
        timer: float | None = self.quic.get_timer()
        return timer

    def handle_timer(self, now: float) -> None:
        self.quic.handle_timer(now)

    def next_event(self) -> object | None:
        while (event := self.quic.next_event()) is not None:
            converted = convert_event(event, self._closed_by_us)
            if converted is not None:
                return converted
        return None


def convert_event(event: QuicEvent, closed_by_us: bool = False) -> object | None:
    """An aioquic QUIC event as the equivalent ``trio_zttp.quic`` event (None: no equivalent)."""
    if isinstance(event, aioquic_events.StreamDataReceived):
        return StreamDataReceived(stream_id=event.stream_id, data=event.data,
                                  end_stream=event.end_stream)
    if isinstance(event, aioquic_events.DatagramFrameReceived):
        return DatagramFrameReceived(data=event.data)
    if isinstance(event, aioquic_events.StreamReset):
        return StreamReset(stream_id=event.stream_id, error_code=event.error_code)
    if isinstance(event, aioquic_events.StopSendingReceived):
        return StopSendingReceived(stream_id=event.stream_id, error_code=event.error_code)
    if isinstance(event, aioquic_events.HandshakeCompleted):
        return HandshakeCompleted(alpn_protocol=event.alpn_protocol,
                                  session_resumed=event.session_resumed,
                                  early_data_accepted=event.early_data_accepted)
    if isinstance(event, aioquic_events.ConnectionTerminated):
        return ConnectionTerminated(error_code=event.error_code, frame_type=event.frame_type,
                                    reason_phrase=event.reason_phrase, by_peer=not closed_by_us,
                                    application=event.frame_type is None)
    return None


class DatagramH3Connection(H3Connection):  # type: ignore[misc]
    """aioquic's H3Connection offering SETTINGS_H3_DATAGRAM=1 without WebTransport.

    aioquic only announces H3_DATAGRAM along with WebTransport (NOTES.md); this peer adds it
    to its local settings so that HTTP datagrams alone are offered.
    """

    def _get_local_settings(self) -> dict[int, int]:
        settings: dict[int, int] = super()._get_local_settings()
        settings[Setting.H3_DATAGRAM] = 1
        return settings


# ------------------------------------------------------------------------------ sessions

Kind = Literal["ours", "aioquic"]


@attrs.define
class Side:
    """One end of a :class:`Session`."""

    kind: Kind
    quic: Any  # AioquicTransport (ours) or QuicConnection (aioquic's H3)
    h3: Any  # h3.Connection or H3Connection
    events: list[Any] = attrs.field(factory=list)
    handler: Callable[[Side, Any], None] | None = None
    #: aioquic sides: every QUIC event (resets and closes are invisible to its H3 layer)
    quic_events: list[Any] = attrs.field(factory=list)

    def of(self, kind: type[Any], stream_id: int | None = None) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)
                and (stream_id is None or getattr(e, "stream_id", None) == stream_id)]

    @property
    def settings_received(self) -> bool:
        if self.kind == "ours":
            return bool(self.of(h3.SettingsReceived))
        return self.h3.received_settings is not None

    @property
    def aioquic(self) -> QuicConnection:
        """The aioquic QUIC connection underneath."""
        return self.quic.quic if isinstance(self.quic, AioquicTransport) else self.quic


@attrs.define
class Identity:
    ca: CertificateAuthority
    leaf: IssuedCertificate


def make_identity() -> Identity:
    ca = CertificateAuthority.create()
    return Identity(ca=ca, leaf=ca.issue(["localhost"]))


class Session:
    """An HTTP/3 client and server over aioquic's QUIC, driven by ``testing.Pair``.

    Args:
        client, server: ``"ours"`` (h3.Connection over :class:`AioquicTransport`) or
            ``"aioquic"`` (aioquic's H3Connection).
        identity: The server's certificate and the CA the client trusts.
        datagrams: Negotiate QUIC DATAGRAM frames and offer SETTINGS_H3_DATAGRAM=1 on both
            sides.
        client_settings, server_settings: Our settings when that side is ours (default: h3's
            defaults, plus h3_datagram and, for servers, enable_connect_protocol).
        aioquic_datagram_setting: Whether an aioquic side offers SETTINGS_H3_DATAGRAM
            (default: ``datagrams``).
        pair_options: Passed to ``testing.Pair`` (link conditions, seed ...).
    """

    def __init__(
        self,
        client: Kind,
        server: Kind,
        identity: Identity,
        *,
        datagrams: bool = False,
        client_settings: h3.Settings | None = None,
        server_settings: h3.Settings | None = None,
        aioquic_datagram_setting: bool | None = None,
        **pair_options: Any,
    ) -> None:
        self.identity = identity
        self.datagrams = datagrams
        if aioquic_datagram_setting is None:
            aioquic_datagram_setting = datagrams
        self._aioquic_datagram_setting = aioquic_datagram_setting
        self._settings = {
            "client": client_settings or attrs.evolve(h3.DEFAULT_SETTINGS, h3_datagram=datagrams),
            "server": server_settings or attrs.evolve(
                h3.DEFAULT_SETTINGS, h3_datagram=datagrams, enable_connect_protocol=True),
        }
        config = QuicConfiguration(
            is_client=True, alpn_protocols=["h3"], server_name="localhost",
            max_datagram_frame_size=65536 if datagrams else None)
        config.load_verify_locations(cadata=identity.ca.pem)
        client_quic = QuicConnection(configuration=config)
        self.client = self._make_side("client", client, client_quic)
        self.server_kind = server
        self._server: Side | None = None
        self.pair = Pair(
            self.client.quic, self._server_factory, on_event=self._on_event, **pair_options)

    def _make_side(self, name: str, kind: Kind, quic: QuicConnection) -> Side:
        if kind == "ours":
            transport = AioquicTransport(quic)
            conn = h3.Connection(transport, is_client=name == "client",
                                 settings=self._settings[name],
                                 random_bytes=seeded_random(3 if name == "client" else 4))
            return Side(kind, transport, conn)
        cls = DatagramH3Connection if self._aioquic_datagram_setting else H3Connection
        return Side(kind, quic, cls(quic))

    def _server_factory(self, first_datagram: bytes, source: Address) -> Any:
        config = QuicConfiguration(
            is_client=False, alpn_protocols=["h3"],
            max_datagram_frame_size=65536 if self.datagrams else None)
        config.certificate = self.identity.leaf.certificate
        config.private_key = self.identity.leaf.private_key
        header = pull_quic_header(Buffer(data=first_datagram), host_cid_length=8)
        quic = QuicConnection(configuration=config,
                              original_destination_connection_id=header.destination_cid)
        self._server = self._make_side("server", self.server_kind, quic)
        return self._server.quic

    @property
    def server(self) -> Side:
        assert self._server is not None, "no server until the first datagram"
        return self._server

    def _on_event(self, name: str, event: object) -> None:
        side = self.client if name == "client" else self._server
        assert side is not None
        if side.kind == "ours":
            side.h3.receive_quic_event(event)
            while (h3_event := side.h3.next_event()) is not None:
                side.events.append(h3_event)
                if side.handler is not None:
                    side.handler(side, h3_event)
        else:
            side.quic_events.append(event)
            for h3_event in side.h3.handle_event(event):
                side.events.append(h3_event)
                if side.handler is not None:
                    side.handler(side, h3_event)

    def handshake(self) -> None:
        """Connect and run until both sides have the other's SETTINGS."""
        self.pair.connect()
        self.run_until(lambda: self._server is not None and self.client.settings_received
                       and self.server.settings_received)

    def run_until(self, predicate: Callable[[], object], timeout: float = 30.0) -> None:
        self.pair.run_until(predicate, timeout=timeout)

    def run_for(self, duration: float) -> None:
        self.pair.run_for(duration)


# ------------------------------------------------------------------------ raw peer bytes

REQUEST = [(b":method", b"GET"), (b":scheme", b"https"), (b":authority", b"localhost"),
           (b":path", b"/")]


def request_fields(method: bytes = b"GET", path: bytes = b"/", *extra: tuple[bytes, bytes],
                   protocol: bytes | None = None) -> list[tuple[bytes, bytes]]:
    fields = [(b":method", method), (b":scheme", b"https"), (b":authority", b"localhost"),
              (b":path", path)]
    if protocol is not None:
        fields.append((b":protocol", protocol))
    return fields + list(extra)


def connect_fields(protocol: bytes = b"ping-pong") -> list[tuple[bytes, bytes]]:
    return request_fields(b"CONNECT", b"/chat", protocol=protocol)


def headers_frame(fields: list[tuple[bytes, bytes]]) -> bytes:
    """A HEADERS frame whose field section uses no dynamic table (any peer decodes it)."""
    _, section = qpack.Encoder().encode(0, fields)
    return h3.encode_frame(h3.FrameType.HEADERS, section)


def data_frame(data: bytes) -> bytes:
    return h3.encode_frame(h3.FrameType.DATA, data)


def settings_frame(*pairs: tuple[int, int]) -> bytes:
    return h3.encode_frame(h3.FrameType.SETTINGS,
                           b"".join(encode_varint(i) + encode_varint(v) for i, v in pairs))


def varint(value: int) -> bytes:
    return encode_varint(value)


class RawPeer:
    """Writes raw HTTP/3 bytes from a bare :class:`MemoryQuic` (no HTTP/3 layer of its own)."""

    def __init__(self, link: MemoryLink, quic: MemoryQuic) -> None:
        self.link = link
        self.quic = quic

    def uni(self, stream_type: int, data: bytes = b"", end_stream: bool = False) -> int:
        stream_id = self.quic.get_next_available_stream_id(is_unidirectional=True)
        self.quic.send_stream_data(stream_id, varint(stream_type) + data, end_stream)
        self.link.pump()
        return stream_id

    def send(self, stream_id: int, data: bytes, end_stream: bool = False) -> None:
        self.quic.send_stream_data(stream_id, data, end_stream)
        self.link.pump()

    def control(self, data: bytes = b"", end_stream: bool = False) -> int:
        """Open the control stream with an empty SETTINGS frame, then ``data``."""
        return self.uni(h3.StreamType.CONTROL, settings_frame() + data, end_stream)

    def setup(self) -> None:
        """A well-behaved start: control stream with SETTINGS, QPACK encoder and decoder."""
        self.control_id = self.control()
        self.encoder_id = self.uni(h3.StreamType.QPACK_ENCODER)
        self.decoder_id = self.uni(h3.StreamType.QPACK_DECODER)

    def request(self, data: bytes, end_stream: bool = False) -> int:
        stream_id = self.quic.get_next_available_stream_id()
        self.send(stream_id, data, end_stream)
        return stream_id


def raw_client_link(**options: Any) -> tuple[MemoryLink, RawPeer, MemorySide]:
    """Our server facing a raw client that has not sent anything yet."""
    link = MemoryLink(raw_client=True, **options)
    link.pump()
    return link, RawPeer(link, link.client_quic), link.side("server")


def raw_server_link(**options: Any) -> tuple[MemoryLink, RawPeer, MemorySide]:
    """Our client facing a raw server that has not sent anything yet."""
    link = MemoryLink(raw_server=True, **options)
    link.pump()
    return link, RawPeer(link, link.server_quic), link.side("client")
