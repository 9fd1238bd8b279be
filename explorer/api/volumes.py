"""Volume operations: create, list, inspect, remove, prune, and a view of a volume's files.

``--rm`` and ``rm -v`` remove a container's anonymous volumes, never named ones:
``Containers`` asks this group for that (``remove_anonymous``). How volumes are mounted
into a container is ``mounts.py``'s.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import InvalidArgument, StrataError, VolumeInUse, VolumeNotFound
from ..fsutil import dir_size
from ..store.images import now_rfc3339
from ..store.volumes import Volume, walk_rows
from .context import StoreContext

if TYPE_CHECKING:
    from ..store.store import Store
    from ..store.union import UnionView


@dataclass(frozen=True)
class VolumeInfo:
    name: str
    created: float
    labels: dict[str, str]
    anonymous: bool
    mountpoint: Path
    users: list[str]


def _info(v: Volume) -> VolumeInfo:
    return VolumeInfo(v.name, v.created, v.labels, v.anonymous, v.mountpoint, v.users)


class Volumes:
    """Everything about volumes; needs only the store."""

    def __init__(self, context: StoreContext) -> None:
        self._context = context

    @property
    def store(self) -> Store:
        return self._context.store

    def volumes(self, dangling: bool | None = None, labels: list[str] | None = None) -> list[VolumeInfo]:
        out = []
        for v in self.store.volumes.all():
            if dangling is not None and (not v.users) != dangling:
                continue
            if labels and not all(_label_matches(v.labels, f) for f in labels):
                continue
            out.append(_info(v))
        return out

    def volume(self, name: str) -> VolumeInfo:
        return _info(self.store.volumes.get(name))

    def volume_create(self, name: str | None = None, labels: dict[str, str] | None = None) -> VolumeInfo:
        return _info(self.store.volumes.create(name, labels))

    def volume_rm(self, names: list[str], force: bool = False) -> list[str]:
        removed = []
        for name in names:
            try:
                self.store.volumes.remove(name)
            except VolumeNotFound:
                if force:
                    continue
                raise
            removed.append(name)
        return removed

    def volume_prune(self, all: bool = False) -> tuple[list[str], int]:
        removed: list[str] = []
        freed = 0
        for v in self.store.volumes.all():
            if v.users or (not v.anonymous and not all):
                continue
            size = dir_size(v.mountpoint)
            try:
                self.store.volumes.remove(v.name)
            except VolumeInUse:
                continue
            removed.append(v.name)
            freed += size
        return removed, freed

    def volume_size(self, name: str) -> int:
        return dir_size(self.store.volumes.get(name).mountpoint)

    def volume_view(self, name: str) -> UnionView:
        return self.volume_listing(name)[0]

    def volume_listing(self, name: str) -> tuple[UnionView, int]:
        """The volume's files and its size from one walk (the GUI shows both)."""
        from ..store.union import ListedLayer, UnionView

        v = self.store.volumes.get(name)
        rows, size = walk_rows(v.mountpoint)
        return UnionView(
            [ListedLayer(f"volume {name}", (), v.mountpoint, kind="volume", rows=rows, ordered=True)]
        ), size

    def bind_view(self, source: str) -> UnionView:
        """A bind mount's host directory as a one-layer view, as a container sees it at its
        mount point (the window's file browser shows it there). The files are the user's own
        on the host, read from the host view like any other host path the user names."""
        from ..store.union import ListedLayer, UnionView

        root = Path(source)
        if not root.is_dir():
            raise InvalidArgument(f"bind source {source} is not a directory on this host")
        rows, _ = walk_rows(root)
        return UnionView([ListedLayer(f"bind {source}", (), root, kind="volume", rows=rows, ordered=True)])

    def inspect_volume(self, name: str) -> dict[str, Any]:
        v = self.store.volumes.get(name)
        return {
            "CreatedAt": now_rfc3339(v.created),
            "Driver": "local",
            "Labels": v.labels,
            "Mountpoint": str(v.mountpoint),
            "Name": v.name,
            "Options": v.options or None,
            "Scope": "local",
            "UsedBy": v.users,
        }

    def remove_anonymous(self, names: Iterable[str]) -> None:
        """Remove those of ``names`` that are anonymous and that no container mounts any
        more: what ``--rm``, ``rm -v`` and a refused create leave behind. Best effort, as
        Docker's: a volume that cannot go now stays for ``volume prune``."""
        for name in names:
            with contextlib.suppress(StrataError):
                volume = self.store.volumes.get(name)
                if volume.anonymous and not volume.users:
                    self.store.volumes.remove(name)


def _label_matches(labels: dict[str, str], spec: str) -> bool:
    key, sep, value = spec.partition("=")
    if key not in labels:
        return False
    return not sep or labels[key] == value
