"""The zttp-style sans-IO façade: one object for a whole HTTP/3 connection (QUIC included).

h11's shape, over UDP::

    conn = trio_zttp.Connection(trio_zttp.SERVER, protocol=trio_zttp.HTTP3, configuration=cfg)
    conn.receive_datagram(udp_payload, addr=peer, now=now)
    while (event := conn.next_event()) is not trio_zttp.NEED_DATA:
        if isinstance(event, trio_zttp.Request):
            conn.send_response(event.stream_id, 200, [("content-type", "text/plain")])
            conn.send_data(event.stream_id, b"hello", end_stream=True)
    for datagram, addr in conn.datagrams_to_send(now):
        sock.sendto(datagram, addr)

It wraps a ``quic.Connection`` and an :class:`trio_zttp.h3.Connection`. Pseudo-header fields
are collapsed into attributes (``Request.method``, ``.path``, ``.authority``, ``.scheme``;
``Response.status_code``), every event carries the QUIC ``stream_id``, and
``http_version`` is always ``b"3"``. HTTP/3 events with no zttp equivalent (datagrams,
capsules, SETTINGS, GOAWAY, stream resets, the connection's end) come out of
:meth:`Connection.next_event` unchanged, as :mod:`trio_zttp.h3` events.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, Final, Literal, Protocol, TypeAlias, cast, final

import attrs

from . import _defaults, quic
from .h3 import (
    DEFAULT_SETTINGS,
    DataReceived,
    ErrorCode,
    HeadersReceived,
    Settings,
    StateError,
    TrailersReceived,
    build_request_headers,
    build_response_headers,
)
from .h3 import Connection as H3Connection
from .h3 import Event as H3Event
from .h3._headers import normalize_headers
from .h3._quic import QuicTransport
from .quic._config import Configuration

__all__ = [
    "CLIENT",
    "HTTP3",
    "NEED_DATA",
    "SERVER",
    "Connection",
    "Data",
    "EndOfMessage",
    "InformationalResponse",
    "Request",
    "Response",
    "Role",
    "WireProtocol",
]

Address: TypeAlias = Any
FieldInput: TypeAlias = Iterable[tuple[str | bytes, str | bytes]]


class Role(enum.Enum):
    """Which end of the connection we are."""

    CLIENT = "client"
    SERVER = "server"


class WireProtocol(enum.Enum):
    """The HTTP version spoken; only HTTP/3 here."""

    HTTP3 = "HTTP/3"


class _NeedData(enum.Enum):
    NEED_DATA = "NEED_DATA"

    def __repr__(self) -> str:
        return "NEED_DATA"


#: We are the client.
CLIENT: Final = Role.CLIENT
#: We are the server.
SERVER: Final = Role.SERVER
#: HTTP/3 over QUIC.
HTTP3: Final = WireProtocol.HTTP3
#: Returned by :meth:`Connection.next_event` when nothing can happen until more data arrives.
NEED_DATA: Final = _NeedData.NEED_DATA

Headers: TypeAlias = list[tuple[bytes, bytes]]


@final
@attrs.frozen(kw_only=True)
class Request:
    """A request's header section (server side)."""

    #: ``:method``, e.g. ``b"GET"``.
    method: bytes
    #: ``:path``; None for a plain CONNECT.
    path: bytes | None
    #: ``:authority`` (or the Host field).
    authority: bytes | None
    #: ``:scheme``; None for a plain CONNECT.
    scheme: bytes | None
    #: The regular fields, in order.
    headers: Headers
    #: The request stream.
    stream_id: int
    #: Always ``b"3"``.
    http_version: bytes = b"3"
    #: ``:protocol`` of an extended CONNECT (RFC 9220), else None.
    protocol: bytes | None = None


@final
@attrs.frozen(kw_only=True)
class InformationalResponse:
    """An interim (1xx) response (client side); the final :class:`Response` follows."""

    #: The 1xx status.
    status_code: int
    #: The regular fields, in order.
    headers: Headers
    #: The request stream.
    stream_id: int
    #: Always ``b"3"``.
    http_version: bytes = b"3"


@final
@attrs.frozen(kw_only=True)
class Response:
    """A final response's header section (client side)."""

    #: The status code, 200..999.
    status_code: int
    #: The regular fields, in order.
    headers: Headers
    #: The request stream.
    stream_id: int
    #: Always ``b"3"``.
    http_version: bytes = b"3"


@final
@attrs.frozen(kw_only=True)
class Data:
    """A piece of message content (or CONNECT tunnel data)."""

    #: The bytes.
    data: bytes
    #: The request stream.
    stream_id: int


@final
@attrs.frozen(kw_only=True)
class EndOfMessage:
    """The message on this stream is complete."""

    #: The request stream.
    stream_id: int
    #: The trailer fields, if any.
    headers: Headers = attrs.field(factory=list)


ZttpEvent: TypeAlias = Request | InformationalResponse | Response | Data | EndOfMessage


class _QuicConnection(QuicTransport, Protocol):
    """What the façade drives: the h3 transport commands plus the sans-IO pull API."""

    def receive_datagram(self, data: bytes, addr: Address, now: float) -> None: ...

    def datagrams_to_send(self, now: float) -> Iterable[tuple[bytes, Address]]: ...

    def get_timer(self) -> float | None: ...

    def handle_timer(self, now: float) -> None: ...

    def next_event(self) -> object | None: ...

    def connect(self, addr: Address, now: float) -> None: ...


QuicFactory: TypeAlias = Callable[[bytes, Address], Any]


def _our_quic_connection(configuration: Configuration) -> Any:
    """``trio_zttp.quic.Connection(configuration)``."""
    return quic.Connection(configuration)


def _split(fields: list[tuple[bytes, bytes]]) -> tuple[dict[bytes, bytes], Headers]:
    pseudo: dict[bytes, bytes] = {}
    regular: Headers = []
    for name, value in fields:
        if name[:1] == b":":
            pseudo[name] = value
        else:
            regular.append((name, value))
    return pseudo, regular


@final
class Connection:
    """An HTTP/3 connection as one sans-IO object: datagrams in, events out.

    Args:
        our_role: :data:`CLIENT` or :data:`SERVER`.
        protocol: :data:`HTTP3` (the only one).
        configuration: The ``quic.Configuration``; its ``is_client`` must match the role.
            With ``max_datagram_frame_size`` set, SETTINGS_H3_DATAGRAM=1 is offered.
        settings: The HTTP/3 settings to announce (default: h3's defaults, plus
            ``h3_datagram`` as above).

    A server connection is created before its first datagram and makes its QUIC connection
    from that datagram.
    """

    __slots__ = (
        "_configuration",
        "_events",
        "_h3",
        "_quic",
        "_quic_factory",
        "_role",
        "_settings",
    )

    def __init__(
        self,
        our_role: Role,
        *,
        protocol: WireProtocol = HTTP3,
        configuration: Configuration | None = None,
        settings: Settings | None = None,
        _quic: Any = None,
    ) -> None:
        if not isinstance(our_role, Role):
            raise TypeError("our_role must be trio_zttp.CLIENT or trio_zttp.SERVER")
        if protocol is not HTTP3:
            raise ValueError("only trio_zttp.HTTP3 is supported")
        if configuration is not None and configuration.is_client != (our_role is CLIENT):
            raise ValueError("configuration.is_client does not match the role")
        if configuration is None and _quic is None:
            raise ValueError("a configuration is required")
        if settings is None:
            datagrams = configuration is not None and bool(
                configuration.max_datagram_frame_size
            )
            settings = attrs.evolve(DEFAULT_SETTINGS, h3_datagram=datagrams)
        self._role = our_role
        self._configuration = configuration
        self._settings = settings
        self._events: deque[ZttpEvent | H3Event] = deque()
        self._quic: _QuicConnection | None = None
        self._h3: H3Connection | None = None
        self._quic_factory: QuicFactory | None = None
        if _quic is not None and not hasattr(_quic, "receive_datagram"):
            self._quic_factory = _quic  # a server factory: (first datagram, source) -> QUIC
        elif _quic is not None:
            self._start(_quic)
        elif our_role is CLIENT:
            assert configuration is not None
            self._start(_our_quic_connection(configuration))

    def _start(self, quic: _QuicConnection) -> None:
        self._quic = quic
        configuration = self._configuration
        random_bytes = (
            configuration.random_bytes if configuration is not None else _defaults.random_bytes
        )
        self._h3 = H3Connection(
            quic,
            is_client=self._role is CLIENT,
            settings=self._settings,
            random_bytes=random_bytes,
        )

    # ------------------------------------------------------------------ state

    @property
    def our_role(self) -> Role:
        """:data:`CLIENT` or :data:`SERVER`."""
        return self._role

    @property
    def h3(self) -> H3Connection:
        """The HTTP/3 connection underneath, for what the façade does not cover.

        Raises:
            StateError: a server before its first datagram.
        """
        if self._h3 is None:
            raise StateError("no connection before the first datagram")
        return self._h3

    @property
    def quic(self) -> Any:
        """The QUIC connection underneath (None for a server before its first datagram)."""
        return self._quic

    # ---------------------------------------------------------------- driving

    def connect(self, addr: Address, now: float) -> None:
        """Start the handshake (client)."""
        if self._role is not CLIENT or self._quic is None:
            raise StateError("only a client connects")
        self._quic.connect(addr, now)

    def receive_datagram(
        self, udp_payload: bytes, addr: Address, now: float, *, ecn: int = 0
    ) -> None:
        """Feed one UDP payload from ``addr`` received at ``now``.

        ``ecn`` is the IP header's ECN codepoint (0-3) when the socket can read it
        (``IP_RECVTOS``); see :attr:`ecn_codepoint` for the sending side.
        """
        quic = self._quic
        if quic is None:
            if self._quic_factory is not None:
                quic = self._quic_factory(bytes(udp_payload), addr)
            else:
                assert self._configuration is not None
                quic = _our_quic_connection(self._configuration)
            assert quic is not None
            self._start(quic)
        if ecn:  # only ECN-aware engines (ours) take the keyword
            cast(Any, quic).receive_datagram(udp_payload, addr, now, ecn=ecn)
        else:
            quic.receive_datagram(udp_payload, addr, now)
        self._pump()

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Address]]:
        """The UDP payloads to send now, with their destinations."""
        if self._quic is None:
            return []
        return list(self._quic.datagrams_to_send(now))

    @property
    def ecn_codepoint(self) -> int:
        """The ECN codepoint to send the last :meth:`datagrams_to_send` batch with (2 =
        ECT(0) while ECN is tested or validated, 0 = unmarked); 0 for engines without ECN."""
        value = getattr(self._quic, "ecn_codepoint", 0)
        return value if isinstance(value, int) else 0

    def get_timer(self) -> float | None:
        """When :meth:`handle_timer` must be called next (None: no timer)."""
        return None if self._quic is None else self._quic.get_timer()

    def handle_timer(self, now: float) -> None:
        """Run the timers due at ``now``."""
        if self._quic is not None:
            self._quic.handle_timer(now)
            self._pump()

    def next_event(self) -> ZttpEvent | H3Event | Literal[_NeedData.NEED_DATA]:
        """The next event, or :data:`NEED_DATA` until more datagrams (or a timer) arrive."""
        events = self._events
        if not events:
            self._pump()  # queued events came before anything not yet pumped
            if not events:
                return NEED_DATA
        return events.popleft()

    def _pump(self) -> None:
        quic, conn = self._quic, self._h3
        if quic is None or conn is None:
            return
        quic_next, receive = quic.next_event, conn.receive_quic_event
        while (quic_event := quic_next()) is not None:
            receive(quic_event)
        h3_next, translate = conn.next_event, self._translate
        while (event := h3_next()) is not None:
            translate(event)

    def _translate(self, event: H3Event) -> None:
        out = self._events
        kind = type(event)
        if kind is DataReceived:
            assert isinstance(event, DataReceived)
            stream_id = event.stream_id
            if event.data:
                out.append(Data(data=event.data, stream_id=stream_id))
            if event.end_stream:
                out.append(EndOfMessage(stream_id=stream_id))
        elif kind is HeadersReceived:
            assert isinstance(event, HeadersReceived)
            stream_id = event.stream_id
            pseudo, regular = _split(event.headers)
            if self._role is SERVER:
                authority = pseudo.get(b":authority")
                if authority is None:
                    authority = _host(regular)
                out.append(Request(
                    method=pseudo[b":method"],
                    path=pseudo.get(b":path"),
                    authority=authority,
                    scheme=pseudo.get(b":scheme"),
                    headers=regular,
                    stream_id=stream_id,
                    protocol=pseudo.get(b":protocol"),
                ))
            elif event.interim:
                out.append(InformationalResponse(
                    status_code=int(pseudo[b":status"]), headers=regular, stream_id=stream_id
                ))
            else:
                out.append(Response(
                    status_code=int(pseudo[b":status"]), headers=regular, stream_id=stream_id
                ))
            if event.end_stream:
                out.append(EndOfMessage(stream_id=stream_id))
        elif kind is TrailersReceived:
            assert isinstance(event, TrailersReceived)
            out.append(EndOfMessage(stream_id=event.stream_id, headers=event.headers))
        else:
            out.append(event)

    # --------------------------------------------------------------- commands

    def send_request(
        self,
        method: str | bytes,
        path: str | bytes | None = None,
        *,
        authority: str | bytes | None = None,
        scheme: str | bytes | None = None,
        headers: FieldInput = (),
        protocol: str | bytes | None = None,
        end_stream: bool = False,
    ) -> int:
        """Send a request's header section on a new stream (client); returns its stream ID.

        ``end_stream=True`` for a request without content (GET); otherwise follow with
        :meth:`send_data` and :meth:`send_end_of_message`.
        """
        conn = self.h3
        fields = build_request_headers(
            method, path, authority=authority, scheme=scheme, protocol=protocol, headers=headers
        )
        stream_id = conn.get_next_request_stream_id()
        conn.send_headers(stream_id, fields, end_stream=end_stream)
        return stream_id

    def send_response(
        self,
        stream_id: int,
        status_code: int,
        headers: FieldInput = (),
        *,
        end_stream: bool = False,
    ) -> None:
        """Send a response's header section (server); 1xx statuses are interim."""
        self.h3.send_headers(
            stream_id, build_response_headers(status_code, headers), end_stream=end_stream
        )

    def send_data(self, stream_id: int, data: bytes, *, end_stream: bool = False) -> None:
        """Send content on the stream (``end_stream`` ends the message)."""
        self.h3.send_data(stream_id, data, end_stream=end_stream)

    def send_end_of_message(self, stream_id: int, headers: FieldInput = ()) -> None:
        """End the message, with trailer fields if ``headers`` is not empty."""
        fields = normalize_headers(headers)
        if fields:
            self.h3.send_trailers(stream_id, fields)
        else:
            self.h3.send_data(stream_id, b"", end_stream=True)

    def close(self, error_code: int = ErrorCode.H3_NO_ERROR, reason_phrase: str = "") -> None:
        """Close the connection."""
        if self._h3 is not None:
            self._h3.close(error_code, reason_phrase)
            self._pump()


def _host(regular: Headers) -> bytes | None:
    for name, value in regular:
        if name == b"host":
            return value
    return None
