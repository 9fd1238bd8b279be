"""Resolving paths through layer directories: symlinks stay in the image root,
whiteouts and opaque directories hide what is below."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from explorer.errors import InvalidArgument
from explorer.runtime.layerpath import LayerStack


def _whiteout(path: Path) -> None:
    os.mknod(path, 0o020000, os.makedev(0, 0))


@pytest.fixture
def layers(tmp_path: Path) -> list[str]:
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    for d in ("etc", "usr/etc", "var/run", "opaque", "dir"):
        (lower / d).mkdir(parents=True)
    (lower / "etc" / "hosts").write_text("x")
    (lower / "opaque" / "old").write_text("x")
    (lower / "dir" / "gone").write_text("x")
    (lower / "dir" / "kept").write_text("x")
    (lower / "run").symlink_to("var/run")
    (upper / "opaque").mkdir(parents=True)
    os.setxattr(upper / "opaque", "user.overlay.opaque", b"y")
    (upper / "opaque" / "new").write_text("x")
    (upper / "dir").mkdir()
    _whiteout(upper / "dir" / "gone")
    (upper / "escape").symlink_to("../../../../../../etc")
    (upper / "abs").symlink_to("/usr/etc")
    (upper / "loop").symlink_to("loop")
    return [str(upper), str(lower)]


def test_plain_and_missing(layers: list[str]) -> None:
    stack = LayerStack(layers)
    assert stack.resolve("/etc/hosts")[0] == "etc/hosts"
    rel, found = stack.resolve("/etc/missing/deeper")
    assert (rel, found) == ("etc/missing/deeper", None)


def test_symlinks_resolve_inside_the_root(layers: list[str]) -> None:
    stack = LayerStack(layers)
    assert stack.resolve("/run/x")[0] == "var/run/x"
    assert stack.resolve("/escape/hosts")[0] == "etc/hosts"
    assert stack.resolve("/abs/y")[0] == "usr/etc/y"
    assert stack.resolve("/../../etc/hosts")[0] == "etc/hosts"
    with pytest.raises(InvalidArgument, match="symbolic links"):
        stack.resolve("/loop/x")


def test_whiteouts_and_opaque_dirs_hide_lower_entries(layers: list[str]) -> None:
    stack = LayerStack(layers)
    assert stack.resolve("/dir/gone")[1] is None
    assert stack.resolve("/dir/kept")[1] is not None
    assert stack.resolve("/opaque/old")[1] is None
    assert stack.resolve("/opaque/new")[1] is not None
    root = stack.root()
    listing = stack.children("dir", stack.child(root, "dir"))  # type: ignore[arg-type]
    assert sorted(listing) == ["kept"]
    assert sorted(stack.children("opaque", stack.child(root, "opaque"))) == ["new"]  # type: ignore[arg-type]


def test_a_file_in_the_middle_of_a_path(layers: list[str]) -> None:
    with pytest.raises(InvalidArgument, match="not a directory"):
        LayerStack(layers).resolve("/etc/hosts/inside")
