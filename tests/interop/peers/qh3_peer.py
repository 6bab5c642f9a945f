"""qh3 interop peer: raw QUIC echo and HTTP/3 roles over loopback UDP.

Usage (``--help`` lists every flag; ``tests/interop/README.md`` has the contract)::

    python qh3_peer.py server --mode h3 --cert cert.pem --key key.pem --port 0
    python qh3_peer.py client --mode h3 --cafile ca.pem --url https://127.0.0.1:PORT/1000

qh3's quirks handled here: its server does not advertise SETTINGS_ENABLE_CONNECT_PROTOCOL, so
the H3 connection adds it (extended CONNECT, RFC 9220); it always advertises H3_DATAGRAM, which
is withdrawn when DATAGRAM frames are off; its ``send_datagram`` and ``DatagramReceived`` use
the quarter stream id ("flow id"). Its verifier refuses a CA used directly as the server
certificate: serve a leaf issued by the CA.
"""

from __future__ import annotations

from typing import Any

import qh3
from _peer_core import Library
from _peer_roles import main
from qh3.asyncio import QuicConnectionProtocol, connect, serve
from qh3.h3 import events as h3_events
from qh3.h3.connection import H3_ALPN, H3Connection, Setting
from qh3.quic import events as quic_events
from qh3.quic.configuration import QuicConfiguration
from qh3.quic.logger import QuicFileLogger


class PeerH3Connection(H3Connection):  # type: ignore[misc]
    """Offers extended CONNECT (server) and H3_DATAGRAM only with DATAGRAM frames on."""

    def _get_local_settings(self) -> dict[int, int]:
        settings: dict[int, int] = super()._get_local_settings()
        if not self._is_client:
            settings[Setting.ENABLE_CONNECT_PROTOCOL] = 1
        if not self._quic.configuration.max_datagram_frame_size:
            settings.pop(Setting.H3_DATAGRAM, None)
        return settings


def _send_datagram(h3: Any, stream_id: int, data: bytes) -> None:
    h3.send_datagram(stream_id // 4, data)  # qh3: the quarter stream id


LIBRARY = Library(
    name="qh3",
    version=qh3.__version__,
    configuration=QuicConfiguration,
    protocol_base=QuicConnectionProtocol,
    connect=connect,
    serve=serve,
    file_logger=QuicFileLogger,
    quic_events=quic_events,
    h3_events=h3_events,
    h3_connection=PeerH3Connection,
    h3_send_datagram=_send_datagram,
    h3_datagram_stream_id=lambda event: event.flow_id * 4,
    h3_alpn=tuple(H3_ALPN),
)

if __name__ == "__main__":
    main(LIBRARY)
