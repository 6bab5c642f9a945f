"""Transport parameters (RFC 9000 §18, RFC 9221 §3, RFC 9287 §3, RFC 9368 §3)."""

from __future__ import annotations

import ipaddress
import json
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.shared_vectors import shared_vectors
from trio_zttp._buffer import encode_varint
from trio_zttp.quic._errors import TransportErrorCode, TransportParameterError
from trio_zttp.quic._packet import QUIC_V1, QUIC_V2, parse_header
from trio_zttp.quic._params import (
    PARAMETER_IDS,
    PreferredAddress,
    TransportParameters,
    VersionInformation,
    check_peer_parameters,
    decode_transport_parameters,
    encode_transport_parameters,
    grease_parameter_id,
)

SHARED = shared_vectors("quic-initials")
TOKEN = bytes(range(16))
PREFERRED = PreferredAddress(
    ipv4=("192.0.2.7", 4433), ipv6=("2001:db8::7", 4434), connection_id=b"\x0c" * 8,
    stateless_reset_token=TOKEN,
)  # fmt: skip
# Every parameter with a non-default value.
FULL = TransportParameters(
    original_destination_connection_id=b"\x00" * 8,
    max_idle_timeout=30_000,
    stateless_reset_token=b"\xee" * 16,
    max_udp_payload_size=1472,
    initial_max_data=1 << 20,
    initial_max_stream_data_bidi_local=1 << 18,
    initial_max_stream_data_bidi_remote=1 << 17,
    initial_max_stream_data_uni=1 << 16,
    initial_max_streams_bidi=100,
    initial_max_streams_uni=3,
    ack_delay_exponent=10,
    max_ack_delay=100,
    disable_active_migration=True,
    preferred_address=PREFERRED,
    active_connection_id_limit=8,
    initial_source_connection_id=b"\x0f" * 5,
    retry_source_connection_id=b"\x10" * 20,
    version_information=VersionInformation(
        chosen_version=QUIC_V1, available_versions=(QUIC_V1, QUIC_V2)),
    max_datagram_frame_size=65536,
    grease_quic_bit=True,
    unknown=((grease_parameter_id(5), b"grease"), (0x3127, b"\x52\x08")),  # ascending
)  # fmt: skip


def tp(pid: int, value: bytes) -> bytes:
    """One parameter on the wire, built by hand (RFC 9000 §18 Figure 21)."""
    return encode_varint(pid) + encode_varint(len(value)) + value


def decode_error(data: bytes) -> TransportParameterError:
    with pytest.raises(TransportParameterError) as info:
        decode_transport_parameters(data)
    assert info.value.error_code == TransportErrorCode.TRANSPORT_PARAMETER_ERROR
    return info.value


# --- defaults and the encoder -------------------------------------------------------------


def test_params_defaults_from_rfc() -> None:
    params = TransportParameters()
    assert params.max_udp_payload_size == 65527
    assert params.ack_delay_exponent == 3
    assert params.max_ack_delay == 25
    assert params.active_connection_id_limit == 2
    assert params.max_idle_timeout == 0 and params.initial_max_data == 0
    assert params.max_datagram_frame_size == 0
    assert params.initial_source_connection_id is None and params.preferred_address is None
    assert not params.disable_active_migration and not params.grease_quic_bit
    assert params.unknown == ()
    assert encode_transport_parameters(params) == b""
    assert decode_transport_parameters(b"") == params


def test_params_ids_are_the_registered_ones() -> None:
    assert PARAMETER_IDS[0x00] == "original_destination_connection_id"
    assert PARAMETER_IDS[0x10] == "retry_source_connection_id"
    assert PARAMETER_IDS[0x11] == "version_information"
    assert PARAMETER_IDS[0x20] == "max_datagram_frame_size"
    assert PARAMETER_IDS[0x2AB2] == "grease_quic_bit"
    fields = {f.name for f in attrs.fields(TransportParameters)} - {"unknown"}
    assert set(PARAMETER_IDS.values()) == fields


def test_encode_ascending_non_default_only() -> None:
    params = TransportParameters(
        initial_source_connection_id=b"\x01\x02", max_idle_timeout=30_000,
        ack_delay_exponent=3, disable_active_migration=True,
    )  # fmt: skip
    assert encode_transport_parameters(params) == (
        tp(0x01, bytes.fromhex("80007530")) + tp(0x0C, b"") + tp(0x0F, b"\x01\x02")
    )


def test_encode_explicit_order_and_defaults_listed() -> None:
    params = TransportParameters(
        initial_source_connection_id=b"", initial_max_data=10, max_udp_payload_size=1350,
    )  # fmt: skip
    data = encode_transport_parameters(params, order=[0x0F, 0x0A, 0x04, 0x00, 0x03, 0x0C])
    # 0x0a is default but listed: sent; 0x00 is absent: skipped; 0x0c is False: skipped.
    assert data == (
        tp(0x0F, b"") + tp(0x0A, b"\x03") + tp(0x04, b"\x0a") + tp(0x03, bytes.fromhex("4546"))
    )
    assert decode_transport_parameters(data) == params


def test_encode_order_must_cover_non_default() -> None:
    params = TransportParameters(initial_max_data=10, max_idle_timeout=5)
    with pytest.raises(ValueError):
        encode_transport_parameters(params, order=[0x04])
    with pytest.raises(ValueError):
        encode_transport_parameters(params, order=[0x04, 0x01, 0x04])


def test_encode_extra_and_grease() -> None:
    assert [grease_parameter_id(n) for n in range(3)] == [27, 58, 89]
    with pytest.raises(ValueError):
        grease_parameter_id(-1)
    params = TransportParameters(initial_max_data=10, unknown=((0x3128, b"B2ON"),))
    g1, g2 = grease_parameter_id(7), grease_parameter_id(1000)
    extra = [(g1, b""), (g2, b"\x01\x02\x03")]
    # Default order: everything ascending.
    assert encode_transport_parameters(params, extra=extra) == (
        tp(0x04, b"\x0a") + tp(g1, b"") + tp(0x3128, b"B2ON") + tp(g2, b"\x01\x02\x03")
    )
    # Explicit order positions listed raw ids; unlisted ones follow in given order.
    assert encode_transport_parameters(params, order=[g2, 0x04], extra=extra) == (
        tp(g2, b"\x01\x02\x03") + tp(0x04, b"\x0a") + tp(0x3128, b"B2ON") + tp(g1, b"")
    )
    decoded = decode_transport_parameters(encode_transport_parameters(params, extra=extra))
    assert decoded.unknown == ((g1, b""), (0x3128, b"B2ON"), (g2, b"\x01\x02\x03"))


def test_encode_extra_known_id_raw_encoding() -> None:
    # A preset may send a known parameter with its own encoding (here a 4-byte varint 25).
    data = encode_transport_parameters(TransportParameters(), extra=[(0x0B, b"\x80\x00\x00\x19")])
    assert data == tp(0x0B, b"\x80\x00\x00\x19")
    assert decode_transport_parameters(data) == TransportParameters()
    with pytest.raises(ValueError):
        encode_transport_parameters(TransportParameters(max_ack_delay=30), extra=[(0x0B, b"\x01")])
    with pytest.raises(ValueError):
        encode_transport_parameters(TransportParameters(), extra=[(27, b""), (27, b"")])


@pytest.mark.parametrize(
    "changes",
    [
        {"max_udp_payload_size": 1199},
        {"ack_delay_exponent": 21},
        {"max_ack_delay": 1 << 14},
        {"active_connection_id_limit": 1},
        {"initial_max_streams_bidi": (1 << 60) + 1},
        {"initial_max_streams_uni": (1 << 60) + 1},
        {"initial_max_data": 1 << 62},
        {"max_idle_timeout": -1},
        {"stateless_reset_token": b"\x00" * 15},
        {"initial_source_connection_id": b"\x00" * 21},
        {"original_destination_connection_id": b"\x00" * 21},
        {"preferred_address": attrs.evolve(PREFERRED, connection_id=b"")},
        {"preferred_address": attrs.evolve(PREFERRED, stateless_reset_token=b"x")},
        {"preferred_address": attrs.evolve(PREFERRED, ipv4=("2001:db8::1", 1))},
        {"preferred_address": attrs.evolve(PREFERRED, ipv6=("192.0.2.1", 1))},
        {"preferred_address": attrs.evolve(PREFERRED, ipv4=("192.0.2.1", 70000))},
        {"preferred_address": attrs.evolve(PREFERRED, ipv4=("example.com", 1))},
        {"version_information": VersionInformation(chosen_version=0)},
        {"version_information": VersionInformation(chosen_version=1, available_versions=(0,))},
        {"unknown": ((0x01, b"\x01"),)},
    ],
)
def test_encode_rejects_invalid_values(changes: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        encode_transport_parameters(attrs.evolve(TransportParameters(), **changes))


# --- decoder ---------------------------------------------------------------------------------


def test_decode_full_round_trip_and_wire_shape() -> None:
    data = encode_transport_parameters(FULL)
    assert decode_transport_parameters(data) == FULL
    assert decode_transport_parameters(bytearray(data)) == FULL
    assert decode_transport_parameters(memoryview(data)) == FULL
    pa = (
        bytes.fromhex("c0000207") + (4433).to_bytes(2, "big")
        + ipaddress.IPv6Address("2001:db8::7").packed + (4434).to_bytes(2, "big")
        + b"\x08" + b"\x0c" * 8 + TOKEN
    )  # fmt: skip
    assert tp(0x0D, pa) in data
    assert tp(0x11, bytes.fromhex("00000001" "00000001" "6b3343cf")) in data
    assert tp(0x2AB2, b"") in data


def test_decode_truncated_at_every_byte() -> None:
    # Build the blob one parameter at a time, so the boundaries are known independently.
    pieces: list[bytes] = []
    for pid, name in PARAMETER_IDS.items():
        value = getattr(FULL, name)
        single = encode_transport_parameters(attrs.evolve(TransportParameters(), **{name: value}))
        assert single.startswith(encode_varint(pid))
        pieces.append(single)
    pieces += [tp(pid, raw) for pid, raw in FULL.unknown]
    data = b"".join(pieces)
    assert decode_transport_parameters(data) == FULL
    boundaries = {sum(len(p) for p in pieces[:i]) for i in range(len(pieces) + 1)}
    for cut in range(len(data)):
        if cut in boundaries:
            decode_transport_parameters(data[:cut])
        else:
            decode_error(data[:cut])


@pytest.mark.parametrize(
    "data",
    [
        tp(0x01, b"\x05") + tp(0x01, b"\x05"),
        tp(0x0F, b"") + tp(0x04, b"\x01") + tp(0x0F, b"\x01"),
        tp(27, b"") + tp(27, b""),
        tp(0x2AB2, b"") + tp(0x2AB2, b""),
    ],
)
def test_decode_duplicate_ids(data: bytes) -> None:
    decode_error(data)


@pytest.mark.parametrize(
    "value", [b"", b"\x05\x00", b"\x40", b"\x40\x05\x00", b"\x80\x00\x00", b"\xc0" + bytes(6)]
)
def test_decode_varint_must_fill_value(value: bytes) -> None:
    for pid in (0x01, 0x03, 0x04, 0x0A, 0x20):
        decode_error(tp(pid, value) + tp(0x0F, b""))


def test_decode_varint_non_minimal_accepted() -> None:
    eight_byte_one = b"\xc0" + bytes(6) + b"\x01"
    params = decode_transport_parameters(tp(0x04, b"\x40\x0a") + tp(0x01, eight_byte_one))
    assert (params.initial_max_data, params.max_idle_timeout) == (10, 1)


@pytest.mark.parametrize(
    ("pid", "bad", "good"),
    [
        (0x03, 1199, 1200),
        (0x0A, 21, 20),
        (0x0B, 1 << 14, (1 << 14) - 1),
        (0x0E, 1, 2),
        (0x0E, 0, 2),
        (0x08, (1 << 60) + 1, 1 << 60),
        (0x09, (1 << 60) + 1, 1 << 60),
    ],
)
def test_decode_integer_limits(pid: int, bad: int, good: int) -> None:
    decode_error(tp(pid, encode_varint(bad)))
    params = decode_transport_parameters(tp(pid, encode_varint(good)))
    assert getattr(params, PARAMETER_IDS[pid]) == good


@pytest.mark.parametrize("length", [0, 1, 15, 17, 32])
def test_decode_stateless_reset_token_length(length: int) -> None:
    decode_error(tp(0x02, b"\x01" * length))
    assert decode_transport_parameters(tp(0x02, TOKEN)).stateless_reset_token == TOKEN


@pytest.mark.parametrize("pid", [0x00, 0x0F, 0x10])
def test_decode_connection_id_lengths(pid: int) -> None:
    decode_error(tp(pid, b"\x01" * 21))
    name = PARAMETER_IDS[pid]
    assert getattr(decode_transport_parameters(tp(pid, b"\x01" * 20)), name) == b"\x01" * 20
    assert getattr(decode_transport_parameters(tp(pid, b"")), name) == b""


@pytest.mark.parametrize("pid", [0x0C, 0x2AB2])
def test_decode_flags_must_be_empty(pid: int) -> None:
    decode_error(tp(pid, b"\x00"))
    assert getattr(decode_transport_parameters(tp(pid, b"")), PARAMETER_IDS[pid]) is True


def preferred_wire(cid: bytes, token: bytes = TOKEN, tail: bytes = b"") -> bytes:
    prefix = bytes(4) + b"\x00\x00" + bytes(16) + b"\x01\xbb"  # no IPv4, [::]:443
    return prefix + bytes((len(cid),)) + cid + token + tail


def test_decode_preferred_address() -> None:
    params = decode_transport_parameters(tp(0x0D, preferred_wire(b"\x09" * 4)))
    assert params.preferred_address == PreferredAddress(
        ipv4=None, ipv6=("::", 443), connection_id=b"\x09" * 4, stateless_reset_token=TOKEN
    )
    decode_error(tp(0x0D, preferred_wire(b"")))  # zero-length CID (RFC 9000 §18.2)
    decode_error(tp(0x0D, preferred_wire(b"\x09" * 21)))
    decode_error(tp(0x0D, preferred_wire(b"\x09" * 4, tail=b"\x00")))
    whole = preferred_wire(b"\x09" * 4)
    for cut in range(len(whole)):
        decode_error(tp(0x0D, whole[:cut]))


@pytest.mark.parametrize(
    "value",
    ["", "000000", "00000001" "0000", "00000000", "00000000" "00000001",
     "00000001" "00000000", "00000001" "6b3343cf" "00"],
)  # fmt: skip
def test_decode_version_information_invalid(value: str) -> None:
    decode_error(tp(0x11, bytes.fromhex(value)))


def test_decode_version_information_valid() -> None:
    params = decode_transport_parameters(tp(0x11, bytes.fromhex("6b3343cf")))
    assert params.version_information == VersionInformation(chosen_version=QUIC_V2)
    params = decode_transport_parameters(tp(0x11, bytes.fromhex("00000001" "0a1a2a3a" "00000001")))
    assert params.version_information == VersionInformation(
        chosen_version=QUIC_V1, available_versions=(0x0A1A2A3A, QUIC_V1)
    )


def test_decode_unknown_kept_in_wire_order() -> None:
    data = tp(0xFF73DB, b"\x00\x00\x00\x01") + tp(0x04, b"\x01") + tp(27, b"") + tp(0x4752, b"x")
    params = decode_transport_parameters(data)
    assert params.unknown == ((0xFF73DB, b"\x00\x00\x00\x01"), (27, b""), (0x4752, b"x"))
    assert params.initial_max_data == 1
    # Re-encoded in the same order when the order is given.
    assert encode_transport_parameters(params, order=[0xFF73DB, 0x04, 27, 0x4752]) == data


# --- hypothesis ------------------------------------------------------------------------------

varints = st.integers(0, (1 << 62) - 1)
cid_values = st.binary(max_size=20)


@st.composite
def addresses(draw: st.DrawFn, version: int) -> tuple[str, int] | None:
    if draw(st.booleans()):
        return None
    size = 4 if version == 4 else 16
    raw = draw(st.binary(min_size=size, max_size=size).filter(any))
    return str(ipaddress.ip_address(raw)), draw(st.integers(0, 0xFFFF))


preferred_addresses = st.builds(
    PreferredAddress, ipv4=addresses(4), ipv6=addresses(6),
    connection_id=st.binary(min_size=1, max_size=20),
    stateless_reset_token=st.binary(min_size=16, max_size=16),
)  # fmt: skip
version_lists = st.lists(st.integers(1, 0xFFFFFFFF), max_size=5).map(tuple)
version_informations = st.builds(
    VersionInformation, chosen_version=st.integers(1, 0xFFFFFFFF), available_versions=version_lists
)
unknown_ids = st.integers(0x40, (1 << 62) - 1).filter(lambda pid: pid not in PARAMETER_IDS)
transport_parameters = st.builds(
    TransportParameters,
    original_destination_connection_id=st.none() | cid_values,
    max_idle_timeout=varints,
    stateless_reset_token=st.none() | st.binary(min_size=16, max_size=16),
    max_udp_payload_size=st.integers(1200, (1 << 62) - 1),
    initial_max_data=varints,
    initial_max_stream_data_bidi_local=varints,
    initial_max_stream_data_bidi_remote=varints,
    initial_max_stream_data_uni=varints,
    initial_max_streams_bidi=st.integers(0, 1 << 60),
    initial_max_streams_uni=st.integers(0, 1 << 60),
    ack_delay_exponent=st.integers(0, 20),
    max_ack_delay=st.integers(0, (1 << 14) - 1),
    disable_active_migration=st.booleans(),
    preferred_address=st.none() | preferred_addresses,
    active_connection_id_limit=st.integers(2, (1 << 62) - 1),
    initial_source_connection_id=st.none() | cid_values,
    retry_source_connection_id=st.none() | cid_values,
    version_information=st.none() | version_informations,
    max_datagram_frame_size=varints,
    grease_quic_bit=st.booleans(),
    unknown=st.lists(st.tuples(unknown_ids, st.binary(max_size=20)), max_size=4,
                     unique_by=lambda item: item[0]).map(tuple),
)  # fmt: skip


def wire_order(params: TransportParameters) -> TransportParameters:
    """Decoding with the default encoder sorts unknown parameters by id."""
    return attrs.evolve(params, unknown=tuple(sorted(params.unknown)))


@given(transport_parameters)
def test_params_round_trip(params: TransportParameters) -> None:
    assert decode_transport_parameters(encode_transport_parameters(params)) == wire_order(params)


@given(transport_parameters, st.randoms(use_true_random=False))
def test_params_round_trip_any_order(params: TransportParameters, rng: Any) -> None:
    ids = list(PARAMETER_IDS) + [pid for pid, _ in params.unknown]
    rng.shuffle(ids)
    data = encode_transport_parameters(params, order=ids)
    decoded = decode_transport_parameters(data)
    assert attrs.evolve(decoded, unknown=()) == attrs.evolve(params, unknown=())
    position = {pid: i for i, pid in enumerate(ids)}
    assert [pid for pid, _ in decoded.unknown] == sorted(
        (pid for pid, _ in params.unknown), key=position.__getitem__)  # fmt: skip


# --- check_peer_parameters --------------------------------------------------------------------

CLIENT = TransportParameters(initial_source_connection_id=b"\x01" * 8, initial_max_data=100)
SERVER = attrs.evolve(CLIENT, original_destination_connection_id=b"\x02" * 8)


@pytest.mark.parametrize(
    "changes",
    [
        {"original_destination_connection_id": b"\x02" * 8},
        {"original_destination_connection_id": b""},
        {"preferred_address": PREFERRED},
        {"retry_source_connection_id": b"\x03"},
        {"stateless_reset_token": TOKEN},
    ],
)
def test_check_client_must_not_send_server_only(changes: dict[str, Any]) -> None:
    with pytest.raises(TransportParameterError) as info:
        check_peer_parameters(attrs.evolve(CLIENT, **changes), peer_is_server=False)
    assert info.value.error_code == TransportErrorCode.TRANSPORT_PARAMETER_ERROR
    check_peer_parameters(attrs.evolve(SERVER, **changes), peer_is_server=True)


def test_check_peer_accepts_valid_sets() -> None:
    check_peer_parameters(CLIENT, peer_is_server=False)
    check_peer_parameters(SERVER, peer_is_server=True)
    info = VersionInformation(chosen_version=QUIC_V1, available_versions=(QUIC_V1, QUIC_V2))
    check_peer_parameters(attrs.evolve(CLIENT, version_information=info), peer_is_server=False)
    # A server's Available Versions may be empty (RFC 9368 §3).
    server_info = VersionInformation(chosen_version=QUIC_V1)
    check_peer_parameters(attrs.evolve(SERVER, version_information=server_info),
                          peer_is_server=True)  # fmt: skip


@pytest.mark.parametrize(
    ("params", "peer_is_server"),
    [
        (attrs.evolve(CLIENT, initial_source_connection_id=None), False),
        (attrs.evolve(SERVER, initial_source_connection_id=None), True),
        (attrs.evolve(SERVER, original_destination_connection_id=None), True),
        (attrs.evolve(SERVER, initial_source_connection_id=b"", preferred_address=PREFERRED),
         True),
        (attrs.evolve(CLIENT, version_information=VersionInformation(
            chosen_version=QUIC_V2, available_versions=(QUIC_V1,))), False),
    ],
)  # fmt: skip
def test_check_peer_rejects(params: TransportParameters, peer_is_server: bool) -> None:
    with pytest.raises(TransportParameterError):
        check_peer_parameters(params, peer_is_server=peer_is_server)


# --- real clients ----------------------------------------------------------------------------


def captured_parameter_lists() -> list[tuple[str, list[tuple[int, bytes]], bytes]]:
    path = SHARED / "captures.json"
    if not path.exists():
        pytest.fail(f"{path} is missing")
    result = []
    for capture in json.loads(path.read_text()):
        wire = [(int(p["id"], 16), bytes.fromhex(p["value_hex"]))
                for p in capture["observed"]["transport_parameters_wire_order"]]  # fmt: skip
        first_datagram = bytes.fromhex(capture["datagrams_hex"][0])
        result.append((capture["id"], wire, first_datagram))
    return result


def expected_value(pid: int, raw: bytes) -> Any:
    """What a captured raw value means, read without the decoder under test."""
    name = PARAMETER_IDS[pid]
    if name in ("disable_active_migration", "grease_quic_bit"):
        assert raw == b""
        return True
    if name.endswith("connection_id"):
        return raw
    if name == "version_information":
        versions = [int.from_bytes(raw[i : i + 4], "big") for i in range(0, len(raw), 4)]
        return VersionInformation(chosen_version=versions[0],
                                  available_versions=tuple(versions[1:]))  # fmt: skip
    value = int.from_bytes(raw, "big") & ~(0xC0 << (8 * len(raw) - 8))
    assert len(raw) == 1 << (raw[0] >> 6)
    return value


def test_real_client_parameters_decode() -> None:
    lists = captured_parameter_lists()
    assert len(lists) >= 80
    for case_id, wire, first_datagram in lists:
        data = b"".join(tp(pid, raw) for pid, raw in wire)
        params = decode_transport_parameters(data)
        for pid, raw in wire:
            if pid in PARAMETER_IDS:
                assert getattr(params, PARAMETER_IDS[pid]) == expected_value(pid, raw), case_id
        assert params.unknown == tuple((pid, raw) for pid, raw in wire if pid not in PARAMETER_IDS)
        # RFC 9000 §7.3: initial_source_connection_id is the SCID of the client's Initial.
        assert params.initial_source_connection_id == parse_header(first_datagram, 0, 8).scid
        check_peer_parameters(params, peer_is_server=False)
        # Our encoder reproduces the client's bytes when given its order.
        assert encode_transport_parameters(params, order=[pid for pid, _ in wire]) == data


def test_chrome_120_vector() -> None:
    (vector,) = [v for v in json.loads((SHARED / "non-datagram-vectors.json").read_text())
                 if v["id"].endswith("chrome120")]  # fmt: skip
    data = bytes.fromhex(vector["extension_data_hex"])
    params = decode_transport_parameters(data)
    stored = vector["expected"]["values_as_stored_by_clienthellod_hex"]
    for name in ("max_idle_timeout", "max_udp_payload_size", "initial_max_data",
                 "initial_max_streams_bidi", "initial_max_streams_uni",
                 "initial_max_stream_data_uni"):  # fmt: skip
        assert getattr(params, name) == int(stored[name], 16), name
    assert (params.ack_delay_exponent, params.max_ack_delay) == (3, 25)  # absent: defaults
    assert params.initial_source_connection_id == b""
    assert params.max_datagram_frame_size == 65536
    assert [pid for pid, _ in params.unknown] == [0x22D01138870C6F9F, 0x3128, 0xFF73DB, 0x4752]
    order = [int(p["id"], 16) for p in vector["wire_order"]]
    assert encode_transport_parameters(params, order=order) == data


# --- aioquic and qh3 --------------------------------------------------------------------------


def peer_modules(name: str) -> tuple[Any, Any]:
    if name == "aioquic":
        import aioquic.quic.packet as packet
        from aioquic.buffer import Buffer
    else:
        import qh3.quic.packet as packet
        from qh3._hazmat import Buffer
    return packet, Buffer


def to_peer(packet: Any, params: TransportParameters) -> Any:
    """Our parameters as the peer's object (None where we hold the default)."""
    kwargs: dict[str, Any] = {}
    for name in PARAMETER_IDS.values():
        if name == "grease_quic_bit":
            continue
        value = getattr(params, name)
        if name == "preferred_address" and value is not None:
            value = packet.QuicPreferredAddress(
                ipv4_address=value.ipv4, ipv6_address=value.ipv6,
                connection_id=value.connection_id,
                stateless_reset_token=value.stateless_reset_token,
            )  # fmt: skip
        elif name == "version_information" and value is not None:
            value = packet.QuicVersionInformation(
                chosen_version=value.chosen_version,
                available_versions=list(value.available_versions),
            )
        kwargs[name] = value
    return packet.QuicTransportParameters(**kwargs)


def from_peer(peer_params: Any) -> dict[str, Any]:
    """The peer's decoded object as our field values (peer None = absent = our default)."""
    defaults = TransportParameters()
    out: dict[str, Any] = {}
    for name in PARAMETER_IDS.values():
        if name == "grease_quic_bit":
            continue
        value = getattr(peer_params, name)
        if value is None:
            value = getattr(defaults, name)
        elif name == "preferred_address":
            value = PreferredAddress(
                ipv4=value.ipv4_address, ipv6=value.ipv6_address,
                connection_id=value.connection_id,
                stateless_reset_token=value.stateless_reset_token,
            )  # fmt: skip
        elif name == "version_information":
            value = VersionInformation(
                chosen_version=value.chosen_version,
                available_versions=tuple(value.available_versions),
            )
        out[name] = value
    return out


def peer_encode(module: str, peer_params: Any) -> bytes:
    packet, buffer_class = peer_modules(module)
    buf = buffer_class(capacity=4096)
    packet.push_quic_transport_parameters(buf, peer_params)
    return bytes(buf.data)


def peer_decode(module: str, data: bytes) -> Any:
    packet, buffer_class = peer_modules(module)
    return packet.pull_quic_transport_parameters(buffer_class(data=data))


@pytest.mark.parametrize("module", ["aioquic", "qh3"])
def test_peer_encoded_parameters_decode(module: str) -> None:
    packet, _ = peer_modules(module)
    theirs = to_peer(packet, attrs.evolve(FULL, grease_quic_bit=False))
    theirs.quantum_readiness = b"q" * 7
    if module == "qh3":
        theirs.initial_rtt = 33_000
        theirs.greased_transport_parameter = (grease_parameter_id(9), b"\xaa")
    data = peer_encode(module, theirs)
    ours = decode_transport_parameters(data)
    expected_unknown = {0x0C37: b"q" * 7}
    if module == "qh3":
        expected_unknown.update({0x3127: encode_varint(33_000), grease_parameter_id(9): b"\xaa"})
    assert dict(ours.unknown) == expected_unknown
    for name, value in from_peer(theirs).items():
        assert getattr(ours, name) == value, name
    # Spot checks against the values written in FULL, not through the mapping.
    assert ours.preferred_address == PREFERRED
    assert ours.max_udp_payload_size == 1472 and ours.disable_active_migration


@pytest.mark.parametrize("module", ["aioquic", "qh3"])
def test_peer_decodes_our_parameters(module: str) -> None:
    theirs = peer_decode(module, encode_transport_parameters(FULL))
    for name, value in from_peer(theirs).items():
        assert value == getattr(FULL, name), name
    assert theirs.preferred_address.ipv6_address == ("2001:db8::7", 4434)
    assert theirs.version_information.available_versions == [QUIC_V1, QUIC_V2]


@pytest.mark.parametrize("module", ["aioquic", "qh3"])
@given(params=transport_parameters)
def test_peer_decodes_random_parameters(module: str, params: TransportParameters) -> None:
    theirs = peer_decode(module, encode_transport_parameters(params))
    for name, value in from_peer(theirs).items():
        assert value == getattr(params, name), name
    again = decode_transport_parameters(peer_encode(module, theirs))
    assert attrs.evolve(again, unknown=()) == attrs.evolve(params, unknown=(),
                                                           grease_quic_bit=False)  # fmt: skip


@pytest.mark.parametrize("module", ["aioquic", "qh3"])
def test_peer_client_transport_parameters(module: str) -> None:
    """The parameters a real aioquic/qh3 client puts in its ClientHello decode and validate."""
    if module == "aioquic":
        from aioquic.quic.configuration import QuicConfiguration
        from aioquic.quic.connection import QuicConnection
    else:
        from qh3.quic.configuration import QuicConfiguration
        from qh3.quic.connection import QuicConnection
    connection = QuicConnection(configuration=QuicConfiguration(is_client=True))
    connection.connect(("127.0.0.1", 4433), now=0.0)
    # The connection serializes its own parameters for the TLS extension.
    serialize = getattr(connection, "_serialize_transport_parameters", None)
    if serialize is None:
        serialize = connection._tls.serialize_transport_parameters  # qh3 keeps it on the bridge
    params = decode_transport_parameters(serialize())
    check_peer_parameters(params, peer_is_server=False)
    assert params.initial_source_connection_id == connection.host_cid
    assert params.initial_max_data > 0


# --- the fast paths against the general ones --------------------------------------------------

from trio_zttp.quic._params import (  # noqa: E402
    ParameterTemplate,
    _decode_fast,
    _decode_general,
)


def _general_or_error(data: bytes) -> TransportParameters | str:
    try:
        return _decode_general(data)
    except TransportParameterError as exc:
        return f"error: {exc}"


@given(transport_parameters, st.randoms(use_true_random=False))
def test_fast_decoder_takes_valid_parameters(params: TransportParameters, rng: Any) -> None:
    ids = list(PARAMETER_IDS) + [pid for pid, _ in params.unknown]
    rng.shuffle(ids)
    data = encode_transport_parameters(params, order=ids)
    fast = _decode_fast(data)
    if params.preferred_address is None:
        assert fast is not None  # the fast path is the one peers take
    assert fast is None or fast == _decode_general(data)


@given(transport_parameters, st.integers(0, 400), st.binary(min_size=1, max_size=3),
       st.sampled_from(["replace", "insert", "cut"]))
def test_fast_decoder_leaves_every_doubt_to_the_general_one(
    params: TransportParameters, where: int, junk: bytes, how: str
) -> None:
    data = encode_transport_parameters(params)
    at = where % (len(data) + 1)
    if how == "replace":
        data = data[:at] + junk + data[at + len(junk):]
    elif how == "insert":
        data = data[:at] + junk + data[at:]
    else:
        data = data[:at]
    fast = _decode_fast(data)
    general = _general_or_error(data)
    assert fast is None or fast == general
    # and what the public decoder does is exactly the general decoder's answer
    try:
        assert decode_transport_parameters(data) == general
    except TransportParameterError as exc:
        assert general == f"error: {exc}"


@pytest.mark.parametrize(
    ("pid", "value"),
    [(0x03, 1199), (0x0A, 21), (0x0B, 1 << 14), (0x0E, 1), (0x08, (1 << 60) + 1),
     (0x09, (1 << 60) + 1)],
)
def test_fast_decoder_refuses_narrow_limits(pid: int, value: int) -> None:
    data = tp(pid, encode_varint(value))
    assert _decode_fast(data) is None
    decode_error(data)


_VARIABLE = ("original_destination_connection_id", "stateless_reset_token",
             "initial_source_connection_id", "retry_source_connection_id",
             "version_information", "max_idle_timeout", "disable_active_migration",
             "max_ack_delay", "preferred_address")
_INVALID = {
    "original_destination_connection_id": b"\x00" * 21,
    "stateless_reset_token": b"\x00" * 15,
    "initial_source_connection_id": b"\x00" * 21,
    "max_idle_timeout": 1 << 62,
    "max_ack_delay": 1 << 14,
    "version_information": VersionInformation(chosen_version=0),
}


def _general_encode(base: TransportParameters, changes: dict[str, Any]) -> bytes | str:
    try:
        return encode_transport_parameters(attrs.evolve(base, **changes))
    except ValueError as exc:
        return f"error: {exc}"


@given(transport_parameters, transport_parameters,
       st.sets(st.sampled_from(_VARIABLE), min_size=1),
       st.sets(st.sampled_from(_VARIABLE)),
       st.sets(st.sampled_from(sorted(_INVALID))))
def test_template_encodes_like_the_general_encoder(
    base: TransportParameters, other: TransportParameters, variable: set[str],
    changed: set[str], broken: set[str]
) -> None:
    template = ParameterTemplate(base, sorted(variable))
    changes: dict[str, Any] = {name: getattr(other, name) for name in changed & variable}
    changes.update({name: _INVALID[name] for name in broken & variable})
    expected = _general_encode(base, changes)
    try:
        got: bytes | str = template.encode(changes)
    except ValueError as exc:
        got = f"error: {exc}"
    assert got == expected
    if not changes:
        assert template.encode({}) == encode_transport_parameters(base)


def test_template_refuses_fixed_fields_and_bad_bases() -> None:
    template = ParameterTemplate(FULL, ["initial_source_connection_id"])
    assert template.base is FULL
    assert template.encode({"initial_source_connection_id": b"\x01"}) == (
        encode_transport_parameters(attrs.evolve(FULL, initial_source_connection_id=b"\x01")))
    with pytest.raises(ValueError, match="not variable"):
        template.encode({"max_idle_timeout": 5})
    with pytest.raises(ValueError, match="not variable"):
        template.encode({"initial_source_connection_id": b"\x00" * 21, "max_idle_timeout": 5})
    with pytest.raises(ValueError, match="not transport parameters"):
        ParameterTemplate(FULL, ["nonsense"])
    with pytest.raises(ValueError, match="max_ack_delay"):
        ParameterTemplate(TransportParameters(max_ack_delay=1 << 14), ["max_idle_timeout"])


@pytest.mark.parametrize(
    "entry",
    [tp(0x04, encode_varint(1000)), tp(0x0F, b"\x01\x02"), tp(0x0C, b""), tp(0x1B, b"x"),
     tp(0x11, bytes.fromhex("0000000100000001"))],
    ids=["int", "cid", "flag", "unknown", "version_information"],
)
def test_fast_decoder_leaves_duplicates_to_the_general_one(entry: bytes) -> None:
    others = tp(0x01, encode_varint(30000)) + tp(0x2A2A, b"")
    for data in (entry + entry, entry + others + entry, others + entry + entry + others):
        assert _decode_fast(data) is None
        assert "duplicate" in str(decode_error(data))
    assert _decode_fast(entry + others) is not None
