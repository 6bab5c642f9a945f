"""Public namespaces export exactly what ``__all__`` says, each name defined where it claims."""

from __future__ import annotations

import importlib

import pytest

NAMESPACES = ["trio_zttp", "trio_zttp.h3", "trio_zttp.quic", "trio_zttp.qpack", "trio_zttp.testing"]


@pytest.mark.parametrize("name", NAMESPACES)
def test_exports_all_names_exist(name: str) -> None:
    module = importlib.import_module(name)
    for attr in module.__all__:
        assert hasattr(module, attr), attr


@pytest.mark.parametrize("name", NAMESPACES)
def test_exports_no_private_leaks(name: str) -> None:
    module = importlib.import_module(name)
    public = {n for n in dir(module) if not n.startswith("_")}
    modules = {n for n in public if type(getattr(module, n)).__name__ == "module"}
    assert public - modules - {"annotations"} <= set(module.__all__)
