"""The store's SQLite metadata: schema, versioning and connections.

One database (``metadata.db``, WAL) holds every relation of the store as plain ids:
layer → parent layer, image → top layer, container → image, volume ↔ container, cache
key → layer. Schema changes go through ``PRAGMA user_version`` migrations. Errors from
the environment (disk full, locked, read-only) become ``StoreError`` subclasses; anything
else is a bug and propagates.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import StoreBusy, StoreDamaged, StoreError, StoreFull, StoreReadOnly
from ..fsutil import FREE_SPACE_HINT

SCHEMA_VERSION = 2
BUSY_TIMEOUT_S = 60.0

_SCHEMA_V1 = """
CREATE TABLE layers(
    id          TEXT PRIMARY KEY,              -- random directory id under layers/
    chain_id    TEXT NOT NULL UNIQUE,          -- OCI chain id: identity of (parent chain, content)
    diff_id     TEXT NOT NULL,                 -- sha256 of the uncompressed layer tar
    parent      TEXT REFERENCES layers(id),
    size        INTEGER NOT NULL,              -- uncompressed tar bytes
    content_size INTEGER NOT NULL DEFAULT 0,   -- bytes of regular files in the index
    entries     INTEGER NOT NULL DEFAULT 0,
    added       INTEGER NOT NULL DEFAULT 0,
    modified    INTEGER NOT NULL DEFAULT 0,
    deleted     INTEGER NOT NULL DEFAULT 0,
    created     REAL NOT NULL,
    created_by  TEXT NOT NULL DEFAULT ''       -- the instruction that made it
);
CREATE INDEX layers_parent ON layers(parent);
CREATE INDEX layers_diff ON layers(diff_id);

CREATE TABLE files(
    layer    TEXT NOT NULL,
    path     TEXT NOT NULL,
    parent   TEXT NOT NULL,
    type     TEXT NOT NULL,
    mode     INTEGER NOT NULL,
    uid      INTEGER NOT NULL,
    gid      INTEGER NOT NULL,
    size     INTEGER NOT NULL,
    mtime    REAL NOT NULL,
    digest   TEXT,
    link     TEXT,
    opaque   INTEGER NOT NULL DEFAULT 0,
    devmajor INTEGER NOT NULL DEFAULT 0,
    devminor INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY(layer, path)
) WITHOUT ROWID;
CREATE INDEX files_parent ON files(layer, parent);

CREATE TABLE images(
    id         TEXT PRIMARY KEY,               -- sha256 of the config bytes
    config     BLOB NOT NULL,                  -- the OCI image config, exact bytes
    top_layer  TEXT REFERENCES layers(id),     -- NULL for an image without layers
    parent     TEXT,                           -- the image this one was built/committed from
    created    REAL NOT NULL
);
CREATE INDEX images_top ON images(top_layer);

CREATE TABLE tags(
    name   TEXT PRIMARY KEY,                   -- docker.io/library/busybox:latest
    image  TEXT NOT NULL REFERENCES images(id)
);
CREATE INDEX tags_image ON tags(image);

-- compressed blobs as they came from / went to a registry or archive, per layer
CREATE TABLE blobs(
    layer      TEXT NOT NULL REFERENCES layers(id),
    digest     TEXT NOT NULL,
    media_type TEXT NOT NULL,
    size       INTEGER NOT NULL,
    source     TEXT NOT NULL DEFAULT '',
    PRIMARY KEY(layer, digest)
);

CREATE TABLE containers(
    id        TEXT PRIMARY KEY,
    name      TEXT NOT NULL UNIQUE,
    image     TEXT NOT NULL REFERENCES images(id),
    image_ref TEXT NOT NULL DEFAULT '',
    config    TEXT NOT NULL,                   -- JSON: cmd, env, user, workdir, mounts, …
    driver    TEXT NOT NULL,
    created   REAL NOT NULL,
    state     TEXT NOT NULL DEFAULT 'created', -- created|running|exited
    started   REAL,
    finished  REAL,
    exit_code INTEGER,
    pid       INTEGER
);
CREATE INDEX containers_image ON containers(image);

CREATE TABLE volumes(
    name      TEXT PRIMARY KEY,
    created   REAL NOT NULL,
    labels    TEXT NOT NULL DEFAULT '{}',
    anonymous INTEGER NOT NULL DEFAULT 0,
    options   TEXT NOT NULL DEFAULT '{}'
);

CREATE TABLE container_volumes(
    container TEXT NOT NULL REFERENCES containers(id),
    volume    TEXT NOT NULL REFERENCES volumes(name),
    target    TEXT NOT NULL,
    readonly  INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY(container, target)
);
CREATE INDEX container_volumes_volume ON container_volumes(volume);

CREATE TABLE build_cache(
    key        TEXT PRIMARY KEY,               -- cache key of a build step
    parent_key TEXT,
    layer      TEXT REFERENCES layers(id),     -- NULL for config-only steps
    config     BLOB NOT NULL,                  -- image config after the step
    instruction TEXT NOT NULL,
    detail     TEXT NOT NULL DEFAULT '{}',     -- JSON: what the key was made of (for miss reasons)
    created    REAL NOT NULL,
    last_used  REAL NOT NULL
);
CREATE INDEX build_cache_layer ON build_cache(layer);
CREATE INDEX build_cache_parent ON build_cache(parent_key);
"""

# The build's own caches, which the builder once created by itself beside this schema.
# IF NOT EXISTS because a store at version 1 may hold them already, made that way; they
# hold only what a build can compute again, so a store without them loses nothing.
_SCHEMA_V2 = """
CREATE TABLE IF NOT EXISTS build_stat_cache(
    root    TEXT PRIMARY KEY,    -- absolute path of a build context
    format  TEXT NOT NULL,       -- see build/checksum._format
    data    BLOB NOT NULL,       -- zlib(marshal({rel: ((dev, ino, size, mtime_ns, ctime_ns), xxh3)}))
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS build_tree_sums(
    snapshot TEXT PRIMARY KEY,   -- digest of the stat fields of a set of context files
    checksum TEXT NOT NULL,      -- their content checksum
    created  REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS build_source_sets(
    checksum TEXT PRIMARY KEY,   -- the sources checksum a COPY/ADD key used
    files    BLOB NOT NULL,      -- zstd of "path NUL fingerprint LF" lines
    created  REAL NOT NULL
);
"""

_MIGRATIONS: dict[int, str] = {1: _SCHEMA_V1, 2: _SCHEMA_V2}


def migrate_from(conn: sqlite3.Connection, version: int) -> None:
    """Bring a database at schema ``version`` (0: empty) to ``SCHEMA_VERSION``, one
    migration after the other, inside the caller's transaction."""
    for target in range(version + 1, SCHEMA_VERSION + 1):
        for statement in _MIGRATIONS[target].split(";"):
            if statement.strip():
                conn.execute(statement)
        conn.execute(f"PRAGMA user_version={target}")


TIGHT_BYTES = 1 << 20
"""Below this much free space the database is opened in place (see ``Metadata._open``)."""


def _end(conn: sqlite3.Connection) -> None:
    """Roll back what is still open; an error here must not hide the one being raised."""
    if conn.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")


def space_left(directory: Path) -> int:
    """Bytes an unprivileged writer may still allocate on ``directory``'s file system."""
    try:
        st = os.statvfs(directory)
    except OSError:
        return 1 << 62
    return st.f_bavail * st.f_frsize


def classify(err: sqlite3.Error, where: str) -> StoreError:
    """Map an environmental SQLite error to a store error a user can act on."""
    text = str(err).lower()
    if "disk i/o error" in text:
        # What SQLite says when it cannot make its shared-memory file on a full disk.
        if space_left(Path(where).parent) < TIGHT_BYTES:
            return StoreFull(f"no space left on device for the store at {where}; {FREE_SPACE_HINT}")
        return StoreError(f"cannot read or write the store's database at {where}: disk I/O error")
    if "locked" in text or "busy" in text:
        return StoreBusy(f"the store at {where} is busy (another strata is writing); try again")
    if "disk is full" in text or "database or disk is full" in text:
        return StoreFull(f"no space left on device for the store at {where}; {FREE_SPACE_HINT}")
    if "readonly" in text or "read-only" in text:
        return StoreReadOnly(
            f"the store's database at {where} is read-only; check the file system and the file's permissions"
        )
    damage = damage_of(text)
    if damage is not None:
        return StoreDamaged(where, damage)
    return StoreError(f"store database error at {where}: {err}")


def damage_of(text: str) -> str | None:
    """What SQLite's error text says is wrong with the file, in a user's words; None when
    the error is not about a damaged file."""
    text = text.lower()
    if "not a database" in text:
        return "its header is not SQLite's: overwritten or not a database at all"
    if "malformed" in text or "corrupt" in text:
        return "its pages do not fit together: truncated or overwritten"
    if "could not decode to utf-8" in text:
        return "a stored text is not valid UTF-8 (bytes changed at random)"
    return None


def _text_damage(err: UnicodeDecodeError, where: str) -> StoreDamaged:
    return StoreDamaged(where, f"a stored text is not valid UTF-8 (bytes changed at random): {err.reason}")


class Metadata:
    """Per-thread SQLite connections to one ``metadata.db``.

    SQLite connections must not cross threads; the GUI's workers each get their own.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        with self._guard():
            self._migrate(self.conn)

    @property
    def conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def _connect(self) -> sqlite3.Connection:
        if self.path.exists() and not os.access(self.path.parent, os.W_OK):
            # A read-only store (media, a remounted filesystem): read what is there.
            try:
                conn = sqlite3.connect(
                    f"file:{self.path}?immutable=1",
                    uri=True,
                    timeout=BUSY_TIMEOUT_S,
                    isolation_level=None,
                    check_same_thread=False,
                )
                conn.execute("PRAGMA query_only=ON")
            except sqlite3.Error as e:
                raise classify(e, str(self.path)) from e
            return conn
        tight = space_left(self.path.parent) < TIGHT_BYTES
        try:
            return self._open(tight)
        except sqlite3.Error as e:
            if tight or space_left(self.path.parent) >= TIGHT_BYTES:
                raise classify(e, str(self.path)) from e
        try:
            return self._open(True)
        except sqlite3.Error as e:
            raise classify(e, str(self.path)) from e

    def _open(self, tight: bool) -> sqlite3.Connection:
        """A connection in WAL mode; or, on a disk with no room left, one that changes the
        file in place.

        A full disk must not keep anyone from freeing space, and in WAL mode even a read
        needs new blocks (the ``-shm`` and ``-wal`` files). Deleting rows needs none: it
        frees pages inside the file. So on a nearly full disk the database is opened
        with an exclusive lock, which keeps SQLite's shared memory on the heap, and a
        rollback journal kept in memory: prunes, ``rmi`` and ``rm`` delete in place and
        the disk gets its space back. This was chosen over a reserve file the store
        could release because it needs no space set aside, also works on a disk that
        filled before a reserve could be made, and cannot be used up by the write that
        filled the disk. The price, paid only while the disk is full: other strata
        processes wait for this one, and a crash in the middle of a transaction can
        damage the file (``system check --repair`` rebuilds it). The next open with room
        to spare returns the file to WAL."""
        conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
        try:
            conn.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
            if tight:
                conn.execute("PRAGMA locking_mode=EXCLUSIVE")
                conn.execute("PRAGMA journal_mode=MEMORY")
            else:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
        except BaseException:
            conn.close()
            raise
        return conn

    def _migrate(self, conn: sqlite3.Connection) -> None:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"the store at {self.path.parent} was written by a newer strata (schema {version}); upgrade strata"
            )
        if version == SCHEMA_VERSION:
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            migrate_from(conn, conn.execute("PRAGMA user_version").fetchone()[0])
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as e:
            raise classify(e, str(self.path)) from e
        except UnicodeDecodeError as e:
            raise _text_damage(e, str(self.path)) from e

    def damage(self, texts: bool = True) -> str | None:
        """SQLite's own check of every page (``quick_check``) and, with ``texts``, of every
        stored text: what is damaged, or None. Reads the whole file, so ``system check``
        asks and ordinary commands do not."""
        try:
            rows = self.conn.execute("PRAGMA quick_check(5)").fetchall()
        except sqlite3.Error as e:
            return damage_of(str(e)) or str(e)
        except UnicodeDecodeError as e:
            return _text_damage(e, str(self.path)).what
        found = [str(r[0]) for r in rows if r and r[0] != "ok"]
        if found:
            return "; ".join(found)[:300]
        return self._text_damage() if texts else None

    def _text_damage(self) -> str | None:
        """Which table holds text that is not UTF-8: SQLite stores any bytes it is given as
        text and checks none of them, so ``quick_check`` passes what every read then fails on.
        Blobs are not texts (a file name that is not UTF-8 is kept as one: see index.stored)."""
        conn = self.conn
        conn.text_factory = bytes
        try:
            tables = [r[0].decode() for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
            for table in tables:
                texts = [r[1].decode() for r in conn.execute(f'PRAGMA table_info("{table}")') if r[2] != b"BLOB"]
                if not texts:
                    continue
                columns = ", ".join(f"""CASE WHEN typeof("{c}")='text' THEN "{c}" END""" for c in texts)
                for row in conn.execute(f'SELECT {columns} FROM "{table}"'):
                    for value in row:
                        if isinstance(value, bytes):
                            try:
                                value.decode("utf-8")
                            except UnicodeDecodeError:
                                return f"a text in table {table} is not valid UTF-8 (bytes changed at random)"
        except sqlite3.Error as e:
            return damage_of(str(e)) or str(e)
        finally:
            conn.text_factory = str
        return None

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic write: BEGIN IMMEDIATE takes the write lock up front, so two
        writers queue on the busy timeout instead of failing half-way.

        SQLite ends the transaction by itself on some errors (a full disk, an I/O
        error): the rollback then happens only if one is still open, so the error the
        caller sees is the one that happened, not "no transaction is active". A COMMIT
        that fails (a full disk at the last page, a deferred constraint) is rolled back
        too, so the thread's connection never stays inside a transaction."""
        conn = self.conn
        if conn.in_transaction:
            yield conn
            return
        with self._guard():
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                _end(conn)
                raise

    def query(self, sql: str, params: tuple[object, ...] | list[object] = ()) -> list[tuple[Any, ...]]:
        with self._guard():
            cur = self.conn.execute(sql, params)
            return cur.fetchall()

    def one(self, sql: str, params: tuple[object, ...] | list[object] = ()) -> tuple[Any, ...] | None:
        with self._guard():
            row: tuple[Any, ...] | None = self.conn.execute(sql, params).fetchone()
            return row

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
            self._all.clear()
        self._local = threading.local()
