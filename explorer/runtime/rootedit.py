"""The GUI's edits of a container's files: write, delete, make a directory.

These run inside the container's root (an ``inroot`` helper), so paths are the
container's own and every symlink on them resolves inside it. In a stopped
overlay container the kernel does what it does for the container's processes:
a write copies the file and its parent directories up into the diff, a delete of
something the image has leaves a whiteout.
"""

from __future__ import annotations

import os
import shutil
import stat

from ..errors import AlreadyExists, InvalidArgument, PathNotFound


def _absolute(path: str, where: str) -> str:
    if not path.startswith("/"):
        raise InvalidArgument(f"{where}: give an absolute path, not {path!r}")
    return os.path.normpath(path)


def _parent_dir(norm: str, where: str) -> str:
    parent = os.path.dirname(norm)
    if not os.path.isdir(parent):
        raise PathNotFound(where, parent)
    return parent


def write_file(path: str, data: bytes, where: str) -> None:
    """Replace the content of a file (created 0644 when missing) in place, so its
    owner, mode and hard links stay; a symlink is followed, as an editor would."""
    norm = _absolute(path, where)
    _parent_dir(norm, where)
    flags = os.O_WRONLY | os.O_CREAT | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
    try:
        fd = os.open(norm, flags, 0o644)
    except IsADirectoryError:
        raise InvalidArgument(f"{where}: {path} is a directory") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise InvalidArgument(f"{where}: {path} is not a regular file")
        os.ftruncate(fd, 0)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def remove(path: str, where: str) -> None:
    """Delete a file, link or whole directory; a link itself, never its target."""
    norm = _absolute(path, where)
    if norm == "/":
        raise InvalidArgument(f"{where}: refusing to delete the root directory")
    parent = _parent_dir(norm, where)
    name = os.path.basename(norm)
    pfd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        try:
            st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
        except FileNotFoundError:
            raise PathNotFound(where, norm) from None
        if stat.S_ISDIR(st.st_mode):
            shutil.rmtree(name, dir_fd=pfd)
        else:
            os.unlink(name, dir_fd=pfd)
    finally:
        os.close(pfd)


def make_dir(path: str, where: str) -> None:
    """Make a directory (0755) and any missing parents."""
    norm = _absolute(path, where)
    if os.path.lexists(norm):
        raise AlreadyExists(f"{where}: {norm} already exists")
    try:
        os.makedirs(norm, 0o755)
    except FileExistsError:
        raise AlreadyExists(f"{where}: {norm} already exists") from None
    except NotADirectoryError:
        raise InvalidArgument(f"{where}: a parent of {norm} is not a directory") from None
