"""Per-layer changes and image efficiency: what each layer did and what space is wasted.

Waste is counted the way it costs disk: every copy of a file that no longer shows in
the merged image (overwritten or deleted by a later layer) is wasted once; the copy
that shows is not.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from ..store.index import DIR, FILE, HARDLINK, WHITEOUT, FileEntry, loaded_rows
from ..store.layers import Layer
from ..store.store import Store
from ..store.union import UnionView


@dataclass(frozen=True)
class Change:
    kind: str  # "A", "C" or "D", as docker diff prints them
    path: str
    entry: FileEntry | None


@dataclass(frozen=True)
class LayerStat:
    index: int
    layer_id: str
    created_by: str
    size: int
    files: int
    wasted: int  # bytes of this layer's files that a later layer hides


@dataclass(frozen=True)
class Offender:
    path: str
    count: int  # copies across layers, including the visible one
    wasted_bytes: int


@dataclass
class ImageAnalysis:
    layers: list[LayerStat] = field(default_factory=list)
    total_size: int = 0
    wasted_bytes: int = 0
    efficiency: float = 1.0
    offenders: list[Offender] = field(default_factory=list)


def layer_changes(store: Store, layer: Layer) -> list[Change]:
    """A layer's own changes relative to everything below it."""
    entries = store.layers.entries(layer.id)
    if layer.parent is None:
        return [Change("A", e.path, e) for e in entries if e.type != WHITEOUT]
    return classify(entries, UnionView.of_layers(store, store.layers.chain(layer.parent)))


def classify(entries: Sequence[FileEntry], below: UnionView) -> list[Change]:
    """docker diff's A/C/D for a layer's entries over what lies below them: a whiteout
    deletes only what was there, anything else adds or changes."""
    visible = below.lookup_many([e.path for e in entries])
    out: list[Change] = []
    for e in entries:
        old = visible.get(e.path)
        if e.type == WHITEOUT:
            if old is not None:
                out.append(Change("D", e.path, old.entry))
        elif old is None:
            out.append(Change("A", e.path, e))
        else:
            out.append(Change("C", e.path, e))
    return out


def analyze(store: Store, layers: Sequence[Layer]) -> ImageAnalysis:
    view = UnionView.of_layers(store, layers)
    visible = {hit.path: hit.layer for hit in view.walk()}
    copies: dict[str, list[tuple[int, int]]] = {}
    stats: list[LayerStat] = []
    total = 0
    for index, layer in enumerate(layers):
        rows = loaded_rows(store.meta.query("SELECT path, type, size FROM files WHERE layer=?", (layer.id,)), (0,))
        size = 0
        files = 0
        for path, kind, nbytes in rows:
            if kind in (FILE, HARDLINK):
                files += 1
                if kind == FILE:
                    size += nbytes
                    copies.setdefault(path, []).append((index, nbytes))
            elif kind not in (DIR, WHITEOUT):
                files += 1
        total += size
        stats.append(LayerStat(index, layer.id, layer.created_by, size, files, 0))
    wasted_per_layer = [0] * len(layers)
    offenders: list[Offender] = []
    wasted_total = 0
    for path, found in copies.items():
        shown = visible.get(path)
        wasted = 0
        for index, nbytes in found:
            if index != shown:
                wasted += nbytes
                wasted_per_layer[index] += nbytes
        if wasted:
            offenders.append(Offender(path, len(found), wasted))
            wasted_total += wasted
    offenders.sort(key=lambda o: (-o.wasted_bytes, o.path))
    stats = [LayerStat(s.index, s.layer_id, s.created_by, s.size, s.files, wasted_per_layer[s.index]) for s in stats]
    efficiency = 1.0 if total == 0 else (total - wasted_total) / total
    return ImageAnalysis(stats, total, wasted_total, efficiency, offenders)
