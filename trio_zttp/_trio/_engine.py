"""The sans-IO contract the trio layer drives, written down as a Protocol.

:class:`trio_zttp.quic.Connection` implements it; tests may plug in another engine
through ``connection_factory`` (for instance aioquic's sans-IO connection behind an
adapter).  Every call here is synchronous and takes ``now`` from the driver, which is
always :func:`trio.current_time`.
"""

from __future__ import annotations

from typing import Any, Protocol, TypeAlias

from ..quic._config import Configuration
from ..quic._events import Event

__all__ = ["Address", "ConnectionFactory", "EcnEngine", "Engine", "default_connection_factory"]

Address: TypeAlias = tuple[str, int]
"""A peer address as the trio layer passes it to the engine: ``(host, port)``."""


class Engine(Protocol):
    """One QUIC connection, sans-IO (the subset of ``quic.Connection`` the trio layer uses)."""

    @property
    def local_connection_id(self) -> bytes:
        """The first connection ID this side chose (routes the first packets here)."""
        ...

    def connect(self, addr: Address, now: float) -> None: ...

    def receive_datagram(self, data: bytes, addr: Address, now: float) -> None: ...

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Address]]: ...

    def get_timer(self) -> float | None: ...

    def handle_timer(self, now: float) -> None: ...

    def next_event(self) -> Event | None: ...

    def get_next_available_stream_id(self, is_unidirectional: bool = False) -> int: ...

    def send_stream_data(self, stream_id: int, data: bytes, end_stream: bool = False) -> None:
        ...

    def reset_stream(self, stream_id: int, error_code: int) -> None: ...

    def stop_sending(self, stream_id: int, error_code: int) -> None: ...

    def send_datagram_frame(self, data: bytes) -> None: ...

    def close(self, error_code: int = 0, reason_phrase: str = "") -> None: ...

    def statistics(self) -> Any: ...

    def request_key_update(self) -> None: ...

    def change_connection_id(self) -> None: ...

    def migrate(self, *, dry_run: bool = False) -> None:
        """Client: the next datagrams leave from a new local address (RFC 9000 §9);
        ``dry_run``: only raise if that is not possible now."""
        ...

    def stream_send_capacity(self, stream_id: int) -> int:
        """Bytes ``send_stream_data`` can take now without buffering past the peer's credit."""
        ...

    def consume_stream_data(self, stream_id: int, n: int) -> None:
        """The application read ``n`` bytes: the engine may now extend flow-control credit."""
        ...


class EcnEngine(Engine, Protocol):
    """An engine that takes and chooses ECN codepoints (``quic.Connection`` does).

    The trio layer treats an engine whose ``ecn_codepoint`` is not None as one: it passes each
    datagram's codepoint, when the socket reports one, as ``receive_datagram(..., ecn=...)``
    and sends each batch from ``datagrams_to_send`` with ``ecn_codepoint`` read right after.
    """

    @property
    def ecn_codepoint(self) -> int:
        """The IP ECN codepoint for the batch the last ``datagrams_to_send`` returned."""
        ...

    def receive_datagram(
        self, data: bytes, addr: Address, now: float, *, ecn: int = 0
    ) -> None: ...


class ConnectionFactory(Protocol):
    """Builds an :class:`Engine`: ``quic.Connection`` itself has this signature."""

    def __call__(
        self,
        configuration: Configuration,
        *,
        original_destination_connection_id: bytes | None = None,
        retry_source_connection_id: bytes | None = None,
    ) -> Engine: ...


def default_connection_factory() -> ConnectionFactory:
    """:class:`trio_zttp.quic.Connection`."""
    from ..quic._connection import Connection

    return Connection
