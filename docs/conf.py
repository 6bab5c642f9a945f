"""Sphinx configuration for trio_zttp.

Build from the repository root (the package is imported from there)::

    PYTHONPATH=. python -m sphinx -n -W --keep-going -b html docs docs/_build

Intersphinx needs the network, which the build must not: it is on only when
``TRIO_ZTTP_DOCS_INTERSPHINX=1``.  Offline, references to the standard library, trio and
cryptography are listed in ``nitpick_ignore_regex`` below instead of failing the build.
"""

from __future__ import annotations

import importlib
import inspect
import os
import re
from typing import Any

from sphinx.ext.napoleon.docstring import GoogleDocstring

project = "trio_zttp"
extensions = ["sphinx.ext.autodoc", "sphinx.ext.napoleon"]
nitpicky = True
autodoc_member_order = "bysource"
# Public objects documented with the members they inherit from the project's private mixins;
# members inherited from builtins, the standard library or trio are skipped (_skip_foreign).
autodoc_default_options = {"inherited-members": True}
napoleon_google_docstring = True
napoleon_numpy_docstring = False
html_theme = "alabaster"
exclude_patterns = ["_build"]

if os.environ.get("TRIO_ZTTP_DOCS_INTERSPHINX") == "1":
    extensions.append("sphinx.ext.intersphinx")
    intersphinx_mapping = {
        "python": ("https://docs.python.org/3", None),
        "trio": ("https://trio.readthedocs.io/en/stable", None),
        "cryptography": ("https://cryptography.io/en/latest", None),
    }

# Objects outside this project: resolvable only through intersphinx, which is off offline.
_EXTERNAL = (
    r"trio(\..*)?",
    r"cryptography(\..*)?",
    r"attrs(\..*)?",
    r"collections\.abc\..*",
    r"typing\..*",
    r"contextlib\..*",
    r"datetime\..*",
    r"os\..*",
    r"socket\..*",
    r"enum\..*",
    r"ipaddress\..*",
    r"random\..*",
    r"(Base)?ExceptionGroup",
    r"(int|str|bytes|bytearray|memoryview|float|bool|object|tuple|list|dict|set|frozenset)",
    r"(Exception|ValueError|TypeError|KeyError|OSError|RuntimeError|NotImplementedError)",
    r"None|NoneType|Ellipsis",
)
nitpick_ignore_regex = [
    (f"py:{role}", pattern)
    for role in ("class", "exc", "func", "meth", "attr", "data", "mod", "obj")
    for pattern in _EXTERNAL
]

# Public objects live in private modules (``trio_zttp.h3._settings.Settings``): type hints name
# them there, and their docstrings name their neighbours relative to the private module.
# Resolve such a reference to the documented public name (or the private one documented
# explicitly in reference/).
_PUBLIC = ("trio_zttp.quic", "trio_zttp.h3", "trio_zttp.qpack", "trio_zttp.testing", "trio_zttp")


def _candidates(target: str, node: Any) -> list[str]:
    if target.startswith("trio_zttp."):
        found = [target]
    else:
        found = [f"trio_zttp.{target}"]  # ``qpack.Encoder`` in a module docstring
        module, cls = node.get("py:module"), node.get("py:class")
        if module and module.startswith("trio_zttp"):
            real = module
            if cls:
                try:
                    obj = getattr(importlib.import_module(module), cls.split(".")[0])
                    real = obj.__module__
                except (ImportError, AttributeError):
                    pass
            found.append(f"{real}.{target}")
    for name in list(found):
        if "._" in name:
            own = name.split("._", 1)[0]  # trio_zttp.h3._events.X: try trio_zttp.h3.X first
            last = name.rsplit(".", 1)[1]
            found.extend(f"{public}.{last}" for public in (own, *_PUBLIC))
    return found


def _resolve_private(app: Any, env: Any, node: Any, contnode: Any) -> Any:
    target = node.get("reftarget", "")
    if node.get("refdomain") != "py" or target.startswith("trio_zttp.") and "._" not in target:
        return None
    domain = env.get_domain("py")
    for candidate in _candidates(target, node):
        if candidate == target or candidate not in domain.objects:
            continue
        for reftype in (node["reftype"], "obj"):
            found = domain.resolve_xref(
                env, node["refdoc"], app.builder, reftype, candidate, node, contnode
            )
            if found is not None:
                return found
    return None


def _defining_module(obj: Any) -> str | None:
    if isinstance(obj, property):
        obj = obj.fget
    owner = getattr(obj, "__objclass__", None)  # slot wrappers, method and getset descriptors
    if owner is not None:
        return getattr(owner, "__module__", None)
    return getattr(obj, "__module__", None)


def _skip_foreign(app: Any, what: str, name: str, obj: Any, skip: bool, options: Any) -> Any:
    """Skip methods and properties that a public class inherits from outside the project."""
    if what not in ("class", "exception") or not (
        inspect.isroutine(obj) or inspect.isdatadescriptor(obj) or isinstance(obj, property)
    ):
        return None
    module = _defining_module(obj)
    if module is None or not (module == "trio_zttp" or module.startswith("trio_zttp.")):
        return True
    return None


# Trio-level objects that users never construct (STYLE.md: private constructors): their
# ``__init__`` takes private engine types, so the class signature is left out.
_NO_CONSTRUCTOR = {
    f"trio_zttp.{name}"
    for name in (
        "QuicEndpoint", "QuicConnection", "QuicStream", "QuicSendStream", "QuicReceiveStream",
        "H3Connection", "H3ConnectionPool", "H3Request", "H3Response", "H3RequestStream",
        "H3Stream", "H3Body",
    )
} | {"trio_zttp.quic.ClientInitial"}  # made by decode_client_initial


def _hide_private_constructor(
    app: Any, what: str, name: str, obj: Any, options: Any, signature: Any, annotation: Any
) -> Any:
    if what == "class" and name in _NO_CONSTRUCTOR:
        return "", annotation
    return None


_TYPE_EXPRESSION = re.compile(r"[\w.\[\], |]*")


def _returns_section(self: GoogleDocstring, preprocess_types: bool = False) -> Any:
    # ``Returns:`` whose first line reads "Decoder-stream bytes: a ..." is a sentence, not a
    # ``type: description`` pair: keep it whole unless the part before the colon looks like a
    # Python type expression.
    fields = _original_returns_section(self, preprocess_types)
    result = []
    for name, type_, desc in fields:
        if type_ and (
            not _TYPE_EXPRESSION.fullmatch(type_) or re.search(r"\w\s+\w", type_)
        ):
            desc = [f"{type_}: {desc[0]}" if desc else type_, *desc[1:]]
            type_ = ""
        result.append((name, type_, desc))
    return result


_original_returns_section = GoogleDocstring._consume_returns_section
GoogleDocstring._consume_returns_section = _returns_section  # type: ignore[method-assign]


def _attribute_docstring(self: GoogleDocstring) -> list[str]:
    # Napoleon reads the first line of an attribute or property docstring as
    # ``type: description``; the project's docstrings use plain sentences such as
    # "Client: the ..." there, which it would turn into bogus type references.
    return self._consume_to_end()


GoogleDocstring._parse_attribute_docstring = _attribute_docstring  # type: ignore[method-assign]


def setup(app: Any) -> None:
    app.connect("missing-reference", _resolve_private)
    app.connect("autodoc-skip-member", _skip_foreign)
    app.connect("autodoc-process-signature", _hide_private_constructor)
