"""What a clean-up would remove and free, worked out from ``df()`` before anyone is asked.

A confirmation that says "this frees 1.2 GiB" must be computed from the same figures
``strata system df`` prints, with shared layers counted once. The planners here take a
``DiskUsage`` (and, for volumes, the volume records that say which are anonymous) and
return a ``CleanupPlan``; nothing here touches Qt or the store, so the figures are tested
on their own.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from ..api.usage import DiskUsage, ImageUsage
from ..api.volumes import VolumeInfo
from . import fmt

CONTAINERS = "containers"
IMAGES = "images"
VOLUMES = "volumes"
CACHE = "cache"
CATEGORIES = (IMAGES, CONTAINERS, VOLUMES, CACHE)
TITLES = {IMAGES: "Images", CONTAINERS: "Containers", VOLUMES: "Local volumes", CACHE: "Build cache"}


@dataclass(frozen=True)
class CategoryUsage:
    """One row of ``strata system df``: every figure of one kind of thing."""

    kind: str
    total: int
    active: int
    size: int
    reclaimable: int
    shared: int = 0  # images only: bytes in layers two or more images use, counted once
    unique: int = 0  # images only: bytes in layers exactly one image uses

    @property
    def title(self) -> str:
        return TITLES[self.kind]

    @property
    def in_use(self) -> int:
        return max(0, self.size - self.reclaimable)


def summarize(du: DiskUsage) -> dict[str, CategoryUsage]:
    """The four rows ``strata system df`` prints, from the same ``DiskUsage``."""
    images = list(du.images)
    unique = sum(i.unique_size for i in images)
    containers = list(du.containers)
    volumes = list(du.volumes)
    cache = list(du.build_cache)
    return {
        IMAGES: CategoryUsage(
            IMAGES,
            len(images),
            sum(1 for i in images if i.containers),
            du.layers_size,
            du.images_reclaimable,
            shared=max(0, du.layers_size - unique),
            unique=unique,
        ),
        CONTAINERS: CategoryUsage(
            CONTAINERS,
            len(containers),
            sum(1 for c in containers if c.running),
            sum(c.size for c in containers),
            sum(c.size for c in containers if not c.running),
        ),
        VOLUMES: CategoryUsage(
            VOLUMES,
            len(volumes),
            sum(1 for v in volumes if v.links),
            sum(v.size for v in volumes),
            sum(v.size for v in volumes if not v.links),
        ),
        CACHE: CategoryUsage(CACHE, len(cache), 0, du.cache_size, du.cache_reclaimable),
    }


def store_total(rows: dict[str, CategoryUsage]) -> int:
    """Everything the store holds. Image layers, container layers, volume data and
    cache-only layers are disjoint, so the sum counts no byte twice."""
    return sum(r.size for r in rows.values())


@dataclass(frozen=True)
class CleanupPlan:
    """What one clean-up removes: the names, and the bytes that go with them."""

    kind: str  # "container prune", "image prune", "volume prune", "cache prune"
    items: list[str] = field(default_factory=list)
    freed: int = 0
    exact: bool = True  # False: a lower bound (layers shared only among removed images)
    note: str = ""

    @property
    def empty(self) -> bool:
        return not self.items and self.freed == 0

    def headline(self) -> str:
        if self.empty:
            return "Nothing to remove: " + (self.note or "there is nothing this clean-up would free.")
        size = fmt.size(self.freed)
        amount = size if self.exact else f"at least {size}"
        count = len(self.items)
        return f"This removes {count} item{'s' if count != 1 else ''} and frees {amount}."


def plan_container_prune(du: DiskUsage) -> CleanupPlan:
    stopped = [c for c in du.containers if not c.running]
    return CleanupPlan(
        "container prune",
        [f"{c.name} ({c.id[:12]}, {fmt.size(c.size)})" for c in stopped],
        sum(c.size for c in stopped),
        note="every container is running",
    )


def plan_image_prune(du: DiskUsage, all: bool = False) -> CleanupPlan:
    """``all``: every image no container uses; the freed bytes are then exactly
    ``images_reclaimable`` (the layers of no image in use). Otherwise dangling images
    (untagged, unused): each frees at least its unique bytes; a layer two dangling images
    share goes too, which ``df`` cannot tell apart, so the figure is a lower bound."""
    if all:
        chosen = [i for i in du.images if not i.containers]
        freed = int(du.images_reclaimable)
        exact = True
    else:
        chosen = [i for i in du.images if not i.containers and not i.tags]
        freed = sum(i.unique_size for i in chosen)
        exact = len(chosen) <= 1 or all_unique(chosen)
    return CleanupPlan(
        "image prune",
        [_image_name(i) for i in chosen],
        freed,
        exact,
        note="no image is unused" if all else "there are no dangling images",
    )


def all_unique(images: Iterable[ImageUsage]) -> bool:
    return all(i.shared_size == 0 for i in images)


def _image_name(i: ImageUsage) -> str:
    name = ", ".join(i.tags) if i.tags else f"<none> {fmt.short_id(i.id)}"
    return f"{name} ({fmt.size(i.unique_size)} unique)"


def plan_volume_prune(du: DiskUsage, records: Sequence[VolumeInfo], all: bool = False) -> CleanupPlan:
    """Unused anonymous volumes, or with ``all`` every unused volume (as ``volume_prune``)."""
    anonymous = {r.name for r in records if r.anonymous}
    chosen = [v for v in du.volumes if not v.links and (all or v.name in anonymous)]
    return CleanupPlan(
        "volume prune",
        [f"{v.name} ({fmt.size(v.size)})" for v in chosen],
        sum(v.size for v in chosen),
        note="no volume is unused" if all else "no anonymous volume is unused",
    )


def plan_cache_prune(du: DiskUsage, keep_storage: int = 0) -> CleanupPlan:
    """Oldest entries go first until at most ``keep_storage`` bytes of cache-only layers
    remain; entries whose layers an image also uses free nothing."""
    entries = list(du.build_cache)
    freed = int(du.cache_reclaimable)
    if keep_storage:
        remaining = int(du.cache_size)
        going = []
        for entry in entries:  # df lists them oldest first, as cache_prune walks them
            if remaining <= keep_storage:
                break
            going.append(entry)
            if not entry.shared:
                remaining -= entry.size
        entries = going
        freed = max(0, int(du.cache_size) - max(remaining, 0))
    return CleanupPlan(
        "cache prune",
        [f"{fmt.instruction(e.instruction, 80)} ({fmt.size(e.size)})" for e in entries],
        freed,
        exact=True,
        note="the build cache is empty" if not du.build_cache else "the cache is already within the size to keep",
    )
