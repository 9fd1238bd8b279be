"""The package's layering, checked on every import statement (issue 14).

Dependencies point down: the two front ends (``cli``, ``gui``) use ``api``, which uses
``build``, ``registry``, ``store`` and ``runtime`` in that order; the base modules at the
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
RANK = {"__main__": 10, "launcher": 9, "cli": 7, "gui": 7, "api": 6, "build": 5, "registry": 4, "store": 3,
        "runtime": 2}
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
                out.append([*stack[stack.index(nxt):], nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return out


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


@pytest.mark.parametrize("module", sorted(RANK))
def test_every_ranked_part_exists(module: str) -> None:
    assert (PACKAGE / module).is_dir() or (PACKAGE / f"{module}.py").is_file()
