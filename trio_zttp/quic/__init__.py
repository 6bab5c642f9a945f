"""Sans-IO QUIC (RFC 9000, 9001, 9002, 9221, 9369): bytes and ``now`` in, events and bytes out.

The public names are re-exported here from private modules; import the namespace
(``from trio_zttp import quic``) and use ``quic.Connection``, ``quic.Configuration`` ...
"""

from ._errors import QuicError as QuicError
from ._errors import StreamStateError as StreamStateError
from ._errors import TransportErrorCode as TransportErrorCode
from ._initial import ClientHelloAssembler as ClientHelloAssembler
from ._initial import ClientInitial as ClientInitial
from ._initial import InitialDecodeError as InitialDecodeError
from ._initial import decode_client_initial as decode_client_initial
from ._packet import QUIC_V1 as QUIC_V1
from ._packet import QUIC_V2 as QUIC_V2

__all__ = [
    "QUIC_V1",
    "QUIC_V2",
    "ClientHelloAssembler",
    "ClientInitial",
    "InitialDecodeError",
    "decode_client_initial",
    "QuicError",
    "StreamStateError",
    "TransportErrorCode",
]
