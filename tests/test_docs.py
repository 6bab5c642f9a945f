"""The Sphinx sources hang together, without running Sphinx (it is not in the test extra).

Every ``literalinclude`` names a file that exists (and, with ``:pyobject:``, a function or
class that file defines at top level); every page is reachable from ``index`` through the
toctrees, and every toctree entry is a page; every public namespace has a reference page
that autodocs it.  The full check is the nitpicky build:
``PYTHONPATH=. python -m sphinx -n -W --keep-going -b html docs docs/_build``.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
PAGES = sorted(DOCS.rglob("*.rst"))
NAMESPACES = ["trio_zttp", "trio_zttp.quic", "trio_zttp.h3", "trio_zttp.qpack", "trio_zttp.testing"]

_DIRECTIVE = re.compile(r"^(?P<indent>[ \t]*)\.\. (?P<name>[\w:-]+)::[ \t]*(?P<arg>.*)$")
_OPTION = re.compile(r"^[ \t]+:(?P<name>[\w-]+):[ \t]*(?P<value>.*)$")


def _directives(page: Path, name: str) -> list[tuple[str, dict[str, str], list[str]]]:
    """``(argument, options, content lines)`` of every ``.. name::`` directive on a page."""
    lines = page.read_text(encoding="utf-8").splitlines()
    found = []
    for index, line in enumerate(lines):
        match = _DIRECTIVE.match(line)
        if match is None or match["name"] != name:
            continue
        indent = len(match["indent"])
        options: dict[str, str] = {}
        content: list[str] = []
        for following in lines[index + 1 :]:
            if following.strip() and len(following) - len(following.lstrip()) <= indent:
                break
            option = _OPTION.match(following)
            if option is not None and not content:
                options[option["name"]] = option["value"].strip()
            elif following.strip():
                content.append(following.strip())
        found.append((match["arg"].strip(), options, content))
    return found


def _page_name(page: Path) -> str:
    return page.relative_to(DOCS).with_suffix("").as_posix()


def _toctree_children(page: Path) -> list[str]:
    children = []
    for _, _, entries in _directives(page, "toctree"):
        for entry in entries:
            target = re.sub(r"^.*<(.+)>$", r"\1", entry)  # "Title <page>"
            base = "" if target.startswith("/") else page.parent.relative_to(DOCS).as_posix()
            children.append(Path(base, target.lstrip("/")).as_posix())
    return children


def _literalincludes() -> list[tuple[Path, str, dict[str, str]]]:
    return [(page, arg, options) for page in PAGES
            for arg, options, _ in _directives(page, "literalinclude")]


def test_docs_pages_exist() -> None:
    assert (DOCS / "index.rst").is_file()
    assert (DOCS / "conf.py").is_file()
    assert _literalincludes(), "no literalinclude found: the directive parser is broken"


@pytest.mark.parametrize(
    ("page", "target", "options"),
    _literalincludes(),
    ids=[f"{page.name}:{target}:{options.get('pyobject', '')}"
         for page, target, options in _literalincludes()],
)
def test_docs_literalinclude_target_exists(
    page: Path, target: str, options: dict[str, str]
) -> None:
    path = (DOCS / target.lstrip("/")) if target.startswith("/") else (page.parent / target)
    assert path.is_file(), f"{page.name}: literalinclude {target} does not exist"
    pyobject = options.get("pyobject")
    if pyobject is not None:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        defined = {
            node.name for node in tree.body
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
        }
        assert pyobject in defined, f"{page.name}: {target} defines no {pyobject}"


def test_docs_every_toctree_entry_is_a_page() -> None:
    names = {_page_name(page) for page in PAGES}
    for page in PAGES:
        for child in _toctree_children(page):
            assert child in names, f"{page.name}: toctree entry {child!r} is not a page"


def test_docs_every_page_is_in_the_toctree() -> None:
    by_name = {_page_name(page): page for page in PAGES}
    reachable = {"index"}
    pending = ["index"]
    while pending:
        for child in _toctree_children(by_name[pending.pop()]):
            if child in by_name and child not in reachable:
                reachable.add(child)
                pending.append(child)
    orphans = sorted(set(by_name) - reachable)
    assert not orphans, f"pages in no toctree: {orphans}"


@pytest.mark.parametrize("namespace", NAMESPACES)
def test_docs_every_public_namespace_is_autodocumented(namespace: str) -> None:
    documented = {arg for page in PAGES for arg, _, _ in _directives(page, "automodule")}
    assert namespace in documented, f"no reference page runs automodule on {namespace}"
