"""trio_zttp: a trio-native QUIC and HTTP/3 toolkit with a sans-IO core.

Sans-IO namespaces: :mod:`trio_zttp.quic` (more to come: ``qpack``, ``h3``).
"""

from . import h3 as h3
from . import qpack as qpack
from . import quic as quic
from ._version import __version__ as __version__

__all__ = ["__version__", "h3", "qpack", "quic"]
