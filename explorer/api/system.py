"""Where the space goes and how to get it back (system df, the prunes) and whether the
store is sound (system check --repair).

Shared layers are counted once everywhere: an image's *shared* size is the part of it
other images also use, its *unique* size what removing it alone would free.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import StoreDamaged, StrataError
from ..fsutil import dir_size

if TYPE_CHECKING:
    from ..store.rebuild import Rebuilt
    from ..store.store import Store
    from .containers import ContainerInfo
    from .sysinfo import SystemInfo
    from .usage import DiskUsage, Problem


class SystemOps:
    """Mixed into ``Strata``."""

    store: Store
    root: Path
    containers: Callable[..., list[ContainerInfo]]
    rm: Callable[..., str]
    reconcile: Callable[[], list[str]]
    close: Callable[[], None]

    def info(self) -> SystemInfo:
        """What ``strata system info`` prints (docker info's shape)."""
        from .. import __version__
        from .sysinfo import gather

        driver: Callable[[], str] = self.driver  # type: ignore[attr-defined]
        return gather(self.store, driver(), __version__)

    # --- disk usage --------------------------------------------------------------------

    def df(self) -> DiskUsage:
        from .usage import CacheUsage, ContainerUsage, DiskUsage, ImageUsage, VolumeUsage

        store = self.store
        layers = {layer.id: layer for layer in store.layers.all()}
        images = store.images.all()
        in_use = {row[0] for row in store.meta.query("SELECT DISTINCT image FROM containers")}
        chains: dict[str, list[str]] = {}
        users_of: dict[str, set[str]] = {}
        for image in images:
            chain: list[str] = []
            lid = image.top_layer
            while lid is not None and lid in layers:
                chain.append(lid)
                lid = layers[lid].parent
            chains[image.id] = chain
            for lid in chain:
                users_of.setdefault(lid, set()).add(image.id)
        usage = DiskUsage()
        image_layers = set(users_of)
        usage.layers_size = sum(layers[lid].content_size for lid in image_layers)
        active_layers = {lid for iid in in_use for lid in chains.get(iid, [])}
        usage.images_reclaimable = sum(layers[lid].content_size for lid in image_layers - active_layers)
        for image in images:
            chain = chains[image.id]
            size = sum(layers[lid].content_size for lid in chain)
            shared = sum(layers[lid].content_size for lid in chain if len(users_of[lid]) > 1)
            count = sum(1 for row in store.meta.query("SELECT 1 FROM containers WHERE image=?", (image.id,)))
            usage.images.append(
                ImageUsage(image.id, image.familiar_tags, image.created, size, shared, size - shared, count)
            )
        for info in self.containers(all=True):
            rec = store.containers.get(info.id)
            path = store.containers.rootfs_dir(rec.id) if rec.driver == "vfs" else store.containers.diff_dir(rec.id)
            usage.containers.append(
                ContainerUsage(
                    info.id,
                    info.name,
                    info.image_ref,
                    info.command,
                    dir_size(path),
                    info.status,
                    info.state,
                    info.created,
                    len(rec.volumes),
                )
            )
        for v in store.volumes.all():
            usage.volumes.append(VolumeUsage(v.name, len(v.users), dir_size(v.mountpoint)))
        counted: set[str] = set()
        for key, layer_id, instruction, created, last_used in store.meta.query(
            "SELECT key, layer, instruction, created, last_used FROM build_cache ORDER BY last_used"
        ):
            size = layers[layer_id].content_size if layer_id in layers else 0
            shared = layer_id in image_layers
            usage.build_cache.append(CacheUsage(key, instruction, size, shared, created, last_used))
            if layer_id and layer_id not in counted and not shared:
                counted.add(layer_id)
                usage.cache_size += size
        usage.cache_reclaimable = usage.cache_size
        from ..store.quarantine import entries
        from .usage import QuarantineUsage

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
        self.reconcile()  # exits written down, ended --rm containers gone first
        for info in self.containers(all=True):
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
                path = (
                    self.store.containers.rootfs_dir(rec.id)
                    if rec.driver == "vfs"
                    else self.store.containers.diff_dir(rec.id)
                )
                size = dir_size(path)
                with contextlib.suppress(StrataError):
                    self.rm(info.id)
                    removed.append(info.id)
                    freed += size
        return removed, freed

    def image_prune(self, all: bool = False) -> tuple[list[str], int]:
        """Dangling images (untagged, unused), or with ``all`` every image no container uses."""
        with self.store.gc_lock(exclusive=True):
            return self._image_prune(all)

    def _image_prune(self, all: bool) -> tuple[list[str], int]:
        lines: list[str] = []
        before = self._layer_bytes()
        used = {row[0] for row in self.store.meta.query("SELECT DISTINCT image FROM containers")}
        changed = True
        while changed:
            changed = False
            for image in self.store.images.all():
                if image.id in used or (image.tags and not all):
                    continue
                if self._has_child_image(image.id) and not all:
                    continue
                try:
                    out = self.store.images.remove(image.id, force=True)
                except StrataError:
                    continue
                lines += [line.replace("Untagged: ", "untagged: ").replace("Deleted: ", "deleted: ") for line in out]
                changed = True
        return lines, before - self._layer_bytes()

    def _has_child_image(self, image_id: str) -> bool:
        return self.store.meta.one("SELECT 1 FROM images WHERE parent=?", (image_id,)) is not None

    def _layer_bytes(self) -> int:
        row = self.store.meta.one("SELECT COALESCE(SUM(content_size), 0) FROM layers")
        return int(row[0]) if row else 0

    def cache_prune(self, keep_storage: int = 0, all: bool = True) -> tuple[int, int]:
        """Forget build cache entries (oldest first) until at most ``keep_storage`` bytes
        of cache-only layers remain; returns (entries removed, bytes freed)."""
        with self.store.gc_lock(exclusive=True):
            return self._cache_prune(keep_storage)

    def _cache_prune(self, keep_storage: int) -> tuple[int, int]:
        before = self._layer_bytes()
        rows = self.store.meta.query("SELECT key, layer FROM build_cache ORDER BY last_used")
        usage = self.df()
        remaining = usage.cache_size
        removed = 0
        for key, layer_id in rows:
            if keep_storage and remaining <= keep_storage:
                break
            with self.store.meta.transaction() as conn:
                conn.execute("DELETE FROM build_cache WHERE key=?", (key,))
            removed += 1
            if layer_id:
                try:
                    gone = self.store.images.collect_layers(layer_id)
                except StrataError:
                    gone = []
                if gone:
                    remaining = self.df().cache_size
        return removed, before - self._layer_bytes()

    # --- check and repair ----------------------------------------------------------------

    def check(self, repair: bool = False, verify_content: bool = True) -> list[Problem]:
        """Check the store against its directories; with ``repair``, fix what can be fixed.

        A damaged or lost database is the one problem every other command can only name:
        here it is rebuilt (``store.rebuild``) rather than reported again, so the advice
        those commands give leads somewhere. Nothing a repair cannot account for is
        deleted; it goes to ``quarantine/``."""
        from .usage import Problem

        try:
            with self.store.gc_lock(exclusive=repair):
                return self._check(repair, verify_content)
        except StoreDamaged as damage:
            if not repair:
                return [Problem("damaged-db", damage.where, damage.what, True)]
            self.close()
            from ..store.rebuild import rebuild

            done = rebuild(Path(self.root).absolute(), damage.what)
            with self.store.gc_lock(exclusive=True):
                return _rebuild_problems(done, damage) + self._check(True, verify_content)

    def _check(self, repair: bool, verify_content: bool) -> list[Problem]:
        from ..store.quarantine import move_in, new_bin
        from .usage import Problem

        store = self.store
        problems: list[Problem] = []
        meta = store.meta
        damage = meta.damage(texts=verify_content)
        if damage is not None:
            raise StoreDamaged(str(meta.path), damage)
        if store.forgets_everything():
            # A database swapped for an empty one: the directories would all look like
            # orphans. Rebuild from them instead, as for a lost database.
            raise StoreDamaged(str(meta.path), "empty of records", lost=True)
        bin_dir = new_bin(store.root)

        def keep_aside(path: Path) -> None:
            move_in(store.root, bin_dir, path)

        def add(
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
            if repair and repairable and fix is not None:
                fix()
                p.repaired = True
            problems.append(p)

        for name in store.clean_staging() if repair else _dead_staging(store):
            add("leftover", f"tmp/{name}", "staging left by a process that died", True, lambda: None, store.tmp / name)
        layer_rows = {r[0]: r for r in meta.query("SELECT id, chain_id, diff_id, parent, size FROM layers")}
        for entry in sorted(os.listdir(store.layers.dir)):
            if entry not in layer_rows and not _in_progress(store.layers.dir / entry):
                path = store.layers.dir / entry
                add(
                    "orphan-dir",
                    f"layers/{entry}",
                    f"a layer directory no record names (moved to {bin_dir})",
                    True,
                    lambda path=path: keep_aside(path),  # type: ignore[misc]
                    path,
                )
        for lid, (_, _chain_id, diff_id, parent, _size) in layer_rows.items():
            if parent is not None and parent not in layer_rows:
                add("missing-layer", f"layer {lid[:12]}", f"its parent {parent[:12]} is missing", False)
            diff = store.layers.diff_dir(lid)
            if not diff.is_dir():
                add("missing-layer", f"layer {lid[:12]}", f"its directory {diff} is missing", False)
                continue
            if verify_content:
                got = _layer_digest(store, lid)
                if got != diff_id:
                    add(
                        "corrupt-layer",
                        f"layer {lid[:12]}",
                        f"content digest {got or 'unreadable'} does not match its diff id {diff_id}",
                        False,
                    )
        for iid, top in meta.query("SELECT id, top_layer FROM images"):
            if top is not None and top not in layer_rows:
                add("missing-layer", f"image {iid[7:19]}", f"its top layer {top[:12]} is missing", False)
        for tag, iid in meta.query("SELECT name, image FROM tags"):
            if meta.one("SELECT 1 FROM images WHERE id=?", (iid,)) is None:
                add(
                    "dangling-tag",
                    tag,
                    f"points at missing image {iid[7:19]}",
                    True,
                    lambda tag=tag: _exec(store, "DELETE FROM tags WHERE name=?", (tag,)),  # type: ignore[misc]
                )
        for key, layer_id in meta.query("SELECT key, layer FROM build_cache"):
            if layer_id is not None and layer_id not in layer_rows:
                add(
                    "dangling-cache",
                    f"cache {key[:12]}",
                    f"names missing layer {layer_id[:12]}",
                    True,
                    lambda key=key: _exec(store, "DELETE FROM build_cache WHERE key=?", (key,)),  # type: ignore[misc]
                )
        container_ids = {r[0] for r in meta.query("SELECT id FROM containers")}
        for cid, image in meta.query("SELECT id, image FROM containers"):
            if meta.one("SELECT 1 FROM images WHERE id=?", (image,)) is None:
                add("missing-image", f"container {cid[:12]}", f"its image {image[7:19]} is missing", False)
            if not store.containers.path(cid).is_dir():
                add(
                    "missing-dir",
                    f"container {cid[:12]}",
                    "its directory is missing",
                    True,
                    lambda cid=cid: _forget_container(store, cid),  # type: ignore[misc]
                )
        for entry in sorted(os.listdir(store.containers.dir)):
            if entry not in container_ids:
                path = store.containers.dir / entry
                add(
                    "orphan-dir",
                    f"containers/{entry}",
                    f"a container directory no record names (moved to {bin_dir})",
                    True,
                    lambda path=path: keep_aside(path),  # type: ignore[misc]
                    path,
                )
        volume_names = {r[0] for r in meta.query("SELECT name FROM volumes")}
        for entry in sorted(os.listdir(store.volumes.dir)):
            path = store.volumes.dir / entry
            if entry in volume_names or _in_progress(path):
                continue
            if (path / "_data").is_dir():
                add(
                    "orphan-dir",
                    f"volumes/{entry}",
                    "a volume directory no record names (recorded again)",
                    True,
                    lambda entry=entry, path=path: _exec(  # type: ignore[misc]
                        store,
                        "INSERT OR IGNORE INTO volumes(name, created) VALUES (?, ?)",
                        (entry, path.stat().st_mtime),
                    ),
                )
            else:
                add(
                    "orphan-dir",
                    f"volumes/{entry}",
                    f"a directory that is not a volume (moved to {bin_dir})",
                    True,
                    lambda path=path: keep_aside(path),  # type: ignore[misc]
                    path,
                )
        for cid, volume in meta.query("SELECT container, volume FROM container_volumes"):
            if cid not in container_ids or volume not in volume_names:
                add(
                    "dangling-mount",
                    f"container {cid[:12]} / volume {volume}",
                    "a mount record without its container or volume",
                    True,
                    lambda cid=cid, volume=volume: _exec(  # type: ignore[misc]
                        store, "DELETE FROM container_volumes WHERE container=? AND volume=?", (cid, volume)
                    ),
                )
        return problems


def _rebuild_problems(done: Rebuilt, damage: StoreDamaged) -> list[Problem]:
    from .usage import Problem

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


def _in_progress(path: os.PathLike[str]) -> bool:
    """A directory another live process is still committing (it carries its owner mark)."""
    from pathlib import Path

    from ..store.marks import owner_live

    return owner_live(Path(path))


def _exec(store: Store, sql: str, params: tuple[object, ...]) -> None:
    with store.meta.transaction() as conn:
        conn.execute(sql, params)


def _forget_container(store: Store, cid: str) -> None:
    with store.meta.transaction() as conn:
        conn.execute("DELETE FROM container_volumes WHERE container=?", (cid,))
        conn.execute("DELETE FROM containers WHERE id=?", (cid,))


UNMARKED_GRACE_S = 60.0


def _dead_staging(store: Store) -> list[str]:
    """Entries of tmp/ no live process owns. Unmarked ones (trash an ``rm`` is deleting
    right now) count only once they are older than a minute."""
    import time

    from ..store.marks import _owner, owner_live

    out = []
    for entry in store.tmp.iterdir():
        if owner_live(entry):
            continue
        if not _owner(entry):
            try:
                if time.time() - entry.lstat().st_mtime < UNMARKED_GRACE_S:
                    continue
            except OSError:
                continue
        out.append(entry.name)
    return out


class _Hasher:
    def __init__(self) -> None:
        import hashlib

        self.h = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.h.update(data)
        return len(data)


def _layer_digest(store: Store, layer_id: str) -> str | None:
    sink = _Hasher()
    try:
        store.layers.write_tar(layer_id, sink)  # type: ignore[arg-type]
    except (OSError, StrataError):
        return None
    return "sha256:" + sink.h.hexdigest()


def __getattr__(name: str) -> object:
    """The usage records live in ``usage.py`` (loaded only when asked for)."""
    if name.startswith("__"):
        raise AttributeError(name)
    from . import usage

    try:
        return getattr(usage, name)
    except AttributeError:
        raise AttributeError(name) from None
