"""Rebuilding a damaged or lost ``metadata.db`` from what survives: its readable rows
(``salvage``) and the directories, which are the truth about what exists.

Layers are content: a layer directory's diff id, size and file index are recomputed
from its tar-split and ``diff/`` (or from ``diff/`` alone when the tar-split is gone).
A layer's parent is not in its directory, but an image's config lists its layers' diff
ids in order, so every image whose row survived gets its chain back. Volumes need only
their directory. A container needs its record (image, command, mounts): a container
directory whose row is gone, a layer that cannot be read back and the damaged database
itself go to ``quarantine/``, never away. Rows naming something whose directory is
gone are dropped: a salvaged page can be an old one, from before a delete.

The new database is written beside the old one and renamed over it only when complete,
so a crash during a repair leaves the damaged store as it was, to repair again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sqlite3
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import StrataError
from ..fsutil import rmtree
from .index import WHITEOUT, FileEntry, parent_of, stored, stored_or_none
from .locks import gc_lock
from .marks import mark_owner, owner_live
from .quarantine import move_in, new_bin
from .salvage import Row, Salvaged, salvage

_LAYER_TARSPLIT = "tar-split.zst"


@dataclass
class Rebuilt:
    """What a rebuild did, for ``system check`` to report line by line."""

    damage: str
    salvaged: int = 0
    recomputed: list[str] = field(default_factory=list)  # "layers/<id>"
    adopted: list[str] = field(default_factory=list)  # directories recorded anew
    dropped: list[str] = field(default_factory=list)  # rows that named nothing on disk
    quarantined: list[str] = field(default_factory=list)  # paths under the bin, relative to root
    unreadable: dict[str, str] = field(default_factory=dict)  # layer path -> why it could not be indexed
    bin: Path | None = None


def rebuild(root: Path, damage: str) -> Rebuilt:
    """Replace ``root/metadata.db`` by one rebuilt from its readable rows and the directories."""
    with gc_lock(root, exclusive=True):
        return _Rebuild(root, damage).run()


class _Rebuild:
    def __init__(self, root: Path, damage: str) -> None:
        self.root = root
        self.db = root / "metadata.db"
        self.out = Rebuilt(damage)
        self.bin = new_bin(root)
        self.pending: list[Path] = []

    def quarantine(self, path: Path) -> None:
        """Set ``path`` aside; it moves once the new database is in place, so a repair that
        fails half-way leaves every directory where the next attempt looks for it."""
        self.pending.append(path)
        self.out.quarantined.append(str(path.relative_to(self.root)))
        self.out.bin = self.bin

    def run(self) -> Rebuilt:
        got = salvage(self.db) if self.db.is_file() and self.db.stat().st_size else Salvaged()
        self.out.salvaged = got.count
        rows = {table: _by_key(table, found) for table, found in got.rows.items()}
        layers, files = self._layers(rows["layers"], rows["files"])
        images = self._images(rows["images"], layers)
        self._unique_chains(layers)
        containers = self._containers(rows["containers"])
        volumes = self._volumes(rows["volumes"])
        for stale in self.root.glob("metadata.db.rebuild-*"):  # of a repair that did not finish
            stale.unlink(missing_ok=True)
        fresh = self.root / f"metadata.db.rebuild-{os.getpid()}"
        conn = sqlite3.connect(fresh, isolation_level=None)
        try:
            from .metadata import migrate_from

            conn.execute("BEGIN")
            migrate_from(conn, 0)
            _put(conn, "layers", list(layers.values()))
            for rows_of in files.values():
                _put(conn, "files", rows_of)
            _put(conn, "images", list(images.values()))
            _put(conn, "tags", [r for r in rows["tags"].values() if r[1] in images])
            _put(conn, "blobs", [r for r in rows["blobs"].values() if r[0] in layers])
            _put(conn, "containers", list(containers.values()))
            _put(conn, "volumes", list(volumes.values()))
            _put(
                conn,
                "container_volumes",
                [r for r in rows["container_volumes"].values() if r[0] in containers and r[1] in volumes],
            )
            _put(conn, "build_cache", [r for r in rows["build_cache"].values() if r[2] is None or r[2] in layers])
            conn.execute("COMMIT")
        finally:
            conn.close()
        _fsync(fresh)
        self._swap(fresh)
        for path in self.pending:
            move_in(self.root, self.bin, path)
        return self.out

    def _swap(self, fresh: Path) -> None:
        """Put the new database in place of the old, which is kept in the quarantine.

        The old file is linked there first and the new one renamed over it, so the store
        always has a database; the old write-ahead log goes before the rename, because
        SQLite would replay it into the new file."""
        damaged = self.db.exists() and self.db.stat().st_size > 0
        if damaged:
            kept = self.bin / self.db.name
            kept.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            try:
                os.link(self.db, kept)
            except OSError:
                shutil.copy2(self.db, kept)
            self.out.quarantined.append(self.db.name)
            self.out.bin = self.bin
        for suffix in ("-wal", "-shm", "-journal"):
            old = Path(f"{self.db}{suffix}")
            if not old.exists():
                continue
            if damaged:
                move_in(self.root, self.bin, old)
                self.out.quarantined.append(old.name)
            else:
                old.unlink()
        os.rename(fresh, self.db)
        _fsync(self.root)

    # --- layers --------------------------------------------------------------------

    def _layers(
        self, rows: dict[Any, Row], file_rows: dict[Any, Row]
    ) -> tuple[dict[str, list[Any]], dict[str, list[Row]]]:
        by_layer: dict[str, list[Row]] = {}
        for r in file_rows.values():
            by_layer.setdefault(r[0], []).append(r)
        layers: dict[str, list[Any]] = {}
        files: dict[str, list[Row]] = {}
        area = self.root / "layers"
        for name in sorted(os.listdir(area)):
            path = area / name
            if owner_live(path):
                continue
            row = rows.get(name)
            if row is not None and (path / "diff").is_dir() and len(by_layer.get(name, [])) == row[6]:
                layers[name] = list(row)
                files[name] = by_layer[name]
                continue
            try:
                entries, diff_id, size = _index(path, self.root / "tmp")
            except (OSError, StrataError) as e:
                self.quarantine(path)
                self.out.unreadable[f"layers/{name}"] = str(e)
                continue
            if row is not None and row[2] != diff_id:
                row = None  # the content is not what the row says: record what is there
            (path / "owner").unlink(missing_ok=True)
            self.out.recomputed.append(f"layers/{name}")
            content = sum(e.size for e in entries if e.type == "file")
            deleted = sum(1 for e in entries if e.type == WHITEOUT)
            if row is not None:
                fixed = list(row)
                fixed[4:10] = [size, content, len(entries), len(entries) - deleted, 0, deleted]
                layers[name] = fixed
            else:
                self.out.adopted.append(f"layers/{name}")
                layers[name] = [
                    name,
                    diff_id,
                    diff_id,
                    None,
                    size,
                    content,
                    len(entries),
                    len(entries) - deleted,
                    0,
                    deleted,
                    path.stat().st_mtime,
                    "",
                ]
            files[name] = [_file_row(name, e) for e in entries]
        for name in rows:
            if name not in layers and f"layers/{name}" not in self.out.unreadable:
                self.out.dropped.append(f"layer {str(name)[:12]}: its directory is gone")
        # Parents that did not survive: the layer stands alone until an image names it.
        for kept in layers.values():
            if kept[3] is not None and kept[3] not in layers:
                kept[3] = None
        return layers, files

    def _images(self, rows: dict[Any, Row], layers: dict[str, list[Any]]) -> dict[str, Row]:
        """Images whose config is intact, with their layer chain found again by diff id."""
        kept: dict[str, Row] = {}
        for iid, row in rows.items():
            config = row[1] if isinstance(row[1], bytes) else str(row[1]).encode()
            if "sha256:" + hashlib.sha256(config).hexdigest() != iid:
                self.out.dropped.append(f"image {str(iid)[7:19]}: its config is damaged")
                continue
            try:
                diff_ids = list((json.loads(config).get("rootfs") or {}).get("diff_ids") or [])
            except (ValueError, AttributeError):
                diff_ids = []
            top = row[2] if row[2] in layers and _chain_diff_ids(layers, row[2]) == diff_ids else None
            if top is None and diff_ids:
                top = _find_chain(layers, diff_ids)
            if top is None and diff_ids:
                self.out.dropped.append(f"image {str(iid)[7:19]}: some of its layers are gone")
                continue
            kept[iid] = (row[0], config, top, row[3], row[4])
        done: dict[str, str] = {}
        for name, layer in layers.items():
            layer[1] = _chain_id(layers, name, done)
        return kept

    def _unique_chains(self, layers: dict[str, list[Any]]) -> None:
        """Two directories with the same identity: keep one, quarantine the other."""
        seen: dict[str, str] = {}
        for name in sorted(layers, key=lambda n: (layers[n][3] is None, n)):
            chain = layers[name][1]
            if chain in seen and not any(r[3] == name for r in layers.values()):
                del layers[name]
                self.quarantine(self.root / "layers" / name)
            else:
                seen[chain] = name

    # --- containers and volumes ----------------------------------------------------

    def _containers(self, rows: dict[Any, Row]) -> dict[str, Row]:
        kept: dict[str, Row] = {}
        area = self.root / "containers"
        for name in sorted(os.listdir(area)):
            path = area / name
            if owner_live(path):
                continue
            row = rows.get(name)
            if row is not None and _json(row[4]):
                kept[name] = row
                (path / "owner").unlink(missing_ok=True)
            else:
                self.quarantine(path)
        for name in rows:
            if name not in kept and not (area / str(name)).exists():
                self.out.dropped.append(f"container {str(name)[:12]}: its directory is gone")
        return kept

    def _volumes(self, rows: dict[Any, Row]) -> dict[str, Row]:
        """Every volume directory: its row when it survived, else a new one. Recovered
        volumes count as named, not anonymous, so no default prune takes their data."""
        kept: dict[str, Row] = {}
        area = self.root / "volumes"
        for name in sorted(os.listdir(area)):
            path = area / name
            if owner_live(path) or not (path / "_data").is_dir():
                continue
            row = rows.get(name)
            if row is None:
                row = (name, path.stat().st_mtime, "{}", 0, "{}")
                self.out.adopted.append(f"volumes/{name}")
            kept[name] = row
            (path / "owner").unlink(missing_ok=True)
        return kept


_KEYS = {
    "layers": (0,),
    "files": (0, 1),
    "images": (0,),
    "tags": (0,),
    "blobs": (0, 1),
    "containers": (0,),
    "volumes": (0,),
    "container_volumes": (0, 2),
    "build_cache": (0,),
}


def _by_key(table: str, rows: list[Row]) -> dict[Any, Row]:
    """Rows by primary key; the first copy read wins (tree pages are read before loose ones)."""
    out: dict[Any, Row] = {}
    cols = _KEYS[table]
    for row in rows:
        key = row[cols[0]] if len(cols) == 1 else tuple(row[c] for c in cols)
        out.setdefault(key, row)
    return out


def _put(conn: sqlite3.Connection, table: str, rows: list[Any]) -> None:
    if not rows:
        return
    marks = ",".join("?" * len(rows[0]))
    conn.executemany(f"INSERT OR IGNORE INTO {table} VALUES ({marks})", [tuple(r) for r in rows])


def _json(text: object) -> bool:
    try:
        json.loads(str(text))
    except ValueError:
        return False
    return True


def _chain_diff_ids(layers: dict[str, list[Any]], top: str) -> list[str]:
    out: list[str] = []
    current: str | None = top
    while current is not None and current in layers and len(out) <= len(layers):
        out.append(layers[current][2])
        current = layers[current][3]
    return out[::-1]


def _find_chain(layers: dict[str, list[Any]], diff_ids: list[str]) -> str | None:
    """The top of a chain of layers with these diff ids, giving parentless layers the
    parent the image says they have as it goes; None when one of them is gone."""
    parent: str | None = None
    for diff_id in diff_ids:
        linked = sorted(n for n, r in layers.items() if r[2] == diff_id and r[3] == parent)
        loose = sorted(n for n, r in layers.items() if r[2] == diff_id and r[3] is None)
        if linked:
            parent = linked[0]
        elif loose:
            layers[loose[0]][3] = parent
            parent = loose[0]
        else:
            return None
    return parent


def _chain_id(layers: dict[str, list[Any]], name: str, done: dict[str, str]) -> str:
    """The OCI chain id of ``name`` from its parents' (bottom first, without recursion)."""
    from ..digest import chain_ids

    path: list[str] = []
    current: str | None = name
    while current is not None and current not in done and current not in path:
        path.append(current)
        current = layers[current][3]
    below = done.get(current) if current is not None else None
    for n in reversed(path):
        below = chain_ids([below, layers[n][2]])[-1] if below else layers[n][2]
        done[n] = below
    return done[name]


def _file_row(layer: str, e: FileEntry) -> Row:
    return (
        layer,
        stored(e.path),
        stored(parent_of(e.path)),
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


def _index(path: Path, scratch_area: Path) -> tuple[list[FileEntry], str, int]:
    """A layer directory's file index, diff id and tar size.

    With its tar-split, the tar is reassembled and indexed as it was when the layer
    arrived (ownership and modes the disk may not hold included); without it, ``diff/``
    is indexed as a build step's is and a new tar-split written."""
    diff = path / "diff"
    if not diff.is_dir():
        raise OSError(f"{path} has no diff/")
    split = path / _LAYER_TARSPLIT
    if split.is_file():
        return _index_through_tar(split, diff, scratch_area)
    from .layertar import write_layer_tar
    from .scan import scan_dir

    entries = scan_dir(str(diff))
    diff_id, size = write_layer_tar(str(diff), entries, None, str(split))
    return entries, diff_id, size


def _index_through_tar(split: Path, diff: Path, scratch_area: Path) -> tuple[list[FileEntry], str, int]:
    from .extract import extract_layer
    from .tarsplit import reassemble

    scratch = scratch_area / f"stage-rebuild-{os.urandom(8).hex()}"
    scratch.mkdir(mode=0o700)
    mark_owner(scratch)
    (scratch / "diff").mkdir(mode=0o755)
    failed: list[BaseException] = []
    r, w = os.pipe()

    def feed() -> None:
        try:
            with open(w, "wb") as out:
                reassemble(str(split), str(diff), out)
        except BaseException as e:  # handed over after the join
            failed.append(e)

    worker = threading.Thread(target=feed, name="strata-rebuild-feed", daemon=True)
    worker.start()
    try:
        with open(r, "rb") as stream:
            result = extract_layer(stream, str(scratch / "diff"), what=f"layer {diff.parent.name[:12]}")
    finally:
        worker.join()
        rmtree(scratch)
    if failed and not isinstance(failed[0], BrokenPipeError):
        raise failed[0]
    return result.entries, result.diff_id, result.size


def _fsync(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
