"""Handshakes against qh3's ``tls.Context``: the hybrid X25519MLKEM768 group with a real peer.

qh3 key-shares X25519MLKEM768 (0x11EC) and X25519 by default; it decides that our share
layout (ML-KEM encapsulation key, then X25519) and secret order (ML-KEM, then X25519) are the
deployed ones.
"""

from __future__ import annotations

from tests.tls.tls_harness import (
    Ours,
    assert_same_secrets,
    leaf,
    our_config,
    pump,
    qh3_client,
    qh3_server,
)
from trio_zttp._tls.extensions import NamedGroup
from trio_zttp.testing import KeyType

HYBRID = NamedGroup.X25519MLKEM768


def test_qh3_server_negotiates_x25519mlkem768() -> None:
    client = Ours(our_config(True, key_share_groups=(HYBRID,), supported_groups=(HYBRID,)))
    server = qh3_server()
    pump(client, server)
    assert client.handshake.key_exchange_group == HYBRID
    assert_same_secrets(client, server)


def test_qh3_client_negotiates_x25519mlkem768() -> None:
    client = qh3_client()
    server = Ours(our_config(False, supported_groups=(HYBRID, NamedGroup.x25519)))
    pump(client, server)
    assert server.handshake.key_exchange_group == HYBRID
    assert_same_secrets(client, server)


def test_qh3_client_default_groups_pick_our_preference() -> None:
    client = qh3_client()
    server = Ours(our_config(False))  # default preference: x25519 first
    pump(client, server)
    assert server.handshake.key_exchange_group == NamedGroup.x25519
    assert_same_secrets(client, server)


def test_qh3_server_with_rsa_certificate_and_both_shares() -> None:
    client = Ours(
        our_config(
            True,
            key_share_groups=(HYBRID, NamedGroup.x25519),
            supported_groups=(HYBRID, NamedGroup.x25519),
        )
    )
    server = qh3_server(leaf(KeyType.RSA_2048))
    pump(client, server)
    assert client.handshake.key_exchange_group == HYBRID
    assert_same_secrets(client, server)
