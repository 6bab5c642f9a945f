"""HTTP/3 SETTINGS (RFC 9114 §7.2.4, RFC 9204 §5, RFC 9220 §3, RFC 9297 §2.1.1).

:class:`Settings` is the typed view of one endpoint's SETTINGS frame; the wire format is a
sequence of (identifier, value) varint pairs.  :func:`decode_settings` enforces the receive
rules (reserved HTTP/2 identifiers, duplicates, boolean settings, truncation) and
:func:`encode_settings` adds a reserved "GREASE" setting so peers keep ignoring unknown ones.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Final

import attrs

from .._buffer import VARINT_MAX, BufferReadError, Writer, decode_varint, encode_varint
from ._errors import (
    GREASE_MAX_N,
    FrameError,
    QpackDecoderStreamError,
    SettingsError,
    grease_value,
    is_grease_value,
)
from ._frames import FrameType

__all__ = [
    "RESERVED_HTTP2_SETTINGS",
    "Settings",
    "SettingsId",
    "check_datagram_support",
    "check_resumed_settings",
    "decode_settings",
    "encode_settings",
    "grease_setting_id",
]


class SettingsId(enum.IntEnum):
    """Setting identifiers understood here (RFC 9114 §7.2.4.1, §11.2.2 and extensions)."""

    QPACK_MAX_TABLE_CAPACITY = 0x1
    MAX_FIELD_SECTION_SIZE = 0x6
    QPACK_BLOCKED_STREAMS = 0x7
    ENABLE_CONNECT_PROTOCOL = 0x8
    H3_DATAGRAM = 0x33


#: HTTP/2 setting identifiers with no HTTP/3 meaning (HEADER_TABLE_SIZE is 0x1 and kept as
#: QPACK_MAX_TABLE_CAPACITY's number): receiving one is H3_SETTINGS_ERROR (RFC 9114 §7.2.4.1).
RESERVED_HTTP2_SETTINGS: Final = frozenset({0x0, 0x2, 0x3, 0x4, 0x5})

_KNOWN: Final = frozenset(int(s) for s in SettingsId)
_BOOLEAN: Final = frozenset({SettingsId.ENABLE_CONNECT_PROTOCOL, SettingsId.H3_DATAGRAM})


def grease_setting_id(n: int) -> int:
    """The ``n``-th reserved setting identifier ``0x1f * n + 0x21`` (RFC 9114 §7.2.4.1)."""
    return grease_value(n)


def _check_varint(name: str) -> Callable[[object, attrs.Attribute[int], int], None]:
    def check(_instance: object, _attribute: attrs.Attribute[int], value: int) -> None:
        if not 0 <= value <= VARINT_MAX:
            raise ValueError(f"{name} must be in 0..2**62-1, not {value}")

    return check


def _check_optional_varint(
    _instance: object, _attribute: attrs.Attribute[int | None], value: int | None
) -> None:
    if value is not None and not 0 <= value <= VARINT_MAX:
        raise ValueError(f"max_field_section_size must be None or in 0..2**62-1, not {value}")


def _check_unknown(
    _instance: object,
    _attribute: attrs.Attribute[tuple[tuple[int, int], ...]],
    value: tuple[tuple[int, int], ...],
) -> None:
    seen: set[int] = set()
    for identifier, setting in value:
        if identifier in _KNOWN or identifier in RESERVED_HTTP2_SETTINGS:
            raise ValueError(f"setting {identifier:#x} is not an extension setting")
        if identifier in seen:
            raise ValueError(f"setting {identifier:#x} given twice")
        if not 0 <= identifier <= VARINT_MAX or not 0 <= setting <= VARINT_MAX:
            raise ValueError(f"setting {identifier:#x}={setting} does not fit in varints")
        seen.add(identifier)


@attrs.frozen(kw_only=True)
class Settings:
    """One endpoint's HTTP/3 settings; every field defaults to the RFC's initial value."""

    #: SETTINGS_QPACK_MAX_TABLE_CAPACITY: the largest dynamic table the decoder allows.
    qpack_max_table_capacity: int = attrs.field(
        default=0, validator=_check_varint("qpack_max_table_capacity")
    )
    #: SETTINGS_MAX_FIELD_SECTION_SIZE: advisory limit on a field section; None = unlimited.
    max_field_section_size: int | None = attrs.field(
        default=None, validator=_check_optional_varint
    )
    #: SETTINGS_QPACK_BLOCKED_STREAMS: how many streams may be blocked on the dynamic table.
    qpack_blocked_streams: int = attrs.field(
        default=0, validator=_check_varint("qpack_blocked_streams")
    )
    #: SETTINGS_ENABLE_CONNECT_PROTOCOL (RFC 9220): extended CONNECT is accepted (servers).
    enable_connect_protocol: bool = False
    #: SETTINGS_H3_DATAGRAM (RFC 9297): HTTP/3 datagrams may be sent to this endpoint.
    h3_datagram: bool = False
    #: Settings not understood here, as (identifier, value), in wire order; reserved GREASE
    #: identifiers are dropped on receipt (they carry no meaning, RFC 9114 §7.2.4.1).
    unknown: tuple[tuple[int, int], ...] = attrs.field(default=(), validator=_check_unknown)


def encode_settings(
    settings: Settings,
    *,
    grease: bool = True,
    random_bytes: Callable[[int], bytes] | None = None,
) -> bytes:
    """The payload of a SETTINGS frame announcing ``settings``.

    Settings at their initial value are left out (the receiver assumes it), then come the
    ``unknown`` extension settings in order.

    Args:
        settings: What to announce.
        grease: Append one reserved setting (``0x1f * N + 0x21``), as RFC 9114 §7.2.4.1
            recommends.
        random_bytes: Draws the GREASE identifier and value; without it they are fixed
            (N = 0 ... identifier 0x21, value 0), which still exercises the peer's ignoring
            of unknown settings but not its handling of arbitrary identifiers.
    """
    prefix = _encoded.get(settings)
    if prefix is None:
        prefix = _encode_known(settings)
        if len(_encoded) >= _CACHE_ENTRIES:
            _encoded.clear()
        _encoded[settings] = prefix
    if not grease:
        return prefix
    if random_bytes is None:
        n, value = 0, 0
    else:
        n = int.from_bytes(random_bytes(8), "big") % (GREASE_MAX_N + 1)
        value = int.from_bytes(random_bytes(4), "big")
    if settings.unknown:
        used = {identifier for identifier, _ in settings.unknown}
        while grease_value(n) in used:  # the caller may have put reserved ids in ``unknown``
            n = (n + 1) % (GREASE_MAX_N + 1)
    return prefix + encode_varint(grease_value(n)) + encode_varint(value)


#: The same few Settings are announced and received by every connection: their encoding and
#: decoding are remembered (Settings are immutable), at most this many of each.
_CACHE_ENTRIES: Final = 64
_encoded: dict[Settings, bytes] = {}
_Key = tuple[int, int | None, int, bool, bool, tuple[tuple[int, int], ...]]
_decoded: dict[_Key, Settings] = {}


def _encode_known(settings: Settings) -> bytes:
    """The settings' pairs, GREASE aside."""
    writer = Writer()
    if settings.qpack_max_table_capacity:
        writer.push_varint(SettingsId.QPACK_MAX_TABLE_CAPACITY)
        writer.push_varint(settings.qpack_max_table_capacity)
    if settings.max_field_section_size is not None:
        writer.push_varint(SettingsId.MAX_FIELD_SECTION_SIZE)
        writer.push_varint(settings.max_field_section_size)
    if settings.qpack_blocked_streams:
        writer.push_varint(SettingsId.QPACK_BLOCKED_STREAMS)
        writer.push_varint(settings.qpack_blocked_streams)
    if settings.enable_connect_protocol:
        writer.push_varint(SettingsId.ENABLE_CONNECT_PROTOCOL)
        writer.push_varint(1)
    if settings.h3_datagram:
        writer.push_varint(SettingsId.H3_DATAGRAM)
        writer.push_varint(1)
    for identifier, value in settings.unknown:
        writer.push_varint(identifier)
        writer.push_varint(value)
    return writer.getvalue()


def decode_settings(payload: bytes | bytearray | memoryview) -> Settings:
    """Parse a SETTINGS frame payload.

    Raises:
        FrameError: a truncated identifier or value (RFC 9114 §7.1).
        SettingsError: a reserved HTTP/2 identifier, a duplicate identifier, or a value other
            than 0 or 1 for ENABLE_CONNECT_PROTOCOL or H3_DATAGRAM.
    """
    data = payload if type(payload) is bytes else bytes(payload)
    end = len(data)
    pos = 0
    seen: set[int] = set()
    known: dict[int, int] = {}
    unknown: list[tuple[int, int]] = []
    try:
        while pos < end:
            identifier, pos = decode_varint(data, pos)
            value, pos = decode_varint(data, pos)
            if identifier in RESERVED_HTTP2_SETTINGS:
                raise SettingsError(
                    f"HTTP/2 setting {identifier:#x} is reserved in HTTP/3",
                    frame_type=FrameType.SETTINGS,
                )
            if identifier in seen:
                raise SettingsError(
                    f"setting {identifier:#x} appears twice", frame_type=FrameType.SETTINGS
                )
            seen.add(identifier)
            if identifier in _KNOWN:
                if value > 1 and identifier in _BOOLEAN:
                    raise SettingsError(
                        f"{SettingsId(identifier).name} must be 0 or 1, not {value}",
                        frame_type=FrameType.SETTINGS,
                    )
                known[identifier] = value
            elif not is_grease_value(identifier):
                unknown.append((identifier, value))
    except BufferReadError:
        raise FrameError("truncated SETTINGS frame", frame_type=FrameType.SETTINGS) from None
    get = known.get
    key: _Key = (
        get(SettingsId.QPACK_MAX_TABLE_CAPACITY, 0),
        get(SettingsId.MAX_FIELD_SECTION_SIZE),
        get(SettingsId.QPACK_BLOCKED_STREAMS, 0),
        get(SettingsId.ENABLE_CONNECT_PROTOCOL, 0) == 1,
        get(SettingsId.H3_DATAGRAM, 0) == 1,
        tuple(unknown),
    )
    settings = _decoded.get(key)
    if settings is None:
        settings = Settings(
            qpack_max_table_capacity=key[0],
            max_field_section_size=key[1],
            qpack_blocked_streams=key[2],
            enable_connect_protocol=key[3],
            h3_datagram=key[4],
            unknown=key[5],
        )
        if len(_decoded) >= _CACHE_ENTRIES:
            _decoded.clear()
        _decoded[key] = settings
    return settings


def check_datagram_support(settings: Settings, peer_max_datagram_frame_size: int | None) -> None:
    """Reject a peer that offers HTTP/3 datagrams but cannot receive QUIC DATAGRAM frames.

    ``peer_max_datagram_frame_size`` is the peer's max_datagram_frame_size transport parameter
    (RFC 9221 §3; absent or 0 means no DATAGRAM support).  The rule comes from
    draft-ietf-masque-h3-datagram-00..03 ("MUST terminate the connection with error
    H3_SETTINGS_ERROR"); the published RFC 9297 dropped the sentence, but aioquic and quic-go
    still enforce it, and without DATAGRAM frames the setting cannot be honoured.

    Raises:
        SettingsError: ``settings.h3_datagram`` without DATAGRAM frame support.
    """
    if settings.h3_datagram and not peer_max_datagram_frame_size:
        raise SettingsError(
            "SETTINGS_H3_DATAGRAM=1 without the max_datagram_frame_size transport parameter",
            frame_type=FrameType.SETTINGS,
        )


def check_resumed_settings(remembered: Settings, received: Settings) -> None:
    """Check a server's SETTINGS against the ones a client used for accepted 0-RTT.

    RFC 9114 §7.2.4.2: a server that accepted 0-RTT must not reduce any limit or alter any value
    the client's 0-RTT data relied on; RFC 9297 §2.1.1: H3_DATAGRAM must not drop from 1 to 0;
    RFC 9204 §3.2.3: a remembered non-zero dynamic table capacity must be sent unchanged.

    Raises:
        QpackDecoderStreamError: the dynamic table capacity changed from a non-zero value.
        SettingsError: any other setting became less permissive.
    """
    if (
        remembered.qpack_max_table_capacity
        and received.qpack_max_table_capacity != remembered.qpack_max_table_capacity
    ):
        raise QpackDecoderStreamError(
            "0-RTT: SETTINGS_QPACK_MAX_TABLE_CAPACITY changed from "
            f"{remembered.qpack_max_table_capacity} to {received.qpack_max_table_capacity}"
        )
    reduced: list[str] = []
    if received.qpack_blocked_streams < remembered.qpack_blocked_streams:
        reduced.append("qpack_blocked_streams")
    if received.max_field_section_size is not None and (
        remembered.max_field_section_size is None
        or received.max_field_section_size < remembered.max_field_section_size
    ):
        reduced.append("max_field_section_size")
    if remembered.enable_connect_protocol and not received.enable_connect_protocol:
        reduced.append("enable_connect_protocol")
    if remembered.h3_datagram and not received.h3_datagram:
        reduced.append("h3_datagram")
    if reduced:
        raise SettingsError(
            f"0-RTT: settings reduced after acceptance: {', '.join(reduced)}",
            frame_type=FrameType.SETTINGS,
        )
