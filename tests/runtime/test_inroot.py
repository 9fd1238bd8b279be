"""The helper that works inside a root: confinement, what it keeps, what it answers.

Running and stopped containers are exercised end to end by tests/api/test_copy.py;
here a plain directory (a volume's shape) is the root, which needs no image (and no
driver), and a stopped container of each driver takes the runtime's own edits.
"""

from __future__ import annotations

import errno
import functools
import os
import sys
from pathlib import Path

import pytest

from explorer.errors import PathNotFound, RuntimeUnavailable
from explorer.runtime import in_directory, in_rootfs, rootedit
from explorer.runtime.inroot import _unescape
from tests.capabilities import require_userns
from tests.runtime.harness import Harness, listing


@pytest.fixture
def root(tmp_path: Path) -> Path:
    require_userns()
    base = tmp_path / "root"
    (base / "etc").mkdir(parents=True)
    (base / "etc" / "name").write_text("inside\n")
    os.symlink("/", base / "evil")
    os.symlink("../../../../../../../../..", base / "up")
    return base


def _read(path: str) -> str:
    with open(path) as fh:
        return fh.read()


def test_paths_and_links_resolve_inside_the_root(root: Path, tmp_path: Path) -> None:
    (tmp_path / "outside").write_text("host\n")
    with in_directory(str(root), os.listdir, "/") as helper:
        assert sorted(helper.wait()) == ["etc", "evil", "up"]
    for path in ("/etc/name", "/evil/etc/name", "/up/etc/name", "/evil/up/evil/etc/name"):
        with in_directory(str(root), _read, path) as helper:
            assert helper.wait() == "inside\n"
    with in_directory(str(root), _read, f"/evil{tmp_path}/outside") as helper, pytest.raises(FileNotFoundError):
        helper.wait()


def test_errors_cross_as_data(root: Path) -> None:
    def strata_error() -> None:
        raise PathNotFound("container x", "/nope")

    with in_directory(str(root), strata_error) as helper, pytest.raises(PathNotFound, match="/nope"):
        helper.wait()
    with in_directory(str(root), os.rmdir, "/etc") as helper, pytest.raises(OSError) as err:
        helper.wait()
    assert err.value.errno == errno.ENOTEMPTY
    with in_directory(str(root), object) as helper, pytest.raises(RuntimeUnavailable):
        helper.wait()  # a reply that is not JSON data


def _import(name: str) -> str:
    __import__(name)
    return "imported"


def test_nothing_is_imported_once_inside(root: Path) -> None:
    """A module path would name a file of the container once inside its root."""
    name = "colorsys"
    assert name not in sys.modules
    with in_directory(str(root), _import, name) as helper, pytest.raises(RuntimeUnavailable, match="ModuleNotFound"):
        helper.wait()


def _open_fds(candidates: list[int]) -> list[int]:
    found = []
    for fd in candidates:
        try:
            os.fstat(fd)
            found.append(fd)
        except OSError:
            pass
    return found


def test_only_the_given_descriptors_cross(root: Path, tmp_path: Path) -> None:
    host_dir = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)  # a way out, if it leaked
    kept = os.open(os.devnull, os.O_RDONLY)
    try:
        with in_directory(str(root), _open_fds, [host_dir, kept], keep_fds=[kept]) as helper:
            assert helper.wait() == [kept]
    finally:
        os.close(host_dir)
        os.close(kept)


def test_mountinfo_escapes() -> None:
    assert _unescape(r"/a\040b\011c\134d") == "/a b\tc\\d"
    assert _unescape("/plain") == "/plain"


def test_a_stopped_container_is_edited_through_its_own_root(ctr: Harness, image: Path) -> None:
    """On both drivers the helper's root is the container's as ``start`` mounts it: an edit
    lands in the container's changes (overlay: copied up into its diff; vfs: in its own
    root), a deletion of an image file leaves a whiteout, and the image is untouched."""
    config = ctr.config(["true"])
    for edit in (
        functools.partial(rootedit.write_file, "/data/lower.txt", b"edited\n"),
        functools.partial(rootedit.make_dir, "/data/made"),
        functools.partial(rootedit.remove, "/data/gone.txt"),
    ):
        with in_rootfs(config, edit, "container c") as helper:
            assert helper.wait() is None
    changes = ctr.changes()
    assert listing(changes) == {
        "data": "dir",
        "data/lower.txt": "file",
        "data/made": "dir",
        "data/gone.txt": "whiteout",
    }
    assert (image / "data" / "lower.txt").read_text() == "lower\n"
    assert ctr.run(["sh", "-c", "cat /data/lower.txt; ls /data"]).out.split() == ["edited", "dir", "lower.txt", "made"]
