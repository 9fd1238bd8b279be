"""Fixtures of the distribution tests: the Debian base image, stores that hold it, and
the ``strata`` command run as this test's user or (from the root pass) as another one.

These tests run in both passes of ``packaging/dev.sh test``: as root, and as the
unprivileged ``strata-test`` (with a subordinate range), where the test process itself
lives in the store's user namespace. Tests that compare root with rootless, or with
Docker, run in the root pass and drive the other side through ``runuser``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.capabilities import in_ci, missing, real_root, require_userns
from tests.fixtures import REPO_ROOT, run_strata
from tests.fixtures import debian as deb

BASE = "deb:12"
SUBIDS_USER = "strata-test"
SINGLE_USER = "strata-single"  # dev.sh makes it with no subordinate range


@pytest.fixture(scope="session")
def debian_tar() -> Path:
    """The cached debootstrap tarball; built here when missing and this is real root."""
    path = deb.tarball_path()
    if path.exists():
        return path
    if not real_root():
        missing(f"the Debian base tarball {path} is missing; `bash packaging/dev.sh test` (as root) makes it")
    if shutil.which("debootstrap") is None and not os.path.exists("/usr/sbin/debootstrap"):
        missing("debootstrap is not installed (apt-get install debootstrap)")
    if deb.host_mirror() is None:
        missing("no Debian bookworm mirror among the host's apt sources")
    try:
        return deb.build_tarball(path)
    except (RuntimeError, subprocess.SubprocessError, OSError) as e:
        missing(f"cannot bootstrap Debian from the host's mirror: {e}")


def _store_with_base(root: Path, tar: Path) -> Path:
    require_userns()
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    run_strata("import", tar, BASE, root=root, check=True, timeout=600)
    return root


@pytest.fixture(scope="module")
def deb_store(tmp_path_factory: pytest.TempPathFactory, debian_tar: Path) -> Path:
    """A store (shared by one module's tests) holding the Debian base as ``deb:12``."""
    return _store_with_base(tmp_path_factory.mktemp("deb-store") / "store", debian_tar)


def strata_json(*args: str | os.PathLike[str], root: Path) -> list[dict]:
    out = run_strata(*args, root=root, check=True, timeout=900).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def step_statuses(events: list[dict]) -> list[tuple[str, str]]:
    """(instruction, cached|done) of each step of a ``build --progress json``."""
    out: dict[int, tuple[str, str]] = {}
    for e in events:
        if e.get("status") in ("cached", "done") and e.get("vertex"):
            out[e["vertex"]] = (e.get("instruction", ""), e["status"])
    return [out[k] for k in sorted(out)]


class OtherUser:
    """``strata`` as another local user, from the root pass: its own store under a
    directory it owns, the checkout copied where it can read it."""

    def __init__(self, name: str, tree: Path) -> None:
        self.name = name
        self.tree = tree
        self.home = Path(
            subprocess.run(["getent", "passwd", name], capture_output=True, text=True, check=True).stdout.split(":")[5]
        )
        self.python = _venv_python()

    def run(
        self,
        *args: str | os.PathLike[str],
        root: Path,
        check: bool = False,
        timeout: float = 900,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        env = [
            f"HOME={self.home}",
            f"USER={self.name}",
            f"LOGNAME={self.name}",
            "LANG=C.UTF-8",
            f"PATH={os.path.dirname(self.python)}:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
            f"PYTHONPATH={self.tree}",
            "PYTHONDONTWRITEBYTECODE=1",
        ]
        command = [
            "runuser",
            "-u",
            self.name,
            "--",
            "env",
            "-i",
            "-C",
            str(self.tree),
            *env,
            self.python,
            "-m",
            "explorer",
            "--root",
            str(root),
            *(os.fspath(a) for a in args),
        ]
        proc = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input,
            stdin=subprocess.DEVNULL if input is None else None,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"as {self.name}: strata {' '.join(map(str, args))} exited {proc.returncode}\n"
                f"--- stdout ---\n{proc.stdout}--- stderr ---\n{proc.stderr}"
            )
        return proc

    def dir(self, name: str) -> Path:
        """A fresh directory this user owns (a store, a build context)."""
        path = Path(tempfile.mkdtemp(prefix=f"strata-{name}-", dir="/tmp"))
        subprocess.run(["chown", f"{self.name}:", str(path)], check=True)
        return path

    def remove(self, path: Path) -> None:
        """Remove what this user's store left (files of its subordinate ids included)."""
        subprocess.run(["rm", "-rf", "--one-file-system", str(path)], check=False)


def _venv_python() -> str:
    for candidate in (os.environ.get("STRATA_VENV", ""), "/opt/strata-venv"):
        if candidate and os.access(os.path.join(candidate, "bin", "python"), os.X_OK):
            return os.path.join(candidate, "bin", "python")
    missing("no shared venv that other users can run; `bash packaging/dev.sh test` makes /opt/strata-venv")


@pytest.fixture(scope="session")
def readable_tree() -> Iterator[Path]:
    """The checkout where every user can read it (a copy when it sits under /root)."""
    probe = subprocess.run(
        ["runuser", "-u", SUBIDS_USER, "--", "test", "-r", str(REPO_ROOT / "pyproject.toml")], capture_output=True
    )
    if probe.returncode == 0:
        yield REPO_ROOT
        return
    holder = Path(tempfile.mkdtemp(prefix="strata-distro-tree-"))
    tree = holder / REPO_ROOT.name
    ignore = shutil.ignore_patterns(".git", "__pycache__", "*.egg-info", ".mypy_cache", ".pytest_cache")
    shutil.copytree(REPO_ROOT, tree, symlinks=True, ignore=ignore)
    subprocess.run(["chmod", "-R", "a+rX", str(holder)], check=True)
    yield tree
    shutil.rmtree(holder, ignore_errors=True)


def other_user(name: str, tree: Path) -> OtherUser:
    if not real_root():
        pytest.skip(f"runs {name} through runuser: the root pass does this")
    if subprocess.run(["id", "-u", name], capture_output=True).returncode != 0:
        if in_ci():
            pytest.fail(f"missing capability (CI=true): user {name} (packaging/dev.sh creates it)", pytrace=False)
        pytest.skip(f"no user {name}: packaging/dev.sh creates it")
    return OtherUser(name, tree)
