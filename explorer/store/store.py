"""Opening a store root: layout, permissions, and clearing what a crash left behind."""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

from ..errors import StoreDamaged, StoreError
from .containers import ContainerStore
from .images import ImageStore
from .layers import LayerStore
from .locks import gc_lock, gc_lock_if_idle
from .marks import _owner, owner_live
from .metadata import Metadata
from .volumes import VolumeStore

# What the store writes into tmp/: staging, scratch, archives and the driver probe.
_STAGING = ("trash-", "layer-", "stage-", "save-", "load-", ".overlay-probe-")


def default_root() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "strata"


def lost_database(root: Path) -> str | None:
    """Why the database counts as lost (missing or empty while layers/, containers/ or
    volumes/ hold entries), or None.

    Opening would otherwise make a fresh, empty database, and every directory would look
    like an orphan that ``check --repair`` may delete: the data would go with the index."""
    db = root / "metadata.db"
    try:
        size = db.stat().st_size
    except FileNotFoundError:
        size = -1
    if size > 0:
        return None
    for area in ("layers", "containers", "volumes"):
        with contextlib.suppress(OSError), os.scandir(root / area) as entries:
            if any(True for _ in entries):
                return "missing" if size < 0 else "empty"
    return None


class Store:
    """A store root laid out like ``/var/lib/docker``; see ARCHITECTURE.md."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).absolute()
        try:
            if not self.root.is_dir():
                self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
            if self.root.stat().st_mode & 0o077:
                os.chmod(self.root, 0o700)
            for sub in ("layers", "containers", "volumes", "tmp"):
                if not (self.root / sub).is_dir():
                    (self.root / sub).mkdir(exist_ok=True, mode=0o700)
        except PermissionError as e:
            raise StoreError(f"cannot create the store at {self.root}: permission denied; choose --root") from e
        except OSError as e:
            raise StoreError(f"cannot create the store at {self.root}: {e.strerror}") from e
        self.tmp = self.root / "tmp"
        lost = lost_database(self.root)
        if lost is not None:
            raise StoreDamaged(str(self.root / "metadata.db"), lost, lost=True)
        self.meta = Metadata(self.root / "metadata.db")
        self.layers = LayerStore(self)
        self.images = ImageStore(self)
        self.containers = ContainerStore(self)
        self.volumes = VolumeStore(self)
        self.read_only = not os.access(self.root, os.W_OK)
        if not self.read_only:
            self.clean_staging()
            if self.forgets_everything():
                self.close()
                raise StoreDamaged(str(self.root / "metadata.db"), "empty of records", lost=True)

    def forgets_everything(self) -> bool:
        """True when no layer, container or volume is recorded although their directories
        hold entries no live process is writing: a database swapped for an empty one, in
        which every directory would look like an orphan.

        Writers record an entry before they drop its owner mark and removers forget it
        before its directory goes, so the directories are read first and the tables
        after; a remover between its two steps can still make the one entry of a store
        look unrecorded for a moment, so the verdict must hold over a few looks."""
        for attempt in range(8):
            if attempt:
                time.sleep(0.05)
            if not self._looks_forgotten():
                return False
        return True

    def _looks_forgotten(self) -> bool:
        unmarked = False
        for area in ("layers", "containers", "volumes"):
            with contextlib.suppress(FileNotFoundError):
                if any(not owner_live(entry) for entry in (self.root / area).iterdir()):
                    unmarked = True
                    break
        if not unmarked:
            return False
        return all(
            self.meta.one(f"SELECT 1 FROM {table} LIMIT 1") is None for table in ("layers", "containers", "volumes")
        )

    def clean_staging(self) -> list[str]:
        """Remove what processes that no longer run left half-done: staging under tmp/,
        and layer, container or volume directories still carrying the ``owner`` mark a
        writer removes only after its metadata transaction committed. Work of a live
        process (another strata writing right now) is left alone; a recorded directory
        keeps its content and loses only the stale mark (the crash came after the commit).

        Leftovers can hold files a rootless container gave to subordinate ids, which only
        the store's user namespace may delete (``runtime.storens``). What cannot be removed at all
        stays for ``system check`` to report: opening the store must not fail over it."""
        removed: list[str] = []
        with gc_lock_if_idle(self.root) as idle:
            for entry in self.tmp.iterdir():
                pid = _owner(entry)
                if owner_live(entry):
                    continue
                # Unmarked: a crash's only while no writer could be between making it and
                # marking it (see ``gc_lock_if_idle``).
                if (pid or (idle and entry.name.startswith(_STAGING))) and self._remove_leftover(entry):
                    removed.append(f"tmp/{entry.name}")
        for area in ("layers", "containers", "volumes"):
            for entry in (self.root / area).iterdir():
                if not _owner(entry) or owner_live(entry):
                    continue
                if self._recorded(area, entry.name):
                    with contextlib.suppress(OSError):
                        (entry / "owner").unlink()
                elif self._remove_leftover(entry):
                    removed.append(f"{area}/{entry.name}")
        return removed

    @staticmethod
    def _remove_leftover(path: Path) -> bool:
        from ..errors import StrataError
        from ..fsutil import rmtree as remove_tree

        try:
            remove_tree(str(path))
        except (OSError, StrataError):
            return False
        return True

    def _recorded(self, area: str, name: str) -> bool:
        table, column = {
            "layers": ("layers", "id"),
            "containers": ("containers", "id"),
            "volumes": ("volumes", "name"),
        }[area]
        return self.meta.one(f"SELECT 1 FROM {table} WHERE {column}=?", (name,)) is not None

    def gc_lock(self, exclusive: bool = False) -> contextlib.AbstractContextManager[None]:
        """See ``locks.py``: shared while layers are made or used, exclusive to delete them."""
        return gc_lock(self.root, exclusive)

    def close(self) -> None:
        self.containers.release_all()
        self.meta.close()
