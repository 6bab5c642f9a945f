"""Connection-ID bookkeeping (RFC 9000 §5.1, §19.15, §19.16, §10.3)."""

from __future__ import annotations

import itertools
import random

import pytest

from trio_zttp._buffer import encode_varint
from trio_zttp.quic._cids import (
    LocalConnectionIds,
    PeerConnectionIds,
    parse_new_connection_id,
    stateless_reset_token,
)
from trio_zttp.quic._errors import (
    ConnectionIdLimitError,
    FrameEncodingError,
    ProtocolViolation,
    TransportErrorCode,
)
from trio_zttp.quic._frame_codec import decode_frame_body
from trio_zttp.quic._frames import NewConnectionIdFrame


def counter_bytes() -> object:
    counter = itertools.count(1)
    return lambda n: next(counter).to_bytes(n, "big")


def test_cids_local_replenish_issues_up_to_peer_limit() -> None:
    local = LocalConnectionIds(length=8, random_bytes=counter_bytes(), reset_key=b"k" * 32)  # type: ignore[arg-type]
    assert local.issued == []
    local.replenish(4)
    assert [seq for seq, _cid, _tok in local.issued] == [1, 2, 3]
    for _seq, cid, token in local.issued:
        assert token == stateless_reset_token(b"k" * 32, cid)
        assert local.owns(cid)
    assert len(local.all) == 4


def test_cids_local_retire_rules() -> None:
    local = LocalConnectionIds(length=8, random_bytes=counter_bytes(), reset_key=b"k" * 32)  # type: ignore[arg-type]
    local.replenish(3)
    first = local.current
    with pytest.raises(ProtocolViolation):
        local.retire(9, b"")
    with pytest.raises(ProtocolViolation):
        local.retire(0, first)  # the CID this very packet was sent to
    local.retire(0, b"other")
    assert local.retired == [first]
    local.retire(0, b"other")  # duplicate retire is harmless
    assert local.retired == [first]
    assert not local.owns(first)


def test_cids_peer_retire_prior_to_and_limit() -> None:
    peer = PeerConnectionIds(initial=b"\x00" * 8, limit=3)
    peer.add(1, b"\x01" * 8, b"t1" * 8, 0)
    peer.add(2, b"\x02" * 8, b"t2" * 8, 2)
    assert peer.pending_retire == [0, 1]
    assert peer.current == b"\x02" * 8
    peer.add(1, b"\x09" * 8, b"t9" * 8, 0)  # below retire_prior_to: retired at once
    assert peer.pending_retire == [0, 1, 1]
    peer.add(3, b"\x03" * 8, b"t3" * 8, 0)
    peer.add(4, b"\x04" * 8, b"t4" * 8, 0)
    with pytest.raises(ConnectionIdLimitError) as info:
        peer.add(5, b"\x05" * 8, b"t5" * 8, 0)
    assert info.value.error_code == TransportErrorCode.CONNECTION_ID_LIMIT_ERROR


def test_cids_peer_sequence_reuse_is_violation() -> None:
    peer = PeerConnectionIds(initial=b"\x00" * 8, limit=4)
    peer.add(1, b"\x01" * 8, b"a" * 16, 0)
    peer.add(1, b"\x01" * 8, b"a" * 16, 0)  # exact repeat is fine
    with pytest.raises(ProtocolViolation):
        peer.add(1, b"\x07" * 8, b"a" * 16, 0)
    with pytest.raises(ProtocolViolation):
        peer.add(2, b"\x01" * 8, b"b" * 16, 0)


def test_cids_peer_zero_length_rejects_new_cids() -> None:
    peer = PeerConnectionIds(initial=b"", limit=4)
    with pytest.raises(ProtocolViolation):
        peer.add(1, b"\x01" * 8, b"a" * 16, 0)


def test_cids_peer_rotate_and_stateless_reset_detection() -> None:
    peer = PeerConnectionIds(initial=b"\x00" * 8, limit=4)
    assert not peer.rotate()
    peer.add(1, b"\x01" * 8, b"R" * 16, 0)
    assert peer.rotate()
    assert peer.current == b"\x01" * 8 and peer.pending_retire == [0]
    assert peer.is_stateless_reset(b"\x40" + b"x" * 20 + b"R" * 16)
    assert not peer.is_stateless_reset(b"\x40" + b"x" * 20 + b"Q" * 16)
    assert not peer.is_stateless_reset(b"R" * 16)  # too short to be a reset


def _general_new_connection_id(buf: bytes) -> tuple[int, int, bytes, bytes, int] | None:
    try:
        frame, pos = decode_frame_body(memoryview(buf), 1, 0x18)
    except FrameEncodingError:
        return None
    assert isinstance(frame, NewConnectionIdFrame)
    return (frame.sequence_number, frame.retire_prior_to, frame.connection_id,
            frame.stateless_reset_token, pos)


@pytest.mark.parametrize("seed", range(20))
def test_cids_new_connection_id_fast_parse_agrees_with_decode_frame_body(seed: int) -> None:
    """parse_new_connection_id (the receive loop's shortcut) gives what the general decoder
    gives, takes every frame with one-byte fields, and leaves every other body (malformed,
    truncated at any byte, longer fields) to the general decoder."""
    rng = random.Random(seed)
    taken = 0
    for _ in range(50):
        sequence = rng.choice((0, 1, 7, 63, 64, 300, 2**40))
        retire = rng.choice((0, 1, sequence, sequence + 1, rng.randrange(sequence + 1)))
        length = rng.choice((0, 1, 8, 20, 21))
        buf = bytearray(b"\x18" + encode_varint(sequence) + encode_varint(retire)
                        + bytes((length,)) + rng.randbytes(length) + rng.randbytes(16)
                        + rng.randbytes(rng.choice((0, 3))))
        if rng.random() < 0.2:
            buf[rng.randrange(1, len(buf))] = rng.randrange(256)
        for end in range(1, len(buf) + 1):
            body = bytes(buf[:end])
            fast = parse_new_connection_id(memoryview(body), 1)
            general = _general_new_connection_id(body)
            if fast is not None:
                taken += 1
                assert fast == general
            elif general is not None:
                # only frames with a field of more than one byte go the general way
                assert general[0] >= 0x40 or body[1] >= 0x40 or body[2] >= 0x40
    assert taken > 5


def test_peer_ids_stay_bounded_when_retire_prior_to_keeps_advancing() -> None:
    """A peer that keeps issuing IDs while retiring all earlier ones moves our current ID
    each time: what we remember about used IDs (for stateless-reset tokens) must not grow
    (found by a fuzz campaign: one set entry per frame, forever)."""
    ids = PeerConnectionIds(initial=b"\x00" * 8, limit=4)
    for sequence in range(1, 20_000):
        ids.add(sequence, sequence.to_bytes(8, "big"), bytes(16), sequence)
        ids.pending_retire.clear()  # (sent in RETIRE_CONNECTION_ID frames)
    assert ids.current == (19_999).to_bytes(8, "big")
    assert len(ids._used) <= 4  # type: ignore[attr-defined]
