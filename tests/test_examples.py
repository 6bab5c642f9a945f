"""Every example in ``examples/`` runs to completion (STYLE.md: test_examples runs them all)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))
#: What each example must print (examples not listed only have to exit cleanly).
EXPECTED = {
    "sansio_loop.py": ["handshake done, ALPN echo", "echo b'HELLO, QUIC\\n'", "closed (by us"],
}


@pytest.mark.parametrize("example", EXAMPLES, ids=[path.name for path in EXAMPLES])
def test_examples_run(example: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, str(example)], capture_output=True, text=True,
                            timeout=60, cwd=ROOT, env=env, check=False)
    assert result.returncode == 0, result.stderr
    for line in EXPECTED.get(example.name, []):
        assert line in result.stdout, result.stdout


def test_examples_are_short_and_documented() -> None:
    for example in EXAMPLES:
        text = example.read_text()
        assert len(text.splitlines()) <= 150, example.name
        assert text.startswith(('"""', "#")), example.name  # opens with what it shows
