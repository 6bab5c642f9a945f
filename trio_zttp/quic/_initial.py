"""Reading what a QUIC client sends first: its Initial packet and ClientHello.

:func:`decode_client_initial` takes one UDP payload from any QUIC client (v1 or v2), removes
the Initial packet protection with the keys derived from the client's own Destination
Connection ID (RFC 9001 §5.2, RFC 9369 §3.3.1), and returns the header fields, the decoded
frames of the first packet and the CRYPTO bytes it carries.  Browsers split a large
ClientHello (post-quantum key shares) over several Initials and even reorder the fragments;
:class:`ClientHelloAssembler` puts the flight back together.
"""

from __future__ import annotations

from typing import final

import attrs

from .._tls.suites import CipherSuite
from ._crypto import DecryptionError, PacketOpener, initial_secrets
from ._errors import TransportError
from ._frame_codec import decode_frames
from ._frames import CryptoFrame, Frame
from ._packet import MalformedPacketError, PacketType, parse_header

__all__ = ["ClientHelloAssembler", "ClientInitial", "InitialDecodeError", "decode_client_initial"]

#: Upper bound on the ClientHello size the assembler accepts (bounded memory).
MAX_CLIENT_HELLO = 64 * 1024


class InitialDecodeError(ValueError):
    """The datagram does not start with a client Initial packet we can decrypt and parse."""


@final
@attrs.frozen(kw_only=True)
class ClientInitial:
    """The first packet of a client datagram, decrypted and decoded."""

    #: QUIC version of the packet.
    version: int
    #: Destination Connection ID (the one Initial keys derive from).
    dcid: bytes
    #: Source Connection ID.
    scid: bytes
    #: Address-validation token (empty without one).
    token: bytes
    #: The packet number (the truncated value as sent, decoded from an expected 0).
    packet_number: int
    #: Length in bytes of the packet-number field (1-4).
    packet_number_length: int
    #: The frames of the packet, in order (runs of PADDING as one frame).
    frames: tuple[Frame, ...]
    #: Length of the first packet in bytes.
    packet_length: int
    #: Bytes in the datagram after the first packet (zero padding or coalesced packets).
    trailing_length: int
    #: ``(offset, data)`` of every CRYPTO frame, in packet order.
    crypto_fragments: tuple[tuple[int, bytes], ...]

    @property
    def crypto_data(self) -> bytes:
        """The contiguous CRYPTO bytes from offset 0 that this packet alone holds.

        For a ClientHello that fits in one packet this is the whole ClientHello message.
        """
        return _contiguous_prefix(self.crypto_fragments)


def _contiguous_prefix(fragments: tuple[tuple[int, bytes], ...] | list[tuple[int, bytes]]) -> bytes:
    out = bytearray()
    pending = sorted(fragments)
    progress = True
    while progress:
        progress = False
        for offset, data in pending:
            end = offset + len(data)
            if offset <= len(out) < end:
                out += data[len(out) - offset:]
                progress = True
    return bytes(out)


def decode_client_initial(datagram: bytes | bytearray | memoryview) -> ClientInitial:
    """Decrypt and decode the client Initial packet that starts ``datagram``.

    Args:
        datagram: One UDP payload as a QUIC client sent it.

    Returns:
        The decoded first packet. Later packets in the datagram are only counted.

    Raises:
        InitialDecodeError: Not a v1/v2 Initial, or its protection or frames do not check out.
    """
    data = bytes(datagram)
    try:
        header = parse_header(data, 0, 0)
    except MalformedPacketError as exc:
        raise InitialDecodeError(f"not a QUIC long header: {exc}") from None
    if header.packet_type is not PacketType.INITIAL or header.version is None:
        raise InitialDecodeError("the first packet is not an Initial of QUIC v1 or v2")
    # the client's Initial secret only: nothing is sealed here
    opener = PacketOpener(header.version, CipherSuite.AES_128_GCM_SHA256,
                          initial_secrets(header.version, header.dcid)[0])
    packet = data[header.start:header.end]
    try:
        first_byte, pn, _hdr, payload = opener.open(packet, header.pn_offset - header.start, 0)
    except (DecryptionError, ValueError) as exc:
        raise InitialDecodeError(f"Initial packet does not decrypt: {exc}") from None
    try:
        frames = tuple(decode_frames(payload))
    except TransportError as exc:
        raise InitialDecodeError(f"malformed frames: {exc}") from None
    fragments = tuple((f.offset, f.data) for f in frames if isinstance(f, CryptoFrame))
    return ClientInitial(
        version=header.version,
        dcid=header.dcid,
        scid=header.scid,
        token=header.token,
        packet_number=pn,
        packet_number_length=(first_byte & 0x03) + 1,
        frames=frames,
        packet_length=header.end - header.start,
        trailing_length=len(data) - header.end,
        crypto_fragments=fragments,
    )


@final
class ClientHelloAssembler:
    """Reassembles a ClientHello spread over several client Initials.

    Feed decoded Initials with :meth:`add`; it returns the whole ClientHello message
    (handshake header included) once its bytes from offset 0 are all there, else None.
    Fragments beyond :data:`MAX_CLIENT_HELLO` raise :class:`InitialDecodeError`.
    """

    __slots__ = ("_fragments", "_done")

    def __init__(self) -> None:
        self._fragments: list[tuple[int, bytes]] = []
        self._done: bytes | None = None

    def add(self, initial: ClientInitial) -> bytes | None:
        if self._done is not None:
            return self._done
        for offset, data in initial.crypto_fragments:
            if offset + len(data) > MAX_CLIENT_HELLO:
                raise InitialDecodeError("ClientHello larger than the assembler accepts")
            self._fragments.append((offset, data))
        prefix = _contiguous_prefix(self._fragments)
        if len(prefix) >= 4:
            if prefix[0] != 1:
                raise InitialDecodeError("CRYPTO data does not start with a ClientHello")
            total = 4 + int.from_bytes(prefix[1:4], "big")
            if total > MAX_CLIENT_HELLO:
                raise InitialDecodeError("ClientHello larger than the assembler accepts")
            if len(prefix) >= total:
                self._done = prefix[:total]
        return self._done
