"""Packet assembly: frames into packets, packets into datagrams (RFC 9000 §12.2, §13, §14).

:func:`build_datagrams` fills datagrams for the connection's current path until nothing is
left to send or a limit stops it: the congestion window and the pacer (ack-eliciting packets
only; PTO probes bypass both), and the anti-amplification budget of an unvalidated path,
which counts whole datagrams.

Each datagram is planned first and protected last: packets of the Initial, Handshake and
application spaces are filled one after the other into the room left, each as one
``bytearray`` of frames plus a list of small frame records for loss recovery; once the
datagram's content is known, padding goes into its last packet (client Initials and server
ack-eliciting Initials fill 1200 bytes, RFC 9000 §14.1; so do path probes, §8.2.1), and only
then are the headers written (Length fields on two bytes, so their size is known up front)
and the packets sealed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from .._buffer import encode_varint
from .._tls.suites import Epoch
from ._congestion import CongestionController
from ._crypto import TAG_LENGTH, PacketSealer
from ._frame_codec import crypto_data_capacity, write_ack_frame, write_crypto_frame
from ._packet import (
    PacketType,
    encode_long_header,
    encode_packet_number,
    encode_short_header,
    long_header_size,
)
from ._paths import Path
from ._recovery import SentPacket
from ._spaces import PacketSpace

if TYPE_CHECKING:
    from ._conn_base import ConnectionBase as Connection

__all__ = ["F_ACK", "F_CRYPTO", "build_close_datagram", "build_datagrams"]

# frame records (SentPacket.frames); the stream manager's kinds start at 10
F_ACK: Final = 1
F_CRYPTO: Final = 2
F_HANDSHAKE_DONE: Final = 3
F_NEW_CONNECTION_ID: Final = 4
F_RETIRE_CONNECTION_ID: Final = 5
F_NEW_TOKEN: Final = 6
F_PING: Final = 7
F_DATAGRAM: Final = 8
F_PATH: Final = 9
_DATAGRAM_RECORD: Final = (F_DATAGRAM,)
# builds a SentPacket (a tuple) in field order without its Python-level __new__
_new_tuple: Final = tuple.__new__

MIN_INITIAL_SIZE: Final = 1200
#: Smallest room worth starting a packet in.
_MIN_PACKET_ROOM: Final = 48
#: ACK-only 1-RTT packets in a row after which one carries a PING (RFC 9000 §13.2.4).
ACK_ONLY_BEFORE_PING: Final = 32
#: Most datagrams one call produces (the caller comes back for more).
MAX_DATAGRAMS_PER_CALL: Final = 64
#: The pacing timer waits until this many datagrams may go at once (the pacer's bucket
#: holds ten), so a paced sender wakes up once per small burst instead of once per packet.
PACING_BURST: Final = 4

_INITIAL: Final = Epoch.INITIAL
_HANDSHAKE: Final = Epoch.HANDSHAKE
_ONE_RTT: Final = Epoch.ONE_RTT
_ZERO_RTT: Final = Epoch.ZERO_RTT
_LONG_TYPES: Final = {_INITIAL: PacketType.INITIAL, _HANDSHAKE: PacketType.HANDSHAKE,
                      _ZERO_RTT: PacketType.ZERO_RTT}


_PN_MASKS: Final = (0, 0xFF, 0xFFFF, 0xFFFFFF, 0xFFFFFFFF)
# the one-byte varints (values below 64)
_BYTE: Final = tuple(bytes((value,)) for value in range(0x40))
# first byte of a short header by key phase and packet-number length (fixed bit set)
_SHORT_FIRST: Final = tuple(
    (b"",) + tuple(bytes((0x40 | phase << 2 | (n - 1),)) for n in range(1, 5)) for phase in (0, 1)
)


def _varint(value: int) -> bytes:
    """:func:`encode_varint` for a non-negative value, one and two bytes without a call."""
    if value < 0x40:
        return _BYTE[value]
    if value < 0x4000:
        return (value | 0x4000).to_bytes(2)
    return encode_varint(value)


class _Packet:
    """A packet being planned: everything but the header and the protection."""

    __slots__ = ("ack_eliciting", "epoch", "header_size", "is_crypto", "off_path", "padding_only",
                 "payload", "pn", "pn_length", "probing", "records", "sealer", "space",
                 "truncated_pn")

    def __init__(self, space: PacketSpace, epoch: Epoch, sealer: PacketSealer, pn: int,
                 truncated_pn: int, pn_length: int, header_size: int) -> None:
        self.space = space
        self.epoch = epoch
        self.sealer = sealer
        self.pn = pn
        self.truncated_pn = truncated_pn
        self.pn_length = pn_length
        self.header_size = header_size
        self.payload = bytearray()
        self.records: list[Any] = []
        self.ack_eliciting = False
        self.is_crypto = False
        self.padding_only = False  # carries PADDING (so it counts as in flight)
        self.probing = False  # carries PATH_CHALLENGE / PATH_RESPONSE (padded to 1200)
        # goes to a path other than the current one: not congestion-controlled, no ECN mark
        # counted, so its loss says nothing about the path in use (RFC 9000 §9.4)
        self.off_path = False

    @property
    def size(self) -> int:
        return self.header_size + len(self.payload) + TAG_LENGTH


def _app_sealer(conn: Connection) -> tuple[PacketSealer | None, Epoch]:
    space = conn._spaces[2]
    if space.sealer is not None:
        return space.sealer, _ONE_RTT
    if conn._zero_rtt_sealer is not None:
        return conn._zero_rtt_sealer, _ZERO_RTT
    return None, _ONE_RTT


def _start_packet(conn: Connection, space: PacketSpace, epoch: Epoch, sealer: PacketSealer,
                  room: int) -> _Packet | None:
    pn = space.next_pn
    largest_acked = conn._recovery.space(epoch).largest_acked
    # RFC 9000 §A.2: room for twice the packets in flight since the largest acknowledged
    unacked = pn + 1 if largest_acked is None else pn - largest_acked
    if unacked <= 0x80:
        pn_length = 1
    elif unacked <= 0x8000:
        pn_length = 2
    elif unacked <= 0x800000:
        pn_length = 3
    else:
        truncated, pn_length = encode_packet_number(pn, largest_acked)  # raises past 4 bytes
    truncated = pn & _PN_MASKS[pn_length]
    dcid = conn._peer_cids.current
    if epoch == _ONE_RTT:
        header_size = 1 + len(dcid) + pn_length
    else:
        header_size = long_header_size(
            _LONG_TYPES[epoch], dcid_length=len(dcid), scid_length=len(conn._local_cids.initial),
            token_length=len(conn._token) if epoch == _INITIAL else 0, pn_length=pn_length,
            length_size=2,
        )
    if room - header_size - TAG_LENGTH < 8:
        return None
    return _Packet(space, epoch, sealer, pn, truncated, pn_length, header_size)


def _write_ack(conn: Connection, payload: bytearray, records: list[Any], space: PacketSpace,
               limit: int, now: float, one_rtt: bool) -> None:
    ranges = space.received.to_ack_ranges()
    if not ranges:
        space.on_ack_sent()
        return
    delay = 0
    if one_rtt:
        delay = int((now - space.largest_received_time) * 1_000_000) >> conn._ack_delay_exponent
        if delay < 0:
            delay = 0
    counts = space.ecn_received
    ecn = None if counts is None else (counts[2], counts[1], counts[3])
    if write_ack_frame(payload, ranges, delay, ecn, capacity=limit - len(payload)):
        records.append((F_ACK, ranges[0][1]))
        space.largest_ack_sent = ranges[0][1]
        space.on_ack_sent()


def _write_crypto(packet: _Packet, space: PacketSpace, limit: int) -> None:
    send = space.crypto_send
    payload = packet.payload
    while send.has_data():
        capacity = crypto_data_capacity(send.size, limit - len(payload))
        chunk = send.next_chunk(capacity)
        if chunk is None:
            break
        offset, data = chunk
        write_crypto_frame(payload, offset, data)
        packet.records.append((F_CRYPTO, space.epoch, offset, len(data)))
        packet.ack_eliciting = packet.is_crypto = True


def _has_app_control(conn: Connection, path: Path) -> bool:
    """Whether 1-RTT frames other than STREAM, DATAGRAM and ACK wait to be sent."""
    streams = conn._streams
    blocked = streams._streams_blocked
    pending = streams._max_streams_pending
    crypto = conn._spaces[2].crypto_send
    credit = streams._conn_credit
    return bool(
        # streams.has_control() and crypto.has_data(), inline
        streams._control or streams._max_data_pending or streams._max_data_due
        or pending[0] or pending[1] or blocked[0] is not None or blocked[1] is not None
        or (credit._blocked_at is not None and credit._blocked_at != credit._blocked_sent)
        or conn._handshake_done_pending or conn._ping_pending
        or conn._new_cids or conn._peer_cids.pending_retire
        or conn._new_token_pending is not None or path.challenge_pending
        or (conn._paths.responses and any(p is path for p, _ in conn._paths.responses))
        or crypto._sent_end < len(crypto._data) or crypto._pending._bounds
    )


def _write_app_control(conn: Connection, packet: _Packet, limit: int, path: Path) -> None:
    """Frames of the 1-RTT packet other than ACK, DATAGRAM and STREAM."""
    payload = packet.payload
    records = packet.records
    start = len(records)
    one_rtt = packet.epoch == _ONE_RTT
    if one_rtt:
        if conn._handshake_done_pending and len(payload) < limit:
            payload.append(0x1E)
            records.append((F_HANDSHAKE_DONE,))
            conn._handshake_done_pending = False
        responses = conn._paths.responses
        if responses:
            keep = []
            for owner, data in responses:
                if owner is path and len(payload) + 9 <= limit:
                    payload.append(0x1B)
                    payload += data
                    records.append((F_PATH,))
                    packet.probing = True
                else:
                    keep.append((owner, data))
            conn._paths.responses = keep
        if path.challenge_pending and path.challenge is not None and len(payload) + 9 <= limit:
            payload.append(0x1A)
            payload += path.challenge
            records.append((F_PATH,))
            packet.probing = True
            path.challenge_pending = False
        while conn._new_cids:
            seq, cid, token = conn._new_cids[0]
            frame = (b"\x18" + _varint(seq) + b"\x00"
                     + bytes((len(cid),)) + cid + token)
            if len(payload) + len(frame) > limit:
                break
            payload += frame
            records.append((F_NEW_CONNECTION_ID, seq, cid, token))
            del conn._new_cids[0]
        pending_retire = conn._peer_cids.pending_retire
        while pending_retire:
            frame = b"\x19" + encode_varint(pending_retire[0])
            if len(payload) + len(frame) > limit:
                break
            payload += frame
            records.append((F_RETIRE_CONNECTION_ID, pending_retire.pop(0)))
        new_token = conn._new_token_pending
        if new_token is not None:
            frame = b"\x07" + encode_varint(len(new_token)) + new_token
            if len(payload) + len(frame) <= limit:
                payload += frame
                records.append((F_NEW_TOKEN, new_token))
                conn._new_token_pending = None
    if conn._ping_pending and len(payload) < limit:
        payload.append(0x01)
        records.append((F_PING, tuple(conn._ping_uids)))
        conn._ping_pending = False
        conn._ping_uids.clear()
    streams = conn._streams
    if streams.has_control():
        streams.write_control(payload, limit, records, conn._now,
                              conn._recovery.rtt.smoothed_rtt)
    if len(records) != start:
        packet.ack_eliciting = True


def _write_datagrams(conn: Connection, payload: bytearray, records: list[Any],
                     limit: int) -> bool:
    """DATAGRAM frames from the queue while they fit; True if any was written."""
    queue = conn._datagrams
    written = False
    while queue:
        data = queue[0]
        n = len(data)
        length = (_BYTE[n] if n < 0x40 else (n | 0x4000).to_bytes(2) if n < 0x4000
                  else encode_varint(n))
        size = 1 + len(length) + n
        if len(payload) + size > limit:
            if not payload and size > limit:
                queue.popleft()  # can never fit this path: drop it (unreliable anyway)
                conn._datagrams_dropped += 1
                continue
            break
        payload.append(0x31)
        payload += length
        payload += data
        records.append(_DATAGRAM_RECORD)
        written = True
        queue.popleft()
    return written


def _plan_packet(conn: Connection, space: PacketSpace, epoch: Epoch, sealer: PacketSealer,
                 room: int, now: float, can_elicit: bool, path: Path) -> _Packet | None:
    """Fill one packet of ``space`` into ``room`` bytes; None if there is nothing to send."""
    probe = space.probes > 0
    elicit = can_elicit or probe
    if probe and (epoch == _INITIAL or epoch == _HANDSHAKE) and \
            not space.crypto_send.has_data():
        space.crypto_send.resend_unacked()  # every probe carries the flight again
    control = False
    if epoch == _ONE_RTT or epoch == _ZERO_RTT:
        if elicit:
            control = _has_app_control(conn, path)
            has_content = control or conn._streams.has_data() or bool(conn._datagrams)
        else:
            has_content = False
        send_ack = epoch == _ONE_RTT and (
            space.ack_now or (space.ack_deadline is not None and space.ack_deadline <= now)
            or ((has_content or probe) and space.ack_eliciting_unacked > 0))
    else:
        has_content = elicit and space.crypto_send.has_data()
        send_ack = space.ack_due(now) or (space.wants_ack() and (has_content or probe))
    if not (has_content or send_ack or probe):
        return None
    packet = _start_packet(conn, space, epoch, sealer, room)
    if packet is None:
        return None
    limit = room - packet.header_size - TAG_LENGTH
    if send_ack:
        _write_ack(conn, packet.payload, packet.records, space, limit, now, epoch == _ONE_RTT)
    if elicit:
        if epoch == _INITIAL or epoch == _HANDSHAKE:
            _write_crypto(packet, space, limit)
        else:
            if control:
                if epoch == _ONE_RTT and space.crypto_send.has_data():
                    _write_crypto(packet, space, limit)  # NewSessionTicket
                _write_app_control(conn, packet, limit, path)
            if conn._datagrams and _write_datagrams(conn, packet.payload, packet.records, limit):
                packet.ack_eliciting = True
            streams = conn._streams
            if streams.has_data():
                before = len(packet.records)
                streams.write_stream_frames(packet.payload, limit, packet.records)
                if len(packet.records) != before:
                    packet.ack_eliciting = True
        if probe and not packet.ack_eliciting and len(packet.payload) < limit:
            packet.payload.append(0x01)  # PING
            packet.records.append((F_PING, ()))
            packet.ack_eliciting = True
    if not packet.payload:
        return None
    if epoch == _ONE_RTT:
        if packet.ack_eliciting:
            conn._ack_only_sent = 0
        else:
            # only ACKs for a while: a PING gets them acknowledged, so the peer's ACKs
            # settle them here (RFC 9000 §13.2.4)
            conn._ack_only_sent += 1
            if conn._ack_only_sent >= ACK_ONLY_BEFORE_PING and len(packet.payload) < limit:
                packet.payload.append(0x01)
                packet.records.append((F_PING, ()))
                packet.ack_eliciting = True
                conn._ack_only_sent = 0
    if packet.ack_eliciting and space.probes > 0:
        space.probes -= 1
    space.next_pn += 1
    return packet


def _seal(conn: Connection, packet: _Packet, now: float) -> bytes:
    payload = packet.payload
    minimum = 4 - packet.pn_length  # the header-protection sample must fit (RFC 9001 §5.4.2)
    if len(payload) < minimum:
        payload += bytes(minimum - len(payload))
    epoch = packet.epoch
    dcid = conn._peer_cids.current
    if epoch == _ONE_RTT:
        pn_length = packet.pn_length
        header = (_SHORT_FIRST[packet.sealer.key_phase][pn_length] + dcid
                  + packet.truncated_pn.to_bytes(pn_length))
    else:
        header = encode_long_header(
            _LONG_TYPES[epoch], conn._version, dcid, conn._local_cids.initial,
            conn._token if epoch == _INITIAL else b"",
            packet.pn_length + len(payload) + TAG_LENGTH, packet.truncated_pn,
            packet.pn_length, length_size=2,
        )
    data = packet.sealer.seal(header, memoryview(payload), packet.pn)
    eliciting = packet.ack_eliciting
    if packet.off_path:
        in_flight, mark = False, 0
    else:
        in_flight, mark = eliciting or packet.padding_only, conn._ecn_mark
    conn._recovery.on_packet_sent(_new_tuple(SentPacket, (
        packet.pn, epoch, now, len(data), eliciting, in_flight, packet.is_crypto,
        packet.records, mark,
    )))
    conn._stats_packets_sent += 1
    conn._stats_bytes_sent += len(data)
    if (eliciting and conn._idle_restart_on_send) or epoch != _ONE_RTT \
            or conn._qlog is not None:
        conn._on_packet_sent(epoch, packet.pn, len(data), eliciting, packet.records, now)
    return data


def _build_datagram(conn: Connection, now: float, budget: int, path: Path,
                    can_elicit: bool) -> bytes | None:
    packets: list[_Packet] = []
    room = budget
    initial_eliciting = False
    has_initial = False
    probing = False
    for index, space in enumerate(conn._spaces):
        if index == 2:
            sealer, epoch = _app_sealer(conn)
        else:
            sealer, epoch = space.sealer, space.epoch
        if sealer is None or space.discarded:
            continue
        if room < _MIN_PACKET_ROOM:
            break
        packet = _plan_packet(conn, space, epoch, sealer, room, now, can_elicit, path)
        if packet is None:
            continue
        packets.append(packet)
        room -= packet.size
        if epoch == _INITIAL:
            has_initial = True
            initial_eliciting = packet.ack_eliciting
        if packet.probing:
            probing = True
    if not packets:
        return None
    total = budget - room
    target = 0
    if has_initial and (conn._is_client or initial_eliciting):
        target = MIN_INITIAL_SIZE
    elif probing:
        target = MIN_INITIAL_SIZE
    if target:
        target = min(target, budget)
        if total < target:
            last = packets[-1]
            last.payload += bytes(target - total)
            last.padding_only = True
    parts = [_seal(conn, packet, now) for packet in packets]
    return parts[0] if len(parts) == 1 else b"".join(parts)


def _build_short(conn: Connection, now: float, budget: int, can_elicit: bool) -> bytes | None:
    """One datagram holding one 1-RTT packet of ACK, DATAGRAM, STREAM and PING frames only.

    The common case once the handshake is over: :func:`_plan_packet` and :func:`_seal` for
    that packet, flattened (no probes, no other frames, no padding, no qlog; the caller
    checks).  None when there is nothing to send.
    """
    space = conn._spaces[2]
    streams = conn._streams
    has_content = can_elicit and (bool(streams._send_queue) or bool(conn._datagrams))
    if not (has_content or space.ack_now
            or (space.ack_deadline is not None and space.ack_deadline <= now)):
        return None
    sealer = space.sealer
    assert sealer is not None
    recovery = conn._recovery
    pn = space.next_pn
    largest_acked = recovery.application.largest_acked
    unacked = pn + 1 if largest_acked is None else pn - largest_acked
    if unacked <= 0x80:
        pn_length = 1
    elif unacked <= 0x8000:
        pn_length = 2
    elif unacked <= 0x800000:
        pn_length = 3
    else:
        _, pn_length = encode_packet_number(pn, largest_acked)  # raises past 4 bytes
    dcid = conn._peer_cids.current
    limit = budget - (1 + len(dcid) + pn_length) - TAG_LENGTH
    payload = bytearray()
    records: list[Any] = []
    if space.ack_now or space.ack_eliciting_unacked > 0 or (
            space.ack_deadline is not None and space.ack_deadline <= now):
        bounds = space.received._bounds
        if len(bounds) == 2:
            # the usual ACK, one range: _write_ack and write_ack_frame inline, the varints of
            # one and two bytes too
            largest = bounds[1] - 1
            delay = int((now - space.largest_received_time) * 1_000_000) \
                >> conn._ack_delay_exponent
            if delay < 0:
                delay = 0
            first = largest - bounds[0]
            counts = space.ecn_received
            payload += ((b"\x02" if counts is None else b"\x03")
                        + (_BYTE[largest] if largest < 0x40 else
                           (largest | 0x4000).to_bytes(2) if largest < 0x4000
                           else encode_varint(largest))
                        + (_BYTE[delay] if delay < 0x40 else
                           (delay | 0x4000).to_bytes(2) if delay < 0x4000
                           else encode_varint(delay))
                        + b"\x00"
                        + (_BYTE[first] if first < 0x40 else encode_varint(first)))
            if counts is not None:
                # ACK_ECN: ECT(0), ECT(1), CE
                # (ECT(0) passes 63 after 64 marked packets; ECT(1) and CE stay small)
                ect0, ect1, ce = counts[2], counts[1], counts[3]
                payload += ((_BYTE[ect0] if ect0 < 0x40 else (ect0 | 0x4000).to_bytes(2)
                             if ect0 < 0x4000 else encode_varint(ect0))
                            + (_BYTE[ect1] if ect1 < 0x40 else _varint(ect1))
                            + (_BYTE[ce] if ce < 0x40 else _varint(ce)))
            if len(payload) <= limit:
                records.append((F_ACK, largest))
                space.largest_ack_sent = largest
                space.ack_eliciting_unacked = 0  # space.on_ack_sent()
                space.ack_deadline = None
                space.ack_now = False
            else:
                payload.clear()
        else:
            _write_ack(conn, payload, records, space, limit, now, True)
    eliciting = False
    if has_content:
        queue = conn._datagrams
        while queue:
            # _write_datagrams, inline
            data = queue[0]
            n = len(data)
            if n < 0x40:
                size = 2 + n
                length = _BYTE[n]
            elif n < 0x4000:
                size = 3 + n
                length = (n | 0x4000).to_bytes(2)
            else:
                length = encode_varint(n)
                size = 1 + len(length) + n
            if len(payload) + size > limit:
                if not payload and size > limit:
                    queue.popleft()  # can never fit this path: drop it (unreliable anyway)
                    conn._datagrams_dropped += 1
                    continue
                break
            payload.append(0x31)
            payload += length
            payload += data
            records.append(_DATAGRAM_RECORD)
            eliciting = True
            queue.popleft()
        if streams._send_queue:
            before = len(records)
            streams.write_stream_frames(payload, limit, records)
            if len(records) != before:
                eliciting = True
    if not payload:
        return None
    if eliciting:
        conn._ack_only_sent = 0
    else:
        # only ACKs for a while: a PING gets them acknowledged (RFC 9000 §13.2.4)
        conn._ack_only_sent += 1
        if conn._ack_only_sent >= ACK_ONLY_BEFORE_PING and len(payload) < limit:
            payload.append(0x01)
            records.append((F_PING, ()))
            eliciting = True
            conn._ack_only_sent = 0
    space.next_pn = pn + 1
    if len(payload) < 4 - pn_length:  # the header-protection sample must fit
        payload += bytes(4 - pn_length - len(payload))
    data = sealer.seal(_SHORT_FIRST[sealer.key_phase][pn_length] + dcid
                       + (pn & _PN_MASKS[pn_length]).to_bytes(pn_length), payload, pn)
    size = len(data)
    recovery.on_app_packet_sent(_new_tuple(SentPacket, (pn, _ONE_RTT, now, size, eliciting,
                                                        eliciting, False, records,
                                                        conn._ecn_mark)))
    conn._stats_packets_sent += 1
    conn._stats_bytes_sent += size
    if eliciting and conn._idle_restart_on_send:
        # _on_packet_sent: the idle timer restarts with the first ack-eliciting packet sent
        # after one was received (RFC 9000 §10.1)
        conn._idle_restart_on_send = False
        timeout = conn._idle_timeout
        if timeout and timeout > 0:
            floor = conn._idle_floor
            conn._idle_deadline = now + (timeout if timeout > floor else floor)
        else:
            conn._idle_deadline = None
    return data


def _stopped(congestion: CongestionController, window_limited: bool, now: float) -> None:
    """Tell congestion control why a sending loop stopped (RFC 9002 §7.8).

    ``window_limited``: the window, the pacer or another limit than the application's data
    stopped it; otherwise the sender is app-limited (the controller itself checks whether the
    window has room left).  Telling it again that it is app-limited changes nothing: a packet
    that fills the window is noted by the controller when it is sent.
    """
    if window_limited:
        congestion.set_app_limited(False, now)
    elif not congestion.app_limited:
        congestion.set_app_limited(True, now)


def build_datagrams(conn: Connection, now: float) -> list[tuple[bytes, Any]]:
    """Everything the connection may send now on its current path."""
    path = conn._paths.current
    if path is None:
        return []
    out: list[tuple[bytes, Any]] = []
    initial, handshake, app = conn._spaces
    if initial.discarded and handshake.discarded and path.validated and not app.probes \
            and app.sealer is not None and conn._qlog is None:
        control = _has_app_control(conn, path)
        if not control and not conn._streams._send_queue and not conn._datagrams \
                and not app.ack_now \
                and (app.ack_deadline is None or app.ack_deadline > now):
            # nothing to send (a receiver between two ACKs)
            congestion = conn._recovery.congestion
            if not congestion.app_limited:
                congestion.set_app_limited(True, now)
            return out
        if not control:
            _build_short_datagrams(conn, now, path, out)
            streams = conn._streams
            credit = streams._conn_credit
            if len(out) >= MAX_DATAGRAMS_PER_CALL or not (
                    streams._control or (credit._blocked_at is not None  # credit.blocked_due
                                         and credit._blocked_at != credit._blocked_sent)):
                return out
            # a stream or the connection ran short of credit: its (STREAM_)DATA_BLOCKED goes
            # out the general way (RFC 9000 §4.1)
    _build_datagrams(conn, now, path, out)
    return out


def _build_short_datagrams(conn: Connection, now: float, path: Path,
                           out: list[tuple[bytes, Any]]) -> None:
    """The sending loop of an established connection with nothing to send but ACK, DATAGRAM,
    STREAM (and PING) frames; stops early if a stream queues a control frame or the
    connection becomes blocked by the peer's MAX_DATA (DATA_BLOCKED is due)."""
    recovery = conn._recovery
    max_size = conn._max_datagram_size
    app = conn._spaces[2]
    streams = conn._streams
    send_queue = streams._send_queue
    control = streams._control
    credit = streams._conn_credit
    queue = conn._datagrams
    congestion = recovery.congestion
    while len(out) < MAX_DATAGRAMS_PER_CALL:
        can_elicit = False
        if send_queue or queue:
            pacer = recovery.pacer
            can_elicit = congestion.can_send(max_size)
            if can_elicit and pacer is not None and pacer._tokens < pacer._max_datagram_size:
                # pacer.next_send_time(now), inline; a bucket that holds a datagram already
                # holds one after refilling too (the usual case: nothing to compute)
                tokens = pacer._tokens
                last = pacer._last
                if last is not None and now > last:
                    tokens += (now - last) * pacer._rate
                    if tokens > pacer._capacity:
                        tokens = pacer._capacity
                if tokens < pacer._max_datagram_size:
                    next_time = now + (pacer._max_datagram_size - tokens) / pacer._rate
                    if next_time > now:
                        # wake up for a small burst, not for every single packet
                        burst = PACING_BURST * max_size / pacer._rate
                        conn._pacing_at = next_time if next_time - now > burst else now + burst
                        can_elicit = False
        if not can_elicit and not app.ack_now and not (
                app.ack_deadline is not None and app.ack_deadline <= now):
            # with data waiting, the window or the pacer stopped it; else the application
            if send_queue or queue:
                congestion.set_app_limited(False, now)
            elif not congestion.app_limited:
                congestion.set_app_limited(True, now)
            return
        datagram = _build_short(conn, now, max_size, can_elicit)
        if datagram is None:
            # nothing written: flow control (app-limited), unless the window stopped it
            _stopped(congestion, not can_elicit and bool(send_queue or queue), now)
            return
        path.bytes_sent += len(datagram)
        out.append((datagram, path.address))
        if control or (credit._blocked_at is not None
                       and credit._blocked_at != credit._blocked_sent):
            return  # a (STREAM_)DATA_BLOCKED frame to send: the general way (which reports)
    congestion.set_app_limited(False, now)  # more to send: the caller comes back


def _build_datagrams(conn: Connection, now: float, path: Path,
                     out: list[tuple[bytes, Any]]) -> None:
    """The general sending loop: every space, probes, padding, anti-amplification."""
    recovery = conn._recovery
    congestion = recovery.congestion
    pacer = recovery.pacer
    max_size = conn._max_datagram_size
    initial, handshake, app = conn._spaces
    streams = conn._streams
    while len(out) < MAX_DATAGRAMS_PER_CALL:
        budget = max_size
        if not path.validated:
            amplification = path.amplification_budget()
            if amplification is not None and amplification < budget:
                if amplification < _MIN_PACKET_ROOM:
                    recovery.set_amplification_limited(True, now)
                    congestion.set_app_limited(False, now)  # not the application's limit
                    return
                budget = amplification
        probes = bool(initial.probes or handshake.probes or app.probes)
        app_ack = app.ack_now or (app.ack_deadline is not None and app.ack_deadline <= now)
        if initial.discarded and handshake.discarded and not probes and not (
                streams._send_queue or conn._datagrams or _has_app_control(conn, path)):
            # after the handshake with nothing but perhaps an ACK to send: no need to ask
            # congestion control or the pacer (the common case of a receiver)
            window_limited = False
            if not app_ack:
                break
            can_elicit = False
        else:
            can_elicit = probes or congestion.can_send(max_size)
            window_limited = not can_elicit
            if can_elicit and not probes and pacer is not None:
                next_time = pacer.next_send_time(now)
                if next_time > now:
                    # wake up for a small burst, not for every single packet
                    burst = PACING_BURST * max_size / pacer.rate
                    conn._pacing_at = next_time if next_time - now > burst else now + burst
                    can_elicit = False
                    window_limited = True
            if not can_elicit and not (initial.ack_now or handshake.ack_now or app_ack):
                break
        datagram = _build_datagram(conn, now, budget, path, can_elicit)
        if datagram is None:
            break
        path.bytes_sent += len(datagram)
        out.append((datagram, path.address))
        conn._after_datagram_sent(now)
    else:
        window_limited = True  # more to send: the caller comes back
    _stopped(congestion, window_limited, now)


def amplification_limited(path: Path) -> bool:
    budget = path.amplification_budget()
    return budget is not None and budget < _MIN_PACKET_ROOM


def build_close_datagram(conn: Connection, frames: dict[Epoch, bytes], budget: int,
                         now: float) -> bytes | None:
    """One datagram carrying CONNECTION_CLOSE in every space that has keys."""
    packets: list[_Packet] = []
    room = budget
    has_initial = False
    for index, space in enumerate(conn._spaces):
        if index == 2:
            sealer, epoch = _app_sealer(conn)
            if epoch == _ZERO_RTT:
                continue  # a client sends CONNECTION_CLOSE in 0-RTT? No: Initial suffices
        else:
            sealer, epoch = space.sealer, space.epoch
        if sealer is None or space.discarded:
            continue
        frame = frames.get(epoch)
        if frame is None:
            continue
        packet = _start_packet(conn, space, epoch, sealer, room)
        if packet is None or len(frame) > room - packet.header_size - TAG_LENGTH:
            continue
        packet.payload += frame
        space.next_pn += 1
        packets.append(packet)
        room -= packet.size
        has_initial = has_initial or epoch == _INITIAL
    if not packets:
        return None
    total = budget - room
    if has_initial and conn._is_client and total < MIN_INITIAL_SIZE <= budget:
        packets[-1].payload += bytes(MIN_INITIAL_SIZE - total)
    parts = []
    for packet in packets:
        payload = packet.payload
        minimum = 4 - packet.pn_length
        if len(payload) < minimum:
            payload += bytes(minimum - len(payload))
        dcid = conn._peer_cids.current
        if packet.epoch == _ONE_RTT:
            header = encode_short_header(dcid, packet.truncated_pn, packet.pn_length,
                                         packet.sealer.key_phase)
        else:
            header = encode_long_header(
                _LONG_TYPES[packet.epoch], conn._version, dcid, conn._local_cids.initial,
                conn._token if packet.epoch == _INITIAL else b"",
                packet.pn_length + len(payload) + TAG_LENGTH, packet.truncated_pn,
                packet.pn_length, length_size=2,
            )
        parts.append(packet.sealer.seal(header, memoryview(payload), packet.pn))
    return b"".join(parts)
