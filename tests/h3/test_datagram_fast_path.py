"""``Connection.receive_datagram_frame`` (the driver's shortcut for DATAGRAM frames) does what
``receive_quic_event`` does with the same frame: same events, same resets, same errors."""

from __future__ import annotations

import random

import attrs
import pytest

from tests.h3.h3_support import MemoryLink, connect_fields, request_fields, varint
from trio_zttp import h3
from trio_zttp.quic._events import DatagramFrameReceived

DATAGRAMS = attrs.evolve(h3.DEFAULT_SETTINGS, h3_datagram=True)
CONNECT_SERVER = attrs.evolve(h3.DEFAULT_SETTINGS, h3_datagram=True, enable_connect_protocol=True)
RESPONSE = [(b":status", b"200")]


def _build(server_settings: h3.Settings) -> MemoryLink:
    """A link with request streams in many states (the same every time)."""
    link = MemoryLink(client_settings=DATAGRAMS, server_settings=server_settings)
    link.pump()
    client, server = link.side("client"), link.side("server")
    for index in range(12):
        stream_id = client.h3.get_next_request_stream_id()
        connect = index % 3 != 2
        fields = connect_fields() if connect else request_fields()
        if index == 5:
            server.held.add(stream_id)  # the request never arrives: datagrams are early
        client.h3.send_headers(stream_id, fields, end_stream=index in (4, 8))
        link.pump()
        if stream_id in server.held:
            continue
        if index % 4 == 1:
            server.h3.send_headers(stream_id, RESPONSE)
        if index == 7:
            server.h3.send_headers(stream_id, RESPONSE, end_stream=True)  # client side done
        if index == 10:
            server.h3.reset_stream(stream_id)
            client.h3.reset_stream(stream_id)
        link.pump()
    return link


def _frames(rng: random.Random) -> list[bytes]:
    """Well-formed frames for streams in every state, then maybe a malformed one (it closes
    the connection: H3_DATAGRAM_ERROR)."""
    out = []
    for _ in range(60):
        payload = rng.randbytes(rng.randrange(4))
        if rng.random() < 0.85:
            out.append(varint(rng.randrange(16)) + payload)  # streams 0 .. 60
        else:
            out.append(varint(rng.randrange(16, 300)) + payload)  # longer IDs
    out.append(rng.choice([b"", b"\x40", b"\x80\x00", b"\x00"]))
    return out


def _outcome(link: MemoryLink, name: str, events: list[object]) -> object:
    quic = link.client_quic if name == "client" else link.server_quic
    side = link.side(name)  # type: ignore[arg-type]
    return (events, quic.resets, quic.stops, quic.closed, side.h3.open_request_streams,
            side.h3.is_closed)


@pytest.mark.parametrize("name", ["client", "server"])
@pytest.mark.parametrize("server_settings", [CONNECT_SERVER, attrs.evolve(
    CONNECT_SERVER, h3_datagram=False)])
@pytest.mark.parametrize("seed", range(8))
def test_receive_datagram_frame_matches_receive_quic_event(
    name: str, server_settings: h3.Settings, seed: int
) -> None:
    general, fast = _build(server_settings), _build(server_settings)
    general_events: list[object] = []
    fast_events: list[object] = []
    shortcuts = 0
    for data in _frames(random.Random(seed)):
        conn = general.side(name).h3  # type: ignore[arg-type]
        conn.receive_quic_event(DatagramFrameReceived(data=data))
        while (event := conn.next_event()) is not None:
            general_events.append(event)
        conn = fast.side(name).h3  # type: ignore[arg-type]
        taken = conn.receive_datagram_frame(DatagramFrameReceived(data=data))
        if taken is not None:
            shortcuts += 1
            fast_events.append(h3.DatagramReceived(stream_id=taken[0], data=taken[1]))
        while (event := conn.next_event()) is not None:
            fast_events.append(event)
        # release the held request part way through: early datagrams get delivered
        if len(general_events) == 10:
            general.release(name if name == "server" else "server", 20)  # type: ignore[arg-type]
            fast.release(name if name == "server" else "server", 20)  # type: ignore[arg-type]
    assert _outcome(fast, name, fast_events) == _outcome(general, name, general_events)
    if server_settings.h3_datagram and not general.side(name).h3.is_closed:  # type: ignore[arg-type]
        assert shortcuts > 0  # the shortcut was taken, not only the general path
