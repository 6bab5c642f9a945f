"""TLS key-exchange groups through the QUIC configuration (``key_exchange_groups``,
``key_share_groups``), with the hybrid post-quantum X25519MLKEM768 (draft-ietf-tls-ecdhe-mlkem)
negotiated against qh3, which supports it, in both roles, and against ourselves; a client
that key-shares only X25519 but accepts the hybrid group gets a HelloRetryRequest from a server
that insists on it. The hybrid share (1,216 bytes) makes the client's first flight two Initial
datagrams."""

from __future__ import annotations

import pytest

from tests.quic.conn_helpers import CLEAN, handshake, make_pair, transfer
from trio_zttp.quic import Configuration
from trio_zttp.testing import WireDatagram

HYBRID, X25519, P256 = 0x11EC, 0x001D, 0x0017


def _group(connection: object) -> int | None:
    return connection.key_exchange_group  # type: ignore[attr-defined, no-any-return]


@pytest.mark.parametrize("server", ["ours", "qh3"])
def test_our_client_negotiates_the_hybrid_group(server: str) -> None:
    server_options = {"key_exchange_groups": [HYBRID, X25519]} if server == "ours" else {}
    pair = make_pair("ours", server, link=CLEAN, server_options=server_options,
                     client_options={"key_exchange_groups": [HYBRID, X25519]})
    initials: list[WireDatagram] = []
    pair.tap = lambda side, d: initials.append(d) if side == "client" and d.data[0] & 0x80 \
        else None
    handshake(pair)
    assert _group(pair.client) == HYBRID
    assert len([d for d in initials if d.data[0] & 0x30 == 0]) >= 2  # two Initial datagrams
    transfer(pair, 20_000)


def test_qh3_client_negotiates_the_hybrid_group_with_our_server() -> None:
    pair = make_pair("qh3", "ours", link=CLEAN,
                     server_options={"key_exchange_groups": [HYBRID, X25519]})
    handshake(pair)
    assert _group(pair.server) == HYBRID  # qh3 key-shares it first by default
    transfer(pair, 20_000, upload=False)


def test_a_server_insisting_on_the_hybrid_group_asks_for_its_share() -> None:
    pair = make_pair("ours", "ours", link=CLEAN,
                     client_options={"key_exchange_groups": [X25519, HYBRID]},
                     server_options={"key_exchange_groups": [HYBRID]})
    handshake(pair)  # (HelloRetryRequest: the client's first share was X25519)
    assert _group(pair.client) == _group(pair.server) == HYBRID


def test_the_defaults_stay_classical() -> None:
    """By default neither side offers the hybrid group (its share costs a second Initial
    datagram; servers that want it say so)."""
    pair = make_pair("ours", "ours", link=CLEAN,
                     client_options={"key_exchange_groups": [X25519, HYBRID],
                                     "key_share_groups": [X25519, HYBRID]})
    handshake(pair)
    assert _group(pair.client) == X25519  # our server's default list has no hybrid
    pair = make_pair("ours", "ours", link=CLEAN)
    handshake(pair)
    assert _group(pair.client) == X25519


@pytest.mark.parametrize(("options", "message"), [
    ({"key_exchange_groups": []}, "at least one"),
    ({"key_exchange_groups": [X25519, X25519]}, "distinct"),
    ({"key_exchange_groups": [0x001E]}, "unsupported"),  # x448: not offered by this library
    ({"key_share_groups": [HYBRID]}, "among"),  # not in the default groups
    ({"key_exchange_groups": [P256], "key_share_groups": [X25519]}, "among"),
])
def test_bad_group_settings_are_refused_at_once(options: dict[str, object],
                                                 message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Configuration(is_client=True, alpn_protocols=("h3",), **options)  # type: ignore
