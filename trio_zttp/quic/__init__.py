"""Sans-IO QUIC (RFC 9000, 9001, 9002, 9221, 9369): bytes and ``now`` in, events and bytes out.

The public names are re-exported here from private modules; import the namespace
(``from trio_zttp import quic``) and use ``quic.Connection``, ``quic.Configuration`` ...
"""

from ._errors import QuicError as QuicError
from ._errors import StreamStateError as StreamStateError
from ._errors import TransportErrorCode as TransportErrorCode

__all__ = [
    "QuicError",
    "StreamStateError",
    "TransportErrorCode",
]
