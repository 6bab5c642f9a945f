"""Fixtures of the interop tests: certificates on disk, a peer session, ngtcp2's binaries."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.interop.harness import InteropCertificates, InteropSession
from tests.interop.ngtcp2 import GTLSCLIENT, GTLSSERVER, find_binary
from trio_zttp.testing import CertificateAuthority


@pytest.fixture(scope="session")
def interop_certs(tmp_path_factory: pytest.TempPathFactory) -> InteropCertificates:
    directory = tmp_path_factory.mktemp("interop-certs")
    ca = CertificateAuthority.create()
    leaf = ca.issue(["localhost", "127.0.0.1", "::1"])
    paths = {name: directory / f"{name}.pem" for name in ("ca", "cert", "key", "other-ca")}
    ca.write_pem(paths["ca"])
    leaf.write_pem(paths["cert"], paths["key"])
    CertificateAuthority.create(name="unrelated test CA").write_pem(paths["other-ca"])
    return InteropCertificates(
        cafile=paths["ca"],
        cert=paths["cert"],
        key=paths["key"],
        other_cafile=paths["other-ca"],
    )


@pytest.fixture
def interop(tmp_path: Path, interop_certs: InteropCertificates) -> Iterator[InteropSession]:
    """A session whose peers are stopped at teardown, also when the test failed.

    The peers' logs stay in ``<tmp_path>/peers``; their tails are printed at teardown (pytest
    shows them for failing tests).
    """
    session = InteropSession(
        tmp_path / "peers",
        cert=interop_certs.cert,
        key=interop_certs.key,
        cafile=interop_certs.cafile,
    )
    try:
        yield session
    finally:
        session.close()
        if session.processes:
            print(session.describe())
        leftovers = [peer for peer in session.processes if peer.running()]
        assert not leftovers, f"peers still running after close: {[p.pid for p in leftovers]}"


def _binary(name: str) -> str:
    found = find_binary(name)
    if found is None:
        message = f"ngtcp2's {name} is not installed (Debian: ngtcp2-client / ngtcp2-server)"
        if os.environ.get("CI"):
            pytest.fail(message + "; CI must install it (.ci/run does, as root)")
        pytest.skip(message)
    return found


@pytest.fixture(scope="session")
def gtlsserver() -> str:
    """Path of ngtcp2's ``gtlsserver`` (skips locally, fails under CI, when missing)."""
    return _binary(GTLSSERVER)


@pytest.fixture(scope="session")
def gtlsclient() -> str:
    """Path of ngtcp2's ``gtlsclient`` (skips locally, fails under CI, when missing)."""
    return _binary(GTLSCLIENT)
