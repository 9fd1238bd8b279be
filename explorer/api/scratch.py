"""Scratch copies of a vfs container's layer, one per use, owned by what uses them.

A vfs container has no upper directory: its changes are found by comparing its full
copy with the image (``runtime.vfs_diff``) into a scratch directory. Every use (a
listing, a diff, a commit, a file browser open in the window) gets a directory of its
own, so uses running at once never delete each other's files, and the object that
reads it removes it: ``close()`` (or leaving a ``with``), else the garbage collector
once the view and its layer are gone, else the end of the process. The directory name
carries its owner's pid and start time (``marks.owned_name``), so scratch a killed
process left behind is recognised as dead and removed the next time any strata opens
the store (``Store.clean_staging``), and ``system check`` names it until then.
"""

from __future__ import annotations

import contextlib
import secrets
import weakref
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from ..errors import StrataError
from ..store.index import FileEntry
from ..store.marks import owned_name
from ..store.union import LayerSource, ListedLayer, UnionView

PREFIX = "stage-diff-"


def _remove(path: str) -> None:
    """Best effort, as it may run from the garbage collector or at exit: what cannot go
    now is dead scratch for the next store open to collect."""
    from ..fsutil import rmtree

    with contextlib.suppress(OSError, StrataError):
        rmtree(path)


class Scratch:
    """A new private directory under the store's ``tmp/``, removed exactly once."""

    def __init__(self, tmp: Path, what: str) -> None:
        while True:
            path = tmp / owned_name(f"{PREFIX}{what}-{secrets.token_hex(6)}")
            try:
                path.mkdir(mode=0o700)
                break
            except FileExistsError:
                continue
        self.path = path
        self._finalizer = weakref.finalize(self, _remove, str(path))

    @property
    def closed(self) -> bool:
        return not self._finalizer.alive

    def close(self) -> None:
        self._finalizer()


class ScratchLayer(ListedLayer):
    """A container layer whose content lives in a scratch directory: the layer keeps it
    alive, so whoever still holds the layer can still read its files."""

    def __init__(self, label: str, entries: Sequence[FileEntry], scratch: Scratch, content: Path) -> None:
        super().__init__(label, entries, content, kind="container")
        self.scratch = scratch


class ContainerView(UnionView):
    """A container's merged files. On vfs it owns the scratch copy its top layer reads:
    ``close()`` removes it (a view of an overlay container holds nothing to remove)."""

    def __init__(self, layers: Sequence[LayerSource], scratch: Scratch | None = None) -> None:
        super().__init__(layers)
        self._scratch = scratch

    def close(self) -> None:
        if self._scratch is not None:
            self._scratch.close()

    def __enter__(self) -> ContainerView:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()
