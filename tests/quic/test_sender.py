"""The sender's 1-RTT fast path (``_build_short_datagrams``) against the general sending loop.

``build_datagrams`` sends an established connection's ACK, DATAGRAM and STREAM frames through
``_build_short``; ``_build_datagrams`` can send the same packets the general way.  Two runs of
the same seeded exchange, one with each, must seal the same plaintext packets (header, frames,
packet number) in the same order: a divergence in the fast path fails here.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from tests.quic import conn_helpers as H
from trio_zttp.quic import _connection, _sender
from trio_zttp.quic._connection import Connection
from trio_zttp.quic._crypto import PacketSealer
from trio_zttp.quic._frame_codec import decode_frames
from trio_zttp.quic._frames import CryptoFrame, NewConnectionIdFrame, NewTokenFrame

CLIENT_ADDR = ("1.2.3.4", 1000)
SERVER_ADDR = ("5.6.7.8", 443)


def _frames(payload: bytes) -> list[Any]:
    # connection IDs, reset tokens, address tokens and session tickets depend on where the
    # handshake leaves the random stream and on the TLS keys, which vary from run to run:
    # only their sequence numbers, offsets and sizes are compared
    frames: list[Any] = []
    for frame in decode_frames(payload):
        if isinstance(frame, NewConnectionIdFrame):
            frames.append((NewConnectionIdFrame, frame.sequence_number))
        elif isinstance(frame, NewTokenFrame):
            frames.append(NewTokenFrame)
        elif isinstance(frame, CryptoFrame):
            frames.append((CryptoFrame, frame.offset, len(frame.data)))
        else:
            frames.append(frame)
    return frames


def _general_build(conn: Any, now: float) -> list[tuple[bytes, Any]]:
    out: list[tuple[bytes, Any]] = []
    path = conn._paths.current
    if path is not None:
        _sender._build_datagrams(conn, now, path, out)
    return out


def _run(seed: int, monkeypatch: pytest.MonkeyPatch, *, fast: bool) -> list[tuple[Any, ...]]:
    """A seeded exchange of datagrams and streams; the plaintext of every packet sealed."""
    sealed: list[tuple[Any, ...]] = []
    original_seal = PacketSealer.seal

    def seal(self: PacketSealer, header: Any, payload: Any, pn: int) -> bytes:
        sealed.append((header[0], _frames(bytes(payload)), pn))
        return original_seal(self, header, payload, pn)

    with monkeypatch.context() as patch:
        patch.setattr(PacketSealer, "seal", seal)
        if not fast:
            patch.setattr(_connection, "build_datagrams", _general_build)
        return _exchange(seed, sealed)


def _exchange(seed: int, sealed: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    rng = random.Random(seed)
    ecn = rng.random() < 0.5
    options = {"max_datagram_frame_size": 65536, "ecn": ecn, "stateless_reset_key": bytes(32)}
    client = H.ours_client(**options)
    server = H.ours_server(**options)(b"", CLIENT_ADDR)
    now = 1000.0
    client.connect(SERVER_ADDR, now=now)

    def pump(a: Connection, b: Connection, source: tuple[str, int], loss: float = 0.05) -> None:
        out = a.datagrams_to_send(now)
        codepoint = a.ecn_codepoint
        for data, _ in out:
            if rng.random() < loss:
                continue  # lost
            b.receive_datagram(data, source, now, ecn=codepoint)
        while b.next_event() is not None:
            pass

    for _ in range(12):
        pump(client, server, CLIENT_ADDR, 0.0)
        pump(server, client, SERVER_ADDR, 0.0)
        now += 0.001
    assert client._handshake_confirmed
    start = len(sealed)
    streams: list[int] = []
    for _ in range(60):
        side = client if rng.random() < 0.6 else server
        action = rng.random()
        if action < 0.35:
            for _ in range(rng.randrange(1, 4)):
                side.send_datagram_frame(rng.randbytes(rng.choice((1, 50, 63, 64, 300, 1100))))
        elif action < 0.7:
            if not streams or rng.random() < 0.3:
                streams.append(client.get_next_available_stream_id())
                side = client
            stream_id = rng.choice(streams)
            size = rng.choice((0, 1, 40, 100, 1000, 3000, 20000))
            try:
                side.send_stream_data(stream_id, rng.randbytes(size),
                                      end_stream=rng.random() < 0.3)
            except Exception:
                streams.remove(stream_id)  # ended already: forget it
        for _ in range(rng.randrange(1, 3)):
            pump(client, server, CLIENT_ADDR)
            pump(server, client, SERVER_ADDR)
            now += rng.choice((0.0, 0.0002, 0.003, 0.03))
            for conn in (client, server):
                timer = conn.get_timer()
                if timer is not None and timer <= now:
                    conn.handle_timer(now)
    return sealed[start:]


@pytest.mark.parametrize("seed", range(12))
def test_sender_fast_path_seals_what_the_general_loop_seals(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast = _run(seed, monkeypatch, fast=True)
    general = _run(seed, monkeypatch, fast=False)
    assert len(fast) > 50
    assert fast == general


def test_sender_comparison_notices_a_different_packet(monkeypatch: pytest.MonkeyPatch) -> None:
    # the comparison above can fail: a fast path that pads its packets differs at once
    original = _sender._build_short

    def padded(conn: Any, now: float, budget: int, can_elicit: bool) -> bytes | None:
        conn._ack_only_sent = _sender.ACK_ONLY_BEFORE_PING  # every ACK-only packet pings
        return original(conn, now, budget, can_elicit)

    general = _run(3, monkeypatch, fast=False)
    monkeypatch.setattr(_sender, "_build_short", padded)
    assert _run(3, monkeypatch, fast=True) != general
