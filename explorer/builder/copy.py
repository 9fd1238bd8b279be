"""COPY and ADD planning: which items a step makes, where they land, as whom, with which mode.

The rules are current BuildKit's (dockerfile2llb/convert_copy.go over fsutil's copy), which
Strata follows where Docker's two builders disagree (the table in ``explorer.builder``):

- a directory source copies its *contents*; a destination directory the copy makes is
  0755 (or the octal --chmod) and belongs to the --chown owner, as do the parents it makes;
- a file source lands at ``dest/<name>`` when ``dest`` ends in ``/`` or is a directory, else
  at ``dest`` itself, every symlink on the way followed inside the image, the last one
  too: COPY onto a symlink writes through it, onto a dangling one makes its target;
- a directory is merged into an existing one, file by file; a directory over a
  non-directory, or a file over a directory, is an error (not a silent replacement);
- several sources need a destination that is a directory: written with a ``/`` or one the
  image has (BuildKit does not check and lets each overwrite the last; Strata refuses);
- a wildcard that matches nothing copies nothing (BuildKit's AllowEmptyWildcard);
- a symlink named as a source is followed (inside the context); symlinks inside a copied
  directory are copied as symlinks; hard links are kept among the files of one directory
  source, while files named one by one are separate files even when the context links them;
- modes come from the source (or --chmod), owners from --chown (default 0:0; COPY --from
  keeps the source's owners), never from the disk;
- --exclude leaves out what its patterns match below each source (and a wildcard's matches
  themselves, as the reference documents); --parents keeps each source's path below the
  context root, or below a ``/./`` in the source.
"""

from __future__ import annotations

import errno
import os
import posixpath
import stat
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import xxhash

from ..store.export import ExportRules, export_view
from ..store.extract import EMPTY_DIGEST
from ..store.index import DIR, FILE, HARDLINK, SYMLINK, FileEntry, normalize
from ..store.union import UnionEntry, UnionView
from .chmod import Chmod
from .context import BuildContext, ContextEntry, SourceMatch, has_wildcards, match_regex
from .copyitems import ROOT, CopyError, CopyItem, Owner
from .dockerignore import IgnoreMatcher, clean_path, read_patterns
from .layerwriter import AS_ROOT, LayerWriter

# --- owners ------------------------------------------------------------------------------


def _table(view: UnionView, path: str) -> list[list[str]]:
    try:
        with view.open(path) as fh:
            text = fh.read(16 << 20).decode("utf-8", "replace")
    except Exception:
        return []
    return [line.split(":") for line in text.splitlines() if line and not line.startswith("#")]


def resolve_owner(view: UnionView, spec: str | None, line: int, filename: str, keyword: str) -> Owner:
    """``--chown=user[:group]`` against the image's own /etc/passwd and /etc/group.

    As in Docker's legacy builder a missing group means "the group named like the user"
    (``--chown=1000`` is 1000:1000).
    """
    if not spec:
        return ROOT
    parts = spec.split(":")
    if len(parts) > 2 or not parts[0]:
        raise CopyError(
            f"{keyword} --chown: invalid owner {spec!r} (use user, user:group, uid or uid:gid)", line, filename
        )
    user, group = (parts[0], parts[0]) if len(parts) == 1 else (parts[0], parts[1] or parts[0])

    def lookup(name: str, table: str, what: str) -> int:
        if name.isdigit():
            return int(name)
        for row in _table(view, table):
            if len(row) >= 3 and row[0] == name and row[2].isdigit():
                return int(row[2])
        raise CopyError(
            f"{keyword} --chown: unable to find {what} {name}: no matching entries in {table}", line, filename
        )

    return Owner(lookup(user, "/etc/passwd", "user"), lookup(group, "/etc/group", "group"))


# --- destinations ---------------------------------------------------------------------------


def absolute_dest(dest: str, workdir: str) -> tuple[str, bool]:
    """The destination as an absolute image path, and whether it was written as a directory."""
    as_dir = dest.endswith("/") or dest in (".", "..") or dest.endswith("/.")
    full = dest if dest.startswith("/") else posixpath.join(workdir or "/", dest)
    return normalize(full), as_dir


def _is_dir(view: UnionView, path: str) -> bool:
    hit = view.lookup(path)
    return hit is not None and hit.entry.type == DIR


# --- planning: which items a COPY/ADD makes -------------------------------------------------------


@dataclass(frozen=True)
class CopyOptions:
    """How one COPY/ADD copies: as whom, with which modes, leaving out what."""

    keyword: str
    line: int
    filename: str
    owner: Owner = ROOT
    chown: bool = False  # --chown given (COPY --from keeps the source's owners otherwise)
    chmod: Chmod | None = None
    exclude: IgnoreMatcher | None = None
    parents: bool = False

    def fail(self, message: str) -> CopyError:
        return CopyError(message, self.line, self.filename)

    def mode(self, mode: int, is_dir: bool) -> int:
        return self.chmod.apply(mode, is_dir) if self.chmod is not None else mode & 0o7777

    @property
    def dir_mode(self) -> int:
        """The mode of the directories the copy makes."""
        return self.chmod.dir_mode if self.chmod is not None else 0o755


def exclude_matcher(patterns: Sequence[str]) -> IgnoreMatcher | None:
    """--exclude patterns, read as .dockerignore lines are (BuildKit uses the same matcher)."""
    if not patterns:
        return None
    return IgnoreMatcher(read_patterns("\n".join(patterns), "--exclude"), "--exclude")


@dataclass
class CopyPlan:
    """Items in the order they are placed, plus the directory targets of directory sources."""

    items: list[CopyItem]
    # (path, owner and mtime_ns for it when created, owner of the parents it needs)
    dir_targets: list[tuple[str, Owner, int, Owner]] = field(default_factory=list)
    parents_owner: dict[str, Owner] = field(default_factory=dict)  # per item dest: owner of missing parents


def file_target(view: UnionView, dest: str, dest_as_dir: bool, name: str) -> str:
    """Where a file named ``name`` lands: inside ``dest`` when it is written as a directory
    or is one, else at ``dest`` with every symlink followed, the last one too."""
    real = view.resolve_path(dest)
    if dest_as_dir or _is_dir(view, real):
        return posixpath.join(real, name) if real != "/" else "/" + name
    return real


def _check_dest_dir(view: UnionView, path: str, opts: CopyOptions) -> None:
    hit = view.lookup(path)
    if hit is not None and hit.entry.type != DIR:
        raise opts.fail(f"{opts.keyword} failed: cannot copy to non-directory: {path} (a {hit.entry.type} is there)")


def check_several(count: int, dest: str, dest_as_dir: bool, view: UnionView, opts: CopyOptions) -> None:
    """Several sources need a directory destination: one written with a ``/``, or one the
    image has. BuildKit lets each source overwrite the last; Strata keeps the legacy error."""
    if count > 1 and not dest_as_dir and not _is_dir(view, view.resolve_path(dest)):
        raise opts.fail(
            f"When using {opts.keyword} with more than one source file, the destination must be a directory "
            f"and end with a /"
        )


def _kept(rels: Sequence[tuple[str, bool]], matcher: IgnoreMatcher | None) -> set[str]:
    """Which of ``(relative path, is_dir)`` survive ``matcher``: what it does not exclude,
    and the directories above what survives (an exception can bring a file back)."""
    if matcher is None:
        return {rel for rel, _ in rels}
    kept = {rel for rel, is_dir in rels if not matcher.ignored(rel, is_dir)}
    for rel in list(kept):
        parts = rel.split("/")
        kept.update("/".join(parts[:depth]) for depth in range(1, len(parts)))
    return kept


def _excluded_match(match: SourceMatch, opts: CopyOptions) -> bool:
    """Whether --exclude leaves out a wildcard's match: a file whose path below the
    wildcard's base a pattern matches (the reference's ``COPY --exclude=*.txt hom*``). A
    matched directory is still copied, its contents filtered (testExcludedFilesOnCopy's
    ``ADD --exclude=* dir* /6`` leaves /6 empty, not missing); a named source never is."""
    if opts.exclude is None or match.pattern_base is None or match.is_dir:
        return False
    base = match.pattern_base
    rel = match.written[len(base) + 1 :] if base else match.written
    return opts.exclude.ignored(rel, match.is_dir)


def _dir_selection(ctx: BuildContext, match: SourceMatch, opts: CopyOptions) -> list[ContextEntry]:
    """What a directory source copies: everything below it that --exclude keeps."""
    below = ctx.under(match.real)
    if opts.exclude is None:
        return below
    cut = len(match.real) + 1 if match.real else 0
    kept = _kept([(e.rel[cut:], e.is_dir) for e in below], opts.exclude)
    return [e for e in below if e.rel[cut:] in kept]


def context_entries(ctx: BuildContext, matches: Sequence[SourceMatch], opts: CopyOptions) -> list[ContextEntry]:
    """Every context entry a copy of ``matches`` reads: what its checksum is made of."""
    out: list[ContextEntry] = []
    for match in matches:
        if _excluded_match(match, opts):
            continue
        out += _dir_selection(ctx, match, opts) if match.is_dir else [match.entry]
    return out


def plan_context_copy(
    ctx: BuildContext,
    matches: list[SourceMatch],
    digests: Mapping[str, str],
    dest: str,
    dest_as_dir: bool,
    view: UnionView,
    opts: CopyOptions,
) -> CopyPlan:
    """Items for sources from the build context (after wildcard expansion)."""
    plan = CopyPlan([])
    for match in matches:
        if _excluded_match(match, opts):
            continue
        if match.is_dir:
            target = view.resolve_path(dest)
            _check_dest_dir(view, target, opts)
            plan.dir_targets.append((target, opts.owner, match.entry.mtime_ns, opts.owner))
            cut = len(match.real) + 1 if match.real else 0
            group = [
                _context_item(ctx, e, target.rstrip("/") + "/" + e.rel[cut:], digests, opts)
                for e in _dir_selection(ctx, match, opts)
            ]
            _link_hardlinks(group)
            plan.items += group
        else:
            target = file_target(view, dest, dest_as_dir, match.name)
            item = _context_item(ctx, match.entry, target, digests, opts)
            item.link = None if item.kind == FILE else item.link  # named alone: its own inode
            plan.items.append(item)
            plan.parents_owner[target] = opts.owner
    return plan


def _context_item(
    ctx: BuildContext, entry: ContextEntry, path: str, digests: Mapping[str, str], opts: CopyOptions
) -> CopyItem:
    if stat.S_ISREG(entry.mode):
        # The link field holds a placeholder until hard links are grouped.
        link = f"\0{entry.dev}:{entry.ino}" if entry.nlink > 1 else None
        return CopyItem(
            path,
            FILE,
            opts.mode(entry.mode, False),
            opts.owner,
            entry.mtime_ns,
            entry.size,
            digests.get(entry.rel),
            link,
            ctx.abspath(entry.rel),
        )
    kind = entry.kind
    if kind == SYMLINK:
        return CopyItem(path, kind, entry.mode & 0o7777, opts.owner, entry.mtime_ns, link=entry.link)
    return CopyItem(path, kind, opts.mode(entry.mode, kind == DIR), opts.owner, entry.mtime_ns)


def _link_hardlinks(items: list[CopyItem]) -> None:
    """Files sharing an inode: the first in path order keeps the content, the rest link to it."""
    first: dict[str, str] = {}
    for item in sorted((i for i in items if i.kind == FILE and i.link), key=lambda i: i.dest):
        key = item.link or ""
        if key in first:
            item.kind = HARDLINK
            item.link = first[key]
            item.source = None
        else:
            first[key] = item.dest
            item.link = None


# --- --parents -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ParentsSource:
    """One --parents source word: the directory it is relative to and the pattern below it.

    Without ``/./`` the pattern is the whole path, relative to the root; with one, the part
    before it is the base and only what follows is kept (rsync's --relative)."""

    base: str
    pattern: str
    required: bool  # no wildcard anywhere: the path must exist

    @classmethod
    def of(cls, word: str) -> ParentsSource:
        parent, pivot, rest = word.partition("/./")
        base, pattern = (parent, rest) if pivot else ("", word)
        base = clean_path("/" + base).lstrip("/")
        pattern = clean_path("/" + pattern).lstrip("/")
        return cls(base, pattern, not has_wildcards(base) and not has_wildcards(pattern))

    def select(self, rels: Sequence[tuple[str, bool]], exclude: IgnoreMatcher | None) -> list[str]:
        """The relative paths (in the order given) a copy of this source takes: those the
        pattern matches and everything below them, and the directories above them."""
        matcher = IgnoreMatcher(read_patterns(self.pattern, "--parents"), "--parents")
        chosen = {rel for rel, is_dir in rels if matcher.ignored(rel, is_dir)}
        for rel in list(chosen):
            parts = rel.split("/")
            chosen.update("/".join(parts[:depth]) for depth in range(1, len(parts)))
        kept = _kept([(rel, d) for rel, d in rels if rel in chosen], exclude)
        return [rel for rel, _ in rels if rel in kept]


def parents_selection(
    ctx: BuildContext, words: Sequence[str], opts: CopyOptions
) -> list[list[tuple[str, ContextEntry]]]:
    """For each base of each --parents source word, the ``(path below the base, entry)``
    pairs it copies, in path order."""
    groups: list[list[tuple[str, ContextEntry]]] = []
    for word in words:
        source = ParentsSource.of(word)
        if source.required:
            ctx.sources(posixpath.join(source.base, source.pattern) or ".", opts.line, opts.keyword)
        if has_wildcards(source.base):
            bases = ctx.sources(source.base, opts.line, opts.keyword)
        else:
            bases = ctx.sources(source.base or ".", opts.line, opts.keyword)
        for base in bases:
            if not base.is_dir:
                continue
            cut = len(base.real) + 1 if base.real else 0
            by_rel = {e.rel[cut:]: e for e in ctx.under(base.real)}
            chosen = source.select([(rel, e.is_dir) for rel, e in by_rel.items()], opts.exclude)
            groups.append([(rel, by_rel[rel]) for rel in chosen])
    return groups


def plan_parents_copy(
    ctx: BuildContext,
    words: Sequence[str],
    digests: Mapping[str, str],
    dest: str,
    view: UnionView,
    opts: CopyOptions,
) -> CopyPlan:
    """COPY --parents from the build context: every source keeps its path below its base."""
    plan = CopyPlan([])
    target = view.resolve_path(dest)
    _check_dest_dir(view, target, opts)
    plan.dir_targets.append((target, opts.owner, 0, opts.owner))
    for chosen in parents_selection(ctx, words, opts):
        group = [_context_item(ctx, entry, target.rstrip("/") + "/" + rel, digests, opts) for rel, entry in chosen]
        _link_hardlinks(group)
        plan.items += group
    return plan


# --- COPY --from ------------------------------------------------------------------------------


def plan_image_copy(
    src_view: UnionView,
    sources: list[str],
    dest: str,
    dest_as_dir: bool,
    view: UnionView,
    opts: CopyOptions,
) -> tuple[CopyPlan, list[FileEntry]]:
    """Items for COPY --from=<stage|image>; also the source entries (for the checksum).

    Without --chown files keep the owners they have in the source image, and directories
    the copy has to create belong to root (moby's ``testBuildPreserveOwnership``); with it,
    everything copied gets that owner.
    """
    plan = CopyPlan([])
    seen: list[FileEntry] = []
    walk: list[UnionEntry] | None = None
    count = 0
    made_by = opts.owner if opts.chown else ROOT
    for src in sources:
        if opts.parents:
            if walk is None:
                walk = src_view.walk()
            count += 2
            _plan_image_parents(src_view, walk, src, dest, view, opts, plan, seen)
            continue
        pattern = normalize(src)
        base: str | None = None
        if has_wildcards(pattern):
            if walk is None:
                walk = src_view.walk()
            regex = match_regex(pattern.lstrip("/"))
            paths = [u.path for u in walk if regex.fullmatch(u.path.lstrip("/"))]
            literal = pattern.split("/")
            base = "/".join(literal[: next(i for i, part in enumerate(literal) if has_wildcards(part))]) or "/"
        else:
            paths = [pattern]
        count += len(paths)
        for written in paths:
            real = src_view.resolve_path(written)
            hit = src_view.lookup(real)
            if hit is None:
                raise opts.fail(f"{opts.keyword} failed: {src}: no such file or directory in the source image")
            if (
                base is not None
                and opts.exclude is not None
                and hit.entry.type != DIR
                and opts.exclude.ignored(written[len(base.rstrip("/")) + 1 :])
            ):
                continue  # as _excluded_match
            if hit.entry.type == DIR:
                target = view.resolve_path(dest)
                _check_dest_dir(view, target, opts)
                plan.dir_targets.append((target, made_by, round(hit.entry.mtime * 1e9), made_by))
                if walk is None:
                    walk = src_view.walk()
                prefix = real.rstrip("/") + "/"
                below = [u for u in walk if u.path.startswith(prefix)]
                kept = _kept([(u.path[len(prefix) :], u.entry.type == DIR) for u in below], opts.exclude)
                group = [
                    (u, target.rstrip("/") + "/" + u.path[len(prefix) :])
                    for u in below
                    if u.path[len(prefix) :] in kept
                ]
                plan.items += _image_group(src_view, group, opts)
                seen += [u.entry for u, _ in group]
            else:
                target = file_target(view, dest, dest_as_dir, posixpath.basename(written))
                plan.items += _image_group(src_view, [(hit, target)], opts)
                seen.append(hit.entry)
                plan.parents_owner[target] = made_by
    check_several(count, dest, dest_as_dir, view, opts)
    return plan, seen


def _plan_image_parents(
    src_view: UnionView,
    walk: list[UnionEntry],
    word: str,
    dest: str,
    view: UnionView,
    opts: CopyOptions,
    plan: CopyPlan,
    seen: list[FileEntry],
) -> None:
    """COPY --from --parents: as ``plan_parents_copy``, over the source image's tree."""
    source = ParentsSource.of(word)
    target = view.resolve_path(dest)
    _check_dest_dir(view, target, opts)
    made_by = opts.owner if opts.chown else ROOT
    plan.dir_targets.append((target, made_by, 0, made_by))
    if has_wildcards(source.base):
        regex = match_regex(source.base)
        bases = [u.path for u in walk if u.entry.type == DIR and regex.fullmatch(u.path.lstrip("/"))]
    else:
        bases = [src_view.resolve_path("/" + source.base)]
    if (
        source.required
        and src_view.lookup(src_view.resolve_path("/" + posixpath.join(source.base, source.pattern))) is None
    ):
        raise opts.fail(f"{opts.keyword} failed: {word}: no such file or directory in the source image")
    for base in bases:
        prefix = base.rstrip("/") + "/"
        below = {u.path[len(prefix) :]: u for u in walk if u.path.startswith(prefix)}
        chosen = source.select([(rel, u.entry.type == DIR) for rel, u in below.items()], opts.exclude)
        group = [(below[rel], target.rstrip("/") + "/" + rel) for rel in chosen]
        plan.items += _image_group(src_view, group, opts)
        seen += [u.entry for u, _ in group]


def _image_group(src_view: UnionView, group: Sequence[tuple[UnionEntry, str]], opts: CopyOptions) -> list[CopyItem]:
    """Items for one source's paths; hard links stay links only within the group."""
    placed: dict[str, CopyItem] = {}
    items: list[CopyItem] = []
    for u, path in group:
        item = _image_item(src_view, u, path, opts)
        items.append(item)
        placed[u.path] = item
    for item in items:
        if item.kind == HARDLINK:
            primary = placed.get(item.link or "")
            if primary is not None and primary.kind == FILE:
                item.link = primary.dest
            else:
                _as_file(src_view, item)
    return items


def _image_item(src_view: UnionView, u: UnionEntry, path: str, opts: CopyOptions) -> CopyItem:
    e = u.entry
    mode = opts.mode(e.mode, e.type == DIR) if e.type != SYMLINK else e.mode
    who = opts.owner if opts.chown else Owner(e.uid, e.gid)
    item = CopyItem(path, e.type, mode, who, round(e.mtime * 1e9), e.size, e.digest, e.link)
    if e.type in (FILE, HARDLINK):
        item.source = str(src_view.layers[u.layer].content_path(e.path))
        item.immutable = True
        if e.type == FILE:
            item.link = None
    return item


def _as_file(src_view: UnionView, item: CopyItem) -> None:
    """A hard link whose partner is not copied becomes a plain copy of the shared content."""
    primary = src_view.lookup(item.link or "")
    item.kind = FILE
    item.link = None
    if primary is not None:
        item.size, item.digest = primary.entry.size, primary.entry.digest


def place_all(writer: LayerWriter, plan: CopyPlan) -> None:
    for target, owner, mtime_ns, parents_owner in plan.dir_targets:
        writer.ensure_dir(target, owner, (mtime_ns or 0) / 1e9, parents_owner=parents_owner)
    for item in plan.items:
        writer.place(item, plan.parents_owner.get(item.dest))


def inline_items(
    contents: Iterable[tuple[str, bytes]],
    dest: str,
    dest_as_dir: bool,
    view: UnionView,
    opts: CopyOptions,
    mtime_ns: int,
) -> CopyPlan:
    """Heredoc sources: ``(name, data)`` pairs become files."""
    plan = CopyPlan([])
    for name, data in contents:
        target = file_target(view, dest, dest_as_dir, name)
        item = CopyItem(
            target,
            FILE,
            opts.mode(0o644, False),
            opts.owner,
            mtime_ns,
            len(data),
            xxhash.xxh3_128_hexdigest(data) if data else EMPTY_DIGEST,
            data=data,
        )
        plan.items.append(item)
        plan.parents_owner[target] = opts.owner
    return plan


def export_subtree(view: UnionView, path: str, dest: str) -> None:
    """Copy what ``view`` shows at ``path`` (symlinks on the way followed inside the view)
    to ``dest`` on the host: RUN --mount from a stage or image needs real files to bind.
    Modes are kept as the layers keep them on disk (rootless, the owner can still read)."""
    real = view.resolve_path(path)
    if view.lookup(real) is None:
        raise FileNotFoundError(errno.ENOENT, "no such file or directory in the source image", path)
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    rules = ExportRules(special_bits=True, file_bits=0 if AS_ROOT else 0o400, dir_bits=0 if AS_ROOT else 0o500)
    export_view(view, real, dest, rules)
