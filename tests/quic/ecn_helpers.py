"""A wire observer for the ECN tests: decrypts a pair's traffic from the key log.

The tests check what goes on the wire (ACK versus ACK_ECN frames, their counts per
packet-number space, the packet numbers each side sent) without asking the connections;
the keys come from the client's SSLKEYLOGFILE lines and RFC 9001's Initial secrets.
"""

from __future__ import annotations

from trio_zttp._tls.suites import CipherSuite
from trio_zttp.quic._crypto import DecryptionError, PacketOpener, initial_secrets
from trio_zttp.quic._frame_codec import decode_frames
from trio_zttp.quic._frames import AckFrame, Frame
from trio_zttp.quic._packet import PacketType, iter_coalesced
from trio_zttp.testing import Side, WireDatagram

from .conn_helpers import KeyLog

SUITE = 0x1301
SPACES = ("initial", "handshake", "application")
_SPACE_OF = {PacketType.INITIAL: 0, PacketType.HANDSHAKE: 1, PacketType.ZERO_RTT: 2,
             PacketType.ONE_RTT: 2}
_LABELS = {
    ("client", 1): "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
    ("server", 1): "SERVER_HANDSHAKE_TRAFFIC_SECRET",
    ("client", 2): "CLIENT_TRAFFIC_SECRET_0",
    ("server", 2): "SERVER_TRAFFIC_SECRET_0",
}


class Wire:
    """Use as the pair's ``tap``: decrypts every datagram each side sends.

    Configurations must offer only TLS_AES_128_GCM_SHA256 (:data:`SUITE`) and the client must
    log its secrets to :attr:`keylog`; no key update, no Retry.

    Attributes:
        packets: per sending side, ``(space, packet number, frames)`` of every packet, in order.
        datagrams: per sending side, each datagram with the ``(space, packet number)`` of its
            packets.
    """

    def __init__(self, keylog: KeyLog, cid_length: int = 8) -> None:
        self.keylog = keylog
        self.cid_length = cid_length
        self.packets: dict[str, list[tuple[int, int, list[Frame]]]] = {
            "client": [], "server": []}
        self.datagrams: dict[str, list[tuple[bytes, list[tuple[int, int]]]]] = {
            "client": [], "server": []}
        self._openers: dict[tuple[str, int], PacketOpener] = {}
        self._largest: dict[tuple[str, int], int] = {}
        self._odcid: bytes | None = None

    def __call__(self, side: Side | None, datagram: WireDatagram) -> None:
        if side is None:
            return  # injected
        data = datagram.data
        inside: list[tuple[int, int]] = []
        self.datagrams[side].append((data, inside))
        for header in iter_coalesced(data, self.cid_length):
            if header.packet_type is None or header.packet_type not in _SPACE_OF:
                continue
            if self._odcid is None:
                self._odcid = header.dcid  # the client's first Initial
            space = _SPACE_OF[header.packet_type]
            opener = self._opener(side, space)
            packet = data[header.start:header.end]
            largest = self._largest.get((side, space), -1)
            try:
                _, pn, plain = opener.unprotect_header(packet, header.pn_offset - header.start,
                                                       largest + 1)
                payload = opener.decrypt(packet, plain, pn)
            except DecryptionError:  # pragma: no cover - a test setup mistake
                raise AssertionError(f"cannot decrypt a {side} {SPACES[space]} packet") from None
            self._largest[side, space] = max(largest, pn)
            self.packets[side].append((space, pn, decode_frames(payload)))
            inside.append((space, pn))

    def _opener(self, side: str, space: int) -> PacketOpener:
        opener = self._openers.get((side, space))
        if opener is None:
            if space == 0:
                assert self._odcid is not None
                client, server = initial_secrets(1, self._odcid)
                secret = client if side == "client" else server
            else:
                secret = self.keylog.secret(_LABELS[side, space])
            opener = self._openers[side, space] = PacketOpener(1, CipherSuite(SUITE), secret)
        return opener

    def acks(self, side: str, space: int | None = None) -> list[AckFrame]:
        """The ACK frames ``side`` sent (in ``space``), in order."""
        return [frame for s, _, frames in self.packets[side] for frame in frames
                if isinstance(frame, AckFrame) and (space is None or s == space)]

    def packet_numbers(self, side: str, space: int) -> list[int]:
        """The packet numbers ``side`` sent in ``space``, in order."""
        return [pn for s, pn, _ in self.packets[side] if s == space]
