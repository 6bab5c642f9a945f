"""examples/quic_echo.py runs and echoes (real loopback UDP, no autojump)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import trio

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "quic_echo.py"


def _load():
    spec = importlib.util.spec_from_file_location("quic_echo_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("size", [0, 300_000])
async def test_example_quic_echo_runs(capsys, size: int) -> None:
    example = _load()
    with trio.fail_after(20):
        await example.main(size)
    out = capsys.readouterr().out
    assert "connected to" in out
    assert ("hello, QUIC" if size == 0 else f"{size} bytes") in out
    assert "datagram echo: ping" in out
    assert len(EXAMPLE.read_text().splitlines()) <= 150
