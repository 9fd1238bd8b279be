"""What this machine can do, asked by the tests that need it.

A missing capability must not let a test pass unseen in CI: under ``CI=true``
``missing`` fails the test; elsewhere it skips with the reason, so a laptop without
Docker still gets a useful run. Import as ``from tests.capabilities import require_docker``.

Root and the Docker daemon are absent on purpose in the unprivileged pass of
``packaging/dev.sh test`` (``STRATA_TEST_UNPRIV=1``). There their tests skip even under CI,
because the root pass of the same script runs them.
"""

from __future__ import annotations

import functools
import os
import shutil
import struct
import subprocess
from pathlib import Path
from typing import NoReturn

import pytest

from tests.fixtures.services import DOCKER_REGISTRY, Dockerd

BUSYBOX = Path("/bin/busybox")

_PT_INTERP = 3


def in_ci() -> bool:
    return os.environ.get("CI") == "true"


def is_unprivileged_run() -> bool:
    """True in the pass of dev.sh that runs as the unprivileged user strata-test. The
    variable counts only there: set in a run as real root, it would skip the root and
    Docker tests of a privileged run, so that is a failure."""
    if os.environ.get("STRATA_TEST_UNPRIV") != "1":
        return False
    if real_root():
        pytest.fail(
            "STRATA_TEST_UNPRIV=1 is for dev.sh's unprivileged pass, not a run as root; unset it", pytrace=False
        )
    return True


def missing(reason: str) -> NoReturn:
    """Stop the current test for lack of `reason`: a failure in CI, a skip elsewhere."""
    if in_ci():
        pytest.fail(f"missing capability (CI=true): {reason}", pytrace=False)
    pytest.skip(reason)


def _absent_by_design(reason: str) -> NoReturn:
    pytest.skip(f"{reason}: absent on purpose in the unprivileged pass; the root pass runs this test")


def real_root() -> bool:
    """Root of the initial user namespace (not root of the store's namespace, which the
    unprivileged pass runs in: see explorer/runtime/storens.py)."""
    from explorer.runtime.storens import privileged

    return privileged()


def store_ns_mode() -> str:
    """ "root", "subids", "single" or "host": how this test process sees ids."""
    from explorer.runtime.storens import current

    return current().mode


def require_subids() -> None:
    """The store's user namespace maps a subordinate range (or this is real root)."""
    if store_ns_mode() not in ("root", "subids"):
        missing("needs a subordinate id range for this user in /etc/subuid and /etc/subgid, and newuidmap")


def require_root() -> None:
    if real_root():
        return
    if is_unprivileged_run():
        _absent_by_design("needs root")
    missing("needs root")


def require_docker() -> None:
    """A reachable Docker daemon; packaging/dev.sh starts one, tests never do."""
    if is_unprivileged_run():
        _absent_by_design("needs the Docker daemon")
    status = Dockerd.status()
    if not status.up:
        missing(f"Docker daemon not reachable ({status.detail}); `bash packaging/dev.sh test` starts it")


@functools.cache
def _userns_problem() -> str | None:
    unshare = shutil.which("unshare")
    if unshare is None:
        return "unshare(1) not found (util-linux)"
    try:
        proc = subprocess.run(
            [unshare, "--user", "--map-root-user", "true"],
            capture_output=True,
            text=True,
            timeout=20,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"unshare --user failed: {err}"
    if proc.returncode != 0:
        return f"unshare --user --map-root-user true failed: {proc.stderr.strip() or proc.returncode}"
    return None


def require_userns() -> None:
    """User namespaces that map the caller to root, tried for real rather than guessed."""
    problem = _userns_problem()
    if problem is not None:
        missing(problem)


def _is_static_elf(path: Path) -> bool:
    """True when the ELF file has no program interpreter, i.e. runs without a libc on disk."""
    with path.open("rb") as f:
        header = f.read(64)
        if len(header) < 52 or header[:4] != b"\x7fELF":
            return False
        is_64 = header[4] == 2
        order = "<" if header[5] == 1 else ">"
        if is_64:
            (phoff,) = struct.unpack_from(order + "Q", header, 0x20)
            phentsize, phnum = struct.unpack_from(order + "HH", header, 0x36)
        else:
            (phoff,) = struct.unpack_from(order + "I", header, 0x1C)
            phentsize, phnum = struct.unpack_from(order + "HH", header, 0x2A)
        for i in range(phnum):
            f.seek(phoff + i * phentsize)
            raw = f.read(4)
            if len(raw) < 4:
                return False
            if struct.unpack(order + "I", raw)[0] == _PT_INTERP:
                return False
    return True


def require_busybox() -> None:
    """A static /bin/busybox: the one binary our test images are made of (busybox-static)."""
    if not BUSYBOX.is_file() or not os.access(BUSYBOX, os.X_OK):
        missing(f"{BUSYBOX} not found (apt-get install busybox-static)")
    if not _is_static_elf(BUSYBOX):
        missing(f"{BUSYBOX} is dynamically linked; images need the static one (busybox-static)")


def require_registry() -> None:
    if not DOCKER_REGISTRY.is_file() or not os.access(DOCKER_REGISTRY, os.X_OK):
        missing(f"{DOCKER_REGISTRY} not found (apt-get install docker-registry)")


def require_display() -> None:
    """An X display a real (non-offscreen) Qt window can open on."""
    display = os.environ.get("DISPLAY", "")
    if not display:
        missing("no DISPLAY; `bash packaging/dev.sh test` starts Xvfb")
    if display.startswith(":"):
        number = display[1:].split(".", 1)[0]
        if not Path(f"/tmp/.X11-unix/X{number}").exists():
            missing(f"DISPLAY={display} but its X socket does not exist")


def require_tool(name: str) -> str:
    """The path of command `name` on PATH."""
    path = shutil.which(name)
    if path is None:
        missing(f"{name} not found on PATH")
    return path
