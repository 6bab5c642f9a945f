"""ECN end to end in the sans-IO core (RFC 9000 §13.4, RFC 9002 §7.1 / §B.7, RFC 3168).

Two of our connections run through the pair driver, whose links carry each datagram's ECN
codepoint and can rewrite it or mark CE (a middlebox, a marking router).  What goes on the
wire is read back by decrypting it (:class:`~tests.quic.ecn_helpers.Wire`); what each side
concluded, through ``statistics()``.  Frames the peer never sends (decreasing counts, counts
for packets never sent) are forged from the key log.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.quic.conn_helpers import (
    Forger,
    KeyLog,
    client_config,
    handshake,
    ours_client,
    ours_server,
    server_config,
    transfer,
)
from tests.quic.ecn_helpers import SUITE, Wire
from trio_zttp import quic
from trio_zttp._buffer import encode_varint as v
from trio_zttp.quic import EcnState
from trio_zttp.quic._frames import AckFrame
from trio_zttp.testing import EcnRewrite, LinkConditions, Pair

DELAY = 0.01
INITIAL, HANDSHAKE, APPLICATION = 0, 1, 2


def _pair(*, client: dict[str, Any] | None = None, server: dict[str, Any] | None = None,
          up: LinkConditions | None = None, down: LinkConditions | None = None,
          wire: bool = False) -> tuple[Pair, Wire]:
    keylog = KeyLog()
    client_options = {"secrets_log_file": keylog, "cipher_suites": [SUITE],
                      **(client or {})}
    server_options = {"secrets_log_file": keylog, "cipher_suites": [SUITE], **(server or {})}
    observer = Wire(keylog)
    pair = Pair(ours_client(client_config(**client_options)),  # type: ignore[arg-type]
                ours_server(server_config(**server_options)),
                client_to_server=up or LinkConditions(delay=DELAY),
                server_to_client=down or LinkConditions(delay=DELAY),
                tap=observer if wire else None)
    return pair, observer


def _stats(conn: object) -> quic.ConnectionStatistics:
    assert isinstance(conn, quic.Connection)
    return conn.statistics()


def _rewrite(fn: EcnRewrite) -> LinkConditions:
    return LinkConditions(delay=DELAY, ecn_rewrite=fn)


def _first_space(datagram: bytes) -> int:
    if not datagram[0] & 0x80:
        return APPLICATION
    return {0: INITIAL, 2: HANDSHAKE}.get((datagram[0] >> 4) & 3, APPLICATION)


# -- the API ----------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [4, -1, 255, None, 2.0, True, "2"])
def test_ecn_receive_datagram_rejects_a_bad_codepoint(bad: object) -> None:
    conn = ours_client()
    conn.connect(("10.0.0.2", 4433), 0.0)
    with pytest.raises(ValueError, match="ECN codepoint"):
        conn.receive_datagram(b"\x40" * 50, ("10.0.0.2", 4433), 0.1, ecn=bad)  # type: ignore


def test_ecn_codepoint_is_ect0_while_testing_and_not_ect_when_disabled() -> None:
    marking = ours_client()
    marking.connect(("10.0.0.2", 4433), 0.0)
    assert marking.datagrams_to_send(0.0)
    assert marking.ecn_codepoint == 2
    assert marking.statistics().ecn_state == EcnState.TESTING == "testing"
    plain = ours_client(client_config(ecn=False))
    plain.connect(("10.0.0.2", 4433), 0.0)
    assert plain.datagrams_to_send(0.0)
    assert plain.ecn_codepoint == 0
    assert plain.statistics().ecn_state == "disabled"


# -- receiving: counts per space, ACK_ECN only once marks were seen -----------------------------


def test_ecn_ack_frames_carry_counts_only_after_a_marked_packet() -> None:
    marking = False

    def mark(datagram: bytes, ecn: int, index: int) -> int:
        return 2 if marking else 0

    # the client never marks (ecn=False): the link alone decides what the server sees
    pair, wire = _pair(client={"ecn": False}, up=_rewrite(mark), wire=True)
    handshake(pair)
    transfer(pair, 20_000)
    assert all(ack.ecn_counts is None for ack in wire.acks("server"))
    marking = True
    before = len(wire.acks("server", APPLICATION))
    transfer(pair, 60_000)
    later = wire.acks("server", APPLICATION)[before:]
    with_counts = [ack for ack in later if ack.ecn_counts is not None]
    assert with_counts and with_counts[-1] is later[-1]
    marked = _stats(pair.server).ecn_ect0_received
    assert marked > 10
    assert with_counts[-1].ecn_counts == (marked, 0, 0)
    assert all(a.ecn_counts <= b.ecn_counts  # type: ignore[operator]
               for a, b in zip(with_counts, with_counts[1:], strict=False))
    assert all(ack.ecn_counts is None for space in (INITIAL, HANDSHAKE)
               for ack in wire.acks("server", space))


def test_ecn_counts_are_kept_per_packet_number_space() -> None:
    # the link gives each client datagram a codepoint by the space of its first packet, so a
    # coalesced datagram brings the same codepoint to several spaces
    codepoints = {INITIAL: 1, HANDSHAKE: 3, APPLICATION: 2}

    def codepoint(datagram: bytes) -> int:
        return codepoints[_first_space(datagram)]

    pair, wire = _pair(client={"ecn": False},
                       up=_rewrite(lambda d, ecn, i: codepoint(d)), wire=True)
    handshake(pair)
    transfer(pair, 20_000)
    checked = 0
    for space in (INITIAL, HANDSHAKE, APPLICATION):
        for ack in wire.acks("server", space):
            # a clean FIFO link: the frame counts every packet up to its largest acknowledged
            counts = [0, 0, 0, 0]
            for datagram, packets in wire.datagrams["client"]:
                for s, pn in packets:
                    if s == space and pn <= ack.ranges[0][1]:
                        counts[codepoint(datagram)] += 1
            assert ack.ecn_counts == (counts[2], counts[1], counts[3])
            checked += 1
    assert checked >= 3
    acks = wire.acks("server", APPLICATION)
    assert acks[-1].ecn_counts is not None and acks[-1].ecn_counts[1] == 1  # the coalesced one
    stats = _stats(pair.server)
    assert stats.ecn_ect1_received >= 3 and stats.ecn_ect0_received > 10


def test_ecn_duplicates_do_not_count() -> None:
    pair, _ = _pair(up=LinkConditions(delay=DELAY, duplicate=1.0))
    handshake(pair)
    transfer(pair, 50_000)
    stats = _stats(pair.server)
    assert stats.datagrams_received > stats.packets_received  # every datagram came twice
    assert stats.ecn_ect0_received + stats.ecn_ect1_received + stats.ecn_ce_received <= \
        stats.packets_received
    assert stats.ecn_ect0_received > 0
    assert _stats(pair.client).ecn_state == "capable"


# -- validation succeeds on a path that carries the marks --------------------------------------


def test_ecn_clean_path_validates_both_directions() -> None:
    pair, wire = _pair(wire=True)
    handshake(pair)
    transfer(pair, 100_000)
    transfer(pair, 100_000, upload=False)
    for side, peer in ((pair.client, pair.server), (pair.server, pair.client)):
        stats, peer_stats = _stats(side), _stats(peer)
        assert stats.ecn_state == "capable" and stats.ecn_failure is None
        assert stats.ecn_ect0_sent == stats.packets_sent  # validated at the first ACK
        assert peer_stats.ecn_ect0_received == peer_stats.packets_received
        assert stats.ecn_ce_reported == 0
    assert wire.acks("server", INITIAL)[0].ecn_counts == (1, 0, 0)


# -- validation failures (RFC 9000 §13.4.2.1) -------------------------------------------------


def _assert_failed(conn: object, reason: str) -> quic.ConnectionStatistics:
    stats = _stats(conn)
    assert stats.ecn_state == "failed"
    assert stats.ecn_failure is not None and reason in stats.ecn_failure
    return stats


def test_ecn_fails_when_acks_carry_no_counts() -> None:
    pair, _ = _pair(up=_rewrite(lambda d, ecn, i: 0))  # a middlebox clears the field
    handshake(pair)
    _assert_failed(pair.client, "without ECN counts")
    sent = _stats(pair.client).ecn_ect0_sent
    transfer(pair, 200_000)
    stats = _stats(pair.client)
    assert stats.ecn_ect0_sent == sent  # no marks after the failure
    assert _stats(pair.server).ecn_state == "capable"  # the other direction is fine


def test_ecn_fails_when_marks_are_rewritten_to_ect1() -> None:
    pair, _ = _pair(up=_rewrite(lambda d, ecn, i: 1 if ecn == 2 else ecn))
    handshake(pair)
    _assert_failed(pair.client, "ECT(1)")


def test_ecn_fails_when_counts_grow_less_than_the_marked_packets_acknowledged() -> None:
    bleaching = False
    pair, _ = _pair(up=_rewrite(lambda d, ecn, i: 0 if bleaching else ecn))
    handshake(pair)
    transfer(pair, 20_000)
    assert _stats(pair.client).ecn_state == "capable"
    bleaching = True  # the route changes: marks are cleared from now on
    transfer(pair, 50_000)
    _assert_failed(pair.client, "grew less")


def test_ecn_fails_when_every_testing_packet_is_lost() -> None:
    # a broken middlebox drops every ECT packet: the handshake gets through once testing ends
    pair, _ = _pair()
    pair.client_to_server.conditions = LinkConditions(
        delay=DELAY, drop_filter=lambda d, i: pair.client.ecn_codepoint != 0)  # type: ignore
    handshake(pair, timeout=60.0)
    stats = _assert_failed(pair.client, "lost")
    assert stats.ecn_ect0_sent > 0
    transfer(pair, 50_000)
    assert _stats(pair.client).ecn_ect0_sent == stats.ecn_ect0_sent


def _forge_ack(pair: Pair, wire: Wire, counts: tuple[int, int, int]) -> None:
    """An ACK_ECN 'from the server' for every 1-RTT packet the client sent so far."""
    pns = wire.packet_numbers("client", APPLICATION)
    forger = Forger(wire.keylog, to_client=True,
                    dcid=pair.client.local_connection_id)  # type: ignore[attr-defined]
    frame = b"\x03" + v(pns[-1]) + v(0) + v(0) + v(pns[-1] - pns[0]) + b"".join(map(v, counts))
    pair.inject("client", forger.packet(frame))
    pair.run_for(0.001)


def _capable_pair_with_unacked_packets() -> tuple[Pair, Wire, tuple[int, int, int]]:
    pair, wire = _pair(wire=True)
    handshake(pair)
    transfer(pair, 20_000)
    assert _stats(pair.client).ecn_state == "capable"
    last = wire.acks("server", APPLICATION)[-1].ecn_counts
    assert last is not None
    # hold what the client sends next, so a forged ACK frame newly acknowledges it
    pair.client_to_server.conditions = LinkConditions(drop_filter=lambda d, i: True)
    sid = pair.client.get_next_available_stream_id()  # type: ignore[attr-defined]
    pair.client.send_stream_data(sid, b"x" * 3000)  # type: ignore[attr-defined]
    pair.run_for(0.001)
    return pair, wire, last


def test_ecn_fails_when_counts_decrease() -> None:
    pair, wire, (ect0, ect1, ce) = _capable_pair_with_unacked_packets()
    _forge_ack(pair, wire, (ect0 // 2, ect1, ce))
    _assert_failed(pair.client, "decreased")


def test_ecn_fails_when_a_count_exceeds_the_packets_sent_with_it() -> None:
    pair, wire, (_, ect1, ce) = _capable_pair_with_unacked_packets()
    _forge_ack(pair, wire, (10_000, ect1, ce))
    _assert_failed(pair.client, "exceeds")


def test_ecn_consistent_forged_counts_keep_the_path_capable() -> None:
    pair, wire, (ect0, ect1, ce) = _capable_pair_with_unacked_packets()
    newly = len([pn for pn in wire.packet_numbers("client", APPLICATION)]) - ect0
    _forge_ack(pair, wire, (ect0 + newly, ect1, ce))
    stats = _stats(pair.client)
    assert stats.ecn_state == "capable", stats.ecn_failure


# -- CE: one congestion event per recovery period (RFC 9002 §7.1, §B.7) -----------------------


def _windows_while_sending(pair: Pair, size: int) -> list[int]:
    """Send ``size`` bytes from the client; its congestion window after every driver step,
    until the server has them all and the client has every ACK."""
    client = pair.client
    sid = client.get_next_available_stream_id()  # type: ignore[attr-defined]
    client.send_stream_data(sid, bytes(size), end_stream=True)  # type: ignore[attr-defined]
    original = pair.server_to_client.conditions
    # ACK frames a little apart in time, so that the client handles each in its own step
    pair.server_to_client.conditions = LinkConditions(delay=DELAY, jitter=0.0005)
    windows: list[int] = []
    start = len(pair.server_events)

    def step() -> bool:
        stats = _stats(client)
        windows.append(stats.congestion_window)
        return stats.bytes_in_flight == 0 and any(
            isinstance(e, quic.StreamDataReceived) and e.stream_id == sid and e.end_stream
            for e in pair.server_events[start:])

    try:
        pair.run_until(step, timeout=5.0)
    finally:
        pair.server_to_client.conditions = original
    return windows


def _decreases(windows: list[int]) -> list[tuple[int, int]]:
    return [(a, b) for a, b in zip(windows, windows[1:], strict=False) if b < a]


def test_ecn_ce_marks_halve_the_window_once_per_recovery_period() -> None:
    marks: set[int] = set()
    pair, _ = _pair(client={"congestion_control": "newreno"},
                    up=_rewrite(lambda d, ecn, i: 3 if i in marks and ecn else ecn))
    handshake(pair)
    transfer(pair, 300_000)
    client = _stats(pair.client)
    assert client.ecn_state == "capable" and client.packets_lost == 0
    sent = pair.client_to_server.statistics().datagrams_sent
    marks.update(range(sent + 20, sent + 26))  # six marks within one flight
    windows = _windows_while_sending(pair, 100_000)
    client = _stats(pair.client)
    assert client.ecn_ce_reported == 6 and client.packets_lost == 0
    assert _stats(pair.server).ecn_ce_received == 6
    decreases = _decreases(windows)
    assert len(decreases) == 1
    before, after = decreases[0]
    assert after == before // 2  # NewReno halves the window (RFC 9002 §B.6)
    # a later mark, in a new flight, is a new congestion event
    sent = pair.client_to_server.statistics().datagrams_sent
    marks.add(sent + 30)
    windows = _windows_while_sending(pair, 100_000)
    assert len(_decreases(windows)) == 1
    assert _stats(pair.client).ecn_ce_reported == 7


def test_ecn_random_ce_marks_reduce_the_window_like_losses_without_losing() -> None:
    pair, _ = _pair(up=LinkConditions(delay=DELAY, ce_mark=0.02))
    handshake(pair)
    transfer(pair, 1_000_000)
    stats = _stats(pair.client)
    assert stats.ecn_state == "capable"
    assert stats.packets_lost == 0
    assert stats.ecn_ce_reported == pair.client_to_server.statistics().ce_marked > 0
    clean, _ = _pair()
    handshake(clean)
    transfer(clean, 1_000_000)
    assert stats.congestion_window < _stats(clean.client).congestion_window


def test_ecn_ce_reports_are_ignored_after_validation_failed() -> None:
    force_ce = False
    # the path clears marks (validation fails), then a broken box marks everything CE
    pair, wire = _pair(up=_rewrite(lambda d, ecn, i: 3 if force_ce else 0), wire=True)
    handshake(pair)
    transfer(pair, 100_000)
    _assert_failed(pair.client, "without ECN counts")
    force_ce = True
    windows = _windows_while_sending(pair, 200_000)
    assert not _decreases(windows)
    assert _stats(pair.client).ecn_ce_reported == 0
    assert any(ack.ecn_counts and ack.ecn_counts[2] for ack in wire.acks("server"))


# -- an unmarked path costs nothing -----------------------------------------------------------


def _transfer_time(client: dict[str, Any], up: LinkConditions) -> tuple[float, Any]:
    pair, _ = _pair(client=client, up=up)
    handshake(pair)
    start = pair.now
    transfer(pair, 2_000_000)
    return pair.now - start, _stats(pair.client)


def test_ecn_failed_validation_costs_no_throughput() -> None:
    bottleneck = {"delay": DELAY, "bandwidth": 5e6, "queue_limit": 60_000}
    bleached, stats = _transfer_time({}, LinkConditions(**bottleneck,
                                                        ecn_rewrite=lambda d, e, i: 0))
    assert stats.ecn_state == "failed"
    disabled, plain = _transfer_time({"ecn": False}, LinkConditions(**bottleneck))
    assert plain.ecn_state == "disabled"
    assert bleached == pytest.approx(disabled, rel=0.01)


def test_ecn_disabled_never_marks_but_still_reports() -> None:
    seen: list[int] = []

    def record(datagram: bytes, ecn: int, index: int) -> int:
        seen.append(ecn)
        return ecn

    pair, wire = _pair(client={"ecn": False}, up=_rewrite(record), wire=True)
    handshake(pair)
    transfer(pair, 100_000, upload=False)
    assert seen and set(seen) == {0}
    client, server = _stats(pair.client), _stats(pair.server)
    assert client.ecn_state == "disabled" and client.ecn_ect0_sent == 0
    # the server marks; the client's ACK_ECN frames validate it
    assert client.ecn_ect0_received > 0
    assert server.ecn_state == "capable"
    assert any(ack.ecn_counts for ack in wire.acks("client", APPLICATION))


def test_ecn_ack_frames_newly_acknowledging_marked_packets_need_counts_forged() -> None:
    pair, wire, _ = _capable_pair_with_unacked_packets()
    pns = wire.packet_numbers("client", APPLICATION)
    forger = Forger(wire.keylog, to_client=True,
                    dcid=pair.client.local_connection_id)  # type: ignore[attr-defined]
    pair.inject("client", forger.packet(b"\x02" + v(pns[-1]) + v(0) + v(0) + v(0)))
    pair.run_for(0.001)
    _assert_failed(pair.client, "without ECN counts")


def test_ecn_wire_observer_sees_the_frames() -> None:
    pair, wire = _pair(wire=True)
    handshake(pair)
    assert any(isinstance(frame, AckFrame) for _, _, frames in wire.packets["server"]
               for frame in frames)
    assert wire.packet_numbers("client", INITIAL)[0] == 0


def test_ecn_is_tested_again_on_a_new_path() -> None:
    """RFC 9000 §13.4.2: validation runs for each new path. A path that bleaches the marks
    fails it; after an active migration to a path that carries them, ECN is in use again (on
    both sides: the server follows the client to a new path too)."""
    bleaching = True
    pair, _ = _pair(up=_rewrite(lambda d, ecn, i: 0 if bleaching else ecn))
    handshake(pair)
    transfer(pair, 20_000)
    _assert_failed(pair.client, "without ECN counts")
    marked = _stats(pair.client).ecn_ect0_sent
    bleaching = False  # the new path keeps the marks
    pair.client.migrate()  # type: ignore[attr-defined]
    pair.change_address("client", ("10.9.9.9", 4000))
    assert _stats(pair.client).ecn_state == "testing"
    transfer(pair, 100_000)
    stats = _stats(pair.client)
    assert stats.ecn_state == "capable" and stats.ecn_failure is None
    assert stats.ecn_ect0_sent > marked + 10
    assert _stats(pair.server).ecn_state == "capable"


def test_ecn_stays_off_on_a_new_path_when_disabled() -> None:
    pair, _ = _pair(client={"ecn": False})
    handshake(pair)
    pair.run_for(0.1)
    pair.client.migrate()  # type: ignore[attr-defined]
    pair.change_address("client", ("10.9.9.9", 4000))
    transfer(pair, 20_000)
    assert _stats(pair.client).ecn_state == "disabled"
    assert _stats(pair.client).ecn_ect0_sent == 0
