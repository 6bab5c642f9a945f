"""Handshakes against aioquic's ``tls.Context``, in process, both directions.

aioquic decides: every cipher suite, x25519 and secp256r1, RSA/ECDSA/Ed25519 certificates,
resumption with a ticket the peer issued, 0-RTT accepted and rejected, client certificates,
ALPN refusal.  Each successful run checks that both sides derived the same traffic secrets.
(aioquic never sends a HelloRetryRequest and always shares every group it supports, so HRR
is tested between our client and our server in test_handshake.py.)
"""

from __future__ import annotations

import datetime
import os

import pytest
from aioquic import tls as aq

from tests.tls.tls_harness import (
    Aioquic,
    Ours,
    assert_same_secrets,
    ca,
    leaf,
    our_config,
    pump,
)
from trio_zttp._tls.alerts import AlertDescription, AlertError
from trio_zttp._tls.extensions import NamedGroup
from trio_zttp._tls.handshake import HandshakeComplete
from trio_zttp._tls.suites import CipherSuite
from trio_zttp.testing import CertificateAuthority, KeyType

SUITES = list(CipherSuite)
GROUPS = [NamedGroup.x25519, NamedGroup.secp256r1]
KEYS = [KeyType.ECDSA_P256, KeyType.RSA_2048, KeyType.ED25519]
NINETY_DAYS = datetime.timedelta(days=90)  # past the test leaves' 30-day validity
TICKET_KEY = os.urandom(32)


# --- ours as client -------------------------------------------------------------------------


@pytest.mark.parametrize("suite", SUITES, ids=lambda s: s.name)
def test_aioquic_server_every_cipher_suite(suite: CipherSuite) -> None:
    client = Ours(our_config(True))
    server = Aioquic.server(cipher_suites=[aq.CipherSuite(suite)])
    pump(client, server)
    assert client.handshake.cipher_suite is suite
    assert client.completions == [
        HandshakeComplete(alpn_protocol="h3", session_resumed=False, early_data_accepted=False)
    ]
    assert_same_secrets(client, server)
    assert client.handshake.peer_transport_parameters == b"\x04\x05\x06server-tp"
    assert server.peer_transport_parameters == b"\x01\x02\x03client-tp"


@pytest.mark.parametrize("group", GROUPS, ids=lambda g: g.name)
def test_aioquic_server_key_exchange_group(group: NamedGroup) -> None:
    client = Ours(our_config(True, key_share_groups=(group,), supported_groups=(group,)))
    server = Aioquic.server()
    pump(client, server)
    assert client.handshake.key_exchange_group == group
    assert_same_secrets(client, server)


@pytest.mark.parametrize("key_type", KEYS)
def test_aioquic_server_certificate_types(key_type: KeyType) -> None:
    client = Ours(our_config(True))
    server = Aioquic.server(leaf(key_type))
    pump(client, server)
    assert_same_secrets(client, server)
    assert client.handshake.peer_certificate_chain == leaf(key_type).chain


def test_aioquic_server_ticket_resumption_and_early_data() -> None:
    tickets: dict[bytes, object] = {}
    first = Ours(our_config(True))
    pump(first, Aioquic.server(tickets=tickets, max_early_data=0xFFFFFFFF))
    (ticket,) = first.tickets
    assert ticket.max_early_data_size == 0xFFFFFFFF and ticket.alpn == "h3"
    assert ticket.peer_transport_parameters == b"\x04\x05\x06server-tp"

    client = Ours(our_config(True, session_ticket=ticket, enable_early_data=True))
    server = Aioquic.server(tickets=tickets, max_early_data=0xFFFFFFFF)
    pump(client, server)
    assert client.handshake.session_resumed and server.context.session_resumed
    assert client.handshake.early_data_accepted and server.context.early_data_accepted
    assert client.handshake.peer_certificate_chain == ()
    assert_same_secrets(client, server, early_data=True)


def test_aioquic_server_unknown_ticket_rejects_early_data() -> None:
    tickets: dict[bytes, object] = {}
    first = Ours(our_config(True))
    pump(first, Aioquic.server(tickets=tickets, max_early_data=0xFFFFFFFF))
    tickets.clear()  # the server forgot the ticket: full handshake, 0-RTT rejected
    client = Ours(our_config(True, session_ticket=first.tickets[0], enable_early_data=True))
    server = Aioquic.server(tickets=tickets)
    pump(client, server)
    assert (1, "write") in client.secrets  # the client did start 0-RTT
    assert not client.handshake.session_resumed and not client.handshake.early_data_accepted
    assert client.completions[0].early_data_accepted is False
    assert_same_secrets(client, server)


def test_aioquic_server_requests_client_certificate() -> None:
    issued = leaf(KeyType.ECDSA_P256, client=True)
    client = Ours(
        our_config(True, certificate_chain=issued.chain, private_key=issued.private_key)
    )
    server = Aioquic.server(request_client_certificate=True)
    pump(client, server)
    assert server.context._peer_certificate == issued.certificate
    assert_same_secrets(client, server)


def test_aioquic_server_requests_certificate_client_has_none() -> None:
    client = Ours(our_config(True))
    server = Aioquic.server(request_client_certificate=True)
    pump(client, server)
    assert server.context._peer_certificate is None
    assert_same_secrets(client, server)


def test_aioquic_server_without_alpn_is_no_application_protocol() -> None:
    client = Ours(our_config(True))
    server = Aioquic.server(alpn_protocols=None)
    with pytest.raises(AlertError) as info:
        pump(client, server)
    assert info.value.description == AlertDescription.no_application_protocol == 120


@pytest.mark.parametrize(
    ("overrides", "alert"),
    [
        ({"server_name": "example.com"}, AlertDescription.bad_certificate),
        ({"cadata": CertificateAuthority.create().pem}, AlertDescription.unknown_ca),
        (
            {"wall_clock": lambda: datetime.datetime.now(datetime.UTC) + NINETY_DAYS},
            AlertDescription.certificate_expired,
        ),
    ],
    ids=["wrong-hostname", "unknown-ca", "expired"],
)
def test_aioquic_server_certificate_verification_failures(
    overrides: dict[str, object], alert: AlertDescription
) -> None:
    client = Ours(our_config(True, **overrides))
    with pytest.raises(AlertError) as info:
        pump(client, Aioquic.server())
    assert info.value.description == alert


def test_aioquic_server_unverified_when_verification_is_off() -> None:
    client = Ours(our_config(True, server_name="example.com", verify_peer=False))
    server = Aioquic.server()
    pump(client, server)
    assert_same_secrets(client, server)


# --- ours as server -------------------------------------------------------------------------


@pytest.mark.parametrize("suite", SUITES, ids=lambda s: s.name)
def test_aioquic_client_every_cipher_suite(suite: CipherSuite) -> None:
    client = Aioquic.client()
    server = Ours(our_config(False, cipher_suites=(suite,)))
    pump(client, server)
    assert server.handshake.cipher_suite is suite
    assert client.context.key_schedule.cipher_suite == suite
    assert_same_secrets(client, server)
    assert server.handshake.peer_transport_parameters == b"\x01\x02\x03client-tp"
    assert client.peer_transport_parameters == b"\x04\x05\x06server-tp"


@pytest.mark.parametrize("group", GROUPS, ids=lambda g: g.name)
def test_aioquic_client_key_exchange_group(group: NamedGroup) -> None:
    client = Aioquic.client()
    server = Ours(our_config(False, supported_groups=(group,)))
    pump(client, server)
    assert server.handshake.key_exchange_group == group
    assert_same_secrets(client, server)


@pytest.mark.parametrize("key_type", KEYS)
def test_aioquic_client_certificate_types(key_type: KeyType) -> None:
    issued = leaf(key_type)
    client = Aioquic.client()
    server = Ours(
        our_config(False, certificate_chain=issued.chain, private_key=issued.private_key)
    )
    pump(client, server)
    assert_same_secrets(client, server)


def test_aioquic_client_resumes_with_our_ticket_and_early_data() -> None:
    config = our_config(False, ticket_key=TICKET_KEY, enable_early_data=True)
    first = Aioquic.client()
    pump(first, Ours(config))
    (ticket,) = first.tickets
    assert ticket.max_early_data_size == 0xFFFFFFFF

    client = Aioquic.client(session_ticket=ticket)
    server = Ours(config)
    pump(client, server)
    assert server.handshake.session_resumed and client.context.session_resumed
    assert server.handshake.early_data_accepted and client.context.early_data_accepted
    assert_same_secrets(client, server, early_data=True)

    # the same ticket again: resumption still works, 0-RTT is refused as a replay
    replay = Aioquic.client(session_ticket=ticket)
    server = Ours(config)
    pump(replay, server)
    assert server.handshake.session_resumed and not server.handshake.early_data_accepted
    assert not replay.context.early_data_accepted
    assert_same_secrets(replay, server)


def test_aioquic_client_early_data_refused_by_configuration() -> None:
    issuing = our_config(False, ticket_key=TICKET_KEY, enable_early_data=True)
    first = Aioquic.client()
    pump(first, Ours(issuing))
    client = Aioquic.client(session_ticket=first.tickets[0])
    server = Ours(our_config(False, ticket_key=TICKET_KEY, enable_early_data=False))
    pump(client, server)
    assert server.handshake.session_resumed and not server.handshake.early_data_accepted
    assert_same_secrets(client, server)


def test_aioquic_client_certificate_required_and_given() -> None:
    issued = leaf(KeyType.ED25519, client=True)
    client = Aioquic.client()
    client.context.certificate = issued.certificate
    client.context.certificate_private_key = issued.private_key
    server = Ours(our_config(False, client_auth="require"))
    pump(client, server)
    assert server.handshake.peer_certificate_chain == (issued.certificate,)
    assert_same_secrets(client, server)


def test_aioquic_client_certificate_required_but_missing() -> None:
    server = Ours(our_config(False, client_auth="require"))
    with pytest.raises(AlertError) as info:
        pump(Aioquic.client(), server)
    assert info.value.description == AlertDescription.certificate_required


def test_aioquic_client_certificate_from_unknown_ca() -> None:
    issued = CertificateAuthority.create().issue(["client"], client=True)
    client = Aioquic.client()
    client.context.certificate = issued.certificate
    client.context.certificate_private_key = issued.private_key
    server = Ours(our_config(False, client_auth="request"))
    with pytest.raises(AlertError) as info:
        pump(client, server)
    assert info.value.description == AlertDescription.unknown_ca


def test_aioquic_client_alpn_mismatch_is_no_application_protocol() -> None:
    client = Aioquic.client(alpn_protocols=["hq-interop"])
    server = Ours(our_config(False))
    with pytest.raises(AlertError) as info:
        pump(client, server)
    assert info.value.description == AlertDescription.no_application_protocol == 120


def test_aioquic_ca_is_the_one_trusted() -> None:
    # guard for the tests above: the harness CA signs every leaf they use
    assert leaf().chain[0].issuer == ca().certificate.subject
