"""What the store can collect, and collecting it.

A layer lives while something keeps it: an image whose chain holds it, or a build-cache
entry whose chain holds it (a cache entry keeps its layer's parents as a child does). A
recorded layer nothing keeps is *loose*. Loose layers are what an operation cut short
leaves on purpose: a pull that broke off or was cancelled keeps each layer it had
committed, so pulling again fetches only the rest (``registry.pull``); a load or build
killed between its layers and its image leaves the same. They are complete and verified,
so ``system df`` counts them, ``system check`` notes them (not damage) and ``image prune``
(and so ``system prune``) removes them.

Everything here that deletes runs under the gc lock held exclusive (``locks.py``), which
every pull, build, load and commit holds shared for its whole run: a prune waits for a
pull in progress instead of taking the layers it has committed so far, and finds them
kept by the image once it ends. A layer whose directory still carries a live writer's
owner mark (between its rename and the mark's removal) is passed over as well, whoever
holds what.

Usage figures are computed in one pass over the tables (``usage``), so ``df`` asks the
database a fixed number of questions however many images there are.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..errors import StrataError
from .layers import Layer
from .marks import marked, owner_live

if TYPE_CHECKING:
    from .store import Store

# Unmarked entries of tmp/ (trash an ``rm`` is deleting right now) count as dead only
# once they are this old.
UNMARKED_GRACE_S = 60.0


@dataclass(frozen=True)
class CacheRecord:
    """One build-cache entry as the collector sees it."""

    key: str
    layer: str | None  # None for a step that changed the config only
    instruction: str
    created: float
    last_used: float


@dataclass(frozen=True)
class LooseLayer:
    """A recorded, complete layer that no image or cache entry keeps."""

    id: str
    chain_id: str
    parent: str | None
    size: int  # content bytes, as ``df`` counts every layer
    created: float
    source: str  # the repository its blob was pulled from, "" when not known
    busy: bool  # its writer is still committing it: no prune takes it


@dataclass
class LayerUsage:
    """Who keeps which layer, for ``df`` and the prunes."""

    layers: dict[str, Layer]
    chains: dict[str, list[str]]  # image id -> its layers, top first
    users_of: dict[str, set[str]]  # layer id -> the images whose chain holds it
    containers_of: dict[str, int]  # image id -> how many containers use it
    cache: list[CacheRecord]  # oldest use first
    loose: list[LooseLayer] = field(default_factory=list)  # oldest first

    @property
    def image_layers(self) -> set[str]:
        return set(self.users_of)

    @property
    def in_use(self) -> set[str]:
        """Images some container uses."""
        return {iid for iid, n in self.containers_of.items() if n}

    def size_of(self, layer_ids: set[str] | list[str]) -> int:
        return sum(self.layers[lid].content_size for lid in layer_ids if lid in self.layers)

    @property
    def layers_size(self) -> int:
        """Every image layer, once."""
        return self.size_of(self.image_layers)

    @property
    def images_reclaimable(self) -> int:
        """Image layers no container stands on."""
        active = {lid for iid in self.in_use for lid in self.chains.get(iid, [])}
        return self.size_of(self.image_layers - active)

    @property
    def cache_size(self) -> int:
        """The layers only the build cache keeps, each once."""
        shared = self.image_layers
        return self.size_of({c.layer for c in self.cache if c.layer and c.layer not in shared})

    @property
    def loose_size(self) -> int:
        return sum(layer.size for layer in self.loose)


def _chain(layers: dict[str, Layer], top: str | None) -> list[str]:
    out: list[str] = []
    while top is not None and top in layers and top not in out:
        out.append(top)
        top = layers[top].parent
    return out


def usage(store: Store) -> LayerUsage:
    """The keepers of every layer, read from the tables in one go."""
    layers = {layer.id: layer for layer in store.layers.all()}
    chains: dict[str, list[str]] = {}
    users_of: dict[str, set[str]] = {}
    for image in store.images.all():
        chain = _chain(layers, image.top_layer)
        chains[image.id] = chain
        for lid in chain:
            users_of.setdefault(lid, set()).add(image.id)
    containers_of = {iid: 0 for iid in chains}
    for (iid,) in store.meta.query("SELECT image FROM containers"):
        containers_of[iid] = containers_of.get(iid, 0) + 1
    cache = [
        CacheRecord(key, layer, instruction, created, last_used)
        for key, layer, instruction, created, last_used in store.meta.query(
            "SELECT key, layer, instruction, created, last_used FROM build_cache ORDER BY last_used"
        )
    ]
    found = LayerUsage(layers, chains, users_of, containers_of, cache)
    kept = set(users_of)
    for entry in cache:
        kept.update(_chain(layers, entry.layer))
    sources = dict(store.meta.query("SELECT layer, MAX(source) FROM blobs GROUP BY layer"))
    for layer in layers.values():  # ``all`` lists them oldest first
        if layer.id in kept:
            continue
        busy = owner_live(store.layers.dir / layer.id)
        found.loose.append(
            LooseLayer(
                layer.id,
                layer.chain_id,
                layer.parent,
                layer.content_size,
                layer.created,
                sources.get(layer.id, ""),
                busy,
            )
        )
    return found


def layer_bytes(store: Store) -> int:
    """Content bytes of every recorded layer: what a collection frees is the difference."""
    row = store.meta.one("SELECT COALESCE(SUM(content_size), 0) FROM layers")
    return int(row[0]) if row else 0


# --- collecting -----------------------------------------------------------------------------


def collect_loose(store: Store) -> list[str]:
    """Delete every loose layer nothing in progress is writing, tops first; returns
    docker's ``Deleted: <chain id>`` lines. Holds the gc lock exclusive: a running pull
    (or build, load, commit) finishes first, and its layers are then kept by its image."""
    with store.gc_lock(exclusive=True):
        out: list[str] = []
        changed = True
        while changed:  # a parent becomes free once its loose children are gone
            changed = False
            for layer in reversed(usage(store).loose):
                if layer.busy or store.layers.users(layer.id):
                    continue
                try:
                    store.layers.delete(layer.id)
                except StrataError:
                    continue
                out.append(f"Deleted: {layer.chain_id}")
                changed = True
        return out


def prune_images(store: Store, all: bool = False) -> list[str]:
    """Dangling images (untagged, no container, no child image), or with ``all`` every
    image no container uses, with the layers only they kept; then the loose layers.
    Returns docker's ``untagged:``/``deleted:`` lines."""
    with store.gc_lock(exclusive=True):
        lines: list[str] = []
        used = usage(store).in_use
        changed = True
        while changed:
            changed = False
            for image in store.images.all():
                if image.id in used or (image.tags and not all):
                    continue
                if not all and store.images.has_children(image.id):
                    continue
                try:
                    out = store.images.remove(image.id, force=True)
                except StrataError:
                    continue
                lines += [_lower(line) for line in out]
                changed = True
        lines += [_lower(line) for line in collect_loose(store)]
        return lines


def _lower(line: str) -> str:
    return line.replace("Untagged: ", "untagged: ").replace("Deleted: ", "deleted: ")


def prune_cache(store: Store, keep_storage: int = 0) -> int:
    """Forget build-cache entries, least recently used first, until at most
    ``keep_storage`` bytes of cache-only layers remain (0: forget them all), collecting
    each layer the cache alone kept; returns how many entries went."""
    with store.gc_lock(exclusive=True):
        now = usage(store)
        rows, remaining = now.cache, now.cache_size
        removed = 0
        for entry in rows:
            if keep_storage and remaining <= keep_storage:
                break
            with store.meta.transaction() as conn:
                conn.execute("DELETE FROM build_cache WHERE key=?", (entry.key,))
            removed += 1
            if entry.layer:
                try:
                    gone = store.images.collect_layers(entry.layer)
                except StrataError:
                    gone = []
                if gone:
                    remaining = usage(store).cache_size
        return removed


def dead_staging(store: Store, now: Callable[[], float] = time.time) -> list[str]:
    """Entries of tmp/ no live process owns: what ``clean_staging`` would remove. Unmarked
    ones (trash an ``rm`` is deleting right now) count only once they are older than
    ``UNMARKED_GRACE_S``."""
    out = []
    for entry in store.tmp.iterdir():
        if owner_live(entry):
            continue
        if not marked(entry):
            try:
                if now() - entry.lstat().st_mtime < UNMARKED_GRACE_S:
                    continue
            except OSError:
                continue
        out.append(entry.name)
    return sorted(out)
