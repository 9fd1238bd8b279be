"""Small filesystem helpers shared by every layer of the code: durable writes and
errno classification. Anything path-safety related lives in ``store/safepath.py``."""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from .errors import StoreFull, StoreReadOnly


def fsync_dir(path: str | os.PathLike[str]) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike[str], data: bytes, mode: int = 0o600) -> None:
    """Write a whole file so that readers see the old or the new content, never a mix."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with guard_enospc(str(path)):
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        fsync_dir(path.parent)


FREE_SPACE_HINT = (
    "free space with `strata builder prune`, `strata system prune` or `strata rmi` "
    "(`strata system df` shows what takes it; they work on a full disk) and retry"
)


@contextlib.contextmanager
def guard_enospc(where: str) -> Iterator[None]:
    """Turn disk-full and read-only errors into one clear StoreFull or StoreReadOnly."""
    try:
        yield
    except OSError as e:
        if e.errno == errno.ENOSPC:
            raise StoreFull(f"no space left on device while writing {where}; {FREE_SPACE_HINT}") from e
        if e.errno == errno.EDQUOT:
            raise StoreFull(f"disk quota exceeded while writing {where}") from e
        if e.errno == errno.EROFS:
            raise StoreReadOnly(f"read-only file system at {where}") from e
        raise


def rmtree(path: str | os.PathLike[str]) -> None:
    """Remove a tree even where directories lack write or search permission
    (layers can hold 0555 dirs) without ever following a symlink.

    What still cannot be removed after making the directories around it ours raises
    the ``OSError`` (``PermissionError`` for files of ids we cannot touch). Rootless
    content is removed from inside the store's user namespace (``runtime.storens``),
    where every id it holds is ours."""
    p = os.fspath(path)
    try:
        st = os.lstat(p)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(st.st_mode):
        os.unlink(p)
        return

    import shutil

    entered: set[str] = set()

    def onerror(func, failed, exc_info):  # type: ignore[no-untyped-def]
        error = exc_info[1]
        if isinstance(error, FileNotFoundError):
            return
        with contextlib.suppress(OSError):
            os.chmod(os.path.dirname(failed), 0o700)
        with contextlib.suppress(OSError):
            if os.path.isdir(failed) and not os.path.islink(failed):
                os.chmod(failed, 0o700)
        if func in (os.unlink, os.rmdir, os.remove):
            try:
                func(failed)
            except FileNotFoundError:
                pass
            except IsADirectoryError:
                _retry_tree(failed, error)
            return
        # A directory we could not open, list or stat (os.open, os.scandir, os.lstat):
        # once its modes are ours, remove it as a tree of its own, but only once.
        _retry_tree(failed, error)

    def _retry_tree(failed: str, error: BaseException) -> None:
        if failed in entered:
            raise error
        entered.add(failed)
        shutil.rmtree(failed, onerror=onerror)

    for root, dirs, _files in os.walk(p):
        for d in dirs:
            full = os.path.join(root, d)
            with contextlib.suppress(OSError):
                if not os.path.islink(full):
                    os.chmod(full, 0o700)
    with contextlib.suppress(OSError):
        os.chmod(p, 0o700)
    shutil.rmtree(p, onerror=onerror)


def dir_size(path: str | os.PathLike[str]) -> int:
    """Bytes of the regular files below ``path``, each inode once (hard links share their
    bytes); symlinks are not followed. What cannot be read counts as nothing, and a
    missing ``path`` is 0: the one measure of a volume, a container layer, a cache mount
    or what a repair frees, for ``system df``, the prunes and the window alike."""
    total = 0
    seen: set[tuple[int, int]] = set()
    stack = [os.fspath(path)]
    is_dir, is_reg = stat.S_ISDIR, stat.S_ISREG
    while stack:
        try:
            listing = os.scandir(stack.pop())
        except OSError:
            continue
        with listing:
            for entry in listing:
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                if is_dir(st.st_mode):
                    stack.append(entry.path)
                elif is_reg(st.st_mode):
                    if st.st_nlink > 1:
                        key = (st.st_dev, st.st_ino)
                        if key in seen:
                            continue
                        seen.add(key)
                    total += st.st_size
    return total
