"""aioquic connections for the tests of ``trio_zttp.testing``: the peers nobody here wrote."""

from __future__ import annotations

import datetime
from typing import Any

import attrs
from aioquic.buffer import Buffer  # type: ignore[attr-defined]
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from aioquic.quic.packet import pull_quic_header
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.x509.oid import NameOID

from trio_zttp.testing import Address, ServerFactory


@attrs.frozen
class Identity:
    key: ed25519.Ed25519PrivateKey
    certificate: x509.Certificate
    pem: bytes


def make_identity() -> Identity:
    """A self-signed Ed25519 certificate for ``localhost``.

    Ed25519 signatures have a fixed size, so aioquic's datagram sizes do not vary between runs.
    """
    key = ed25519.Ed25519PrivateKey.generate()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, None)
    )
    pem = certificate.public_bytes(serialization.Encoding.PEM)
    return Identity(key=key, certificate=certificate, pem=pem)


def aioquic_client(identity: Identity, **options: Any) -> QuicConnection:
    configuration = QuicConfiguration(
        is_client=True, alpn_protocols=["test"], server_name="localhost", **options)
    configuration.load_verify_locations(cadata=identity.pem)
    return QuicConnection(configuration=configuration)


def aioquic_server_factory(identity: Identity, **options: Any) -> ServerFactory:
    """Builds an aioquic server connection from the client's first Initial, as aioquic's own
    server does (it needs the original destination connection ID)."""

    def server(first_datagram: bytes, source: Address) -> QuicConnection:
        configuration = QuicConfiguration(is_client=False, alpn_protocols=["test"], **options)
        configuration.certificate = identity.certificate
        configuration.private_key = identity.key
        header = pull_quic_header(Buffer(data=first_datagram), host_cid_length=8)
        return QuicConnection(
            configuration=configuration,
            original_destination_connection_id=header.destination_cid)

    return server
