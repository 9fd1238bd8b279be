"""One read of everything the window lists, taken in a worker.

The sidebar, the tables, the layer tree and the status bar all show the same moment of
the store: they are filled from one ``StoreState`` so a count never disagrees with its
list. A part that fails to read is left empty
and named in ``problems`` instead of failing the whole read.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from ..api import Strata
from ..api.containers import ContainerInfo
from ..api.model import ImageSummary, TreeNode
from ..api.usage import DiskUsage
from ..api.volumes import VolumeInfo
from ..errors import StrataError

T = TypeVar("T")


@dataclass
class Usage:
    count: int = 0
    size: int = 0
    reclaimable: int = 0


@dataclass
class StoreState:
    root: str = ""
    images: list[ImageSummary] = field(default_factory=list)
    forest: list[TreeNode] = field(default_factory=list)
    containers: list[ContainerInfo] = field(default_factory=list)
    volumes: list[VolumeInfo] = field(default_factory=list)
    volume_sizes: dict[str, int] = field(default_factory=dict)
    images_usage: Usage = field(default_factory=Usage)
    containers_usage: Usage = field(default_factory=Usage)
    volumes_usage: Usage = field(default_factory=Usage)
    cache_usage: Usage = field(default_factory=Usage)
    disk_usage: DiskUsage | None = None  # for the Disk usage tab; None when df failed
    disk_free: int = 0
    disk_total: int = 0
    problems: list[str] = field(default_factory=list)


def _usage(df: DiskUsage) -> tuple[Usage, Usage, Usage, Usage]:
    """Images, containers, volumes and build cache, each as (count, size, reclaimable)."""
    return (
        Usage(len(df.images), df.layers_size, df.images_reclaimable),
        Usage(len(df.containers), sum(c.size for c in df.containers), 0),
        Usage(len(df.volumes), sum(v.size for v in df.volumes), 0),
        Usage(len(df.build_cache), df.cache_size, df.cache_reclaimable),
    )


def gather(api: Strata, check: Callable[[], None] | None = None) -> StoreState:
    state = StoreState(root=str(api.root))

    def part(name: str, fn: Callable[[], T]) -> T | None:
        if check is not None:
            check()
        try:
            return fn()
        except StrataError as e:
            state.problems.append(f"{name}: {e}")
        except Exception as e:  # one broken part must not blank the whole window
            state.problems.append(f"{name}: internal error ({type(e).__name__}: {e})")
        return None

    state.images = part("images", api.images) or []
    state.forest = part("layer tree", api.layer_tree) or []
    state.containers = part("containers", lambda: api.containers(all=True)) or []
    state.volumes = part("volumes", api.volumes) or []
    for v in state.volumes:
        size = part(f"volume {v.name}", _bind(api.volume_size, v.name))
        if size is not None:
            state.volume_sizes[v.name] = size
    df = part("disk use", api.df)
    if df is not None:
        state.disk_usage = df
        state.images_usage, state.containers_usage, state.volumes_usage, state.cache_usage = _usage(df)
    else:
        seen = {image.id for image in state.images}
        state.images_usage = Usage(len(seen), sum(_layer_sizes(state.forest)), 0)
        state.containers_usage = Usage(len(state.containers), 0, 0)
        state.volumes_usage = Usage(len(state.volumes), sum(state.volume_sizes.values()), 0)
    try:
        du = shutil.disk_usage(api.root)
        state.disk_free, state.disk_total = du.free, du.total
    except OSError:
        pass
    return state


def _bind(fn: Callable[[str], int], arg: str) -> Callable[[], int]:
    return lambda: fn(arg)


def _layer_sizes(forest: list[TreeNode]) -> list[int]:
    out: list[int] = []
    stack = list(forest)
    while stack:
        node = stack.pop()
        out.append(node.size)
        stack.extend(node.children)
    return out
