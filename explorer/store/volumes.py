"""Volumes: named directories under ``volumes/<name>/_data`` that outlive containers.

The database keeps who uses which volume (``container_volumes``), so removing a volume
a container still mounts is refused with the containers' names, whether they run or not.
"""

from __future__ import annotations

import json
import os
import re
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..bulk import collector_paused
from ..errors import AlreadyExists, InvalidName, VolumeInUse, VolumeNotFound
from ..fsutil import guard_enospc, rmtree
from .index import DIR, FILE, type_from_mode
from .marks import mark_owner

if TYPE_CHECKING:
    from .store import Store

NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")


@dataclass
class Volume:
    name: str
    created: float
    labels: dict[str, str]
    anonymous: bool
    options: dict[str, str]
    mountpoint: Path
    users: list[str] = field(default_factory=list)  # container names


# The name is a directory name under volumes/: longer than the file system allows is
# refused here, not by mkdir deep inside a create.
MAX_NAME = 255


def check_name(name: str) -> str:
    if len(name or "") > MAX_NAME:
        raise InvalidName(
            f"invalid volume name {name[:20]}… ({len(name)} characters): use at most {MAX_NAME} characters"
        )
    if not NAME_RE.match(name or ""):
        raise InvalidName(
            f"invalid volume name {name!r}: use 2 or more of [a-zA-Z0-9_.-], starting with a letter or digit"
        )
    return name


class VolumeStore:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.meta = store.meta
        self.dir = store.root / "volumes"

    def data_dir(self, name: str) -> Path:
        return self.dir / name / "_data"

    def _users(self, name: str) -> list[str]:
        rows = self.meta.query(
            "SELECT c.name FROM container_volumes cv JOIN containers c ON c.id = cv.container "
            "WHERE cv.volume=? ORDER BY c.name",
            (name,),
        )
        return [r[0] for r in rows]

    def _from_row(self, row: tuple[Any, ...]) -> Volume:
        return Volume(
            row[0],
            row[1],
            json.loads(row[2]),
            bool(row[3]),
            json.loads(row[4]),
            self.data_dir(row[0]),
            self._users(row[0]),
        )

    def all(self) -> list[Volume]:
        rows = self.meta.query("SELECT name, created, labels, anonymous, options FROM volumes ORDER BY name")
        return [self._from_row(r) for r in rows]

    def get(self, name: str) -> Volume:
        row = self.meta.one("SELECT name, created, labels, anonymous, options FROM volumes WHERE name=?", (name,))
        if row is None:
            raise VolumeNotFound(name)
        return self._from_row(row)

    def exists(self, name: str) -> bool:
        return self.meta.one("SELECT 1 FROM volumes WHERE name=?", (name,)) is not None

    def create(
        self,
        name: str | None = None,
        labels: dict[str, str] | None = None,
        anonymous: bool = False,
        exist_ok: bool = True,
    ) -> Volume:
        if name is None:
            name = os.urandom(32).hex()
        check_name(name)
        if self.exists(name):
            if exist_ok:
                return self.get(name)
            raise AlreadyExists(f"volume {name} already exists")
        path = self.dir / name
        with guard_enospc(str(path)):
            path.mkdir(mode=0o700, exist_ok=True)
            mark_owner(path)
            (path / "_data").mkdir(mode=0o755, exist_ok=True)
        try:
            with self.meta.transaction() as conn:
                conn.execute(
                    "INSERT OR IGNORE INTO volumes(name, created, labels, anonymous, options) VALUES (?,?,?,?,?)",
                    (name, time.time(), json.dumps(labels or {}), int(anonymous), "{}"),
                )
        except BaseException:
            rmtree(path)
            raise
        (path / "owner").unlink(missing_ok=True)
        return self.get(name)

    def adopt(self, name: str, created: float) -> None:
        """Record a volume directory whose record is gone (``check --repair``): its data
        is the volume, and nothing else about it was kept."""
        with self.meta.transaction() as conn:
            conn.execute("INSERT OR IGNORE INTO volumes(name, created) VALUES (?, ?)", (name, created))

    def remove(self, name: str) -> None:
        """Forget the volume, then delete its directory.

        The directory is marked with our pid before the record goes, so a crash between
        the two leaves a marked directory no record names, which the next open removes
        (``Store.clean_staging``); a crash before the commit leaves the volume whole."""
        from ..fsutil import rmtree as remove_tree

        path = self.dir / name
        marked = False
        try:
            with self.meta.transaction() as conn:
                if conn.execute("SELECT 1 FROM volumes WHERE name=?", (name,)).fetchone() is None:
                    raise VolumeNotFound(name)
                users = self._users(name)
                if users:
                    raise VolumeInUse(f"volume {name}", users, "remove those containers first")
                if path.is_dir():
                    with guard_enospc(str(path)):
                        mark_owner(path)
                    marked = True
                conn.execute("DELETE FROM volumes WHERE name=?", (name,))
        except BaseException:
            if marked:
                (path / "owner").unlink(missing_ok=True)
            raise
        trash = self.store.tmp / f"trash-volume-{os.urandom(6).hex()}"
        try:
            path.rename(trash)
        except FileNotFoundError:
            return
        remove_tree(str(trash))


def walk_rows(root: Path) -> tuple[list[tuple[Any, ...]], int]:
    """A volume's files as index rows (the ``files`` table's column order), already in
    tree order, and the bytes of its regular files (each inode once).

    One lstat per entry and no content hashing: volumes change under running containers
    and can be large. Each directory's names are sorted and its subtree is emitted right
    after its own row, which is the order ``UnionView.walk`` wants, so a listing of a
    volume needs no sort of its own.
    """
    rows: list[tuple[Any, ...]] = []
    append = rows.append
    total = 0
    seen: set[int] = set()
    is_dir, is_reg, is_lnk, imode = stat.S_ISDIR, stat.S_ISREG, stat.S_ISLNK, stat.S_IMODE
    listdir, lstat, readlink = os.listdir, os.lstat, os.readlink
    try:
        top = sorted(listdir(root))
    except OSError:
        return rows, 0
    # (path below the volume + "/", real path + "/", names still to visit)
    stack: list[tuple[str, str, Iterator[str]]] = [("/", str(root) + "/", iter(top))]
    with collector_paused():
        while stack:
            prefix, real_prefix, names = stack[-1]
            for name in names:
                real = real_prefix + name
                try:
                    st = lstat(real)
                except OSError:
                    continue
                mode = st.st_mode
                path = prefix + name
                if is_reg(mode):
                    size = st.st_size
                    if st.st_nlink == 1:
                        total += size
                    elif st.st_ino not in seen:
                        seen.add(st.st_ino)
                        total += size
                    append((path, FILE, mode & 0o7777, st.st_uid, st.st_gid, size, st.st_mtime, None, None, 0, 0, 0))
                elif is_dir(mode):
                    append((path, DIR, mode & 0o7777, st.st_uid, st.st_gid, 0, st.st_mtime, None, None, 0, 0, 0))
                    try:
                        below = sorted(listdir(real))
                    except OSError:
                        continue
                    if below:
                        stack.append((path + "/", real + "/", iter(below)))
                        break  # the subtree first; this directory's iterator resumes after it
                else:
                    link = None
                    if is_lnk(mode):
                        try:
                            link = readlink(real)
                        except OSError:
                            link = None
                    append(
                        (
                            path,
                            type_from_mode(mode),
                            imode(mode),
                            st.st_uid,
                            st.st_gid,
                            0,
                            st.st_mtime,
                            None,
                            link,
                            0,
                            0,
                            0,
                        )
                    )
            else:
                stack.pop()
    return rows, total
