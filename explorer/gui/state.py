"""One read of everything the window lists, taken in a worker.

The sidebar, the tables, the layer tree and the status bar all show the same moment of
the store: they are filled from one ``StoreState`` so a count never disagrees with its
list. A part the backend cannot give (a feature not there yet, a failure) is left empty
and named in ``problems`` instead of failing the whole read.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..api.model import ImageSummary, TreeNode
from ..errors import StrataError


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
    containers: list[Any] = field(default_factory=list)
    volumes: list[Any] = field(default_factory=list)
    volume_sizes: dict[str, int] = field(default_factory=dict)
    images_usage: Usage = field(default_factory=Usage)
    containers_usage: Usage = field(default_factory=Usage)
    volumes_usage: Usage = field(default_factory=Usage)
    cache_usage: Usage = field(default_factory=Usage)
    disk_usage: Any = None  # the ``DiskUsage`` itself, for the Disk usage tab
    disk_free: int = 0
    disk_total: int = 0
    problems: list[str] = field(default_factory=list)
    features: set[str] = field(default_factory=set)


def _usage(value: Any, total: Any = None, reclaimable: Any = None) -> Usage:
    """A usage figure from either shape ``df()`` may give: a (count, size, reclaimable)
    record, or a list of per-object records with a ``size`` each."""
    if value is None:
        return Usage()
    if isinstance(value, list):
        size = int(total) if isinstance(total, int) else sum(int(getattr(v, "size", 0) or 0) for v in value)
        return Usage(len(value), size, int(reclaimable) if isinstance(reclaimable, int) else 0)
    if isinstance(value, tuple):
        parts = [*list(value), 0, 0, 0]
        return Usage(int(parts[0] or 0), int(parts[1] or 0), int(parts[2] or 0))
    return Usage(int(getattr(value, "count", 0) or 0), int(getattr(value, "size", 0) or 0),
                 int(getattr(value, "reclaimable", 0) or 0))


def gather(api: Any, check: Callable[[], None] | None = None) -> StoreState:
    state = StoreState(root=str(api.root))

    def part(name: str, fn: Callable[[], Any]) -> Any:
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
    if callable(getattr(api, "containers", None)):
        state.features.add("containers")
        state.containers = part("containers", lambda: api.containers(all=True)) or []
    if callable(getattr(api, "volumes", None)):
        state.features.add("volumes")
        state.volumes = part("volumes", api.volumes) or []
        if callable(getattr(api, "volume_size", None)):
            for v in state.volumes:
                name = str(v.name)
                size = part(f"volume {name}", _bind(api.volume_size, name))
                if size is not None:
                    state.volume_sizes[name] = int(size)
    df = part("disk use", api.df) if callable(getattr(api, "df", None)) else None
    if df is not None:
        state.disk_usage = df
        state.images_usage = _usage(getattr(df, "images", None), getattr(df, "layers_size", None),
                                    getattr(df, "images_reclaimable", None))
        state.containers_usage = _usage(getattr(df, "containers", None))
        state.volumes_usage = _usage(getattr(df, "volumes", None))
        state.cache_usage = _usage(getattr(df, "build_cache", None), getattr(df, "cache_size", None),
                                   getattr(df, "cache_reclaimable", None))
    else:
        seen: set[str] = set()
        total = 0
        for image in state.images:
            if image.id not in seen:
                seen.add(image.id)
        total = sum(_layer_sizes(state.forest))
        state.images_usage = Usage(len(seen), total, 0)
        state.containers_usage = Usage(len(state.containers), 0, 0)
        state.volumes_usage = Usage(len(state.volumes), sum(state.volume_sizes.values()), 0)
    try:
        du = shutil.disk_usage(api.root)
        state.disk_free, state.disk_total = du.free, du.total
    except OSError:
        pass
    return state


def _bind(fn: Callable[[str], Any], arg: str) -> Callable[[], Any]:
    return lambda: fn(arg)


def _layer_sizes(forest: list[TreeNode]) -> list[int]:
    out: list[int] = []
    stack = list(forest)
    while stack:
        node = stack.pop()
        out.append(node.size)
        stack.extend(node.children)
    return out
