"""`strata cp` of device nodes says what it did.

docker cp makes device nodes only as root (its daemon inside a container's root; its client
on the host) and skips them unseen in a user namespace. Strata does the same as real root on
the host; a container's files are written from inside its user namespace, where the kernel
makes no nodes. A copy of a tree leaves such nodes out with one line on stderr; a copy of one
node is refused with one error line. Before, every one of these was silently dropped.
"""

from __future__ import annotations

import io
import os
import stat
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from explorer.runtime.tarcopy import NO_MKNOD, NOT_ROOT
from tests.capabilities import real_root, require_userns
from tests.fixtures import REPO_ROOT, run_strata

IMAGE = "test/busybox:1"


@pytest.fixture
def image(strata_root: Path, busybox_rootfs_tar: Path) -> str:
    require_userns()
    run_strata("import", busybox_rootfs_tar, IMAGE, check=True)
    return IMAGE


@pytest.fixture
def stopped(image: str) -> str:
    run_strata("create", "--name", "box", image, "true", check=True)
    return "box"


@pytest.fixture
def running(image: str) -> Iterator[str]:
    run_strata("run", "-d", "--name", "live", image, "sleep", "600", check=True)
    try:
        yield "live"
    finally:
        run_strata("rm", "-f", "live")


def _one_error(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode != 0, done.stdout + done.stderr
    assert "internal error" not in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    return done.stderr.rstrip("\n")


def _device_nodes(container: str, path: str) -> list[str]:
    found = run_strata(
        "exec", container, "find", path, "-xdev", "(", "-type", "c", "-o", "-type", "b", ")", check=True
    ).stdout.split()
    return sorted(found)


def test_cp_of_one_node_out_of_a_container(running: str, tmp_path: Path) -> None:
    dest = tmp_path / "null-copy"
    done = run_strata("cp", f"{running}:/dev/null", dest)
    if real_root():
        assert (done.returncode, done.stderr) == (0, "")
        st = os.lstat(dest)
        assert stat.S_ISCHR(st.st_mode) and (os.major(st.st_rdev), os.minor(st.st_rdev)) == (1, 3)
    else:
        line = _one_error(done)
        assert line == f"Error: host: cannot copy the device node null (character device 1:3): {NOT_ROOT}"
        assert not os.path.lexists(dest)


def test_cp_of_a_tree_with_nodes_out_of_a_container(running: str, tmp_path: Path) -> None:
    nodes = _device_nodes(running, "/dev")
    assert "/dev/null" in nodes
    dest = tmp_path / "devcopy"
    done = run_strata("cp", f"{running}:/dev", dest)
    assert done.returncode == 0, done.stderr
    made = sorted(
        "/dev/" + str(p.relative_to(dest))
        for p in dest.rglob("*")
        if stat.S_ISCHR(os.lstat(p).st_mode) or stat.S_ISBLK(os.lstat(p).st_mode)
    )
    if real_root():
        assert done.stderr == ""
        assert made == nodes
    else:
        shown = ", ".join(n.removeprefix("/") for n in nodes[:3])
        more = f" and {len(nodes) - 3} more" if len(nodes) > 3 else ""
        assert done.stderr == f"strata cp: left out {len(nodes)} device nodes ({shown}{more}): {NOT_ROOT}\n"
        assert made == []
        assert dest.is_dir()


def test_cp_of_one_node_into_a_container_is_refused(stopped: str) -> None:
    before = run_strata("diff", stopped, check=True).stdout
    line = _one_error(run_strata("cp", "/dev/null", f"{stopped}:/null-copy"))
    assert line == f"Error: container {stopped}: cannot copy the device node null (character device 1:3): {NO_MKNOD}"
    assert run_strata("diff", stopped, check=True).stdout == before


def _tar_with_a_node() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        top = tarfile.TarInfo("d")
        top.type, top.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(top)
        node = tarfile.TarInfo("d/kvm")
        node.type, node.mode, node.devmajor, node.devminor = tarfile.CHRTYPE, 0o666, 10, 232
        tar.addfile(node)
        data = tarfile.TarInfo("d/f")
        data.size = 3
        tar.addfile(data, io.BytesIO(b"hi\n"))
    return buf.getvalue()


def test_cp_of_a_tar_stream_with_a_node_into_a_container(stopped: str, strata_root: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    done = subprocess.run(
        [sys.executable, "-m", "explorer", "--root", str(strata_root), "cp", "-", f"{stopped}:/tmp"],
        input=_tar_with_a_node(),
        capture_output=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.decode() == f"strata cp: left out 1 device node (d/kvm): {NO_MKNOD}\n"
    assert run_strata("diff", stopped, check=True).stdout.split("\n") == ["C /tmp", "A /tmp/d", "A /tmp/d/f", ""]
