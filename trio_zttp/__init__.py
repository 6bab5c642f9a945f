"""trio_zttp: a trio-native QUIC and HTTP/3 toolkit with a sans-IO core.

Sans-IO namespaces: :mod:`trio_zttp.quic` (more to come: ``qpack``, ``h3``).
"""

from . import h3 as h3
from . import quic as quic

# -- trio layer: QUIC endpoints, connections, streams (owned by the trio layer) ---------------
from ._trio.connection import QuicConnection as QuicConnection
from ._trio.connection import QuicConnectionStatistics as QuicConnectionStatistics
from ._trio.endpoint import QuicEndpoint as QuicEndpoint
from ._trio.endpoint import QuicEndpointStatistics as QuicEndpointStatistics
from ._trio.endpoint import open_quic_connection as open_quic_connection
from ._trio.endpoint import open_quic_endpoint as open_quic_endpoint
from ._trio.endpoint import serve_quic as serve_quic
from ._trio.errors import ConnectionClosedError as ConnectionClosedError
from ._trio.errors import StreamResetError as StreamResetError
from ._trio.errors import StreamStoppedError as StreamStoppedError
from ._trio.stream import QuicReceiveStream as QuicReceiveStream
from ._trio.stream import QuicSendStream as QuicSendStream
from ._trio.stream import QuicStream as QuicStream

# -- end trio-layer imports -------------------------------------------------------------------
from ._version import __version__ as __version__

_TRIO_LAYER = [
    "ConnectionClosedError",
    "QuicConnection",
    "QuicConnectionStatistics",
    "QuicEndpoint",
    "QuicEndpointStatistics",
    "QuicReceiveStream",
    "QuicSendStream",
    "QuicStream",
    "StreamResetError",
    "StreamStoppedError",
    "open_quic_connection",
    "open_quic_endpoint",
    "serve_quic",
]
# -- end trio layer ---------------------------------------------------------------------------

__all__ = ["__version__", "h3", "quic", *_TRIO_LAYER]
