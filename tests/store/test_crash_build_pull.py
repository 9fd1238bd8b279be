"""SIGKILL ``strata build`` and ``strata pull`` at many points (issue 8).

After every kill the store checks clean and holds nothing half-done; redoing the work
reuses what had completed: a rebuild reports as CACHED every step the killed build had
reported done, and a re-pull downloads only the layers the killed pull had not
committed. The kills are at named points of the code (``explorer/holds.py``), so each
lands exactly where it is aimed whatever the machine's speed.
With the load and commit kills of ``test_crash_safety`` that is well over the issue's 50 kill points.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from explorer.store.store import Store
from tests.capabilities import require_userns
from tests.fixtures import REPO_ROOT, run_strata
from tests.fixtures.services import Registry
from tests.store.conftest import alternate
from tests.store.test_crash_safety import assert_clean

PULL_KILLS = 14

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


def held(root: Path, point: str, *args: str, timeout: float = 120) -> list[str]:
    """Run ``strata ARGS`` until it reaches the named hold point (``explorer/holds.py``),
    SIGKILL it there and return what it printed on stdout. Fails when the command ends
    without reaching the point: every kill lands exactly where it is aimed."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "STRATA_TEST_HOLD": point}
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "explorer", "--root", str(root), *args],
            stdout=out,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            env=env,
            text=True,
        )
        assert proc.stderr is not None
        errors: list[str] = []
        deadline = time.monotonic() + timeout
        for line in proc.stderr:
            errors.append(line)
            if line.startswith("strata-test-hold "):
                break
            assert time.monotonic() < deadline, "".join(errors)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stderr.close()
        out.seek(0)
        printed = out.read().splitlines()
    assert errors and errors[-1].startswith("strata-test-hold "), (
        f"{point}: the command ended without reaching it (exit {proc.returncode})\n"
        + "".join(errors)
        + "\n".join(printed)
    )
    return printed


def test_build_killed_at_every_named_point(tmp_path: Path, busybox_rootfs_tar: Path) -> None:
    """SIGKILL at each point of each step that makes something (running; executed but
    not in the cache; cached but not reported) and inside each layer commit (in place
    but not recorded; recorded but still marked). After every kill the store checks
    clean; what the killed build reported done is cached in the next attempt; at the
    end a rebuild runs nothing. The kills alternate between the storage drivers step by
    step (a step's cache key does not depend on the driver), so each phase of a RUN is
    killed on overlay and on vfs without running the sequence twice."""
    require_userns()
    root = tmp_path / "store"
    context = make_context(tmp_path / "ctx")
    run_strata("import", busybox_rootfs_tar, "bb:1", root=root, check=True)

    def args(n: str, driver: str = "overlay") -> tuple[str, ...]:
        return (
            *("--storage-driver", driver),
            *("build", "--progress", "json", "--build-arg", f"N={n}", "-t", f"k:{n}", str(context)),
        )

    run_strata(*args("first"), root=root, check=True)  # what does not depend on N is cached from now on
    probe = run_strata(*args("probe"), root=root, check=True).stdout.splitlines()
    runnable = sorted(steps_with(probe, "running"))
    assert len(runnable) >= 6, probe
    points = [f"build.step{s}.{phase}" for s in runnable for phase in ("running", "executed", "recorded")]
    points += ["layer.renamed@1", "layer.committed@1"] * 3
    kills = 0
    for group, chosen in (("steps", points[: len(points) - 6]), ("layers", points[len(points) - 6 :])):
        done_before: set[int] = set()
        for i, point in enumerate(chosen):
            printed = held(root, point, *args(group, alternate(i // 3)))
            kills += 1
            assert_clean(root)
            cached = steps_with(printed, "cached")
            assert done_before <= cached, f"{point}: steps {sorted(done_before - cached)} had completed but ran again"
            done_before = steps_with(printed, "done", "cached")
        again = run_strata(*args(group, "vfs"), root=root)
        assert again.returncode == 0, again.stdout + again.stderr
        assert done_before <= steps_with(again.stdout.splitlines(), "cached"), again.stdout
        if group == "steps":  # its last kill came after the last step was cached
            assert steps_with(again.stdout.splitlines(), "running") == set(), again.stdout
        assert_clean(root)
    listed = run_strata("ls", "k:steps", "/w/all.txt", "--json", root=root, check=True)
    assert "all.txt" in listed.stdout
    assert kills == len(points) >= 24


# --- pull ---------------------------------------------------------------------------------------


def manifest_layers(registry: Registry, repository: str, tag: str) -> list[str]:
    import urllib.request

    request = urllib.request.Request(
        f"{registry.url}/v2/{repository}/manifests/{tag}",
        headers={
            "Accept": "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json"
        },
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return [str(layer["digest"]) for layer in json.load(response)["layers"]]


def blob_gets(registry: Registry, since: int) -> list[str]:
    return [
        r.path.rsplit("/", 1)[-1]
        for r in registry.requests()[since:]
        if r.method == "GET" and "/blobs/sha256:" in r.path
    ]


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
    kills = 0
    partial: set[int] = set()
    present = 0
    # Each attempt dies inside its first layer commit: in place but not recorded (the
    # next open removes it), or recorded but still marked. So every second attempt adds a
    # layer, until all are here; the kills land exactly there whatever the machine's speed.
    points = ("layer.renamed@1", "layer.committed@1")
    for i in range(PULL_KILLS):
        if present == total:
            break
        before = len(registry.requests())
        printed = held(root, points[i % 2], "pull", name)
        kills += 1
        assert_clean(root)
        fetched = blob_gets(registry, before)
        assert not set(fetched) & set(digests[:present]), f"kill {i}: fetched layers it had"
        assert sum("Already exists" in line for line in printed) == present
        now, images = layer_count(root)
        assert now >= present and images == 0
        present = now
        partial.add(present)

    before = len(registry.requests())
    again = run_strata("pull", name, root=root)
    assert again.returncode == 0, again.stdout + again.stderr
    assert again.stdout.count("Already exists") == present
    fetched = [d for d in blob_gets(registry, before) if d in digests]
    assert sorted(fetched) == sorted(digests[present:]), f"with {present} layers here the pull fetched {fetched}"
    assert_clean(root)
    listed = run_strata("ls", name, "/l4", "--json", root=root, check=True)
    assert "f4.bin" in listed.stdout
    assert kills >= total, f"{kills} kills for {total} layers"
    assert len(partial) >= 3, f"kills should leave different numbers of layers: {sorted(partial)}"


@pytest.mark.parametrize("where", ["trash", "staging"])
def test_leftovers_owned_by_subordinate_ids_are_removed(
    request: pytest.FixtureRequest, where: str, driver: str, tmp_path: Path, busybox_rootfs_tar: Path
) -> None:
    """A crash can leave tmp/ holding files a rootless container gave to subordinate ids
    (a container being removed, a RUN's upperdir): opening the store removes them through
    the user namespace, and so does removing a volume such a container wrote to. The
    container's own files are its diff (overlay) or its whole root (vfs)."""
    from tests.capabilities import real_root, require_subids
    from tests.runtime.test_subids import _as_test_user

    if real_root():
        _as_test_user(request)
        return
    from explorer.api import Strata
    from explorer.api.containers import RunOptions

    require_userns()
    require_subids()
    app = Strata(tmp_path / "store", storage_driver=driver)
    app.import_rootfs(str(busybox_rootfs_tar), "bb:1")
    app.volume_create("data")
    script = "mkdir /x /v/y && chown 1000:1000 /x /v/y && echo > /x/f && echo > /v/y/f && chmod 700 /x /v/y"
    info = app.create("bb:1", RunOptions(cmd=["sh", "-c", script], volumes=["data:/v"]))
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        assert app.start_attached(info.id, None, null, null) == 0
    finally:
        os.close(null)
    diff = app.store.containers.content_dir(app.store.containers.get(info.id))
    leftover = app.store.tmp / ("trash-0123456789ab" if where == "trash" else "layer-0123456789ab")
    leftover.mkdir()
    if where == "staging":
        (leftover / "owner").write_text("999999999\n")  # a writer that no longer runs
    os.rename(diff, leftover / "diff")  # as a crash between the rename to trash and the removal
    assert os.stat(leftover / "diff" / "x").st_uid == 1000  # host id 100999
    app.close()

    reopened = Strata(tmp_path / "store", storage_driver=driver)
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
