"""A lost, emptied or damaged ``metadata.db`` (issue 13, data loss): every command says
in one line what is damaged and what rebuilds it, and ``system check --repair`` rebuilds
the database from its readable rows and the directories instead of deleting them; what
it cannot rebuild is kept under ``quarantine/``, which ``system df`` shows."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.fixtures import run_strata


def one_error(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("Error")]
    assert len(errors) == 1, proc.stderr
    return errors[0]


def tree(root: Path) -> list[str]:
    return sorted(
        str(p.relative_to(root))
        for p in root.rglob("*")
        if not p.name.startswith("metadata.db") and not p.name.endswith(".lock")
    )


@pytest.fixture
def store(tmp_path: Path, busybox_rootfs_tar: Path) -> Path:
    """An image, a container whose diff holds a file, and a volume with data. One driver
    (vfs, created only): a rebuild keeps or quarantines a container directory as a whole."""
    root = tmp_path / "store"
    run_strata("import", busybox_rootfs_tar, "bb:1", root=root, check=True)
    run_strata("--storage-driver", "vfs", "create", "--name", "box", "bb:1", "true", root=root, check=True)
    run_strata("volume", "create", "data", root=root, check=True)
    (root / "volumes" / "data" / "_data" / "keep.txt").write_text("volume data\n")
    (container,) = os.listdir(root / "containers")
    (root / "containers" / container / "diff" / "mine.txt").write_text("container data\n")
    run_strata("system", "check", root=root, check=True)
    return root


@pytest.mark.parametrize("how", ["missing", "empty", "empty of records"])
def test_a_lost_database_is_rebuilt_from_the_directories_not_deleted(store: Path, how: str, tmp_path: Path) -> None:
    db = store / "metadata.db"
    (layer,) = os.listdir(store / "layers")
    (container,) = os.listdir(store / "containers")
    if how == "missing":
        db.unlink()
    elif how == "empty":
        db.write_bytes(b"")
    else:  # swapped for the database of a new store
        run_strata("images", root=tmp_path / "new", check=True)
        db.write_bytes((tmp_path / "new" / "metadata.db").read_bytes())
    before = tree(store)
    error = one_error(run_strata("images", root=store))
    assert f"metadata.db is {how} while" in error and "system check --repair" in error
    assert tree(store) == before and db.exists() == (how != "missing"), "a refusal changes nothing"
    report = run_strata("system", "check", root=store)
    assert report.returncode == 1 and "damaged-db" in report.stdout, report.stdout + report.stderr
    assert tree(store) == before

    repair = run_strata("system", "check", "--repair", root=store)
    assert repair.returncode == 0, repair.stdout + repair.stderr
    assert (store / "layers" / layer / "diff" / "bin" / "busybox").is_file(), "the layer was deleted"
    (bin_dir,) = (store / "quarantine").iterdir()
    kept = bin_dir / "containers" / container / "diff" / "mine.txt"
    assert kept.read_text() == "container data\n", repair.stdout
    assert (store / "volumes" / "data" / "_data" / "keep.txt").read_text() == "volume data\n"
    assert run_strata("volume", "ls", "-q", root=store, check=True).stdout.split() == ["data"]
    assert run_strata("system", "check", root=store).returncode == 0
    df = run_strata("system", "df", root=store, check=True).stdout
    assert [line.split()[:2] for line in df.splitlines() if line.startswith("Quarantine")] == [["Quarantine", "1"]]
    run_strata("system", "prune", "-f", "--quarantine", root=store, check=True)
    assert not (store / "quarantine").exists() or os.listdir(store / "quarantine") == []


def _corrupt(db: Path, how: str) -> None:
    data = bytearray(db.read_bytes())
    if how == "truncated":
        data = data[: len(data) // 2]
    elif how == "header":
        data[:100] = b"\xa5" * 100
    else:  # flipped bytes inside a stored text (a file name of the layer's index, every copy)
        at = data.find(b"etc/passwd")
        assert at >= 0
        while at >= 0:
            data[at + 4] ^= 0xC0
            at = data.find(b"etc/passwd", at + 1)
    db.write_bytes(bytes(data))


@pytest.mark.parametrize("how", ["truncated", "header", "flipped"])
def test_a_damaged_database_is_named_and_salvaged(store: Path, how: str) -> None:
    db = store / "metadata.db"
    for extra in ("-wal", "-shm"):
        assert not Path(f"{db}{extra}").exists()
    _corrupt(db, how)
    before = tree(store)
    command = ["ls", "bb:1", "/etc"] if how == "flipped" else ["images"]
    error = one_error(run_strata(*command, root=store))
    assert "metadata.db is damaged (" in error and "system check --repair" in error, error
    assert tree(store) == before
    report = run_strata("system", "check", root=store)
    assert report.returncode == 1 and "damaged-db" in report.stdout, report.stdout + report.stderr

    repair = run_strata("system", "check", "--repair", root=store)
    assert repair.returncode == 0, repair.stdout + repair.stderr
    assert "run `strata system check --repair`" not in repair.stdout + repair.stderr
    assert run_strata("system", "check", root=store).returncode == 0
    listing = run_strata("ls", "bb:1", "/etc", root=store, check=True).stdout
    assert "passwd" in listing
    assert run_strata("images", "-q", root=store, check=True).stdout.strip() != ""
    (bin_dir,) = (store / "quarantine").iterdir()
    assert (bin_dir / "metadata.db").is_file(), "the damaged file is kept for inspection"
    assert (store / "volumes" / "data" / "_data" / "keep.txt").read_text() == "volume data\n"
    if how == "header":  # only the header was lost: every row comes back
        assert run_strata("ps", "-aq", root=store, check=True).stdout.strip() != ""
