"""Container records and their directories.

A container is an image id, a run configuration and a directory of its own:
``containers/<id>/diff`` (the writable layer: overlay's upperdir, or the vfs root's
changes), ``work`` beside it, ``run/`` for the runtime's private files (pid, exit code,
hosts) and the logs (``stdout.log``, ``stderr.log``: ``log_paths``). The directory
lives until the container is removed; stopping keeps it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import AlreadyExists, AmbiguousName, ContainerNotFound, InvalidName
from ..fsutil import guard_enospc, rmtree
from .marks import mark_owner, owned_name

if TYPE_CHECKING:
    from .store import Store

import re

NAME_RE = re.compile(r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$")

_LEFT = (
    "admiring",
    "bold",
    "brave",
    "busy",
    "calm",
    "clever",
    "eager",
    "elated",
    "fervent",
    "gallant",
    "happy",
    "jolly",
    "keen",
    "lucid",
    "modest",
    "nifty",
    "quirky",
    "serene",
    "sharp",
    "tender",
    "upbeat",
    "vibrant",
    "wizardly",
    "zealous",
)
_RIGHT = (
    "babbage",
    "curie",
    "darwin",
    "einstein",
    "euler",
    "feynman",
    "galileo",
    "hopper",
    "kepler",
    "lovelace",
    "newton",
    "noether",
    "pascal",
    "ritchie",
    "shannon",
    "thompson",
    "turing",
    "wozniak",
)

_COLS = "id, name, image, image_ref, config, driver, created, state, started, finished, exit_code, pid"


@dataclass
class ContainerRecord:
    id: str
    name: str
    image: str
    image_ref: str
    config: dict[str, Any]
    driver: str
    created: float
    state: str
    started: float | None
    finished: float | None
    exit_code: int | None
    pid: int | None
    volumes: list[tuple[str, str, bool]] = field(default_factory=list)  # (volume, target, readonly)

    @property
    def short_id(self) -> str:
        return self.id[:12]


USE_LOCK = "use.lock"
# A detached container's output, appended by its process, read by ``strata logs``.
STDOUT_LOG = "stdout.log"
STDERR_LOG = "stderr.log"


class ContainerStore:
    """Container records and directories.

    A container being created or started is *held* by the process doing it: a shared
    ``flock`` on ``containers/<id>/use.lock``, taken before its record exists and kept
    until that process has finished with it (it exited and is not to be removed on exit,
    the process removed it, or the process ended). A prune ``claim``s a container (the
    same lock, exclusive, without waiting) and passes over those it cannot get, so
    ``run --rm`` racing ``system prune`` neither loses its container between create and
    start nor leaves half a directory behind; a ``start`` that waited for a prune finds
    the container gone and says so."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.meta = store.meta
        self.dir = store.root / "containers"
        self._holds: dict[str, int] = {}
        self._holds_lock = threading.Lock()

    # --- in use ----------------------------------------------------------------------

    def hold(self, container_id: str) -> None:
        """Keep ``container_id`` from being pruned until ``release`` (see the class).
        Waits while a prune is removing it, then raises ``ContainerNotFound``."""
        with self._holds_lock:
            if container_id in self._holds:
                return
        try:
            fd = os.open(self.path(container_id) / USE_LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except FileNotFoundError:
            raise ContainerNotFound(container_id) from None
        except OSError:
            return  # a read-only or full store: no prune can delete anything there either
        fcntl.flock(fd, fcntl.LOCK_SH)
        if not self.path(container_id).is_dir():
            os.close(fd)
            raise ContainerNotFound(container_id)
        with self._holds_lock:
            if container_id in self._holds:
                os.close(fd)
            else:
                self._holds[container_id] = fd

    def release(self, container_id: str) -> None:
        with self._holds_lock:
            fd = self._holds.pop(container_id, None)
        if fd is not None:
            os.close(fd)

    def release_all(self) -> None:
        for container_id in list(self._holds):
            self.release(container_id)

    @contextlib.contextmanager
    def claim(self, container_id: str) -> Iterator[bool]:
        """For a prune: True with no process holding ``container_id`` (and none able to
        until the block ends), False at once when one does or the container is gone."""
        try:
            fd = os.open(self.path(container_id) / USE_LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except FileNotFoundError:
            yield False
            return
        except OSError:
            yield True  # nobody can hold it either (read-only or full store)
            return
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            os.close(fd)

    def path(self, container_id: str) -> Path:
        return self.dir / container_id

    def diff_dir(self, container_id: str) -> Path:
        return self.dir / container_id / "diff"

    def work_dir(self, container_id: str) -> Path:
        return self.dir / container_id / "work"

    def run_dir(self, container_id: str) -> Path:
        return self.dir / container_id / "run"

    def rootfs_dir(self, container_id: str) -> Path:
        """vfs only: the container's full private root."""
        return self.dir / container_id / "rootfs"

    def content_dir(self, rec: ContainerRecord) -> Path:
        """Where the container's own bytes are: the whole root for vfs (a copy of the
        image plus its changes), the diff for overlay. ``df`` measures it and a prune
        frees it."""
        return self.rootfs_dir(rec.id) if rec.driver == "vfs" else self.diff_dir(rec.id)

    def log_paths(self, container_id: str) -> tuple[Path, Path]:
        """Where a detached container's standard output and error go (``strata logs``)."""
        base = self.dir / container_id
        return base / STDOUT_LOG, base / STDERR_LOG

    def _from_row(self, row: tuple[Any, ...]) -> ContainerRecord:
        rec = ContainerRecord(
            row[0], row[1], row[2], row[3], json.loads(row[4]), row[5], row[6], row[7], row[8], row[9], row[10], row[11]
        )
        rec.volumes = [
            (r[0], r[1], bool(r[2]))
            for r in self.meta.query(
                "SELECT volume, target, readonly FROM container_volumes WHERE container=?", (rec.id,)
            )
        ]
        return rec

    def all(self) -> list[ContainerRecord]:
        rows = self.meta.query(f"SELECT {_COLS} FROM containers ORDER BY created DESC")
        return [self._from_row(r) for r in rows]

    def get(self, text: str) -> ContainerRecord:
        """By name, full id or unique id prefix, as docker resolves them."""
        name = text.lstrip("/")
        row = self.meta.one(f"SELECT {_COLS} FROM containers WHERE id=? OR name=?", (name, name))
        if row is not None:
            return self._from_row(row)
        if name and all(c in "0123456789abcdef" for c in name):
            rows = self.meta.query(f"SELECT {_COLS} FROM containers WHERE id LIKE ?", (name + "%",))
            if len(rows) == 1:
                return self._from_row(rows[0])
            if len(rows) > 1:
                raise AmbiguousName(text, [r[0] for r in rows])
        raise ContainerNotFound(text)

    def _free_name(self) -> str:
        for _ in range(100):
            pick = os.urandom(2)
            name = f"{_LEFT[pick[0] % len(_LEFT)]}_{_RIGHT[pick[1] % len(_RIGHT)]}"
            if self.meta.one("SELECT 1 FROM containers WHERE name=?", (name,)) is None:
                return name
        return f"strata_{os.urandom(4).hex()}"

    def create(
        self,
        image_id: str,
        image_ref: str,
        config: dict[str, Any],
        driver: str,
        name: str | None = None,
        volumes: list[tuple[str, str, bool]] | None = None,
    ) -> ContainerRecord:
        if name is not None:
            if not NAME_RE.match(name):
                raise InvalidName(f"invalid container name {name!r}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
            name = name.lstrip("/")
        container_id = os.urandom(32).hex()
        path = self.path(container_id)
        with guard_enospc(str(path)):
            path.mkdir(mode=0o700)
            mark_owner(path)
            for sub in ("diff", "work", "run"):
                (path / sub).mkdir(mode=0o755 if sub == "diff" else 0o700)
            (path / USE_LOCK).touch(mode=0o600)
        self.hold(container_id)
        try:
            with self.meta.transaction() as conn:
                chosen = name or self._free_name()
                if conn.execute("SELECT 1 FROM containers WHERE name=?", (chosen,)).fetchone():
                    raise AlreadyExists(
                        f'the container name "/{chosen}" is already in use; remove that container or pick another name'
                    )
                conn.execute(
                    f"INSERT INTO containers({_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                    (
                        container_id,
                        chosen,
                        image_id,
                        image_ref,
                        json.dumps(config),
                        driver,
                        time.time(),
                        "created",
                        None,
                        None,
                        None,
                        None,
                    ),
                )
                for volume, target, readonly in volumes or []:
                    conn.execute(
                        "INSERT INTO container_volumes(container, volume, target, readonly) VALUES (?,?,?,?)",
                        (container_id, volume, target, int(readonly)),
                    )
        except BaseException:
            self.release(container_id)
            rmtree(path)
            raise
        (path / "owner").unlink(missing_ok=True)
        return self.get(container_id)

    def set_state(self, container_id: str, **fields: Any) -> None:
        allowed = {"state", "started", "finished", "exit_code", "pid", "config"}
        assert set(fields) <= allowed
        if "config" in fields:
            fields["config"] = json.dumps(fields["config"])
        sets = ", ".join(f"{k}=?" for k in fields)
        with self.meta.transaction() as conn:
            conn.execute(f"UPDATE containers SET {sets} WHERE id=?", (*fields.values(), container_id))
        if fields.get("state") == "exited" and container_id in self._holds:
            # Done with it, unless it is to be removed on exit: then removing releases it.
            config = self.meta.one("SELECT config FROM containers WHERE id=?", (container_id,))
            if config is None or not json.loads(config[0]).get("AutoRemove"):
                self.release(container_id)

    def forget(self, container_id: str) -> None:
        """Drop the record (and its mounts) of a container whose directory is gone
        already: ``check --repair``'s answer to a record naming nothing."""
        with self.meta.transaction() as conn:
            conn.execute("DELETE FROM container_volumes WHERE container=?", (container_id,))
            conn.execute("DELETE FROM containers WHERE id=?", (container_id,))

    def remove(self, container_id: str) -> None:
        """Forget the record first, then the directory (through a rename, so a crash
        mid-delete leaves trash, not a half container)."""
        from ..fsutil import rmtree as remove_tree

        self.release(container_id)
        self.forget(container_id)
        path = self.path(container_id)
        trash = self.store.tmp / owned_name(f"trash-{container_id}")
        try:
            path.rename(trash)
        except FileNotFoundError:
            return
        remove_tree(str(trash))
