"""The store's user namespace (runtime/storens.py): one per user, kept by a keeper,
joined by every rootless ``strata`` process; real root never enters one."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

from explorer.errors import RuntimeUnavailable
from explorer.runtime import storens
from tests.capabilities import missing, real_root, require_userns
from tests.fixtures import REPO_ROOT

USER = "strata-test"
PROBE = (
    "import os, sys; from explorer.runtime import storens; m = storens.enter(); "
    "print(os.stat('/proc/self/ns/user').st_ino, m.mode, os.geteuid())"
)


def _as_user(code: str, tree: Path) -> subprocess.CompletedProcess[str]:
    python = "/opt/strata-venv/bin/python"
    home = subprocess.run(["getent", "passwd", USER], capture_output=True, text=True).stdout.split(":")[5]
    return subprocess.run(
        [
            "runuser",
            "-u",
            USER,
            "--",
            "env",
            "-i",
            f"HOME={home}",
            "LANG=C.UTF-8",
            "PATH=/usr/bin:/bin:/usr/sbin:/sbin",
            f"PYTHONPATH={tree}",
            python,
            "-c",
            code,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd="/",
    )


def test_real_root_stays_in_the_initial_namespace() -> None:
    if not real_root():
        pytest.skip("needs real root: the unprivileged pass checks the namespace it runs in")
    assert storens.enter().mode == "root"
    assert storens.in_initial_ns() and storens.privileged()
    assert storens.owner_filter()(4_000_000, 7)


def test_the_unprivileged_pass_runs_inside_the_namespace() -> None:
    if real_root():
        pytest.skip("the unprivileged pass runs this")
    require_userns()
    mapping = storens.current()
    assert mapping.mode == "subids", mapping
    assert mapping.ids == 65537
    can_own = storens.owner_filter()
    assert can_own(0, 0) and can_own(1000, 42) and can_own(65536, 65536)
    assert not can_own(65537, 0) and not can_own(0, 4_000_000)
    assert storens.enter() == mapping  # a second enter is a no-op
    assert storens.single_id_advice() is None


def test_processes_of_one_user_share_one_namespace_until_its_keeper_goes(tmp_path: Path) -> None:
    if not real_root():
        pytest.skip("runs strata-test through runuser: the root pass does this")
    if subprocess.run(["id", "-u", USER], capture_output=True).returncode != 0:
        missing(f"no user {USER} (packaging/dev.sh creates it)")
    tree = _readable(tmp_path)
    _kill_keepers()  # from a known start: no keeper of an earlier mapping or run
    first, second = _as_user(PROBE, tree), _as_user(PROBE, tree)
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    ino_a, mode_a, euid_a = first.stdout.split()
    ino_b, _mode, _euid = second.stdout.split()
    assert (mode_a, euid_a) == ("subids", "0")
    assert ino_a == ino_b  # joined, not made again
    keepers = subprocess.run(["pgrep", "-u", USER, "-f", "strata-keeper"], capture_output=True, text=True)
    assert keepers.stdout.split(), "a keeper holds the namespace"
    for pid in keepers.stdout.split():
        assert Path(f"/proc/{pid}/ns/user").stat().st_ino == int(ino_a)
    _kill_keepers()
    third = _as_user(PROBE, tree)
    assert third.returncode == 0, third.stderr
    assert third.stdout.split()[0] != ino_a  # a new keeper, a new namespace, the same maps
    assert third.stdout.split()[1] == "subids"


def test_a_process_with_threads_is_told_to_enter_first(tmp_path: Path) -> None:
    if not real_root():
        pytest.skip("runs strata-test through runuser: the root pass does this")
    if subprocess.run(["id", "-u", USER], capture_output=True).returncode != 0:
        missing(f"no user {USER} (packaging/dev.sh creates it)")
    code = (
        "import threading, time; from explorer.runtime import storens; "
        "threading.Thread(target=time.sleep, args=(2,), daemon=True).start()\n"
        "try:\n    storens.enter()\nexcept Exception as e:\n    print(type(e).__name__, e)"
    )
    done = _as_user(code, _readable(tmp_path))
    assert done.stdout.startswith("RuntimeUnavailable the store's user namespace must be entered before"), done


def test_threads_refuse_in_process_when_not_yet_entered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(storens, "in_initial_ns", lambda: True)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    stop = threading.Event()
    worker = threading.Thread(target=stop.wait)
    worker.start()
    try:
        with pytest.raises(RuntimeUnavailable, match="before this process starts threads"):
            storens.enter()
    finally:
        stop.set()
        worker.join()


def _kill_keepers() -> None:
    subprocess.run(["pkill", "-KILL", "-u", USER, "-f", "strata-keeper"], check=False)
    for _ in range(100):  # until reaped: a zombie still shows its namespace
        if not subprocess.run(["pgrep", "-u", USER, "-f", "strata-keeper"], capture_output=True).stdout:
            return
        time.sleep(0.05)


def _readable(tmp_path: Path) -> Path:
    probe = subprocess.run(["runuser", "-u", USER, "--", "test", "-r", str(REPO_ROOT / "explorer/__init__.py")])
    if probe.returncode == 0:
        return REPO_ROOT
    import shutil

    tree = tmp_path / "tree"
    shutil.copytree(REPO_ROOT / "explorer", tree / "explorer", ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(["chmod", "-R", "a+rX", str(tmp_path)], check=True)
    return tree
