"""Paths longer than PATH_MAX (4096 bytes) made by a RUN and by a container.

The kernel limits the path of one call, not the depth of a tree: moving a directory that
holds a deep tree below another deep tree makes paths no single call can name. A RUN or a
container may do it, and the scan after the RUN, `diff`, `commit`, `ls -R` and `save`
must still see every file."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from tests.capabilities import require_userns
from tests.fixtures import run_strata

BASE = "test/busybox:1"
NAME = "d" * 200
LEVELS = 12
CHAIN = "/".join([NAME] * LEVELS)  # 2411 bytes: any call may name it
DEEP = f"/x/{CHAIN}/y/{CHAIN}"  # 4828 bytes: no call may
# Two chains made apart, one moved into the other: no command names a path past 4096.
MAKE_DEEP = (
    f"mkdir -p /x/{CHAIN} /y/{CHAIN} && echo deep > /y/{CHAIN}/file && ln -s file /y/{CHAIN}/link && mv /y /x/{CHAIN}/"
)
MORE = f"mkdir -p /z/{CHAIN} && echo more > /z/{CHAIN}/new && mv /z /x/{CHAIN}/y/"


@pytest.fixture
def deep_image(strata_root: Path, busybox_rootfs_tar: Path, tmp_path: Path) -> str:
    require_userns()
    run_strata("import", busybox_rootfs_tar, BASE, check=True)
    context = tmp_path / "context"
    context.mkdir()
    (context / "Dockerfile").write_text(f"FROM {BASE}\nRUN {MAKE_DEEP}\n")
    done = run_strata("build", "-q", "-t", "deep:1", context)
    assert done.returncode == 0, done.stderr[-300:]
    return "deep:1"


def _listing(image: str) -> dict[str, dict[str, object]]:
    done = run_strata("ls", image, "-R", "--json")
    assert done.returncode == 0, done.stderr[-300:]
    return {str(r["path"]): r for r in map(json.loads, done.stdout.splitlines())}


def _saved_layer(tmp_path: Path, image: str, index: int) -> dict[str, tuple[str, bytes | str | None]]:
    """Members of one layer of ``strata save``: name → (kind, content or link target)."""
    archive = tmp_path / "saved.tar"
    done = run_strata("save", "-o", archive, image)
    assert done.returncode == 0, done.stderr[-300:]
    with tarfile.open(archive) as outer:
        manifest = json.loads(outer.extractfile("manifest.json").read())  # type: ignore[union-attr]
        blob = outer.extractfile(manifest[0]["Layers"][index]).read()  # type: ignore[union-attr]
    out: dict[str, tuple[str, bytes | str | None]] = {}
    with tarfile.open(fileobj=io.BytesIO(blob)) as layer:
        for m in layer:
            data = layer.extractfile(m) if m.isreg() else None
            out["/" + m.name] = (
                ("file", data.read())
                if data is not None
                else (("symlink", m.linkname) if m.issym() else ("dir" if m.isdir() else m.type.decode(), None))
            )
    return out


def test_a_run_that_makes_paths_longer_than_path_max(deep_image: str, tmp_path: Path) -> None:
    listing = _listing(deep_image)
    assert len(f"{DEEP}/file") == 4833
    assert {k: listing[f"{DEEP}/file"][k] for k in ("type", "size", "layer")} == {"type": "file", "size": 5, "layer": 1}
    assert listing[f"{DEEP}/link"]["link"] == "file"
    assert sum(1 for p in listing if p.startswith("/x")) == 2 * LEVELS + 4  # the dirs, /x, /x/…/y, file, link
    tree = run_strata("ls", "-R", deep_image)
    assert tree.returncode == 0 and f"    {DEEP}/link -> file\n" in tree.stdout
    layer = _saved_layer(tmp_path, deep_image, 1)
    assert layer[f"{DEEP}/file"] == ("file", b"deep\n") and layer[f"{DEEP}/link"] == ("symlink", "file")


def test_diff_and_commit_of_a_container_with_paths_longer_than_path_max(deep_image: str, tmp_path: Path) -> None:
    made = run_strata("run", "--name", "deeper", deep_image, "sh", "-c", MORE)
    assert made.returncode == 0, made.stderr[-300:]
    diff = run_strata("diff", "deeper")
    assert diff.returncode == 0, diff.stderr[-300:]
    parents = [f"/x/{'/'.join([NAME] * n)}" if n else "/x" for n in range(LEVELS + 1)]
    top = f"/x/{CHAIN}/y/z"
    added = [top, *(f"{top}/{'/'.join([NAME] * n)}" for n in range(1, LEVELS + 1))]
    assert diff.stdout.splitlines() == [
        *(f"C {p}" for p in parents),
        f"C {parents[-1]}/y",
        *(f"A {p}" for p in added),
        f"A {added[-1]}/new",
    ]

    committed = run_strata("commit", "deeper", "deeper:1")
    assert committed.returncode == 0, committed.stderr[-300:]
    listing = _listing("deeper:1")
    assert {k: listing[f"{added[-1]}/new"][k] for k in ("size", "layer", "status")} == {
        "size": 5,
        "layer": 2,
        "status": "added",
    }
    assert listing[f"{DEEP}/file"]["layer"] == 1
    assert len(f"{added[-1]}/new") == 4834
    layer = _saved_layer(tmp_path, "deeper:1", 2)
    assert layer[f"{added[-1]}/new"] == ("file", b"more\n")
    checked = run_strata("system", "check")
    assert checked.stdout == "The store is consistent: no problems found.\n", checked.stdout[-300:]


def test_the_vfs_driver_refuses_such_paths_in_one_line(deep_image: str) -> None:
    """vfs copies by path; where it cannot reach a file it says so and what handles it."""
    done = run_strata("--storage-driver", "vfs", "run", "--rm", deep_image, "true")
    assert done.returncode == 125 and done.stderr.count("\n") == 1, done.stderr[-300:]
    assert done.stderr.startswith(f"Error: vfs storage driver (copying the image): cannot reach /x/{NAME[:57]}… (")
    assert done.stderr.endswith(
        " bytes): its path on disk is longer than PATH_MAX (4096 bytes); "
        "the overlay storage driver handles such paths\n"
    )
    assert run_strata("ps", "-a", "-q").stdout == ""
