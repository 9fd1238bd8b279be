"""Where the space goes and how to get it back (system df, the prunes) and whether the
store is sound (system check --repair).

The knowledge of what keeps what, what may be collected and what is damaged lives in the
store (``store.gc``, ``store.check``); ``System`` composes it with the containers'
states, which only the API knows (it is given ``Containers`` for them), and returns the
API's records (``usage.py``).

Shared layers are counted once everywhere: an image's *shared* size is the part of it
other images also use, its *unique* size what removing it alone would free.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from ..errors import StoreDamaged, StrataError
from ..fsutil import dir_size
from .containers import Containers
from .context import StoreContext

if TYPE_CHECKING:
    from ..store.check import Problem
    from ..store.store import Store
    from .sysinfo import SystemInfo
    from .usage import DiskUsage


class System:
    """info, df, the prunes, check; needs the store context and ``Containers``."""

    def __init__(self, context: StoreContext, containers: Containers) -> None:
        self._context = context
        self._containers = containers

    @property
    def store(self) -> Store:
        return self._context.store

    def info(self) -> SystemInfo:
        """What ``strata system info`` prints (docker info's shape)."""
        from .. import __version__
        from .sysinfo import gather

        return gather(self.store, self._context.driver(), __version__)

    # --- disk usage --------------------------------------------------------------------

    def df(self) -> DiskUsage:
        from ..store import gc
        from ..store.quarantine import entries
        from .usage import (
            CacheUsage,
            ContainerUsage,
            DiskUsage,
            ImageUsage,
            PartialPullUsage,
            QuarantineUsage,
            VolumeUsage,
        )

        store = self.store
        found = gc.usage(store)
        usage = DiskUsage(
            layers_size=found.layers_size,
            images_reclaimable=found.images_reclaimable,
            cache_size=found.cache_size,
            cache_reclaimable=found.cache_size,
        )
        for image in store.images.all():
            chain = found.chains[image.id]
            size = found.size_of(chain)
            shared = found.size_of([lid for lid in chain if len(found.users_of[lid]) > 1])
            usage.images.append(
                ImageUsage(
                    image.id,
                    image.familiar_tags,
                    image.created,
                    size,
                    shared,
                    size - shared,
                    found.containers_of.get(image.id, 0),
                )
            )
        for info in self._containers.containers(all=True):
            rec = store.containers.get(info.id)
            usage.containers.append(
                ContainerUsage(
                    info.id,
                    info.name,
                    info.image_ref,
                    info.command,
                    dir_size(store.containers.content_dir(rec)),
                    info.status,
                    info.state,
                    info.created,
                    len(rec.volumes),
                )
            )
        for v in store.volumes.all():
            usage.volumes.append(VolumeUsage(v.name, len(v.users), dir_size(v.mountpoint)))
        image_layers = found.image_layers
        for entry in found.cache:
            size = found.size_of([entry.layer]) if entry.layer else 0
            usage.build_cache.append(
                CacheUsage(
                    entry.key, entry.instruction, size, entry.layer in image_layers, entry.created, entry.last_used
                )
            )
        usage.partial_pulls = [
            PartialPullUsage(layer.chain_id, layer.size, layer.created, layer.source, layer.busy)
            for layer in found.loose
        ]
        usage.quarantine = [QuarantineUsage(str(q.path), q.items, q.size) for q in entries(store.root)]
        return usage

    def quarantine_prune(self) -> tuple[list[str], int]:
        """Delete what repairs set aside under ``quarantine/`` (from this process, which
        runs in the store's user namespace, so files of subordinate ids go too)."""
        from ..fsutil import rmtree
        from ..store.quarantine import entries

        removed: list[str] = []
        freed = 0
        for q in entries(self.store.root):
            rmtree(q.path)
            removed.append(str(q.path))
            freed += q.size
        return removed, freed

    # --- prunes ------------------------------------------------------------------------

    def container_prune(self) -> tuple[list[str], int]:
        """Remove stopped containers, passing over those a process is creating or
        starting right now (``ContainerStore.claim``)."""
        removed: list[str] = []
        freed = 0
        self._containers.reconcile()  # exits written down, ended --rm containers gone first
        for info in self._containers.containers(all=True):
            if info.state == "running":
                continue
            with self.store.containers.claim(info.id) as ours:
                if not ours:
                    continue
                try:
                    rec = self.store.containers.get(info.id)
                except StrataError:
                    continue
                if rec.state == "running":
                    continue
                size = dir_size(self.store.containers.content_dir(rec))
                with contextlib.suppress(StrataError):
                    self._containers.rm(info.id)
                    removed.append(info.id)
                    freed += size
        return removed, freed

    def image_prune(self, all: bool = False) -> tuple[list[str], int]:
        """Dangling images (untagged, unused), or with ``all`` every image no container
        uses; then the layers interrupted pulls kept (``store.gc``). Waits for running
        pulls and builds: what they have committed so far is theirs."""
        from ..store import gc

        with self.store.gc_lock(exclusive=True):
            before = gc.layer_bytes(self.store)
            lines = gc.prune_images(self.store, all)
            return lines, before - gc.layer_bytes(self.store)

    def cache_prune(self, keep_storage: int = 0, all: bool = True) -> tuple[int, int]:
        """Forget build cache entries (oldest first) until at most ``keep_storage`` bytes
        of cache-only layers remain; returns (entries removed, bytes freed)."""
        from ..store import gc

        with self.store.gc_lock(exclusive=True):
            before = gc.layer_bytes(self.store)
            removed = gc.prune_cache(self.store, keep_storage)
            return removed, before - gc.layer_bytes(self.store)

    # --- check and repair ----------------------------------------------------------------

    def check(self, repair: bool = False, verify_content: bool = True) -> list[Problem]:
        """Check the store against its directories; with ``repair``, fix what can be fixed.

        A damaged or lost database is the one problem every other command can only name:
        here it is rebuilt (``store.rebuild``) rather than reported again, so the advice
        those commands give leads somewhere. Nothing a repair cannot account for is
        deleted; it goes to ``quarantine/``."""
        from ..store import check

        try:
            with self.store.gc_lock(exclusive=repair):
                return check.check(self.store, repair, verify_content)
        except StoreDamaged as damage:
            if not repair:
                return [check.Problem("damaged-db", damage.where, damage.what, True)]
            self._context.close()  # the rebuild replaces the database under this handle
            from ..store.rebuild import rebuild

            done = rebuild(self._context.root.absolute(), damage.what)
            with self.store.gc_lock(exclusive=True):
                return check.rebuilt_problems(done, damage) + check.check(self.store, True, verify_content)


def __getattr__(name: str) -> object:
    """The usage records live in ``usage.py`` (loaded only when asked for)."""
    if name.startswith("__"):
        raise AttributeError(name)
    from . import usage

    try:
        return getattr(usage, name)
    except AttributeError:
        raise AttributeError(name) from None
