"""The engine replays RFC 8448 §3: with the trace's random and key share injected, a client
built from a ClientHelloSpec emits the trace's ClientHello byte for byte and, fed the trace's
ServerHello, installs the trace's handshake traffic secrets."""

from __future__ import annotations

from pathlib import Path

import pytest

from trio_zttp._tls.alerts import AlertDescription, AlertError
from trio_zttp._tls.config import ClientHelloSpec, TlsConfiguration
from trio_zttp._tls.extensions import NamedGroup
from trio_zttp._tls.handshake import Handshake, InstallKey, SendCryptoData, State
from trio_zttp._tls.suites import CipherSuite, Epoch
from trio_zttp.testing import CertificateAuthority

VECTORS = Path(__file__).resolve().parent.parent / "vectors" / "rfc8448"


def load(name: str) -> dict[str, bytes]:
    values: dict[str, bytes] = {}
    for line in (VECTORS / name).read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition(":")
            values[key.strip()] = bytes.fromhex(value.strip())
    return values


S3 = load("section3_simple_1rtt.txt")
CLIENT_RANDOM = S3["client_hello"][6:38]

# The trace's ClientHello, as data: NSS's order, its groups and schemes, and three extensions
# this engine does not know (renegotiation_info, session_ticket, record_size_limit) as raw bytes.
RFC8448_SPEC = ClientHelloSpec(
    cipher_suites=(0x1301, 0x1303, 0x1302),
    extension_order=(0x0000, 0xFF01, 0x000A, 0x0023, 0x0033, 0x002B, 0x000D, 0x002D, 0x001C),
    supported_groups=(0x1D, 0x17, 0x18, 0x19, 0x100, 0x101, 0x102, 0x103, 0x104),
    key_share_groups=(NamedGroup.x25519,),
    signature_algorithms=(
        0x0403, 0x0503, 0x0603, 0x0203, 0x0804, 0x0805, 0x0806,
        0x0401, 0x0501, 0x0601, 0x0201, 0x0402, 0x0502, 0x0602, 0x0202,
    ),
    extra_extensions=((0xFF01, b"\x00"), (0x0023, b""), (0x001C, b"\x40\x01")),
)


def trace_random(n: int) -> bytes:
    assert n == 32, "only the ClientHello.random is random in this replay"
    return CLIENT_RANDOM


def rfc8448_client(keylog: list[str]) -> Handshake:
    config = TlsConfiguration(
        is_client=True,
        alpn_protocols=("h3",),
        server_name="server",
        client_hello=RFC8448_SPEC,
        random_bytes=trace_random,
        key_share_private_keys={NamedGroup.x25519: S3["client_x25519_private"]},
        keylog=keylog.append,
    )
    return Handshake(config, transport_parameters=b"")


def test_rfc8448_client_hello_byte_for_byte() -> None:
    client = rfc8448_client([])
    client.start()
    (update,) = client.take_updates()
    assert update == SendCryptoData(epoch=Epoch.INITIAL, data=S3["client_hello"])


def test_rfc8448_server_hello_gives_the_trace_handshake_secrets() -> None:
    keylog: list[str] = []
    client = rfc8448_client(keylog)
    client.start()
    client.take_updates()
    client.receive(Epoch.INITIAL, S3["server_hello"])
    assert client.take_updates() == [
        InstallKey(
            epoch=Epoch.HANDSHAKE,
            is_write=True,
            suite=CipherSuite.AES_128_GCM_SHA256,
            secret=S3["client_handshake_traffic_secret"],
        ),
        InstallKey(
            epoch=Epoch.HANDSHAKE,
            is_write=False,
            suite=CipherSuite.AES_128_GCM_SHA256,
            secret=S3["server_handshake_traffic_secret"],
        ),
    ]
    assert client.state is State.CLIENT_WAIT_ENCRYPTED_EXTENSIONS
    assert client.cipher_suite is CipherSuite.AES_128_GCM_SHA256
    assert keylog == [
        f"CLIENT_HANDSHAKE_TRAFFIC_SECRET {CLIENT_RANDOM.hex()} "
        + S3["client_handshake_traffic_secret"].hex(),
        f"SERVER_HANDSHAKE_TRAFFIC_SECRET {CLIENT_RANDOM.hex()} "
        + S3["server_handshake_traffic_secret"].hex(),
    ]


def test_rfc8448_encrypted_extensions_without_alpn_is_refused_in_quic() -> None:
    # the trace is TLS over TCP: its EncryptedExtensions carries no ALPN and no transport
    # parameters, which a QUIC client must refuse (RFC 9001 §8.1)
    client = rfc8448_client([])
    client.start()
    client.receive(Epoch.INITIAL, S3["server_hello"])
    with pytest.raises(AlertError) as info:
        client.receive(Epoch.HANDSHAKE, S3["encrypted_extensions"])
    # its extensions (supported_groups, record_size_limit, server_name) were all offered
    assert info.value.description == AlertDescription.no_application_protocol


def test_rfc8448_client_hello_refused_by_a_quic_server() -> None:
    issued = CertificateAuthority.create().issue(["server"])
    server = Handshake(
        TlsConfiguration(
            is_client=False,
            alpn_protocols=("h3",),
            certificate_chain=issued.chain,
            private_key=issued.private_key,
        ),
        transport_parameters=b"",
    )
    with pytest.raises(AlertError) as info:
        server.receive(Epoch.INITIAL, S3["client_hello"])
    assert info.value.description == AlertDescription.missing_extension
