"""USER resolution as Docker does it, against a root given explicitly."""

from __future__ import annotations

from pathlib import Path

import pytest

from explorer.errors import InvalidArgument
from explorer.runtime import ExecUser, resolve_user


@pytest.fixture
def root(tmp_path: Path) -> str:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_text(
        "# comment\nroot:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\nbroken:line\n"
    )
    (tmp_path / "etc" / "group").write_text("root:x:0:\napp:x:1000:\nextra:x:2000:app,other\nwheel:x:10:app\n")
    return str(tmp_path)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("", ExecUser(0, 0, [], "/root", "root")),
        ("root", ExecUser(0, 0, [], "/root", "root")),
        ("app", ExecUser(1000, 1000, [10, 2000], "/home/app", "app")),
        ("1000", ExecUser(1000, 1000, [10, 2000], "/home/app", "app")),
        ("app:extra", ExecUser(1000, 2000, [], "/home/app", "app")),
        ("app:3000", ExecUser(1000, 3000, [], "/home/app", "app")),
        ("555", ExecUser(555, 0, [], "/", "")),
        ("555:7", ExecUser(555, 7, [], "/", "")),
    ],
)
def test_specs(root: str, spec: str, expected: ExecUser) -> None:
    assert resolve_user(spec, root) == expected


@pytest.mark.parametrize(("spec", "what"), [("ghost", "user ghost"), ("app:ghosts", "group ghosts")])
def test_unknown_names(root: str, spec: str, what: str) -> None:
    with pytest.raises(InvalidArgument, match=f"unable to find {what}"):
        resolve_user(spec, root)


def test_without_passwd_only_numbers_work(tmp_path: Path) -> None:
    assert resolve_user("42:43", str(tmp_path)) == ExecUser(42, 43, [], "/", "")
    with pytest.raises(InvalidArgument):
        resolve_user("app", str(tmp_path))
