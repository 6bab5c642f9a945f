"""aioquic's sans-IO ``QuicConnection`` behind the trio layer's engine contract (tests only).

The trio layer was first built and tested on this adapter, before ``trio_zttp.quic.Connection``
existed; it now serves the interop tests (``test_interop_aioquic.py``), where one side of a
connection runs aioquic's engine and the other ours, both through the trio layer.  It
converts configurations and events and emulates the three calls aioquic lacks:

* ``stream_send_capacity(sid)``: the peer's MAX_STREAM_DATA credit plus
  :data:`ALLOWANCE`, minus what was written (stream level only; aioquic has no cheap
  connection-level equivalent).
* ``consume_stream_data(sid, n)``: aioquic doubles its receive windows as data *arrives*;
  the adapter wraps its two credit writers so credit follows what the application
  *read* instead (read + initial window, sent once half a window was read), and hides
  the "received" counters from aioquic's doubling rule while those writers run.
* ``ConnectionTerminated(by_peer, application)`` at the start of the closing or draining
  period rather than at its end, and ``get_timer() -> None`` once terminated.

It reaches into aioquic's private attributes (``_streams``, ``_close_event``, ``_state``,
``_local_max_data``, ``_write_*_limits``, ``tls._peer_certificate``, ``_loss``); the
pinned aioquic minor version (pyproject) keeps them stable.
"""

from __future__ import annotations

import ssl
import types
from collections import deque
from typing import Any

from aioquic.quic import events as aq_events
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection, QuicConnectionState

from trio_zttp.quic import _events as ev
from trio_zttp.quic._config import Configuration

ALLOWANCE = 16 * 1024
"""Bytes a sender may queue beyond the peer's stream credit (emulated engine constant)."""


def to_aioquic(configuration: Configuration) -> QuicConfiguration:
    """Our Configuration as aioquic's."""
    chain = list(configuration.certificate_chain)
    return QuicConfiguration(
        is_client=configuration.is_client,
        alpn_protocols=list(configuration.alpn_protocols),
        server_name=configuration.server_name,
        idle_timeout=configuration.idle_timeout,
        max_data=configuration.max_data,
        max_stream_data=configuration.max_stream_data,
        max_datagram_frame_size=configuration.max_datagram_frame_size,
        max_datagram_size=configuration.max_datagram_size,
        connection_id_length=configuration.connection_id_length,
        initial_rtt=configuration.initial_rtt,
        supported_versions=list(configuration.supported_versions),
        congestion_control_algorithm=(
            "cubic" if configuration.congestion_control == "cubic" else "reno"
        ),
        secrets_log_file=configuration.secrets_log_file,
        verify_mode=ssl.CERT_REQUIRED if configuration.verify_peer else ssl.CERT_NONE,
        cadata=configuration.cadata,
        cafile=configuration.cafile,
        certificate=chain[0] if chain else None,
        certificate_chain=chain[1:],
        private_key=configuration.private_key,
    )


class AioquicEngine:
    """The engine contract over ``aioquic.quic.connection.QuicConnection``."""

    def __init__(
        self,
        configuration: Configuration,
        *,
        original_destination_connection_id: bytes | None = None,
        retry_source_connection_id: bytes | None = None,
    ) -> None:
        self._conn = conn = QuicConnection(
            configuration=to_aioquic(configuration),
            original_destination_connection_id=original_destination_connection_id,
            retry_source_connection_id=retry_source_connection_id,
        )
        self._local_cid: bytes = conn.host_cid
        self._stream_window = configuration.max_stream_data
        self._connection_window = configuration.max_data
        self._consumed: dict[int, int] = {}
        self._consumed_total = 0
        self._written: dict[int, int] = {}
        self._events: deque[ev.Event] = deque()
        self._terminated = False
        self._closing_by_us = False
        self._peer_address: Any = None

        write_stream_limits = conn._write_stream_limits
        write_connection_limits = conn._write_connection_limits

        def stream_limits(builder: Any, space: Any, stream: Any) -> None:
            local = stream.max_stream_data_local
            if not local:
                write_stream_limits(builder=builder, space=space, stream=stream)
                return
            window = self._stream_window
            target = self._consumed.get(stream.stream_id, 0) + window
            if target - local >= window // 2:
                stream.max_stream_data_local = target
            receiver = stream.receiver
            highest = receiver.highest_offset
            receiver.highest_offset = 0  # aioquic doubles on received data; we grant on read
            try:
                write_stream_limits(builder=builder, space=space, stream=stream)
            finally:
                receiver.highest_offset = highest

        def connection_limits(builder: Any, space: Any) -> None:
            limit = conn._local_max_data
            window = self._connection_window
            target = self._consumed_total + window
            if target - limit.value >= window // 2:
                limit.value = target
            used = limit.used
            limit.used = 0
            try:
                write_connection_limits(builder=builder, space=space)
            finally:
                limit.used = used

        conn._write_stream_limits = stream_limits
        conn._write_connection_limits = connection_limits

    # -- the contract -----------------------------------------------------------------------

    @property
    def local_connection_id(self) -> bytes:
        return self._local_cid

    @property
    def peer_certificate(self) -> Any:
        return getattr(self._conn.tls, "_peer_certificate", None)

    def connect(self, addr: Any, now: float) -> None:
        self._conn.connect(addr, now)
        self._peer_address = addr
        self._pump()

    def receive_datagram(self, data: bytes, addr: Any, now: float) -> None:
        self._conn.receive_datagram(data, addr, now)
        self._pump()

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Any]]:
        datagrams = self._conn.datagrams_to_send(now)
        self._pump()
        return datagrams

    def get_timer(self) -> float | None:
        if self._conn._state is QuicConnectionState.TERMINATED:
            return None
        return self._conn.get_timer()

    def handle_timer(self, now: float) -> None:
        self._conn.handle_timer(now)
        self._pump()

    def next_event(self) -> ev.Event | None:
        try:
            return self._events.popleft()
        except IndexError:
            return None

    def get_next_available_stream_id(self, is_unidirectional: bool = False) -> int:
        return self._conn.get_next_available_stream_id(is_unidirectional=is_unidirectional)

    def send_stream_data(self, stream_id: int, data: bytes, end_stream: bool = False) -> None:
        self._conn.send_stream_data(stream_id, data, end_stream)
        if data:
            self._written[stream_id] = self._written.get(stream_id, 0) + len(data)

    def reset_stream(self, stream_id: int, error_code: int) -> None:
        self._conn.reset_stream(stream_id, error_code)

    def stop_sending(self, stream_id: int, error_code: int) -> None:
        try:
            self._conn.stop_stream(stream_id, error_code)
        except ValueError:
            pass  # aioquic already discarded the stream: nothing left to stop

    def send_datagram_frame(self, data: bytes) -> None:
        self._conn.send_datagram_frame(data)

    def close(self, error_code: int = 0, reason_phrase: str = "") -> None:
        self._closing_by_us = True
        self._conn.close(error_code=error_code, reason_phrase=reason_phrase)
        self._pump()

    def statistics(self) -> Any:
        loss = self._conn._loss
        return types.SimpleNamespace(
            smoothed_rtt=loss._rtt_smoothed,
            congestion_window=loss.congestion_window,
            bytes_in_flight=loss.bytes_in_flight,
        )

    def request_key_update(self) -> None:
        self._conn.request_key_update()

    def change_connection_id(self) -> None:
        self._conn.change_connection_id()

    def migrate(self, *, dry_run: bool = False) -> None:
        if not dry_run:  # aioquic: a fresh connection ID is the whole step
            self._conn.change_connection_id()

    def stream_send_capacity(self, stream_id: int) -> int:
        stream = self._conn._streams.get(stream_id)
        if stream is None:
            return 0
        credit = stream.max_stream_data_remote
        return max(0, credit + ALLOWANCE - self._written.get(stream_id, 0))

    def consume_stream_data(self, stream_id: int, n: int) -> None:
        self._consumed[stream_id] = self._consumed.get(stream_id, 0) + n
        self._consumed_total += n

    # -- conversion ---------------------------------------------------------------------------

    def _pump(self) -> None:
        conn = self._conn
        events = self._events
        while (event := conn.next_event()) is not None:
            converted = _convert(event)
            if converted is not None:
                events.append(converted)
        address = conn.get_peer_address()
        if self._peer_address is None:
            self._peer_address = address
        elif address is not None and address != self._peer_address:
            events.append(ev.PathChanged(old_address=self._peer_address, new_address=address))
            self._peer_address = address
        if not self._terminated and conn._close_event is not None:
            self._terminated = True
            close = conn._close_event
            state = conn._state
            if state is QuicConnectionState.DRAINING:
                by_peer = True
            elif self._closing_by_us:
                by_peer = False
            else:
                # TERMINATED without a close frame: idle timeout, no viable path ...
                by_peer = state is QuicConnectionState.TERMINATED
            events.append(
                ev.ConnectionTerminated(
                    error_code=close.error_code,
                    frame_type=close.frame_type,
                    reason_phrase=close.reason_phrase,
                    by_peer=by_peer,
                    application=close.frame_type is None,
                )
            )


def _convert(event: aq_events.QuicEvent) -> ev.Event | None:
    match event:
        case aq_events.StreamDataReceived():
            return ev.StreamDataReceived(
                stream_id=event.stream_id, data=event.data, end_stream=event.end_stream
            )
        case aq_events.DatagramFrameReceived():
            return ev.DatagramFrameReceived(data=event.data)
        case aq_events.StreamReset():
            return ev.StreamReset(stream_id=event.stream_id, error_code=event.error_code)
        case aq_events.StopSendingReceived():
            return ev.StopSendingReceived(stream_id=event.stream_id, error_code=event.error_code)
        case aq_events.HandshakeCompleted():
            return ev.HandshakeCompleted(
                alpn_protocol=event.alpn_protocol,
                session_resumed=event.session_resumed,
                early_data_accepted=event.early_data_accepted,
            )
        case aq_events.ConnectionIdIssued():
            return ev.ConnectionIdIssued(connection_id=event.connection_id)
        case aq_events.ConnectionIdRetired():
            return ev.ConnectionIdRetired(connection_id=event.connection_id)
        case aq_events.PingAcknowledged():
            return ev.PingAcknowledged(uid=event.uid)
    return None  # ProtocolNegotiated; ConnectionTerminated is synthesised in _pump
