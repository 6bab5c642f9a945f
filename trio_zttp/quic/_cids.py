"""Connection IDs: the ones we issue and the ones the peer gave us (RFC 9000 §5.1, §10.3).

Our connection IDs carry stateless reset tokens derived from a static key
(``HMAC(key, cid)[:16]``), so an endpoint that lost a connection's state can still answer
its packets with a valid stateless reset.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Final, final

from .._tls.suites import hmac_digest
from ._errors import ConnectionIdLimitError, ProtocolViolation

__all__ = ["LocalConnectionIds", "PeerConnectionIds", "encode_stateless_reset",
           "parse_new_connection_id", "stateless_reset_token"]

#: The most connection IDs we keep issued at once, whatever the peer's limit: three spares for
#: migration.  Each costs a NEW_CONNECTION_ID, a reset token and a route per connection, and
#: the bound caps routing-table growth per connection.
MAX_ISSUED = 4
#: The most retired-but-unacknowledged RETIRE_CONNECTION_ID frames we queue.
MAX_PENDING_RETIRES = 64


def parse_new_connection_id(buf: memoryview, pos: int) -> tuple[int, int, bytes, bytes, int] | None:
    """A NEW_CONNECTION_ID frame body whose Sequence Number and Retire Prior To take one byte
    each (the frames of all but very long-lived connections), decoded inline.

    Args:
        buf: the packet payload.
        pos: just after the frame type.

    Returns:
        ``(sequence_number, retire_prior_to, connection_id, stateless_reset_token, new_pos)``
        as :func:`~._frame_codec.decode_frame_body` would give them, or None for any other
        frame (longer fields, a malformed or truncated frame): the caller then decodes it the
        general way, which raises the coded errors.
    """
    if pos + 3 > len(buf):
        return None
    sequence = buf[pos]
    retire_prior_to = buf[pos + 1]
    length = buf[pos + 2]
    start = pos + 3
    end = start + length + 16
    if sequence >= 0x40 or retire_prior_to > sequence or not 1 <= length <= 20 \
            or end > len(buf):
        return None
    return (sequence, retire_prior_to, bytes(buf[start:start + length]),
            bytes(buf[start + length:end]), end)


def stateless_reset_token(key: bytes, cid: bytes) -> bytes:
    """The stateless reset token for ``cid`` under the static ``key``."""
    return hmac_digest(key, cid, "sha256")[:16]


def encode_stateless_reset(key: bytes, cid: bytes, trigger_length: int,
                           random_bytes: Callable[[int], bytes]) -> bytes | None:
    """A Stateless Reset answering a packet of ``trigger_length`` bytes sent to ``cid``
    (RFC 9000 §10.3).

    Endpoints send it for short-header packets whose connection they do not know; ``key`` is
    the ``Configuration.stateless_reset_key`` the connection used, so the token matches. The
    reset is one byte shorter than the packet that triggered it (so two endpoints cannot
    loop), at most 43 bytes, and looks like a short-header packet.

    Returns:
        The datagram, or None when the trigger is too short to answer (below 22 bytes).
    """
    length = min(trigger_length - 1, 43)
    if length < 21:
        return None
    first = (random_bytes(1)[0] & 0x3F) | 0x40
    return bytes((first,)) + random_bytes(length - 17) + stateless_reset_token(key, cid)


@final
class LocalConnectionIds:
    """Connection IDs we issued: sequence numbers, reset tokens, retirement."""

    __slots__ = ("_length", "_random", "_reset_key", "_by_seq", "_next_seq", "_retire_prior_to",
                 "issued", "retired")

    def __init__(self, *, length: int, random_bytes: Callable[[int], bytes], reset_key: bytes,
                 initial: bytes | None = None) -> None:
        self._length = length
        self._random = random_bytes
        self._reset_key = reset_key
        self._by_seq: dict[int, bytes] = {}
        self._next_seq = 0
        self._retire_prior_to = 0
        #: (sequence, cid, token) to announce in NEW_CONNECTION_ID frames, drained by the caller.
        self.issued: list[tuple[int, bytes, bytes]] = []
        #: CIDs no longer routing to us, drained by the caller (endpoint routing table).
        self.retired: list[bytes] = []
        self._add(initial if initial is not None else self._random(length))
        self.issued.clear()  # sequence 0 travels in the long header, not a frame

    def _add(self, cid: bytes) -> tuple[int, bytes, bytes]:
        seq = self._next_seq
        self._next_seq += 1
        self._by_seq[seq] = cid
        entry = (seq, cid, stateless_reset_token(self._reset_key, cid))
        self.issued.append(entry)
        return entry

    def issue_unannounced(self) -> tuple[int, bytes, bytes]:
        """A new CID that travels elsewhere than in NEW_CONNECTION_ID (preferred_address)."""
        entry = self._add(self._random(self._length))
        self.issued.remove(entry)
        return entry

    @property
    def initial(self) -> bytes:
        """The CID with sequence 0 (the SCID of our long-header packets while it lives)."""
        return self._by_seq.get(0, b"") or self.current

    @property
    def current(self) -> bytes:
        """Our lowest-sequence live CID."""
        return self._by_seq[min(self._by_seq)] if self._by_seq else b""

    @property
    def all(self) -> list[bytes]:
        """Every live CID (each routes to this connection)."""
        return list(self._by_seq.values())

    def owns(self, cid: bytes) -> bool:
        return cid in self._by_seq.values()

    def replenish(self, peer_limit: int) -> None:
        """Issue new CIDs until the peer holds ``min(peer_limit, MAX_ISSUED)`` of them."""
        if self._length == 0:
            return
        while len(self._by_seq) < min(peer_limit, MAX_ISSUED):
            self._add(self._random(self._length))

    def retire(self, sequence: int, packet_dcid: bytes) -> None:
        """The peer sent RETIRE_CONNECTION_ID(``sequence``) in a packet sent to ``packet_dcid``."""
        if sequence >= self._next_seq:
            raise ProtocolViolation("retired a connection ID never issued")
        cid = self._by_seq.get(sequence)
        if cid is None:
            return  # already retired: duplicates are harmless
        if cid == packet_dcid:
            raise ProtocolViolation("retired the connection ID the packet was sent to")
        del self._by_seq[sequence]
        self.retired.append(cid)

    def token_for(self, cid: bytes) -> bytes:
        return stateless_reset_token(self._reset_key, cid)


#: The sequence number of the connection ID in a server's preferred_address (RFC 9000 §5.1.1).
PREFERRED_SEQUENCE: Final = 1


@final
class PeerConnectionIds:
    """Connection IDs the peer gave us: the one in use, spares, and retirement (§5.1.2)."""

    __slots__ = ("_limit", "_by_seq", "_retire_prior_to", "_current_seq", "_used", "current",
                 "pending_retire", "reserved", "zero_length")

    def __init__(self, *, initial: bytes, limit: int) -> None:
        self._limit = limit
        #: sequence -> (cid, stateless reset token or None)
        self._by_seq: dict[int, tuple[bytes, bytes | None]] = {0: (initial, None)}
        self._retire_prior_to = 0
        self._current_seq = 0
        self._used = {0}  # sequences we sent packets with (their reset tokens count)
        #: The DCID to put on packets we send (kept as the current sequence changes).
        self.current = initial
        #: sequence numbers to send in RETIRE_CONNECTION_ID frames.
        self.pending_retire: list[int] = []
        #: A sequence set aside for probing another server address (the preferred address's,
        #: RFC 9000 §9.6.1): :meth:`rotate` does not take it.
        self.reserved: int | None = None
        self.zero_length = not initial

    def replace_initial(self, cid: bytes) -> None:
        """Client: the server chose its own CID (first Initial/Retry); sequence 0 changes."""
        self._by_seq[0] = (cid, self._by_seq[0][1])
        self.zero_length = not cid
        self.current = self._by_seq[self._current_seq][0]

    def set_initial_token(self, token: bytes) -> None:
        """The server's stateless_reset_token transport parameter belongs to sequence 0."""
        if 0 in self._by_seq:
            self._by_seq[0] = (self._by_seq[0][0], token)

    def add(self, sequence: int, cid: bytes, token: bytes, retire_prior_to: int) -> None:
        """Handle NEW_CONNECTION_ID."""
        if self.zero_length:
            raise ProtocolViolation("NEW_CONNECTION_ID while using zero-length connection IDs")
        known = self._by_seq.get(sequence)
        if known is not None:
            if known[0] != cid or (known[1] is not None and known[1] != token):
                raise ProtocolViolation("sequence number reused for a different connection ID")
            return
        for other in self._by_seq.values():  # (sequence is not among them)
            if other[0] == cid:
                raise ProtocolViolation("connection ID reused with a different sequence number")
        if sequence < self._retire_prior_to:
            # already retired by an earlier retire_prior_to: retire it at once (§19.15)
            self._queue_retire(sequence)
            return
        self._by_seq[sequence] = (cid, token)
        if retire_prior_to > self._retire_prior_to:
            self._retire_prior_to = retire_prior_to
            for seq in sorted(s for s in self._by_seq if s < retire_prior_to):
                del self._by_seq[seq]
                self._used.discard(seq)
                self._queue_retire(seq)
                if seq == self.reserved:
                    self.reserved = None  # (the probe that kept it ends)
            if self._current_seq < retire_prior_to:
                reserved = self.reserved
                self._current_seq = min((s for s in self._by_seq if s != reserved),
                                        default=min(self._by_seq))
                if self._current_seq == reserved:
                    self.reserved = None  # (the probe that kept it ends)
                self._used.add(self._current_seq)
                self.current = self._by_seq[self._current_seq][0]
        if len(self._by_seq) > self._limit:
            raise ConnectionIdLimitError("peer exceeded active_connection_id_limit")

    def _queue_retire(self, sequence: int) -> None:
        if len(self.pending_retire) >= MAX_PENDING_RETIRES:
            raise ConnectionIdLimitError("too many connection IDs to retire")
        self.pending_retire.append(sequence)

    def has_spare(self) -> bool:
        """Whether :meth:`rotate` would find an unused peer CID."""
        current = self._current_seq
        reserved = self.reserved
        return any(s > current and s != reserved for s in self._by_seq)

    def rotate(self) -> bool:
        """Switch to the next unused peer CID, retiring the current one; False if none spare."""
        reserved = self.reserved
        spares = sorted(s for s in self._by_seq if s > self._current_seq and s != reserved)
        if not spares:
            return False
        return self.switch_to(spares[0])

    def spare_sequence(self) -> int | None:
        """The sequence :meth:`rotate` would take, or None."""
        current = self._current_seq
        reserved = self.reserved
        return min((s for s in self._by_seq if s > current and s != reserved), default=None)

    def cid_for(self, sequence: int) -> bytes | None:
        """The connection ID of ``sequence``, or None once it is retired."""
        entry = self._by_seq.get(sequence)
        return None if entry is None else entry[0]

    def switch_to(self, sequence: int) -> bool:
        """Use ``sequence`` from now on, retiring the current one; False if it is retired."""
        if sequence not in self._by_seq or sequence == self._current_seq:
            return False
        old = self._current_seq
        self._current_seq = sequence
        self.current = self._by_seq[sequence][0]
        if self.reserved == sequence:
            self.reserved = None
        self._used.add(sequence)
        self._used.discard(old)
        del self._by_seq[old]
        self._queue_retire(old)
        return True

    def mark_used(self, sequence: int) -> None:
        """Packets go out with ``sequence`` (a probe's): its reset token counts from now on."""
        self._used.add(sequence)

    def retire(self, sequence: int) -> None:
        """Give up an unused ``sequence`` (a failed probe used it: never again, §9.5)."""
        if self.reserved == sequence:
            self.reserved = None
        if sequence in self._by_seq and sequence != self._current_seq:
            del self._by_seq[sequence]
            self._used.discard(sequence)
            self._queue_retire(sequence)

    def is_stateless_reset(self, datagram: bytes | memoryview) -> bool:
        """True if the datagram ends with a reset token of one of the peer's CIDs we used
        (§10.3.1: never the token of a connection ID not used yet)."""
        if len(datagram) < 21:
            return False
        tail = bytes(datagram[-16:])
        used = self._used
        return any(tok is not None and seq in used and hmac.compare_digest(tok, tail)
                   for seq, (_cid, tok) in self._by_seq.items())
