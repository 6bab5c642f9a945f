"""Our transport parameters on the wire (RFC 9000 §7.3, §18): what the configuration and the
connection say, encoded from the cached per-configuration template exactly as the general
encoder would."""

from __future__ import annotations

from typing import Any

import pytest

from tests.quic.conn_helpers import CLEAN, handshake, make_pair
from trio_zttp.quic._packet import QUIC_V1, QUIC_V2
from trio_zttp.quic._params import encode_transport_parameters

OPTIONS: list[dict[str, Any]] = [
    {},
    {"max_data": 12345, "max_stream_data": 999, "max_streams_bidi": 0, "max_streams_uni": 7,
     "idle_timeout": 0.0, "ack_delay_exponent": 0, "max_ack_delay": 0.016,
     "disable_active_migration": True, "active_connection_id_limit": 2,
     "max_datagram_frame_size": 0},
    {"max_datagram_frame_size": 65536, "supported_versions": (QUIC_V2, QUIC_V1)},
]


@pytest.mark.parametrize("options", OPTIONS)
def test_parameters_on_the_wire_are_the_configured_ones(options: dict[str, Any]) -> None:
    pair = make_pair("ours", "ours", link=CLEAN, client_options=options,
                     server_options=options)
    handshake(pair)
    for receiver, sender in ((pair.client, pair.server), (pair.server, pair.client)):
        params = receiver.peer_transport_parameters  # type: ignore[attr-defined]
        config = sender._config  # type: ignore[attr-defined]
        # the template's bytes are the general encoder's bytes for the same values
        raw = receiver._peer_params_raw  # type: ignore[attr-defined]
        assert raw == encode_transport_parameters(params)
        assert params.initial_max_data == config.max_data
        for direction in ("bidi_local", "bidi_remote", "uni"):
            value = getattr(params, f"initial_max_stream_data_{direction}")
            assert value == config.max_stream_data
        assert params.initial_max_streams_bidi == config.max_streams_bidi
        assert params.initial_max_streams_uni == config.max_streams_uni
        assert params.max_idle_timeout == int(config.idle_timeout * 1000)
        assert params.ack_delay_exponent == config.ack_delay_exponent
        assert params.max_ack_delay == int(config.max_ack_delay * 1000)
        assert params.disable_active_migration is config.disable_active_migration
        assert params.active_connection_id_limit == config.active_connection_id_limit
        assert params.max_datagram_frame_size == (config.max_datagram_frame_size or 0)
        info = params.version_information
        assert info is not None
        assert info.available_versions == tuple(config.supported_versions)
    server_params = pair.client.peer_transport_parameters  # type: ignore[attr-defined]
    assert server_params.original_destination_connection_id is not None
    assert server_params.stateless_reset_token is not None
    assert pair.server.peer_transport_parameters.stateless_reset_token is None  # type: ignore


def test_changed_configuration_is_not_served_stale_parameters() -> None:
    first = make_pair("ours", "ours", link=CLEAN)
    handshake(first)
    config = first.server._config  # type: ignore[attr-defined]
    assert first.client.peer_transport_parameters.initial_max_data == config.max_data  # type: ignore
    second = make_pair("ours", "ours", link=CLEAN, server_options={"max_data": 54321})
    handshake(second)
    assert second.client.peer_transport_parameters.initial_max_data == 54321  # type: ignore
