"""The connection's commands, connection IDs, paths and observability.

:class:`ControlMixin` is the part of :class:`~._connection.Connection` that the application
and the peer steer at run time:

* the stream and datagram commands (``send_stream_data``, ``reset_stream``, ``stop_sending``,
  ``send_datagram_frame``, ``send_ping`` ...), which queue work for ``datagrams_to_send``;
* connection IDs (RFC 9000 §5.1): the ones we issue (NEW_CONNECTION_ID, with
  :class:`ConnectionIdIssued` / :class:`ConnectionIdRetired` events for endpoint routing) and
  the peer's (``change_connection_id``, RETIRE_CONNECTION_ID);
* paths (RFC 9000 §8.2, §9): a peer that moved (migration or NAT rebinding) is followed once
  it sends a non-probing packet, its new path is validated with PATH_CHALLENGE, and a path
  that fails validation is abandoned for the last validated one (also when we sent
  disable_active_migration: RFC 9000 §9 lets us validate and follow rather than drop); a
  client migrates with ``migrate`` unless the peer sent disable_active_migration;
* ``statistics()`` and qlog events.
"""

from __future__ import annotations

import ipaddress
from typing import Any, Final

from cryptography import x509

from .._buffer import varint_size
from .._tls.suites import Epoch
from ._cids import PREFERRED_SEQUENCE
from ._conn_base import ConnectionBase, State
from ._errors import QuicError, TransportError
from ._events import ConnectionIdIssued, ConnectionIdRetired, PathChanged
from ._params import PreferredAddress, TransportParameters, unusable_preferred_address
from ._paths import Path
from ._qlog import QlogTracer
from ._sender import (
    F_ACK,
    F_CRYPTO,
    F_DATAGRAM,
    F_HANDSHAKE_DONE,
    F_NEW_CONNECTION_ID,
    F_NEW_TOKEN,
    F_PATH,
    F_PING,
    F_RETIRE_CONNECTION_ID,
    MIN_INITIAL_SIZE,
    _Packet,
    _seal,
    _start_packet,
)
from ._statistics import ConnectionStatistics
from ._stream_manager import (
    F_DATA_BLOCKED,
    F_MAX_DATA,
    F_MAX_STREAM_DATA,
    F_MAX_STREAMS,
    F_RESET_STREAM,
    F_STOP_SENDING,
    F_STREAM,
    F_STREAM_DATA_BLOCKED,
    F_STREAMS_BLOCKED,
)

__all__ = ["ControlMixin"]

_CONNECTED: Final = State.CONNECTED
_FIRSTFLIGHT: Final = State.FIRSTFLIGHT

#: Datagrams waiting to be sent at most; older ones are dropped (they are unreliable).
MAX_QUEUED_DATAGRAMS: Final = 256


class ControlMixin(ConnectionBase):
    """Commands, connection IDs, paths, statistics and qlog for a Connection."""

    # -- streams -------------------------------------------------------------------------------
    def _check_open(self) -> None:
        state = self._state  # not self._is_open: a property call less on every command
        if state is not _CONNECTED and state is not _FIRSTFLIGHT:
            raise QuicError("the connection is closed")

    def get_next_available_stream_id(self, is_unidirectional: bool = False) -> int:
        """The ID of the next stream of this kind we may create (by sending on it)."""
        return self._streams.next_stream_id(is_unidirectional)

    def send_stream_data(self, stream_id: int, data: bytes | bytearray | memoryview,
                         end_stream: bool = False) -> None:
        """Queue ``data`` on a stream (creating a local one); ``end_stream`` sends FIN after it.

        Data is buffered without limit; ask :meth:`stream_send_capacity` first to stay within
        the peer's flow-control credit.

        Raises:
            StreamStateError: the stream cannot send (the peer's unidirectional stream, a
                closed or reset stream, FIN already sent).
            QuicError: the connection is closed.
        """
        state = self._state  # _check_open, inline
        if state is not _CONNECTED and state is not _FIRSTFLIGHT:
            raise QuicError("the connection is closed")
        self._streams.send(stream_id, data, end_stream)

    def stream_send_capacity(self, stream_id: int) -> int:
        """Bytes :meth:`send_stream_data` can take now without buffering beyond the peer's
        credit plus a small allowance (0 for a stream that cannot send)."""
        if not self._is_open:
            return 0
        return self._streams.send_capacity(stream_id)

    def consume_stream_data(self, stream_id: int, n: int) -> None:
        """The application read ``n`` bytes of the stream: grant the peer credit for them.

        Only meaningful with ``Configuration(consume_on_delivery=False)``; otherwise data
        counts as read once delivered and this does nothing.
        """
        self._streams.consume(stream_id, n)

    def reset_stream(self, stream_id: int, error_code: int) -> None:
        """Abandon sending on a stream (RESET_STREAM with ``error_code``).

        Nothing happens on a stream whose sending part already finished (or was reset).

        Raises:
            StreamStateError: the stream has no sending part here (the peer's
                unidirectional stream) or was never opened.
        """
        self._check_open()
        self._streams.reset(stream_id, error_code)

    def stop_sending(self, stream_id: int, error_code: int) -> None:
        """Ask the peer to stop sending on a stream (STOP_SENDING with ``error_code``).

        Nothing happens on a stream whose receiving part already finished.

        Raises:
            StreamStateError: the stream has no receiving part here (our unidirectional
                stream) or was never opened.
        """
        self._check_open()
        self._streams.stop_sending(stream_id, error_code)

    # -- datagrams and pings -------------------------------------------------------------------
    def send_datagram_frame(self, data: bytes | bytearray | memoryview) -> None:
        """Queue an unreliable DATAGRAM frame (RFC 9221).

        Raises:
            QuicError: the peer does not accept DATAGRAM frames, or the connection is closed.
            ValueError: ``data`` is larger than the peer accepts.
        """
        state = self._state  # _check_open(), inline
        if state is not _CONNECTED and state is not _FIRSTFLIGHT:
            raise QuicError("the connection is closed")
        peer = self._peer_params
        if peer is not None:
            limit = peer.max_datagram_frame_size
            if not limit:
                raise QuicError("the peer does not accept DATAGRAM frames")
            n = len(data)
            if n + (2 if n < 0x40 else 3 if n < 0x4000 else 1 + varint_size(n)) > limit:
                raise ValueError(f"datagram of {len(data)} bytes above the peer's limit {limit}")
        elif not self._config.max_datagram_frame_size:
            raise QuicError("DATAGRAM frames are not enabled")
        queue = self._datagrams
        if len(queue) >= MAX_QUEUED_DATAGRAMS:
            queue.popleft()
            self._datagrams_dropped += 1
        queue.append(bytes(data))

    def send_ping(self, uid: int) -> None:
        """Send a PING; a :class:`PingAcknowledged` event with ``uid`` follows its ACK."""
        self._check_open()
        self._ping_uids.append(uid)
        self._ping_pending = True

    # -- connection IDs ------------------------------------------------------------------------
    @property
    def local_connection_id(self) -> bytes:
        """Our current connection ID (for routing); more come with :class:`ConnectionIdIssued`."""
        return self._local_cids.current

    @property
    def version(self) -> int:
        """The QUIC version in use (it can change during the handshake, RFC 9368)."""
        return self._version

    # -- what the handshake told us --------------------------------------------------------------
    @property
    def peer_transport_parameters(self) -> TransportParameters | None:
        """The peer's transport parameters, once the handshake has delivered them."""
        return self._peer_params

    @property
    def remote_max_datagram_frame_size(self) -> int | None:
        """The peer's max_datagram_frame_size (None until known or when DATAGRAM is off)."""
        peer = self._peer_params
        return (peer.max_datagram_frame_size or None) if peer is not None else None

    @property
    def alpn_protocol(self) -> str | None:
        """The negotiated ALPN protocol (None before the handshake settles it)."""
        return self._tls.alpn_protocol if self._tls is not None else None

    @property
    def key_exchange_group(self) -> int | None:
        """The TLS key-exchange group in use (IANA number, e.g. 0x11ec X25519MLKEM768), None
        before the ServerHello settles it."""
        return self._tls.key_exchange_group if self._tls is not None else None

    @property
    def peer_certificate_chain(self) -> tuple[x509.Certificate, ...]:
        """The peer's certificate chain, leaf first (empty if it sent none)."""
        return tuple(self._tls.peer_certificate_chain) if self._tls is not None else ()

    @property
    def original_destination_connection_id(self) -> bytes:
        """The Destination Connection ID of the client's first Initial."""
        return self._original_dcid

    def _issue_connection_ids(self) -> None:
        peer = self._peer_params
        if peer is None:
            return
        local = self._local_cids
        local.replenish(peer.active_connection_id_limit)
        for seq, cid, token in local.issued:
            self._new_cids.append((seq, cid, token))
            self._events.append(ConnectionIdIssued(connection_id=cid))
        local.issued.clear()

    def change_connection_id(self) -> None:
        """Move to a new connection ID of the peer's, retiring the current one (RFC 9000 §5.1.2).

        Allowed at any time; a client moving to a new local address calls :meth:`migrate`,
        which does this after checking that migrating is allowed. Nothing happens when the
        peer gave us no spare connection ID.
        """
        self._check_open()
        self._peer_cids.rotate()

    def migrate(self, *, dry_run: bool = False) -> None:
        """Prepare to send from a new local address (client active migration, RFC 9000 §9).

        Call it just before the datagrams go out from the new address: the connection moves
        to a spare connection ID of the peer's (retiring the current one), since one
        connection ID must not be used from two local addresses (§9.5). The server follows
        once packets arrive from the new address and validates it. Only a client migrates,
        only once the handshake is confirmed, and never when the peer sent
        disable_active_migration. A probe of the server's preferred address still under way
        ends (the connection stays where it is).
        NAT rebinding needs no call: the peer sees it and follows.

        Args:
            dry_run: only check that the connection could migrate now (raise as below),
                changing nothing: for a caller that moves several connections at once.

        Raises:
            QuicError: on a server, before the handshake is confirmed, when the peer sent
                disable_active_migration, or when the peer gave us no spare connection ID.
        """
        self._check_open()
        if not self._is_client:
            raise QuicError("only a client initiates connection migration (RFC 9000 §9)")
        if not self._handshake_confirmed:
            raise QuicError("no connection migration before the handshake is confirmed "
                            "(RFC 9000 §9)")
        peer = self._peer_params
        if peer is not None and peer.disable_active_migration and not self._moved_to_preferred:
            # (it does not hold once we acted on preferred_address, RFC 9000 §18.2)
            raise QuicError("the peer sent disable_active_migration: no active connection "
                            "migration (RFC 9000 §9)")
        cids = self._peer_cids
        if not cids.zero_length and not cids.has_spare():
            raise QuicError("no spare connection ID of the peer's to migrate with "
                            "(RFC 9000 §9.5)")
        if dry_run:
            return
        if self._preferred_probe is not None:
            self._end_preferred_probe(moved=False, now=self._now)  # (its CID was used here)
        if not cids.zero_length:
            cids.rotate()
        self._ecn.restart()  # every new path is tested for ECN (RFC 9000 §13.4.2)

    def _on_new_connection_id_frame(self, sequence: int, cid: bytes, token: bytes,
                                    retire_prior_to: int) -> None:
        try:
            self._peer_cids.add(sequence, cid, token, retire_prior_to)
        except TransportError as exc:
            exc.frame_type = 0x18
            raise
        if self._preferred_probe is not None and self._peer_cids.reserved is None:
            self._end_preferred_probe(moved=False, now=self._now)  # its CID was retired

    def _on_retire_connection_id_frame(self, sequence: int) -> None:
        local = self._local_cids
        try:
            local.retire(sequence, self._rx_dcid)
        except TransportError as exc:
            exc.frame_type = 0x19
            raise
        for cid in local.retired:
            self._events.append(ConnectionIdRetired(connection_id=cid))
        local.retired.clear()
        self._new_cids = [entry for entry in self._new_cids if local.owns(entry[1])]
        self._issue_connection_ids()

    # -- paths ---------------------------------------------------------------------------------
    def _validation_pto(self) -> float:
        """The larger of the current PTO and a new path's (from kInitialRtt): path
        validation's challenges go out this far apart, doubling (RFC 9000 §8.2.4, §9.4)."""
        recovery = self._recovery
        return max(recovery.pto_duration(),
                   3 * self._config.initial_rtt + recovery.rtt.max_ack_delay)

    def _on_peer_migrated(self, path: Path, now: float) -> None:
        """The peer sends from a new address (RFC 9000 §9.3): follow it and validate it."""
        if self._is_client or not self._handshake_confirmed:
            return
        old = self._paths.current
        assert old is not None
        if _same_peer(path.address, old.address):
            self._on_local_move(path, now)
            return
        dcid = self._rx_dcid
        if self._path_dcid is not None and dcid != self._path_dcid:
            # the client moved to a new connection ID of ours: an active migration, not a
            # NAT rebinding; ours towards it changes too, or the two paths could be linked
            # (RFC 9000 §9.5), when the client gave us a spare
            self._peer_cids.rotate()
        self._path_dcid = dcid
        if old.validated:
            self._previous_path = old
        self._paths.current = path
        if not path.validated:
            self._paths.start_validation(path, now, self._validation_pto())
        if old.address[0] != path.address[0]:
            self._new_path_estimates()
        self._ecn.restart()  # every new path is tested for ECN (RFC 9000 §13.4.2)
        if self._qlog is not None:
            self._qlog.event(now, "connectivity:connection_state_updated",
                             {"new": "migrated", "address": str(path.address[:2])})

    def _on_local_move(self, path: Path, now: float) -> None:
        """Server: the client, same address, now reaches us at our preferred address (the I/O
        layer tells paths through our other sockets apart by a third address item). RFC
        9000 §9.6.2: non-probing packets keep leaving from the original address until this
        path is validated; once moved, never back (newer packets at the old address move
        nothing; delayed ones are still read)."""
        if self._moved_to_preferred:
            return
        self._adopt_local_probe(path)
        if path.validated:
            self._end_local_move(path, moved=True, now=now)
        elif path.challenge is None:
            self._paths.start_validation(path, now, self._validation_pto())

    def _adopt_local_probe(self, path: Path) -> None:
        """Server: ``path`` reaches the client through our preferred address: it gets a
        connection ID of the client's own, not the one in use from our original address
        (§9.5), when the client gave us a spare."""
        if self._preferred_probe is path:
            return
        if self._preferred_probe is not None:
            self._end_local_move(self._preferred_probe, moved=False, now=self._now)
        self._preferred_probe = path
        cids = self._peer_cids
        sequence = cids.spare_sequence()
        if sequence is not None:
            cids.reserved = sequence
            cids.mark_used(sequence)
            self._probe_sequence = sequence

    def _end_local_move(self, path: Path, *, moved: bool, now: float) -> None:
        """Server: the path through the preferred address was validated (move there) or
        its validation failed (forget it)."""
        if path is self._preferred_probe:
            self._preferred_probe = None
        sequence, self._probe_sequence = self._probe_sequence, None
        cids = self._peer_cids
        old = self._paths.current
        if moved and old is not None and old is not path:
            self._paths.current = path
            self._moved_to_preferred = True
            if sequence is not None:
                cids.switch_to(sequence)
            self._ecn.restart()  # every new path is tested for ECN (RFC 9000 §13.4.2)
            self._paths.leave(old)  # delayed packets still count, nothing goes there (§9.6.2)
            self._events.append(PathChanged(old_address=old.address, new_address=path.address))
            return
        if sequence is not None:
            cids.retire(sequence)  # it went out from the other address: never again (§9.5)
        if not moved:
            self._paths.forget(path)

    def _probe_preferred_address(self, now: float) -> None:
        """Client, handshake confirmed: validate the server's preferred address of our
        address family with the connection ID that came with it (RFC 9000 §9.6.1)."""
        peer = self._peer_params
        current = self._paths.current
        if peer is None or peer.preferred_address is None or current is None \
                or not self._config.use_preferred_address:
            return
        cids = self._peer_cids
        if cids.reserved != PREFERRED_SEQUENCE:
            return  # retired (retire_prior_to) before the handshake was confirmed
        target = _preferred_target(peer.preferred_address, current.address)
        if target is None or self._paths.get(target) is not None:
            cids.reserved = None  # not taken: an ordinary spare, never used so far
            return
        path = self._paths.get_or_create(target, validated=True)  # (no limit for a client)
        cids.mark_used(PREFERRED_SEQUENCE)
        self._preferred_probe = path
        # three challenges (PTO, 2 PTO apart): the old address serves meanwhile, so the
        # probe may take longer than a validation the connection waits for
        self._paths.start_validation(path, now, self._validation_pto(), 3)

    def _end_preferred_probe(self, *, moved: bool, now: float) -> None:
        """The probe of the preferred address succeeded (move there) or failed (stay)."""
        path = self._preferred_probe
        assert path is not None
        self._preferred_probe = None
        old = self._paths.current
        cids = self._peer_cids
        if moved and old is not None and cids.switch_to(PREFERRED_SEQUENCE):
            self._paths.current = path
            self._moved_to_preferred = True
            # the server keeps sending from its old address a while (RFC 9000 §9.6.2): take
            # what comes from there, send nothing there
            self._paths.leave(old)
            if old.address[0] != path.address[0]:
                self._new_path_estimates()
            self._ecn.restart()  # every new path is tested for ECN (RFC 9000 §13.4.2)
            self._events.append(PathChanged(old_address=old.address,
                                            new_address=path.address))
            if self._qlog is not None:
                self._qlog.event(now, "connectivity:connection_state_updated",
                                 {"new": "migrated", "address": str(path.address)})
            return
        # failed, or its connection ID was retired meanwhile: never use it again (§9.5)
        cids.retire(PREFERRED_SEQUENCE)
        self._paths.forget(path)

    def _end_probe(self, path: Path, *, moved: bool, now: float) -> None:
        """The validation of the preferred-address path ended: a client's probe of the
        server's address, or a server's path through its own preferred socket."""
        if self._is_client:
            self._end_preferred_probe(moved=moved, now=now)
        else:
            self._end_local_move(path, moved=moved, now=now)

    def _new_path_estimates(self) -> None:
        """A new peer host: RTT and congestion control start over (RFC 9000 §9.4)."""
        recovery = self._recovery
        recovery.rtt.reset()
        recovery.congestion.reset()

    def _on_path_response_frame(self, data: bytes, now: float) -> None:
        path = self._paths.on_response(data)
        if path is None:
            return
        if path is self._preferred_probe:
            self._end_probe(path, moved=True, now=now)
            return
        if path is self._paths.current:
            self._recovery.set_amplification_limited(False, now)
            previous = self._previous_path
            if previous is not None and previous is not path:
                self._events.append(PathChanged(old_address=previous.address,
                                                new_address=path.address))
                self._paths.forget(previous)
                self._previous_path = None

    def _on_path_validation_failed(self, path: Path, now: float) -> None:
        if path is self._preferred_probe:
            self._end_probe(path, moved=False, now=now)
            return
        if path is self._paths.current:
            previous = self._previous_path
            if previous is not None:
                self._paths.current = previous  # back to the last validated path (§9.3.2)
                self._previous_path = None
        self._paths.forget(path)

    def _probe_datagrams(self, now: float) -> list[tuple[bytes, Any]]:
        """PATH_RESPONSE / PATH_CHALLENGE frames for paths other than the current one."""
        paths = self._paths
        if not paths.responses and paths.deadline is None:
            return []  # nothing pending on any path (the common case)
        current = paths.current
        app = self._spaces[2]
        if app.sealer is None:
            return []
        out: list[tuple[bytes, Any]] = []
        cids = self._peer_cids
        for path in self._paths.paths():
            if path is current or path.receive_only:
                continue
            responses = [data for owner, data in self._paths.responses if owner is path]
            if not responses and not path.challenge_pending:
                continue
            budget = MIN_INITIAL_SIZE
            allowance = path.amplification_budget()
            if allowance is not None:
                budget = min(budget, allowance)
            dcid = cids.current
            if not self._is_client and current is not None and not self._moved_to_preferred \
                    and _same_peer(path.address, current.address):
                self._adopt_local_probe(path)  # (the client's probe of our preferred address)
            if path is self._preferred_probe:
                # the preferred address gets its own connection ID, never the one used at
                # the old address (RFC 9000 §9.5, §9.6.1)
                sequence = PREFERRED_SEQUENCE if self._is_client else self._probe_sequence
                probe_cid = None if sequence is None else cids.cid_for(sequence)
                if sequence is not None and (probe_cid is None or cids.reserved != sequence):
                    if self._is_client:  # the peer retired it
                        self._end_preferred_probe(moved=False, now=now)
                        continue
                    self._probe_sequence = None  # (a server goes on with the current one)
                elif probe_cid is not None:
                    cids.current = probe_cid  # (for this packet only: _seal reads it)
            try:
                packet = _start_packet(self, app, Epoch.ONE_RTT, app.sealer, budget)
                if packet is None:
                    continue
                datagram = self._seal_probe(packet, path, responses, budget, now)
            finally:
                cids.current = dcid
            out.append((datagram, path.address))
        return out

    def _seal_probe(self, packet: _Packet, path: Path, responses: list[bytes], budget: int,
                    now: float) -> bytes:
        """PATH_RESPONSE / PATH_CHALLENGE frames for ``path`` into ``packet``, padded, sealed."""
        for data in responses[:2]:
            packet.payload += b"\x1b" + data
        if path.challenge_pending and path.challenge is not None:
            packet.payload += b"\x1a" + path.challenge
            path.challenge_pending = False
        self._paths.responses = [(p, d) for p, d in self._paths.responses if p is not path]
        packet.records.append((F_PATH,))
        packet.ack_eliciting = True
        packet.off_path = True
        room = budget - packet.size
        if room > 0:
            packet.payload += bytes(room)
            packet.padding_only = True
        packet.space.next_pn += 1
        datagram = _seal(self, packet, now)
        path.bytes_sent += len(datagram)
        return datagram

    # -- statistics and qlog -------------------------------------------------------------------
    def statistics(self) -> ConnectionStatistics:
        """A snapshot of the connection's counters and estimates."""
        recovery = self._recovery
        rtt = recovery.rtt
        path = self._paths.current
        ecn = self._ecn
        received = [0, 0, 0, 0]
        for space in self._spaces:
            counts = space.ecn_received
            if counts is not None:
                for codepoint in (1, 2, 3):
                    received[codepoint] += counts[codepoint]
        return ConnectionStatistics(
            smoothed_rtt=rtt.smoothed_rtt, min_rtt=rtt.min_rtt, latest_rtt=rtt.latest_rtt,
            rttvar=rtt.rttvar, congestion_window=recovery.congestion_window,
            bytes_in_flight=recovery.bytes_in_flight,
            packets_sent=self._stats_packets_sent, packets_received=self._stats_packets_received,
            packets_lost=self._stats_packets_lost, bytes_sent=self._stats_bytes_sent,
            bytes_received=sum(p.bytes_received for p in self._paths.paths()),
            datagrams_received=self._stats_datagrams_received,
            datagrams_dropped=self._datagrams_dropped, pto_count=recovery.pto_count,
            zero_rtt_dropped=self._zero_rtt_dropped,
            key_updates=self._key_updates, streams=len(self._streams),
            peer_address=None if path is None else path.address,
            ecn_state=ecn.state, ecn_failure=ecn.failure, ecn_ect0_received=received[2],
            ecn_ect1_received=received[1], ecn_ce_received=received[3],
            ecn_ect0_sent=sum(ecn.sent), ecn_ce_reported=ecn.ce_reported,
        )

    def _start_qlog(self, now: float) -> None:
        qlog = self._config.qlog
        if qlog is None:
            return
        if not isinstance(qlog, QlogTracer):
            qlog = qlog(self._original_dcid, self._is_client)
            if qlog is None:
                return
        if not qlog.started:
            qlog.start(now=now, odcid=self._original_dcid,
                       vantage_point="client" if self._is_client else "server")
        self._qlog = qlog
        qlog.event(now, "connectivity:connection_started", {
            "src_cid": self._local_cids.initial.hex(), "dst_cid": self._original_dcid.hex(),
            "quic_version": f"{self._version:#010x}"})

    def _qlog_packet(self, now: float, name: str, epoch: Epoch, pn: int, size: int,
                     records: list[Any] | None = None) -> None:
        assert self._qlog is not None
        data: dict[str, Any] = {
            "header": {"packet_type": _QLOG_TYPES[epoch], "packet_number": pn},
            "raw": {"length": size}}
        if records is not None:
            data["frames"] = [_qlog_frame(record) for record in records]
        self._qlog.event(now, name, data)

    def _qlog_lost(self, now: float, epoch: Epoch, pn: int, trigger: str) -> None:
        assert self._qlog is not None
        self._qlog.event(now, "recovery:packet_lost", {
            "header": {"packet_type": _QLOG_TYPES[epoch], "packet_number": pn},
            "trigger": trigger})

    def _qlog_metrics(self, now: float) -> None:
        assert self._qlog is not None
        recovery = self._recovery
        rtt = recovery.rtt
        self._qlog.event(now, "recovery:metrics_updated", {
            "smoothed_rtt": round(rtt.smoothed_rtt * 1000, 3),
            "min_rtt": round(rtt.min_rtt * 1000, 3),
            "latest_rtt": round(rtt.latest_rtt * 1000, 3),
            "rtt_variance": round(rtt.rttvar * 1000, 3),
            "congestion_window": recovery.congestion_window,
            "bytes_in_flight": recovery.bytes_in_flight})


_QLOG_FRAMES: Final = {
    F_ACK: "ack", F_CRYPTO: "crypto", F_HANDSHAKE_DONE: "handshake_done",
    F_NEW_CONNECTION_ID: "new_connection_id", F_RETIRE_CONNECTION_ID: "retire_connection_id",
    F_NEW_TOKEN: "new_token", F_PING: "ping", F_DATAGRAM: "datagram", F_PATH: "path_challenge",
    F_STREAM: "stream", F_RESET_STREAM: "reset_stream", F_STOP_SENDING: "stop_sending",
    F_MAX_DATA: "max_data", F_MAX_STREAM_DATA: "max_stream_data", F_MAX_STREAMS: "max_streams",
    F_DATA_BLOCKED: "data_blocked", F_STREAM_DATA_BLOCKED: "stream_data_blocked",
    F_STREAMS_BLOCKED: "streams_blocked",
}


def _qlog_frame(record: tuple[Any, ...]) -> dict[str, Any]:
    kind = record[0]
    frame: dict[str, Any] = {"frame_type": _QLOG_FRAMES.get(kind, "unknown")}
    if kind == F_STREAM:
        frame.update(stream_id=record[1].stream_id, offset=record[2], length=record[3],
                     fin=record[4])
    elif kind == F_CRYPTO:
        frame.update(offset=record[2], length=record[3])
    elif kind == F_ACK:
        frame["largest_acknowledged"] = record[1]
    return frame


_QLOG_TYPES: Final = {Epoch.INITIAL: "initial", Epoch.HANDSHAKE: "handshake",
                      Epoch.ZERO_RTT: "0RTT", Epoch.ONE_RTT: "1RTT"}


def _preferred_target(preferred: PreferredAddress, current: Any) -> tuple[str, int] | None:
    """The server's preferred address a client should try, or None: the one of the family
    of the address it reached (RFC 9000 §9.6.3), if it is a plausible unicast address (a
    hostile server must not aim our probes at a broadcast, multicast or loopback address, or
    at port 0, §21.5.6) and not where we already are."""
    try:
        here = ipaddress.ip_address(current[0])
    except (ValueError, TypeError, IndexError):
        return None
    if isinstance(here, ipaddress.IPv6Address) and here.ipv4_mapped is not None:
        return None  # which family is meant is unclear: stay
    target = preferred.ipv6 if here.version == 6 else preferred.ipv4
    if target is None or unusable_preferred_address(target, here.version):
        return None
    there, port = ipaddress.ip_address(target[0]), target[1]
    if (there.is_loopback and not here.is_loopback) or (there == here and port == current[1]):
        return None
    return (str(there), port)


def _same_peer(a: Any, b: Any) -> bool:
    """Two paths to one peer address through different local addresses of ours (the I/O
    layer adds a third item to tell them apart, the trio endpoint's preferred sockets)."""
    return bool(a != b and a[:2] == b[:2])
