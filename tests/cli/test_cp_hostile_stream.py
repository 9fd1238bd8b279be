"""`strata cp - CONTAINER:DIR` of a tar stream claiming owners or times no file can hold: one
line naming the entry, and the container unchanged. Before, the line was Python's own
("OverflowError: timestamp out of range for platform time_t", "ValueError: Invalid value NaN"),
and without -a an out-of-range uid was dropped silently while the file was written."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tests.capabilities import require_userns
from tests.fixtures import REPO_ROOT, run_strata

IMAGE = "test/busybox:1"


@pytest.fixture
def box(strata_root: Path, busybox_rootfs_tar: Path) -> str:
    require_userns()
    run_strata("import", busybox_rootfs_tar, IMAGE, check=True)
    run_strata("create", "--name", "box", IMAGE, "true", check=True)
    return "box"


def pax_tar(pax: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("f")
        info.size, info.mtime, info.pax_headers = 3, 1_700_000_000, pax
        tar.addfile(info, io.BytesIO(b"abc"))
    return buf.getvalue()


@pytest.mark.parametrize("archive", [False, True], ids=["plain", "archive"])
@pytest.mark.parametrize(
    ("pax", "why"),
    [
        ({"uid": str(2**33)}, "uid 8589934592 is out of range (0 to 4294967294)"),
        ({"gid": "-3"}, "gid -3 is out of range (0 to 4294967294)"),
        ({"mtime": "1e30"}, "mtime 1e30 is out of range (years 1677 to 2262)"),
        ({"mtime": "nan"}, "mtime nan is not a time"),
        ({"mtime": "9" * 400}, "mtime inf is not a time"),
    ],
)
def test_cp_of_a_stream_with_values_no_file_can_hold(
    box: str, strata_root: Path, pax: dict[str, str], why: str, archive: bool
) -> None:
    before = run_strata("diff", box, check=True).stdout
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    command = [
        sys.executable,
        "-m",
        "explorer",
        "--root",
        str(strata_root),
        "cp",
        *(["-a"] if archive else []),
        "-",
        f"{box}:/tmp",
    ]
    done = subprocess.run(command, input=pax_tar(pax), capture_output=True, env=env, timeout=300)
    stderr = done.stderr.decode()
    assert done.returncode != 0 and "Traceback" not in stderr
    assert stderr == f"Error: container {box}: tar entry 'f': {why}\n"
    assert run_strata("diff", box, check=True).stdout == before
