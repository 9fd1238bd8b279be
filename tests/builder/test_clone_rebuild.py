"""A COPY that ran before is rewritten from a hard-link clone of its earlier layer
(``store.linkclone`` + ``LayerWriter(base=...)``): the result must be exactly the layer a
fresh write makes, on disk and in the index, whatever changed in between."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from explorer.api import Strata
from explorer.builder import checksum as checksum_module
from explorer.builder import copystep
from explorer.builder.events import BuildEvent
from explorer.errors import CloneFailed
from explorer.store import linkclone
from explorer.store.index import DIR, FILE, HARDLINK, SYMLINK
from tests.fixtures.images import BUSYBOX_TAG
from tests.fixtures.layers import exported_diff_id

DOCKERFILE = f"FROM {BUSYBOX_TAG}\nCOPY . /src\n"


@pytest.fixture(autouse=True)
def clone_everything(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Clone even small layers, trust fresh stat data, and list the clones started."""
    monkeypatch.setattr(checksum_module, "RACY_NS", 0)
    monkeypatch.setattr(copystep, "_CLONE_AT_LEAST", 1)
    made: list[str] = []
    real = linkclone.LinkClone.__init__

    def counting(self: Any, source: str, dest: str) -> None:
        made.append(source)
        real(self, source, dest)

    monkeypatch.setattr(linkclone.LinkClone, "__init__", counting)
    return made


@pytest.fixture
def completed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The clones that completed (a failed one falls back quietly, which would hide it)."""
    done: list[str] = []
    real = linkclone.LinkClone.wait

    def recording(self: Any) -> None:
        real(self)
        done.append(self.source)

    monkeypatch.setattr(linkclone.LinkClone, "wait", recording)
    return done


@pytest.fixture
def app(tmp_path: Path, busybox_rootfs_tar: Path) -> Iterator[Strata]:
    strata = Strata(tmp_path / "store")
    strata.import_rootfs(str(busybox_rootfs_tar), BUSYBOX_TAG)
    yield strata
    strata.close()


def make_context(root: Path) -> Path:
    root.mkdir()
    (root / "Dockerfile").write_text(DOCKERFILE)
    for d in ("keep/deep/er", "gone/inner", "becomes-file", "ro", "empty"):
        (root / d).mkdir(parents=True)
    for i in range(12):
        (root / "keep" / f"k{i}").write_bytes(os.urandom(700 + i))
    (root / "keep/deep/er/edit.txt").write_text("before\n")
    (root / "keep/deep/mode.sh").write_text("echo\n")
    (root / "gone/inner/x").write_text("x\n")
    (root / "becomes-file/y").write_text("y\n")
    (root / "becomes-dir").write_text("file for now\n")
    (root / "ro/inside").write_text("read-only dir\n")
    (root / "link").symlink_to("keep/k1")
    (root / "dir-link").symlink_to("keep/deep")  # cloned as a symlink, never followed
    (root / "dangling").symlink_to("nowhere")
    (root / "hard-a").write_text("shared\n")
    os.link(root / "hard-a", root / "hard-b")
    (root / "ro").chmod(0o555)
    return root


def change_everything(root: Path) -> None:
    (root / "ro").chmod(0o755)
    (root / "keep/deep/er/edit.txt").write_text("after, and longer\n")
    (root / "keep/deep/mode.sh").chmod(0o755)
    for path in sorted((root / "gone").rglob("*"), reverse=True):
        path.rmdir() if path.is_dir() else path.unlink()
    (root / "gone").rmdir()
    (root / "becomes-file/y").unlink()
    (root / "becomes-file").rmdir()
    (root / "becomes-file").write_text("now a file\n")
    (root / "becomes-dir").unlink()
    (root / "becomes-dir").mkdir()
    (root / "becomes-dir/z").write_text("z\n")
    (root / "link").unlink()
    (root / "link").symlink_to("keep/k2")
    (root / "hard-b").unlink()
    (root / "hard-b").write_text("shared\n")  # same bytes, its own inode now
    (root / "new").mkdir()
    (root / "new/file").write_text("new\n")
    (root / "new/z-first").write_text("a new pair of names for one inode\n")
    os.link(root / "new/z-first", root / "new/a-second")  # sorts first: the tar's file is this name
    (root / "ro/added").write_text("in a once read-only dir\n")
    (root / "ro").chmod(0o555)


def build(app: Strata, ctx: Path, **kw: Any) -> tuple[str, list[BuildEvent]]:
    events: list[BuildEvent] = []
    result = app.build(str(ctx), on_event=events.append, **kw)
    return result.image_id, events


def top_layer(app: Strata, image: str) -> str:
    return app.store.layers.chain(app.image(image).top_layer)[-1].id


def disk_matches_index(app: Strata, layer_id: str) -> None:
    """Every path on disk is in the index and agrees with it; nothing is missing."""
    root = app.store.layers.diff_dir(layer_id)
    index = {e.path: e for e in app.store.layers.entries(layer_id)}
    on_disk = {"/" + str(p.relative_to(root)) for p in root.rglob("*")}
    assert on_disk == set(index) - {"/"}
    inodes: dict[int, str] = {}
    for path, e in index.items():
        if path == "/":
            continue
        st = os.lstat(f"{root}{path}")
        if e.type == DIR:
            assert stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == e.mode, path
        elif e.type in (FILE, HARDLINK):
            assert stat.S_ISREG(st.st_mode), path
            if e.type == FILE:
                assert st.st_size == e.size and stat.S_IMODE(st.st_mode) == e.mode, path
                inodes[st.st_ino] = path
        elif e.type == SYMLINK:
            assert os.readlink(f"{root}{path}") == e.link, path
    for path, e in index.items():
        if e.type == HARDLINK:
            assert inodes.get(os.lstat(f"{root}{path}").st_ino) == e.link, path


def tar_digest(app: Strata, layer_id: str) -> str:
    return exported_diff_id(app.store, layer_id)


def test_a_cloned_rebuild_is_the_layer_a_fresh_write_makes(
    app: Strata, tmp_path: Path, clone_everything: list[str], completed: list[str]
) -> None:
    ctx = make_context(tmp_path / "ctx")
    first, _ = build(app, ctx)
    before = top_layer(app, first)
    change_everything(ctx)
    second, events = build(app, ctx)
    after = top_layer(app, second)
    assert clone_everything and completed, "the rebuild should have started from a completed clone"
    layer = app.store.layers.get(after)
    disk_matches_index(app, after)
    assert tar_digest(app, after) == layer.diff_id
    old_dir, new_dir = app.store.layers.diff_dir(before), app.store.layers.diff_dir(after)
    assert (new_dir / "src/keep/k0").stat().st_ino == (old_dir / "src/keep/k0").stat().st_ino
    assert (new_dir / "src/keep/deep/er/edit.txt").read_text() == "after, and longer\n"
    assert (old_dir / "src/keep/deep/er/edit.txt").read_text() == "before\n"  # the earlier layer is intact
    assert not (new_dir / "src/gone").exists() and (old_dir / "src/gone/inner/x").exists()
    # The same content written from scratch is the same tar, so the same layer.
    clone_everything.clear()
    third, _ = build(app, ctx, no_cache=True)
    assert not clone_everything  # --no-cache writes afresh
    assert app.store.layers.get(top_layer(app, third)).diff_id == layer.diff_id
    index = {e.path: e for e in app.store.layers.entries(after)}
    assert index["/src/keep/deep/mode.sh"].mode == 0o755
    assert index["/src/becomes-file"].type == FILE and index["/src/becomes-dir"].type == DIR
    assert index["/src/link"].link == "keep/k2"
    assert index["/src/dir-link"].type == SYMLINK and index["/src/dangling"].link == "nowhere"
    assert index["/src/ro"].mode == 0o555 and "/src/ro/added" in index
    assert {index["/src/hard-a"].type, index["/src/hard-b"].type} == {FILE}
    assert index["/src/new/a-second"].type == FILE and index["/src/new/z-first"].link == "/src/new/a-second"
    assert any(e.status == "running" and e.step == 2 for e in events)


def test_touching_files_starts_no_clone_and_hits(app: Strata, tmp_path: Path, clone_everything: list[str]) -> None:
    ctx = make_context(tmp_path / "ctx")
    first, _ = build(app, ctx)
    stamp = 1_600_000_000
    for path in ctx.rglob("*"):
        os.utime(path, (stamp, stamp), follow_symlinks=False)
    again, events = build(app, ctx)
    assert again == first and not clone_everything
    assert [e.step for e in events if e.status == "cached"] == [1, 2]


def test_a_head_start_that_ends_in_a_hit_leaves_nothing(
    app: Strata, tmp_path: Path, clone_everything: list[str]
) -> None:
    ctx = make_context(tmp_path / "ctx")
    first, _ = build(app, ctx)
    edit = ctx / "keep/deep/er/edit.txt"
    edit.write_text("a longer second version\n")
    build(app, ctx)
    edit.write_text("before\n")  # back to the first version: its cache entry answers
    clone_everything.clear()
    again, events = build(app, ctx)
    assert again == first and [e.step for e in events if e.status == "cached"] == [1, 2]
    assert clone_everything, "the size change should have started a clone"
    assert list(app.store.tmp.iterdir()) == []


def test_a_failed_clone_falls_back_to_writing_afresh(
    app: Strata, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = make_context(tmp_path / "ctx")
    build(app, ctx)
    change_everything(ctx)

    def failing(self: Any) -> None:
        raise CloneFailed("cp -al exited 1: no space left (simulated)")

    monkeypatch.setattr(linkclone.LinkClone, "wait", failing)
    second, _ = build(app, ctx)
    after = top_layer(app, second)
    disk_matches_index(app, after)
    assert tar_digest(app, after) == app.store.layers.get(after).diff_id
    assert list(app.store.tmp.iterdir()) == []
