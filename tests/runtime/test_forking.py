"""Forks from a process with threads go through the single-threaded fork server
(issue 14, the fork hazard): a lock another thread holds cannot hang the child, and
container starts from several threads of such a process never hang."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from explorer.runtime import forking
from tests.capabilities import require_userns
from tests.fixtures import REPO_ROOT
from tests.runtime import forking_targets


@pytest.fixture(autouse=True)
def server() -> Iterator[None]:
    """As the window does: the server first (then threads); gone after each test, so
    other tests' monkeypatches keep reaching the children they fork."""
    forking.ensure_server()
    yield
    forking.stop_server()


def _read_some(fd: int, timeout: float) -> bytes:
    import select

    ready, _w, _x = select.select([fd], [], [], timeout)
    return os.read(fd, 100) if ready else b""


def test_a_lock_held_by_another_thread_does_not_reach_the_child() -> None:
    """The hazard itself, then its fix: a child forked directly while another thread
    holds a lock it needs hangs; forked by the server it takes the lock at once."""
    entered, release = threading.Event(), threading.Event()

    def holder() -> None:
        with forking_targets.HELD:
            entered.set()
            release.wait(60)

    thread = threading.Thread(target=holder, daemon=True)
    thread.start()
    entered.wait(10)
    try:
        r, w = os.pipe()
        pid = os.fork()  # what the runtime used to do from a worker thread
        if pid == 0:
            forking_targets.needs_the_lock(w)
            os._exit(0)
        os.close(w)
        assert _read_some(r, 1.0) == b"", "a directly forked child got a lock another thread held"
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        os.close(r)

        r, w = os.pipe()
        child = forking.fork_call(forking_targets.needs_the_lock, w, fds=[w])
        os.close(w)
        assert _read_some(r, 20.0) == b"took it\n"
        assert child.wait(20) == 0
        os.close(r)
    finally:
        release.set()
        thread.join()


def test_descriptors_keep_their_numbers_and_exit_codes_come_back() -> None:
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait, daemon=True)  # a second thread: the server is used
    thread.start()
    try:
        r, w = os.pipe()
        child = forking.fork_call(forking_targets.exit_with, 7, w, b"hello", fds=[w])
        os.close(w)
        assert child.wait(20) == 7
        assert os.read(r, 10) == b"hello"
        os.close(r)
        r, w = os.pipe()
        slow = forking.fork_call(forking_targets.needs_the_lock, w, fds=[w])
        os.close(w)
        assert slow.wait(20) == 0 and os.read(r, 20) == b"took it\n"
        os.close(r)
    finally:
        stop.set()
        thread.join()


SCRIPT = r"""
import os, sys, threading, time
from explorer import runtime
from explorer.runtime import forking
from tests.runtime import forking_targets

forking.ensure_server()  # as the window does, before its threads

rootfs, runs, workers = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
hold = threading.Event()
def holder():  # another thread holds a lock the whole time, as a busy window would
    with forking_targets.HELD:
        hold.wait()
threading.Thread(target=holder, daemon=True).start()
codes, errors = [], []
lock = threading.Lock()
def worker(n):
    import shutil
    mine = os.path.join(sys.argv[4], f"root-{n}")  # a root per worker: starts on one root race over mount points
    shutil.copytree(rootfs, mine, symlinks=True)
    for i in range(runs // workers):
        run_dir = os.path.join(sys.argv[4], f"{n}-{i}")
        os.makedirs(run_dir)
        if n % 2:  # half the workers start vfs containers, half overlay ones over the same root
            root = runtime.RootFS("vfs", rootdir=mine)
        else:
            upper, work = os.path.join(run_dir, "diff"), os.path.join(run_dir, "work")
            os.makedirs(upper)
            os.makedirs(work)
            root = runtime.RootFS("overlay", [mine], upper, work)
        config = runtime.ContainerConfig(rootfs=root,
                                         process=runtime.Process(args=["/bin/sh", "-c", f"exit {i % 3}"]),
                                         runtime_dir=run_dir, network="host")
        try:
            null = os.open(os.devnull, os.O_WRONLY)
            code = runtime.start(config, stdout=null, stderr=null).wait(60)
            os.close(null)
            with lock:
                codes.append((i % 3, code))
        except Exception as e:
            with lock:
                errors.append(repr(e))
threads = [threading.Thread(target=worker, args=(n,)) for n in range(workers)]
for t in threads: t.start()
for t in threads: t.join()
hold.set()
bad = [c for c in codes if c[0] != c[1]]
print(len(codes), len(bad), len(errors), errors[:3])
"""


@pytest.mark.timeout(600)
def test_hundreds_of_starts_from_threads_never_hang(tmp_path: Path, busybox_rootfs_dir: Path) -> None:
    require_userns()
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(busybox_rootfs_dir), "200", "4", str(tmp_path / "runs")],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO_ROOT,
        timeout=500,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    done, bad, errors, *_ = proc.stdout.split(maxsplit=3)
    assert (done, bad, errors) == ("200", "0", "0"), proc.stdout + proc.stderr
