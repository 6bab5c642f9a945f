"""The small types around :class:`~trio_zttp.QuicConnection`: its statistics, the record of
how it ended, and what it needs from its endpoint."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final, Protocol, final

import attrs
import trio
from cryptography import x509

from ._engine import Address, Engine
from .errors import ConnectionClosedError

if TYPE_CHECKING:
    from .connection import QuicConnection

__all__ = ["DATAGRAM_QUEUE_SIZE", "QuicConnectionStatistics", "unpark"]

DATAGRAM_QUEUE_SIZE: Final = 128
"""Received DATAGRAM frames kept until :meth:`QuicConnection.receive_datagram` takes them."""


def _peer_certificate(engine: Engine) -> x509.Certificate | None:
    certificate = getattr(engine, "peer_certificate", None)
    if certificate is not None:
        return certificate  # type: ignore[no-any-return]
    chain = getattr(engine, "peer_certificate_chain", ())
    return chain[0] if chain else None


class _EndpointLink(Protocol):
    """What a connection needs from its endpoint (implemented by ``QuicEndpoint``)."""

    #: Connections whose queue became half full (the endpoint waits for their drivers).
    _crowded: list[QuicConnection]
    #: Connections that got datagrams in the batch being routed while their driver was
    #: parked (the receive task runs their step after the batch).
    _touched: list[QuicConnection]
    #: Every connection the endpoint carries.
    _connections: set[QuicConnection]

    @property
    def local_address(self) -> Address: ...

    async def rebind(self, local_address: tuple[str, int] | None = None) -> Address: ...

    async def _send_datagrams(
        self, datagrams: list[tuple[bytes, Address]], ecn: int = 0
    ) -> None: ...

    def _send_now(self, datagrams: list[tuple[bytes, Address]], ecn: int = 0) -> int: ...

    def _add_route(self, cid: bytes, connection: QuicConnection) -> None: ...

    def _remove_route(self, cid: bytes, connection: QuicConnection) -> None: ...

    def _on_handshake_complete(self, connection: QuicConnection) -> None: ...

    def _on_path_changed(self, connection: QuicConnection, old: Address, new: Address) -> None:
        ...

    def _on_connection_finished(self, connection: QuicConnection) -> None: ...


@final
@attrs.frozen(kw_only=True)
class QuicConnectionStatistics:
    """Counters of one connection (the trio side), plus the engine's own statistics."""

    #: UDP datagrams handed to the engine.
    datagrams_received: int
    #: UDP datagrams dropped because the connection's queue was full.
    datagrams_dropped: int
    #: DATAGRAM frames received (RFC 9221).
    datagram_frames_received: int
    #: DATAGRAM frames dropped because nobody read them fast enough.
    datagram_frames_dropped: int
    #: Streams opened by us / by the peer.
    streams_opened: int
    streams_accepted: int
    #: Whatever ``engine.statistics()`` returns (RTT, congestion window, bytes in flight ...).
    transport: Any


@attrs.frozen
class _Closed:
    error_code: int
    reason: str
    by_peer: bool
    application: bool
    frame_type: int | None

    def exception(self, cause: BaseException | None) -> ConnectionClosedError:
        exc = ConnectionClosedError(
            error_code=self.error_code,
            reason=self.reason,
            by_peer=self.by_peer,
            application=self.application,
            frame_type=self.frame_type,
        )
        exc.__cause__ = cause
        return exc


def unpark(lot: trio.lowlevel.ParkingLot) -> bool:
    """Wake every task parked in ``lot``; whether there was any (a batch that woke a task
    leaves its flush to it, see ``connection.py``)."""
    if lot:
        lot.unpark_all()
        return True
    return False
