"""Bad input ends in the right alert, never in another exception.

Every (state, message type) pair is walked against the state table; hypothesis mutates the
next message at every stage of both sides; specific faults map to their RFC alerts.
Replays are deterministic: seeded randomness and an Ed25519 server key (deterministic
signatures) make a recorded peer flight valid for a fresh endpoint.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from hypothesis import given
from hypothesis import strategies as st

from tests.tls.tls_harness import (
    TRANSPORT_PARAMETERS_CLIENT,
    TRANSPORT_PARAMETERS_SERVER,
    Aioquic,
    Ours,
    leaf,
    our_config,
    pump,
    record,
    seeded,
)
from trio_zttp._tls import extensions as ext
from trio_zttp._tls import messages as m
from trio_zttp._tls.alerts import AlertDescription as A
from trio_zttp._tls.alerts import AlertError
from trio_zttp._tls.config import TlsConfiguration
from trio_zttp._tls.extensions import ExtensionType, NamedGroup
from trio_zttp._tls.handshake import CLIENT_TABLE, SERVER_TABLE, Handshake, State
from trio_zttp._tls.key_exchange import ClientKeyShare
from trio_zttp._tls.messages import HandshakeType
from trio_zttp._tls.suites import Epoch
from trio_zttp.testing import KeyType

INITIAL, HANDSHAKE, ONE_RTT = Epoch.INITIAL, Epoch.HANDSHAKE, Epoch.ONE_RTT
TICKET_KEY = bytes(range(32))
ED25519 = leaf(KeyType.ED25519)
CLIENT_CERT = leaf(KeyType.ED25519, client=True)


def split(flight: bytes) -> list[bytes]:
    out, pos = [], 0
    while pos < len(flight):
        end = pos + 4 + int.from_bytes(flight[pos + 1 : pos + 4], "big")
        out.append(flight[pos:end])
        pos = end
    return out


def client_config(**overrides: object) -> TlsConfiguration:
    settings: dict[str, object] = {
        "random_bytes": seeded(11),
        "certificate_chain": CLIENT_CERT.chain,
        "private_key": CLIENT_CERT.private_key,
    }
    settings.update(overrides)
    return our_config(True, **settings)


def server_config(**overrides: object) -> TlsConfiguration:
    settings: dict[str, object] = {
        "random_bytes": seeded(12),
        "certificate_chain": ED25519.chain,
        "private_key": ED25519.private_key,
        "client_auth": "request",
        "ticket_key": TICKET_KEY,
    }
    settings.update(overrides)
    return our_config(False, **settings)


# One recorded handshake with client authentication: every state appears on both sides.
LOG = record(Ours(client_config()), Ours(server_config()))
TO_CLIENT = [(Epoch(e), msg) for c, e, d in LOG if c for msg in split(d)]
TO_SERVER = [(Epoch(e), msg) for c, e, d in LOG if not c for msg in split(d)]


def client_at(step: int) -> Handshake:
    """A fresh client that has received the first ``step`` server messages."""
    client = Handshake(client_config(), transport_parameters=TRANSPORT_PARAMETERS_CLIENT)
    client.start()
    for epoch, message in TO_CLIENT[:step]:
        client.receive(epoch, message)
    client.take_updates()
    return client


def server_at(step: int) -> Handshake:
    """A fresh server that has received the first ``step`` client messages."""
    server = Handshake(server_config(), transport_parameters=TRANSPORT_PARAMETERS_SERVER)
    for epoch, message in TO_SERVER[:step]:
        server.receive(epoch, message)
    server.take_updates()
    return server


CLIENT_STAGES = [client_at(i).state for i in range(len(TO_CLIENT) + 1)]
SERVER_STAGES = [server_at(i).state for i in range(len(TO_SERVER) + 1)]


def test_errors_recorded_handshake_visits_every_state() -> None:
    assert CLIENT_STAGES == [
        State.CLIENT_WAIT_SERVER_HELLO,
        State.CLIENT_WAIT_ENCRYPTED_EXTENSIONS,
        State.CLIENT_WAIT_CERTIFICATE_OR_REQUEST,
        State.CLIENT_WAIT_CERTIFICATE,
        State.CLIENT_WAIT_CERTIFICATE_VERIFY,
        State.CLIENT_WAIT_FINISHED,
        State.CLIENT_CONNECTED,
        State.CLIENT_CONNECTED,  # after the NewSessionTicket
    ]
    assert SERVER_STAGES == [
        State.SERVER_WAIT_CLIENT_HELLO,
        State.SERVER_WAIT_CERTIFICATE,
        State.SERVER_WAIT_CERTIFICATE_VERIFY,
        State.SERVER_WAIT_FINISHED,
        State.SERVER_CONNECTED,
    ]


RECEIVE_EPOCH = {
    State.CLIENT_WAIT_SERVER_HELLO: INITIAL,
    State.CLIENT_CONNECTED: ONE_RTT,
    State.SERVER_WAIT_CLIENT_HELLO: INITIAL,
    State.SERVER_CONNECTED: ONE_RTT,
}
MESSAGE_TYPES = [*HandshakeType, 0, 3, 6, 22, 25, 0xFF]
PARSE_ALERTS = {A.decode_error, A.illegal_parameter}


@pytest.mark.parametrize("side", ["client", "server"])
def test_errors_every_state_and_message_type(side: str) -> None:
    """The state table decides: listed types reach a parser, all others are unexpected."""
    stages = CLIENT_STAGES if side == "client" else SERVER_STAGES
    table = CLIENT_TABLE if side == "client" else SERVER_TABLE
    make = client_at if side == "client" else server_at
    for step, state in enumerate(stages):
        epoch = RECEIVE_EPOCH.get(state, HANDSHAKE)
        for msg_type in MESSAGE_TYPES:
            handshake = make(step)
            with pytest.raises(AlertError) as info:
                handshake.receive(epoch, bytes((msg_type, 0, 0, 0)))
            accepted = msg_type in table.get(state, {})
            expected = PARSE_ALERTS if accepted else {A.unexpected_message}
            assert info.value.description in expected, (state, msg_type)
            assert handshake.state is State.FAILED


def test_errors_tables_cover_every_state() -> None:
    client_states = {s for s in State if s.name.startswith("CLIENT_")} - {State.CLIENT_START}
    server_states = {s for s in State if s.name.startswith("SERVER_")}
    assert set(CLIENT_TABLE) == client_states
    assert set(SERVER_TABLE) == server_states


# --- fuzzing every stage -------------------------------------------------------------------

FUZZ_ALERTS = {
    A.decode_error,
    A.unexpected_message,
    A.illegal_parameter,
    A.decrypt_error,
    A.handshake_failure,
    A.missing_extension,
    A.unsupported_extension,
    A.protocol_version,
    A.no_application_protocol,
    A.bad_certificate,
    A.unsupported_certificate,
    A.unknown_ca,
    A.certificate_required,
}


def mutate(message: bytes, how: int, position: int, value: int, garbage: bytes) -> bytes:
    body = message[4:]
    if how == 0 and body:  # change one byte
        i = position % len(body)
        body = body[:i] + bytes((value,)) + body[i + 1 :]
    elif how == 1:  # truncate, with a consistent header
        body = body[: position % (len(body) + 1)]
    elif how == 2:  # insert
        i = position % (len(body) + 1)
        body = body[:i] + garbage + body[i:]
    elif how == 3:  # same type, garbage body
        body = garbage
    else:  # garbage from the first byte
        return garbage or b"\x00"
    return m.encode_message(message[0], body)


mutation = st.tuples(
    st.integers(0, 4), st.integers(0, 10_000), st.integers(0, 255), st.binary(max_size=64)
)


@given(step=st.integers(0, len(TO_CLIENT) - 1), change=mutation)
def test_errors_fuzzed_server_messages_end_in_alerts(
    step: int, change: tuple[int, int, int, bytes]
) -> None:
    client = client_at(step)
    epoch, message = TO_CLIENT[step]
    try:
        client.receive(epoch, mutate(message, *change))
    except AlertError as error:
        assert error.description in FUZZ_ALERTS, error


@given(step=st.integers(0, len(TO_SERVER) - 1), change=mutation)
def test_errors_fuzzed_client_messages_end_in_alerts(
    step: int, change: tuple[int, int, int, bytes]
) -> None:
    server = server_at(step)
    epoch, message = TO_SERVER[step]
    try:
        server.receive(epoch, mutate(message, *change))
    except AlertError as error:
        assert error.description in FUZZ_ALERTS, error


@given(st.binary(min_size=1, max_size=200))
def test_errors_garbage_into_a_fresh_server(data: bytes) -> None:
    server = Handshake(server_config(), transport_parameters=TRANSPORT_PARAMETERS_SERVER)
    try:
        server.receive(INITIAL, data)
    except AlertError as error:
        assert error.description in FUZZ_ALERTS, error


# --- specific alerts -----------------------------------------------------------------------


def alert_of(action: Callable[[], object]) -> A:
    with pytest.raises(AlertError) as info:
        action()
    return info.value.description


def flip_last(message: bytes) -> bytes:
    return message[:-1] + bytes((message[-1] ^ 1,))


def test_errors_bad_server_finished_is_decrypt_error() -> None:
    finished_step = len(TO_CLIENT) - 2
    client = client_at(finished_step)
    epoch, message = TO_CLIENT[finished_step]
    assert message[0] == HandshakeType.finished
    assert alert_of(lambda: client.receive(epoch, flip_last(message))) == A.decrypt_error


def test_errors_bad_client_finished_is_decrypt_error() -> None:
    step = len(TO_SERVER) - 1
    server = server_at(step)
    epoch, message = TO_SERVER[step]
    assert message[0] == HandshakeType.finished
    assert alert_of(lambda: server.receive(epoch, flip_last(message))) == A.decrypt_error


def test_errors_bad_certificate_verify_is_decrypt_error() -> None:
    step = next(i for i, (_, msg) in enumerate(TO_CLIENT) if msg[0] == 15)
    client = client_at(step)
    epoch, message = TO_CLIENT[step]
    assert alert_of(lambda: client.receive(epoch, flip_last(message))) == A.decrypt_error


def test_errors_failure_is_sticky() -> None:
    client = client_at(0)
    assert alert_of(lambda: client.receive(INITIAL, b"\x02\x00\x00\x01\x00")) == A.decode_error
    assert alert_of(lambda: client.receive(INITIAL, TO_CLIENT[0][1])) == A.decode_error
    assert client.state is State.FAILED and not client.is_complete


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"\x14\x03\x03\x00\x01\x01", "ChangeCipherSpec record"),
        (b"\x16\x03\x03\x00\x05\x02\x00\x00\x01\x00", "TLS 1.2 record header"),
        (b"\x05\x00\x00\x00", "EndOfEarlyData"),
        (b"\x18\x00\x00\x01\x00", "KeyUpdate"),
    ],
)
def test_errors_records_and_forbidden_messages_are_unexpected(data: bytes, why: str) -> None:
    for make, step in ((client_at, 0), (client_at, 1), (client_at, 6), (server_at, 0)):
        handshake = make(step)
        epoch = RECEIVE_EPOCH.get(handshake.state, HANDSHAKE)
        with pytest.raises(AlertError) as info:
            handshake.receive(epoch, data)
        assert info.value.description == A.unexpected_message, why


def test_errors_data_at_the_wrong_epoch() -> None:
    client = client_at(0)
    assert alert_of(lambda: client.receive(HANDSHAKE, TO_CLIENT[0][1])) == A.unexpected_message
    server = server_at(0)
    assert alert_of(lambda: server.receive(ONE_RTT, TO_SERVER[0][1])) == A.unexpected_message
    connected = client_at(len(TO_CLIENT))
    assert alert_of(lambda: connected.receive(HANDSHAKE, b"\x04")) == A.unexpected_message


def test_errors_data_continuing_across_a_key_change() -> None:
    client = client_at(0)
    server_hello = TO_CLIENT[0][1]
    action = lambda: client.receive(INITIAL, server_hello + b"\x08\x00")  # noqa: E731
    assert alert_of(action) == A.unexpected_message


def test_errors_oversized_message_is_refused_early() -> None:
    client = Handshake(
        client_config(max_message_size=1000), transport_parameters=TRANSPORT_PARAMETERS_CLIENT
    )
    client.start()
    for epoch, message in TO_CLIENT[:3]:
        client.receive(epoch, message)
    # the header announces 1001 bytes: refused at once, before the body is buffered
    oversized = b"\x0b\x00\x03\xe9"
    assert alert_of(lambda: client.receive(HANDSHAKE, oversized)) == A.unexpected_message
    client = client_at(3)
    assert alert_of(lambda: client.receive(HANDSHAKE, b"\x0b\x01\x00\x01")) == A.unexpected_message


def test_errors_partial_message_is_buffered_not_an_error() -> None:
    client = client_at(0)
    server_hello = TO_CLIENT[0][1]
    client.receive(INITIAL, server_hello[:3])
    client.receive(INITIAL, server_hello[3:50])
    assert client.state is State.CLIENT_WAIT_SERVER_HELLO
    client.receive(INITIAL, server_hello[50:])
    assert client.state is State.CLIENT_WAIT_ENCRYPTED_EXTENSIONS


# --- ServerHello and HelloRetryRequest faults ---------------------------------------------

SERVER_HELLO = m.parse_server_hello(TO_CLIENT[0][1][4:])


def server_hello(**changes: object) -> bytes:
    fields: dict[str, object] = {
        "random": SERVER_HELLO.random,
        "cipher_suite": SERVER_HELLO.cipher_suite,
        "extensions": SERVER_HELLO.extensions,
        "legacy_session_id_echo": b"",
    }
    fields.update(changes)
    return m.encode_server_hello(**fields)  # type: ignore[arg-type]


VERSIONS = (ExtensionType.supported_versions, ext.encode_supported_versions_server(0x0304))
KEY_SHARE = next(e for e in SERVER_HELLO.extensions if e[0] == ExtensionType.key_share)
P256_SHARE = (ExtensionType.key_share, ext.encode_key_share_server(23, b"\x04" + bytes(64)))


@pytest.mark.parametrize(
    ("changes", "alert"),
    [
        ({"cipher_suite": 0x1304}, A.illegal_parameter),
        ({"legacy_session_id_echo": b"\x01" * 32}, A.illegal_parameter),
        ({"extensions": (KEY_SHARE,)}, A.protocol_version),
        ({"extensions": (VERSIONS,)}, A.missing_extension),
        ({"extensions": (VERSIONS, KEY_SHARE, (0x1234, b""))}, A.unsupported_extension),
        ({"extensions": (VERSIONS, KEY_SHARE, KEY_SHARE)}, A.illegal_parameter),
        ({"extensions": (VERSIONS, P256_SHARE)}, A.illegal_parameter),
        (
            {"extensions": (VERSIONS, KEY_SHARE, (ExtensionType.pre_shared_key, b"\x00\x00"))},
            A.illegal_parameter,
        ),
        (
            {"extensions": (VERSIONS, KEY_SHARE, (ExtensionType.server_name, b""))},
            A.illegal_parameter,
        ),
    ],
    ids=[
        "suite-not-offered",
        "session-id-echo",
        "no-supported-versions",
        "no-key-share",
        "unknown-extension",
        "duplicate-extension",
        "share-for-unshared-group",
        "psk-not-offered",
        "offered-but-not-allowed-extension",
    ],
)
def test_errors_server_hello_faults(changes: dict[str, object], alert: A) -> None:
    client = client_at(0)
    assert alert_of(lambda: client.receive(INITIAL, server_hello(**changes))) == alert


def hello_retry(*extensions: tuple[int, bytes], suite: int = 0x1301) -> bytes:
    return m.encode_server_hello(
        random=m.HELLO_RETRY_REQUEST_RANDOM, cipher_suite=suite, extensions=[VERSIONS, *extensions]
    )


def hrr_group(group: int) -> tuple[int, bytes]:
    return (ExtensionType.key_share, ext.encode_key_share_hrr(group))


@pytest.mark.parametrize(
    ("retry", "alert"),
    [
        (hello_retry(hrr_group(NamedGroup.x25519)), A.illegal_parameter),  # already shared
        (hello_retry(hrr_group(NamedGroup.secp521r1)), A.illegal_parameter),  # not supported
        (hello_retry(), A.illegal_parameter),  # changes nothing
        (hello_retry(hrr_group(23), (ExtensionType.early_data, b"")), A.unsupported_extension),
    ],
    ids=["shared-group", "unsupported-group", "no-change", "unoffered-extension"],
)
def test_errors_hello_retry_request_faults(retry: bytes, alert: A) -> None:
    client = client_at(0)
    assert alert_of(lambda: client.receive(INITIAL, retry)) == alert


def test_errors_second_hello_retry_request_is_unexpected() -> None:
    client = client_at(0)
    client.receive(INITIAL, hello_retry(hrr_group(NamedGroup.secp256r1)))
    second = hello_retry((ExtensionType.cookie, ext.encode_cookie(b"again")))
    assert alert_of(lambda: client.receive(INITIAL, second)) == A.unexpected_message


def test_errors_server_hello_after_retry_must_keep_suite_and_group() -> None:
    client = client_at(0)
    client.receive(INITIAL, hello_retry(hrr_group(NamedGroup.secp256r1)))
    # the original x25519 ServerHello no longer fits: its share is for a dropped group
    assert alert_of(lambda: client.receive(INITIAL, TO_CLIENT[0][1])) == A.illegal_parameter
    client = client_at(0)
    client.receive(INITIAL, hello_retry(hrr_group(NamedGroup.secp256r1), suite=0x1302))
    assert alert_of(lambda: client.receive(INITIAL, TO_CLIENT[0][1])) == A.illegal_parameter


# --- ClientHello faults (server side) ------------------------------------------------------

CLIENT_HELLO = m.parse_client_hello(TO_SERVER[0][1][4:])


def client_hello(drop: int | None = None, **changes: object) -> bytes:
    fields: dict[str, object] = {
        "random": CLIENT_HELLO.random,
        "cipher_suites": CLIENT_HELLO.cipher_suites,
        "extensions": [e for e in CLIENT_HELLO.extensions if e[0] != drop],
    }
    fields.update(changes)
    return m.encode_client_hello(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("hello", "alert"),
    [
        (client_hello(legacy_session_id=b"\x07" * 32), A.illegal_parameter),
        (client_hello(legacy_compression_methods=b"\x00\x01"), A.illegal_parameter),
        (client_hello(drop=ExtensionType.supported_versions), A.protocol_version),
        (client_hello(drop=ExtensionType.quic_transport_parameters), A.missing_extension),
        (client_hello(drop=ExtensionType.key_share), A.missing_extension),
        (client_hello(drop=ExtensionType.supported_groups), A.missing_extension),
        (client_hello(drop=ExtensionType.signature_algorithms), A.missing_extension),
        (
            client_hello(drop=ExtensionType.application_layer_protocol_negotiation),
            A.no_application_protocol,
        ),
        (client_hello(cipher_suites=(0x1304, 0x00FF)), A.handshake_failure),
    ],
    ids=[
        "session-id",
        "compression",
        "no-tls13",
        "no-transport-parameters",
        "no-key-share",
        "no-supported-groups",
        "no-signature-algorithms",
        "no-alpn",
        "no-common-suite",
    ],
)
def test_errors_client_hello_faults(hello: bytes, alert: A) -> None:
    server = server_at(0)
    assert alert_of(lambda: server.receive(INITIAL, hello)) == alert


def test_errors_key_share_outside_supported_groups() -> None:
    p256_only = ext.encode_u16_list([NamedGroup.secp256r1])
    extensions = [
        (t, p256_only if t == ExtensionType.supported_groups else b)
        for t, b in CLIENT_HELLO.extensions
    ]
    hello = client_hello(extensions=extensions)
    assert alert_of(lambda: server_at(0).receive(INITIAL, hello)) == A.illegal_parameter


def test_errors_second_client_hello_must_echo_the_cookie() -> None:
    server = Handshake(
        server_config(supported_groups=(NamedGroup.secp256r1,)),
        transport_parameters=TRANSPORT_PARAMETERS_SERVER,
    )
    client = Ours(client_config())
    ((_, hello1),) = client.start()
    server.receive(INITIAL, hello1)
    (retry,) = server.take_updates()
    ((_, hello2),) = client.receive(INITIAL, retry.data)  # type: ignore[attr-defined]
    parsed = m.parse_client_hello(hello2[4:])
    no_cookie = m.encode_client_hello(
        random=parsed.random,
        cipher_suites=parsed.cipher_suites,
        extensions=[e for e in parsed.extensions if e[0] != ExtensionType.cookie],
    )
    assert alert_of(lambda: server.receive(INITIAL, no_cookie)) == A.illegal_parameter


def test_errors_client_hello_without_alpn_overlap() -> None:
    client = Ours(our_config(True, alpn_protocols=("hq-interop",)))
    assert alert_of(lambda: pump(client, Ours(our_config(False)))) == A.no_application_protocol


# --- resumption faults ---------------------------------------------------------------------


def resumption_hello() -> bytes:
    first = Ours(client_config())
    pump(first, Ours(server_config()))
    client = Ours(client_config(session_ticket=first.tickets[0], random_bytes=seeded(13)))
    ((_, hello),) = client.start()
    return hello


def test_errors_bad_psk_binder_is_decrypt_error() -> None:
    hello = resumption_hello()
    assert m.parse_client_hello(hello[4:]).pre_shared_key is not None
    assert alert_of(lambda: server_at(0).receive(INITIAL, flip_last(hello))) == A.decrypt_error


def test_errors_psk_without_modes_is_missing_extension() -> None:
    parsed = m.parse_client_hello(resumption_hello()[4:])
    hello = m.encode_client_hello(
        random=parsed.random,
        cipher_suites=parsed.cipher_suites,
        extensions=[e for e in parsed.extensions if e[0] != ExtensionType.psk_key_exchange_modes],
    )
    assert alert_of(lambda: server_at(0).receive(INITIAL, hello)) == A.missing_extension


def test_errors_server_selecting_an_unknown_identity() -> None:
    first = Ours(client_config())
    pump(first, Ours(server_config()))
    client = Ours(client_config(session_ticket=first.tickets[0]))
    server = Ours(server_config())
    ((_, hello),) = client.start()
    ((_, sh), _) = server.receive(int(INITIAL), hello)
    parsed = m.parse_server_hello(sh[4:])
    bad = m.encode_server_hello(
        random=parsed.random,
        cipher_suite=parsed.cipher_suite,
        extensions=[
            (t, b"\x00\x01" if t == ExtensionType.pre_shared_key else b)
            for t, b in parsed.extensions
        ],
    )
    assert alert_of(lambda: client.receive(int(INITIAL), bad)) == A.illegal_parameter


def test_errors_ticket_with_bad_early_data_size() -> None:
    client = client_at(len(TO_CLIENT) - 1)
    ticket = m.encode_new_session_ticket(
        ticket_lifetime=60, ticket_age_add=1, ticket_nonce=b"", ticket=b"t", max_early_data_size=16
    )
    assert alert_of(lambda: client.receive(ONE_RTT, ticket)) == A.illegal_parameter


# --- EncryptedExtensions faults ------------------------------------------------------------


def test_errors_encrypted_extensions_without_transport_parameters() -> None:
    client = Ours(our_config(True))
    server = Aioquic.server()
    server.context.handshake_extensions = []
    assert alert_of(lambda: pump(client, server)) == A.missing_extension


ALPN_H3 = (16, ext.encode_alpn([b"h3"]))


@pytest.mark.parametrize(
    ("extensions", "alert"),
    [
        ([ALPN_H3, (0x39, b"tp"), (42, b"")], A.unsupported_extension),
        ([ALPN_H3, (0x39, b"tp"), (51, b"")], A.illegal_parameter),
        ([ALPN_H3, (0x39, b"tp"), (0x4444, b"")], A.unsupported_extension),
        ([(16, ext.encode_alpn([b"h2"])), (0x39, b"tp")], A.no_application_protocol),
        ([(0x39, b"tp")], A.no_application_protocol),
        ([ALPN_H3], A.missing_extension),
    ],
    ids=["early-data-not-offered", "key-share", "unknown", "alpn-not-offered", "no-alpn", "no-tp"],
)
def test_errors_encrypted_extensions_faults(
    extensions: list[tuple[int, bytes]], alert: A
) -> None:
    client = client_at(1)
    message = m.encode_encrypted_extensions(extensions)
    assert alert_of(lambda: client.receive(HANDSHAKE, message)) == alert


def test_errors_early_data_accepted_without_resumption() -> None:
    first = Ours(client_config())
    pump(first, Ours(server_config(enable_early_data=True)))
    client = Handshake(
        client_config(session_ticket=first.tickets[0], enable_early_data=True),
        transport_parameters=TRANSPORT_PARAMETERS_CLIENT,
    )
    client.start()
    (hello, _) = client.take_updates()  # ClientHello, then the 0-RTT key
    # a server that cannot open the ticket answers with a full handshake...
    other = Handshake(server_config(ticket_key=bytes(32)), transport_parameters=b"s")
    other.receive(INITIAL, hello.data)  # type: ignore[attr-defined]
    client.receive(INITIAL, other.take_updates()[0].data)  # type: ignore[attr-defined]
    # ...but claims to accept the early data
    message = m.encode_encrypted_extensions([ALPN_H3, (0x39, b"tp"), (42, b"")])
    assert alert_of(lambda: client.receive(HANDSHAKE, message)) == A.illegal_parameter


def test_errors_empty_server_certificate_is_decode_error() -> None:
    client = client_at(2)
    empty = m.encode_certificate(b"", [])
    assert alert_of(lambda: client.receive(HANDSHAKE, empty)) == A.decode_error


# --- second ClientHello faults -------------------------------------------------------------


def retry_server_and_hello2() -> tuple[Handshake, m.ClientHello]:
    server = Handshake(
        server_config(supported_groups=(NamedGroup.secp256r1, NamedGroup.secp384r1)),
        transport_parameters=TRANSPORT_PARAMETERS_SERVER,
    )
    groups = (NamedGroup.x25519, NamedGroup.secp256r1, NamedGroup.secp384r1)
    client = Ours(client_config(supported_groups=groups))
    ((_, hello1),) = client.start()
    server.receive(INITIAL, hello1)
    (retry,) = server.take_updates()
    ((_, hello2),) = client.receive(INITIAL, retry.data)  # type: ignore[attr-defined]
    assert server.state is State.SERVER_WAIT_SECOND_CLIENT_HELLO
    return server, m.parse_client_hello(hello2[4:])


def reencode(hello: m.ClientHello, **changes: object) -> bytes:
    fields: dict[str, object] = {
        "random": hello.random,
        "cipher_suites": hello.cipher_suites,
        "extensions": hello.extensions,
    }
    fields.update(changes)
    return m.encode_client_hello(**fields)  # type: ignore[arg-type]


def with_extension(hello: m.ClientHello, ext_type: int, body: bytes) -> list[tuple[int, bytes]]:
    out = [(t, body if t == ext_type else b) for t, b in hello.extensions]
    if ext_type not in dict(hello.extensions):
        out.insert(0, (ext_type, body))
    return out


def p384_share() -> bytes:
    return ClientKeyShare(NamedGroup.secp384r1, seeded(3)).public


def test_errors_second_client_hello_faults() -> None:
    server, hello2 = retry_server_and_hello2()
    ((group, share),) = hello2.key_shares or ()
    assert group == NamedGroup.secp256r1
    cases = {
        "dropped suite": reencode(hello2, cipher_suites=(0x1302, 0x1303)),
        "other group": reencode(
            hello2,
            extensions=with_extension(
                hello2,
                ExtensionType.key_share,
                ext.encode_key_share_client([(NamedGroup.secp384r1, p384_share())]),
            ),
        ),
        "no share": reencode(
            hello2,
            extensions=with_extension(
                hello2,
                ExtensionType.key_share,
                ext.encode_key_share_client([(NamedGroup.x25519, b"\x09" * 32)]),
            ),
        ),
        "two shares": reencode(
            hello2,
            extensions=with_extension(
                hello2,
                ExtensionType.key_share,
                ext.encode_key_share_client([(group, share), (NamedGroup.secp384r1, p384_share())]),
            ),
        ),
        "early data": reencode(
            hello2, extensions=with_extension(hello2, ExtensionType.early_data, b"")
        ),
    }
    for name, hello in cases.items():
        server, _ = retry_server_and_hello2()
        with pytest.raises(AlertError) as info:
            server.receive(INITIAL, hello)
        assert info.value.description == A.illegal_parameter, name


def test_errors_psk_identities_and_binders_must_pair_up() -> None:
    parsed = m.parse_client_hello(resumption_hello()[4:])
    assert parsed.pre_shared_key is not None
    identity = parsed.pre_shared_key.identities[0]
    binder = parsed.pre_shared_key.binders[0]
    psk = ext.encode_pre_shared_key_client([identity, identity], [binder])
    hello = reencode(parsed, extensions=with_extension(parsed, ExtensionType.pre_shared_key, psk))
    assert alert_of(lambda: server_at(0).receive(INITIAL, hello)) == A.illegal_parameter


def test_errors_stale_ticket_resumes_without_early_data() -> None:
    first = Ours(client_config())
    pump(first, Ours(server_config(enable_early_data=True)))
    later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=60)
    client = Ours(client_config(session_ticket=first.tickets[0], enable_early_data=True))
    # the server's clock is a minute ahead of what the client's ticket age says
    server = Ours(server_config(enable_early_data=True, wall_clock=lambda: later))
    pump(client, server)
    assert server.handshake.session_resumed and not server.handshake.early_data_accepted


def test_errors_client_server_hello_compression_and_contexts() -> None:
    client = client_at(0)
    bad = bytearray(TO_CLIENT[0][1])
    bad[4 + 2 + 32 + 1 + 2] = 1  # legacy_compression_method
    assert alert_of(lambda: client.receive(INITIAL, bytes(bad))) == A.illegal_parameter
    client = client_at(2)
    request = m.encode_certificate_request(
        b"ctx", [(ExtensionType.signature_algorithms, ext.encode_u16_list([0x0807]))]
    )
    assert alert_of(lambda: client.receive(HANDSHAKE, request)) == A.illegal_parameter
    client = client_at(2)
    assert alert_of(
        lambda: client.receive(HANDSHAKE, m.encode_certificate_request(b"", []))
    ) == A.missing_extension
    client = client_at(3)
    certificate = m.encode_certificate(b"ctx", [ED25519.chain[0].public_bytes(Encoding.DER)])
    assert alert_of(lambda: client.receive(HANDSHAKE, certificate)) == A.illegal_parameter


def test_errors_client_certificate_context_must_match() -> None:
    server = server_at(1)
    assert server.state is State.SERVER_WAIT_CERTIFICATE
    bad = m.encode_certificate(b"x", [])
    assert alert_of(lambda: server.receive(HANDSHAKE, bad)) == A.illegal_parameter


def test_errors_client_without_a_usable_scheme_sends_no_certificate() -> None:
    # the server asks for ECDSA P-256 only; the client's key is Ed25519
    issued = leaf(KeyType.ED25519, client=True)
    client = Ours(our_config(True, certificate_chain=issued.chain, private_key=issued.private_key))
    server = Ours(our_config(False, client_auth="request", signature_algorithms=(0x0403,)))
    pump(client, server)
    assert server.handshake.peer_certificate_chain == ()
    server = Ours(our_config(False, client_auth="require", signature_algorithms=(0x0403,)))
    client = Ours(our_config(True, certificate_chain=issued.chain, private_key=issued.private_key))
    assert alert_of(lambda: pump(client, server)) == A.certificate_required


def test_errors_internal_bug_becomes_internal_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from trio_zttp._tls import client as client_module

    def broken(self: object, message: bytes) -> None:
        raise KeyError("a bug")

    table = CLIENT_TABLE[State.CLIENT_WAIT_SERVER_HELLO]
    monkeypatch.setitem(table, HandshakeType.server_hello, broken)  # type: ignore[arg-type]
    client = client_at(0)
    with pytest.raises(AlertError) as info:
        client.receive(INITIAL, TO_CLIENT[0][1])
    assert info.value.description == A.internal_error
    assert isinstance(info.value.__cause__, KeyError)
    assert client_module.ClientFlow.on_server_hello is not broken


def test_errors_start_twice_is_a_usage_error() -> None:
    client = Handshake(client_config(), transport_parameters=b"")
    client.start()
    with pytest.raises(RuntimeError):
        client.start()
