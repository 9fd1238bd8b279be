"""Entrypoint + Cmd as docker run combines them, and the environment defaults."""

from __future__ import annotations

import pytest

from explorer.errors import InvalidArgument
from explorer.runtime import DEFAULT_PATH, combine_command
from explorer.runtime.command import final_env


@pytest.mark.parametrize(
    ("entrypoint", "cmd", "override_entrypoint", "override_cmd", "expected"),
    [
        (None, ["sh"], None, None, ["sh"]),
        (["/entry"], ["a", "b"], None, None, ["/entry", "a", "b"]),
        (["/entry"], ["a"], None, ["x"], ["/entry", "x"]),
        (None, ["sh"], None, ["ls", "-l"], ["ls", "-l"]),
        (["/entry"], ["a"], ["/other"], None, ["/other"]),
        (["/entry"], ["a"], ["/other"], ["y"], ["/other", "y"]),
        (["/entry"], ["a"], [], ["echo", "hi"], ["echo", "hi"]),
    ],
)
def test_combine(
    entrypoint: list[str] | None,
    cmd: list[str] | None,
    override_entrypoint: list[str] | None,
    override_cmd: list[str] | None,
    expected: list[str],
) -> None:
    assert combine_command(entrypoint, cmd, override_entrypoint, override_cmd) == expected


def test_nothing_to_run() -> None:
    with pytest.raises(InvalidArgument, match="no command"):
        combine_command(None, None)
    with pytest.raises(InvalidArgument):
        combine_command(["/e"], ["c"], [], None)


def test_env_defaults_do_not_override_the_image() -> None:
    env = final_env(["PATH=/bin", "A=1=2", "BROKEN"], hostname="h", home="/home/x", tty=True)
    assert env == {"PATH": "/bin", "A": "1=2", "HOSTNAME": "h", "HOME": "/home/x", "TERM": "xterm"}
    assert final_env([], hostname="", home="", tty=False) == {"PATH": DEFAULT_PATH, "HOME": "/"}
