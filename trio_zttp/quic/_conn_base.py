"""The state every part of :class:`~._connection.Connection` shares, declared once.

The connection is one class assembled from mixins, each in its own module (handshake,
lifecycle, control); this base declares the attributes they share and the methods they call
across module boundaries, so each mixin type-checks on its own.
"""

from __future__ import annotations

import enum
from collections import deque
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .._tls.handshake import Handshake
    from .._tls.suites import Epoch
    from ._cids import LocalConnectionIds, PeerConnectionIds
    from ._config import Configuration
    from ._crypto import PacketOpener, PacketSealer
    from ._ecn import EcnValidator
    from ._errors import TransportError
    from ._events import Event
    from ._params import PreferredAddress, TransportParameters
    from ._paths import Path, PathManager
    from ._qlog import QlogTracer
    from ._recovery import LossRecovery
    from ._spaces import PacketSpace
    from ._stream_manager import StreamManager

__all__ = ["ConnectionBase", "State"]


class State(enum.Enum):
    """Where a connection is in its life (RFC 9000 §10)."""

    FIRSTFLIGHT = "firstflight"
    CONNECTED = "connected"
    CLOSING = "closing"
    DRAINING = "draining"
    TERMINATED = "terminated"


_FIRSTFLIGHT = State.FIRSTFLIGHT
_CONNECTED = State.CONNECTED


class ConnectionBase:
    """Attribute declarations and cross-module method signatures (no behaviour)."""

    # identity and configuration
    _config: Configuration
    _is_client: bool
    _events: deque[Event]
    _now: float
    _state: State
    _version: int
    _first_version: int
    _max_datagram_size: int

    # connection IDs and tokens
    _local_cids: LocalConnectionIds
    _local_cid_length: int
    _peer_cids: PeerConnectionIds
    _original_dcid: bytes
    _initial_dcid: bytes
    _retry_scid: bytes | None
    _retry_received: bool
    _peer_initial_scid: bytes | None
    _token: bytes
    _new_cids: list[tuple[int, bytes, bytes]]
    _new_token_pending: bytes | None
    _address_validated: bool

    # TLS, keys, transport parameters
    _tls: Handshake | None
    _tls_started: bool
    _pending_client_hello: bytearray
    _pending_stateless: list[tuple[bytes, Any]]
    _peer_params: TransportParameters | None
    _peer_params_raw: bytes | None
    _handshake_complete: bool
    _handshake_confirmed: bool
    _handshake_done_pending: bool
    _early_data_sent: bool
    _received_server_packet: bool
    _spaces: tuple[PacketSpace, PacketSpace, PacketSpace]
    _zero_rtt_sealer: PacketSealer | None
    _zero_rtt_opener: PacketOpener | None
    _zero_rtt_opener_deadline: float | None
    _zero_rtt_dropped: int
    _other_initial_openers: dict[int, PacketOpener]
    _previous_opener: PacketOpener | None
    _previous_opener_deadline: float | None
    _next_opener: PacketOpener | None
    _key_phase_first_received: int
    _key_phase_first_sent: int
    _key_update_requested: bool
    _key_updates: int
    _decryption_failures: int
    _discard_initial_after_send: bool

    # recovery, streams, paths
    _recovery: LossRecovery
    _streams: StreamManager
    _paths: PathManager
    _previous_path: Path | None
    _preferred_probe: Path | None
    _preferred_param: PreferredAddress | None
    _moved_to_preferred: bool
    _vn_received: bool
    _path_dcid: bytes | None
    _probe_sequence: int | None
    _local_max_ack_delay: float
    _ack_delay_exponent: int
    _peer_ack_delay_exponent: int
    _pacing_at: float | None
    _datagrams: deque[bytes]
    _datagrams_dropped: int
    _ping_pending: bool
    _ping_uids: list[int]
    _ack_only_sent: int

    # ECN (RFC 9000 §13.4): the validator of what we send, whether the batch being built is
    # marked, and the codepoint of the datagram being received
    _ecn: EcnValidator
    _ecn_mark: bool
    _rx_ecn: int

    # timers and closing
    _idle_timeout: float
    _idle_floor: float
    _idle_deadline: float | None
    _idle_restart_on_send: bool
    _last_activity: float
    _keep_alive_interval: float | None
    _close_deadline: float | None
    _close_frames: dict[Epoch, bytes]
    _close_pending: bool
    _close_count: int
    _close_received: int

    # the packet being processed
    _rx_epoch: Epoch
    _rx_path: Path
    _rx_dcid: bytes

    # observability
    _internal_errors: list[BaseException]
    _qlog: QlogTracer | None
    _stats_packets_received: int
    _stats_packets_sent: int
    _stats_packets_lost: int
    _stats_bytes_sent: int
    _stats_datagrams_received: int

    # -- methods one mixin calls on another ---------------------------------------------------

    @property
    def _is_open(self) -> bool:
        state = self._state
        return state is _FIRSTFLIGHT or state is _CONNECTED

    def _close_on_error(self, exc: TransportError, now: float) -> None:
        raise NotImplementedError

    def _discard_space(self, index: int, now: float) -> None:
        raise NotImplementedError

    def _on_records_lost(self, records: list[Any], epoch: Epoch, *, probe: bool = False
                         ) -> None:
        raise NotImplementedError

    def _arm_idle(self, now: float) -> None:
        raise NotImplementedError

    def _start_qlog(self, now: float) -> None:
        raise NotImplementedError

    def _issue_connection_ids(self) -> None:
        raise NotImplementedError

    def _qlog_packet(self, now: float, name: str, epoch: Epoch, pn: int, size: int,
                     records: list[Any] | None = None) -> None:
        raise NotImplementedError

    def _qlog_metrics(self, now: float) -> None:
        raise NotImplementedError

    def _qlog_lost(self, now: float, epoch: Epoch, pn: int, trigger: str) -> None:
        raise NotImplementedError

    def _on_path_validation_failed(self, path: Path, now: float) -> None:
        raise NotImplementedError

    def _probe_preferred_address(self, now: float) -> None:
        raise NotImplementedError

    def _start_close(self, code: int, frame_type: int | None, reason: str, *,
                     application: bool) -> None:
        raise NotImplementedError

    def _update_send_key(self) -> None:
        raise NotImplementedError

    def _on_packet_sent(self, epoch: Epoch, pn: int, size: int, ack_eliciting: bool,
                        records: list[Any], now: float) -> None:
        raise NotImplementedError

    def _after_datagram_sent(self, now: float) -> None:
        raise NotImplementedError
