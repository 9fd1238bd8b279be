"""What the tests of the CLI's verbs share: a store made once per module, the real
``strata`` command bound to it, and the checks every failure must pass.

A failure of a verb is one line on stderr that starts with ``Error:`` (no traceback, no
"internal error") and the exit status docker's CLI uses. Docker, where its daemon runs,
is the oracle for those statuses: `docker_status` runs the same words against it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.fixtures import REPO_ROOT, run_strata

IMAGE = "test/busybox:1"
FULL_ID = re.compile(r"[0-9a-f]{64}")
IMAGE_ID = re.compile(r"sha256:[0-9a-f]{64}")
# How docker's units.HumanDuration words a short age; a slow machine may reach the minute.
SHORT_AGE = r"(?:Less than a second|\d+ seconds?|About a minute)"


def one_error(proc: subprocess.CompletedProcess[str], code: int) -> str:
    """The text after ``Error: `` of a command that failed as a user should see it."""
    shown = f"exit {proc.returncode}\n--- stdout ---\n{proc.stdout}--- stderr ---\n{proc.stderr}"
    assert proc.returncode == code, shown
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr, shown
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), shown
    return lines[0].removeprefix("Error: ")


@dataclass(frozen=True)
class Store:
    """One store directory and the ``strata`` command pointed at it."""

    root: Path

    def run(
        self, *args: str | os.PathLike[str], input: str | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        return run_strata(*args, root=self.root, input=input, timeout=timeout)

    def ok(self, *args: str | os.PathLike[str], input: str | None = None) -> str:
        """Standard output of a command that must succeed."""
        return run_strata(*args, root=self.root, input=input, check=True, timeout=60).stdout

    def error(self, *args: str | os.PathLike[str], code: int = 1, input: str | None = None) -> str:
        """The one error line (without ``Error: ``) of a command that must fail with `code`."""
        return one_error(self.run(*args, input=input), code)

    def popen(self, *args: str) -> subprocess.Popen[str]:
        """``strata ARGS…`` started in the background, stdout and stderr piped, as run_strata runs it."""
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
        return subprocess.Popen(
            [sys.executable, "-m", "explorer", "--root", str(self.root), *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )

    def lines(self, *args: str) -> list[str]:
        return self.ok(*args).splitlines()

    def table(self, *args: str) -> list[dict[str, str]]:
        """A docker-style table (columns three or more spaces apart, empty cells allowed)
        as one dict per row, cut at the header's column starts."""
        header, *rows = self.lines(*args)
        names = re.findall(r"\S+(?: \S+)*", header)
        starts = [header.index(name) for name in names]
        ends = [*starts[1:], None]
        return [
            {name: row[start:end].strip() for name, start, end in zip(names, starts, ends, strict=True)} for row in rows
        ]

    def inspect(self, name: str, kind: str = "container") -> dict[str, Any]:
        """The one object ``strata inspect --type KIND NAME`` prints."""
        found = json.loads(self.ok("inspect", "--type", kind, name))
        assert isinstance(found, list) and len(found) == 1, found
        one: dict[str, Any] = found[0]
        return one


def new_store(root: Path, rootfs_tar: Path) -> Store:
    """A store at `root` (created 0700) holding IMAGE, imported from `rootfs_tar`."""
    root.mkdir(mode=0o700, parents=True)
    os.chmod(root, 0o700)
    store = Store(root)
    store.ok("import", rootfs_tar, IMAGE)
    return store


def docker_status(*args: str) -> subprocess.CompletedProcess[str]:
    """``docker ARGS…`` run to its end whatever its status (the legacy builder, no stdin)."""
    return subprocess.run(
        ["docker", *args],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "DOCKER_BUILDKIT": "0"},
    )


def docker_ok(*args: str) -> str:
    """Standard output of ``docker ARGS…``, which must succeed."""
    proc = docker_status(*args)
    assert proc.returncode == 0, f"docker {' '.join(args)} exited {proc.returncode}: {proc.stderr}"
    return proc.stdout
