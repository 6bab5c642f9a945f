"""Test helpers for users and for this project: certificates, a sans-IO pair driver with a
seeded lossy link, and a virtual datagram network for trio.
"""

from ._certs import CertificateAuthority as CertificateAuthority
from ._certs import IssuedCertificate as IssuedCertificate
from ._certs import KeyType as KeyType
from ._certs import self_signed_leaf as self_signed_leaf

__all__: list[str] = [
    "CertificateAuthority",
    "IssuedCertificate",
    "KeyType",
    "self_signed_leaf",
]
