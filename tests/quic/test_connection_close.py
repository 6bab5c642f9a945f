"""Closing, draining, idle timeout, keep-alive and stateless reset."""

from __future__ import annotations

import pytest

from tests.quic.conn_helpers import (
    CLEAN,
    client_config,
    events_named,
    handshake,
    make_pair,
    ours_client,
    ours_server,
    seeded,
    server_config,
)
from trio_zttp import quic
from trio_zttp.quic._cids import stateless_reset_token
from trio_zttp.testing import LinkConditions, Pair

ROLES = [("ours", "ours"), ("ours", "aioquic"), ("aioquic", "ours"), ("ours", "qh3"),
         ("qh3", "ours")]


def _closer(pair: Pair, side: str) -> object:
    return pair.client if side == "client" else pair.server


@pytest.mark.parametrize(("client", "server", "closer"), [
    ("ours", "ours", "client"), ("ours", "ours", "server"), ("ours", "aioquic", "client"),
    ("aioquic", "ours", "server"), ("ours", "qh3", "client"), ("qh3", "ours", "server"),
])
def test_close_application_code_reaches_peer(client: str, server: str, closer: str) -> None:
    pair = make_pair(client, server, link=CLEAN)
    handshake(pair)
    _closer(pair, closer).close(error_code=0x1234, reason_phrase="bye")  # type: ignore
    other = "server" if closer == "client" else "client"
    pair.run_until(lambda: events_named(pair.events(other), "ConnectionTerminated"))  # type: ignore
    end = events_named(pair.events(other), "ConnectionTerminated")[0]  # type: ignore
    assert end.error_code == 0x1234
    assert end.reason_phrase == "bye"
    mine = events_named(pair.events(closer), "ConnectionTerminated")[0]  # type: ignore
    assert (mine.error_code, mine.by_peer, mine.application) == (0x1234, False, True)
    if (client if other == "client" else server) == "ours":
        assert end.by_peer and end.application


@pytest.mark.parametrize(("client", "server"), ROLES[:3])
def test_close_by_peer_implementation_is_seen_by_ours(client: str, server: str) -> None:
    pair = make_pair(client, server, link=CLEAN)
    handshake(pair)
    peer_side = "server" if client == "ours" else "client"
    _closer(pair, peer_side).close(error_code=77, reason_phrase="done")  # type: ignore
    ours = "client" if client == "ours" else "server"
    pair.run_until(lambda: events_named(pair.events(ours), "ConnectionTerminated"))  # type: ignore
    end = events_named(pair.events(ours), "ConnectionTerminated")[0]  # type: ignore
    assert (end.error_code, end.reason_phrase, end.by_peer) == (77, "done", True)


def test_close_then_both_sides_terminate_within_three_pto() -> None:
    pair = make_pair("ours", "ours", link=CLEAN)
    handshake(pair)
    pair.client.close()  # type: ignore[attr-defined]
    start = pair.now
    pair.run_until(lambda: pair.client.get_timer() is None and pair.server.get_timer() is None)
    assert pair.now - start < 3.0
    assert pair.client.datagrams_to_send(pair.now) == []
    assert pair.server.datagrams_to_send(pair.now) == []


def test_close_closing_side_repeats_and_draining_side_is_silent() -> None:
    pair = make_pair("ours", "ours", link=CLEAN)
    handshake(pair)
    pair.run_for(0.5)  # let the last ACKs settle
    sent: list[str] = []
    pair.tap = lambda side, d: sent.append(str(side))
    blackhole = LinkConditions(delay=0.01, drop_filter=lambda d, i: True)
    pair.server_to_client.conditions = blackhole
    pair.server.close(error_code=1)  # type: ignore[attr-defined]
    pair.run_for(0.05)
    assert sent == ["server"]  # one CONNECTION_CLOSE, lost
    pair.client.send_stream_data(0, b"late")  # type: ignore[attr-defined]
    pair.server_to_client.conditions = CLEAN
    pair.run_until(lambda: events_named(pair.client_events, "ConnectionTerminated"))
    assert sent.count("server") == 2  # the close again, in answer to the client's packet
    sent.clear()
    pair.run_for(2.0)
    assert "client" not in sent  # draining: silent


def test_close_before_handshake_reports_application_error() -> None:
    pair = make_pair("ours", "ours", link=CLEAN)
    pair.connect()
    pair.run_for(0.015)  # the server has the ClientHello, the client nothing yet
    pair.client.close(error_code=9, reason_phrase="abort")  # type: ignore[attr-defined]
    pair.run_until(lambda: events_named(pair.server_events, "ConnectionTerminated"))
    end = events_named(pair.server_events, "ConnectionTerminated")[0]
    assert end.error_code == quic.TransportErrorCode.APPLICATION_ERROR
    assert end.by_peer


def test_close_commands_after_close_raise() -> None:
    pair = make_pair("ours", "ours", link=CLEAN)
    handshake(pair)
    pair.client.close()  # type: ignore[attr-defined]
    with pytest.raises(quic.QuicError):
        pair.client.send_stream_data(0, b"x")  # type: ignore[attr-defined]
    pair.client.close()  # type: ignore[attr-defined]  # twice is fine
    assert len(events_named(pair.client_events, "ConnectionTerminated")) <= 1


@pytest.mark.parametrize(("client", "server"), ROLES[:3])
def test_close_idle_timeout(client: str, server: str) -> None:
    options = {"idle_timeout": 2.0}
    pair = make_pair(client, server, link=CLEAN, client_options=options,
                     server_options=options)
    handshake(pair)
    start = pair.now
    ours = "client" if client == "ours" else "server"
    pair.run_until(lambda: events_named(pair.events(ours), "ConnectionTerminated"),  # type: ignore
                   timeout=30)
    assert 2.0 <= pair.now - start <= 3.0
    end = events_named(pair.events(ours), "ConnectionTerminated")[0]  # type: ignore
    assert end.reason_phrase == "idle timeout"
    assert pair.events(ours)[-1] is end  # type: ignore[arg-type]


def test_close_idle_timeout_uses_the_smaller_value() -> None:
    pair = Pair(ours_client(client_config(idle_timeout=30.0)),
                ours_server(server_config(idle_timeout=1.0)), link=CLEAN)
    handshake(pair)
    start = pair.now
    pair.run_until(lambda: events_named(pair.client_events, "ConnectionTerminated"), timeout=60)
    assert pair.now - start < 2.0


@pytest.mark.parametrize("server", ["ours", "aioquic"])
def test_close_keep_alive_holds_an_idle_connection(server: str) -> None:
    pair = make_pair("ours", server, link=CLEAN,
                     client_options={"idle_timeout": 2.0, "keep_alive_interval": 0.5},
                     server_options={"idle_timeout": 2.0})
    handshake(pair)
    pair.run_for(10.0)
    assert not events_named(pair.client_events, "ConnectionTerminated")
    assert not events_named(pair.server_events, "ConnectionTerminated")


def test_close_stateless_reset_is_detected() -> None:
    key = bytes(range(32))
    pair = Pair(ours_client(), ours_server(server_config(stateless_reset_key=key)), link=CLEAN)
    handshake(pair)
    server_cid = pair.server.local_connection_id  # type: ignore[attr-defined]
    reset = quic.encode_stateless_reset(key, server_cid, 1200, seeded(3))
    assert reset is not None and len(reset) == 43
    assert reset.endswith(stateless_reset_token(key, server_cid))
    assert quic.encode_stateless_reset(key, server_cid, 21, seeded(3)) is None
    pair.inject("client", reset)
    pair.run_until(lambda: events_named(pair.client_events, "ConnectionTerminated"))
    end = events_named(pair.client_events, "ConnectionTerminated")[0]
    assert end.reason_phrase == "stateless reset"
    assert pair.client.get_timer() is None


def test_close_random_short_packet_is_not_a_reset() -> None:
    pair = make_pair("ours", "ours", link=CLEAN)
    handshake(pair)
    pair.inject("client", bytes([0x40]) + bytes(range(60)))
    pair.run_for(0.5)
    assert not events_named(pair.client_events, "ConnectionTerminated")



def test_close_keeps_a_timer_until_the_closing_period_ends() -> None:
    pair = make_pair("ours", "ours", link=CLEAN)
    handshake(pair)
    client = pair.client
    client.close()  # type: ignore[attr-defined]
    assert client.get_timer() is not None  # closed, nothing sent yet: drive me now
    client.handle_timer(pair.now)  # starts the closing period
    timer = client.get_timer()
    assert timer is not None and timer > pair.now
    client.handle_timer(timer)
    assert client.get_timer() is None
