""".dockerignore: which files of the build context a build may see.

Docker reads the patterns with its own rules (moby ``ignorefile`` and ``patternmatcher``)
and Strata must agree, or a build would see different files than ``docker build``:

- lines starting with ``#`` are comments; surrounding spaces are trimmed; a leading ``!``
  makes the line an exception (re-include);
- each pattern is cleaned like Go's ``filepath.Clean`` and a leading ``/`` is dropped, so
  ``/foo/`` and ``foo`` are the same pattern;
- matching uses Go ``filepath.Match`` syntax (``*`` and ``?`` never cross ``/``,
  ``[a-z]``, ``[^a]``, ``\\`` escapes) plus ``**`` for any number of directories;
- a pattern that matches a directory also matches everything below it;
- the last pattern that matches a path decides.

The ignore file beside a custom Dockerfile (``app.Dockerfile.dockerignore`` next to
``app.Dockerfile``) replaces the context's ``.dockerignore``, as in BuildKit.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from explorer.errors import DockerfileError

__all__ = ["IgnoreMatcher", "IgnorePattern", "clean_path", "load_dockerignore", "read_patterns"]


def clean_path(path: str) -> str:
    """Go's ``filepath.Clean`` for slash-separated paths.

    ``posixpath.normpath`` differs: it keeps a leading ``//`` and its result for
    ``a/..`` cases is the same, but Go always collapses repeated slashes.
    """
    if path == "":
        return "."
    rooted = path.startswith("/")
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts and parts[-1] != "..":
                parts.pop()
            elif not rooted:
                parts.append("..")
            continue
        parts.append(part)
    cleaned = "/".join(parts)
    if rooted:
        return "/" + cleaned
    return cleaned or "."


class _BadPattern(Exception):
    pass


def _class_to_regex(pattern: str, start: int) -> tuple[str, int]:
    """Translate the ``[...]`` starting at ``start``; returns the regex and the next index.

    Follows ``filepath.Match``: ``^`` negates, items are ``c`` or ``lo-hi``, ``\\``
    escapes, and an empty class or an unfinished range is a syntax error.
    """
    i = start + 1
    negated = i < len(pattern) and pattern[i] == "^"
    if negated:
        i += 1
    items: list[str] = []
    while True:
        if i < len(pattern) and pattern[i] == "]" and items:
            i += 1
            break
        lo, i = _class_char(pattern, i)
        if i < len(pattern) and pattern[i] == "-":
            hi, i = _class_char(pattern, i + 1)
            if hi < lo:
                # filepath.Match accepts it, but docker's regex compile fails on it later.
                raise _BadPattern
            items.append(f"{re.escape(lo)}-{re.escape(hi)}")
        else:
            items.append(re.escape(lo))
    return ("[^" if negated else "[") + "".join(items) + "]", i


def _class_char(pattern: str, i: int) -> tuple[str, int]:
    if i >= len(pattern) or pattern[i] in "-]":
        raise _BadPattern
    if pattern[i] == "\\":
        i += 1
        if i >= len(pattern):
            raise _BadPattern
    return pattern[i], i + 1


def _segment_regex(pattern: str) -> str:
    """A pattern part without ``**``: ``*`` and ``?`` stop at ``/``."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "*":
            out.append("[^/]*")
            i += 1
        elif ch == "?":
            out.append("[^/]")
            i += 1
        elif ch == "[":
            regex, i = _class_to_regex(pattern, i)
            out.append(regex)
        elif ch == "\\":
            if i + 1 >= len(pattern):
                raise _BadPattern
            out.append(re.escape(pattern[i + 1]))
            i += 2
        else:
            out.append(re.escape(ch))
            i += 1
    return "".join(out)


@dataclass(frozen=True)
class _Compiled:
    """How docker's pattern matcher classifies a pattern, and the regex if it needs one."""

    kind: str  # "exact", "prefix", "suffix" or "regex"
    regex: re.Pattern[str] | None


def _compile_pattern(pattern: str) -> _Compiled:
    """Docker's translation of a cleaned pattern, token by token.

    ``**/`` (or ``**`` inside) matches zero or more whole directories, a trailing ``**``
    everything below; a pattern starting with ``**`` and otherwise literal is a suffix
    test. Classes and escapes follow ``filepath.Match``.
    """
    out: list[str] = []
    kind = "exact"
    pos = 0
    token = 0
    n = len(pattern)
    while pos < n:
        ch = pattern[pos]
        pos += 1
        if ch == "*" and pos < n and pattern[pos] == "*":
            pos += 1
            if pos < n and pattern[pos] == "/":
                pos += 1
            if pos >= n:
                if kind == "exact":
                    kind = "prefix"
                else:
                    out.append(".*")
                    kind = "regex"
            else:
                out.append("(?:.*/)?")
                kind = "regex"
            if token == 0:
                kind = "suffix"
        elif ch == "*":
            out.append("[^/]*")
            kind = "regex"
        elif ch == "?":
            out.append("[^/]")
            kind = "regex"
        elif ch == "\\":
            if pos >= n:
                raise _BadPattern
            out.append(re.escape(pattern[pos]))
            pos += 1
            kind = "regex"
        elif ch == "[":
            regex, pos = _class_to_regex(pattern, pos - 1)
            out.append(regex)
            kind = "regex"
        else:
            out.append(re.escape(ch))
        token += 1
    return _Compiled(kind, re.compile("".join(out), re.DOTALL) if kind == "regex" else None)


@dataclass(frozen=True)
class IgnorePattern:
    """One cleaned pattern; ``exception`` for ``!`` lines."""

    text: str
    exception: bool
    line: int
    compiled: _Compiled = field(repr=False, compare=False)

    def matches(self, path: str) -> bool:
        kind = self.compiled.kind
        if kind == "exact":
            return path == self.text
        if kind == "prefix":
            return path.startswith(self.text[:-2])
        if kind == "suffix":
            suffix = self.text[2:]
            return path.endswith(suffix) or (suffix.startswith("/") and path == suffix[1:])
        assert self.compiled.regex is not None
        return self.compiled.regex.fullmatch(path) is not None

    def matches_self_or_parent(self, path: str) -> bool:
        """Docker's rule: a pattern that matches a directory matches its contents."""
        if self.matches(path):
            return True
        parts = path.split("/")
        return any(self.matches("/".join(parts[:depth])) for depth in range(1, len(parts)))

    def could_match_below(self, directory: str) -> bool:
        """Whether some path strictly inside ``directory`` might match this pattern.

        Conservative: when in doubt (a ``**`` at or above the directory's depth), yes.
        """
        pattern_parts = self.text.split("/")
        for index, name in enumerate(directory.split("/")):
            if index >= len(pattern_parts):
                # The pattern names an ancestor, so it matches everything below it.
                return True
            part = pattern_parts[index]
            if "**" in part:
                return True
            try:
                if re.fullmatch(_segment_regex(part), name, re.DOTALL) is None:
                    return False
            except _BadPattern:
                return True
        return True


def _compile(text: str, exception: bool, line: int, source: str) -> IgnorePattern:
    try:
        compiled = _compile_pattern(text)
    except _BadPattern:
        raise DockerfileError(
            f'syntax error in pattern "{text}": check [ ] classes and \\ escapes', line, source
        ) from None
    return IgnorePattern(text=text, exception=exception, line=line, compiled=compiled)


def read_patterns(content: str, source: str = ".dockerignore") -> list[IgnorePattern]:
    """Patterns from the text of an ignore file, cleaned the way docker cleans them."""
    patterns: list[IgnorePattern] = []
    for number, raw in enumerate(content.split("\n"), start=1):
        line = raw[:-1] if raw.endswith("\r") else raw
        if number == 1:
            line = line.removeprefix("\ufeff")
        if line.startswith("#"):
            continue
        text = line.strip()
        if not text:
            continue
        exception = text.startswith("!")
        if exception:
            text = text[1:].strip()
        if text:
            text = clean_path(text)
            if len(text) > 1 and text.startswith("/"):
                text = text[1:]
        if exception and not text:
            raise DockerfileError('illegal exclusion pattern: "!"', number, source)
        patterns.append(_compile(text, exception, number, source))
    return patterns


class IgnoreMatcher:
    """Answers "is this context path excluded?" for one set of patterns."""

    def __init__(self, patterns: list[IgnorePattern] | None = None, source: str | None = None) -> None:
        self.patterns: tuple[IgnorePattern, ...] = tuple(patterns or ())
        self.source = source
        self._exceptions = tuple(p for p in self.patterns if p.exception)

    @classmethod
    def from_text(cls, content: str, source: str = ".dockerignore") -> IgnoreMatcher:
        return cls(read_patterns(content, source), source)

    @property
    def has_exceptions(self) -> bool:
        return bool(self._exceptions)

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def ignored(self, rel_path: str, is_dir: bool = False) -> bool:
        """Whether ``rel_path`` (relative to the context, ``/``-separated) is excluded.

        ``is_dir`` does not change the answer (docker's patterns do not distinguish
        directories); it is accepted so walkers can pass what they know.
        """
        path = _normalise(rel_path)
        if path == ".":
            return False
        excluded = False
        for pattern in self.patterns:
            # A pattern can only change the answer if it points the other way.
            if pattern.exception != excluded:
                continue
            if pattern.matches_self_or_parent(path):
                excluded = not pattern.exception
        return excluded

    def can_skip_dir(self, rel_dir: str) -> bool:
        """Whether a walk may skip ``rel_dir`` entirely.

        True only when the directory is excluded and no ``!`` exception could re-include
        anything below it.
        """
        path = _normalise(rel_dir)
        if path == "." or not self.ignored(path, True):
            return False
        return not any(p.could_match_below(path) for p in self._exceptions)

    def walk(self, context_dir: str | os.PathLike[str]) -> Iterator[tuple[str, bool]]:
        """Every path of the context that is not excluded, as ``(rel_path, is_dir)``.

        Directories that are excluded but hold re-included files are descended into and
        yielded only if something inside them is included (so an archive can create them).
        Symlinks are reported, not followed.
        """
        root = os.fspath(context_dir)
        yield from self._walk(root, "")

    def _walk(self, root: str, rel: str) -> Iterator[tuple[str, bool]]:
        try:
            entries = sorted(os.scandir(os.path.join(root, rel) if rel else root), key=lambda e: e.name)
        except OSError:
            return
        for entry in entries:
            child = f"{rel}/{entry.name}" if rel else entry.name
            is_dir = entry.is_dir(follow_symlinks=False)
            if is_dir:
                if self.can_skip_dir(child):
                    continue
                inner = list(self._walk(root, child))
                if not self.ignored(child, True) or inner:
                    yield child, True
                yield from inner
            elif not self.ignored(child, False):
                yield child, False


def _normalise(rel_path: str) -> str:
    path = clean_path(rel_path.replace(os.sep, "/"))
    return path.lstrip("/") or "."


def load_dockerignore(
    context_dir: str | os.PathLike[str], dockerfile_path: str | os.PathLike[str] | None = None
) -> IgnoreMatcher:
    """The matcher a build of ``context_dir`` with ``dockerfile_path`` must use.

    ``<dockerfile>.dockerignore`` beside the Dockerfile wins over ``<context>/.dockerignore``;
    with neither, nothing is excluded.
    """
    candidates: list[Path] = []
    if dockerfile_path is not None:
        candidates.append(Path(os.fspath(dockerfile_path) + ".dockerignore"))
    candidates.append(Path(context_dir) / ".dockerignore")
    for candidate in candidates:
        try:
            content = candidate.read_bytes().decode("utf-8", errors="replace")
        except FileNotFoundError:
            continue
        except IsADirectoryError:
            continue
        except OSError as err:
            raise DockerfileError(f"cannot read the ignore file: {err.strerror}", 0, str(candidate)) from None
        return IgnoreMatcher.from_text(content, str(candidate))
    return IgnoreMatcher()
