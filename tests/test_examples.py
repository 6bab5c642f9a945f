"""Every example in ``examples/`` runs to completion (STYLE.md: test_examples runs them all).

Examples that serve until interrupted, or talk to such a server, are listed in
:data:`NEEDS_PEER` and run together by their own test, as their opening comment says.
Each entry below is independent: add one per example.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))
#: What each example must print (examples not listed only have to exit cleanly).
EXPECTED = {
    "sansio_loop.py": ["handshake done, ALPN echo", "echo b'HELLO, QUIC\\n'", "closed (by us"],
    "datagram_pingpong.py": [
        "client: sends 1",
        *(f"server: got {n}, sends {n + 1}" for n in range(1, 10, 2)),
        *(f"client: got {n}, sends {n + 1}" for n in range(2, 9, 2)),
        "client: got 10: done",
    ],
    "migration.py": ["client: moved to port", "client: done: 1048576 bytes, intact",
                     "client: the server now sees 127.0.0.1:"],
    "preferred_address.py": ["server: listening on port", "client: done: intact, now talking to",
                             "datagrams arrived at the preferred address"],
}
#: Examples that need a peer: run by test_example_h3_server_and_client.
NEEDS_PEER = {"h3_server.py", "h3_client.py"}
ALONE = [path for path in EXAMPLES if path.name not in NEEDS_PEER]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}


@pytest.mark.parametrize("example", ALONE, ids=[path.name for path in ALONE])
def test_examples_run(example: Path) -> None:
    result = subprocess.run([sys.executable, str(example)], capture_output=True, text=True,
                            timeout=60, cwd=ROOT, env=_env(), check=False)
    assert result.returncode == 0, result.stderr
    for line in EXPECTED.get(example.name, []):
        assert line in result.stdout, result.stdout


def test_examples_are_short_and_documented() -> None:
    for example in EXAMPLES:
        text = example.read_text()
        assert len(text.splitlines()) <= 150, example.name
        assert text.startswith(('"""', "#")), example.name  # opens with what it shows


# -- HTTP/3 server and client (h3_server.py, h3_client.py), as their comment runs them ----------


def test_example_h3_server_and_client(tmp_path: Path) -> None:
    server = subprocess.Popen(
        [sys.executable, str(ROOT / "examples" / "h3_server.py"), "--port", "0",
         "--cert-dir", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=_env(),
    )
    try:
        assert server.stdout is not None
        ca_line = server.stdout.readline()
        serving = server.stdout.readline()
        assert "throwaway CA" in ca_line, ca_line
        match = re.search(r"https://localhost:(\d+)/", serving)
        assert match, serving
        client = subprocess.run(
            [sys.executable, str(ROOT / "examples" / "h3_client.py"), "--cafile",
             str(tmp_path / "ca.pem"), f"https://localhost:{match.group(1)}/"],
            capture_output=True, text=True, timeout=60, cwd=ROOT, env=_env(), check=False,
        )
        assert client.returncode == 0, client.stderr
        lines = client.stdout.splitlines()
        assert lines[0] == "GET / -> 200, 33 bytes"
        assert sorted(lines[1:3]) == [
            "GET /slow -> 200, 40 bytes trailers [(b'x-pieces', b'5')]",
            "POST /echo -> 200, 5000 bytes",
        ]
        assert lines[3] == "Hello over HTTP/3, h3_client.py!"
    finally:
        server.send_signal(signal.SIGINT)  # Ctrl-C: graceful shutdown
        stdout, stderr = server.communicate(timeout=30)
    assert server.returncode == 0, stderr
    assert sorted(line.split(" ", 1)[1] for line in stdout.splitlines()) == [
        "GET /", "GET /slow", "POST /echo"
    ]
