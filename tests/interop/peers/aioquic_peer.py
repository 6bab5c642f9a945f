"""aioquic interop peer: raw QUIC echo and HTTP/3 roles over loopback UDP.

Usage (``--help`` lists every flag; ``tests/interop/README.md`` has the contract)::

    python aioquic_peer.py server --mode h3 --cert cert.pem --key key.pem --port 0
    python aioquic_peer.py client --mode h3 --cafile ca.pem --url https://127.0.0.1:PORT/1000

aioquic's quirks handled here: it advertises SETTINGS_H3_DATAGRAM only with WebTransport on,
so the H3 connection overrides its local settings to offer HTTP datagrams alone; its
``send_datagram`` takes the full request stream id.
"""

from __future__ import annotations

from typing import Any

import aioquic
from _peer_core import Library
from _peer_roles import main
from aioquic.asyncio import QuicConnectionProtocol, connect, serve
from aioquic.h3 import events as h3_events
from aioquic.h3.connection import H3_ALPN, H3Connection, Setting
from aioquic.quic import events as quic_events
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.logger import QuicFileLogger


class PeerH3Connection(H3Connection):  # type: ignore[misc]
    """Offers H3_DATAGRAM whenever DATAGRAM frames are on (RFC 9297 §2.1.1), no WebTransport."""

    def _get_local_settings(self) -> dict[int, int]:
        settings: dict[int, int] = super()._get_local_settings()
        if self._quic.configuration.max_datagram_frame_size:
            settings[Setting.H3_DATAGRAM] = 1
        return settings


def _send_datagram(h3: Any, stream_id: int, data: bytes) -> None:
    h3.send_datagram(stream_id, data)  # aioquic: the full stream id


LIBRARY = Library(
    name="aioquic",
    version=aioquic.__version__,
    configuration=QuicConfiguration,
    protocol_base=QuicConnectionProtocol,
    connect=connect,
    serve=serve,
    file_logger=QuicFileLogger,
    quic_events=quic_events,
    h3_events=h3_events,
    h3_connection=PeerH3Connection,
    h3_send_datagram=_send_datagram,
    h3_datagram_stream_id=lambda event: event.stream_id,
    h3_alpn=tuple(H3_ALPN),
)

if __name__ == "__main__":
    main(LIBRARY)
