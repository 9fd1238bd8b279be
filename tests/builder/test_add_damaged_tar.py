"""ADD of a damaged local tar: Docker fails with "unexpected EOF" (Go's archive/tar) where the
archive is cut short; Strata names the file and the Dockerfile line, and leaves the store as
it was. Before, a tar cut inside a member ended in "internal error (ReadError …)", and one cut
inside a header or its end-of-archive blocks was silently extracted in part."""

from __future__ import annotations

import gzip
import io
import subprocess
import tarfile
from pathlib import Path

import pytest

from tests.capabilities import require_userns
from tests.fixtures import run_strata

DOCKERFILE = "FROM scratch\nENV A=1\nADD bad.tar /d/\n"
PAYLOAD = b"x" * 2000


def two_files() -> bytes:
    """a, b (2000 bytes each) as ustar: headers at 0 and 2560, end blocks at 5120..6144."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name in ("a", "b"):
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(PAYLOAD), 1_700_000_000
            tar.addfile(info, io.BytesIO(PAYLOAD))
    data = buf.getvalue()
    assert data[5120:6144] == bytes(1024)
    return data


def pax_tar(pax: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("f")
        info.size, info.pax_headers = 3, pax
        tar.addfile(info, io.BytesIO(b"abc"))
    return buf.getvalue()


GOOD = two_files()

TRUNCATED = {
    "inside-a-member": GOOD[: 512 + 700],
    "inside-the-last-member": GOOD[: 2560 + 512 + 1999],
    "inside-a-header": GOOD[: 2560 + 300],
    "inside-the-first-end-block": GOOD[: 5120 + 100],
    "inside-the-second-end-block": GOOD[: 5120 + 512 + 100],
    "gzip-inside-a-member": gzip.compress(GOOD[: 512 + 700]),
    "gzip-stream-cut": gzip.compress(GOOD)[:-30],
}


@pytest.fixture
def context(tmp_path: Path, strata_root: Path) -> Path:
    require_userns()
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    (ctx / "ok.txt").write_text("ok\n")
    (ctx / "Dockerfile.ok").write_text("FROM scratch\nCOPY ok.txt /\n")
    run_strata("build", "-q", "-f", ctx / "Dockerfile.ok", "-t", "before:1", ctx, check=True)
    return ctx


def _state(root: Path) -> tuple[list[str], str]:
    tree = sorted(
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.relative_to(root).parts[0] != "tmp" and not p.name.startswith("metadata.db")
    )
    return tree, run_strata("images", "-a", "-q", "--no-trunc", check=True).stdout


def _error_line(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode != 0, done.stdout + done.stderr
    assert "internal error" not in done.stderr and "Traceback" not in done.stderr, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, done.stderr
    return errors[0]


@pytest.mark.parametrize("how", list(TRUNCATED))
def test_add_of_a_truncated_tar_names_the_file_and_line(context: Path, strata_root: Path, how: str) -> None:
    (context / "bad.tar").write_bytes(TRUNCATED[how])
    before = _state(strata_root)
    line = _error_line(run_strata("build", "-q", "-t", "damaged:1", context))
    assert line == "Error: Dockerfile:3: ADD bad.tar: bad.tar is truncated (unexpected EOF)"
    assert _state(strata_root) == before


@pytest.mark.parametrize(
    ("pax", "why"),
    [
        ({"uid": str(2**33)}, "uid 8589934592 is out of range (0 to 4294967294)"),
        ({"gid": "-1"}, "gid -1 is out of range (0 to 4294967294)"),
        ({"mtime": "9" * 40}, f"mtime {'9' * 40} is out of range (years 1677 to 2262)"),
        ({"mtime": "nan"}, "bad PAX time 'nan'"),
    ],
)
def test_add_of_a_tar_with_values_no_file_can_hold(
    context: Path, strata_root: Path, pax: dict[str, str], why: str
) -> None:
    (context / "bad.tar").write_bytes(pax_tar(pax))
    before = _state(strata_root)
    line = _error_line(run_strata("build", "-q", "-t", "damaged:1", context))
    assert line == f"Error: Dockerfile:3: ADD bad.tar: bad.tar is a damaged archive: tar entry 'f': {why}"
    assert _state(strata_root) == before


def test_add_of_a_tar_with_junk_after_its_end_block(context: Path, strata_root: Path) -> None:
    (context / "bad.tar").write_bytes(GOOD[: 5120 + 512] + b"junk" * 128)
    line = _error_line(run_strata("build", "-q", "-t", "damaged:1", context))
    assert line == (
        "Error: Dockerfile:3: ADD bad.tar: bad.tar is a damaged archive: "
        "tar stream goes on after its end-of-archive block at byte 5120"
    )


@pytest.mark.parametrize("end", [5120, 5120 + 512, len(GOOD)], ids=["no-end-blocks", "one-end-block", "whole"])
def test_add_of_a_tar_ending_where_go_stops_reading_works(context: Path, end: int) -> None:
    """Go's reader takes a tar that ends right after a member or after one zero block: so do we."""
    (context / "bad.tar").write_bytes(GOOD[:end])
    run_strata("build", "-q", "-t", "fine:1", context, check=True)
    listed = run_strata("ls", "fine:1", "/d", check=True).stdout.splitlines()
    assert [(line.split()[3], line.split()[-1]) for line in listed] == [("2000", "a"), ("2000", "b")]


def test_a_short_file_that_is_no_tar_is_copied_as_it_is(context: Path) -> None:
    """Less than one header: not an archive (as in Docker), so ADD copies the file."""
    (context / "bad.tar").write_bytes(GOOD[:300])
    run_strata("build", "-q", "-t", "copied:1", context, check=True)
    listed = run_strata("ls", "copied:1", "/d", check=True).stdout.split()
    assert (listed[3], listed[-1]) == ("300", "bad.tar")
