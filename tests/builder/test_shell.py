"""Word expansion against BuildKit's envVarTest and wordsTest fixtures, plus the rest of its rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from explorer.builder.shell import (
    Lexer,
    ShellExpansionError,
    expand_with_matches,
    expand_word,
    expand_words,
    word_expander,
)
from explorer.errors import StrataError
from tests.capabilities import missing

CONFORMANCE = Path(__file__).resolve().parents[2].parent / "shared" / "conformance" / "buildkit"
SHELL_DATA = CONFORMANCE / "frontend" / "dockerfile" / "shell"
FIXTURE_ENV = {"PWD": "/home", "SHELL": "bash", "KOREAN": "한국어", "NULL": ""}


def require_conformance() -> None:
    if SHELL_DATA.is_dir():
        return
    missing(f"BuildKit conformance data not found at {CONFORMANCE}")


def env_var_cases() -> list[tuple[int, str, str]]:
    """(line number, input, expected) for every A and U line; W lines are Windows-only."""
    path = SHELL_DATA / "envVarTest"
    if not path.is_file():
        return [(0, "", "<conformance data missing>")]
    found = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").split("\n"), start=1):
        if raw.startswith("#") or not raw.strip():
            continue
        platform, source, expected = (part.strip() for part in raw.strip().split("|"))
        assert platform in ("A", "U", "W"), f"line {number}: bad platform {platform!r}"
        if platform != "W":
            found.append((number, source, expected))
    return found


def words_cases() -> list[tuple[int, dict[str, str], str, list[str]]]:
    """(line number, environment so far, input, expected words) from wordsTest."""
    path = SHELL_DATA / "wordsTest"
    if not path.is_file():
        return [(0, {}, "", ["<conformance data missing>"])]
    env: dict[str, str] = {}
    found = []
    for number, line in enumerate(path.read_text(encoding="utf-8").split("\n"), start=1):
        if line.startswith("#") or line == "":
            continue
        if line.startswith("ENV "):
            key, _, value = line[3:].lstrip(" ").partition("=")
            env[key] = value
            continue
        source, expected = line.split("|")
        found.append((number, dict(env), source.strip(), expected.lstrip(" ").split(",")))
    return found


@pytest.mark.parametrize(("number", "source", "expected"), env_var_cases())
def test_env_var_fixture(number: int, source: str, expected: str) -> None:
    require_conformance()
    if expected == "error":
        with pytest.raises(ShellExpansionError):
            expand_word(source, FIXTURE_ENV)
    else:
        assert expand_word(source, FIXTURE_ENV) == expected, f"envVarTest line {number}"


@pytest.mark.parametrize(("number", "env", "source", "expected"), words_cases())
def test_words_fixture(number: int, env: dict[str, str], source: str, expected: list[str]) -> None:
    require_conformance()
    try:
        got = expand_words(source, env)
    except ShellExpansionError:
        got = ["error"]
    assert got == expected, f"wordsTest line {number}"


def test_fixture_files_are_not_empty() -> None:
    require_conformance()
    assert len(env_var_cases()) > 200
    assert len(words_cases()) > 20


# --- matches: which variables a word used -----------------------------------------------


@pytest.mark.parametrize(
    ("word", "env", "value", "matched", "unmatched"),
    [
        ("x ${UNUSED}", {"DUMMY": "d"}, "x ", set(), {"UNUSED"}),
        ("${FOO-aaa} ${BAR-bbb} ${BAZ-ccc}", {"FOO": "xxx", "BAR": ""}, "xxx  ccc", {"FOO", "BAR"}, {"BAZ"}),
        (
            "${FOO:-aaa} ${BAR:-bbb} ${BAZ:-ccc}",
            {"FOO": "xxx", "BAR": ""},
            "xxx bbb ccc",
            {"FOO", "BAR"},
            {"BAZ"},
        ),
        ("${FOO+aaa} ${BAR+bbb} ${BAZ+ccc}", {"FOO": "xxx", "BAR": ""}, "aaa bbb ", {"FOO", "BAR"}, {"BAZ"}),
        ("${FOO:+aaa} ${BAR:+bbb} ${BAZ:+ccc}", {"FOO": "xxx", "BAR": ""}, "aaa  ", {"FOO", "BAR"}, {"BAZ"}),
        ("${BAR?bbb}", {"BAR": ""}, "", {"BAR"}, set()),
        ("${FOO#*x*y}", {"FOO": "xxyy"}, "y", {"FOO"}, set()),
        ("${FOO##*x}", {"FOO": "xxyy"}, "yy", {"FOO"}, set()),
        ("${FOO%%\\**\\*}", {"FOO": "a***yy*"}, "a", {"FOO"}, set()),
        ("${FOO%y}${FOO%%y*}", {"FOO": "xxyy"}, "xxyxx", {"FOO"}, set()),
        ("${FOO#$BAR}", {"FOO": "xxyy", "BAR": "x"}, "xyy", {"FOO", "BAR"}, set()),
        (
            "${FOO/$N/.} - ${FOO//$N/.}",
            {"FOO": "/foo*/*/*.txt", "N": "\\*/"},
            "/foo.*/*.txt - /foo..*.txt",
            {"FOO", "N"},
            set(),
        ),
        ("${FOO//\\//\\/}", {"FOO": "/tmp/foo.txt"}, "\\/tmp\\/foo.txt", {"FOO"}, set()),
        ("${FOO///}", {}, "", set(), {"FOO"}),
    ],
)
def test_matches(word: str, env: dict[str, str], value: str, matched: set[str], unmatched: set[str]) -> None:
    result = expand_with_matches(word, env)
    assert result.value == value
    assert result.matched == matched
    assert result.unmatched == unmatched


@pytest.mark.parametrize("word", ["${BAZ?ccc}", "${BAR:?bbb}", "${FOO=aaa}", "${FOO//ww}", "${FOO//}", "${FOO#\\x}"])
def test_errors(word: str) -> None:
    with pytest.raises(ShellExpansionError):
        expand_word(word, {"FOO": "xxyy", "BAR": ""})


def test_required_variable_message() -> None:
    with pytest.raises(ShellExpansionError) as info:
        expand_word("${VAR:?message here$ARG}", {"VAR": "", "ARG": "x"})
    assert isinstance(info.value, StrataError)
    assert info.value.reason == "VAR: message herex"
    assert str(info.value) == 'failed to process "${VAR:?message here$ARG}": VAR: message herex'
    with pytest.raises(ShellExpansionError) as info:
        expand_word("${VAR?}", {})
    assert info.value.reason == "VAR: is not allowed to be unset"


def test_backtick_escape() -> None:
    assert expand_word('a`$b`"c', {"b": "X"}, escape="`") == 'a$b"c'
    assert expand_word("c:\\dir", {}, escape="`") == "c:\\dir"


def test_raw_modes_keep_quotes_and_unset_references() -> None:
    lexer = Lexer(raw_quotes=True, skip_unset=True)
    assert lexer.process("'$A' \"${B:-x}\" $C", {"C": "c"}).value == "'$A' \"${B:-x}\" c"


def test_word_expander() -> None:
    expand = word_expander({"A": "1"})
    assert expand('"$A b"') == "1 b"
