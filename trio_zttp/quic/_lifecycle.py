"""The connection's life: timers, acknowledgements, loss, key updates, idling and closing.

:class:`LifecycleMixin` is the part of :class:`~._connection.Connection` that runs on time
and on acknowledgements:

* the one timer the caller sees (:meth:`get_timer`) is the earliest of the idle timeout, the
  loss-detection timer (RFC 9002 §6), the delayed-ACK timer (max_ack_delay, RFC 9000 §13.2.1),
  the pacer, the keep-alive PING, path-validation deadlines, the end of the previous 1-RTT
  keys and the closing/draining period (RFC 9000 §10.2);
* ACK frames settle sent packets through :class:`~._recovery.LossRecovery`, whose answer is
  dispatched frame record by frame record (acknowledged or lost);
* key updates in both directions (RFC 9001 §6);
* closing (CONNECTION_CLOSE in every space the peer may read, repeated on demand while
  closing), draining, idle timeout and stateless reset (RFC 9000 §10).
"""

from __future__ import annotations

from collections import deque
from typing import Any, Final

from .._buffer import encode_varint
from .._tls.suites import Epoch
from ._ack import on_app_ack_frame
from ._congestion import make_congestion_controller
from ._conn_base import ConnectionBase, State
from ._crypto import PacketOpener
from ._ecn import EcnValidator
from ._errors import QuicError, TransportError, TransportErrorCode
from ._events import ConnectionTerminated, PingAcknowledged
from ._frame_codec import parse_ack
from ._frames import ConnectionCloseFrame
from ._paths import PathManager
from ._recovery import K_GRANULARITY, LossRecovery
from ._sender import (
    F_ACK,
    F_CRYPTO,
    F_HANDSHAKE_DONE,
    F_NEW_CONNECTION_ID,
    F_NEW_TOKEN,
    F_PING,
    F_RETIRE_CONNECTION_ID,
    build_close_datagram,
)
from ._spaces import PacketSpace
from ._stream_manager import F_STREAM, StreamManager

__all__ = ["KEY_UPDATE_AFTER", "LifecycleMixin", "State"]

_INITIAL: Final = Epoch.INITIAL
_FIRSTFLIGHT: Final = State.FIRSTFLIGHT
_CONNECTED: Final = State.CONNECTED
_TERMINATED: Final = State.TERMINATED
_HANDSHAKE: Final = Epoch.HANDSHAKE
_ONE_RTT: Final = Epoch.ONE_RTT
_ZERO_RTT: Final = Epoch.ZERO_RTT
_SPACE: Final = {Epoch.INITIAL: 0, Epoch.HANDSHAKE: 1, Epoch.ZERO_RTT: 2, Epoch.ONE_RTT: 2}
#: Packets sealed with one key before we update it ourselves (below every suite's limit).
KEY_UPDATE_AFTER: Final = 1 << 22
#: CONNECTION_CLOSE repeats while closing are allowed after this many received datagrams
#: (1, 2, 4, 8 ...): a closing endpoint answers, but never floods.
_CLOSE_REPEAT_LIMIT: Final = 16


class LifecycleMixin(ConnectionBase):
    """Timers, ACK processing, key updates, idle timeout and closing for a Connection."""

    def _init_lifecycle(self, config: Any) -> None:
        self._max_datagram_size = config.max_datagram_size
        self._spaces = (PacketSpace(_INITIAL), PacketSpace(_HANDSHAKE), PacketSpace(_ONE_RTT))
        self._ecn = EcnValidator(config.ecn)
        self._ecn_mark = False
        self._rx_ecn = 0
        self._recovery = LossRecovery(
            is_client=config.is_client,
            congestion_controller=make_congestion_controller(
                config.congestion_control, config.max_datagram_size),
            max_datagram_size=config.max_datagram_size,
            initial_rtt=config.initial_rtt,
            ecn=self._ecn,
        )
        self._paths = PathManager(config.random_bytes)
        self._streams = StreamManager(
            is_client=config.is_client, events=self._events,
            max_data=config.max_data, max_data_limit=max(config.max_data, config.max_data_limit),
            max_stream_data=config.max_stream_data,
            max_stream_data_limit=max(config.max_stream_data, config.max_stream_data_limit),
            max_streams_bidi=config.max_streams_bidi, max_streams_uni=config.max_streams_uni,
            consume_on_delivery=config.consume_on_delivery,
        )
        self._local_max_ack_delay = config.max_ack_delay
        self._ack_delay_exponent = config.ack_delay_exponent
        self._peer_ack_delay_exponent = 3
        self._idle_timeout = config.idle_timeout
        self._idle_floor = 3 * self._recovery.pto_duration()
        self._idle_deadline = None
        self._idle_restart_on_send = False
        self._last_activity = 0.0
        self._keep_alive_interval = config.keep_alive_interval
        self._pacing_at = None
        self._close_deadline = None
        self._close_frames = {}
        self._close_pending = False
        self._close_count = 0
        self._close_received = 0
        self._datagrams = deque()
        self._datagrams_dropped = 0
        self._handshake_done_pending = False
        self._ping_pending = False
        self._ping_uids = []
        self._ack_only_sent = 0
        self._new_cids = []
        self._new_token_pending = None
        self._internal_errors = []
        self._previous_opener = None
        self._previous_opener_deadline = None
        self._zero_rtt_opener_deadline = None
        self._zero_rtt_dropped = 0
        self._next_opener = None
        self._key_phase_first_received = 0
        self._key_phase_first_sent = 0
        self._key_update_requested = False
        self._key_updates = 0
        self._decryption_failures = 0
        self._previous_path = None
        self._preferred_probe = None
        self._preferred_param = None
        self._moved_to_preferred = False
        self._vn_received = False
        self._path_dcid = None  # (server) our CID the client used on the current path
        self._probe_sequence = None
        self._stats_packets_received = 0
        self._stats_packets_sent = 0
        self._stats_packets_lost = 0
        self._stats_bytes_sent = 0
        self._stats_datagrams_received = 0
        self._qlog = None
        self._discard_initial_after_send = False

    # -- timers --------------------------------------------------------------------------------
    def get_timer(self) -> float | None:
        """When :meth:`handle_timer` should run next (the driver's clock), or None."""
        state = self._state
        if state is not _CONNECTED and state is not _FIRSTFLIGHT:
            if state is _TERMINATED:
                return None
            deadline = self._close_deadline
            # closed but nothing sent yet: ask to be driven now (handle_timer starts the period)
            return self._now if deadline is None else deadline
        # the earliest of these (called once per batch of datagrams, so kept flat)
        timer = self._idle_deadline
        # recovery.get_loss_detection_timer(), inline (private: its deferred computation)
        recovery = self._recovery
        changed = recovery._timer_now
        if changed is not None:
            recovery._timer_now = None
            recovery._compute_timer(changed)
        candidate = recovery._timer
        if candidate is not None and (timer is None or candidate < timer):
            timer = candidate
        candidate = self._spaces[2].ack_deadline
        if candidate is not None and (timer is None or candidate < timer):
            timer = candidate
        candidate = self._pacing_at
        if candidate is not None and (timer is None or candidate < timer):
            timer = candidate
        if self._keep_alive_interval is not None and self._handshake_complete:
            candidate = self._last_activity + self._keep_alive_interval
            if timer is None or candidate < timer:
                timer = candidate
        candidate = self._paths.deadline
        if candidate is not None and (timer is None or candidate < timer):
            timer = candidate
        candidate = self._previous_opener_deadline
        if candidate is not None and (timer is None or candidate < timer):
            timer = candidate
        candidate = self._zero_rtt_opener_deadline
        if candidate is not None and (timer is None or candidate < timer):
            timer = candidate
        return timer

    def _keep_alive_deadline(self) -> float | None:
        interval = self._keep_alive_interval
        if interval is None or not self._handshake_complete:
            return None
        return self._last_activity + interval

    def handle_timer(self, now: float) -> None:
        """Run whatever is due at ``now`` (never arms anything at ``now`` again)."""
        self._now = now
        state = self._state
        if state is _TERMINATED:
            return
        if state is not _CONNECTED and state is not _FIRSTFLIGHT:
            if self._close_deadline is None:
                self._start_closing_period(now)
            elif now >= self._close_deadline:
                self._state = State.TERMINATED
            return
        try:
            self._handle_timer(now)
        except TransportError as exc:
            self._close_on_error(exc, now)

    def _handle_timer(self, now: float) -> None:
        idle = self._idle_deadline
        if idle is not None and now >= idle:
            self._terminate(TransportErrorCode.NO_ERROR, "idle timeout", now)
            return
        app = self._spaces[2]
        if app.ack_deadline is not None and app.ack_deadline <= now:
            app.ack_deadline = None
            app.ack_now = True
        if self._pacing_at is not None and self._pacing_at <= now:
            self._pacing_at = None
        keep_alive = self._keep_alive_deadline()
        if keep_alive is not None and keep_alive <= now:
            self._ping_pending = True
            self._last_activity = now
        if self._previous_opener_deadline is not None and self._previous_opener_deadline <= now:
            self._previous_opener = None
            self._previous_opener_deadline = None
        zero_rtt = self._zero_rtt_opener_deadline
        if zero_rtt is not None and zero_rtt <= now:
            self._zero_rtt_opener = None  # RFC 9001 §4.9.3
            self._zero_rtt_opener_deadline = None
        deadline = self._paths.deadline
        if deadline is not None and deadline <= now:
            for path in self._paths.expire(now):
                self._on_path_validation_failed(path, now)
        timer = self._recovery.get_loss_detection_timer()
        if timer is not None and timer <= now:
            self._on_loss_timeout(now)

    def _on_loss_timeout(self, now: float) -> None:
        result = self._recovery.on_loss_detection_timeout(now)
        for packet in result.lost:
            self._stats_packets_lost += 1
            self._on_records_lost(packet.frames, packet.epoch)
            if self._qlog is not None:
                self._qlog_lost(now, packet.epoch, packet.packet_number, "time_threshold")
        if result.probe_space is None or not result.probe_packets:
            return
        space = self._spaces[_SPACE[result.probe_space]]
        if space.discarded:
            return
        space.probes += result.probe_packets
        if result.probe_space is _ONE_RTT or result.probe_space is _ZERO_RTT:
            if not self._streams.has_data():
                # nothing new to send: repeat what the oldest outstanding packet carried
                for packet in self._recovery.outstanding(_ONE_RTT):
                    if packet.ack_eliciting:
                        self._on_records_lost(packet.frames, packet.epoch, probe=True)
                        break
        else:
            space.crypto_send.resend_unacked()

    def _arm_idle(self, now: float) -> None:
        timeout = self._idle_timeout
        if timeout and timeout > 0:
            floor = self._idle_floor
            self._idle_deadline = now + (timeout if timeout > floor else floor)
        else:
            self._idle_deadline = None



    # -- packets in and out --------------------------------------------------------------------
    def _on_packet_processed(self, now: float) -> None:
        self._arm_idle(now)
        self._idle_restart_on_send = True
        self._last_activity = now

    def _on_packet_sent(self, epoch: Epoch, pn: int, size: int, ack_eliciting: bool,
                        records: list[Any], now: float) -> None:
        """The less common bookkeeping of a sent packet (the sender counts it itself)."""
        if ack_eliciting and self._idle_restart_on_send:
            self._idle_restart_on_send = False
            self._arm_idle(now)
        if epoch is _HANDSHAKE and self._is_client and not self._spaces[0].discarded:
            self._discard_initial_after_send = True
        if self._qlog is not None:
            self._qlog_packet(now, "transport:packet_sent", epoch, pn, size, records)

    def _after_datagram_sent(self, now: float) -> None:
        if self._discard_initial_after_send:
            self._discard_initial_after_send = False
            self._discard_space(0, now)  # RFC 9001 §4.9.1: the client's first Handshake packet

    def _after_datagram_received(self, path: Any, now: float) -> None:
        if path.validated and self._handshake_confirmed:
            return  # nothing limits sending on this path any more
        recovery = self._recovery
        budget = path.amplification_budget()
        if path is self._paths.current and (budget is None or budget > 0):
            recovery.set_amplification_limited(False, now)
            timer = recovery.get_loss_detection_timer()
            if timer is not None and timer <= now:
                self._on_loss_timeout(now)

    def _before_sending(self, now: float) -> None:
        app = self._spaces[2]
        sealer = app.sealer
        if sealer is None or not self._handshake_confirmed:
            return
        if sealer.packets_sealed >= KEY_UPDATE_AFTER:
            self._key_update_requested = True
        if self._key_update_requested and self._key_phase_acked():
            self._key_update_requested = False
            self._update_send_key()

    # -- acknowledgements ----------------------------------------------------------------------
    def _on_ack(self, view: memoryview, pos: int, frame_type: int, now: float) -> int:
        """The ACK / ACK_ECN frame handler (the receive loop's table points here)."""
        recovery = self._recovery
        epoch = self._rx_epoch
        fast = None
        if epoch is _ONE_RTT:
            # a single range (the usual 1-RTT ACK): parsed and processed in one call
            fast = on_app_ack_frame(recovery, view, pos, frame_type,
                                    self._peer_ack_delay_exponent, now)
        if fast is None:
            ranges, delay, ecn, pos = parse_ack(view, pos, frame_type)
            acked, lost, rtt_sample = recovery.on_ack_received(
                epoch, ranges, (delay << self._peer_ack_delay_exponent) / 1_000_000, now, ecn)
        else:
            acked, lost, rtt_sample, pos = fast
        streams = self._streams
        space: PacketSpace | None = None  # this packet's space, looked up on first need
        for packet in acked:
            for record in packet.frames:
                kind = record[0]
                if kind == F_STREAM:
                    # StreamManager.on_frame_acked for a STREAM frame, inline
                    stream = record[1]
                    if stream.send.on_data_acked(record[2], record[3], record[4]):
                        streams._maybe_forget(stream)
                elif kind >= 10:
                    streams.on_frame_acked(record)
                elif kind == F_ACK:
                    # space.on_ack_acked(record[1]), inline: packets up to the largest one
                    # this ACK frame acknowledged need no more acknowledging (RFC 9000 §13.2.4)
                    # (the acknowledged packet was of this packet's space)
                    if space is None:
                        space = self._spaces[_SPACE[epoch]]
                    floor = record[1] + 1
                    if floor > space.ack_floor:
                        space.ack_floor = floor
                        bounds = space.received._bounds
                        if bounds and floor > bounds[0]:
                            if floor >= bounds[-1]:
                                bounds.clear()  # everything received is acknowledged
                            else:
                                space.received.discard_below(floor)
                elif kind == F_CRYPTO:
                    crypto_space = self._spaces[_SPACE[record[1]]]
                    if not crypto_space.discarded:
                        crypto_space.crypto_send.on_acked(record[2], record[3])
                elif kind == F_PING:
                    for uid in record[1]:
                        self._events.append(PingAcknowledged(uid=uid))
        for packet in lost:
            self._stats_packets_lost += 1
            self._on_records_lost(packet.frames, packet.epoch)
            if self._qlog is not None:
                self._qlog_lost(now, packet.epoch, packet.packet_number, "reordering_threshold")
        if rtt_sample:
            # 3 * recovery.pto_duration(), inline
            rtt = recovery.rtt
            var = 4 * rtt.rttvar
            self._idle_floor = 3 * (rtt.smoothed_rtt + (var if var > K_GRANULARITY
                                                        else K_GRANULARITY) + rtt.max_ack_delay)
            if self._qlog is not None:
                self._qlog_metrics(now)
        return pos

    def _on_records_lost(self, records: list[Any], epoch: Epoch, *, probe: bool = False) -> None:
        streams = self._streams
        for record in records:
            kind = record[0]
            if kind >= 10:
                streams.on_frame_lost(record)
            elif kind == F_CRYPTO:
                space = self._spaces[_SPACE[record[1]]]
                if not space.discarded:
                    space.crypto_send.on_lost(record[2], record[3])
            elif kind == F_HANDSHAKE_DONE:
                if not self._is_client:
                    self._handshake_done_pending = True
            elif kind == F_NEW_CONNECTION_ID:
                if self._local_cids.owns(record[2]):
                    self._new_cids.append((record[1], record[2], record[3]))
            elif kind == F_RETIRE_CONNECTION_ID:
                if record[1] not in self._peer_cids.pending_retire:
                    self._peer_cids.pending_retire.append(record[1])
            elif kind == F_NEW_TOKEN:
                if self._new_token_pending is None:
                    self._new_token_pending = record[1]
            elif kind == F_PING and record[1] and not probe:
                self._ping_uids.extend(record[1])
                self._ping_pending = True

    # -- key update (RFC 9001 §6) --------------------------------------------------------------
    def request_key_update(self) -> None:
        """Start a 1-RTT key update as soon as it is allowed (RFC 9001 §6.1).

        Raises:
            QuicError: the connection is not established.
        """
        if not self._is_open or self._spaces[2].sealer is None:
            raise QuicError("no 1-RTT keys to update")
        self._key_update_requested = True

    def _key_phase_acked(self) -> bool:
        """Whether a packet sent with the current key was acknowledged (§6.1 precondition)."""
        largest = self._recovery.space(_ONE_RTT).largest_acked
        return largest is not None and largest >= self._key_phase_first_sent

    def _update_send_key(self) -> None:
        app = self._spaces[2]
        assert app.sealer is not None
        app.sealer = app.sealer.next_generation()
        self._key_phase_first_sent = app.next_pn
        self._key_updates += 1
        if self._qlog is not None:
            self._qlog.event(self._now, "security:key_updated", {
                "key_type": f"{'client' if self._is_client else 'server'}_1rtt_secret",
                "trigger": "local_update", "key_phase": app.sealer.key_phase})

    def _opener_for_key_phase(self, pn: int) -> PacketOpener:
        """The opener for a 1-RTT packet whose Key Phase differs from the current key's."""
        previous = self._previous_opener
        if previous is not None and pn < self._key_phase_first_received:
            return previous
        opener = self._spaces[2].opener
        assert opener is not None
        if self._next_opener is None:
            self._next_opener = opener.next_generation()
        return self._next_opener

    def _on_key_phase_opener(self, opener: PacketOpener, pn: int, now: float) -> None:
        """A packet decrypted with another key than the current one."""
        if opener is self._previous_opener:
            return
        app = self._spaces[2]
        current = app.opener
        assert current is not None
        if not self._handshake_confirmed and not self._is_client:
            raise TransportError("key update before the handshake was confirmed",
                                 error_code=TransportErrorCode.KEY_UPDATE_ERROR)
        sealer = app.sealer
        initiated = sealer is not None and sealer.key_phase != opener.key_phase
        if initiated and app.largest_ack_sent < self._key_phase_first_received:
            # the peer updates again before we acknowledged a packet of its current key
            # phase: it cannot have waited for that acknowledgement (RFC 9001 §6.1, §6.2)
            raise TransportError("consecutive key updates without awaiting confirmation",
                                 error_code=TransportErrorCode.KEY_UPDATE_ERROR)
        # the peer moved to the next key phase
        self._previous_opener = current
        self._previous_opener_deadline = now + 3 * self._recovery.pto_duration()
        app.opener = opener
        self._next_opener = None
        self._key_phase_first_received = pn
        if initiated:
            self._update_send_key()  # answer the peer's update (RFC 9001 §6.2)

    def _on_one_rtt_with_zero_rtt_keys(self, now: float) -> None:
        """A 1-RTT packet arrived while the server holds 0-RTT keys: they go 3 PTO later.

        RFC 9001 §4.9.3: servers may keep 0-RTT keys a while for reordered packets, but after
        receiving a 1-RTT packet "MUST discard 0-RTT keys within a short time; the RECOMMENDED
        time period is three times the Probe Timeout".
        """
        if self._zero_rtt_opener_deadline is None:
            self._zero_rtt_opener_deadline = now + 3 * self._recovery.pto_duration()

    def _on_decryption_failure(self) -> None:
        self._decryption_failures += 1
        opener = self._spaces[2].opener
        if opener is not None and self._decryption_failures >= opener.integrity_limit:
            raise TransportError("AEAD integrity limit reached",
                                 error_code=TransportErrorCode.AEAD_LIMIT_REACHED)

    # -- closing -------------------------------------------------------------------------------
    def close(self, error_code: int = 0, reason_phrase: str = "") -> None:
        """Close the connection with an application error code (CONNECTION_CLOSE 0x1d).

        The frame goes out with the next :meth:`datagrams_to_send`; a
        :class:`ConnectionTerminated` event follows at once.  Closing twice does nothing.
        """
        if not self._is_open:
            return
        if not 0 <= error_code < 1 << 62:
            raise ValueError("error_code must fit in a varint")
        self._start_close(error_code, None, reason_phrase, application=True)

    def _start_close(self, code: int, frame_type: int | None, reason: str, *,
                     application: bool) -> None:
        reason_bytes = reason.encode("utf-8", "replace")[:512]
        frames: dict[Epoch, bytes] = {}
        if application:
            frames[_ONE_RTT] = (b"\x1d" + encode_varint(code) + encode_varint(len(reason_bytes))
                                + reason_bytes)
            # before 1-RTT keys the peer learns only APPLICATION_ERROR (RFC 9000 §10.2.3)
            lower = b"\x1c" + encode_varint(TransportErrorCode.APPLICATION_ERROR) + b"\x00\x00"
        else:
            lower = (b"\x1c" + encode_varint(code) + encode_varint(frame_type or 0)
                     + encode_varint(len(reason_bytes)) + reason_bytes)
            frames[_ONE_RTT] = lower
        frames[_INITIAL] = frames[_HANDSHAKE] = lower
        self._close_frames = frames
        self._close_pending = True
        self._state = State.CLOSING
        self._close_deadline = None  # set when the CONNECTION_CLOSE goes out
        if self._qlog is not None:
            self._qlog.event(self._now, "transport:connection_closed", {
                "owner": "local", "application_code" if application else "connection_code": code,
                "reason": reason})
        self._events.append(ConnectionTerminated(
            error_code=code, frame_type=None if application else frame_type,
            reason_phrase=reason, by_peer=False, application=application))

    def _close_datagrams(self, now: float) -> list[tuple[bytes, Any]]:
        if not self._close_pending:
            return []
        self._close_pending = False
        self._start_closing_period(now)
        path = self._paths.current
        if path is None:
            return []
        budget = self._max_datagram_size
        amplification = path.amplification_budget()
        if amplification is not None:
            budget = min(budget, amplification)
        datagram = build_close_datagram(self, self._close_frames, budget, now) \
            if budget >= 64 else None
        if datagram is None:
            return []
        path.bytes_sent += len(datagram)
        self._close_count += 1
        return [(datagram, path.address)]

    def _start_closing_period(self, now: float) -> None:
        """The closing period runs three PTOs from the first CONNECTION_CLOSE (RFC 9000 §10.2)."""
        if self._close_deadline is None:
            self._close_deadline = now + 3 * self._recovery.pto_duration()

    def _on_datagram_while_closing(self) -> None:
        self._close_received += 1
        n = self._close_received
        if n & (n - 1) == 0 and self._close_count < _CLOSE_REPEAT_LIMIT:
            self._close_pending = True

    def _on_peer_close(self, frame: ConnectionCloseFrame, now: float) -> None:
        application = frame.frame_type is None
        reason = frame.reason_phrase.decode("utf-8", "replace")
        self._state = State.DRAINING
        self._close_deadline = now + 3 * self._recovery.pto_duration()
        self._events.append(ConnectionTerminated(
            error_code=frame.error_code, frame_type=frame.frame_type, reason_phrase=reason,
            by_peer=True, application=application))
        if self._qlog is not None:
            self._qlog.event(now, "transport:connection_closed", {
                "owner": "remote", "connection_code": frame.error_code, "reason": reason})

    def _terminate(self, code: int, reason: str, now: float) -> None:
        """End silently (idle timeout, stateless reset): no packet, an event, no timer."""
        self._state = State.TERMINATED
        self._events.append(ConnectionTerminated(
            error_code=code, frame_type=None, reason_phrase=reason, by_peer=True))
        if self._qlog is not None:
            self._qlog.event(now, "transport:connection_closed",
                             {"owner": "remote", "trigger": reason.replace(" ", "_")})

    def _on_stateless_reset(self, now: float) -> None:
        self._terminate(TransportErrorCode.NO_ERROR, "stateless reset", now)
