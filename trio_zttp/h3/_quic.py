"""The narrow view of a QUIC connection that :class:`~trio_zttp.h3.Connection` needs.

HTTP/3 uses its QUIC connection through these commands only, so anything that has them can
carry it: ``trio_zttp.quic.Connection``, or another sans-IO QUIC stack behind a small adapter
(the tests drive aioquic's ``QuicConnection`` that way). Events flow the other way: the
driver feeds the QUIC connection's events (``trio_zttp.quic`` event classes) to
``h3.Connection.receive_quic_event``.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

__all__ = ["QuicTransport"]


@runtime_checkable
class QuicTransport(Protocol):
    """The QUIC commands HTTP/3 issues (RFC 9114 §3-§6 need nothing more)."""

    def get_next_available_stream_id(self, is_unidirectional: bool = False) -> int:
        """The ID the next locally opened stream of this direction will have.

        The stream comes into existence with the first ``send_stream_data`` on it.
        """
        ...

    def send_stream_data(self, stream_id: int, data: bytes, end_stream: bool = False) -> None:
        """Queue ``data`` on a stream; ``end_stream`` sends FIN after it."""
        ...

    def reset_stream(self, stream_id: int, error_code: int) -> None:
        """Abort the sending side of a stream (RESET_STREAM); a no-op once it is finished."""
        ...

    def stop_sending(self, stream_id: int, error_code: int) -> None:
        """Ask the peer to stop sending on a stream (STOP_SENDING)."""
        ...

    def send_datagram_frame(self, data: bytes) -> None:
        """Queue one unreliable DATAGRAM frame (RFC 9221)."""
        ...

    def close(self, error_code: int, reason_phrase: str = "") -> None:
        """Close the connection with an application error code (CONNECTION_CLOSE 0x1d)."""
        ...

    @property
    def remote_max_datagram_frame_size(self) -> int | None:
        """The peer's max_datagram_frame_size transport parameter (None: not sent, or not
        known yet); 0 or None means the peer takes no DATAGRAM frames."""
        ...
