"""Handshake message codecs: RFC 8448 messages parse and re-encode byte for byte, round trips,
and every truncation ends in decode_error."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trio_zttp._tls import extensions as ext
from trio_zttp._tls import messages as m
from trio_zttp._tls.alerts import AlertDescription, AlertError
from trio_zttp._tls.extensions import ExtensionType, NamedGroup

VECTORS = Path(__file__).resolve().parent.parent / "vectors" / "rfc8448"


def load(name: str) -> dict[str, bytes]:
    values: dict[str, bytes] = {}
    for line in (VECTORS / name).read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition(":")
            values[key.strip()] = bytes.fromhex(value.strip())
    return values


S3 = load("section3_simple_1rtt.txt")
S4 = load("section4_resumed_0rtt.txt")


def body(message: bytes) -> bytes:
    assert int.from_bytes(message[1:4], "big") == len(message) - 4
    return message[4:]


def test_messages_rfc8448_client_hello_parses_and_reencodes() -> None:
    hello = m.parse_client_hello(body(S3["client_hello"]))
    assert hello.cipher_suites == (0x1301, 0x1303, 0x1302)
    assert hello.server_name == "server"
    assert hello.key_shares == ((NamedGroup.x25519, S3["client_x25519_public"]),)
    assert hello.supported_versions == (0x0304,)
    assert hello.psk_key_exchange_modes == (1,)
    assert hello.supported_groups is not None and hello.supported_groups[:3] == (29, 23, 24)
    assert hello.transport_parameters is None and hello.alpn_protocols is None
    # renegotiation_info, session_ticket and record_size_limit are unknown here: kept raw
    assert [t for t, _ in hello.extensions] == [0, 0xFF01, 10, 0x23, 51, 43, 13, 45, 0x1C]
    again = m.encode_client_hello(
        random=hello.random,
        cipher_suites=hello.cipher_suites,
        extensions=hello.extensions,
    )
    assert again == S3["client_hello"]


def test_messages_rfc8448_server_hello_and_ticket() -> None:
    hello = m.parse_server_hello(body(S3["server_hello"]))
    assert not hello.is_hello_retry_request
    assert hello.cipher_suite == 0x1301
    assert hello.key_share == (NamedGroup.x25519, S3["server_x25519_public"])
    assert hello.supported_version == 0x0304
    assert m.encode_server_hello(
        random=hello.random, cipher_suite=hello.cipher_suite, extensions=hello.extensions
    ) == S3["server_hello"]

    ticket = m.parse_new_session_ticket(body(S3["new_session_ticket"]))
    assert ticket.ticket_lifetime == 30
    assert ticket.ticket_age_add == 0xFAD6AAC5
    assert ticket.ticket_nonce == b"\x00\x00"
    assert ticket.max_early_data_size == 1024
    assert m.encode_new_session_ticket(
        ticket_lifetime=30,
        ticket_age_add=ticket.ticket_age_add,
        ticket_nonce=ticket.ticket_nonce,
        ticket=ticket.ticket,
        max_early_data_size=1024,
    ) == S3["new_session_ticket"]


def test_messages_rfc8448_server_flight() -> None:
    ee = m.parse_encrypted_extensions(body(S3["encrypted_extensions"]))
    assert ee.alpn_protocol is None and not ee.early_data
    assert [t for t, _ in ee.extensions] == [10, 0x1C, 0]
    cert = m.parse_certificate(body(S3["certificate"]))
    assert cert.request_context == b"" and len(cert.entries) == 1
    assert m.encode_certificate(b"", [cert.entries[0][0]]) == S3["certificate"]
    cv = m.parse_certificate_verify(body(S3["certificate_verify"]))
    assert cv.algorithm == 0x0804 and len(cv.signature) == 128
    assert m.encode_certificate_verify(cv.algorithm, cv.signature) == S3["certificate_verify"]
    assert m.parse_finished(body(S3["server_finished"]), 32) == S3["server_finished_verify_data"]


def test_messages_rfc8448_offered_psks() -> None:
    hello = m.parse_client_hello(body(S4["client_hello"]))
    psk = hello.pre_shared_key
    assert psk is not None
    assert psk.binders == (S4["binder"],)
    assert psk.binders_length == 35
    (identity, age), = psk.identities
    assert age == 0xFAD6AACB  # 6 ms after the ticket, plus age_add 0xfad6aac5
    assert hello.early_data
    assert [t for t, _ in hello.extensions][-1] == ExtensionType.pre_shared_key


PARSERS: list[tuple[str, Callable[[bytes], object]]] = [
    ("client_hello", m.parse_client_hello),
    ("server_hello", m.parse_server_hello),
    ("encrypted_extensions", m.parse_encrypted_extensions),
    ("certificate", m.parse_certificate),
    ("certificate_verify", m.parse_certificate_verify),
    ("new_session_ticket", m.parse_new_session_ticket),
]


@pytest.mark.parametrize(("name", "parser"), PARSERS, ids=[n for n, _ in PARSERS])
def test_messages_truncated_at_every_byte_is_decode_error(
    name: str, parser: Callable[[bytes], object]
) -> None:
    whole = body(S3[name])
    parser(whole)
    for cut in range(len(whole)):
        with pytest.raises(AlertError) as info:
            parser(whole[:cut])
        assert info.value.description == AlertDescription.decode_error, cut
    with pytest.raises(AlertError) as info:
        parser(whole + b"\x00")
    assert info.value.description == AlertDescription.decode_error


@pytest.mark.parametrize(
    ("name", "parser"), PARSERS[:3], ids=[n for n, _ in PARSERS[:3]]
)
def test_messages_extension_block_cut_at_every_byte(
    name: str, parser: Callable[[bytes], object]
) -> None:
    # the extensions block ends the message: shorten its length field to every byte inside
    # it and cut the message there, so only an extension runs past the block's end
    whole = body(S3[name])
    extensions = parser(whole).extensions  # type: ignore[attr-defined]
    total = sum(4 + len(data) for _, data in extensions)
    start = len(whole) - total - 2
    assert int.from_bytes(whole[start : start + 2], "big") == total
    boundaries = {0}
    for _, data in extensions:
        boundaries.add(max(boundaries) + 4 + len(data))
    for size in range(total):
        cut = whole[:start] + size.to_bytes(2, "big") + whole[start + 2 : start + 2 + size]
        if size in boundaries:
            kept = parser(cut).extensions  # type: ignore[attr-defined]
            assert kept == extensions[: len(kept)]
            continue
        with pytest.raises(AlertError) as info:
            parser(cut)
        assert info.value.description == AlertDescription.decode_error, size
        # and the whole block length left alone, with bytes missing inside: decode_error
        with pytest.raises(AlertError):
            parser(whole[: start + 2 + size])


def test_messages_duplicate_extension_is_illegal_parameter() -> None:
    hello = m.parse_client_hello(body(S3["client_hello"]))
    doubled = m.encode_client_hello(
        random=hello.random,
        cipher_suites=hello.cipher_suites,
        extensions=(*hello.extensions, hello.extensions[0]),
    )
    with pytest.raises(AlertError) as info:
        m.parse_client_hello(body(doubled))
    assert info.value.description == AlertDescription.illegal_parameter


def test_messages_pre_shared_key_not_last_is_illegal_parameter() -> None:
    hello = m.parse_client_hello(body(S4["client_hello"]))
    *rest, psk = hello.extensions
    moved = m.encode_client_hello(
        random=hello.random, cipher_suites=hello.cipher_suites, extensions=[psk, *rest]
    )
    with pytest.raises(AlertError) as info:
        m.parse_client_hello(body(moved))
    assert info.value.description == AlertDescription.illegal_parameter


def test_messages_hello_retry_request_fields() -> None:
    hrr = m.encode_server_hello(
        random=m.HELLO_RETRY_REQUEST_RANDOM,
        cipher_suite=0x1302,
        extensions=[
            (ExtensionType.supported_versions, ext.encode_supported_versions_server(0x0304)),
            (ExtensionType.key_share, ext.encode_key_share_hrr(NamedGroup.secp256r1)),
            (ExtensionType.cookie, ext.encode_cookie(b"cookie")),
        ],
    )
    parsed = m.parse_server_hello(body(hrr))
    assert parsed.is_hello_retry_request
    assert parsed.selected_group == NamedGroup.secp256r1 and parsed.key_share is None
    assert parsed.cookie == b"cookie"


u16 = st.integers(0, 0xFFFF)
opaque = st.binary(min_size=1, max_size=40)
names = st.text(st.characters(min_codepoint=97, max_codepoint=122), min_size=1, max_size=20)


@given(
    random=st.binary(min_size=32, max_size=32),
    suites=st.lists(u16, min_size=1, max_size=8),
    groups=st.lists(u16, min_size=1, max_size=6),
    shares=st.lists(st.tuples(u16, opaque), max_size=3),
    alpn=st.lists(opaque, min_size=1, max_size=3),
    host=names,
    unknown=st.lists(st.tuples(st.integers(0x1000, 0x1100), st.binary(max_size=8)), max_size=3,
                     unique_by=lambda e: e[0]),
    identities=st.lists(st.tuples(opaque, st.integers(0, 2**32 - 1)), min_size=1, max_size=3),
)
def test_messages_client_hello_round_trip(
    random: bytes,
    suites: list[int],
    groups: list[int],
    shares: list[tuple[int, bytes]],
    alpn: list[bytes],
    host: str,
    unknown: list[tuple[int, bytes]],
    identities: list[tuple[bytes, int]],
) -> None:
    binders = [bytes(32 + i) for i in range(len(identities))]
    extensions = [
        (ExtensionType.server_name, ext.encode_server_name(host)),
        (ExtensionType.supported_groups, ext.encode_u16_list(groups)),
        (ExtensionType.key_share, ext.encode_key_share_client(shares)),
        (ExtensionType.application_layer_protocol_negotiation, ext.encode_alpn(alpn)),
        *unknown,
        (ExtensionType.early_data, b""),
        (ExtensionType.pre_shared_key, ext.encode_pre_shared_key_client(identities, binders)),
    ]
    encoded = m.encode_client_hello(random=random, cipher_suites=suites, extensions=extensions)
    hello = m.parse_client_hello(body(encoded))
    assert hello.random == random and hello.cipher_suites == tuple(suites)
    assert hello.server_name == host
    assert hello.supported_groups == tuple(groups)
    assert hello.key_shares == tuple(shares)
    assert hello.alpn_protocols == tuple(alpn)
    assert hello.early_data
    assert hello.pre_shared_key is not None
    assert hello.pre_shared_key.identities == tuple(identities)
    assert hello.pre_shared_key.binders == tuple(binders)
    assert encoded.endswith(ext.encode_pre_shared_key_client(identities, binders)[
        -hello.pre_shared_key.binders_length:])
    assert m.encode_client_hello(
        random=random, cipher_suites=suites, extensions=hello.extensions
    ) == encoded


@given(st.binary(max_size=300))
def test_messages_garbage_only_raises_alerts(data: bytes) -> None:
    for _, parser in PARSERS:
        try:
            parser(data)
        except AlertError as error:
            assert error.description in (
                AlertDescription.decode_error, AlertDescription.illegal_parameter)
