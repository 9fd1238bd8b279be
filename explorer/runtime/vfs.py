"""The vfs storage driver: for file systems where overlay cannot be mounted.

``materialize`` copies an image's layers into one private directory; ``diff``
compares that directory with the layers afterwards and writes the changes in the
same overlay form the store keeps every layer in (whiteout = char device 0/0,
opaque directory = xattr ``user.overlay.opaque=y``), so commit and ``diff`` do not
care which driver ran the container. Changes are detected as Docker's naive
differ does: type, mode, owner, size, mtime and link target.

Rootless, this runs inside the store's user namespace (``storens``), where every id
a container can use is ours to read and give to a copy; ``strict_owners`` makes an
owner that still cannot be kept an error rather than a silent change.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
from collections.abc import Iterator

from ..errors import PathTooLong
from ..fsutil import rmtree
from ..overlayfs import is_opaque, is_whiteout, mark_opaque
from .initlayer import init_dir
from .layerpath import Found, LayerStack

_OVERLAY_XATTR_PREFIXES = ("user.overlay.", "trusted.overlay.")


def _remove(path: str) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        rmtree(path)
    else:
        os.unlink(path)


def _copy_xattrs(src: str, dest: str) -> None:
    try:
        names = os.listxattr(src, follow_symlinks=False)
    except OSError:
        return
    for name in names:
        if name.startswith(_OVERLAY_XATTR_PREFIXES):
            continue
        with contextlib.suppress(OSError):
            os.setxattr(dest, name, os.getxattr(src, name, follow_symlinks=False), follow_symlinks=False)


def _copy_meta(st: os.stat_result, src: str, dest: str, strict: bool = False) -> None:
    """Owner (where this process may set it), mode, xattrs and times of ``src``.

    ``strict``: an owner that cannot be kept is an error (PermissionError), not a
    silent change; rootless, diffs run inside the store's user namespace (``storens``)."""
    if (st.st_uid, st.st_gid) != (os.geteuid(), os.getegid()):
        try:
            os.lchown(dest, st.st_uid, st.st_gid)
        except OSError as e:
            if strict:
                raise PermissionError(e.errno, f"cannot keep the owner {st.st_uid}:{st.st_gid}", src) from e
    if not stat.S_ISLNK(st.st_mode):
        os.chmod(dest, stat.S_IMODE(st.st_mode))
    _copy_xattrs(src, dest)
    os.utime(dest, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


def _copy_node(
    src: str, dest: str, st: os.stat_result, links: dict[tuple[int, int], str], strict: bool = False
) -> None:
    """Copy one non-directory, keeping hard links that share an inode in ``src``."""
    key = (st.st_dev, st.st_ino)
    if stat.S_ISREG(st.st_mode):
        if st.st_nlink > 1 and key in links:
            os.link(links[key], dest)
            return
        shutil.copyfile(src, dest, follow_symlinks=False)
        if st.st_nlink > 1:
            links[key] = dest
    elif stat.S_ISLNK(st.st_mode):
        os.symlink(os.readlink(src), dest)
    elif stat.S_ISFIFO(st.st_mode):
        os.mkfifo(dest, 0o600)
    elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
        try:
            os.mknod(dest, st.st_mode, st.st_rdev)
        except PermissionError:
            return  # device nodes need privilege; a container gets /dev from the runtime anyway
    else:
        return  # sockets are not content
    _copy_meta(st, src, dest, strict)


def _copy_tree(src: str, dest: str, links: dict[tuple[int, int], str], strict: bool = False) -> None:
    st = os.lstat(src)
    if not stat.S_ISDIR(st.st_mode):
        _copy_node(src, dest, st, links, strict)
        return
    os.mkdir(dest, 0o700)
    with os.scandir(src) as it:
        names = sorted(entry.name for entry in it)
    for name in names:
        _copy_tree(os.path.join(src, name), os.path.join(dest, name), links, strict)
    _copy_meta(st, src, dest, strict)


# --- materialize ---------------------------------------------------------------------


def _apply_layer(src: str, dest: str, links: dict[tuple[int, int], str]) -> None:
    with os.scandir(src) as it:
        entries = sorted(it, key=lambda e: e.name)
    for entry in entries:
        s = os.path.join(src, entry.name)
        d = os.path.join(dest, entry.name)
        st = entry.stat(follow_symlinks=False)
        if is_whiteout(st):
            _remove(d)
            continue
        if stat.S_ISDIR(st.st_mode):
            try:
                existing: os.stat_result | None = os.lstat(d)
            except FileNotFoundError:
                existing = None
            if existing is not None and not stat.S_ISDIR(existing.st_mode):
                os.unlink(d)
                existing = None
            if existing is not None and is_opaque(s):
                rmtree(d)
                existing = None
            if existing is None:
                os.mkdir(d, 0o700)
            else:
                os.chmod(d, 0o700)
            _apply_layer(s, d, links)
            _copy_meta(st, s, d)
            continue
        _remove(d)
        _copy_node(s, d, st, links)


@contextlib.contextmanager
def _within_path_max(what: str, roots: list[str]) -> Iterator[None]:
    """This driver copies by path: a path past PATH_MAX (which overlay and the store's own
    scans handle) is one clear error naming it as the container sees it (below one of
    ``roots``), not an internal one."""
    try:
        yield
    except OSError as e:
        if e.errno != errno.ENAMETOOLONG:
            raise
        path = os.fsdecode(e.filename or "")
        for root in roots:
            if path.startswith(root.rstrip("/") + "/"):
                path = path[len(root.rstrip("/")) :]
                break
        raise PathTooLong(path, f"vfs storage driver ({what})") from e


def materialize(lowerdirs: list[str], dest: str) -> None:
    """Copy the image whose layers are ``lowerdirs`` (top-most first) into ``dest``,
    applying whiteouts and opaque directories bottom-up."""
    os.makedirs(dest, mode=0o755, exist_ok=True)
    with _within_path_max("copying the image", [dest, *lowerdirs]):
        for layer in reversed(lowerdirs):
            _apply_layer(layer, dest, {})


# --- diff --------------------------------------------------------------------------------


def _changed(new: os.stat_result, old: os.stat_result, new_path: str, old_path: str) -> bool:
    if stat.S_IFMT(new.st_mode) != stat.S_IFMT(old.st_mode):
        return True
    if (new.st_mode, new.st_uid, new.st_gid) != (old.st_mode, old.st_uid, old.st_gid):
        return True
    if stat.S_ISDIR(new.st_mode):
        return False
    if new.st_size != old.st_size or new.st_mtime_ns != old.st_mtime_ns or new.st_rdev != old.st_rdev:
        return True
    if stat.S_ISLNK(new.st_mode):
        return os.readlink(new_path) != os.readlink(old_path)
    return False


class _Differ:
    def __init__(self, stack: LayerStack | None, rootdir: str, dest: str, strict: bool) -> None:
        self.strict = strict
        self.stack = stack
        self.rootdir = rootdir
        self.dest = dest
        self.links: dict[tuple[int, int], str] = {}
        self.made: set[str] = set()
        self.fixups: list[tuple[os.stat_result, str, str]] = []

    def _parent_ready(self, rel: str) -> None:
        """Create the diff's copies of ``rel``'s parents, with the container's metadata."""
        parent = os.path.dirname(rel)
        if not parent or parent in self.made:
            return
        self._parent_ready(parent)
        dest = os.path.join(self.dest, parent)
        if not os.path.isdir(dest):
            os.mkdir(dest, 0o700)
            src = os.path.join(self.rootdir, parent)
            self.fixups.append((os.lstat(src), src, dest))
        self.made.add(parent)

    def _whiteout(self, rel: str) -> None:
        self._parent_ready(rel)
        os.mknod(os.path.join(self.dest, rel), stat.S_IFCHR | 0o000, os.makedev(0, 0))

    def _add(self, rel: str) -> None:
        self._parent_ready(rel)
        _copy_tree(os.path.join(self.rootdir, rel), os.path.join(self.dest, rel), self.links, self.strict)

    def walk(self, rel: str, lower: Found | None) -> None:
        assert self.stack is not None
        below = self.stack.children(rel, lower) if lower is not None else {}
        with os.scandir(os.path.join(self.rootdir, rel)) as it:
            names = sorted(entry.name for entry in it)
        if below and not set(below) & set(names) and rel:
            self._opaque(rel, names)
            return
        for name in names:
            sub = os.path.join(rel, name)
            new_path = os.path.join(self.rootdir, sub)
            new = os.lstat(new_path)
            old = below.get(name)
            if old is None:
                self._add(sub)
                continue
            old_path = os.path.join(self.stack.layers[old.layer], sub)
            both_dirs = stat.S_ISDIR(new.st_mode) and stat.S_ISDIR(old.st.st_mode)
            if both_dirs:
                if _changed(new, old.st, new_path, old_path):
                    self._parent_ready(sub)
                    os.mkdir(os.path.join(self.dest, sub), 0o700)
                    self.made.add(sub)
                    self.fixups.append((new, new_path, os.path.join(self.dest, sub)))
                self.walk(sub, old)
            elif _changed(new, old.st, new_path, old_path):
                self._add(sub)
        for name in sorted(set(below) - set(names)):
            self._whiteout(os.path.join(rel, name))

    def _opaque(self, rel: str, names: list[str]) -> None:
        """Every lower child is gone: one opaque directory says it more simply."""
        self._parent_ready(os.path.join(rel, "x"))
        dest = os.path.join(self.dest, rel)
        for name in names:
            _copy_tree(os.path.join(self.rootdir, rel, name), os.path.join(dest, name), self.links, self.strict)
        mark_opaque(dest)

    def finish(self) -> None:
        for st, src, dest in reversed(self.fixups):
            _copy_meta(st, src, dest, self.strict)


def diff(
    lowerdirs: list[str], rootdir: str, dest: str, *, runtime_dir: str | None = None, strict_owners: bool = False
) -> None:
    """Write into ``dest`` (new or empty) what ``rootdir`` changed relative to the
    image ``lowerdirs`` (top-most first).

    Give the container's ``runtime_dir`` so mount targets the runtime created
    (its init layer: /proc, /etc/hosts …) do not count as changes. With
    ``strict_owners`` a file whose owner the copy cannot keep raises
    PermissionError (run the diff in the user namespace then).
    """
    layers = list(lowerdirs)
    if runtime_dir is not None and os.path.isdir(init_dir(runtime_dir)):
        layers.append(init_dir(runtime_dir))
    os.makedirs(dest, mode=0o755, exist_ok=True)
    if os.listdir(dest):
        raise OSError(errno.ENOTEMPTY, "diff destination is not empty", dest)
    if not layers:
        with _within_path_max("finding the container's changes", [rootdir, dest, *layers]):
            for name in sorted(os.listdir(rootdir)):
                _copy_tree(os.path.join(rootdir, name), os.path.join(dest, name), {}, strict_owners)
        return
    stack = LayerStack(layers)
    differ = _Differ(stack, rootdir, dest, strict_owners)
    with _within_path_max("finding the container's changes", [rootdir, dest, *layers]):
        differ.walk("", stack.root())
        differ.finish()
