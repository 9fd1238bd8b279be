"""COPY and ADD: what lands where, with which owner and mode, written as a layer.

The rules are Docker's legacy builder's (moby ``builder/dockerfile/copy.go``), because
that is what the oracle tests compare against:

- a directory source copies its *contents*; the destination directory, when it is
  created, is 0755 and belongs to the --chown owner; its missing parents belong to root;
- a file source lands at ``dest/<name>`` when ``dest`` ends in ``/`` or is an existing
  directory, else at ``dest``; its missing parents belong to the --chown owner;
- several sources (or a wildcard matching several) need a destination ending in ``/``;
- a symlink named as a source is followed (inside the context); symlinks inside a copied
  directory are copied as symlinks; hard links among copied files stay hard links;
- modes come from the source, owners from --chown (default 0:0), never from the disk;
- a copied directory over an image path that is not a directory replaces it;
- ADD of a local tar archive (plain, gzip, bzip2, xz or zstd) extracts it, keeping the
  archive's owners and modes.

Content is written straight into a staging layer directory; directories that already
exist in the image are mirrored with their metadata so the layer is valid overlay form.
The file index built here is the layer's truth (owners a rootless store cannot set).
Unchanged files can be hard-linked from an earlier layer instead of copied: layer
directories are never modified in place, and a link is only made when the earlier inode
already has exactly the mode, owner and mtime wanted.
"""

from __future__ import annotations

import errno
import os
import posixpath
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import xxhash

from ..store.export import ExportRules, export_view
from ..store.extract import EMPTY_DIGEST
from ..store.index import DIR, FILE, HARDLINK, SYMLINK, FileEntry, normalize
from ..store.union import UnionEntry, UnionView
from .context import BuildContext, ContextEntry, SourceMatch
from .copyitems import ROOT, CopyError, CopyItem, Owner
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


def parse_chmod(spec: str | None, line: int, filename: str, keyword: str) -> int | None:
    if not spec:
        return None
    try:
        value = int(spec, 8)
    except ValueError:
        value = -1
    if not 0 <= value <= 0o7777:
        raise CopyError(f"{keyword} --chmod: invalid mode {spec!r} (use octal, e.g. 0755)", line, filename)
    return value


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


@dataclass
class CopyPlan:
    """Items in the order they are placed, plus the directory targets of directory sources."""

    items: list[CopyItem]
    dir_targets: list[tuple[str, Owner, int]]  # (path, owner and mtime_ns for it when created)
    parents_owner: dict[str, Owner]  # per item dest: owner of missing parents


def _file_target(view: UnionView, dest: str, dest_as_dir: bool, name: str) -> str:
    real = view.resolve_path(dest)
    if dest_as_dir or _is_dir(view, real):
        return posixpath.join(real, name) if real != "/" else "/" + name
    parent = view.resolve_path(posixpath.dirname(dest))
    return posixpath.join(parent, posixpath.basename(dest))


def _check_dest_dir(view: UnionView, path: str, keyword: str, line: int, filename: str) -> None:
    hit = view.lookup(path)
    if hit is not None and hit.entry.type != DIR:
        raise CopyError(f"{keyword} failed: destination {path} exists and is not a directory", line, filename)


def plan_context_copy(
    ctx: BuildContext,
    matches: list[SourceMatch],
    digests: Mapping[str, str],
    dest: str,
    dest_as_dir: bool,
    view: UnionView,
    owner: Owner,
    chmod: int | None,
    line: int,
    keyword: str = "COPY",
) -> CopyPlan:
    """Items for sources from the build context (after wildcard expansion)."""
    items: list[CopyItem] = []
    dir_targets: list[tuple[str, Owner, int]] = []
    parents: dict[str, Owner] = {}
    for match in matches:
        if match.is_dir:
            target = view.resolve_path(dest)
            _check_dest_dir(view, target, keyword, line, ctx.filename)
            dir_targets.append((target, owner, match.entry.mtime_ns))
            base = match.real
            cut = len(base) + 1 if base else 0
            for entry in ctx.under(base):
                rel = entry.rel[cut:]
                path = target.rstrip("/") + "/" + rel
                items.append(_context_item(ctx, entry, path, digests, owner, chmod))
        else:
            target = _file_target(view, dest, dest_as_dir, match.name)
            items.append(_context_item(ctx, match.entry, target, digests, owner, chmod))
            parents[target] = owner
    _link_hardlinks(items)
    return CopyPlan(items, dir_targets, parents)


def _context_item(
    ctx: BuildContext, entry: ContextEntry, path: str, digests: Mapping[str, str], owner: Owner, chmod: int | None
) -> CopyItem:
    if stat.S_ISREG(entry.mode):
        mode = chmod if chmod is not None else entry.mode & 0o7777
        # The link field holds a placeholder until hard links are grouped.
        link = f"\0{entry.dev}:{entry.ino}" if entry.nlink > 1 else None
        return CopyItem(
            path, FILE, mode, owner, entry.mtime_ns, entry.size, digests.get(entry.rel), link, ctx.abspath(entry.rel)
        )
    kind = entry.kind
    if kind == SYMLINK:
        return CopyItem(path, kind, entry.mode & 0o7777, owner, entry.mtime_ns, link=entry.link)
    return CopyItem(path, kind, chmod if chmod is not None else entry.mode & 0o7777, owner, entry.mtime_ns)


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


def plan_image_copy(
    src_view: UnionView,
    sources: list[str],
    dest: str,
    dest_as_dir: bool,
    view: UnionView,
    owner: Owner | None,
    chmod: int | None,
    line: int,
    filename: str,
    keyword: str = "COPY",
) -> tuple[CopyPlan, list[FileEntry]]:
    """Items for COPY --from=<stage|image>; also the source entries (for the checksum).

    Without --chown (``owner`` None) files keep the owners they have in the source image,
    and directories the copy has to create belong to root (moby's
    ``testBuildPreserveOwnership``); with it, everything copied gets that owner.
    """
    items: list[CopyItem] = []
    dir_targets: list[tuple[str, Owner, int]] = []
    parents: dict[str, Owner] = {}
    seen: list[FileEntry] = []
    placed: dict[str, CopyItem] = {}  # source path -> item, for hard links
    walk: list[UnionEntry] | None = None
    for src in sources:
        pattern = normalize(src)
        if any(ch in pattern for ch in "*?["):
            from .context import match_regex

            if walk is None:
                walk = src_view.walk()
            regex = match_regex(pattern.lstrip("/"))
            paths = [u.path for u in walk if regex.fullmatch(u.path.lstrip("/"))]
            if not paths:
                raise CopyError(f"{keyword} failed: no source files were specified: no match for {src}", line, filename)
        else:
            paths = [pattern]
        for written in paths:
            real = src_view.resolve_path(written)
            hit = src_view.lookup(real)
            if hit is None:
                raise CopyError(
                    f"{keyword} failed: {src}: no such file or directory in the source image", line, filename
                )
            if hit.entry.type == DIR:
                target = view.resolve_path(dest)
                _check_dest_dir(view, target, keyword, line, filename)
                dir_targets.append((target, owner or ROOT, round(hit.entry.mtime * 1e9)))
                if walk is None:
                    walk = src_view.walk()
                prefix = real.rstrip("/") + "/"
                below = [u for u in walk if u.path.startswith(prefix)]
                for u in below:
                    path = target.rstrip("/") + "/" + u.path[len(prefix) :]
                    item = _image_item(src_view, u, path, owner, chmod)
                    items.append(item)
                    placed[u.path] = item
                    seen.append(u.entry)
            else:
                target = _file_target(view, dest, dest_as_dir, posixpath.basename(written))
                item = _image_item(src_view, hit, target, owner, chmod)
                items.append(item)
                placed[hit.path] = item
                seen.append(hit.entry)
                parents[target] = owner or ROOT
    for item in items:
        if item.kind == HARDLINK:
            primary = placed.get(item.link or "")
            if primary is not None and primary.kind == FILE:
                item.link = primary.dest
            else:
                _as_file(src_view, item)
    return CopyPlan(items, dir_targets, parents), seen


def _image_item(src_view: UnionView, u: UnionEntry, path: str, owner: Owner | None, chmod: int | None) -> CopyItem:
    e = u.entry
    mode = chmod if chmod is not None and e.type != SYMLINK else e.mode
    who = owner if owner is not None else Owner(e.uid, e.gid)
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
    for target, owner, mtime_ns in plan.dir_targets:
        writer.ensure_dir(target, owner, mtime_ns / 1e9, parents_owner=ROOT)
    for item in plan.items:
        writer.place(item, plan.parents_owner.get(item.dest))


def inline_items(
    contents: Iterable[tuple[str, bytes]],
    dest: str,
    dest_as_dir: bool,
    view: UnionView,
    owner: Owner,
    chmod: int | None,
    mtime_ns: int,
) -> CopyPlan:
    """Heredoc sources: ``(name, data)`` pairs become files."""
    items: list[CopyItem] = []
    parents: dict[str, Owner] = {}
    for name, data in contents:
        target = _file_target(view, dest, dest_as_dir, name)
        item = CopyItem(
            target,
            FILE,
            chmod if chmod is not None else 0o644,
            owner,
            mtime_ns,
            len(data),
            xxhash.xxh3_128_hexdigest(data) if data else EMPTY_DIGEST,
            data=data,
        )
        items.append(item)
        parents[target] = owner
    return CopyPlan(items, [], parents)


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
