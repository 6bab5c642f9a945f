"""Session tickets: PSK derivation, sealing, client tickets, stores, 0-RTT replay defence."""

from __future__ import annotations

import datetime
import json
import random
import time
from pathlib import Path

import pytest
from aioquic import tls as aioquic_tls
from cryptography.hazmat.primitives import hashes
from hypothesis import given
from hypothesis import strategies as st

from trio_zttp._tls.suites import CipherSuite
from trio_zttp._tls.tickets import (
    MAX_TICKET_LIFETIME,
    MemoryTicketStore,
    ResumptionState,
    SessionTicket,
    SingleUseTicketGuard,
    TicketProtector,
    TicketStore,
    pop_usable_ticket,
    psk_from_resumption_secret,
)

VECTORS = Path(__file__).resolve().parent.parent / "vectors" / "tls_tickets"
KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
T0 = 1_700_000_000.0


def seeded(seed: int = 1) -> random.Random:
    return random.Random(seed)


def protector(key: bytes = KEY, seed: int = 1, previous: tuple[bytes, ...] = ()) -> TicketProtector:
    return TicketProtector(key, seeded(seed).randbytes, previous_keys=previous)


def make_state(**changes: object) -> ResumptionState:
    fields: dict[str, object] = {
        "cipher_suite": CipherSuite.AES_128_GCM_SHA256,
        "psk": b"\x11" * 32,
        "issued_at": T0,
        "lifetime": 86400,
        "age_add": 0x12345678,
        "ticket_nonce": b"\x00\x01",
        "max_early_data": 0xFFFFFFFF,
        "alpn": "h3",
        "server_name": "example.test",
        "early_data_context": b"transport parameters",
        "client_identity": None,
    }
    fields.update(changes)
    return ResumptionState(**fields)  # type: ignore[arg-type]


def make_ticket(**changes: object) -> SessionTicket:
    fields: dict[str, object] = {
        "ticket": b"opaque ticket",
        "psk": b"\x22" * 32,
        "cipher_suite": CipherSuite.AES_128_GCM_SHA256,
        "server_name": "example.test",
        "received_at": T0,
        "lifetime": 3600,
        "age_add": 0xDEADBEEF,
        "max_early_data_size": 0xFFFFFFFF,
        "alpn": "h3",
        "quic_version": 1,
        "peer_transport_parameters": b"\x01\x02",
        "peer_application_settings": None,
    }
    fields.update(changes)
    return SessionTicket(**fields)  # type: ignore[arg-type]


# ------------------------------------------------------------------ PSK derivation


@pytest.mark.parametrize("vector", json.loads((VECTORS / "psk.json").read_text()))
def test_tickets_psk_matches_rfc8448(vector: dict[str, str]) -> None:
    psk = psk_from_resumption_secret(
        vector["hash"],
        bytes.fromhex(vector["resumption_master_secret"]),
        bytes.fromhex(vector["ticket_nonce"]),
    )
    assert psk == bytes.fromhex(vector["psk"])


@given(
    sha384=st.booleans(),
    secret=st.binary(min_size=48, max_size=48),
    nonce=st.binary(max_size=255),
)
def test_tickets_psk_matches_aioquic(sha384: bool, secret: bytes, nonce: bytes) -> None:
    algorithm: hashes.HashAlgorithm = hashes.SHA384() if sha384 else hashes.SHA256()
    secret = secret[: algorithm.digest_size]
    theirs = aioquic_tls.hkdf_expand_label(
        algorithm, secret, b"resumption", nonce, algorithm.digest_size
    )
    assert psk_from_resumption_secret(algorithm.name, secret, nonce) == theirs


# ------------------------------------------------------------------ server: ResumptionState


@pytest.mark.parametrize(
    "changes",
    [
        {"age_add": -1},
        {"age_add": 1 << 32},
        {"max_early_data": 1 << 32},
        {"lifetime": MAX_TICKET_LIFETIME + 1},
        {"lifetime": -1},
    ],
)
def test_tickets_state_rejects_out_of_range(changes: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        make_state(**changes)


def test_tickets_state_expiry() -> None:
    state = make_state(lifetime=100)
    assert state.expires_at == T0 + 100
    assert not state.is_expired(T0)
    assert not state.is_expired(T0 + 99.999)
    assert state.is_expired(T0 + 100)
    assert make_state(lifetime=0).is_expired(T0)


def test_tickets_client_age_round_trips_through_obfuscation() -> None:
    # the client obfuscates, the server recovers the age the client measured
    for age_add in (0, 0x12345678, 0xFFFFFFFF):
        state = make_state(age_add=age_add)
        ticket = make_ticket(age_add=age_add, received_at=T0 + 0.05)
        obfuscated = ticket.obfuscated_age(T0 + 12.345)
        assert state.client_ticket_age(obfuscated) == pytest.approx(12.295)


def test_tickets_freshness_window() -> None:
    state = make_state(age_add=0xFFFFFF00)  # forces modular wrap-around
    client = make_ticket(age_add=0xFFFFFF00, received_at=T0 + 0.04)
    hello_age = client.obfuscated_age(T0 + 20.0)
    # delivered promptly: the server's view agrees within one round trip
    assert state.is_fresh(hello_age, T0 + 20.05)
    # the same ClientHello replayed later is stale
    assert not state.is_fresh(hello_age, T0 + 20.05 + 30)
    assert state.is_fresh(hello_age, T0 + 20.05 + 30, window=60)
    assert not state.is_fresh(hello_age, T0 + 20.05 + 5, window=1)
    # a client claiming an age far older than the ticket is not fresh either
    assert not state.is_fresh(make_ticket(received_at=T0 - 3600).obfuscated_age(T0), T0 + 1)
    # expired tickets are never fresh
    short = make_state(lifetime=10, age_add=0)
    assert not short.is_fresh(make_ticket(age_add=0).obfuscated_age(T0 + 10), T0 + 10)


# ------------------------------------------------------------------ server: TicketProtector

states = st.builds(
    ResumptionState,
    cipher_suite=st.sampled_from(list(CipherSuite)),
    psk=st.binary(min_size=32, max_size=48),
    issued_at=st.floats(min_value=0, max_value=4e9),
    lifetime=st.integers(0, MAX_TICKET_LIFETIME),
    age_add=st.integers(0, 2**32 - 1),
    ticket_nonce=st.binary(max_size=255),
    max_early_data=st.sampled_from([0, 0xFFFFFFFF, 16384]),
    alpn=st.none() | st.text(min_size=1, max_size=20),
    server_name=st.none() | st.text(max_size=60),
    early_data_context=st.binary(max_size=300),
    client_identity=st.none() | st.binary(max_size=300),
)


@given(state=states)
def test_tickets_seal_open_round_trip(state: ResumptionState) -> None:
    sealer = protector()
    ticket = sealer.seal(state)
    assert sealer.open(ticket) == state
    assert state.psk not in ticket


def test_tickets_seal_is_randomised() -> None:
    sealer = protector()
    first, second = sealer.seal(make_state()), sealer.seal(make_state())
    assert first != second
    assert first[:4] == second[:4]  # same key id prefix
    assert sealer.open(first) == sealer.open(second) == make_state()


def test_tickets_seal_uses_injected_randomness() -> None:
    assert protector(seed=7).seal(make_state()) == protector(seed=7).seal(make_state())
    assert protector(seed=7).seal(make_state()) != protector(seed=8).seal(make_state())


def test_tickets_tampering_any_byte_gives_none() -> None:
    sealer = protector()
    ticket = sealer.seal(make_state())
    for i in range(len(ticket)):
        for bit in (0x01, 0x80):
            tampered = bytearray(ticket)
            tampered[i] ^= bit
            assert sealer.open(bytes(tampered)) is None, i


def test_tickets_truncation_and_extension_give_none() -> None:
    sealer = protector()
    ticket = sealer.seal(make_state())
    for n in range(len(ticket)):
        assert sealer.open(ticket[:n]) is None, n
    assert sealer.open(ticket + b"\x00") is None


@given(garbage=st.binary(max_size=400))
def test_tickets_garbage_gives_none(garbage: bytes) -> None:
    sealer = protector()
    assert sealer.open(garbage) is None
    # even when the garbage carries our key id prefix
    prefix = sealer.seal(make_state())[:4]
    assert sealer.open(prefix + garbage) is None


def test_tickets_other_key_gives_none() -> None:
    ticket = protector(KEY).seal(make_state())
    assert protector(OTHER_KEY).open(ticket) is None
    assert protector(KEY).open(ticket) == make_state()


def test_tickets_key_rotation() -> None:
    old = protector(KEY)
    old_ticket = old.seal(make_state(alpn="old"))
    rotated = protector(OTHER_KEY, previous=(KEY,))
    new_ticket = rotated.seal(make_state(alpn="new"))
    assert new_ticket[:4] != old_ticket[:4]
    assert rotated.open(old_ticket) == make_state(alpn="old")
    assert rotated.open(new_ticket) == make_state(alpn="new")
    # the old key's protector does not know the new key; a fully retired key is refused
    assert old.open(new_ticket) is None
    assert protector(OTHER_KEY).open(old_ticket) is None


def test_tickets_protector_needs_32_byte_keys() -> None:
    with pytest.raises(ValueError):
        TicketProtector(b"short", seeded().randbytes)
    with pytest.raises(ValueError):
        TicketProtector(KEY, seeded().randbytes, previous_keys=[b"x" * 16])


# ------------------------------------------------------------------ client: SessionTicket


def test_tickets_obfuscated_age_formula() -> None:
    ticket = make_ticket(age_add=0xFFFFFFF0, received_at=T0)
    assert ticket.obfuscated_age(T0) == 0xFFFFFFF0
    assert ticket.obfuscated_age(T0 + 0.016) == (16 + 0xFFFFFFF0) % 2**32 == 0
    assert ticket.obfuscated_age(T0 + 2.5) == 2500 - 16
    # a clock that went backwards never yields a negative age
    assert ticket.obfuscated_age(T0 - 10) == 0xFFFFFFF0


def test_tickets_obfuscated_age_matches_aioquic() -> None:
    received = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=42)
    theirs = aioquic_tls.SessionTicket(
        age_add=0x9ABCDEF0,
        cipher_suite=aioquic_tls.CipherSuite.AES_128_GCM_SHA256,
        not_valid_after=received + datetime.timedelta(hours=1),
        not_valid_before=received,
        resumption_secret=b"\x00" * 32,
        server_name="example.test",
        ticket=b"t",
    )
    ours = make_ticket(age_add=0x9ABCDEF0, received_at=received.timestamp())
    ours_value = ours.obfuscated_age(time.time())
    theirs_value = theirs.obfuscated_age
    assert abs(ours_value - theirs_value) < 200  # both read "now" a few ms apart


def test_tickets_client_expiry() -> None:
    ticket = make_ticket(lifetime=60)
    assert not ticket.is_expired(T0 + 59.9)
    assert ticket.is_expired(T0 + 60)
    assert make_ticket(lifetime=0).is_expired(T0)
    # lifetimes beyond seven days are capped when used
    long = make_ticket(lifetime=2 * MAX_TICKET_LIFETIME)
    assert not long.is_expired(T0 + MAX_TICKET_LIFETIME - 1)
    assert long.is_expired(T0 + MAX_TICKET_LIFETIME)


def test_tickets_allows_early_data() -> None:
    assert make_ticket().allows_early_data
    assert not make_ticket(max_early_data_size=0).allows_early_data


session_tickets = st.builds(
    SessionTicket,
    ticket=st.binary(min_size=1, max_size=300),
    psk=st.binary(min_size=32, max_size=48),
    cipher_suite=st.sampled_from(list(CipherSuite)),
    server_name=st.text(max_size=60),
    received_at=st.floats(min_value=0, max_value=4e9),
    lifetime=st.integers(0, 2**32 - 1),
    age_add=st.integers(0, 2**32 - 1),
    max_early_data_size=st.integers(0, 2**32 - 1),
    alpn=st.none() | st.text(min_size=1, max_size=20),
    quic_version=st.none() | st.integers(0, 2**32 - 1),
    peer_transport_parameters=st.none() | st.binary(max_size=200),
    peer_application_settings=st.none() | st.binary(max_size=200),
)


@given(ticket=session_tickets)
def test_tickets_serialisation_round_trip(ticket: SessionTicket) -> None:
    assert SessionTicket.from_bytes(ticket.to_bytes()) == ticket


def test_tickets_serialisation_truncated_at_every_byte_is_value_error() -> None:
    data = make_ticket(peer_application_settings=b"settings").to_bytes()
    for n in range(len(data)):
        with pytest.raises(ValueError):
            SessionTicket.from_bytes(data[:n])
    with pytest.raises(ValueError):
        SessionTicket.from_bytes(data + b"\x00")


def test_tickets_serialisation_rejects_foreign_data() -> None:
    data = bytearray(make_ticket().to_bytes())
    with pytest.raises(ValueError):
        SessionTicket.from_bytes(b"garbage" + bytes(data))
    data[4] = 2  # unknown format version
    with pytest.raises(ValueError):
        SessionTicket.from_bytes(bytes(data))


def test_tickets_serialisation_rejects_bad_fields() -> None:
    good = make_ticket(ticket=b"T", psk=b"P").to_bytes()
    suite_at = good.index(b"P") + 1
    bad_suite = good[:suite_at] + b"\x13\x09" + good[suite_at + 2 :]
    with pytest.raises(ValueError):
        SessionTicket.from_bytes(bad_suite)


# ------------------------------------------------------------------ client: stores


def test_tickets_memory_store_most_recent_first() -> None:
    store: TicketStore = MemoryTicketStore()
    first, second = make_ticket(ticket=b"1"), make_ticket(ticket=b"2")
    store.add(first)
    store.add(second)
    store.add(make_ticket(ticket=b"other", server_name="other.test"))
    assert store.pop("example.test") == second
    assert store.pop("example.test") == first
    assert store.pop("example.test") is None
    assert store.pop("unknown.test") is None
    assert store.pop("other.test") is not None


def test_tickets_memory_store_bounds() -> None:
    store = MemoryTicketStore(max_per_server=2, max_servers=3)
    for i in range(5):
        store.add(make_ticket(ticket=bytes([i])))
    assert len(store) == 2
    assert [store.pop("example.test"), store.pop("example.test")] == [
        make_ticket(ticket=b"\x04"),
        make_ticket(ticket=b"\x03"),
    ]
    for name in ["a", "b", "c"]:
        store.add(make_ticket(server_name=name))
    store.add(make_ticket(server_name="a", ticket=b"again"))  # "a" becomes most recent
    store.add(make_ticket(server_name="d"))  # evicts "b", the least recently added to
    assert len(store) == 4
    assert store.pop("b") is None
    assert store.pop("a") == make_ticket(server_name="a", ticket=b"again")
    assert store.pop("c") is not None and store.pop("d") is not None


def test_tickets_memory_store_limits_must_be_positive() -> None:
    with pytest.raises(ValueError):
        MemoryTicketStore(max_per_server=0)


def test_tickets_pop_usable_skips_expired() -> None:
    store = MemoryTicketStore()
    store.add(make_ticket(ticket=b"fresh", received_at=T0, lifetime=3600))
    store.add(make_ticket(ticket=b"stale", received_at=T0 - 7200, lifetime=3600))
    ticket = pop_usable_ticket(store, "example.test", T0 + 1)
    assert ticket is not None and ticket.ticket == b"fresh"
    assert len(store) == 0
    assert pop_usable_ticket(store, "example.test", T0 + 1) is None


def test_tickets_pop_usable_is_bounded_for_endless_stores() -> None:
    class EndlessExpired:
        def add(self, ticket: SessionTicket) -> None:
            pass

        def pop(self, server_name: str) -> SessionTicket | None:
            return make_ticket(lifetime=0)

    assert pop_usable_ticket(EndlessExpired(), "example.test", T0) is None


# ------------------------------------------------------------------ 0-RTT replay guard


def test_tickets_guard_second_use_rejected() -> None:
    guard = SingleUseTicketGuard()
    assert guard.use(b"ticket-a", expires_at=T0 + 10, now=T0)
    assert not guard.use(b"ticket-a", expires_at=T0 + 10, now=T0 + 1)
    assert guard.use(b"ticket-b", expires_at=T0 + 10, now=T0 + 1)
    assert not guard.use(b"ticket-b", expires_at=T0 + 10, now=T0 + 9.9)
    assert len(guard) == 2


def test_tickets_guard_forgets_after_expiry() -> None:
    guard = SingleUseTicketGuard()
    assert guard.use(b"a", expires_at=T0 + 10, now=T0)
    assert guard.use(b"b", expires_at=T0 + 20, now=T0)
    assert not guard.use(b"c", expires_at=T0 + 5, now=T0 + 5)  # already expired: refuse
    guard.use(b"probe", expires_at=T0 + 30, now=T0 + 10)
    assert len(guard) == 2  # "a" evicted, "b" and "probe" remain
    assert not guard.use(b"b", expires_at=T0 + 20, now=T0 + 19)


def test_tickets_guard_full_rejects_instead_of_growing() -> None:
    guard = SingleUseTicketGuard(capacity=3)
    for i in range(3):
        assert guard.use(bytes([i]), expires_at=T0 + 100 + i, now=T0)
    assert not guard.use(b"new", expires_at=T0 + 100, now=T0 + 1)
    assert len(guard) == 3
    # a rejected ticket was not recorded: it succeeds once space frees up
    assert guard.use(b"new", expires_at=T0 + 200, now=T0 + 100)
    assert len(guard) == 3


def test_tickets_guard_memory_stays_bounded() -> None:
    guard = SingleUseTicketGuard(capacity=100)
    rng = seeded(3)
    accepted = 0
    now = T0
    for _ in range(2000):
        now += rng.random() * 0.1
        accepted += guard.use(rng.randbytes(16), expires_at=now + 5, now=now)
        assert len(guard) <= 100
    assert 0 < accepted < 2000


def test_tickets_guard_with_protector_end_to_end() -> None:
    # a server accepting 0-RTT: open, check freshness, then allow each ticket once
    sealer = protector()
    guard = SingleUseTicketGuard()
    state = make_state(issued_at=T0, age_add=77)
    ticket_bytes = sealer.seal(state)
    client = make_ticket(ticket=ticket_bytes, age_add=77, received_at=T0 + 0.02)
    age = client.obfuscated_age(T0 + 5)

    def accept_early_data(now: float) -> bool:
        opened = sealer.open(ticket_bytes)
        return (
            opened is not None
            and opened.is_fresh(age, now)
            and guard.use(ticket_bytes, expires_at=opened.expires_at, now=now)
        )

    assert accept_early_data(T0 + 5.02)
    assert not accept_early_data(T0 + 5.03)  # replay inside the window
    assert not accept_early_data(T0 + 60)  # replay outside the window


def test_tickets_guard_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError):
        SingleUseTicketGuard(capacity=0)
