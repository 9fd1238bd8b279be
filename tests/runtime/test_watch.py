"""Every wait on a helper has a deadline and a cancel path (``runtime/watch.py``).

A helper that stops making progress is killed after ``idle`` seconds and its caller gets
one clear error; a helper that keeps working, or that waits for a slow caller, is left
alone however long it takes; a cancel returns at once. After each, nothing the helper
started is left running: the test process's tree of processes is what it was before.

The helpers work on a plain directory (``in_directory``), in a fresh user namespace
(``call_in_userns``) and, for ``exec``, inside a running container.
"""

from __future__ import annotations

import functools
import io
import os
import tarfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from explorer.errors import Cancelled, HelperStalled
from explorer.runtime import Process, call_in_userns, exec_in, in_directory, start
from explorer.runtime.tarcopy import Source, send
from explorer.runtime.watch import tree
from tests.capabilities import require_userns
from tests.runtime.harness import Harness

IDLE = 0.3
PROMPT_S = 5.0  # a cancel or a stall is acted on within POLL_S; this only bounds a hang


def _spin(seconds: float) -> int:
    """Busy for ``seconds``: progress the whole time."""
    end = time.monotonic() + seconds
    turns = 0
    while time.monotonic() < end:
        turns += 1
    return turns


def _write_then_hang(fd: int) -> None:
    os.write(fd, b"x" * 1000)
    time.sleep(3600)


@pytest.fixture
def processes() -> Iterator[None]:
    """The test must leave the process tree below it as it found it."""
    before = set(tree(os.getpid()))
    yield
    assert set(tree(os.getpid())) == before, "a helper process was left behind"


@pytest.fixture
def big_tree(tmp_path: Path) -> Path:
    """A volume-shaped directory of 24 MB in 48 files: many pipe-fulls."""
    require_userns()
    base = tmp_path / "data"
    for d in range(4):
        (base / f"d{d}").mkdir(parents=True)
        for f in range(12):
            (base / f"d{d}" / f"f{f}").write_bytes(bytes([d * 16 + f]) * 500_000)
    return base


def test_a_stalled_helper_is_stopped_with_a_clear_error(tmp_path: Path, processes: None) -> None:
    require_userns()
    started = time.monotonic()
    with (
        in_directory(str(tmp_path), time.sleep, 3600, where="volume v", idle=IDLE) as helper,
        pytest.raises(HelperStalled) as caught,
    ):
        helper.wait()
    assert time.monotonic() - started < PROMPT_S
    assert str(caught.value) == (
        "volume v: the helper process made no progress for 0.3 s and was stopped; "
        "look for a hung mount or a FIFO in the way, then try again"
    )
    assert not os.path.exists(f"/proc/{helper.helper.pid}")
    with pytest.raises(HelperStalled):
        call_in_userns(time.sleep, 3600, idle=IDLE)


def test_a_helper_that_stalls_mid_stream_ends_the_copy(tmp_path: Path, processes: None) -> None:
    """What it wrote was read: the pipe stands empty, so the wait is the helper's."""
    require_userns()
    r, w = os.pipe()
    with in_directory(str(tmp_path), _write_then_hang, w, keep_fds=(w,), idle=IDLE) as helper:
        os.close(w)
        with open(r, "rb") as stream:
            got = stream.read()  # ends when the watch kills the helper
        assert got == b"x" * 1000
        with pytest.raises(HelperStalled):
            helper.wait()


def test_work_that_goes_on_is_not_a_stall(tmp_path: Path, processes: None) -> None:
    require_userns()
    with in_directory(str(tmp_path), _spin, 3 * IDLE, idle=IDLE) as helper:
        assert helper.wait() > 0


def test_a_long_copy_to_a_slow_reader_is_not_a_stall(big_tree: Path, processes: None) -> None:
    """The reader pauses longer than the deadline, twice: the helper waits on a full pipe,
    which is the reader's turn, not a stall; the copy arrives whole."""
    r, w = os.pipe()
    copy = functools.partial(send, where="volume data")
    with in_directory(str(big_tree), copy, w, Source.parse("/"), keep_fds=(w,), idle=IDLE) as helper:
        os.close(w)
        data = bytearray()
        with open(r, "rb", buffering=0) as stream:
            for _pause in range(2):
                data += stream.read(65536)
                time.sleep(2 * IDLE)
            while chunk := stream.read(1 << 20):
                data += chunk
        assert helper.wait() is None
    with tarfile.open(fileobj=io.BytesIO(bytes(data))) as tar:
        files = [m for m in tar.getmembers() if m.isfile()]
    assert len(files) == 48 and sum(m.size for m in files) == 24_000_000


def test_cancel_mid_copy_returns_promptly(big_tree: Path, processes: None) -> None:
    r, w = os.pipe()
    cancel = threading.Event()
    copy = functools.partial(send, where="volume data")
    with in_directory(
        str(big_tree), copy, w, Source.parse("/"), keep_fds=(w,), where="volume data", cancel=cancel
    ) as helper:
        os.close(w)
        with open(r, "rb", buffering=0) as stream:
            first = stream.read(65536)  # the copy is under way, and waits for us to read on
            cancel.set()
            asked = time.monotonic()
            with pytest.raises(Cancelled) as caught:
                helper.wait()
            assert time.monotonic() - asked < PROMPT_S
            rest = len(stream.read())  # what was in the pipe, then the end: no writer is left
    assert first and len(first) + rest < 24_000_000  # it stopped part of the way
    assert str(caught.value) == "volume data cancelled"


@pytest.fixture
def running(make_container: Callable[..., Harness]) -> Iterator[int]:
    """A container running ``sleep``: its init's pid. One driver: an exec joins the
    namespaces of a root already mounted, which no driver changes."""
    with open(os.devnull, "wb") as null:
        container = start(make_container("overlay").config(["sleep", "60"]), stdout=null.fileno())
    try:
        yield container.pid
    finally:
        container.kill()
        container.wait(timeout=10)


def test_an_exec_that_stalls_getting_in_is_stopped(running: int, processes: None) -> None:
    """Looking up a group by name opens /etc/group, here a FIFO no one writes: the exec
    never gets to its program."""
    assert exec_in(running, Process(["sh", "-c", "rm /etc/group && mkfifo /etc/group"])) == 0
    with pytest.raises(HelperStalled):
        exec_in(running, Process(["true"], user="app:extra"), idle=IDLE)
    assert exec_in(running, Process(["true"], user="0:0"), idle=IDLE) == 0  # numeric: no lookup


def test_an_exec_runs_past_the_deadline_and_stops_when_cancelled(running: int, processes: None) -> None:
    r, w = os.pipe()
    cancel = threading.Event()
    outcome: list[object] = []

    def run() -> None:
        script = f"echo started; sleep {3 * IDLE}; echo idle-is-fine; exec sleep 3171"
        try:
            outcome.append(exec_in(running, Process(["sh", "-c", script]), stdout=w, idle=IDLE, cancel=cancel))
        except Cancelled as e:
            outcome.append(e)

    worker = threading.Thread(target=run)
    worker.start()
    try:
        with open(r, "rb", buffering=0) as out:
            lines = [out.readline(), out.readline()]
            cancel.set()
            asked = time.monotonic()
    finally:
        cancel.set()
        worker.join(30)
        os.close(w)
    assert time.monotonic() - asked < PROMPT_S
    assert lines == [b"started\n", b"idle-is-fine\n"]
    assert len(outcome) == 1 and isinstance(outcome[0], Cancelled)
    assert str(outcome[0]) == f"exec in the container of process {running} cancelled"
