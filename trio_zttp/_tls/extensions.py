"""TLS 1.3 extension codes and extension-body codecs (RFC 8446 §4.2, RFC 9001 §8.2, RFC 8701).

Each ``encode_*`` returns an extension *body* (without the type and length header) and each
``decode_*`` takes one.  Decoders raise :class:`BufferReadError` for truncated input and
:class:`AlertError` (``decode_error``) for any other malformation, including trailing bytes;
:mod:`trio_zttp._tls.messages` maps the former to ``decode_error`` at its parse boundary.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Sequence
from typing import Final

import attrs

from .._buffer import Reader, Writer
from .alerts import AlertDescription, AlertError

__all__ = [
    "GREASE_VALUES",
    "TLS13",
    "ExtensionType",
    "NamedGroup",
    "OfferedPsks",
    "PskKeyExchangeMode",
    "decode_alpn",
    "decode_cookie",
    "decode_early_data_max_size",
    "decode_key_share_client",
    "decode_key_share_hrr",
    "decode_key_share_server",
    "decode_pre_shared_key_client",
    "decode_pre_shared_key_server",
    "decode_psk_modes",
    "decode_server_name",
    "decode_supported_versions_client",
    "decode_supported_versions_server",
    "decode_u16_list",
    "encode_alpn",
    "encode_cookie",
    "encode_early_data_max_size",
    "encode_key_share_client",
    "encode_key_share_hrr",
    "encode_key_share_server",
    "encode_pre_shared_key_client",
    "encode_pre_shared_key_server",
    "encode_psk_modes",
    "encode_server_name",
    "encode_supported_versions_client",
    "encode_supported_versions_server",
    "encode_u16_list",
    "grease_psk_mode",
    "is_grease",
    "unpack_u16s",
]

TLS13: Final = 0x0304
"""The ``supported_versions`` value of TLS 1.3."""


class ExtensionType(enum.IntEnum):
    """Extension code points this engine reads or writes (IANA TLS ExtensionType registry)."""

    server_name = 0
    supported_groups = 10
    signature_algorithms = 13
    application_layer_protocol_negotiation = 16
    pre_shared_key = 41
    early_data = 42
    supported_versions = 43
    cookie = 44
    psk_key_exchange_modes = 45
    certificate_authorities = 47
    signature_algorithms_cert = 50
    key_share = 51
    quic_transport_parameters = 0x39


class NamedGroup(enum.IntEnum):
    """Key-exchange groups (RFC 8446 §4.2.7, draft-ietf-tls-ecdhe-mlkem)."""

    secp256r1 = 0x0017
    secp384r1 = 0x0018
    secp521r1 = 0x0019
    x25519 = 0x001D
    x448 = 0x001E
    X25519MLKEM768 = 0x11EC


class PskKeyExchangeMode(enum.IntEnum):
    """``psk_key_exchange_modes`` values (RFC 8446 §4.2.9)."""

    psk_ke = 0
    psk_dhe_ke = 1


GREASE_VALUES: Final = tuple(0x0A0A + 0x1010 * i for i in range(16))
"""The sixteen reserved GREASE values for 16-bit code points (RFC 8701 §2)."""


def is_grease(value: int) -> bool:
    """True for a 16-bit RFC 8701 GREASE value (0x?A?A with equal bytes)."""
    return (value & 0x0F0F) == 0x0A0A and (value >> 8) == (value & 0xFF)


def grease_psk_mode(index: int) -> int:
    """The ``index``-th (0..7) GREASE ``psk_key_exchange_modes`` value (RFC 8701 §2)."""
    return 0x0B + 0x1F * (index % 8)


def _bad(reason: str) -> AlertError:
    return AlertError(AlertDescription.decode_error, reason)


def _done(reader: Reader, what: str) -> None:
    if not reader.eof():
        raise _bad(f"trailing bytes in {what}")


# --- generic lists -------------------------------------------------------------------------


def encode_u16_list(values: Sequence[int]) -> bytes:
    """A ``uint16 values<2..2^16-2>`` vector (supported_groups, signature_algorithms)."""
    w = Writer()
    w.push_uint16(2 * len(values))
    for value in values:
        w.push_uint16(value)
    return w.getvalue()


def decode_u16_list(data: bytes, what: str = "list") -> tuple[int, ...]:
    """Inverse of :func:`encode_u16_list`; an empty or odd-length list is a decode_error."""
    r = Reader(data)
    inner = r.sub_reader(r.pull_uint16())
    _done(r, what)
    return unpack_u16s(inner, what)


def unpack_u16s(reader: Reader, what: str) -> tuple[int, ...]:
    """The rest of ``reader`` as big-endian uint16s; none or an odd byte is a decode_error."""
    n = reader.remaining
    if n == 0 or n % 2:
        raise _bad(f"bad {what} length")
    return struct.unpack(f"!{n // 2}H", reader.pull_view(n))


# --- server_name (RFC 6066 §3) -------------------------------------------------------------


def encode_server_name(host_name: str) -> bytes:
    """A ``server_name`` list holding one ``host_name`` (ASCII, A-labels)."""
    name = host_name.encode("ascii")
    w = Writer()
    w.push_uint16(len(name) + 3)
    w.push_uint8(0)
    w.push_uint16_bytes(name)
    return w.getvalue()


def decode_server_name(data: bytes) -> str | None:
    """The first ``host_name`` of a ``server_name`` list, or None if the body is empty.

    An empty body is what a server sends to acknowledge the extension.
    """
    if not data:
        return None
    r = Reader(data)
    names = r.sub_reader(r.pull_uint16())
    _done(r, "server_name")
    if names.eof():
        raise _bad("empty server_name list")
    host: str | None = None
    while not names.eof():
        name_type = names.pull_uint8()
        value = names.pull_uint16_bytes()
        if name_type == 0 and host is None:
            if not value:
                raise _bad("empty host_name")
            try:
                host = value.decode("ascii")
            except UnicodeDecodeError:
                raise _bad("host_name is not ASCII") from None
    return host


# --- ALPN (RFC 7301) -----------------------------------------------------------------------


def encode_alpn(protocols: Sequence[bytes]) -> bytes:
    """A ``ProtocolNameList``."""
    w = Writer()
    total = sum(1 + len(p) for p in protocols)
    w.push_uint16(total)
    for protocol in protocols:
        w.push_uint8_bytes(protocol)
    return w.getvalue()


def decode_alpn(data: bytes) -> tuple[bytes, ...]:
    """Inverse of :func:`encode_alpn`; empty names or an empty list are decode_errors."""
    r = Reader(data)
    names = r.sub_reader(r.pull_uint16())
    _done(r, "ALPN")
    out: list[bytes] = []
    while not names.eof():
        name = names.pull_uint8_bytes()
        if not name:
            raise _bad("empty ALPN protocol name")
        out.append(name)
    if not out:
        raise _bad("empty ALPN list")
    return tuple(out)


# --- supported_versions (RFC 8446 §4.2.1) --------------------------------------------------


def encode_supported_versions_client(versions: Sequence[int]) -> bytes:
    w = Writer()
    w.push_uint8(2 * len(versions))
    for version in versions:
        w.push_uint16(version)
    return w.getvalue()


def decode_supported_versions_client(data: bytes) -> tuple[int, ...]:
    r = Reader(data)
    inner = r.sub_reader(r.pull_uint8())
    _done(r, "supported_versions")
    return unpack_u16s(inner, "supported_versions")


def encode_supported_versions_server(version: int) -> bytes:
    return version.to_bytes(2, "big")


def decode_supported_versions_server(data: bytes) -> int:
    r = Reader(data)
    version = r.pull_uint16()
    _done(r, "supported_versions")
    return version


# --- key_share (RFC 8446 §4.2.8) -----------------------------------------------------------


def encode_key_share_client(shares: Sequence[tuple[int, bytes]]) -> bytes:
    """``KeyShareClientHello``: a list of (group, key_exchange)."""
    w = Writer()
    w.push_uint16(sum(4 + len(key) for _, key in shares))
    for group, key in shares:
        w.push_uint16(group)
        w.push_uint16_bytes(key)
    return w.getvalue()


def decode_key_share_client(data: bytes) -> tuple[tuple[int, bytes], ...]:
    """Inverse of :func:`encode_key_share_client`; an empty key_exchange is a decode_error."""
    r = Reader(data)
    inner = r.sub_reader(r.pull_uint16())
    _done(r, "key_share")
    out: list[tuple[int, bytes]] = []
    while not inner.eof():
        group = inner.pull_uint16()
        key = inner.pull_uint16_bytes()
        if not key:
            raise _bad("empty key_exchange")
        out.append((group, key))
    return tuple(out)


def encode_key_share_server(group: int, key: bytes) -> bytes:
    """``KeyShareServerHello``: one entry."""
    w = Writer()
    w.push_uint16(group)
    w.push_uint16_bytes(key)
    return w.getvalue()


def decode_key_share_server(data: bytes) -> tuple[int, bytes]:
    r = Reader(data)
    group = r.pull_uint16()
    key = r.pull_uint16_bytes()
    _done(r, "key_share")
    if not key:
        raise _bad("empty key_exchange")
    return group, key


def encode_key_share_hrr(group: int) -> bytes:
    """``KeyShareHelloRetryRequest``: the selected group."""
    return group.to_bytes(2, "big")


def decode_key_share_hrr(data: bytes) -> int:
    r = Reader(data)
    group = r.pull_uint16()
    _done(r, "key_share")
    return group


# --- psk_key_exchange_modes (RFC 8446 §4.2.9) ----------------------------------------------


def encode_psk_modes(modes: Sequence[int]) -> bytes:
    w = Writer()
    w.push_uint8_bytes(bytes(modes))
    return w.getvalue()


def decode_psk_modes(data: bytes) -> tuple[int, ...]:
    r = Reader(data)
    modes = r.pull_uint8_bytes()
    _done(r, "psk_key_exchange_modes")
    if not modes:
        raise _bad("empty psk_key_exchange_modes")
    return tuple(modes)


# --- pre_shared_key (RFC 8446 §4.2.11) -----------------------------------------------------


@attrs.frozen(kw_only=True)
class OfferedPsks:
    """A client's ``pre_shared_key`` extension."""

    identities: tuple[tuple[bytes, int], ...]
    """(identity, obfuscated_ticket_age) pairs."""
    binders: tuple[bytes, ...]
    """One binder per identity, in the same order."""
    binders_length: int
    """Bytes the binders list takes at the end of the ClientHello (2-byte length included)."""


def binders_length(binder_lengths: Sequence[int]) -> int:
    """Size of an encoded ``PskBinderEntry`` list holding binders of these lengths."""
    return 2 + sum(1 + n for n in binder_lengths)


def encode_pre_shared_key_client(
    identities: Sequence[tuple[bytes, int]], binders: Sequence[bytes]
) -> bytes:
    """``OfferedPsks``; the binders list comes last, so a caller can patch it in place."""
    w = Writer()
    w.push_uint16(sum(2 + len(identity) + 4 for identity, _ in identities))
    for identity, age in identities:
        w.push_uint16_bytes(identity)
        w.push_uint32(age)
    w.push_uint16(sum(1 + len(b) for b in binders))
    for binder in binders:
        w.push_uint8_bytes(binder)
    return w.getvalue()


def decode_pre_shared_key_client(data: bytes) -> OfferedPsks:
    r = Reader(data)
    ids = r.sub_reader(r.pull_uint16())
    identities: list[tuple[bytes, int]] = []
    while not ids.eof():
        identity = ids.pull_uint16_bytes()
        if not identity:
            raise _bad("empty PSK identity")
        identities.append((identity, ids.pull_uint32()))
    start = r.position
    bs = r.sub_reader(r.pull_uint16())
    binders: list[bytes] = []
    while not bs.eof():
        binder = bs.pull_uint8_bytes()
        if len(binder) < 32:
            raise _bad("PSK binder shorter than 32 bytes")
        binders.append(binder)
    _done(r, "pre_shared_key")
    if not identities or not binders:
        raise _bad("empty PSK identity or binder list")
    return OfferedPsks(
        identities=tuple(identities), binders=tuple(binders), binders_length=r.position - start
    )


def encode_pre_shared_key_server(selected_identity: int) -> bytes:
    return selected_identity.to_bytes(2, "big")


def decode_pre_shared_key_server(data: bytes) -> int:
    r = Reader(data)
    index = r.pull_uint16()
    _done(r, "pre_shared_key")
    return index


# --- early_data (RFC 8446 §4.2.10) ---------------------------------------------------------


def encode_early_data_max_size(max_early_data_size: int) -> bytes:
    """The NewSessionTicket form of ``early_data`` (ClientHello/EE carry an empty body)."""
    return max_early_data_size.to_bytes(4, "big")


def decode_early_data_max_size(data: bytes) -> int:
    r = Reader(data)
    value = r.pull_uint32()
    _done(r, "early_data")
    return value


# --- cookie (RFC 8446 §4.2.2) --------------------------------------------------------------


def encode_cookie(cookie: bytes) -> bytes:
    w = Writer()
    w.push_uint16_bytes(cookie)
    return w.getvalue()


def decode_cookie(data: bytes) -> bytes:
    r = Reader(data)
    cookie = r.pull_uint16_bytes()
    _done(r, "cookie")
    if not cookie:
        raise _bad("empty cookie")
    return cookie
