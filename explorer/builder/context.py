"""The build context: the directory a build may read, as filtered by .dockerignore.

Docker sends the context to its daemon as a tar; Strata reads the directory in place,
so this module is where "what the daemon would have received" is decided: ignored paths
do not exist, and nothing outside the directory can be named. As in BuildKit, the context
is a root of its own: a source's ``../`` stops at it (``COPY ../a.txt`` is ``a.txt``), an
absolute symlink target is taken from it, and a relative one that climbs out stops at it,
so a symlink never reaches a host file. Every path is ``/``-separated and relative to the
context root ("" is the root itself).

The directory is stat-walked at most once per build and only where a source needs it;
content is never read here (see ``checksum``).
"""

from __future__ import annotations

import bisect
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from ..errors import DockerfileError
from ..store.index import type_from_mode
from .dockerignore import IgnoreMatcher, clean_path

_MAX_LINK_HOPS = 40
_WILDCARD = re.compile(r"[*?\[\\]")


class ContextEntry(NamedTuple):
    """One path of the context as lstat saw it (a tuple: a big context has many)."""

    rel: str
    mode: int  # full st_mode
    size: int
    mtime_ns: int
    ctime_ns: int
    dev: int
    ino: int
    nlink: int
    link: str | None  # symlink target as stored

    @property
    def kind(self) -> str:
        return type_from_mode(self.mode)

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.mode)

    @property
    def perm(self) -> int:
        return stat.S_IMODE(self.mode)

    @property
    def stat_key(self) -> tuple[int, int, int, int, int]:
        """What the stat cache compares: a change in any of these means "hash again"."""
        return (self.dev, self.ino, self.size, self.mtime_ns, self.ctime_ns)


@dataclass(frozen=True)
class SourceMatch:
    """One COPY/ADD source after wildcard expansion and symlink resolution.

    ``written`` is the path as the Dockerfile (or the wildcard match) named it: its last
    component names the copy. ``real`` is where the content is (symlinks followed).
    """

    written: str
    real: str
    entry: ContextEntry
    # For a wildcard match, the directory its pattern is relative to (the part before the
    # first wildcard): --exclude patterns see the match's path below it. None when named.
    pattern_base: str | None = None

    @property
    def is_dir(self) -> bool:
        return self.entry.is_dir

    @property
    def name(self) -> str:
        return self.written.rsplit("/", 1)[-1] if self.written else ""


def has_wildcards(path: str) -> bool:
    return _WILDCARD.search(path) is not None


def match_regex(pattern: str) -> re.Pattern[str]:
    """Go's ``filepath.Match`` as a regex: ``*`` and ``?`` never match ``/``."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "*":
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        elif ch == "[":
            end = pattern.find("]", i + 2)
            if end < 0:
                raise ValueError(f"syntax error in pattern {pattern!r}")
            body = pattern[i + 1 : end]
            negate = body.startswith("^")
            if negate:
                body = body[1:]
            items = body.replace("\\", "\\\\").replace("[", "\\[")
            out.append(("[^/" if negate else "[") + items + "]")
            i = end
        else:
            out.append(re.escape(ch))
        i += 1
    return re.compile("".join(out), re.DOTALL)


class BuildContext:
    """A context directory and its ignore rules; lazily stat-walked."""

    def __init__(
        self, root: str | os.PathLike[str], ignore: IgnoreMatcher | None = None, filename: str = "Dockerfile"
    ) -> None:
        self.root = os.path.realpath(os.fspath(root))
        self.ignore = ignore or IgnoreMatcher()
        self.filename = filename
        self._entries: dict[str, ContextEntry] = {}
        self._walked: set[str] = set()  # directories whose whole subtree is in _entries
        self._full = False
        self._sorted: list[str] | None = None

    @property
    def fully_walked(self) -> bool:
        return self._full

    @property
    def path(self) -> Path:
        return Path(self.root)

    def abspath(self, rel: str) -> str:
        return os.path.join(self.root, rel) if rel else self.root

    # --- stat walking ---------------------------------------------------------------

    def _stat(self, rel: str) -> ContextEntry | None:
        try:
            st = os.lstat(self.abspath(rel))
        except (FileNotFoundError, NotADirectoryError):
            return None
        link = os.readlink(self.abspath(rel)) if stat.S_ISLNK(st.st_mode) else None
        return ContextEntry(
            rel, st.st_mode, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_dev, st.st_ino, st.st_nlink, link
        )

    def _walk(self, rel_dir: str) -> list[ContextEntry]:
        """Every included path strictly below ``rel_dir``, in path order."""
        found: list[ContextEntry] = []
        if self.ignore:
            self._walk_into(rel_dir, found, True)
        else:
            self._walk_all(rel_dir, found)
        found.sort()  # entries are tuples led by their unique path
        return found

    def _walk_all(self, rel_dir: str, found: list[ContextEntry]) -> None:
        """``_walk_into`` without ignore rules: the loop an unchanged context's rebuild
        spends most of its time in, so it makes no object it does not keep. Directories are
        read through an fd, so each lstat resolves one name instead of a whole path."""
        make = tuple.__new__
        is_dir, is_link = stat.S_ISDIR, stat.S_ISLNK
        pending = [rel_dir]
        while pending:
            current = pending.pop()
            try:
                fd = os.open(self.abspath(current), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            except (FileNotFoundError, NotADirectoryError):
                continue
            except PermissionError as e:
                raise DockerfileError(
                    f"cannot read the build context: {e.filename}: permission denied", 0, self.filename
                ) from None
            try:
                prefix = current + "/" if current else ""
                with os.scandir(fd) as it:
                    for dent in it:
                        st = dent.stat(follow_symlinks=False)
                        mode = st.st_mode
                        rel = prefix + dent.name
                        link = os.readlink(dent.name, dir_fd=fd) if is_link(mode) else None
                        found.append(
                            make(
                                ContextEntry,
                                (
                                    rel,
                                    mode,
                                    st.st_size,
                                    st.st_mtime_ns,
                                    st.st_ctime_ns,
                                    st.st_dev,
                                    st.st_ino,
                                    st.st_nlink,
                                    link,
                                ),
                            )
                        )
                        if is_dir(mode):
                            pending.append(rel)
            except PermissionError as e:
                raise DockerfileError(
                    f"cannot read the build context: {os.path.join(self.abspath(current), e.filename or '')}: "
                    f"permission denied",
                    0,
                    self.filename,
                ) from None
            finally:
                os.close(fd)

    def _walk_into(self, rel_dir: str, found: list[ContextEntry], filtering: bool) -> bool:
        """Walk one directory; returns whether anything below it was included."""
        try:
            with os.scandir(self.abspath(rel_dir)) as it:
                dents = list(it)
        except (FileNotFoundError, NotADirectoryError):
            return False
        except PermissionError as e:
            raise DockerfileError(
                f"cannot read the build context: {e.filename}: permission denied", 0, self.filename
            ) from None
        any_included = False
        for dent in dents:
            rel = f"{rel_dir}/{dent.name}" if rel_dir else dent.name
            st = dent.stat(follow_symlinks=False)
            is_dir = stat.S_ISDIR(st.st_mode)
            ignored = filtering and self.ignore.ignored(rel, is_dir)
            if is_dir and ignored and self.ignore.can_skip_dir(rel):
                continue
            link = os.readlink(dent.path) if stat.S_ISLNK(st.st_mode) else None
            entry = ContextEntry(
                rel, st.st_mode, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_dev, st.st_ino, st.st_nlink, link
            )
            if is_dir:
                at = len(found)
                found.append(entry)
                inner = self._walk_into(rel, found, filtering)
                if ignored and not inner:
                    del found[at]
                    continue
                any_included = True
            elif not ignored:
                found.append(entry)
                any_included = True
        return any_included

    def entries(self) -> dict[str, ContextEntry]:
        """The whole context (one stat walk, then remembered)."""
        if not self._full:
            for entry in self._walk(""):
                self._entries[entry.rel] = entry
            self._full = True
            self._walked.add("")
            self._sorted = None
        return self._entries

    def under(self, rel_dir: str) -> list[ContextEntry]:
        """Everything included strictly below directory ``rel_dir``, in path order."""
        if self._full or rel_dir in self._walked:
            keys = self._sorted_keys()
            if not rel_dir:
                return [self._entries[k] for k in keys]
            prefix = rel_dir + "/"
            start = bisect.bisect_left(keys, prefix)
            out = []
            for k in keys[start:]:
                if not k.startswith(prefix):
                    break
                out.append(self._entries[k])
            return out
        found = self._walk(rel_dir)
        for entry in found:
            self._entries[entry.rel] = entry
        self._walked.add(rel_dir)
        self._full = self._full or rel_dir == ""
        self._sorted = None
        return found

    def _sorted_keys(self) -> list[str]:
        if self._sorted is None:
            self._sorted = sorted(self._entries)
        return self._sorted

    def lookup(self, rel: str) -> ContextEntry | None:
        """The entry at ``rel`` (no symlink following), or None if missing or ignored."""
        if rel == "":
            return self._stat("")
        if rel in self._entries:
            return self._entries[rel]
        if self._full:
            return None
        if self.ignore and self.ignore.ignored(rel):
            # An ignored directory still exists when something below it is re-included.
            if not self.ignore.has_exceptions:
                return None
            entry = self._stat(rel)
            if entry is None or not entry.is_dir or not self.under(rel):
                return None
            return entry
        entry = self._stat(rel)
        if entry is not None:
            self._entries[rel] = entry
            self._sorted = None
        return entry

    # --- sources ---------------------------------------------------------------------

    def _error(self, message: str, line: int) -> DockerfileError:
        return DockerfileError(message, line, self.filename)

    def clean_source(self, src: str, line: int, keyword: str = "COPY") -> str:
        """The context-relative form of a source as written: ``..`` stops at the context's
        root, as BuildKit's does (``/..`` is ``/``)."""
        del line, keyword
        return clean_path("/" + src).lstrip("/")

    def resolve(self, rel: str, line: int, keyword: str = "COPY", shown: str | None = None) -> str:
        """Follow symlinks in ``rel`` with the context as the root: an absolute target is
        taken from the context's root, and ``..`` never climbs above it."""
        parts = [p for p in rel.split("/") if p not in ("", ".")]
        done: list[str] = []
        hops = 0
        while parts:
            part = parts.pop(0)
            if part == "..":
                if done:
                    done.pop()
                continue
            candidate = "/".join([*done, part])
            try:
                st = os.lstat(self.abspath(candidate))
            except (FileNotFoundError, NotADirectoryError):
                return "/".join([candidate, *parts])
            if not stat.S_ISLNK(st.st_mode):
                done.append(part)
                continue
            hops += 1
            if hops > _MAX_LINK_HOPS:
                raise self._error(f"{keyword} failed: too many levels of symbolic links in {shown or rel}", line)
            target = os.readlink(self.abspath(candidate))
            if target.startswith("/"):
                done = []
            parts = [p for p in target.split("/") if p not in ("", ".")] + parts
        return "/".join(done)

    def sources(self, src: str, line: int, keyword: str = "COPY") -> list[SourceMatch]:
        """What one source word names: one match, or every wildcard match in path order.

        A missing or ignored source is an error, as in Docker. A wildcard that matches
        nothing names nothing, and is no error: BuildKit copies with AllowEmptyWildcard
        (the legacy builder failed: "no source files were specified").
        """
        rel = self.clean_source(src, line, keyword)
        if has_wildcards(rel):
            try:
                pattern = match_regex(rel)
            except ValueError:
                raise self._error(f"{keyword} failed: bad wildcard pattern {src}", line) from None
            literal = rel.split("/")
            cut = next(i for i, part in enumerate(literal) if has_wildcards(part))
            base = "/".join(literal[:cut])
            matches: list[SourceMatch] = []
            for path, entry in sorted(self.entries().items()):
                if pattern.fullmatch(path) is None:
                    continue
                found = self._follow(path, entry, line, keyword)
                matches.append(SourceMatch(found.written, found.real, found.entry, base))
            return matches
        if rel and self.ignore and self.lookup(rel) is None and self._stat(rel) is not None:
            raise self._error(
                f"{keyword} failed: file not found in build context or excluded by .dockerignore: {src}", line
            )
        return [self._follow(rel, None, line, keyword, src)]

    def _follow(
        self, written: str, entry: ContextEntry | None, line: int, keyword: str, shown: str | None = None
    ) -> SourceMatch:
        """Resolve ``written`` (symlinks followed, never outside) to the entry holding the content."""
        if entry is not None and not stat.S_ISLNK(entry.mode):
            return SourceMatch(written, entry.rel, entry)
        real = self.resolve(written, line, keyword, shown or written)
        target = self.lookup(real) if real else self._stat("")
        if target is None:
            raise self._error(
                f"{keyword} failed: file not found in build context or excluded by .dockerignore: {shown or written}",
                line,
            )
        return SourceMatch(written, real, target)
