"""Every example runs and does what its opening comment says.

Each test is independent (its own entry): add one per example.
"""

from __future__ import annotations

import runpy
from pathlib import Path
from typing import Any

import pytest
import trio

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def load(name: str) -> dict[str, Any]:
    """The example's module namespace, without running its ``__main__`` block."""
    return runpy.run_path(str(EXAMPLES / name), run_name=f"example_{name[:-3]}")


# -- HTTP/3 examples (datagram_pingpong.py, h3_server.py, h3_client.py) -----------------------


def test_example_datagram_pingpong(capsys: pytest.CaptureFixture[str]) -> None:
    example = load("datagram_pingpong.py")

    async def bounded() -> list[int]:
        with trio.fail_after(20):
            result: list[int] = await example["main"]()
            return result

    seen = trio.run(bounded)
    assert seen == [2, 4, 6, 8, 10]
    out = capsys.readouterr().out
    assert "client: sends 1" in out
    for value in range(1, 10, 2):
        assert f"server: got {value}, sends {value + 1}" in out
    assert "client: got 10: done" in out


def test_example_h3_server_and_client(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    server = load("h3_server.py")
    client = load("h3_client.py")

    async def both() -> dict[str, bytes]:
        config = server["configuration"](None, None, str(tmp_path))
        with trio.fail_after(20):
            async with trio.open_nursery() as nursery:
                port = await nursery.start(server["main"], 0, config)
                results: dict[str, bytes] = await client["main"](
                    f"https://localhost:{port}/", cafile=str(tmp_path / "ca.pem")
                )
                nursery.cancel_scope.cancel()
        return results

    results = trio.run(both)
    assert results == {
        "/": b"Hello over HTTP/3, h3_client.py!\n",
        "/echo": b"ping " * 1000,
        "/slow": b"".join(b"piece %d\n" % i for i in range(5)),
    }
    out = capsys.readouterr().out
    assert "GET / -> 200" in out
    assert "GET /slow -> 200, 40 bytes trailers [(b'x-pieces', b'5')]" in out
    assert "127.0.0.1 POST /echo" in out
    assert "throwaway CA" in out
