"""Per-connection behaviour of the asyncio peers, written once for aioquic and qh3.

Each class is a mixin; :func:`protocol_class` puts it in front of the library's
``QuicConnectionProtocol``. Event classes come from the :class:`Library` adapter, so the same
``isinstance`` checks work for both libraries.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from typing import Any

from _peer_core import (
    ECHO_PROTOCOL,
    PINGPONG_PROTOCOL,
    Library,
    connection_facts,
    emit,
    generated_body,
)

# --------------------------------------------------------------------------------------
# protocols (mixins; peer classes are built per library by protocol_class)


def protocol_class(library: Library, mixin: type, **attributes: Any) -> type:
    return type(mixin.__name__, (mixin, library.protocol_base), {"lib": library, **attributes})


class _Common:
    """Connection-level events every role reports."""

    lib: Library
    close_info: dict[str, Any] | None = None
    """How the connection ended (``ConnectionTerminated``), once it has."""
    _quic: Any
    role: str = "client"

    def quic_event_received(self, event: Any) -> None:
        events = self.lib.quic_events
        if isinstance(event, events.HandshakeCompleted):
            if self.role == "server":
                emit(
                    {
                        "event": "connection",
                        "alpn": event.alpn_protocol,
                        "session_resumed": event.session_resumed,
                        **connection_facts(self._quic),
                    }
                )
        elif isinstance(event, events.ConnectionTerminated):
            self.close_info = {
                "error_code": event.error_code,
                "frame_type": event.frame_type,
                "reason": event.reason_phrase,
            }
            self.connection_terminated(event)
            if self.role == "server":
                emit(
                    {
                        "event": "closed",
                        "error_code": event.error_code,
                        "reason": event.reason_phrase,
                    }
                )
        self.handle(event)

    def handle(self, event: Any) -> None:
        pass

    def connection_terminated(self, event: Any) -> None:
        pass


class ServerStats:
    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def add(self, key: str, amount: int = 1) -> None:
        self.counts[key] = self.counts.get(key, 0) + amount


class EchoServer(_Common):
    """Echo every bidirectional stream (data and FIN) and every DATAGRAM frame."""

    role = "server"
    stats: ServerStats

    def handle(self, event: Any) -> None:
        events = self.lib.quic_events
        if isinstance(event, events.StreamDataReceived):
            if event.stream_id & 0x2:  # unidirectional: nothing to echo on
                return
            self._quic.send_stream_data(event.stream_id, event.data, end_stream=event.end_stream)
            self.stats.add("stream_bytes", len(event.data))
            if event.end_stream:
                self.stats.add("streams")
        elif isinstance(event, events.DatagramFrameReceived):
            self._quic.send_datagram_frame(event.data)
            self.stats.add("datagrams")


class Sink:
    """Digest and size of what arrives on one stream, plus its completion."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.digest = hashlib.sha256()
        self.size = 0
        self.done: asyncio.Future[None] = loop.create_future()
        self.headers: asyncio.Future[list[tuple[bytes, bytes]]] = loop.create_future()
        self.datagrams: asyncio.Queue[bytes] = asyncio.Queue()

    def feed(self, data: bytes, ended: bool) -> None:
        self.digest.update(data)
        self.size += len(data)
        if ended and not self.done.done():
            self.done.set_result(None)

    def fail(self, error: BaseException) -> None:
        for future in (self.headers, self.done):
            if not future.done():
                future.set_exception(error)
                future.exception()  # mark retrieved: not every caller awaits both


class EchoClient(_Common):
    """Raw QUIC echo client: streams are fed to sinks, DATAGRAM frames to a queue."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sinks: dict[int, Sink] = {}
        self.datagrams: asyncio.Queue[bytes] = asyncio.Queue()

    def open_sink(self, stream_id: int) -> Sink:
        sink = self.sinks[stream_id] = Sink(asyncio.get_running_loop())
        return sink

    def handle(self, event: Any) -> None:
        events = self.lib.quic_events
        if isinstance(event, events.StreamDataReceived):
            sink = self.sinks.get(event.stream_id)
            if sink is not None:
                sink.feed(event.data, event.end_stream)
        elif isinstance(event, events.DatagramFrameReceived):
            self.datagrams.put_nowait(event.data)
        elif isinstance(event, events.StreamReset):
            sink = self.sinks.get(event.stream_id)
            if sink is not None:
                sink.fail(ConnectionError(f"stream reset, error code {event.error_code}"))

    def connection_terminated(self, event: Any) -> None:
        error = ConnectionError(f"connection closed: {event.error_code} {event.reason_phrase}")
        for sink in self.sinks.values():
            sink.fail(error)


class _H3Base(_Common):
    """Owns the H3 connection once ALPN says h3."""

    _h3: Any = None

    def handle(self, event: Any) -> None:
        if self._h3 is None and isinstance(event, self.lib.quic_events.ProtocolNegotiated):
            if event.alpn_protocol in self.lib.h3_alpn:
                self._h3 = self.lib.h3_connection(self._quic)
        if self._h3 is None:
            return
        for h3_event in self._h3.handle_event(event):
            self.handle_h3(h3_event)

    def handle_h3(self, event: Any) -> None:
        pass

    def peer_settings(self) -> dict[int, int] | None:
        if self._h3 is None:
            return None
        settings = self._h3.received_settings
        return None if settings is None else dict(settings)

    def peer_offers(self, name: str) -> bool:
        settings = self.peer_settings() or {}
        return settings.get(self.lib.h3_settings[name]) == 1


_body_cache = b""


def cached_body(size: int) -> bytes:
    """:func:`generated_body` for ``GET /N``, cut from the largest body made so far."""
    global _body_cache
    if size > len(_body_cache):
        _body_cache = generated_body(size)
    return _body_cache if size == len(_body_cache) else _body_cache[:size]


def header_map(headers: Sequence[tuple[bytes, bytes]]) -> dict[bytes, bytes]:
    return {name: value for name, value in headers}


class H3Server(_H3Base):
    """``GET /N``, ``POST /echo``, extended CONNECT ``ping-pong`` and ``echo`` sessions."""

    role = "server"
    stats: ServerStats

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.posts: dict[int, bytearray] = {}
        self.sessions: dict[int, str] = {}
        self.waiting_for_settings: list[tuple[int, str]] = []

    def respond(self, stream_id: int, status: int, body: bytes = b"") -> None:
        headers = [(b":status", str(status).encode()), (b"content-length", str(len(body)).encode())]
        self._h3.send_headers(stream_id, headers, end_stream=not body)
        if body:
            self._h3.send_data(stream_id, body, end_stream=True)

    def handle(self, event: Any) -> None:
        super().handle(event)
        self.start_waiting_sessions()

    def handle_h3(self, event: Any) -> None:
        events = self.lib.h3_events
        if isinstance(event, events.HeadersReceived):
            self.request(event)
        elif isinstance(event, events.DataReceived):
            if event.stream_id in self.posts:
                self.posts[event.stream_id] += event.data
                if event.stream_ended:
                    body = bytes(self.posts.pop(event.stream_id))
                    self.stats.add("post_bytes", len(body))
                    self.respond(event.stream_id, 200, body)
            elif event.stream_id in self.sessions and event.stream_ended:
                del self.sessions[event.stream_id]
                self._h3.send_data(event.stream_id, b"", end_stream=True)
        elif isinstance(event, events.DatagramReceived):
            self.datagram(self.lib.h3_datagram_stream_id(event), event.data)

    def request(self, event: Any) -> None:
        headers = header_map(event.headers)
        method = headers.get(b":method", b"").decode()
        path = headers.get(b":path", b"").decode()
        protocol = headers.get(b":protocol", b"").decode()
        stream_id = event.stream_id
        self.stats.add(f"requests_{method}")
        if method == "CONNECT":
            if protocol not in (PINGPONG_PROTOCOL, ECHO_PROTOCOL):
                self.respond(stream_id, 501)
                return
            self.waiting_for_settings.append((stream_id, protocol))
            return
        if method == "POST" and path == "/echo":
            self.posts[stream_id] = bytearray()
            if event.stream_ended:
                self.posts.pop(stream_id)
                self.respond(stream_id, 200, b"")
            return
        if method in ("GET", "HEAD") and path[1:].isdigit():
            body = cached_body(int(path[1:]))
            self.stats.add("get_bytes", len(body))
            if method == "HEAD":
                self._h3.send_headers(
                    stream_id,
                    [(b":status", b"200"), (b"content-length", str(len(body)).encode())],
                    end_stream=True,
                )
            else:
                self.respond(stream_id, 200, body)
            return
        self.respond(stream_id, 404 if method in ("GET", "HEAD", "POST") else 405, b"")

    def start_waiting_sessions(self) -> None:
        # a session may only use HTTP datagrams once the client's SETTINGS offered them
        if not self.waiting_for_settings or self.peer_settings() is None:
            return
        waiting, self.waiting_for_settings = self.waiting_for_settings, []
        for stream_id, protocol in waiting:
            if not self.peer_offers("H3_DATAGRAM"):
                self.respond(stream_id, 400, b"")
                continue
            self.sessions[stream_id] = protocol
            self.stats.add(f"sessions_{protocol}")
            self._h3.send_headers(stream_id, [(b":status", b"200")], end_stream=False)

    def datagram(self, stream_id: int, data: bytes) -> None:
        protocol = self.sessions.get(stream_id)
        if protocol is None:
            self.stats.add("datagrams_dropped")
            return
        self.stats.add("datagrams")
        if protocol == ECHO_PROTOCOL:
            self.lib.h3_send_datagram(self._h3, stream_id, data)
        elif data.isdigit():
            self.lib.h3_send_datagram(self._h3, stream_id, str(int(data) + 1).encode())


class H3Client(_H3Base):
    """Requests fed into per-stream sinks; HTTP datagrams to the sink of their stream."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sinks: dict[int, Sink] = {}
        self.settings_received: asyncio.Event = asyncio.Event()

    def send_request(
        self, headers: list[tuple[bytes, bytes]], body: bytes | None, *, end: bool = True
    ) -> tuple[int, Sink]:
        stream_id = self._quic.get_next_available_stream_id()
        sink = self.sinks[stream_id] = Sink(asyncio.get_running_loop())
        self._h3.send_headers(stream_id, headers, end_stream=end and not body)
        if body:
            self._h3.send_data(stream_id, body, end_stream=end)
        self.transmit()  # type: ignore[attr-defined]
        return stream_id, sink

    def handle(self, event: Any) -> None:
        super().handle(event)
        if not self.settings_received.is_set() and self.peer_settings() is not None:
            self.settings_received.set()
        if isinstance(event, self.lib.quic_events.StreamReset):
            sink = self.sinks.get(event.stream_id)
            if sink is not None:
                sink.fail(ConnectionError(f"stream reset, error code {event.error_code}"))

    def handle_h3(self, event: Any) -> None:
        events = self.lib.h3_events
        if isinstance(event, events.HeadersReceived):
            sink = self.sinks.get(event.stream_id)
            if sink is not None:
                if not sink.headers.done():
                    sink.headers.set_result(list(event.headers))
                if event.stream_ended:
                    sink.feed(b"", True)
        elif isinstance(event, events.DataReceived):
            sink = self.sinks.get(event.stream_id)
            if sink is not None:
                sink.feed(event.data, event.stream_ended)
        elif isinstance(event, events.DatagramReceived):
            sink = self.sinks.get(self.lib.h3_datagram_stream_id(event))
            if sink is not None:
                sink.datagrams.put_nowait(event.data)

    def connection_terminated(self, event: Any) -> None:
        error = ConnectionError(f"connection closed: {event.error_code} {event.reason_phrase}")
        for sink in self.sinks.values():
            sink.fail(error)
        self.settings_received.set()
