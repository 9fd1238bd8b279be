"""Records of disk usage and of store problems (``strata system df`` and ``check``).

``Problem`` is the store's own finding (``store.check``), returned as it is."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..store.check import Problem

__all__ = [
    "CacheUsage",
    "ContainerUsage",
    "DiskUsage",
    "ImageUsage",
    "PartialPullUsage",
    "Problem",
    "QuarantineUsage",
    "VolumeUsage",
]


@dataclass(frozen=True)
class ImageUsage:
    id: str
    tags: list[str]
    created: str
    size: int
    shared_size: int
    unique_size: int
    containers: int


@dataclass(frozen=True)
class ContainerUsage:
    id: str
    name: str
    image: str
    command: str
    size: int
    status: str  # docker's STATUS text ("Up 3 minutes"), for showing only
    state: str  # created | running | exited: what counts as active and what a prune removes
    created: float
    volumes: int

    @property
    def running(self) -> bool:
        """Active in ``df``; everything else is what ``container prune`` removes."""
        return self.state == "running"


@dataclass(frozen=True)
class VolumeUsage:
    name: str
    links: int
    size: int


@dataclass(frozen=True)
class CacheUsage:
    key: str
    instruction: str
    size: int  # bytes of its layer; 0 for config-only steps
    shared: bool  # its layer also belongs to an image
    created: float
    last_used: float


@dataclass(frozen=True)
class QuarantineUsage:
    """One repair's directory under ``quarantine/``."""

    path: str
    items: int
    size: int


@dataclass(frozen=True)
class PartialPullUsage:
    """A complete layer no image or cache entry uses: what an interrupted pull (or load,
    build) committed before it stopped, kept so that running it again resumes."""

    chain_id: str
    size: int
    created: float
    source: str  # the repository it was pulled from, "" when not known
    busy: bool  # still being committed by a running process: no prune takes it


@dataclass
class DiskUsage:
    images: list[ImageUsage] = field(default_factory=list)
    containers: list[ContainerUsage] = field(default_factory=list)
    volumes: list[VolumeUsage] = field(default_factory=list)
    build_cache: list[CacheUsage] = field(default_factory=list)
    layers_size: int = 0  # every image layer once
    images_reclaimable: int = 0
    cache_size: int = 0
    cache_reclaimable: int = 0
    quarantine: list[QuarantineUsage] = field(default_factory=list)  # what repairs set aside
    partial_pulls: list[PartialPullUsage] = field(default_factory=list)  # image prune removes them

    @property
    def quarantine_size(self) -> int:
        return sum(q.size for q in self.quarantine)

    @property
    def partial_pulls_size(self) -> int:
        return sum(p.size for p in self.partial_pulls)

    @property
    def partial_pulls_reclaimable(self) -> int:
        return sum(p.size for p in self.partial_pulls if not p.busy)
