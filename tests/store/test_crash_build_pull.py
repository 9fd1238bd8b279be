"""SIGKILL ``strata build`` and ``strata pull`` at many points (issue 8).

After every kill the store checks clean and holds nothing half-done; redoing the work
reuses what had completed: a rebuild reports as CACHED every step the killed build had
reported done, and a re-pull downloads only the layers the killed pull had not
committed. The kill points follow the command's own progress (kill right after its
n-th line, plus a short delay), so they land in every step whatever the machine's speed.
With the load and commit kills of ``test_crash_safety`` that is well over the issue's 50 kill points.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from explorer.store.store import Store
from tests.capabilities import require_userns
from tests.fixtures import REPO_ROOT, run_strata
from tests.fixtures.services import Registry
from tests.store.test_crash_safety import assert_clean

BUILD_KILLS = 20
KILLS_PER_BUILD = 4
PULL_KILLS = 14
OFFSETS = (0.0, 0.015, 0.04, 0.08)

# Each RUN lasts at least 0.2 s, longer than the longest kill offset: a kill aimed at a
# running step lands while the build runs, however fast the machine is.
DOCKERFILE = """\
FROM bb:1
ARG N
RUN echo "$N" > /n.txt && sleep 0.2
COPY small.txt /c/
COPY many/ /many/
RUN mkdir /r && for i in $(seq 60); do echo $i > /r/f$i; done && sleep 0.2
COPY big.bin /big/
RUN head -c 400000 /dev/urandom > /r2.bin && sleep 0.2
WORKDIR /w
RUN cat /n.txt /c/small.txt > /w/all.txt && test -f /many/f99 && test -s /big/big.bin && sleep 0.2
"""


class Streamed:
    """A strata command whose stdout is read line by line as it runs."""

    def __init__(self, root: Path, *args: str) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        self.proc = subprocess.Popen([sys.executable, "-m", "explorer", "--root", str(root), *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     stdin=subprocess.DEVNULL, env=env, text=True)
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def kill_after(self, ready: Callable[[list[str]], bool], delay: float, timeout: float = 60) -> bool:
        """SIGKILL once the lines printed so far make ``ready`` true and ``delay`` passed;
        True when the kill landed before the command finished by itself."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not ready(self.lines) and self.proc.poll() is None and time.monotonic() < deadline:
                self._changed.wait(0.05)
        if delay:
            time.sleep(delay)
        landed = self.proc.poll() is None
        if landed:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self._reader.join(timeout=10)
        return landed


def events(lines: Sequence[str]) -> list[dict[str, Any]]:
    out = []
    for line in lines:
        try:
            out.append(json.loads(line))
        except ValueError:
            continue  # the last line may be cut by the kill
    return out


def steps_with(lines: Sequence[str], *statuses: str) -> set[int]:
    return {int(e["step"]) for e in events(lines) if "step" in e and e["status"] in statuses}


def steps_running(count: int, lines: list[str]) -> bool:
    return len(steps_with(lines, "running")) >= count


def lines_printed(count: int, lines: list[str]) -> bool:
    return len(lines) >= count


def make_context(where: Path) -> Path:
    where.mkdir()
    (where / "Dockerfile").write_text(DOCKERFILE)
    (where / "small.txt").write_text("small\n")
    many = where / "many"
    many.mkdir()
    for i in range(100):
        (many / f"f{i}").write_text(f"file {i}\n" * 20)
    (where / "big.bin").write_bytes(os.urandom(600_000))
    return where


def test_build_killed_at_many_points(tmp_path: Path, busybox_rootfs_tar: Path) -> None:
    """Groups of kills on one build: each attempt reuses what the ones before completed
    and is killed a little further on, then a rebuild must reuse all of it."""
    require_userns()
    root = tmp_path / "store"
    context = make_context(tmp_path / "ctx")
    run_strata("import", busybox_rootfs_tar, "bb:1", root=root, check=True)
    landed = 0
    kill_points: set[tuple[int, int]] = set()  # (steps complete, step running) when killed
    for group in range(BUILD_KILLS // KILLS_PER_BUILD):
        args = ("build", "--progress", "json", "--build-arg", f"N={group}", "-t", f"k:{group}", str(context))
        completed: set[int] = set()
        for attempt in range(KILLS_PER_BUILD):
            build = Streamed(root, *args)
            if group == 0 and attempt == 0:
                hit = build.kill_after(functools.partial(lines_printed, 0), 0.15)  # starting: open, plan, FROM
            else:
                # Into the attempt's first, second or third step that is not cached.
                running = 1 + (group + attempt) % 3
                offset = OFFSETS[(group + attempt) % len(OFFSETS)]
                hit = build.kill_after(functools.partial(steps_running, running), offset)
            landed += hit
            done = steps_with(build.lines, "done", "cached")
            completed |= done
            started = steps_with(build.lines, "running") - done
            kill_points.add((len(done), min(started, default=0)))
            assert_clean(root)
        again = run_strata(*args, root=root)
        assert again.returncode == 0, again.stdout + again.stderr
        cached = steps_with(again.stdout.splitlines(), "cached")
        assert completed <= cached, f"group {group}: steps {sorted(completed - cached)} had completed but ran again"
        assert len(completed) >= 3, f"group {group}: the attempts should get somewhere ({sorted(completed)})"
    assert_clean(root)
    listed = run_strata("ls", "k:0", "/w/all.txt", "--json", root=root, check=True)
    assert "all.txt" in listed.stdout
    assert landed >= BUILD_KILLS - 2, "the kills should land while the build runs"
    assert len(kill_points) >= 7, f"kills should spread over the steps: {sorted(kill_points)}"


# --- pull ---------------------------------------------------------------------------------------


def manifest_layers(registry: Registry, repository: str, tag: str) -> list[str]:
    import urllib.request

    request = urllib.request.Request(
        f"{registry.url}/v2/{repository}/manifests/{tag}",
        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json, "
                           "application/vnd.oci.image.manifest.v1+json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return [str(layer["digest"]) for layer in json.load(response)["layers"]]


def blob_gets(registry: Registry, since: int) -> list[str]:
    return [r.path.rsplit("/", 1)[-1] for r in registry.requests()[since:]
            if r.method == "GET" and "/blobs/sha256:" in r.path]


def layer_count(root: Path) -> tuple[int, int]:
    store = Store(root)
    try:
        return len(store.layers.all()), len(store.images.all())
    finally:
        store.close()


def test_pull_killed_at_many_points(tmp_path: Path, busybox_rootfs_tar: Path, registry: Registry) -> None:
    """Kills one after another on the same pull: every attempt fetches only what the
    attempts before had not committed, and the last pull exactly the rest."""
    source = tmp_path / "source"
    context = tmp_path / "pctx"
    context.mkdir()
    for n in range(5):
        (context / f"f{n}.bin").write_bytes(os.urandom(1_000_000))
    (context / "Dockerfile").write_text("FROM bb:1\n" + "".join(f"COPY f{n}.bin /l{n}/\n" for n in range(5)))
    name = f"{registry.address}/crash/app:1"
    run_strata("import", busybox_rootfs_tar, "bb:1", root=source, check=True)
    run_strata("build", "-q", "-t", name, context, root=source, check=True)
    run_strata("push", name, root=source, check=True)
    digests = manifest_layers(registry, "crash/app", "1")
    total = len(digests)

    root = tmp_path / "pulled"
    run_strata("images", root=root, check=True)
    landed = 0
    partial: set[int] = set()
    present = 0
    for i in range(PULL_KILLS):
        before = len(registry.requests())
        pull = Streamed(root, "pull", name)
        # "Pulling from", one line per layer (Already exists / Waiting), then the transfers.
        transfers = (i * 5) % (2 * (total - present) - 1)  # lines of Downloading / Pull complete
        landed += pull.kill_after(functools.partial(lines_printed, 1 + total + transfers), OFFSETS[i % len(OFFSETS)])
        assert_clean(root)
        fetched = blob_gets(registry, before)
        assert not set(fetched) & set(digests[:present]), f"kill {i}: fetched layers it had"
        assert sum("Already exists" in line for line in pull.lines) == present
        now, images = layer_count(root)
        assert now >= present
        present = now
        partial.add(present)
        if images:  # finished before the kill: start over
            assert present == total
            run_strata("rmi", name, root=root, check=True)
            present = 0

    before = len(registry.requests())
    again = run_strata("pull", name, root=root)
    assert again.returncode == 0, again.stdout + again.stderr
    assert again.stdout.count("Already exists") == present
    fetched = [d for d in blob_gets(registry, before) if d in digests]
    assert sorted(fetched) == sorted(digests[present:]), f"with {present} layers here the pull fetched {fetched}"
    assert_clean(root)
    listed = run_strata("ls", name, "/l4", "--json", root=root, check=True)
    assert "f4.bin" in listed.stdout
    assert landed >= 10, "the kills should land while the pull runs"
    # Where the kills land depends on the machine's speed; two different outcomes show the
    # kills did not all hit the same moment (three is usual on a quiet machine).
    assert len(partial) >= 2, f"kills should leave different numbers of layers: {sorted(partial)}"


@pytest.mark.parametrize("where", ["trash", "staging"])
def test_leftovers_owned_by_subordinate_ids_are_removed(
    request: pytest.FixtureRequest, where: str, tmp_path: Path, busybox_rootfs_tar: Path
) -> None:
    """A crash can leave tmp/ holding files a rootless container gave to subordinate ids
    (a container being removed, a RUN's upperdir): opening the store removes them through
    the user namespace, and so does removing a volume such a container wrote to."""
    from tests.capabilities import real_root, require_subids
    from tests.runtime.test_subids import _as_test_user

    if real_root():
        _as_test_user(request)
        return
    from explorer.api import Strata
    from explorer.api.containers import RunOptions

    require_userns()
    require_subids()
    app = Strata(tmp_path / "store")
    app.import_rootfs(str(busybox_rootfs_tar), "bb:1")
    app.volume_create("data")
    script = "mkdir /x /v/y && chown 1000:1000 /x /v/y && echo > /x/f && echo > /v/y/f && chmod 700 /x /v/y"
    info = app.create("bb:1", RunOptions(cmd=["sh", "-c", script], volumes=["data:/v"]))
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        assert app.start_attached(info.id, None, null, null) == 0
    finally:
        os.close(null)
    diff = app.container_diff_dir(info.id)
    leftover = app.store.tmp / ("trash-0123456789ab" if where == "trash" else "layer-0123456789ab")
    leftover.mkdir()
    if where == "staging":
        (leftover / "owner").write_text("999999999\n")  # a writer that no longer runs
    os.rename(diff, leftover / "diff")  # as a crash between the rename to trash and the removal
    assert os.stat(leftover / "diff" / "x").st_uid == 1000  # host id 100999
    app.close()

    reopened = Strata(tmp_path / "store")
    reopened.store  # noqa: B018 - opening cleans
    assert not leftover.exists()
    reopened.rm(info.id, force=True)
    reopened.volume_rm(["data"])
    assert not (tmp_path / "store" / "volumes" / "data").exists()
    assert os.listdir(tmp_path / "store" / "tmp") == []
    assert reopened.check() == []
    reopened.close()


def test_a_volume_removal_cut_short_finishes_at_the_next_open(tmp_path: Path) -> None:
    """``volume rm`` marks the directory, commits, then deletes it: a crash before the
    commit keeps the volume whole, a crash after it leaves nothing once the store opens."""
    store = Store(tmp_path / "store")
    for name in ("kept", "gone"):
        store.volumes.create(name)
        (store.volumes.data_dir(name) / "file").write_text(name)
        (store.volumes.dir / name / "owner").write_text("999999999\n")  # marked by a writer now dead
    with store.meta.transaction() as conn:
        conn.execute("DELETE FROM volumes WHERE name='gone'")  # its removal had committed
    store.close()
    reopened = Store(tmp_path / "store")
    try:
        assert (reopened.volumes.data_dir("kept") / "file").read_text() == "kept"
        assert not (reopened.volumes.dir / "kept" / "owner").exists()
        assert not (reopened.volumes.dir / "gone").exists()
        assert [v.name for v in reopened.volumes.all()] == ["kept"]
    finally:
        reopened.close()
