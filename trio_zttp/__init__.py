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
