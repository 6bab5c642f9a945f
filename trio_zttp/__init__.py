"""trio_zttp: a trio-native QUIC and HTTP/3 toolkit with a sans-IO core.

Sans-IO namespaces: :mod:`trio_zttp.quic` (more to come: ``qpack``, ``h3``).
"""

from . import h3 as h3
from . import qpack as qpack
from . import quic as quic
from ._version import __version__ as __version__

# isort: split
# the zttp-style sans-IO façade (h3 connection helper's block)
from ._zttp import CLIENT as CLIENT
from ._zttp import HTTP3 as HTTP3
from ._zttp import NEED_DATA as NEED_DATA
from ._zttp import SERVER as SERVER
from ._zttp import Connection as Connection
from ._zttp import Data as Data
from ._zttp import EndOfMessage as EndOfMessage
from ._zttp import InformationalResponse as InformationalResponse
from ._zttp import Request as Request
from ._zttp import Response as Response

# isort: split
# the trio layer: QUIC endpoints, connections, streams (trio layer's block)
from ._trio.connection import QuicConnection as QuicConnection
from ._trio.connection import QuicConnectionStatistics as QuicConnectionStatistics
from ._trio.endpoint import QuicEndpoint as QuicEndpoint
from ._trio.endpoint import QuicEndpointStatistics as QuicEndpointStatistics
from ._trio.errors import ConnectionClosedError as ConnectionClosedError
from ._trio.errors import StreamResetError as StreamResetError
from ._trio.errors import StreamStoppedError as StreamStoppedError
from ._trio.quic_api import open_quic_connection as open_quic_connection
from ._trio.quic_api import open_quic_endpoint as open_quic_endpoint
from ._trio.quic_api import serve_quic as serve_quic
from ._trio.stream import QuicReceiveStream as QuicReceiveStream
from ._trio.stream import QuicSendStream as QuicSendStream
from ._trio.stream import QuicStream as QuicStream

# isort: split
# HTTP/3 for trio: serve_h3, open_h3_connection and the request objects (issue 7's block)
from ._trio.h3 import H3Connection as H3Connection
from ._trio.h3 import open_h3_connection as open_h3_connection
from ._trio.h3 import serve_h3 as serve_h3
from ._trio.h3_pool import H3ConnectionPool as H3ConnectionPool
from ._trio.h3_pool import open_h3_pool as open_h3_pool
from ._trio.h3_request import H3Body as H3Body
from ._trio.h3_request import H3Request as H3Request
from ._trio.h3_request import H3RequestStream as H3RequestStream
from ._trio.h3_request import H3Response as H3Response
from ._trio.h3_request import H3Stream as H3Stream

__all__ = ["__version__", "h3", "qpack", "quic"]

# the zttp-style sans-IO façade (h3 connection helper's block)
__all__ += [
    "CLIENT",
    "HTTP3",
    "NEED_DATA",
    "SERVER",
    "Connection",
    "Data",
    "EndOfMessage",
    "InformationalResponse",
    "Request",
    "Response",
]

# the trio layer (trio layer's block)
__all__ += [
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

# HTTP/3 for trio (issue 7's block)
__all__ += [
    "H3Body",
    "H3Connection",
    "H3ConnectionPool",
    "H3Request",
    "H3RequestStream",
    "H3Response",
    "H3Stream",
    "open_h3_connection",
    "open_h3_pool",
    "serve_h3",
]
