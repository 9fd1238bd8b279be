"""Find (and make) a mount target inside a container's root, never outside it.

Mounts are set up before ``pivot_root``, when a plain path such as
``rootfs/a/b/newdir`` is resolved in the host's view: a symlink ``/a/b -> /etc``
planted by the image, by the container's own layer or by another container in a
shared volume would make the runtime create directories, files and mounts on the
host. Here every lookup goes through ``openat2(RESOLVE_IN_ROOT)``, so a symlink or
``..`` is resolved as the container would resolve it, with the container's root as
``/``, and missing parts are created one name at a time relative to a descriptor
of their resolved parent. The caller mounts onto the descriptor returned, so no
path is looked up again between the check and the mount.
"""

from __future__ import annotations

import os
import posixpath
import stat

from ..errors import InvalidArgument
from . import linux

_MAX_LINKS = 40
_RESOLVE = linux.RESOLVE_IN_ROOT | linux.RESOLVE_NO_MAGICLINKS


def _open(root_fd: int, rel: str) -> int:
    return linux.openat2(root_fd, rel or ".", os.O_PATH, _RESOLVE)


def _rel_of(fd: int, root_path: str) -> str:
    """Where ``fd`` is, relative to the root (through the kernel, not by string)."""
    path = os.readlink(f"/proc/self/fd/{fd}")
    if path == root_path:
        return ""
    if not path.startswith(root_path.rstrip("/") + "/"):
        raise InvalidArgument(f"mount target resolved outside the container's root: {path}")
    return path[len(root_path.rstrip("/")) + 1 :]


def _check_kind(fd: int, path: str, is_dir: bool) -> int:
    st = os.fstat(fd)
    if stat.S_ISDIR(st.st_mode) != is_dir:
        os.close(fd)
        kind = "directory" if is_dir else "file"
        raise InvalidArgument(f"cannot mount a {kind} on {path}: the container has a different kind of file there")
    return fd


def open_in_root(root_fd: int, path: str, *, is_dir: bool, create: bool = True) -> int:
    """An ``O_PATH`` descriptor of ``path`` inside the root ``root_fd`` holds.

    Missing directories (and, for a file target, the file) are created with mode
    0755/0644; a dangling symlink on the way is followed inside the root, as Docker
    creates the target of a dangling link. Raises InvalidArgument for a target of
    the wrong kind or a loop of links.
    """
    root_path = os.readlink(f"/proc/self/fd/{root_fd}")
    rel = posixpath.normpath("/" + path).lstrip("/")
    links = 0
    while True:
        try:
            return _check_kind(_open(root_fd, rel), path, is_dir)
        except FileNotFoundError:
            if not create:
                raise
        except NotADirectoryError:
            raise InvalidArgument(f"cannot mount on {path}: a part of the path is not a directory") from None
        parts = rel.split("/")
        parent = _open(root_fd, "")
        restart = False
        try:
            for i, name in enumerate(parts):
                last = i == len(parts) - 1
                sub = "/".join(parts[: i + 1])
                try:
                    child = _open(root_fd, sub)
                except FileNotFoundError:
                    child = -1
                except NotADirectoryError:
                    raise InvalidArgument(f"cannot mount on {path}: {'/' + sub} is not a directory") from None
                if child < 0:
                    try:
                        if last and not is_dir:
                            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
                            os.close(os.open(name, flags, 0o644, dir_fd=parent))
                        else:
                            os.mkdir(name, 0o755, dir_fd=parent)
                    except FileExistsError:
                        st = os.stat(name, dir_fd=parent, follow_symlinks=False)
                        if stat.S_ISLNK(st.st_mode):
                            links += 1
                            if links > _MAX_LINKS:
                                raise InvalidArgument(
                                    f"cannot mount on {path}: too many levels of symbolic links"
                                ) from None
                            target = os.readlink(name, dir_fd=parent)
                            base = "" if target.startswith("/") else _rel_of(parent, root_path)
                            rest = "/".join(parts[i + 1 :])
                            rel = posixpath.normpath("/" + posixpath.join(base, target, rest)).lstrip("/")
                        restart = True  # a link to follow, or a racing change: look again
                        break
                    child = _open(root_fd, sub)
                os.close(parent)
                parent = child
            if not restart:
                return _check_kind(_open(root_fd, rel), path, is_dir)
        finally:
            if parent >= 0:
                os.close(parent)
