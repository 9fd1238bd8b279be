"""Whether the store is sound, and repairing what can be repaired without losing data.

The database is checked against the directories and against itself: staging left by
dead processes, directories no record names, records naming what is missing, layer
content that no longer hashes to its diff id, tags and cache entries and mounts that
point at nothing. A repair never deletes what it cannot account for: an unknown
directory goes to ``quarantine/`` (``quarantine.py``), a record naming nothing is
dropped, a volume directory without its record is recorded again.

Loose layers (``gc.py``: what an interrupted pull kept for its resume) are reported as
notes: nothing is wrong, and ``--repair`` leaves them, since pulling again needs them;
``system prune`` is what removes them.

A damaged or lost database is not checked here: ``check`` raises ``StoreDamaged`` and
the caller rebuilds it (``rebuild.py``), closing its own handle on the store first;
``rebuilt_problems`` turns what the rebuild did into findings of the same shape.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..digest import short
from ..errors import StoreDamaged, StrataError
from ..fsutil import dir_size
from . import gc
from .marks import owner_live
from .quarantine import move_in, new_bin

if TYPE_CHECKING:
    from .rebuild import Rebuilt
    from .store import Store


@dataclass
class Problem:
    """One finding. ``note`` marks what is worth knowing but not wrong (a partial pull):
    it is never repaired and does not make ``system check`` fail."""

    kind: str  # orphan-dir, leftover, dangling-tag, missing-layer, corrupt-layer, partial-pull, …
    what: str
    detail: str
    repairable: bool
    repaired: bool = False
    size: int = 0  # bytes below the directory a repair moves aside (orphan-dir, leftover), as found
    note: bool = False


class _Findings:
    """Problems as they are found, each repaired at once when asked and possible."""

    def __init__(self, store: Store, repair: bool) -> None:
        self.store = store
        self.repair = repair
        self.bin = new_bin(store.root)
        self.problems: list[Problem] = []

    def keep_aside(self, path: Path) -> None:
        move_in(self.store.root, self.bin, path)

    def add(
        self,
        kind: str,
        what: str,
        detail: str,
        repairable: bool,
        fix: Callable[[], None] | None = None,
        frees: Path | None = None,
    ) -> None:
        p = Problem(kind, what, detail, repairable)
        if frees is not None:
            p.size = dir_size(frees)  # measured before the repair moves it aside
        if self.repair and repairable and fix is not None:
            fix()
            p.repaired = True
        self.problems.append(p)

    def note(self, kind: str, what: str, detail: str, size: int) -> None:
        self.problems.append(Problem(kind, what, detail, False, size=size, note=True))


def check(store: Store, repair: bool = False, verify_content: bool = True) -> list[Problem]:
    """Every problem found (and, with ``repair``, fixed where it can be), then the notes.
    The caller holds the gc lock: exclusive to repair, shared to look."""
    meta = store.meta
    damage = meta.damage(texts=verify_content)
    if damage is not None:
        raise StoreDamaged(str(meta.path), damage)
    if store.forgets_everything():
        # A database swapped for an empty one: the directories would all look like
        # orphans. Rebuild from them instead, as for a lost database.
        raise StoreDamaged(str(meta.path), "empty of records", lost=True)
    found = _Findings(store, repair)
    _staging(store, found)
    layer_ids = _layers(store, found, verify_content)
    _references(store, found, layer_ids)
    container_ids = _containers(store, found)
    volume_names = _volumes(store, found)
    _mounts(store, found, container_ids, volume_names)
    _partial_pulls(store, found)
    return found.problems


_LEFTOVER = "staging left by a process that died"


def _staging(store: Store, found: _Findings) -> None:
    dead = {f"tmp/{name}": store.tmp / name for name in gc.dead_staging(store)}
    if not found.repair:
        for what, path in dead.items():
            found.add("leftover", what, _LEFTOVER, True, frees=path)
        return
    sizes = {what: dir_size(path) for what, path in dead.items()}  # before the clean-up removes them
    for what in store.clean_staging():  # tmp/… and marked layers/, containers/, volumes/ entries
        found.problems.append(Problem("leftover", what, _LEFTOVER, True, True, sizes.get(what, 0)))


def _layers(store: Store, found: _Findings, verify_content: bool) -> set[str]:
    rows = {r[0]: r for r in store.meta.query("SELECT id, diff_id, parent FROM layers")}
    for entry in sorted(os.listdir(store.layers.dir)):
        path = store.layers.dir / entry
        if entry not in rows and not owner_live(path):
            found.add(
                "orphan-dir",
                f"layers/{entry}",
                f"a layer directory no record names (moved to {found.bin})",
                True,
                lambda path=path: found.keep_aside(path),  # type: ignore[misc]
                path,
            )
    for lid, (_, diff_id, parent) in rows.items():
        if parent is not None and parent not in rows:
            found.add("missing-layer", f"layer {lid[:12]}", f"its parent {parent[:12]} is missing", False)
        diff = store.layers.diff_dir(lid)
        if not diff.is_dir():
            found.add("missing-layer", f"layer {lid[:12]}", f"its directory {diff} is missing", False)
            continue
        if verify_content:
            got = layer_digest(store, lid)
            if got != diff_id:
                found.add(
                    "corrupt-layer",
                    f"layer {lid[:12]}",
                    f"content digest {got or 'unreadable'} does not match its diff id {diff_id}",
                    False,
                )
    return set(rows)


def _references(store: Store, found: _Findings, layer_ids: set[str]) -> None:
    meta = store.meta
    image_ids = {r[0] for r in meta.query("SELECT id FROM images")}
    for iid, top in meta.query("SELECT id, top_layer FROM images"):
        if top is not None and top not in layer_ids:
            found.add("missing-layer", f"image {iid[7:19]}", f"its top layer {top[:12]} is missing", False)
    for tag, iid in meta.query("SELECT name, image FROM tags"):
        if iid not in image_ids:
            found.add(
                "dangling-tag",
                tag,
                f"points at missing image {iid[7:19]}",
                True,
                lambda tag=tag: _delete(store, "tags", "name", tag),  # type: ignore[misc]
            )
    for key, layer_id in meta.query("SELECT key, layer FROM build_cache"):
        if layer_id is not None and layer_id not in layer_ids:
            found.add(
                "dangling-cache",
                f"cache {key[:12]}",
                f"names missing layer {layer_id[:12]}",
                True,
                lambda key=key: _delete(store, "build_cache", "key", key),  # type: ignore[misc]
            )


def _containers(store: Store, found: _Findings) -> set[str]:
    meta = store.meta
    image_ids = {r[0] for r in meta.query("SELECT id FROM images")}
    rows = meta.query("SELECT id, image FROM containers")
    for cid, image in rows:
        if image not in image_ids:
            found.add("missing-image", f"container {cid[:12]}", f"its image {image[7:19]} is missing", False)
        if not store.containers.path(cid).is_dir():
            found.add(
                "missing-dir",
                f"container {cid[:12]}",
                "its directory is missing",
                True,
                lambda cid=cid: store.containers.forget(cid),  # type: ignore[misc]
            )
    ids = {cid for cid, _image in rows}
    for entry in sorted(os.listdir(store.containers.dir)):
        if entry not in ids:
            path = store.containers.dir / entry
            found.add(
                "orphan-dir",
                f"containers/{entry}",
                f"a container directory no record names (moved to {found.bin})",
                True,
                lambda path=path: found.keep_aside(path),  # type: ignore[misc]
                path,
            )
    return ids


def _volumes(store: Store, found: _Findings) -> set[str]:
    names = {r[0] for r in store.meta.query("SELECT name FROM volumes")}
    for entry in sorted(os.listdir(store.volumes.dir)):
        path = store.volumes.dir / entry
        if entry in names or owner_live(path):
            continue
        if (path / "_data").is_dir():
            found.add(
                "orphan-dir",
                f"volumes/{entry}",
                "a volume directory no record names (recorded again)",
                True,
                lambda entry=entry, path=path: store.volumes.adopt(entry, path.stat().st_mtime),  # type: ignore[misc]
            )
        else:
            found.add(
                "orphan-dir",
                f"volumes/{entry}",
                f"a directory that is not a volume (moved to {found.bin})",
                True,
                lambda path=path: found.keep_aside(path),  # type: ignore[misc]
                path,
            )
    return names


def _mounts(store: Store, found: _Findings, container_ids: set[str], volume_names: set[str]) -> None:
    for cid, volume in store.meta.query("SELECT container, volume FROM container_volumes"):
        if cid not in container_ids or volume not in volume_names:
            found.add(
                "dangling-mount",
                f"container {cid[:12]} / volume {volume}",
                "a mount record without its container or volume",
                True,
                lambda cid=cid, volume=volume: _forget_mount(store, cid, volume),  # type: ignore[misc]
            )


def _partial_pulls(store: Store, found: _Findings) -> None:
    for layer in gc.usage(store).loose:
        if layer.busy:
            why = "a running pull (or build, load, commit) is committing it"
        elif layer.source:
            why = f"kept from an interrupted pull of {layer.source}, so that pulling again resumes"
        else:
            why = "no image or build cache entry uses it (an interrupted pull, load or build kept it for its resume)"
        found.note(
            "partial-pull", f"layer {short(layer.chain_id)}", f"{why}; `strata system prune` removes it", layer.size
        )


def _delete(store: Store, table: str, column: str, value: str) -> None:
    with store.meta.transaction() as conn:
        conn.execute(f"DELETE FROM {table} WHERE {column}=?", (value,))


def _forget_mount(store: Store, container_id: str, volume: str) -> None:
    with store.meta.transaction() as conn:
        conn.execute("DELETE FROM container_volumes WHERE container=? AND volume=?", (container_id, volume))


class _Hasher:
    """A write-only sink for ``write_tar`` that keeps only the sha256."""

    def __init__(self) -> None:
        self.h = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.h.update(data)
        return len(data)


def layer_digest(store: Store, layer_id: str) -> str | None:
    """The sha256 of the tar the layer reassembles to (its diff id when intact), or
    None when it cannot be read back."""
    sink = _Hasher()
    try:
        store.layers.write_tar(layer_id, sink)  # type: ignore[arg-type]
    except (OSError, StrataError):
        return None
    return "sha256:" + sink.h.hexdigest()


def rebuilt_problems(done: Rebuilt, damage: StoreDamaged) -> list[Problem]:
    """What a rebuild of the database did, as findings (all of them repaired)."""
    kept = f"; the damaged file is kept in {done.bin}" if done.bin is not None and not damage.lost else ""
    out = [
        Problem(
            "damaged-db",
            damage.where,
            f"{damage.what}: rebuilt from {done.salvaged} salvaged rows and the store's directories{kept}",
            True,
            True,
        )
    ]
    for path in done.adopted:
        out.append(Problem("rebuilt", path, "recorded again from its directory", True, True))
    for path in done.recomputed:
        if path not in done.adopted:
            out.append(Problem("rebuilt", path, "its file index was recomputed from its directory", True, True))
    for what in done.dropped:
        name, _, why = what.partition(": ")
        out.append(Problem("dropped-row", name, why, True, True))
    for path in done.quarantined:
        if not path.startswith("metadata.db"):
            why = done.unreadable.get(path, "no record of it survived")
            out.append(
                Problem(
                    "quarantined",
                    path,
                    f"{why}: moved to {done.bin}; inspect it, then `strata system prune --quarantine` removes it",
                    True,
                    True,
                )
            )
    return out
