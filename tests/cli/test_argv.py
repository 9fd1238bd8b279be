"""argv read one way (issue 14): ``--root DIR`` and ``--root=DIR`` choose the same thing
in the entry point, the CLI and the window's launcher."""

from __future__ import annotations

import pytest

import explorer.__main__ as entry
from explorer import launcher as launch
from explorer.cli.argv import leading
from explorer.cli.main import _verb_of


@pytest.mark.parametrize(
    "argv, root, rest",
    [
        (["--root", "/s"], "/s", []),
        (["--root=/s"], "/s", []),
        (["--root=/s", "images", "-q"], "/s", ["images", "-q"]),
        (["-D", "--storage-driver=vfs", "--root", "/s", "run", "--root", "x"], "/s", ["run", "--root", "x"]),
        (["images"], None, ["images"]),
    ],
)
def test_leading_options(argv: list[str], root: str | None, rest: list[str]) -> None:
    given = leading(argv)
    assert (given.root, given.rest) == (root, rest)


@pytest.mark.parametrize(
    "argv, verb", [(["--root=/s", "ps", "-a"], "ps"), (["--root", "/s", "ps"], "ps"), (["--version"], None), ([], None)]
)
def test_the_cli_finds_the_verb_after_either_spelling(argv: list[str], verb: str | None) -> None:
    assert _verb_of(argv) == verb


@pytest.fixture
def chosen(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, list[str]]]:
    calls: list[tuple[str, list[str]]] = []
    monkeypatch.setattr("explorer.launcher.launch_gui", lambda args: calls.append(("window", args)) or 0)
    monkeypatch.setattr("explorer.cli.main.run", lambda args: calls.append(("cli", args)) or 0)
    return calls


@pytest.mark.parametrize(
    "argv, what",
    [
        (["--root", "/s"], "window"),
        (["--root=/s"], "window"),
        ([], "window"),
        (["--root=/s", "gui"], "window"),
        (["--root=/s", "images"], "cli"),
        (["--root"], "cli"),
        (["--root=/s", "images", "--version"], "cli"),
        (["--help"], "cli"),
    ],
)
def test_window_or_verb(chosen: list[tuple[str, list[str]]], argv: list[str], what: str) -> None:
    assert entry.main(argv) == 0
    assert chosen == [(what, argv)]


def test_the_version_is_answered_before_any_verb_is_loaded(
    chosen: list[tuple[str, list[str]]], capsys: pytest.CaptureFixture[str]
) -> None:
    assert entry.main(["--version"]) == 0
    assert chosen == []
    assert capsys.readouterr().out.startswith("strata ")


@pytest.mark.parametrize(
    "argv",
    [["--root", "/s", "gui"], ["--root=/s", "gui"], ["gui", "--root=/s"], ["gui", "--root", "/s"], ["--root=/s"]],
)
def test_the_launcher_takes_the_root_either_way(argv: list[str]) -> None:
    root, files = launch.parse_args(argv)
    assert (root, files) == ("/s", [])
