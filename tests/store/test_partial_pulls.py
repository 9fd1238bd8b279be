"""Layers an interrupted pull kept for its resume (issue 14): ``system df`` counts them,
``system check`` notes them without failing, a resumed pull reuses them, ``image prune``
and ``system prune`` collect them, and a prune never takes the pieces of a pull still
running: it waits for the pull's gc lock and then finds them kept by its image.

Pulls are killed at named points (``explorer/holds.py``): ``layer.committed@2`` is the
second layer's commit, recorded but still carrying its owner mark, so exactly two layers
are left. No container runs: none of this depends on the storage driver.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from explorer.api import Strata
from explorer.cli.format import human_size
from explorer.digest import short
from explorer.registry.events import COMPLETE, TransferEvent
from tests.fixtures import REPO_ROOT, run_strata
from tests.fixtures.services import Registry
from tests.store.test_crash_build_pull import blob_gets, held, layer_count, manifest_layers
from tests.store.test_crash_safety import assert_clean
from tests.store.test_gc import waiting_for_lock

LAYERS = 4
LAYER_BYTES = 150_000
KILL_AT = "layer.committed@2"


@pytest.fixture
def pushed(tmp_path: Path, busybox_rootfs_tar: Path, registry: Registry) -> tuple[str, list[str]]:
    """An image of the busybox base and LAYERS small layers in the loopback registry:
    its name and its layers' blob digests."""
    source = tmp_path / "source"
    context = tmp_path / "ctx"
    context.mkdir()
    for n in range(LAYERS):
        (context / f"f{n}.bin").write_bytes(os.urandom(LAYER_BYTES))
    (context / "Dockerfile").write_text("FROM bb:1\n" + "".join(f"COPY f{n}.bin /l{n}/\n" for n in range(LAYERS)))
    name = f"{registry.address}/partial/app:1"
    run_strata("import", busybox_rootfs_tar, "bb:1", root=source, check=True)
    run_strata("build", "-q", "-t", name, context, root=source, check=True)
    run_strata("push", name, root=source, check=True)
    return name, manifest_layers(registry, "partial/app", "1")


def killed_pull(root: Path, name: str) -> list[str]:
    """Chain ids of the two layers a pull killed in its second commit left."""
    held(root, KILL_AT, "pull", name)
    app = Strata(root)
    try:
        usage = app.df()
        assert [p.busy for p in usage.partial_pulls] == [False, False]  # the killed writer is gone
        return [p.chain_id for p in usage.partial_pulls]
    finally:
        app.close()


def test_df_and_check_show_them_and_a_pull_resumes_with_them(
    tmp_path: Path, pushed: tuple[str, list[str]], registry: Registry
) -> None:
    name, digests = pushed
    root = tmp_path / "pulled"
    chains = killed_pull(root, name)
    base = Strata(root)
    try:
        usage = base.df()
        sizes = [p.size for p in usage.partial_pulls]
        sources = [p.source for p in usage.partial_pulls]
        notes = base.check()
    finally:
        base.close()
    assert usage.images == [] and usage.layers_size == 0
    assert sizes[1] == LAYER_BYTES and usage.partial_pulls_size == usage.partial_pulls_reclaimable == sum(sizes)
    assert sources == [f"{registry.address}/partial/app", ""]  # killed before its blob was recorded
    assert [(p.kind, p.what, p.note, p.repaired) for p in notes] == [
        ("partial-pull", f"layer {short(c)}", True, False) for c in chains
    ]

    df = run_strata("system", "df", root=root, check=True).stdout.splitlines()
    row = next(line.split() for line in df if line.startswith("Partial Pulls"))
    total = human_size(sum(sizes))
    assert row[2:] == ["2", "0", total, total]
    verbose = run_strata("system", "df", "-v", root=root, check=True).stdout
    assert [line.split()[0] for line in verbose.split("Partial pulls")[1].splitlines()[3:]] == [
        short(c) for c in chains
    ]
    checked = run_strata("system", "check", root=root)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    lines = checked.stdout.splitlines()
    assert lines[-1] == "The store is consistent: no problems found."
    assert [line.split()[:3] for line in lines[:-1]] == [["partial-pull", "layer", f"{short(c)}:"] for c in chains]
    assert all(line.endswith("[note]") for line in lines[:-1])

    before = len(registry.requests())
    again = run_strata("pull", name, root=root, check=True)
    assert again.stdout.count("Already exists") == 2  # the busybox base and the first COPY
    fetched = [d for d in blob_gets(registry, before) if d in digests]
    assert sorted(fetched) == sorted(digests[2:])
    assert "Partial Pulls" not in run_strata("system", "df", root=root, check=True).stdout
    assert_clean(root)


@pytest.mark.parametrize("verb", [("image", "prune", "-f"), ("system", "prune", "-f")])
def test_prunes_collect_them(
    tmp_path: Path, pushed: tuple[str, list[str]], registry: Registry, verb: tuple[str, ...]
) -> None:
    name, digests = pushed
    root = tmp_path / "pulled"
    chains = killed_pull(root, name)
    pruned = run_strata(*verb, root=root, check=True).stdout
    assert [line for line in pruned.splitlines() if line.startswith("deleted: ")] == [
        f"deleted: {c}" for c in reversed(chains)
    ]
    sizes_line = pruned.splitlines()[-1]
    assert sizes_line != "Total reclaimed space: 0B", pruned
    assert layer_count(root) == (0, 0)
    assert "Partial Pulls" not in run_strata("system", "df", root=root, check=True).stdout
    assert_clean(root)
    before = len(registry.requests())
    run_strata("pull", name, root=root, check=True)
    assert sorted(d for d in blob_gets(registry, before) if d in digests) == sorted(digests)


def test_a_prune_waits_while_a_pull_holds_its_pieces(tmp_path: Path, pushed: tuple[str, list[str]]) -> None:
    """The real commands: a pull stopped inside its second commit (alive, holding the gc
    lock shared) and a ``system prune`` that waits for it. Only once the pull is gone does
    the prune take what it left."""
    name, _digests = pushed
    root = tmp_path / "pulled"
    run_strata("images", root=root, check=True)
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "STRATA_TEST_HOLD": KILL_AT}
    pull = subprocess.Popen(
        [sys.executable, "-m", "explorer", "--root", str(root), "pull", name],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env=env,
        text=True,
    )
    prune: subprocess.Popen[str] | None = None
    try:
        assert pull.stderr is not None
        for line in pull.stderr:
            if line.startswith("strata-test-hold "):
                break
        assert pull.poll() is None, "the pull should stop at its hold point"
        prune = subprocess.Popen(
            [sys.executable, "-m", "explorer", "--root", str(root), "system", "prune", "-f"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
            text=True,
        )
        deadline = time.monotonic() + 60
        while not waiting_for_lock(root / "gc.lock"):
            assert prune.poll() is None and time.monotonic() < deadline, prune.communicate()
            time.sleep(0.02)
        assert layer_count(root) == (2, 0)  # still there while the pull lives
    finally:
        pull.kill()
        pull.wait()
        if pull.stderr is not None:
            pull.stderr.close()
    assert prune is not None
    out, err = prune.communicate(timeout=120)
    assert prune.returncode == 0, out + err
    assert sum(line.startswith("deleted: ") for line in out.splitlines()) == 2, out + err
    assert layer_count(root) == (0, 0)
    assert_clean(root)


def test_a_pull_in_progress_keeps_its_pieces_through_a_prune(tmp_path: Path, pushed: tuple[str, list[str]]) -> None:
    """Through the API: the pull stops after its first layer is in (its progress callback
    waits), an ``image_prune`` meanwhile waits for the gc lock; the pull then finishes,
    the prune finds its layers kept by the image and takes none of them."""
    name, _digests = pushed
    root = tmp_path / "pulled"
    first_in = threading.Event()
    go_on = threading.Event()

    def progress(event: TransferEvent) -> None:
        if event.status == COMPLETE and not first_in.is_set():
            first_in.set()
            go_on.wait(60)

    results: dict[str, object] = {}

    def pull() -> None:
        app = Strata(root)
        try:
            results["pull"] = app.pull(name, progress=progress, cancel=None)
        except BaseException as e:  # reported by the assertion below
            results["pull"] = e
        finally:
            app.close()

    def prune() -> None:
        app = Strata(root)
        try:
            results["prune"] = app.image_prune()
        finally:
            app.close()

    puller = threading.Thread(target=pull)
    puller.start()
    pruner: threading.Thread | None = None
    try:
        assert first_in.wait(60), results
        pruner = threading.Thread(target=prune)
        pruner.start()
        deadline = time.monotonic() + 60
        while not waiting_for_lock(root / "gc.lock"):
            assert pruner.is_alive() and time.monotonic() < deadline, results
            time.sleep(0.01)
    finally:
        go_on.set()
        puller.join(120)
        if pruner is not None:
            pruner.join(120)
    pulled = results["pull"]
    assert not isinstance(pulled, BaseException), pulled
    assert results["prune"] == ([], 0)
    app = Strata(root)
    try:
        assert [image.familiar_tags for image in app.store.images.all()] == [[name]]
        assert [(e.path, e.size) for e in app.ls(name, f"/l{LAYERS - 1}")] == [
            (f"/l{LAYERS - 1}/f{LAYERS - 1}.bin", LAYER_BYTES)
        ]
        assert app.df().partial_pulls == [] and app.check() == []
    finally:
        app.close()
