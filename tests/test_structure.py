"""The package's layering, checked on every import statement (issue 14).

Dependencies point down: the two front ends (``cli``, ``gui``) use ``api``, which uses
``builder``, ``registry``, ``store`` and ``runtime`` in that order; the base modules at the
top of the package (``errors``, ``fsutil``, ``digest``, ``bulk``, ``timestamps``, ``holds``) use
nothing above them. ``cli`` and ``gui`` never import each other: the entry point and
``launcher`` (``strata`` with no verb opens the window) sit over both. An import
inside a function counts like any other: hiding one there does not make it point down.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

from tests.fixtures import REPO_ROOT

PACKAGE = REPO_ROOT / "explorer"

# Higher may import lower, never the other way; equal ranks never import each other.
RANK = {
    "__main__": 10,
    "launcher": 9,
    "cli": 7,
    "gui": 7,
    "api": 6,
    "builder": 5,
    "registry": 4,
    "store": 3,
    "runtime": 2,
}
BASE = 0  # the package's own top-level modules and explorer/__init__.py
BASE_MODULES = {"", "errors", "fsutil", "digest", "bulk", "timestamps", "holds", "filelimits", "jsoninput", "overlayfs"}


def _part(module: str) -> str:
    """The first component under ``explorer`` ("" for the package itself)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _rank(part: str) -> int:
    if part in RANK:
        return RANK[part]
    assert part in BASE_MODULES, f"explorer/{part} has no place in the layering: add it to RANK or BASE_MODULES"
    return BASE


def imports_between_parts(root: Path = PACKAGE) -> dict[tuple[str, str], list[str]]:
    """(importing part, imported part) → the files with such an import."""
    found: dict[tuple[str, str], list[str]] = defaultdict(list)
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root.parent).with_suffix("")
        parts = list(relative.parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts.pop()
        here = ".".join(parts)
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = parts if is_package else parts[:-1]
                    base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                    targets.append(".".join([*base, node.module] if node.module else base))
                elif node.module:
                    targets.append(node.module)
            elif isinstance(node, ast.Import):
                targets.extend(alias.name for alias in node.names)
            for target in targets:
                if target != "explorer" and not target.startswith("explorer."):
                    continue
                a, b = _part(here), _part(target)
                if a != b:
                    found[(a, b)].append(str(path.relative_to(root.parent)))
    return found


def upward(found: dict[tuple[str, str], list[str]]) -> list[str]:
    bad = []
    for (a, b), files in sorted(found.items()):
        ra, rb = _rank(a), _rank(b)
        if rb > ra or (ra == rb and ra != BASE):
            bad.append(f"{a or 'explorer'} → {b}: {', '.join(sorted(set(files)))}")
    return bad


def cycles(found: dict[tuple[str, str], list[str]]) -> list[list[str]]:
    """Cycles between parts (any length), found by a depth-first search."""
    graph: dict[str, set[str]] = defaultdict(set)
    for a, b in found:
        graph[a].add(b)
    out: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                out.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return out


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    """Nodes under ``if TYPE_CHECKING:``: imports for annotations only, never run."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                skip.update(id(n) for n in ast.walk(child))
    return skip


def module_imports(root: Path = PACKAGE) -> dict[str, set[str]]:
    """module → the package's modules it imports when it runs (at the top or inside a
    function; ``if TYPE_CHECKING`` blocks left out). ``from pkg import name`` counts
    as importing ``pkg.name`` when that is a module."""
    modules: dict[str, Path] = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    found: dict[str, set[str]] = defaultdict(set)
    for here, path in modules.items():
        parts = here.split(".")
        is_package = path.name == "__init__.py"
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        skip = _type_checking_nodes(tree)
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = parts if is_package else parts[:-1]
                    base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                    module = ".".join([*base, node.module] if node.module else base)
                else:
                    module = node.module or ""
                targets += [module, *(f"{module}.{alias.name}" for alias in node.names)]
            elif isinstance(node, ast.Import):
                targets += [alias.name for alias in node.names]
            for target in targets:
                if target in modules and target != here and not here.startswith(target + "."):
                    found[here].add(target)
    return found


def module_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Groups of modules that import each other, directly or round a circle (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def test_no_modules_import_each_other_in_a_circle() -> None:
    """Not even through an import hidden inside a function."""
    assert module_cycles(module_imports()) == []


def test_every_import_between_packages_points_down() -> None:
    assert upward(imports_between_parts()) == []


def test_no_packages_import_each_other_in_a_circle() -> None:
    assert cycles(imports_between_parts()) == []


def test_the_check_sees_an_upward_import_even_inside_a_function(tmp_path: Path) -> None:
    """The check itself can fail: a store module reaching up into the API is caught, as
    is a cycle between two base-level packages."""
    fake = tmp_path / "explorer"
    (fake / "store").mkdir(parents=True)
    (fake / "api").mkdir()
    (fake / "__init__.py").write_text("")
    (fake / "store" / "__init__.py").write_text("")
    (fake / "api" / "__init__.py").write_text("from ..store import thing\n")
    (fake / "store" / "thing.py").write_text("def f():\n    from ..api import app\n    return app\n")
    found = imports_between_parts(fake)
    assert upward(found) == ["store → api: explorer/store/thing.py"]
    assert cycles(found) == [["api", "store", "api"]]
    (fake / "store" / "other.py").write_text("import typing\nif typing.TYPE_CHECKING:\n    from . import thing\n")
    (fake / "store" / "third.py").write_text("from . import other\ndef g():\n    from .fourth import x\n")
    (fake / "store" / "fourth.py").write_text("from .third import g\nx = 1\n")
    graph = module_imports(fake)
    assert ["explorer.store.fourth", "explorer.store.third"] in module_cycles(graph)
    assert "explorer.store.thing" not in graph.get("explorer.store.other", set()), "TYPE_CHECKING is not a cycle"


@pytest.mark.parametrize("module", sorted(RANK))
def test_every_ranked_part_exists(module: str) -> None:
    assert (PACKAGE / module).is_dir() or (PACKAGE / f"{module}.py").is_file()
