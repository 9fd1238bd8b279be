"""The one union view → host directory export (issue 14) and the hardening every caller
gets: the window's Extract, a volume filled from its image, RUN --mount from a stage."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from explorer.errors import InvalidArgument, PathNotFound
from explorer.store.export import USER_COPY, VOLUME_FILL, ExportRules, export_view
from explorer.store.index import FileEntry
from explorer.store.union import ListedLayer, UnionView
from tests.capabilities import real_root


def _layer(root: Path, entries: list[FileEntry]) -> UnionView:
    """A one-layer view whose index says ``entries`` and whose content lives in ``root``."""
    for e in entries:
        disk = root / e.path.lstrip("/")
        if e.type == "dir":
            disk.mkdir(parents=True, exist_ok=True)
        elif e.type == "file":
            disk.parent.mkdir(parents=True, exist_ok=True)
            disk.write_bytes(e.path.encode())
        elif e.type == "hardlink":
            disk.parent.mkdir(parents=True, exist_ok=True)
            os.link(root / (e.link or "").lstrip("/"), disk)
    return UnionView([ListedLayer("layer", entries, root, kind="layer")])


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.fixture
def content(tmp_path: Path) -> Path:
    path = tmp_path / "content"
    path.mkdir()
    return path


def test_a_tree_comes_out_with_contents_links_and_modes(tmp_path: Path, content: Path) -> None:
    view = _layer(
        content,
        [
            FileEntry("/app", "dir", 0o755, mtime=1000.0),
            FileEntry("/app/bin", "dir", 0o555),
            FileEntry("/app/bin/tool", "file", 0o4755),
            FileEntry("/app/bin/again", "hardlink", 0o4755, link="/app/bin/tool"),
            FileEntry("/app/readme", "file", 0o400, mtime=2000.0),
            FileEntry("/app/latest", "symlink", 0o777, link="/etc/passwd"),
            FileEntry("/app/dev", "char", 0o600),
        ],
    )
    out = tmp_path / "out"
    export_view(view, "/app", out, USER_COPY)
    assert (out / "bin" / "tool").read_bytes() == b"/app/bin/tool"
    assert (out / "bin" / "again").read_bytes() == b"/app/bin/tool"
    assert os.lstat(out / "bin" / "again").st_ino != os.lstat(out / "bin" / "tool").st_ino  # a copy each
    assert _mode(out / "bin" / "tool") == 0o755  # no setuid for the user's copy; u+rw added
    assert _mode(out / "readme") == 0o600
    assert _mode(out / "bin") == 0o755 and _mode(out) == 0o755  # the read-only dir got its files first
    assert os.readlink(out / "latest") == "/etc/passwd"  # a link, never followed
    assert not (out / "dev").exists()
    assert os.lstat(out / "readme").st_mtime != 2000.0  # USER_COPY keeps no times


def test_a_volume_fill_keeps_what_docker_keeps(tmp_path: Path, content: Path) -> None:
    view = _layer(
        content,
        [
            FileEntry("/data", "dir", 0o1777, mtime=1000.0),
            FileEntry("/data/tool", "file", 0o4750, mtime=2000.0),
            FileEntry("/data/again", "hardlink", 0o4750, mtime=2000.0, link="/data/tool"),  # before its target
            FileEntry("/data/pipe", "fifo", 0o640),
        ],
    )
    volume = tmp_path / "volume" / "_data"
    volume.mkdir(parents=True)
    export_view(view, "/data", volume, VOLUME_FILL, into=True)
    assert _mode(volume / "tool") == 0o4750 and os.lstat(volume / "tool").st_mtime == 2000.0
    assert os.lstat(volume / "again").st_ino == os.lstat(volume / "tool").st_ino
    assert stat.S_ISFIFO(os.lstat(volume / "pipe").st_mode) and _mode(volume / "pipe") == 0o640
    assert _mode(volume) == 0o1777 and os.lstat(volume).st_mtime == 1000.0


def test_a_symlink_in_the_image_cannot_carry_a_write_out(tmp_path: Path, content: Path) -> None:
    """A hostile index that lists a file below a symlink: the old Extract wrote through the
    link (only the last component was O_NOFOLLOW). Now nothing below a non-directory is
    written, whichever rules apply."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (content / "d").mkdir()
    (content / "d" / "link").mkdir()  # where the source side would read the "file" from
    (content / "d" / "link" / "evil").write_bytes(b"evil")
    view = UnionView(
        [
            ListedLayer(
                "layer",
                [
                    FileEntry("/d", "dir", 0o755),
                    FileEntry("/d/link", "symlink", 0o777, link=str(outside)),
                    FileEntry("/d/link/evil", "file", 0o644),
                ],
                content,
                kind="layer",
            )
        ]
    )
    for n, rules in enumerate((USER_COPY, VOLUME_FILL, ExportRules())):
        out = tmp_path / f"out{n}"
        export_view(view, "/d", out, rules)
        assert os.readlink(out / "link") == str(outside)
    assert list(outside.iterdir()) == []


def test_a_name_that_exists_in_the_destination_is_never_written_through(tmp_path: Path, content: Path) -> None:
    view = _layer(content, [FileEntry("/f", "file", 0o644)])
    victim = tmp_path / "victim"
    victim.write_bytes(b"mine")
    (tmp_path / "dest").mkdir()
    (tmp_path / "dest" / "f").symlink_to(victim)
    with pytest.raises(FileExistsError):
        export_view(view, "/f", tmp_path / "dest" / "f", USER_COPY)
    assert victim.read_bytes() == b"mine"
    fill = tmp_path / "fill"
    fill.symlink_to(tmp_path / "dest")  # a directory to fill that is a symlink is refused
    dir_view = _layer(content, [FileEntry("/d", "dir", 0o755), FileEntry("/d/f", "file", 0o644)])
    with pytest.raises(OSError):
        export_view(dir_view, "/d", fill, VOLUME_FILL, into=True)
    assert sorted(os.listdir(tmp_path / "dest")) == ["f"]


def test_names_that_are_not_one_component_are_refused(tmp_path: Path, content: Path) -> None:
    (content / "d").mkdir()
    view = UnionView(
        [
            ListedLayer(
                "layer", [FileEntry("/d", "dir", 0o755), FileEntry("/d/..", "file", 0o644)], content, kind="layer"
            )
        ]
    )
    with pytest.raises(InvalidArgument, match=r"refusing to write a file named '\.\.'"):
        export_view(view, "/d", tmp_path / "out", USER_COPY)
    with pytest.raises(InvalidArgument):
        export_view(view, "/d", tmp_path / "..", USER_COPY)


def test_a_missing_path_and_a_non_directory_to_fill(tmp_path: Path, content: Path) -> None:
    view = _layer(content, [FileEntry("/f", "file", 0o644)])
    with pytest.raises(PathNotFound):
        export_view(view, "/absent", tmp_path / "out", USER_COPY)
    with pytest.raises(InvalidArgument, match="not a directory"):
        export_view(view, "/f", tmp_path, VOLUME_FILL, into=True)


def test_owners_are_given_only_by_root(tmp_path: Path, content: Path) -> None:
    view = _layer(
        content, [FileEntry("/d", "dir", 0o755, uid=123, gid=456), FileEntry("/d/f", "file", 0o644, uid=123, gid=456)]
    )
    export_view(view, "/d", tmp_path / "user", USER_COPY)
    me = (os.getuid(), os.getgid())
    assert (os.lstat(tmp_path / "user" / "f").st_uid, os.lstat(tmp_path / "user" / "f").st_gid) == me
    if real_root():
        export_view(view, "/d", tmp_path / "volume", VOLUME_FILL)
        st = os.lstat(tmp_path / "volume" / "f")
        assert (st.st_uid, st.st_gid) == (123, 456)
