"""Test helpers for users and for this project: certificates, a sans-IO pair driver with a
seeded lossy link, and a virtual datagram network for trio.
"""

# certificates
from ._certs import CertificateAuthority as CertificateAuthority
from ._certs import IssuedCertificate as IssuedCertificate
from ._certs import KeyType as KeyType
from ._certs import self_signed_leaf as self_signed_leaf

# seeded links, the sans-IO pair driver and the trio virtual network
from ._link import Address as Address
from ._link import DropFilter as DropFilter
from ._link import EcnRewrite as EcnRewrite
from ._link import Link as Link
from ._link import LinkConditions as LinkConditions
from ._link import LinkStatistics as LinkStatistics
from ._link import WireDatagram as WireDatagram
from ._network import HostSpec as HostSpec
from ._network import NetworkStatistics as NetworkStatistics
from ._network import VirtualNetwork as VirtualNetwork
from ._network import VirtualSocket as VirtualSocket
from ._network import open_virtual_network as open_virtual_network
from ._pair import DriverError as DriverError
from ._pair import DriverTimeoutError as DriverTimeoutError
from ._pair import Pair as Pair
from ._pair import PairStatistics as PairStatistics
from ._pair import SansIOClient as SansIOClient
from ._pair import SansIOConnection as SansIOConnection
from ._pair import ServerFactory as ServerFactory
from ._pair import Side as Side
from ._pair import StalledError as StalledError

__all__: list[str] = [
    # certificates
    "CertificateAuthority",
    "IssuedCertificate",
    "KeyType",
    "self_signed_leaf",
    # seeded links, the sans-IO pair driver and the trio virtual network
    "Address",
    "DriverError",
    "DriverTimeoutError",
    "DropFilter",
    "EcnRewrite",
    "HostSpec",
    "Link",
    "LinkConditions",
    "LinkStatistics",
    "NetworkStatistics",
    "Pair",
    "PairStatistics",
    "SansIOClient",
    "SansIOConnection",
    "ServerFactory",
    "Side",
    "StalledError",
    "VirtualNetwork",
    "VirtualSocket",
    "WireDatagram",
    "open_virtual_network",
]
