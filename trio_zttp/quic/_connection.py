"""The sans-IO QUIC connection (RFC 9000, 9001, 9002, 9221, 9368, 9369): orchestration.

:class:`Connection` turns datagrams and ``now`` into events and datagrams.  It owns the
receive loop and the frame table below; everything else is delegated:

* packet-number spaces, ACK scheduling and CRYPTO streams: :mod:`._spaces`;
* streams and flow control: :mod:`._stream_manager` (on :mod:`._streams`, :mod:`._flow`);
* packet assembly, coalescing and padding: :mod:`._sender`;
* the TLS handshake, transport parameters, keys and version negotiation: :mod:`._handshake`;
* paths, migration and anti-amplification: :mod:`._paths`;
* loss detection, congestion control and pacing: :mod:`._recovery`, :mod:`._congestion`;
* timers, ACK processing, key updates, idling and closing: :mod:`._lifecycle`;
* the application's commands, connection IDs, migration, statistics and qlog: :mod:`._control`.

The three mixins share the state declared in :mod:`._conn_base`.

Nothing a peer sends raises out of :meth:`Connection.receive_datagram`: a protocol violation
closes the connection with the RFC's error code (and a :class:`ConnectionTerminated` event);
packets that cannot be parsed or decrypted are dropped, as RFC 9000 §12.2 and RFC 9001 §5.5
say.  Misuse of the API by the caller raises :class:`QuicError` at once.

The frame table, :data:`FRAME_HANDLERS`, maps each frame type to its handler; the epochs in
which each frame may appear come from the frame tables of :mod:`._frames` (RFC 9000 §12.4
Table 3 and §12.5), and both are flattened into one 64-entry list for the receive loop.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any, Final, final

from .._buffer import decode_varint
from .._tls.suites import Epoch
from ._cids import parse_new_connection_id
from ._config import Configuration
from ._conn_base import State
from ._control import ControlMixin
from ._crypto import DecryptionError, PacketOpener
from ._ecn import ECT_0, EcnState
from ._errors import (
    FrameEncodingError,
    InternalError,
    ProtocolViolation,
    QuicError,
    TransportError,
)
from ._events import (
    DatagramFrameReceived,
    Event,
)
from ._frame_codec import (
    decode_frame_body,
    parse_crypto,
    parse_datagram,
    parse_stream,
    read_frame_type,
    skip_padding,
)
from ._frames import (
    ACK_ELICITING_FRAME_TYPES,
    ALLOWED_EPOCHS,
    PROBING_FRAME_TYPES,
    ConnectionCloseFrame,
    MaxStreamsFrame,
    NewConnectionIdFrame,
    NewTokenFrame,
    PathChallengeFrame,
    PathResponseFrame,
    ResetStreamFrame,
    RetireConnectionIdFrame,
    StopSendingFrame,
    check_frame_allowed,
)
from ._handshake import HandshakeMixin
from ._lifecycle import KEY_UPDATE_AFTER, LifecycleMixin
from ._packet import (
    Header,
    PacketType,
    decode_packet_number,
    iter_coalesced,
)
from ._paths import Path
from ._sender import build_datagrams
from ._spaces import PacketSpace

__all__ = ["FRAME_HANDLERS", "Connection"]

_EPOCH_OF: Final = {
    PacketType.INITIAL: Epoch.INITIAL,
    PacketType.HANDSHAKE: Epoch.HANDSHAKE,
    PacketType.ZERO_RTT: Epoch.ZERO_RTT,
    PacketType.ONE_RTT: Epoch.ONE_RTT,
}
# packet-number space index of each epoch: Initial 0, Handshake 1, application 2
SPACE_INDEX: Final = {Epoch.INITIAL: 0, Epoch.HANDSHAKE: 1, Epoch.ZERO_RTT: 2, Epoch.ONE_RTT: 2}
_INITIAL: Final = Epoch.INITIAL
_ONE_RTT: Final = Epoch.ONE_RTT
_ZERO_RTT: Final = Epoch.ZERO_RTT
_FIRSTFLIGHT: Final = State.FIRSTFLIGHT
_CONNECTED: Final = State.CONNECTED
_CLOSING: Final = State.CLOSING
_DRAINING: Final = State.DRAINING
_TERMINATED: Final = State.TERMINATED
_ECN_TESTING: Final = EcnState.TESTING
_ECN_CAPABLE: Final = EcnState.CAPABLE
_ECN_FAILED: Final = EcnState.FAILED
_ECN_DISABLED: Final = EcnState.DISABLED

Handler = Callable[["Connection", memoryview, int, int, float], int]


@final
class Connection(HandshakeMixin, LifecycleMixin, ControlMixin):
    """One QUIC connection, client or server, driven by the caller (sans-IO).

    Args:
        configuration: the endpoint's configuration (shared by connections, never modified).
        original_destination_connection_id: server only: the Destination Connection ID of
            the client's first Initial when a Retry came before (the endpoint knows it from
            the token); None takes it from the first Initial received.
        retry_source_connection_id: server only: the Source Connection ID of the Retry the
            endpoint sent (the client's address is then validated).

    The pull API: :meth:`connect` (client), :meth:`receive_datagram`,
    :meth:`datagrams_to_send`, :meth:`get_timer` / :meth:`handle_timer`, :meth:`next_event`;
    commands such as :meth:`send_stream_data` queue work for the next
    :meth:`datagrams_to_send`.
    """

    def __init__(
        self,
        configuration: Configuration,
        *,
        original_destination_connection_id: bytes | None = None,
        retry_source_connection_id: bytes | None = None,
    ) -> None:
        self._config = configuration
        self._is_client = configuration.is_client
        self._events: deque[Event] = deque()
        self._now = 0.0
        self._state = State.FIRSTFLIGHT
        self._init_lifecycle(configuration)
        self._init_handshake(configuration, original_destination_connection_id,
                             retry_source_connection_id)

    # -- the pull API --------------------------------------------------------------------------
    def connect(self, addr: Any, now: float) -> None:
        """Client: start the handshake towards ``addr``."""
        if not self._is_client:
            raise QuicError("only a client connects")
        if self._tls is not None:
            raise QuicError("connect() was already called")
        self._now = now
        self._paths.get_or_create(tuple(addr), validated=True)
        self._start_client(now)

    def receive_datagram(self, data: bytes | bytearray | memoryview, addr: Any,
                         now: float, *, ecn: int = 0) -> None:
        """Handle one UDP datagram from ``addr``. Never raises for anything the peer sent.

        Args:
            data: the UDP payload.
            addr: where it came from.
            now: the driver's clock.
            ecn: the datagram's ECN codepoint, the two ECN bits of its IP header when the I/O
                layer can read them (RFC 3168: 0 Not-ECT, 1 ECT(1), 2 ECT(0), 3 CE). Every
                packet of the datagram that decrypts counts it (RFC 9000 §13.4.1).

        Raises:
            ValueError: ``ecn`` is not 0, 1, 2 or 3.
        """
        if ecn:
            if ecn.__class__ is not int or ecn > 3 or ecn < 0:
                raise ValueError(f"ecn must be an ECN codepoint 0..3, not {ecn!r}")
        elif ecn.__class__ is not int:
            raise ValueError(f"ecn must be an ECN codepoint 0..3, not {ecn!r}")
        self._rx_ecn = ecn
        self._now = now
        state = self._state
        if state is _TERMINATED or state is _DRAINING:
            return
        try:
            if type(data) is not bytes:
                data = bytes(data)
            if type(addr) is not tuple:
                addr = tuple(addr)
            path = self._paths.current
            if path is not None and path.address == addr and state is _CONNECTED and data \
                    and not data[0] & 0x80:
                # one short-header packet from the current path fills the datagram: the
                # common case, _receive_datagram without the generality
                path.bytes_received += len(data)
                self._stats_datagrams_received += 1
                processed = self._receive_short(data, path, now)
                if self._state is not _CONNECTED:
                    return
                if not processed and self._peer_cids.is_stateless_reset(data):
                    self._on_stateless_reset(now)
                    return
                if not path.validated or not self._handshake_confirmed:
                    self._after_datagram_received(path, now)
                return
            self._receive_datagram(data, addr, now)
        except TransportError as exc:
            self._close_on_error(exc, now)
        except Exception as exc:  # a bug here must not take the endpoint down
            self._internal_errors.append(exc)
            self._close_on_error(InternalError(f"internal error: {exc!r}"), now)

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Any]]:
        """Datagrams to send now, each with its destination address.

        Send all of them with the IP ECN codepoint :attr:`ecn_codepoint` says (read it after
        this call); an I/O layer that cannot set it sends them unmarked, which ECN validation
        notices without harm.
        """
        ecn = self._ecn
        state = ecn.state
        if state is _ECN_CAPABLE and self._handshake_confirmed:
            # the common case: every packet marked, and only the application space sends
            self._ecn_mark = True
            ecn.codepoint = ECT_0
            app = self._spaces[2]
            before = app.next_pn
            out = self._datagrams_to_send(now)
            ecn.sent[2] += app.next_pn - before
            return out
        if state is _ECN_FAILED or state is _ECN_DISABLED:
            self._ecn_mark = False
            return self._datagrams_to_send(now)
        if not ecn.start_batch(
                now, self._recovery.pto_duration() if state is _ECN_TESTING else 0.0):
            self._ecn_mark = False
            return self._datagrams_to_send(now)
        self._ecn_mark = True
        initial, handshake, app = self._spaces
        pns = initial.next_pn, handshake.next_pn, app.next_pn
        out = self._datagrams_to_send(now)
        ecn.on_batch_sent(initial.next_pn - pns[0], handshake.next_pn - pns[1],
                          app.next_pn - pns[2])
        return out

    @property
    def ecn_codepoint(self) -> int:
        """The IP ECN codepoint for the datagrams the last :meth:`datagrams_to_send` returned.

        2 (ECT(0)) while ECN is being tested or was validated, 0 (Not-ECT) otherwise: after
        validation failed, while validation waits for the peer, or with
        ``Configuration(ecn=False)``. See :mod:`trio_zttp.quic._ecn`.
        """
        return self._ecn.codepoint

    def _datagrams_to_send(self, now: float) -> list[tuple[bytes, Any]]:
        self._now = now
        try:
            state = self._state
            if state is not _CONNECTED and state is not _FIRSTFLIGHT:
                return self._close_datagrams(now) if state is _CLOSING else []
            if self._tls is None:
                out, self._pending_stateless = self._pending_stateless, []
                return out  # a Retry or Version Negotiation before any state (server)
            if self._handshake_confirmed and (
                    self._key_update_requested
                    or (self._spaces[2].sealer is not None
                        and self._spaces[2].sealer.packets_sealed >= KEY_UPDATE_AFTER)):
                self._before_sending(now)  # a key update is due
            paths = self._paths
            if paths.responses or paths.deadline is not None:
                out = self._probe_datagrams(now)
                out += build_datagrams(self, now)
                return out
            return build_datagrams(self, now)
        except Exception as exc:  # a bug here must not take the endpoint down
            self._internal_errors.append(exc)
            self._close_on_error(InternalError(f"internal error: {exc!r}"), now)
            return self._close_datagrams(now)

    def next_event(self) -> Event | None:
        """The next event, or None."""
        events = self._events
        return events.popleft() if events else None

    # -- receiving -----------------------------------------------------------------------------
    def _receive_datagram(self, data: bytes, addr: Any, now: float) -> None:
        path = self._paths.current
        if path is None or path.address != addr:
            # not from the current path (a server's first datagram has no path yet)
            if not self._is_client and self._tls is None:
                if not self._accept_first_datagram(data, addr, now):
                    return
            elif self._is_client and path is not None:
                # a client drops packets from unknown server addresses (RFC 9000 §9); the
                # preferred address it probes is known
                if self._paths.get(addr) is None:
                    return
            path = self._paths.current
            if path is None or path.address != addr:
                path = self._paths.get_or_create(addr)
        path.bytes_received += len(data)
        self._stats_datagrams_received += 1
        if self._state is _CLOSING:
            self._on_datagram_while_closing()
            return
        if not data:
            return
        if not data[0] & 0x80:
            # one short-header packet fills the datagram: the common case, no splitting
            processed = self._receive_short(data, path, now)
            state = self._state
            if state is not _CONNECTED and state is not _FIRSTFLIGHT:
                return
        else:
            processed = False
            for header in iter_coalesced(data, self._local_cid_length):
                if self._receive_packet(data, header, path, now):
                    processed = True
                if self._state is not _FIRSTFLIGHT and self._state is not _CONNECTED:
                    return
        if not processed and self._peer_cids.is_stateless_reset(data):
            self._on_stateless_reset(now)
            return
        if not path.validated or not self._handshake_confirmed:
            self._after_datagram_received(path, now)

    def _receive_packet(self, data: bytes, header: Header, path: Path, now: float) -> bool:
        """Process one packet; True when it decrypted (whatever it contained)."""
        packet_type = header.packet_type
        if packet_type is None:
            return False
        if packet_type is PacketType.VERSION_NEGOTIATION:
            self._on_version_negotiation(header, now)
            return False
        if packet_type is PacketType.RETRY:
            self._on_retry(data, header, now)
            return False
        if header.version is not None and header.version != self._version:
            if not self._accept_other_version(header):
                return False
        if not header.fixed_bit:
            return False
        if self._is_client and self._received_server_packet and header.is_long \
                and header.scid != self._peer_initial_scid:
            return False  # RFC 9000 §7.2: not from the server we talk to
        epoch = _EPOCH_OF[packet_type]
        space = self._spaces[SPACE_INDEX[epoch]]
        if space.discarded:
            return False
        opener = self._opener_for(epoch, header)
        if opener is None:
            if epoch is _ZERO_RTT and not self._is_client:
                self._zero_rtt_dropped += 1  # early data refused, or its keys discarded
            return False
        packet: bytes | memoryview = data
        if header.start or header.end != len(data):
            packet = memoryview(data)[header.start:header.end]
        pn_offset = header.pn_offset - header.start
        try:
            first, truncated, pn_length, plain_header = opener.remove_header_protection(
                packet, pn_offset)
            pn = decode_packet_number(truncated, 8 * pn_length, space.largest_received + 1)
            if epoch is _ONE_RTT and (first >> 2) & 1 != opener.key_phase:
                opener = self._opener_for_key_phase(pn)
            payload = opener.decrypt(packet, plain_header, pn)
        except DecryptionError:
            self._on_decryption_failure()
            return False
        if epoch is _ONE_RTT:
            if opener is not space.opener:
                self._on_key_phase_opener(opener, pn, now)
            if self._zero_rtt_opener is not None:
                self._on_one_rtt_with_zero_rtt_keys(now)
        if first & (0x0C if header.is_long else 0x18):
            raise ProtocolViolation("reserved header bits are not zero")
        if not self._handshake_confirmed:
            if space.is_duplicate(pn):
                return True
            self._on_first_packet(epoch, header, path, now)
        return self._accept(space, epoch, pn, payload, header.dcid, path, now, len(packet))

    def _receive_short(self, data: bytes, path: Path, now: float) -> bool:
        """A datagram holding one 1-RTT packet: ``_receive_packet`` without the generality."""
        pn_offset = 1 + self._local_cid_length
        space = self._spaces[2]
        opener = space.opener
        if not data[0] & 0x40 or opener is None or len(data) < pn_offset + 20:
            return False  # no QUIC bit, no 1-RTT keys yet, or too short to sample
        try:
            first, pn, plain_header, opened = opener.open_short(
                data, pn_offset, space.largest_received + 1)
            if opened is None:  # the Key Phase bit is not the current opener's
                opener = self._opener_for_key_phase(pn)
                payload = opener.decrypt(data, plain_header, pn)
                if opener is not space.opener:
                    self._on_key_phase_opener(opener, pn, now)
            else:
                payload = opened
        except DecryptionError:
            self._on_decryption_failure()
            return False
        if self._zero_rtt_opener is not None:
            self._on_one_rtt_with_zero_rtt_keys(now)
        if first & 0x18:
            raise ProtocolViolation("reserved header bits are not zero")
        if not self._handshake_confirmed and self._is_client and \
                not self._received_server_packet:
            return False  # a 1-RTT packet cannot come first
        return self._accept(space, _ONE_RTT, pn, payload, data[1:pn_offset], path, now,
                            len(data))

    def _accept(self, space: PacketSpace, epoch: Epoch, pn: int, payload: bytes, dcid: bytes,
                path: Path, now: float, size: int) -> bool:
        """A packet decrypted: process its frames and do the bookkeeping (RFC 9000 §12-13)."""
        if pn <= space.largest_received and (pn < space.ack_floor or pn in space.received):
            return True  # a duplicate
        self._stats_packets_received += 1
        ecn = self._rx_ecn
        if ecn:
            counts = space.ecn_received
            if counts is None:
                counts = space.ecn_received = [0, 0, 0, 0]
            counts[ecn] += 1
        self._rx_epoch = epoch
        self._rx_path = path
        self._rx_dcid = dcid
        # run every frame: (ack_eliciting, non_probing) from the table's flags
        end = len(payload)
        if not end:
            raise ProtocolViolation("packet without frames")
        view = memoryview(payload)
        pos = 0
        table = _TABLE
        seen = 0  # the frames' flags, or-ed
        bit = 1 << epoch
        while pos < end:
            frame_type = view[pos]
            if frame_type >= 0x40:
                read_frame_type(view, pos)  # raises: unknown type or not shortest encoding
            handler, mask, flags = table[frame_type]
            if not mask & bit:
                # raises: not allowed in this packet type, or unknown (whose mask is 0)
                check_frame_allowed(frame_type, epoch)
            pos = handler(self, view, pos + 1, frame_type, now)
            seen |= flags
        ack_eliciting = (seen & 1) == 1
        if self._qlog is not None:
            self._qlog_packet(now, "transport:packet_received", epoch, pn, size)
        state = self._state
        if state is not _CONNECTED and state is not _FIRSTFLIGHT:
            return True
        # space.on_packet_received, inline: record the packet, schedule the ACK (RFC 9000
        # §13.2.1)
        largest = space.largest_received
        if pn > largest:
            # the newest packet (the usual case)
            bounds = space.received._bounds
            if bounds and pn == bounds[-1]:
                bounds[-1] = pn + 1  # RangeSet.add's fast path: the next packet number
            elif not bounds:
                bounds += (pn, pn + 1)  # everything before was acknowledged and forgotten
            else:
                space.received.add(pn)
            space.largest_received = pn
            space.largest_received_time = now
            if ack_eliciting:
                space.ack_eliciting_unacked += 1
                if space.epoch is not _ONE_RTT or space.ack_eliciting_unacked >= 2 \
                        or (largest >= 0 and pn > largest + 1):
                    space.ack_now = True
                elif space.ack_deadline is None:
                    space.ack_deadline = now + self._local_max_ack_delay
        else:
            space.on_packet_received(pn, ack_eliciting, now, self._local_max_ack_delay)
        # idle timer restarts (RFC 9000 §10.1)
        timeout = self._idle_timeout
        if timeout > 0:
            floor = self._idle_floor
            self._idle_deadline = now + (timeout if timeout > floor else floor)
        self._idle_restart_on_send = True
        self._last_activity = now
        if path is not self._paths.current and epoch is _ONE_RTT and seen & 2 and \
                pn == space.largest_received:
            self._on_peer_migrated(path, now)
        return True

    def _opener_for(self, epoch: Epoch, header: Header) -> PacketOpener | None:
        if epoch is _ZERO_RTT:
            return None if self._is_client else self._zero_rtt_opener
        if epoch is _INITIAL and header.version != self._version:
            return self._other_initial_openers.get(header.version or 0)
        return self._spaces[SPACE_INDEX[epoch]].opener

    # -- frame handlers ------------------------------------------------------------------------
    def _on_padding(self, view: memoryview, pos: int, frame_type: int, now: float) -> int:
        return skip_padding(view, pos)

    def _on_ping(self, view: memoryview, pos: int, frame_type: int, now: float) -> int:
        return pos

    def _on_crypto(self, view: memoryview, pos: int, frame_type: int, now: float) -> int:
        offset, data, pos = parse_crypto(view, pos)
        epoch = self._rx_epoch
        space = self._spaces[SPACE_INDEX[epoch]]
        if space.discarded:
            return pos  # the keys went while this packet was read (the handshake completed)
        contiguous = space.crypto_receive.add(offset, data)
        if contiguous:
            self._receive_crypto(epoch, contiguous, now)
        return pos

    def _on_stream(self, view: memoryview, pos: int, frame_type: int, now: float) -> int:
        stream_id, offset, data, fin, pos = parse_stream(view, pos, frame_type)
        self._streams.on_stream_frame(stream_id, offset, data, fin, frame_type)
        return pos

    def _on_reset_stream(self, view: memoryview, pos: int, frame_type: int, now: float) -> int:
        frame, pos = decode_frame_body(view, pos, frame_type)
        assert isinstance(frame, ResetStreamFrame)
        self._streams.on_reset_stream(frame.stream_id, frame.error_code, frame.final_size)
        return pos

    def _on_stop_sending(self, view: memoryview, pos: int, frame_type: int, now: float) -> int:
        frame, pos = decode_frame_body(view, pos, frame_type)
        assert isinstance(frame, StopSendingFrame)
        self._streams.on_stop_sending(frame.stream_id, frame.error_code)
        return pos

    def _varint(self, view: memoryview, pos: int, frame_type: int) -> tuple[int, int]:
        try:
            return decode_varint(view, pos)
        except Exception:
            raise FrameEncodingError("truncated frame", frame_type=frame_type) from None

    def _on_max_data(self, view: memoryview, pos: int, frame_type: int, now: float) -> int:
        value, pos = self._varint(view, pos, frame_type)
        self._streams.on_max_data(value)
        return pos

    def _on_max_stream_data(self, view: memoryview, pos: int, frame_type: int,
                            now: float) -> int:
        stream_id, pos = self._varint(view, pos, frame_type)
        value, pos = self._varint(view, pos, frame_type)
        self._streams.on_max_stream_data(stream_id, value)
        return pos

    def _on_max_streams(self, view: memoryview, pos: int, frame_type: int, now: float) -> int:
        frame, pos = decode_frame_body(view, pos, frame_type)
        assert isinstance(frame, MaxStreamsFrame)
        self._streams.on_max_streams(frame.bidirectional, frame.maximum_streams)
        return pos

    def _on_data_blocked(self, view: memoryview, pos: int, frame_type: int, now: float) -> int:
        return self._varint(view, pos, frame_type)[1]

    def _on_stream_data_blocked(self, view: memoryview, pos: int, frame_type: int,
                                now: float) -> int:
        stream_id, pos = self._varint(view, pos, frame_type)
        _, pos = self._varint(view, pos, frame_type)
        self._streams.on_stream_data_blocked(stream_id)
        return pos

    def _on_streams_blocked(self, view: memoryview, pos: int, frame_type: int,
                            now: float) -> int:
        return decode_frame_body(view, pos, frame_type)[1]  # validates the 2**60 bound

    def _on_new_token(self, view: memoryview, pos: int, frame_type: int, now: float) -> int:
        frame, pos = decode_frame_body(view, pos, frame_type)
        assert isinstance(frame, NewTokenFrame)
        if not self._is_client:
            raise ProtocolViolation("a client sent NEW_TOKEN", frame_type=frame_type)
        self._on_new_token_frame(frame.token)
        return pos

    def _on_new_connection_id(self, view: memoryview, pos: int, frame_type: int,
                              now: float) -> int:
        fields = parse_new_connection_id(view, pos)
        if fields is None:
            frame, pos = decode_frame_body(view, pos, frame_type)  # raises the coded errors
            assert isinstance(frame, NewConnectionIdFrame)
            fields = (frame.sequence_number, frame.retire_prior_to, frame.connection_id,
                      frame.stateless_reset_token, pos)
        sequence, retire_prior_to, cid, token, pos = fields
        self._on_new_connection_id_frame(sequence, cid, token, retire_prior_to)
        return pos

    def _on_retire_connection_id(self, view: memoryview, pos: int, frame_type: int,
                                 now: float) -> int:
        frame, pos = decode_frame_body(view, pos, frame_type)
        assert isinstance(frame, RetireConnectionIdFrame)
        self._on_retire_connection_id_frame(frame.sequence_number)
        return pos

    def _on_path_challenge(self, view: memoryview, pos: int, frame_type: int,
                           now: float) -> int:
        frame, pos = decode_frame_body(view, pos, frame_type)
        assert isinstance(frame, PathChallengeFrame)
        self._paths.on_challenge(self._rx_path, frame.data)
        return pos

    def _on_path_response(self, view: memoryview, pos: int, frame_type: int,
                          now: float) -> int:
        frame, pos = decode_frame_body(view, pos, frame_type)
        assert isinstance(frame, PathResponseFrame)
        self._on_path_response_frame(frame.data, now)
        return pos

    def _on_connection_close(self, view: memoryview, pos: int, frame_type: int,
                             now: float) -> int:
        frame, pos = decode_frame_body(view, pos, frame_type)
        assert isinstance(frame, ConnectionCloseFrame)
        self._on_peer_close(frame, now)
        return pos

    def _on_handshake_done(self, view: memoryview, pos: int, frame_type: int,
                           now: float) -> int:
        if not self._is_client:
            raise ProtocolViolation("a client sent HANDSHAKE_DONE", frame_type=frame_type)
        self._on_handshake_confirmed(now)
        return pos

    def _on_datagram(self, view: memoryview, pos: int, frame_type: int, now: float) -> int:
        start = pos - 1
        byte = view[pos] if frame_type & 0x01 and pos + 1 < len(view) else 0xFF
        if byte < 0x40:
            # parse_datagram for a Length of one or two bytes, inline
            end = pos + 1 + byte
            if end > len(view):
                raise FrameEncodingError("DATAGRAM data past the end", frame_type=frame_type)
            data, pos = view[pos + 1:end], end
        elif byte < 0x80:
            end = pos + 2 + ((byte & 0x3F) << 8 | view[pos + 1])
            if end > len(view):
                raise FrameEncodingError("DATAGRAM data past the end", frame_type=frame_type)
            data, pos = view[pos + 2:end], end
        else:
            data, pos = parse_datagram(view, pos, frame_type)
        limit = self._config.max_datagram_frame_size
        if not limit:
            raise ProtocolViolation("DATAGRAM frames were not negotiated", frame_type=frame_type)
        if pos - start > limit:
            raise ProtocolViolation("DATAGRAM frame above max_datagram_frame_size",
                                    frame_type=frame_type)
        self._events.append(DatagramFrameReceived(data=bytes(data)))
        return pos

    # -- errors --------------------------------------------------------------------------------
    def _close_on_error(self, exc: TransportError, now: float) -> None:
        if self._state is not _FIRSTFLIGHT and self._state is not _CONNECTED:
            return
        code = int(exc.error_code)
        self._start_close(code, exc.frame_type, exc.reason, application=False)


_HANDLERS: Final[dict[int, Handler]] = {
    0x00: Connection._on_padding,
    0x01: Connection._on_ping,
    0x02: Connection._on_ack,
    0x03: Connection._on_ack,
    0x04: Connection._on_reset_stream,
    0x05: Connection._on_stop_sending,
    0x06: Connection._on_crypto,
    0x07: Connection._on_new_token,
    **{t: Connection._on_stream for t in range(0x08, 0x10)},
    0x10: Connection._on_max_data,
    0x11: Connection._on_max_stream_data,
    0x12: Connection._on_max_streams,
    0x13: Connection._on_max_streams,
    0x14: Connection._on_data_blocked,
    0x15: Connection._on_stream_data_blocked,
    0x16: Connection._on_streams_blocked,
    0x17: Connection._on_streams_blocked,
    0x18: Connection._on_new_connection_id,
    0x19: Connection._on_retire_connection_id,
    0x1A: Connection._on_path_challenge,
    0x1B: Connection._on_path_response,
    0x1C: Connection._on_connection_close,
    0x1D: Connection._on_connection_close,
    0x1E: Connection._on_handshake_done,
    0x30: Connection._on_datagram,
    0x31: Connection._on_datagram,
}

FRAME_HANDLERS: Final[dict[int, tuple[Handler, frozenset[Epoch]]]] = {
    int(frame_type): (_HANDLERS[frame_type], epochs)
    for frame_type, epochs in ALLOWED_EPOCHS.items()
}
"""Frame type -> (handler, the epochs it may arrive in): the receive loop's table."""


def _on_unknown(conn: Connection, view: memoryview, pos: int, frame_type: int,
                now: float) -> int:
    # never called: an unknown type's epoch mask is 0, so check_frame_allowed raises first
    raise FrameEncodingError(f"unknown frame type 0x{frame_type:x}", frame_type=frame_type)


# flattened for the receive loop: (handler, epoch bit mask, flags: 1 ack-eliciting,
# 2 non-probing) for every one-byte frame type
_TABLE: Final[tuple[tuple[Handler, int, int], ...]] = tuple(
    (
        FRAME_HANDLERS[t][0], sum(1 << e for e in FRAME_HANDLERS[t][1]),
        (1 if t in ACK_ELICITING_FRAME_TYPES else 0) | (0 if t in PROBING_FRAME_TYPES else 2),
    )
    if t in FRAME_HANDLERS else (_on_unknown, 0, 0)
    for t in range(0x40)
)
