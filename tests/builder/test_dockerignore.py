""".dockerignore patterns, matched the way docker matches them."""

from __future__ import annotations

from pathlib import Path

import pytest

from explorer.builder.dockerignore import IgnoreMatcher, clean_path, load_dockerignore, read_patterns
from explorer.errors import DockerfileError


def matcher(text: str) -> IgnoreMatcher:
    return IgnoreMatcher.from_text(text)


def test_reading_cleans_like_docker() -> None:
    text = "\ufeff# comment\n  *.log  \n\n/build/\n!  /dist/keep/../keep.txt\n #not a comment\r\n./a//b/\n"
    patterns = read_patterns(text)
    assert [(p.text, p.exception, p.line) for p in patterns] == [
        ("*.log", False, 2),
        ("build", False, 4),
        ("dist/keep.txt", True, 5),
        ("#not a comment", False, 6),
        ("a/b", False, 7),
    ]


@pytest.mark.parametrize(
    ("path", "cleaned"),
    [("", "."), ("a/../..", ".."), ("//a//b/", "/a/b"), ("/../x", "/x"), ("./", "."), ("a/./b/..", "a")],
)
def test_clean_path_is_go_filepath_clean(path: str, cleaned: str) -> None:
    assert clean_path(path) == cleaned


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        ("*.md", "README.md", True),
        ("*.md", "docs/README.md", False),  # * does not cross /
        ("*/*.md", "docs/README.md", True),
        ("a?c", "abc", True),
        ("a?c", "a/c", False),
        ("[a-c]x", "bx", True),
        ("[^a-c]x", "bx", False),
        ("[^a-c]x", "dx", True),
        ("\\*", "*", True),
        ("\\*", "x", False),
        ("**/*.go", "main.go", True),
        ("**/*.go", "a/b/c.go", True),
        ("**/*.go", "a/b/c.gox", False),
        ("**", "anything/at/all", True),
        ("src/**", "src/a/b", True),
        ("src/**", "srcx", False),
        ("src/**/test", "src/test", True),
        ("src/**/test", "src/a/b/test", True),
        ("**/vendor", "vendor", True),
        ("**/vendor", "x/vendor/y", True),  # the parent matches
        ("node_modules", "node_modules/a/b.js", True),
        ("/build/", "build/out", True),
    ],
)
def test_matching(pattern: str, path: str, expected: bool) -> None:
    assert matcher(pattern).ignored(path) is expected


def test_last_match_wins() -> None:
    m = matcher("*.md\n!README*.md\nREADME-secret.md\n")
    assert m.ignored("CHANGES.md")
    assert not m.ignored("README.md")
    assert m.ignored("README-secret.md")


def test_exception_re_includes_inside_an_ignored_dir() -> None:
    m = matcher("docs\n!docs/keep\n!docs/**/*.txt\n")
    assert m.ignored("docs")
    assert m.ignored("docs/other.md")
    assert not m.ignored("docs/keep")
    assert not m.ignored("docs/keep/deep/file.bin")
    assert not m.ignored("docs/a/b/notes.txt")
    assert not m.can_skip_dir("docs")


def test_can_skip_dir() -> None:
    m = matcher("node_modules\nbuild\n!build/keep/*.txt\n**/cache\n!x/**/y\n")
    assert m.can_skip_dir("node_modules")
    assert m.can_skip_dir("a/cache")
    assert not m.can_skip_dir("build")  # build/keep/*.txt may be re-included
    assert m.can_skip_dir("build/other")  # nothing below build/other can match
    assert not m.can_skip_dir("build/keep")
    assert not m.can_skip_dir("src")  # not ignored at all
    assert not m.can_skip_dir("x/cache")  # x/**/y could be below


def test_root_and_odd_paths() -> None:
    m = matcher("*\n")
    assert not m.ignored(".")
    assert not m.ignored("")
    assert m.ignored("./a")
    assert m.ignored("/a/")


@pytest.mark.parametrize(
    ("text", "line"), [("ok\n[a\n", 2), ("a\\", 1), ("x[z-a]", 1), ("[]", 1), ("[]a]", 1), ("[a-]", 1)]
)
def test_bad_patterns(text: str, line: int) -> None:
    with pytest.raises(DockerfileError) as info:
        IgnoreMatcher.from_text(text, "ctx/.dockerignore")
    assert info.value.line == line
    assert str(info.value).startswith(f"ctx/.dockerignore:{line}: syntax error in pattern")


def test_lone_bang() -> None:
    with pytest.raises(DockerfileError) as info:
        matcher("a\n!\n")
    assert str(info.value) == '.dockerignore:2: illegal exclusion pattern: "!"'


def test_load_prefers_the_file_beside_the_dockerfile(tmp_path: Path) -> None:
    context = tmp_path / "ctx"
    (context / "docker").mkdir(parents=True)
    (context / ".dockerignore").write_text("*.log\n")
    dockerfile = context / "docker" / "app.Dockerfile"
    dockerfile.write_text("FROM scratch\n")

    plain = load_dockerignore(context, context / "Dockerfile")
    assert plain.ignored("a.log") and not plain.ignored("a.tmp")

    assert load_dockerignore(context, dockerfile).ignored("a.log")
    (context / "docker" / "app.Dockerfile.dockerignore").write_text("*.tmp\n")
    custom = load_dockerignore(context, dockerfile)
    assert custom.ignored("a.tmp") and not custom.ignored("a.log")
    assert custom.source == str(context / "docker" / "app.Dockerfile.dockerignore")

    empty = load_dockerignore(tmp_path)
    assert not empty and not empty.ignored("anything")


def test_walk_prunes_and_re_includes(tmp_path: Path) -> None:
    for rel in [
        "main.go",
        "README.md",
        "docs/guide.md",
        "docs/keep/a.txt",
        "node_modules/x/index.js",
        "logs/app.log",
        "logs/keep.log",
    ]:
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(rel)
    m = matcher("node_modules\ndocs\n!docs/keep\nlogs/*\n!logs/keep.log\n*.md\n")
    assert list(m.walk(tmp_path)) == [
        ("docs", True),
        ("docs/keep", True),
        ("docs/keep/a.txt", False),
        ("logs", True),
        ("logs/keep.log", False),
        ("main.go", False),
    ]
