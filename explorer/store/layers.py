"""Layers: content-addressed identity, random directory ids, and their file index.

A layer's identity is its chain id (content plus everything below it); where it lives
is a random id under ``layers/``. Registering content whose chain id exists returns the
existing layer, so shared build steps and shared base images are stored once.

A new layer is written into ``tmp/<id>/`` (marked with the writer's pid so a crash can
be told from work in progress), synced, renamed to ``layers/<id>/`` and only then
recorded in one metadata transaction.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from ..digest import chain_ids
from ..errors import LayerInUse, LayerNotFound
from ..fsutil import guard_enospc, rmtree
from ..holds import hold
from .index import DIR, WHITEOUT, FileEntry, loaded_rows, parent_of, stored, stored_or_none
from .marks import mark_owner, owned_name

if TYPE_CHECKING:
    from .store import Store

TARSPLIT = "tar-split.zst"


@dataclass(frozen=True, slots=True)
class Layer:
    id: str
    chain_id: str
    diff_id: str
    parent: str | None
    size: int
    content_size: int
    entries: int
    added: int
    modified: int
    deleted: int
    created: float
    created_by: str

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> Layer:
        return cls(*row)


_LAYER_COLS = (
    "id, chain_id, diff_id, parent, size, content_size, entries, added, modified, deleted, created, created_by"
)
_FILE_COLS = "path, type, mode, uid, gid, size, mtime, digest, link, opaque, devmajor, devminor"


def entry_from_row(row: tuple[Any, ...]) -> FileEntry:
    return FileEntry(
        row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7], row[8], bool(row[9]), row[10], row[11]
    )


@dataclass(frozen=True)
class Predecessor:
    """An earlier result of the same build step, which a new layer probably resembles.

    ``same`` names the new layer's files (relative paths) that are that layer's very
    inodes at the same paths: the tar they share need not be hashed again (see
    ``layertar``). ``entries`` is its index by path: when most rows are unchanged they are
    copied inside SQLite instead of inserted one by one.
    """

    layer_id: str
    entries: Mapping[str, FileEntry]
    same: frozenset[str] = frozenset()


@dataclass
class Staging:
    """A layer being written: ``path/diff`` is where content goes."""

    id: str
    path: Path

    @property
    def diff(self) -> Path:
        return self.path / "diff"

    @property
    def tarsplit(self) -> Path:
        return self.path / TARSPLIT


class LayerStore:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.meta = store.meta
        self.dir = store.root / "layers"

    # --- reading -------------------------------------------------------------------

    def get(self, layer_id: str) -> Layer:
        row = self.meta.one(f"SELECT {_LAYER_COLS} FROM layers WHERE id=?", (layer_id,))
        if row is None:
            raise LayerNotFound(layer_id)
        return Layer.from_row(row)

    def find(self, text: str) -> Layer:
        """A layer by id, chain id or diff id, or a unique prefix of one of them."""
        t = text.removeprefix("sha256:")
        rows = self.meta.query(
            f"SELECT {_LAYER_COLS} FROM layers WHERE id LIKE ? OR chain_id LIKE ? OR diff_id LIKE ?",
            (t + "%", "sha256:" + t + "%", "sha256:" + t + "%"),
        )
        if len(rows) == 1:
            return Layer.from_row(rows[0])
        if not rows:
            raise LayerNotFound(text)
        exact = [r for r in rows if r[0] == t or r[1].endswith(t) or r[2].endswith(t)]
        if len(exact) == 1:
            return Layer.from_row(exact[0])
        from ..errors import AmbiguousName

        raise AmbiguousName(text, [r[0] for r in rows])

    def by_chain(self, chain_id: str) -> Layer | None:
        row = self.meta.one(f"SELECT {_LAYER_COLS} FROM layers WHERE chain_id=?", (chain_id,))
        return Layer.from_row(row) if row else None

    def all(self) -> list[Layer]:
        return [Layer.from_row(r) for r in self.meta.query(f"SELECT {_LAYER_COLS} FROM layers ORDER BY created")]

    def chain(self, top: str | None) -> list[Layer]:
        """The layers from the bottom up to ``top`` inclusive."""
        if top is None:
            return []
        rows = self.meta.query(
            f"""WITH RECURSIVE up(lid, depth) AS (SELECT ?, 0 UNION ALL
                  SELECT layers.parent, depth + 1 FROM layers JOIN up ON layers.id = up.lid
                  WHERE layers.parent IS NOT NULL)
                SELECT {", ".join("l." + c.strip() for c in _LAYER_COLS.split(","))}
                FROM up JOIN layers l ON l.id = up.lid ORDER BY depth DESC""",
            (top,),
        )
        if not rows:
            raise LayerNotFound(top)
        return [Layer.from_row(r) for r in rows]

    def entries(self, layer_id: str) -> list[FileEntry]:
        rows = self.meta.query(f"SELECT {_FILE_COLS} FROM files WHERE layer=? ORDER BY path", (layer_id,))
        return [entry_from_row(r) for r in loaded_rows(rows)]

    def diff_dir(self, layer_id: str) -> Path:
        return self.dir / layer_id / "diff"

    def tarsplit_path(self, layer_id: str) -> Path:
        return self.dir / layer_id / TARSPLIT

    def write_tar(self, layer_id: str, out: BinaryIO) -> int:
        """The layer's tar, byte for byte the one its diff id was computed from."""
        from .tarsplit import reassemble

        return reassemble(str(self.tarsplit_path(layer_id)), str(self.diff_dir(layer_id)), out)

    # --- writing -------------------------------------------------------------------

    @contextlib.contextmanager
    def staging(self) -> Iterator[Staging]:
        """A fresh staging directory, removed unless ``commit`` moved it into place."""
        layer_id = os.urandom(16).hex()
        path = self.store.tmp / f"layer-{layer_id}"
        with guard_enospc(str(path)):
            path.mkdir(mode=0o700)
            mark_owner(path)
            (path / "diff").mkdir(mode=0o755)
        try:
            yield Staging(layer_id, path)
        finally:
            if path.exists():
                rmtree(path)

    def add_tar(
        self,
        stream: BinaryIO,
        parent: str | None,
        created_by: str = "",
        *,
        what: str = "layer",
        expected_diff_id: str | None = None,
        expected_digest: str | None = None,
        expected_size: int | None = None,
    ) -> tuple[Layer, str, int]:
        """Extract a (possibly compressed) layer tar; returns the layer and the digest
        and size of the bytes read, so callers can record the blob."""
        from ..errors import DigestMismatch, SizeMismatch
        from .extract import extract_layer

        with self.store.gc_lock(), self.staging() as st, guard_enospc(str(st.path)):
            result = extract_layer(stream, str(st.diff), tarsplit_path=str(st.tarsplit), what=what)
            if expected_digest is not None and result.compressed_digest != expected_digest:
                raise DigestMismatch(what, expected_digest, result.compressed_digest)
            if expected_size is not None and result.compressed_size != expected_size:
                raise SizeMismatch(what, expected_size, result.compressed_size)
            if expected_diff_id is not None and result.diff_id != expected_diff_id:
                raise DigestMismatch(f"{what} (uncompressed)", expected_diff_id, result.diff_id)
            layer = self.commit(st, result.entries, result.diff_id, result.size, parent, created_by)
            return layer, result.compressed_digest, result.compressed_size

    def add_dir(
        self,
        st: Staging,
        entries: list[FileEntry],
        parent: str | None,
        created_by: str,
        predecessor: Predecessor | None = None,
        *,
        elsewhere: Mapping[str, str] | None = None,
        settle: Callable[[], None] | None = None,
    ) -> Layer:
        """Register content already written into ``st.diff`` (a build step, a commit). Only
        the tar's digest and tar-split are made: the tar itself is written on export.

        ``settle``, when given, completes the tree (a clone still being made, see
        ``build.copy.LayerWriter``): the tar is hashed first, reading what is not in place
        yet from the predecessor's tree and from ``elsewhere``, then ``settle`` runs."""
        from .layertar import EarlierLayer, write_layer_tar

        earlier = None
        if predecessor is not None:
            try:
                self.get(predecessor.layer_id)
            except LayerNotFound:
                predecessor = None
            else:
                if predecessor.same:
                    earlier = EarlierLayer(
                        str(self.tarsplit_path(predecessor.layer_id)),
                        predecessor.same,
                        predecessor.entries,
                        str(self.diff_dir(predecessor.layer_id)),
                    )
        with self.store.gc_lock(), guard_enospc(str(st.path)):
            diff_id, size = write_layer_tar(
                str(st.diff), entries, None, str(st.tarsplit), earlier=earlier, elsewhere=elsewhere, settle=settle
            )
            return self.commit(st, entries, diff_id, size, parent, created_by, predecessor, settle)

    def commit(
        self,
        st: Staging,
        entries: list[FileEntry],
        diff_id: str,
        size: int,
        parent: str | None,
        created_by: str,
        predecessor: Predecessor | None = None,
        settle: Callable[[], None] | None = None,
    ) -> Layer:
        """Record the layer in ``st``. Its rows are written in a transaction that commits
        only after the directory is final (``settle``, when the tree is still being
        completed), synced and renamed into place: so the rows are written while the tree
        is finished, and no reader ever finds a recorded layer without its directory."""
        parent_chain = self.get(parent).chain_id if parent else None
        chain_id = chain_ids([parent_chain, diff_id])[-1] if parent_chain else diff_id
        existing = self.by_chain(chain_id)
        if existing is not None:
            return existing
        added, modified, deleted = self._change_counts(entries, parent)
        content = sum(e.size for e in entries if e.type == "file")
        final = self.dir / st.id
        now = time.time()
        try:
            with self.meta.transaction() as conn:
                if conn.execute("SELECT 1 FROM layers WHERE chain_id=?", (chain_id,)).fetchone():
                    raise _LostRace
                if settle is not None:
                    settle()
                synced = _sync_meanwhile(st.path)  # the rows are written while the disk syncs
                try:
                    conn.execute(
                        f"INSERT INTO layers({_LAYER_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                        (
                            st.id,
                            chain_id,
                            diff_id,
                            parent,
                            size,
                            content,
                            len(entries),
                            added,
                            modified,
                            deleted,
                            now,
                            created_by,
                        ),
                    )
                    rows = entries
                    if predecessor is not None:
                        rows = _copy_rows(conn, st.id, entries, predecessor)
                    _insert_rows(conn, st.id, rows)
                finally:
                    sync_error = synced()
                if sync_error is not None:
                    raise sync_error
                with guard_enospc(str(final)):
                    # The owner mark travels with the directory and goes only once the record is
                    # committed: until then a checker sees work in progress, not an orphan.
                    os.rename(st.path, final)
                    _sync_dir(self.dir)  # the rename is on disk before the record can be
                hold("layer.renamed")  # in place, not recorded: the next open removes it
        except _LostRace:
            found = self.by_chain(chain_id)
            assert found is not None
            return found
        except BaseException:
            if final.exists():
                rmtree(final)
            raise
        hold("layer.committed")  # recorded, still marked: a checker sees work in progress
        (final / "owner").unlink(missing_ok=True)
        return self.get(st.id)

    def _change_counts(self, entries: list[FileEntry], parent: str | None) -> tuple[int, int, int]:
        """How many paths this layer adds, modifies and deletes relative to its parent chain."""
        if parent is None:
            return sum(1 for e in entries if e.type != WHITEOUT), 0, 0
        from .union import UnionView

        below = UnionView.of_layers(self.store, self.chain(parent))
        visible = below.lookup_many([e.path for e in entries])
        added = modified = deleted = 0
        for e in entries:
            old = visible.get(e.path)
            if e.type == WHITEOUT:
                deleted += old is not None
            elif old is None:
                added += 1
            elif (
                e.type == DIR
                and old.entry.type == DIR
                and (e.mode, e.uid, e.gid) == (old.entry.mode, old.entry.uid, old.entry.gid)
            ):
                continue
            else:
                modified += 1
        return added, modified, deleted

    def users(self, layer_id: str) -> list[str]:
        """Who keeps this layer alive: images whose chain contains it, child layers, cache entries."""
        out = [f"layer {r[0][:12]}" for r in self.meta.query("SELECT id FROM layers WHERE parent=?", (layer_id,))]
        out += [f"image {r[0][7:19]}" for r in self.meta.query("SELECT id FROM images WHERE top_layer=?", (layer_id,))]
        out += [
            f"build cache {r[0][:12]}"
            for r in self.meta.query("SELECT key FROM build_cache WHERE layer=?", (layer_id,))
        ]
        return out

    def delete(self, layer_id: str) -> None:
        """Remove one unreferenced layer: the row first (so no reader finds a half-deleted
        layer), then its directory."""
        with self.meta.transaction() as conn:
            users = self.users(layer_id)
            if users:
                raise LayerInUse(f"layer {layer_id[:12]}", users)
            conn.execute("DELETE FROM files WHERE layer=?", (layer_id,))
            conn.execute("DELETE FROM blobs WHERE layer=?", (layer_id,))
            conn.execute("DELETE FROM layers WHERE id=?", (layer_id,))
        path = self.dir / layer_id
        trash = self.store.tmp / owned_name(f"trash-{layer_id}")
        with contextlib.suppress(FileNotFoundError):
            os.rename(path, trash)
        rmtree(trash)

    def record_blob(self, layer_id: str, digest: str, media_type: str, size: int, source: str = "") -> None:
        with self.meta.transaction() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO blobs(layer, digest, media_type, size, source) VALUES (?,?,?,?,?)",
                (layer_id, digest, media_type, size, source),
            )


def _insert_rows(conn: Any, layer_id: str, entries: list[FileEntry]) -> None:
    conn.executemany(
        f"INSERT OR REPLACE INTO files(layer, parent, {_FILE_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (
            (
                layer_id,
                stored(parent_of(e.path)),
                stored(e.path),
                e.type,
                e.mode,
                e.uid,
                e.gid,
                e.size,
                e.mtime,
                e.digest,
                stored_or_none(e.link),
                int(e.opaque),
                e.devmajor,
                e.devminor,
            )
            for e in entries
        ),
    )


def _copy_rows(conn: Any, layer_id: str, entries: list[FileEntry], predecessor: Predecessor) -> list[FileEntry]:
    """Give ``layer_id`` the predecessor's index rows inside SQLite, minus the paths it does
    not have; returns the entries still to insert (those that differ). When most differ,
    nothing is copied and all are returned."""
    base = predecessor.entries
    changed = [e for e in entries if base.get(e.path) != e]
    if len(changed) * 2 > len(entries):
        return entries
    present = {e.path for e in entries}
    conn.execute(
        f"INSERT INTO files(layer, parent, {_FILE_COLS}) SELECT ?, parent, {_FILE_COLS} FROM files WHERE layer=?",
        (layer_id, predecessor.layer_id),
    )
    conn.executemany(
        "DELETE FROM files WHERE layer=? AND path=?", ((layer_id, stored(path)) for path in base if path not in present)
    )
    return changed


class _LostRace(Exception):
    """Another process registered the same chain id between our check and our insert."""


def _sync_meanwhile(path: Path) -> Callable[[], BaseException | None]:
    """Start ``_syncfs(path)`` on another thread (it waits on the disk, not on Python);
    the returned call waits for it and returns what it raised, if anything."""
    import threading

    failed: list[BaseException] = []

    def sync() -> None:
        try:
            with guard_enospc(str(path)):
                _syncfs(path)
        except BaseException as e:  # handed to the caller by wait()
            failed.append(e)

    worker = threading.Thread(target=sync, name="strata-syncfs", daemon=True)
    worker.start()

    def wait() -> BaseException | None:
        worker.join()
        return failed[0] if failed else None

    return wait


def _syncfs(path: Path) -> None:
    """Flush the filesystem holding ``path`` once, instead of fsyncing every file."""
    import ctypes

    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.syncfs(fd) != 0:
            os.sync()
    finally:
        os.close(fd)


def _sync_dir(path: Path) -> None:
    """fsync a directory, so a rename into it survives a crash (best effort where the
    file system cannot sync directories)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
