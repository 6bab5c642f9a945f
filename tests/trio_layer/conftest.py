"""Fixtures for the trio layer: a test CA, a server certificate, trio's fake network."""

from __future__ import annotations

import pytest
from trio.testing._fake_net import FakeNet

from trio_zttp.testing import CertificateAuthority, IssuedCertificate


@pytest.fixture(scope="session")
def ca() -> CertificateAuthority:
    return CertificateAuthority.create()


@pytest.fixture(scope="session")
def server_cert(ca: CertificateAuthority) -> IssuedCertificate:
    return ca.issue(["localhost", "127.0.0.1", "::1"])


@pytest.fixture
async def fake_net() -> FakeNet:
    net = FakeNet()
    net.enable()
    return net
