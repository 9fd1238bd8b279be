"""Several strata processes on one store at once (issue 8).

Builds hold the store's gc lock shared for their whole run and prunes take it
exclusive (``store/locks.py``), so a prune waits for running builds instead of deleting
the layers they stand on (the podman and moby races), and an ``rmi`` of a build's base
waits for the build. SQLite writers queue on the busy timeout: no command ever says
"database is locked".
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.capabilities import require_userns
from tests.fixtures import REPO_ROOT, run_strata
from tests.store.conftest import alternate
from tests.store.test_crash_safety import assert_clean

ROUNDS = 20
PRUNES = (
    ("system", "prune", "-a", "-f"),
    ("builder", "prune", "-a", "-f"),
    ("image", "prune", "-a", "-f"),
)
LOCKED = ("database is locked", "database is busy", "is busy (another strata")


def strata_popen(root: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "explorer", "--root", str(root), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env=env,
        text=True,
    )


def finish(proc: subprocess.Popen[str], timeout: float = 120) -> tuple[int, str]:
    out, err = proc.communicate(timeout=timeout)
    assert not any(text in out + err for text in LOCKED), out + err
    assert "Traceback" not in err, err
    return proc.returncode, out + err


def context(where: Path, name: str) -> Path:
    """A small build on the shared base whose last RUN checks the files below it."""
    where.mkdir()
    (where / f"{name}.txt").write_text(f"{name}\n")
    (where / "Dockerfile").write_text(
        f"FROM bb:1\n"
        f"COPY {name}.txt /{name}/\n"
        f"RUN echo ran > /{name}/ran && test -f /{name}/{name}.txt && test -x /bin/busybox\n"
    )
    return where


@pytest.fixture
def store(tmp_path: Path, busybox_rootfs_tar: Path) -> Iterator[Path]:
    """A store holding bb:1, kept from ``prune -a`` by a running container."""
    require_userns()
    root = tmp_path / "store"
    run_strata("import", busybox_rootfs_tar, "bb:1", root=root, check=True)
    run_strata("run", "-d", "--name", "keeper", "bb:1", "sleep", "600", root=root, check=True)
    try:
        yield root
    finally:
        run_strata("rm", "-f", "keeper", root=root)


def listed(root: Path, image: str, path: str) -> set[str]:
    proc = run_strata("ls", image, path, root=root)
    return {line.split()[-1] for line in proc.stdout.splitlines() if line.strip()} if proc.returncode == 0 else set()


def test_two_builds_and_a_prune_at_once(store: Path, tmp_path: Path) -> None:
    """The rounds alternate between the storage drivers: a RUN's container is overlay's
    or vfs's, and a prune must spare the layers it stands on either way."""
    a = context(tmp_path / "a", "a")
    b = context(tmp_path / "b", "b")
    verified = 0
    for r in range(ROUNDS):
        same = r % 2 == 1  # the same Dockerfile twice, or two sharing only the base
        second = a if same else b
        driver = ("--storage-driver", alternate(r // 2))  # both kinds of round on both drivers
        builds = [
            strata_popen(store, *driver, "build", "-q", "-t", f"one:{r}", str(a)),
            strata_popen(store, *driver, "build", "-q", "-t", f"two:{r}", str(second)),
        ]
        time.sleep((r % 4) * 0.1)
        prune = strata_popen(store, *PRUNES[r % len(PRUNES)])
        results = [finish(p) for p in builds]
        code, output = finish(prune)
        assert code == 0, output
        names = ("a", "a" if same else "b")
        for (code, output), tag, name in zip(results, (f"one:{r}", f"two:{r}"), names, strict=True):
            assert code == 0, f"round {r}: build {tag} failed: {output}"
            image = output.split()[0]
            files = listed(store, image, f"/{name}")
            if files:  # not pruned after it was built
                assert files == {"ran", f"{name}.txt"}, f"round {r}: {tag}: {files}"
                verified += 1
        assert_clean(store)
    assert verified >= ROUNDS // 3, "some images should outlive the prunes to be checked"
    assert "bb" in run_strata("images", root=store, check=True).stdout


def test_rmi_of_the_base_waits_for_the_build_using_it(tmp_path: Path, busybox_rootfs_tar: Path) -> None:
    """One driver: this is about the gc lock the build holds, which no driver changes."""
    require_userns()
    root = tmp_path / "store"
    run_strata("import", busybox_rootfs_tar, "bb:1", root=root, check=True)
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM bb:1\nRUN sleep 1 && echo slow > /slow\nRUN test -f /slow\n")
    # The events go to a file: each is flushed as it happens, and the last one ("done",
    # with the image) is written while the build still holds the gc lock. So what the
    # file holds when rmi returns tells whether rmi waited, however the two processes
    # were scheduled after the lock changed hands.
    events = tmp_path / "build.jsonl"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    with events.open("w") as out:
        build = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "explorer",
                "--root",
                str(root),
                "build",
                "--progress",
                "json",
                "-t",
                "child:1",
                str(ctx),
            ],
            stdout=out,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            env=env,
            text=True,
        )
    deadline = time.monotonic() + 60
    while '"cached"' not in events.read_text():  # FROM resolved: the build holds the gc lock
        assert build.poll() is None and time.monotonic() < deadline, events.read_text()
        time.sleep(0.02)
    rmi = run_strata("rmi", "bb:1", root=root)
    written = events.read_text().splitlines()
    assert written and '"image"' in written[-1], "rmi must wait for the build standing on its image"
    _out, err = build.communicate(timeout=120)
    assert build.returncode == 0, err
    assert "Traceback" not in err
    assert rmi.returncode == 0, rmi.stdout + rmi.stderr
    assert "Traceback" not in rmi.stderr
    repositories = [line.split()[0] for line in run_strata("images", root=root, check=True).stdout.splitlines()[1:]]
    assert "bb" not in repositories, repositories
    assert "busybox" in listed(root, "child:1", "/bin")
    assert "slow" in listed(root, "child:1", "/")
    assert_clean(root)


def test_many_readers_and_writers_never_see_a_locked_database(tmp_path: Path) -> None:
    """Processes and threads (the GUI's workers) at once, from the very first open."""
    root = tmp_path / "store"
    script = (
        "import sys\n"
        "from explorer.cli.main import run\n"
        "p = sys.argv[1]\n"
        "for i in range(4):\n"
        "    for argv in (['volume', 'create', f'v{p}-{i}'], ['images'], ['ps', '-a'], ['volume', 'ls']):\n"
        "        code = run(['--root', sys.argv[2], *argv])\n"
        "        if code:\n"
        "            sys.exit(code)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(p), str(root)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            env=env,
            text=True,
        )
        for p in range(6)
    ]
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        from explorer.api import Strata

        app = Strata(root)
        try:
            for i in range(10):
                app.volume_create(f"t{n}-{i}")
                app.images()
                app.containers(all=True)
                app.volumes()
        except BaseException as err:  # reported below
            errors.append(err)
        finally:
            app.close()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    for proc in procs:
        code, output = finish(proc)
        assert code == 0, output
    assert errors == []
    names = run_strata("volume", "ls", "-q", root=root, check=True).stdout.split()
    assert len(names) == 6 * 4 + 4 * 10
    assert_clean(root)


def test_opening_the_store_spares_unmarked_staging_while_a_writer_works(tmp_path: Path) -> None:
    """A writer makes its staging directory and marks it a moment later; a store opened
    in between (another process, another GUI thread) must not take it for a crash's."""
    from explorer.store.store import Store

    root = tmp_path / "store"
    Store(root).close()
    fresh = root / "tmp" / "layer-0123456789abcdef"
    holding, release = threading.Event(), threading.Event()

    def writer() -> None:
        with Store(root).gc_lock():
            holding.set()
            release.wait(30)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        assert holding.wait(30)
        fresh.mkdir()
        Store(root).close()
        assert fresh.is_dir(), "removed while a writer held the gc lock"
    finally:
        release.set()
        thread.join(30)
    Store(root).close()
    assert not fresh.exists(), "an unmarked staging directory of nobody is a crash's leftover"
