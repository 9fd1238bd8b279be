"""Every prune asks on stdin, terminal or not: `n` or no answer deletes nothing (docker's
behaviour), `y` goes ahead, `-f` does not ask."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.capabilities import require_userns
from tests.fixtures import run_strata

IMAGE = "test/busybox:1"

# verb, and how to tell from `strata` whether its target is still there
PRUNES = [
    (("container", "prune"), ("ps", "-a", "-q")),
    (("system", "prune", "-a", "--volumes"), ("images", "-q")),
    (("image", "prune", "-a"), ("images", "-q")),
    (("volume", "prune", "-a"), ("volume", "ls", "-q")),
]


@pytest.fixture
def populated(strata_root: Path, busybox_rootfs_tar: Path) -> Path:
    require_userns()
    run_strata("import", busybox_rootfs_tar, IMAGE, check=True)
    run_strata("volume", "create", "spare", check=True)
    run_strata("create", IMAGE, "true", check=True)
    return strata_root


def _state(probe: tuple[str, ...]) -> str:
    return run_strata(*probe, check=True).stdout


@pytest.mark.parametrize(("verb", "probe"), PRUNES, ids=[" ".join(v) for v, _p in PRUNES])
@pytest.mark.parametrize(("answer", "code"), [("n\n", 0), ("no\n", 0), ("", 1), ("yes please\n", 0)])
def test_a_prune_not_confirmed_removes_nothing(
    populated: Path, verb: tuple[str, ...], probe: tuple[str, ...], answer: str, code: int
) -> None:
    if verb[0] in ("system", "image"):
        run_strata("rm", "-f", *run_strata("ps", "-a", "-q", check=True).stdout.split(), check=True)
    before = _state(probe)
    assert before.strip()
    done = run_strata(*verb, input=answer)
    assert done.returncode == code, done.stderr
    assert "Are you sure you want to continue? [y/N]" in done.stdout
    assert _state(probe) == before
    if code:
        assert done.stderr == ("Error: nothing removed: no answer on standard input; use -f to remove without asking\n")


@pytest.mark.parametrize(("verb", "probe"), PRUNES, ids=[" ".join(v) for v, _p in PRUNES])
@pytest.mark.parametrize("how", ["y", "force"])
def test_a_confirmed_prune_removes(populated: Path, verb: tuple[str, ...], probe: tuple[str, ...], how: str) -> None:
    if verb[0] in ("system", "image"):
        run_strata("rm", "-f", *run_strata("ps", "-a", "-q", check=True).stdout.split(), check=True)
    args = (*verb, "-f") if how == "force" else verb
    done = run_strata(*args, input="y\n" if how == "y" else None, check=True)
    assert ("Are you sure" in done.stdout) == (how == "y")
    assert _state(probe) == ""


def test_builder_prune_asks_the_same_way(populated: Path) -> None:
    done = run_strata("builder", "prune", "-a", input="n\n")
    assert done.returncode == 0 and "  - all build cache" in done.stdout
    assert run_strata("builder", "prune", input="").returncode == 1
    assert run_strata("builder", "prune", "-f", check=True).returncode == 0
