"""QUIC transport parameters (RFC 9000 §18, RFC 9221 §3, RFC 9287 §3, RFC 9368 §3).

One table, :data:`PARAMETER_IDS`, maps each known parameter id to its field on
:class:`TransportParameters` and its wire kind; encoding, decoding and defaults are all
driven by it.  Range rules live in a second table, so the encoder (caller misuse:
``ValueError``) and the decoder (peer violation: :class:`TransportParameterError`) enforce
exactly the same limits.

The encoder is shaped for client-fingerprint presets: an explicit id order, default values
sent on purpose when their id is listed, and extra raw parameters such as GREASE ids
``31 * N + 27`` (RFC 9000 §18.1).
"""

from __future__ import annotations

import enum
import ipaddress
import struct
from collections.abc import Sequence
from typing import Any, Final, final

import attrs

from .._buffer import VARINT_MAX, BufferReadError, Reader, decode_varint, encode_varint
from ._errors import TransportParameterError

__all__ = [
    "PARAMETER_IDS",
    "ParameterTemplate",
    "PreferredAddress",
    "TransportParameters",
    "VersionInformation",
    "check_peer_parameters",
    "decode_transport_parameters",
    "encode_transport_parameters",
    "grease_parameter_id",
]

_U16: Final = struct.Struct("!H")
_U32: Final = struct.Struct("!L")
_MAX_CID_LENGTH: Final = 20
_RESET_TOKEN_LENGTH: Final = 16


@final
@attrs.frozen(kw_only=True)
class PreferredAddress:
    """The server's preferred address (RFC 9000 §18.2, §9.6).

    An address family the server does not offer is None and travels as all zeros.
    """

    ipv4: tuple[str, int] | None = None
    """IPv4 address and port, e.g. ``("192.0.2.1", 443)``."""
    ipv6: tuple[str, int] | None = None
    """IPv6 address (compressed text form) and port."""
    connection_id: bytes
    """Connection ID with sequence number 1 (1-20 bytes)."""
    stateless_reset_token: bytes
    """The 16-byte stateless reset token of :attr:`connection_id`."""


@final
@attrs.frozen(kw_only=True)
class VersionInformation:
    """The version_information parameter (RFC 9368 §3)."""

    chosen_version: int
    """The version in use for the connection (not zero)."""
    available_versions: tuple[int, ...] = ()
    """The versions the sender supports (client) or would accept (server)."""


@final
@attrs.frozen(kw_only=True)
class TransportParameters:
    """Every transport parameter, with the RFC's default where the parameter is absent.

    Connection IDs and tokens are None when absent (an empty connection ID is a value).
    """

    original_destination_connection_id: bytes | None = None
    """0x00: the DCID of the client's first Initial (server only)."""
    max_idle_timeout: int = 0
    """0x01: idle timeout in milliseconds; 0 disables it."""
    stateless_reset_token: bytes | None = None
    """0x02: 16-byte stateless reset token (server only)."""
    max_udp_payload_size: int = 65527
    """0x03: largest UDP payload the sender will receive (at least 1200)."""
    initial_max_data: int = 0
    """0x04: initial connection flow-control limit."""
    initial_max_stream_data_bidi_local: int = 0
    """0x05: initial limit for bidirectional streams the sender opens."""
    initial_max_stream_data_bidi_remote: int = 0
    """0x06: initial limit for bidirectional streams the receiver opens."""
    initial_max_stream_data_uni: int = 0
    """0x07: initial limit for unidirectional streams the receiver opens."""
    initial_max_streams_bidi: int = 0
    """0x08: bidirectional streams the receiver may open (at most 2**60)."""
    initial_max_streams_uni: int = 0
    """0x09: unidirectional streams the receiver may open (at most 2**60)."""
    ack_delay_exponent: int = 3
    """0x0a: exponent for the ACK Delay field (at most 20)."""
    max_ack_delay: int = 25
    """0x0b: maximum ACK delay in milliseconds (below 2**14)."""
    disable_active_migration: bool = False
    """0x0c: the sender does not support active migration."""
    preferred_address: PreferredAddress | None = None
    """0x0d: the server's preferred address (server only)."""
    active_connection_id_limit: int = 2
    """0x0e: connection IDs the sender is willing to store (at least 2)."""
    initial_source_connection_id: bytes | None = None
    """0x0f: the SCID of the sender's first Initial."""
    retry_source_connection_id: bytes | None = None
    """0x10: the SCID of the server's Retry (server only)."""
    version_information: VersionInformation | None = None
    """0x11: compatible version negotiation (RFC 9368)."""
    max_datagram_frame_size: int = 0
    """0x20: largest DATAGRAM frame accepted; 0 means no DATAGRAM support (RFC 9221)."""
    grease_quic_bit: bool = False
    """0x2ab2: the sender accepts packets with the QUIC bit cleared (RFC 9287)."""
    unknown: tuple[tuple[int, bytes], ...] = ()
    """Parameters this package does not know, ``(id, raw value)`` in wire order.

    Kept for inspection (fingerprinting) and sent again by the encoder.
    """


class _Kind(enum.Enum):
    INT = enum.auto()
    CID = enum.auto()
    TOKEN = enum.auto()
    FLAG = enum.auto()
    PREFERRED_ADDRESS = enum.auto()
    VERSION_INFORMATION = enum.auto()


PARAMETER_IDS: Final[dict[int, str]] = {
    0x00: "original_destination_connection_id",
    0x01: "max_idle_timeout",
    0x02: "stateless_reset_token",
    0x03: "max_udp_payload_size",
    0x04: "initial_max_data",
    0x05: "initial_max_stream_data_bidi_local",
    0x06: "initial_max_stream_data_bidi_remote",
    0x07: "initial_max_stream_data_uni",
    0x08: "initial_max_streams_bidi",
    0x09: "initial_max_streams_uni",
    0x0A: "ack_delay_exponent",
    0x0B: "max_ack_delay",
    0x0C: "disable_active_migration",
    0x0D: "preferred_address",
    0x0E: "active_connection_id_limit",
    0x0F: "initial_source_connection_id",
    0x10: "retry_source_connection_id",
    0x11: "version_information",
    0x20: "max_datagram_frame_size",
    0x2AB2: "grease_quic_bit",
}
"""Known transport parameter ids and their :class:`TransportParameters` field names."""

_KINDS: Final[dict[str, _Kind]] = {
    "original_destination_connection_id": _Kind.CID,
    "stateless_reset_token": _Kind.TOKEN,
    "disable_active_migration": _Kind.FLAG,
    "preferred_address": _Kind.PREFERRED_ADDRESS,
    "initial_source_connection_id": _Kind.CID,
    "retry_source_connection_id": _Kind.CID,
    "version_information": _Kind.VERSION_INFORMATION,
    "grease_quic_bit": _Kind.FLAG,
}
_TABLE: Final[tuple[tuple[int, str, _Kind], ...]] = tuple(
    (pid, name, _KINDS.get(name, _Kind.INT)) for pid, name in PARAMETER_IDS.items()
)
_BY_ID: Final[dict[int, tuple[str, _Kind]]] = {pid: (name, kind) for pid, name, kind in _TABLE}
_DEFAULTS: Final[dict[str, Any]] = {
    field.name: field.default for field in attrs.fields(TransportParameters)
}

# Inclusive ranges of the integer parameters (RFC 9000 §18.2, §4.6); others 0..2**62-1.
_RANGES: Final[dict[str, tuple[int, int]]] = {
    "max_udp_payload_size": (1200, VARINT_MAX),
    "ack_delay_exponent": (0, 20),
    "max_ack_delay": (0, (1 << 14) - 1),
    "active_connection_id_limit": (2, VARINT_MAX),
    "initial_max_streams_bidi": (0, 1 << 60),
    "initial_max_streams_uni": (0, 1 << 60),
}

# Parameters only a server may send (RFC 9000 §18.2).
_SERVER_ONLY: Final = (
    "original_destination_connection_id",
    "preferred_address",
    "retry_source_connection_id",
    "stateless_reset_token",
)


def grease_parameter_id(n: int) -> int:
    """The ``n``-th reserved transport parameter id, ``31 * n + 27`` (RFC 9000 §18.1)."""
    pid = 31 * n + 27
    if n < 0 or pid > VARINT_MAX:
        raise ValueError(f"no reserved parameter id for n={n}")
    return pid


def unusable_preferred_address(address: object, version: int) -> bool:
    """Whether ``address`` is no ``(host, port)`` a preferred address can sensibly be: an IPv
    ``version`` unicast address (not unspecified, multicast, broadcast or IPv4-mapped) and a
    port 1-65535 (RFC 9000 §9.6, §21.5.6). Servers refuse to configure such an address;
    clients refuse to probe one a server sent."""
    host: Any
    port: Any
    try:
        host, port = address  # type: ignore[misc]
        parsed = ipaddress.ip_address(host)
    except (TypeError, ValueError):
        return True
    return (parsed.version != version or parsed.is_unspecified or parsed.is_multicast
            or parsed == _BROADCAST or type(port) is not int or not 0 < port < 0x10000
            or (isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None))


_BROADCAST: Final = ipaddress.IPv4Address("255.255.255.255")


def _address_problem(address: tuple[str, int] | None, version: int) -> str | None:
    if address is None:
        return None
    host, port = address
    try:
        parsed = ipaddress.ip_address(host)
    except ValueError:
        return f"preferred_address: {host!r} is not an IP address"
    if parsed.version != version:
        return f"preferred_address: {host!r} is not an IPv{version} address"
    if not 0 <= port <= 0xFFFF:
        return f"preferred_address: port {port} out of range"
    return None


def _problem(params: TransportParameters) -> str | None:
    """The first rule ``params`` breaks, or None."""
    for _pid, name, kind in _TABLE:
        value = getattr(params, name)
        if value is None:
            continue
        if kind is _Kind.INT:
            low, high = _RANGES.get(name, (0, VARINT_MAX))
            if not low <= value <= high:
                return f"{name} = {value} outside {low}..{high}"
        elif kind is _Kind.CID:
            if len(value) > _MAX_CID_LENGTH:
                return f"{name} longer than {_MAX_CID_LENGTH} bytes"
        elif kind is _Kind.TOKEN:
            if len(value) != _RESET_TOKEN_LENGTH:
                return f"{name} is not {_RESET_TOKEN_LENGTH} bytes"
        elif kind is _Kind.PREFERRED_ADDRESS:
            if not 1 <= len(value.connection_id) <= _MAX_CID_LENGTH:
                return "preferred_address connection ID not 1-20 bytes"
            if len(value.stateless_reset_token) != _RESET_TOKEN_LENGTH:
                return "preferred_address stateless reset token is not 16 bytes"
            problem = _address_problem(value.ipv4, 4) or _address_problem(value.ipv6, 6)
            if problem:
                return problem
        elif kind is _Kind.VERSION_INFORMATION:
            versions = (value.chosen_version, *value.available_versions)
            if not all(0 < v <= 0xFFFFFFFF for v in versions):
                return "version_information with version zero or above 32 bits"
    for pid, _raw in params.unknown:
        if pid in _BY_ID or not 0 <= pid <= VARINT_MAX:
            return f"unknown parameter id {pid:#x} is known or not a varint"
    return None


def _encode_address(address: tuple[str, int] | None, size: int) -> bytes:
    if address is None:
        return bytes(size + 2)
    return ipaddress.ip_address(address[0]).packed + _U16.pack(address[1])


def _encode_value(kind: _Kind, value: Any) -> bytes:
    if kind is _Kind.INT:
        return encode_varint(value)
    if kind is _Kind.CID or kind is _Kind.TOKEN:
        return bytes(value)
    if kind is _Kind.FLAG:
        return b""
    if kind is _Kind.PREFERRED_ADDRESS:
        return b"".join(
            (_encode_address(value.ipv4, 4), _encode_address(value.ipv6, 16),
             bytes((len(value.connection_id),)), value.connection_id,
             value.stateless_reset_token)
        )  # fmt: skip
    return b"".join(_U32.pack(v) for v in (value.chosen_version, *value.available_versions))


def encode_transport_parameters(
    params: TransportParameters,
    *,
    order: Sequence[int] | None = None,
    extra: Sequence[tuple[int, bytes]] = (),
) -> bytes:
    """Serialize ``params`` as the quic_transport_parameters extension body (RFC 9000 §18).

    Known parameters are sent when their value differs from the default, plus any whose id
    ``order`` lists and that have a value (flags only when true).  ``params.unknown`` and
    ``extra`` are sent as given.

    Args:
        params: The parameters.
        order: The wire order of ids.  Every parameter to be sent with a non-default value
            must be listed; unknown and extra ids that are not listed follow at the end in
            their given order.  None sends everything in ascending id order.
        extra: Raw ``(id, value)`` parameters to add, e.g. GREASE (see
            :func:`grease_parameter_id`) or a known id with a hand-made encoding.

    Raises:
        ValueError: A value breaks the RFC's limits, an id would be sent twice, ``order``
            repeats an id or leaves out a parameter with a non-default value.
    """
    problem = _problem(params)
    if problem:
        raise ValueError(problem)
    listed = frozenset(order) if order is not None else frozenset()
    if order is not None and len(listed) != len(order):
        raise ValueError("order lists an id twice")
    values: dict[int, bytes] = {}
    unlisted_known: list[int] = []
    for pid, name, kind in _TABLE:
        value = getattr(params, name)
        if value is None or value is False:
            continue
        if value == _DEFAULTS[name] and pid not in listed:
            continue
        values[pid] = _encode_value(kind, value)
        if order is not None and pid not in listed:
            unlisted_known.append(pid)
    if unlisted_known:
        raise ValueError(f"order leaves out parameters {[hex(p) for p in unlisted_known]}")
    raw_ids: list[int] = []
    for pid, raw in (*params.unknown, *extra):
        if pid in values:
            raise ValueError(f"parameter {pid:#x} would be sent twice")
        values[pid] = bytes(raw)
        raw_ids.append(pid)
    if order is None:
        ids: list[int] = sorted(values)
    else:
        ids = [pid for pid in order if pid in values]
        ids += [pid for pid in raw_ids if pid not in listed]
    return b"".join(
        encode_varint(pid) + encode_varint(len(values[pid])) + values[pid] for pid in ids
    )


@final
class ParameterTemplate:
    """Fast encoding of parameters that differ from a fixed base in a few fields only.

    A connection's parameters come from its configuration except for a few per-connection
    values (connection IDs, the reset token, the chosen version).  The template encodes the
    base once; :meth:`encode` then only encodes the variable fields and splices them in.  The
    result is always ``encode_transport_parameters(attrs.evolve(base, **changes))`` (ids in
    ascending order): the parameters stay data, only their encoding is cached.
    """

    __slots__ = ("_base", "_chunks", "_slots")

    def __init__(self, base: TransportParameters, variable: Sequence[str]) -> None:
        """Encode ``base`` once, leaving slots for the fields named in ``variable``.

        Raises:
            ValueError: ``base`` breaks the RFC's limits, or ``variable`` names no field.
        """
        names = set(variable)
        unknown_names = names - set(PARAMETER_IDS.values())
        if unknown_names:
            raise ValueError(f"not transport parameters: {sorted(unknown_names)}")
        problem = _problem(base)
        if problem:
            raise ValueError(problem)
        # the base with the variable fields at their defaults, encoded id by id
        fixed = attrs.evolve(base, **{name: _DEFAULTS[name] for name in names})
        entries: dict[int, bytes] = {}
        for pid, name, kind in _TABLE:
            if name in names:
                continue
            value = getattr(fixed, name)
            if value is None or value is False or value == _DEFAULTS[name]:
                continue
            body = _encode_value(kind, value)
            entries[pid] = encode_varint(pid) + encode_varint(len(body)) + body
        for pid, raw in fixed.unknown:
            entries[pid] = encode_varint(pid) + encode_varint(len(raw)) + bytes(raw)
        slots = sorted((pid, name, kind) for pid, name, kind in _TABLE if name in names)
        chunks: list[bytes] = []
        previous = -1
        for pid, _name, _kind in (*slots, (VARINT_MAX + 1, "", _Kind.INT)):
            chunks.append(b"".join(entries[i] for i in sorted(entries) if previous < i < pid))
            previous = pid
        self._base = base
        self._chunks = tuple(chunks)
        self._slots = tuple(
            (name, kind, encode_varint(pid), _DEFAULTS[name], *_RANGES.get(name, (0, VARINT_MAX)))
            for pid, name, kind in slots
        )

    @property
    def base(self) -> TransportParameters:
        """The parameters the template was made from."""
        return self._base

    def encode(self, changes: dict[str, Any]) -> bytes:
        """``encode_transport_parameters(attrs.evolve(base, **changes))``, quickly.

        Only fields named as variable may change; a variable field missing from ``changes``
        keeps the base's value.

        Raises:
            ValueError: A value breaks the RFC's limits (as :func:`encode_transport_parameters`),
                or ``changes`` names a field that is not variable.
        """
        parts = [self._chunks[0]]
        base = self._base
        used = 0
        for index, (name, kind, head, default, low, high) in enumerate(self._slots):
            if name in changes:
                value = changes[name]
                used += 1
            else:
                value = getattr(base, name)
            if not (value is None or value is False or value == default):
                if kind is _Kind.CID:
                    if len(value) > _MAX_CID_LENGTH:
                        return self._general(changes)
                    body = bytes(value)
                elif kind is _Kind.INT:
                    if not low <= value <= high:
                        return self._general(changes)
                    body = encode_varint(value)
                elif kind is _Kind.TOKEN:
                    if len(value) != _RESET_TOKEN_LENGTH:
                        return self._general(changes)
                    body = bytes(value)
                elif kind is _Kind.FLAG:
                    body = b""
                elif kind is _Kind.VERSION_INFORMATION:
                    versions = (value.chosen_version, *value.available_versions)
                    if not all(0 < v <= 0xFFFFFFFF for v in versions):
                        return self._general(changes)
                    body = _encode_value(kind, value)
                else:
                    return self._general(changes)
                parts.append(head)
                parts.append(encode_varint(len(body)))
                parts.append(body)
            parts.append(self._chunks[index + 1])
        if used != len(changes):
            raise ValueError(f"not variable in this template: {sorted(changes)}")
        return b"".join(parts)

    def _general(self, changes: dict[str, Any]) -> bytes:
        variable = {name for name, *_rest in self._slots}
        if not variable.issuperset(changes):
            raise ValueError(f"not variable in this template: {sorted(changes)}")
        return encode_transport_parameters(attrs.evolve(self._base, **changes))


def _decode_address(reader: Reader, size: int) -> tuple[str, int] | None:
    packed = reader.pull_bytes(size)
    port = reader.pull_uint16()
    if port == 0 and not any(packed):
        return None
    return str(ipaddress.ip_address(packed)), port


def _decode_value(name: str, kind: _Kind, data: bytes, start: int, end: int) -> Any:
    if kind is _Kind.INT:
        if start == end:
            raise TransportParameterError(f"{name}: empty value")
        value, stop = decode_varint(data, start)
        if stop != end:
            raise TransportParameterError(f"{name}: varint does not fill the value")
        return value
    length = end - start
    if kind is _Kind.CID:
        if length > _MAX_CID_LENGTH:
            raise TransportParameterError(f"{name} longer than {_MAX_CID_LENGTH} bytes")
        return data[start:end]
    if kind is _Kind.TOKEN:
        if length != _RESET_TOKEN_LENGTH:
            raise TransportParameterError(f"{name} is not {_RESET_TOKEN_LENGTH} bytes")
        return data[start:end]
    if kind is _Kind.FLAG:
        if length:
            raise TransportParameterError(f"{name} must be empty")
        return True
    if kind is _Kind.PREFERRED_ADDRESS:
        reader = Reader(data, start, end)
        ipv4 = _decode_address(reader, 4)
        ipv6 = _decode_address(reader, 16)
        cid_length = reader.pull_uint8()
        if not 1 <= cid_length <= _MAX_CID_LENGTH:
            raise TransportParameterError("preferred_address connection ID not 1-20 bytes")
        connection_id = reader.pull_bytes(cid_length)
        token = reader.pull_bytes(_RESET_TOKEN_LENGTH)
        if not reader.eof():
            raise TransportParameterError("preferred_address: bytes after the token")
        return PreferredAddress(
            ipv4=ipv4, ipv6=ipv6, connection_id=connection_id, stateless_reset_token=token
        )
    if length < 4 or length % 4:
        raise TransportParameterError("version_information length not a multiple of 4")
    versions = [v for (v,) in _U32.iter_unpack(data[start:end])]
    if 0 in versions:
        raise TransportParameterError("version_information contains version 0")
    return VersionInformation(chosen_version=versions[0], available_versions=tuple(versions[1:]))


def decode_transport_parameters(data: bytes | bytearray | memoryview) -> TransportParameters:
    """Parse the quic_transport_parameters extension body (RFC 9000 §18).

    Raises:
        TransportParameterError: Truncated input, a duplicate id (RFC 9000 §7.4), a value
            of the wrong size or encoding, or a value outside its limits (RFC 9000 §18.2,
            RFC 9368 §4).
    """
    data = bytes(data)
    params = _decode_fast(data)
    if params is None:
        params = _decode_general(data)
    return params


#: The value bits of a varint by its length in bytes (RFC 9000 §16)
_VARINT_MASKS: Final = {2: (1 << 14) - 1, 4: (1 << 30) - 1, 8: (1 << 62) - 1}
_INT_NAMES: Final[dict[int, str]] = {
    pid: name for pid, name, kind in _TABLE if kind is _Kind.INT
}
# the limits narrower than a varint's, in table order (the order _problem checks them in)
_NARROW_RANGES: Final[tuple[tuple[str, int, int], ...]] = tuple(
    (name, *_RANGES[name]) for _pid, name, _kind in _TABLE if name in _RANGES
)


def _decode_fast(data: bytes) -> TransportParameters | None:
    """One pass over ``data`` for what peers send; None for anything else.

    None means: an error, or a parameter this path leaves alone (preferred_address).  The
    general decoder then decides, so errors are raised in one place only.  Every value this
    path accepts passes :func:`_problem` by construction: varints are within 0..2**62-1,
    connection IDs and tokens are length-checked here, versions are 32-bit and nonzero,
    unknown ids are not known ones; only the narrower integer limits need a check.
    """
    end_all = len(data)
    pos = 0
    fields: dict[str, Any] = {}
    unknown: list[tuple[int, bytes]] = []
    count = 0  # duplicates are found at the end: fewer fields than parameters
    int_names = _INT_NAMES
    from_bytes = int.from_bytes
    masks = _VARINT_MASKS
    try:
        while pos < end_all:
            # ids and lengths are one-byte varints but for GREASE and version_information
            pid = data[pos]
            if pid < 0x40:
                pos += 1
            else:
                pid, pos = decode_varint(data, pos)
            length = data[pos]
            if length < 0x40:
                pos += 1
            else:
                length, pos = decode_varint(data, pos)
            end = pos + length
            if end > end_all:
                return None
            count += 1
            name = int_names.get(pid)
            if name is not None:
                # a varint that fills the value exactly (its two top bits give its size)
                if not length or 1 << (data[pos] >> 6) != length:
                    return None
                fields[name] = data[pos] if length == 1 else (
                    from_bytes(data[pos:end], "big") & masks[length])
            else:
                known = _BY_ID.get(pid)
                if known is None:
                    unknown.append((pid, data[pos:end]))
                else:
                    name, kind = known
                    if kind is _Kind.CID:
                        if length > _MAX_CID_LENGTH:
                            return None
                        fields[name] = data[pos:end]
                    elif kind is _Kind.TOKEN:
                        if length != _RESET_TOKEN_LENGTH:
                            return None
                        fields[name] = data[pos:end]
                    elif kind is _Kind.FLAG:
                        if length:
                            return None
                        fields[name] = True
                    elif kind is _Kind.VERSION_INFORMATION:
                        if length < 4 or length % 4:
                            return None
                        versions = [v for (v,) in _U32.iter_unpack(data[pos:end])]
                        if 0 in versions:
                            return None
                        fields[name] = VersionInformation(
                            chosen_version=versions[0], available_versions=tuple(versions[1:]))
                    else:
                        return None
            pos = end
    except (BufferReadError, IndexError):
        return None
    if count != len(fields) + len(unknown) or (
            unknown and len({pid for pid, _ in unknown}) != len(unknown)):
        return None  # a parameter twice (RFC 9000 §7.4): the general decoder says so
    for name, low, high in _NARROW_RANGES:
        limited = fields.get(name)
        if limited is not None and not low <= limited <= high:
            return None
    return TransportParameters(**fields, unknown=tuple(unknown))


def _decode_general(data: bytes) -> TransportParameters:
    """The reference decoder: every error is raised here."""
    reader = Reader(data)
    fields: dict[str, Any] = {}
    unknown: list[tuple[int, bytes]] = []
    seen: set[int] = set()
    try:
        while not reader.eof():
            pid = reader.pull_varint()
            length = reader.pull_varint()
            start = reader.position
            reader.skip(length)
            if pid in seen:
                raise TransportParameterError(f"duplicate transport parameter {pid:#x}")
            seen.add(pid)
            known = _BY_ID.get(pid)
            if known is None:
                unknown.append((pid, data[start : start + length]))
                continue
            name, kind = known
            fields[name] = _decode_value(name, kind, data, start, start + length)
    except BufferReadError:
        raise TransportParameterError("transport parameters truncated") from None
    params = TransportParameters(**fields, unknown=tuple(unknown))
    problem = _problem(params)
    if problem:
        raise TransportParameterError(problem)
    return params


def check_peer_parameters(params: TransportParameters, *, peer_is_server: bool) -> None:
    """Apply the rules that depend on who sent ``params`` (RFC 9000 §7.3, §18.2; RFC 9368 §4).

    Raises:
        TransportParameterError: A client sent a server-only parameter, a required
            connection ID is missing, a server with a zero-length connection ID offers a
            preferred address, or a client's chosen version is not among its available ones.
    """
    if params.initial_source_connection_id is None:
        raise TransportParameterError("initial_source_connection_id missing")
    if peer_is_server:
        if params.original_destination_connection_id is None:
            raise TransportParameterError("original_destination_connection_id missing")
        if params.preferred_address is not None and not params.initial_source_connection_id:
            raise TransportParameterError("preferred_address with a zero-length connection ID")
        return
    for name in _SERVER_ONLY:
        if getattr(params, name) is not None:
            raise TransportParameterError(f"a client sent {name}")
    info = params.version_information
    if info is not None and info.chosen_version not in info.available_versions:
        raise TransportParameterError("chosen version missing from available versions")
