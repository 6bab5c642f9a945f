"""The sans-IO core never imports I/O, clocks, randomness or logging (DESIGN.md, STYLE.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "trio_zttp"
CORE = ["_buffer.py", "_zttp.py", "quic", "qpack", "h3", "masque", "_tls"]
FORBIDDEN_MODULES = {"trio", "socket", "time", "random", "asyncio", "logging", "selectors",
                     "threading", "secrets"}
# configuration defaults for randomness and the wall clock come from trio_zttp._defaults, the one
# sanctioned module outside the core; the core itself never calls them on its own
# datetime values may flow through the core (certificate validity), but the clock is never read
FORBIDDEN_ATTRIBUTES = {("os", "urandom"), ("os", "getrandom"), ("datetime", "now"),
                        ("datetime", "utcnow"), ("datetime", "today"), ("date", "today")}


def core_files() -> list[Path]:
    files: list[Path] = []
    for entry in CORE:
        path = PACKAGE / entry
        if path.is_file():
            files.append(path)
        elif path.is_dir():
            files.extend(sorted(path.rglob("*.py")))
    return files


def violations(source: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in FORBIDDEN_MODULES:
                    found.append(f"import {alias.name}")
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            root = node.module.split(".")[0]
            if root in FORBIDDEN_MODULES:
                found.append(f"from {node.module} import ...")
            for alias in node.names:
                if (root, alias.name) in FORBIDDEN_ATTRIBUTES or (
                    node.module.split(".")[-1], alias.name) in FORBIDDEN_ATTRIBUTES:
                    found.append(f"from {root} import {alias.name}")
        elif isinstance(node, ast.Attribute):
            base = node.value
            name = base.id if isinstance(base, ast.Name) else (
                base.attr if isinstance(base, ast.Attribute) else None)
            if (name, node.attr) in FORBIDDEN_ATTRIBUTES:
                found.append(f"{name}.{node.attr}")
    return found


def test_layering_core_has_files() -> None:
    assert len(core_files()) >= 3


@pytest.mark.parametrize("path", core_files(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_layering_core_module_is_sans_io(path: Path) -> None:
    assert violations(path.read_text()) == []


@pytest.mark.parametrize(
    "source",
    ["import trio", "import socket as s", "from time import monotonic", "import os\nos.urandom(3)",
     "from os import urandom", "import logging.handlers", "from asyncio import sleep",
     "import datetime\ndatetime.datetime.now()", "from datetime import datetime\ndatetime.now()"],
)
def test_layering_checker_catches(source: str) -> None:
    assert violations(source)
