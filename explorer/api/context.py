"""What every operation group stands on: one store root, its store (opened on first use)
and the storage driver new containers get.

The groups (``Images``, ``Containers``, ``Volumes`` …) receive this object in their
constructor instead of reaching for attributes of a shared ``self``: a group names
exactly what it needs, and a test can build one group over a store without the rest.
"""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path

from ..errors import InvalidArgument
from ..store.store import Store

DRIVER_FILE = "driver"
DRIVERS = ("overlay", "vfs")


class StoreContext:
    """One store root. Cheap to create: nothing touches the disk until ``store`` is read."""

    def __init__(self, root: Path, storage_driver: str | None = None) -> None:
        self.root = root
        self.storage_driver = storage_driver
        self._store: Store | None = None
        self._lock = threading.Lock()

    @property
    def store(self) -> Store:
        """The store, opened once even when the window's workers race to it."""
        store = self._store
        if store is None:
            with self._lock:
                store = self._store
                if store is None:
                    if os.geteuid() != 0:
                        # Rootless content is only readable inside the store's user namespace:
                        # a program using the API gets there as the CLI and the window do.
                        from ..runtime.storens import enter

                        enter()
                    store = self._store = Store(self.root)
        return store

    def close(self) -> None:
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None

    def driver(self) -> str:
        """The storage driver for new containers: the user's choice, else what this
        machine supports (probed once and remembered in the store)."""
        chosen = self.storage_driver
        if chosen:
            if chosen not in DRIVERS:
                raise InvalidArgument(f"unknown storage driver {chosen!r}: use overlay or vfs")
            return chosen
        marker = self.store.root / DRIVER_FILE
        with contextlib.suppress(OSError):
            remembered = marker.read_text().strip()
            if remembered in DRIVERS:
                return remembered
        from .. import runtime

        runtime.check_support()
        found = runtime.detect_driver(str(self.store.tmp))
        with contextlib.suppress(OSError):
            marker.write_text(found + "\n")
        return found
