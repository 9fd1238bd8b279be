"""The code's own checks, so CI fails on them (issue 14): ruff's lint, ruff's format and
mypy in strict mode (the settings live in pyproject.toml)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.capabilities import missing
from tests.fixtures import REPO_ROOT


def _tool(name: str) -> str:
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if found is None:
        missing(f"needs {name} (pip install -e '.[test]')")
    return found


@pytest.mark.parametrize(
    "args", [["check", "explorer", "tests"], ["format", "--check", "explorer", "tests"]], ids=["lint", "format"]
)
def test_ruff(args: list[str]) -> None:
    proc = subprocess.run([_tool("ruff"), *args], cwd=REPO_ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.timeout(900)
def test_mypy_strict() -> None:
    proc = subprocess.run(
        [_tool("mypy"), "--cache-dir", "/tmp/strata-mypy-cache"], cwd=REPO_ROOT, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
