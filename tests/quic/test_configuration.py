"""``quic.Configuration``: the objects built once per configuration (``shared``)."""

from __future__ import annotations

import pytest

from trio_zttp import quic


def _client(**overrides: object) -> quic.Configuration:
    return quic.Configuration(is_client=True, alpn_protocols=("h3",), **overrides)  # type: ignore[arg-type]


def test_configuration_shared_objects_are_built_once() -> None:
    config = _client()
    built: list[int] = []
    first = config.shared("thing", lambda: built.append(1) or object())
    assert config.shared("thing", lambda: built.append(1) or object()) is first
    assert built == [1]


@pytest.mark.parametrize(
    ("field", "value"),
    [("session_ticket", b"ticket"), ("token", b"token"), ("server_name", "example.net"),
     ("max_datagram_frame_size", 1200)],
)
def test_configuration_setting_a_field_drops_what_was_built_from_it(
    field: str, value: object
) -> None:
    # what was derived from the old values (the TLS setup holds the ticket and the server
    # name, say) must not outlive them
    config = _client()
    first = config.shared("thing", object)
    setattr(config, field, value)
    assert config.shared("thing", object) is not first

