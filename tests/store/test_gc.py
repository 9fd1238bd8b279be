"""What keeps a layer, what is loose, what a prune collects and what check notes
(``store/gc.py``, ``store/check.py``), on a store made without any container: none of
this depends on the storage driver.

Loose layers are made the way an interrupted pull leaves them: committed through
``LayerStore.add_tar`` (verified, recorded) with no image over them.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from explorer.store import check, gc
from explorer.store.layers import Layer
from explorer.store.marks import mark_owner
from explorer.store.store import Store


def layer_tar(name: str, size: int) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(name)
        info.size = size
        info.mtime = 1_700_000_000
        tar.addfile(info, io.BytesIO(bytes([len(name)]) * size))
    return out.getvalue()


def add_layer(store: Store, name: str, size: int, parent: str | None = None) -> Layer:
    layer, _digest, _size = store.layers.add_tar(io.BytesIO(layer_tar(name, size)), parent)
    return layer


def add_image(store: Store, top: Layer, tag: str) -> str:
    chain = store.layers.chain(top.id)
    config = {"rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in chain]}, "tag": tag}
    return store.images.create(config, top.id, tags=[tag]).id


def add_cache_entry(store: Store, key: str, layer: Layer | None, last_used: float) -> None:
    with store.meta.transaction() as conn:
        conn.execute(
            "INSERT INTO build_cache(key, parent_key, layer, config, instruction, created, last_used) "
            "VALUES (?, NULL, ?, x'7b7d', ?, ?, ?)",
            (key, layer.id if layer else None, f"RUN step {key}", last_used, last_used),
        )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store(tmp_path / "store")
    yield opened
    opened.close()


def test_usage_counts_each_keeper_once(store: Store) -> None:
    base = add_layer(store, "base", 1000)
    one = add_layer(store, "one", 200, base.id)
    two = add_layer(store, "two", 30, base.id)
    cached = add_layer(store, "cached", 4, one.id)
    first = add_image(store, one, "x/one:1")
    add_image(store, two, "x/two:1")
    add_cache_entry(store, "k-old", cached, 1.0)
    add_cache_entry(store, "k-config", None, 2.0)
    add_cache_entry(store, "k-shared", two, 3.0)
    with store.meta.transaction() as conn:
        conn.execute(
            "INSERT INTO containers(id, name, image, image_ref, config, driver, created, state) "
            "VALUES ('c1', 'c1', ?, 'x/one:1', '{}', 'vfs', 0, 'exited')",
            (first,),
        )
    found = gc.usage(store)
    assert found.layers_size == 1230
    assert found.images_reclaimable == 30  # x/one:1 has a container; its layers are active
    assert found.cache_size == 4  # the shared layer is the image's
    assert [c.key for c in found.cache] == ["k-old", "k-config", "k-shared"]
    assert found.containers_of[first] == 1
    assert found.loose == [] and found.loose_size == 0
    assert gc.layer_bytes(store) == 1234


def test_loose_layers_are_noted_kept_by_repair_and_collected(store: Store) -> None:
    base = add_layer(store, "base", 1000)
    add_image(store, base, "x/base:1")
    bottom = add_layer(store, "pulled-1", 500, base.id)
    top = add_layer(store, "pulled-2", 70, bottom.id)
    store.layers.record_blob(bottom.id, "sha256:" + "1" * 64, "application/vnd.oci.image.layer.v1.tar", 9, "reg/x")
    found = gc.usage(store)
    assert [(layer.id, layer.size, layer.source, layer.busy) for layer in found.loose] == [
        (bottom.id, 500, "reg/x", False),
        (top.id, 70, "", False),
    ]
    assert found.loose_size == 570 and found.layers_size == 1000

    notes = check.check(store)
    assert [(p.kind, p.what, p.size, p.note, p.repairable) for p in notes] == [
        ("partial-pull", f"layer {bottom.chain_id[7:19]}", 500, True, False),
        ("partial-pull", f"layer {top.chain_id[7:19]}", 70, True, False),
    ]
    assert "interrupted pull of reg/x" in notes[0].detail
    repaired = check.check(store, repair=True)
    assert [p.repaired for p in repaired] == [False, False]
    assert len(gc.usage(store).loose) == 2  # resume data is not damage: repair keeps it

    assert gc.collect_loose(store) == [f"Deleted: {top.chain_id}", f"Deleted: {bottom.chain_id}"]
    assert [layer.id for layer in store.layers.all()] == [base.id]
    assert sorted(os.listdir(store.layers.dir)) == [base.id]
    assert check.check(store) == []


def test_a_layer_still_being_committed_is_not_collected(store: Store) -> None:
    """The writer's owner mark is on the directory until its record is committed and a
    moment after: whoever holds which lock, a prune passes over it and its parents."""
    bottom = add_layer(store, "a", 10)
    top = add_layer(store, "b", 20, bottom.id)
    mark_owner(store.layers.dir / top.id)  # this process, alive: a commit in progress
    assert [(layer.id, layer.busy) for layer in gc.usage(store).loose] == [(bottom.id, False), (top.id, True)]
    assert "a running pull" in check.check(store)[1].detail
    assert gc.collect_loose(store) == []
    assert {layer.id for layer in store.layers.all()} == {bottom.id, top.id}
    (store.layers.dir / top.id / "owner").unlink()
    assert len(gc.collect_loose(store)) == 2


def test_image_prune_takes_loose_layers_with_dangling_images(store: Store) -> None:
    base = add_layer(store, "base", 100)
    add_image(store, base, "x/base:1")
    dangling = add_layer(store, "dangling", 5, base.id)
    chain = [layer.diff_id for layer in store.layers.chain(dangling.id)]
    untagged = store.images.create({"rootfs": {"type": "layers", "diff_ids": chain}}, dangling.id).id
    loose = add_layer(store, "loose", 7, base.id)
    lines = gc.prune_images(store)
    assert lines == [f"deleted: {untagged}", f"deleted: {dangling.chain_id}", f"deleted: {loose.chain_id}"]
    assert [layer.id for layer in store.layers.all()] == [base.id]


def test_cache_prune_keeps_the_newest_within_the_limit(store: Store) -> None:
    base = add_layer(store, "base", 100)
    add_image(store, base, "x/base:1")
    old = add_layer(store, "old", 40, base.id)
    new = add_layer(store, "new", 30, base.id)
    add_cache_entry(store, "old", old, 1.0)
    add_cache_entry(store, "new", new, 2.0)
    assert gc.prune_cache(store, keep_storage=35) == 1
    assert [c.key for c in gc.usage(store).cache] == ["new"]
    assert {layer.id for layer in store.layers.all()} == {base.id, new.id}
    assert gc.prune_cache(store) == 1
    assert [layer.id for layer in store.layers.all()] == [base.id]


def waiting_for_lock(path: Path) -> bool:
    """Someone is blocked in flock on ``path`` (``/proc/locks`` lists waiters with ``->``)."""
    ino = os.stat(path).st_ino
    with open("/proc/locks") as fh:
        for line in fh:
            fields = line.split()
            if "->" in fields and fields[fields.index("->") + 5].endswith(f":{ino}"):
                return True
    return False


def test_a_prune_waits_for_the_pull_holding_the_gc_lock(store: Store) -> None:
    """A pull holds the gc lock shared from its first layer to its image: a prune meanwhile
    waits, then finds the layers kept by the image and takes nothing."""
    first = add_layer(store, "first", 10)  # a pull's first layer, committed, no image yet
    pulling = threading.Event()
    release = threading.Event()
    pulled: list[str] = []

    def pull() -> None:
        with store.gc_lock():
            pulling.set()
            release.wait(30)
            second = add_layer(store, "second", 20, first.id)
            pulled.append(add_image(store, second, "x/pulled:1"))

    puller = threading.Thread(target=pull)
    puller.start()
    assert pulling.wait(30)
    pruned: list[list[str]] = []
    pruner = threading.Thread(target=lambda: pruned.append(gc.prune_images(store)))
    pruner.start()
    deadline = time.monotonic() + 30
    while not waiting_for_lock(store.root / "gc.lock"):
        assert time.monotonic() < deadline and pruner.is_alive(), "the prune should be waiting for the lock"
        time.sleep(0.01)
    assert pruned == [] and len(gc.usage(store).loose) == 1
    release.set()
    puller.join(30)
    pruner.join(30)
    assert pruned == [[]]
    assert [image.id for image in store.images.all()] == pulled
    assert len(store.layers.all()) == 2 and check.check(store) == []


def test_dead_staging_waits_out_the_grace_of_unmarked_entries(store: Store) -> None:
    marked = store.tmp / "layer-dead"
    marked.mkdir()
    (marked / "owner").write_text("999999999\n")
    live = store.tmp / "layer-live"
    live.mkdir()
    mark_owner(live)
    (store.tmp / "trash-fresh").mkdir()
    assert gc.dead_staging(store) == ["layer-dead"]
    later = time.time() + gc.UNMARKED_GRACE_S + 1
    assert gc.dead_staging(store, now=lambda: later) == ["layer-dead", "trash-fresh"]
    found = {p.what: (p.kind, p.repaired) for p in check.check(store)}
    assert found == {"tmp/layer-dead": ("leftover", False)}
    # A repair runs the clean-up an open runs: with the gc lock its own, unmarked
    # staging cannot be a writer's between making and marking it, so it goes too.
    repaired = {p.what: p.repaired for p in check.check(store, repair=True)}
    assert repaired == {"tmp/layer-dead": True, "tmp/trash-fresh": True}
    assert sorted(os.listdir(store.tmp)) == ["layer-live"]


def test_check_repairs_records_that_name_nothing(store: Store) -> None:
    base = add_layer(store, "base", 10)
    image = add_image(store, base, "x/base:1")
    store.volumes.create("kept")
    store.meta.conn.execute("PRAGMA foreign_keys=OFF")  # damage the constraints would prevent
    with store.meta.transaction() as conn:
        conn.execute(
            "INSERT INTO containers(id, name, image, image_ref, config, driver, created, state) "
            "VALUES ('gone', 'gone', ?, 'x/base:1', ?, 'vfs', 0, 'exited')",
            (image, json.dumps({})),
        )
        conn.execute("INSERT INTO container_volumes(container, volume, target) VALUES ('gone', 'kept', '/v')")
        conn.execute("DELETE FROM volumes WHERE name='kept'")
    store.meta.conn.execute("PRAGMA foreign_keys=ON")
    found = sorted((p.kind, p.what, p.repairable) for p in check.check(store))
    assert found == [
        ("dangling-mount", "container gone / volume kept", True),
        ("missing-dir", "container gone", True),
        ("orphan-dir", "volumes/kept", True),
    ]
    assert all(p.repaired for p in check.check(store, repair=True))
    assert check.check(store) == []
    assert [v.name for v in store.volumes.all()] == ["kept"]
    assert store.containers.all() == []


def test_a_killed_writers_mark_is_dead_before_it_is_reaped(tmp_path: Path) -> None:
    """A writer killed a moment ago has released the gc lock (a prune waiting for it goes
    on at once) but may not be reaped yet: its zombie must not keep its layer busy."""
    from explorer.store.marks import _start_time, owner_live

    writer = subprocess.Popen(["sleep", "60"])
    try:
        marked_dir = tmp_path / "layer"
        marked_dir.mkdir()
        (marked_dir / "owner").write_text(f"{writer.pid} {_start_time(writer.pid)}\n")
        assert owner_live(marked_dir)
        writer.kill()
        deadline = time.monotonic() + 30
        while Path(f"/proc/{writer.pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z":
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert not owner_live(marked_dir)
    finally:
        writer.kill()
        writer.wait()


def test_a_task_tearing_down_counts_as_exited_before_it_is_a_zombie() -> None:
    """Between closing its files (its flocks released) and becoming a zombie, a killed
    writer still reads R or D; its PF_EXITING flag is what says it is gone. That window
    cannot be caught on demand, so the stat line is checked as the kernel writes it."""
    from explorer.store.marks import exiting

    line = Path("/proc/self/stat").read_bytes()
    assert not exiting(line)
    head, _, tail = line.rpartition(b")")
    fields = tail.split()
    flags = int(fields[6])  # state, ppid, pgrp, session, tty, tpgid, flags
    for state, flag, gone in (
        (b"R", 0x4, True),
        (b"D", 0x4, True),
        (b"Z", 0, True),
        (b"S", 0, False),
        (b"R", 0, False),
    ):
        fields[0], fields[6] = state, str((flags & ~0x4) | flag).encode()
        assert exiting(head + b") " + b" ".join(fields)) is gone, (state, flag)
