"""Images in and out of files: import a root filesystem tarball, load and save
docker-archives and OCI layouts. Each holds the gc lock shared, so a prune waits
instead of deleting the layers being written or read."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from ..errors import InvalidArgument
from .context import StoreContext

if TYPE_CHECKING:
    from ..store.images import Image
    from ..store.store import Store

Progress = Callable[[str], None]


def no_progress(_: str) -> None:
    pass


class Archives:
    """import, load, save; needs only the store."""

    def __init__(self, context: StoreContext) -> None:
        self._context = context

    @property
    def store(self) -> Store:
        return self._context.store

    def import_rootfs(
        self,
        source: str,
        name: str | None,
        message: str = "",
        changes: dict[str, Any] | None = None,
        stdin: BinaryIO | None = None,
    ) -> Image:
        from ..store import archive

        with self.store.gc_lock():
            if source == "-":
                if stdin is None:
                    raise InvalidArgument("import from - needs standard input")
                return archive.import_rootfs(self.store, stdin, name, "-", changes, message)
            path = Path(source)
            if not path.is_file():
                raise InvalidArgument(f"{source}: no such file; give a root filesystem tarball")
            check_readable(source)
            with open(path, "rb") as f:
                return archive.import_rootfs(self.store, f, name, source, changes, message)

    def load(self, path: str, progress: Progress = no_progress) -> list[str]:
        from ..store import archive

        if path != "-":
            check_readable(path)
        with self.store.gc_lock():
            return archive.load(self.store, path, progress)

    def save(self, names: list[str], output: str, fmt: str = "docker", progress: Progress = no_progress) -> None:
        from ..store import archive

        with self.store.gc_lock():
            archive.save(self.store, names, output, fmt, progress)


def check_readable(path: str) -> None:
    """An archive this user may not read is bad input, named as such (not a crash)."""
    if os.path.isdir(path):  # an OCI layout
        if not os.access(path, os.R_OK | os.X_OK):
            raise InvalidArgument(f"{path}: cannot read this directory; check its permissions")
        return
    try:
        with open(path, "rb"):
            pass
    except FileNotFoundError:
        raise InvalidArgument(f"{path}: no such file") from None
    except OSError as e:
        raise InvalidArgument(f"{path}: cannot read it: {e.strerror}; check its permissions") from None
