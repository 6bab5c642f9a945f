"""Exceptions the trio layer raises when a peer or the network ends a stream or connection.

All three subclass :class:`trio.BrokenResourceError`, so code written against plain trio
streams treats them as a broken stream; each carries the wire details.
"""

from __future__ import annotations

from typing import final

import trio

__all__ = ["ConnectionClosedError", "StreamResetError", "StreamStoppedError"]


@final
class StreamResetError(trio.BrokenResourceError):
    """The peer reset its sending side of the stream (RESET_STREAM).

    Attributes:
        stream_id: The QUIC stream ID.
        error_code: The application error code the peer gave.
        reason: Always empty (RESET_STREAM carries no reason); present for symmetry.
        by_peer: Always True.
    """

    def __init__(self, *, stream_id: int, error_code: int) -> None:
        super().__init__(f"stream {stream_id} reset by peer with error code {error_code:#x}")
        self.stream_id = stream_id
        self.error_code = error_code
        self.reason = ""
        self.by_peer = True


@final
class StreamStoppedError(trio.BrokenResourceError):
    """The peer asked us to stop sending on the stream (STOP_SENDING).

    Attributes:
        stream_id: The QUIC stream ID.
        error_code: The application error code the peer gave.
        reason: Always empty (STOP_SENDING carries no reason); present for symmetry.
        by_peer: Always True.
    """

    def __init__(self, *, stream_id: int, error_code: int) -> None:
        super().__init__(f"stream {stream_id} stopped by peer with error code {error_code:#x}")
        self.stream_id = stream_id
        self.error_code = error_code
        self.reason = ""
        self.by_peer = True


@final
class ConnectionClosedError(trio.BrokenResourceError):
    """The connection is gone: closed by the peer, timed out, reset, or closed by us.

    Raised by every pending and later call on the connection's streams and by the
    connection's own methods once the peer (or the network) ended it.

    Attributes:
        error_code: The transport or application error code of the CONNECTION_CLOSE.
        reason: Its reason phrase.
        by_peer: True when the peer closed the connection, or it timed out or was reset;
            False when this side closed it (including protocol errors it detected).
        application: True for an application error code (CONNECTION_CLOSE type 0x1d).
        frame_type: The frame type that triggered a transport error, if any.
    """

    def __init__(
        self,
        *,
        error_code: int,
        reason: str,
        by_peer: bool,
        application: bool = False,
        frame_type: int | None = None,
    ) -> None:
        who = "peer" if by_peer else "us"
        kind = "application" if application else "transport"
        text = f"connection closed by {who} ({kind} error code {error_code:#x})"
        if reason:
            text += f": {reason}"
        super().__init__(text)
        self.error_code = error_code
        self.reason = reason
        self.by_peer = by_peer
        self.application = application
        self.frame_type = frame_type
