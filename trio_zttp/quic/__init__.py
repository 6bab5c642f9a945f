"""Sans-IO QUIC (RFC 9000, 9001, 9002, 9221, 9368, 9369): bytes and ``now`` in, events out.

The public names are re-exported here from private modules; import the namespace
(``from trio_zttp import quic``) and use ``quic.Connection``, ``quic.Configuration`` ...
"""

from ._address_tokens import AddressTokenHandler as AddressTokenHandler
from ._address_tokens import TokenHandler as TokenHandler
from ._cids import encode_stateless_reset as encode_stateless_reset
from ._config import Configuration as Configuration
from ._connection import Connection as Connection
from ._ecn import EcnState as EcnState
from ._errors import QuicError as QuicError
from ._errors import StreamStateError as StreamStateError
from ._errors import TransportErrorCode as TransportErrorCode
from ._events import ConnectionIdIssued as ConnectionIdIssued
from ._events import ConnectionIdRetired as ConnectionIdRetired
from ._events import ConnectionTerminated as ConnectionTerminated
from ._events import DatagramFrameReceived as DatagramFrameReceived
from ._events import Event as Event
from ._events import HandshakeCompleted as HandshakeCompleted
from ._events import NewTokenReceived as NewTokenReceived
from ._events import PathChanged as PathChanged
from ._events import PingAcknowledged as PingAcknowledged
from ._events import SessionTicketReceived as SessionTicketReceived
from ._events import StopSendingReceived as StopSendingReceived
from ._events import StreamDataReceived as StreamDataReceived
from ._events import StreamReset as StreamReset
from ._initial import ClientHelloAssembler as ClientHelloAssembler
from ._initial import ClientInitial as ClientInitial
from ._initial import InitialDecodeError as InitialDecodeError
from ._initial import decode_client_initial as decode_client_initial
from ._packet import QUIC_V1 as QUIC_V1
from ._packet import QUIC_V2 as QUIC_V2
from ._qlog import QlogTracer as QlogTracer
from ._statistics import ConnectionStatistics as ConnectionStatistics

__all__ = [
    "QUIC_V1",
    "QUIC_V2",
    "AddressTokenHandler",
    "ClientHelloAssembler",
    "ClientInitial",
    "Configuration",
    "Connection",
    "ConnectionIdIssued",
    "ConnectionIdRetired",
    "ConnectionStatistics",
    "ConnectionTerminated",
    "DatagramFrameReceived",
    "EcnState",
    "Event",
    "HandshakeCompleted",
    "InitialDecodeError",
    "NewTokenReceived",
    "PathChanged",
    "PingAcknowledged",
    "QlogTracer",
    "QuicError",
    "SessionTicketReceived",
    "StopSendingReceived",
    "StreamDataReceived",
    "StreamReset",
    "StreamStateError",
    "TokenHandler",
    "TransportErrorCode",
    "decode_client_initial",
    "encode_stateless_reset",
]
