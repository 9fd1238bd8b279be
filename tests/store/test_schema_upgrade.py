"""The build's tables joined the store's versioned schema (version 2, issue 14): a store
made by the version before, with or without the tables the builder used to create for
itself, opens, upgrades in place and keeps what it held."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from explorer.builder.cache import BuildCache
from explorer.errors import StoreError
from explorer.store import metadata
from explorer.store.store import Store

BUILD_TABLES = {"build_stat_cache", "build_tree_sums", "build_source_sets"}

# What build/cache.py created on its own before the tables moved (copied from it as it was).
OLD_BUILD_DDL = (
    "CREATE TABLE IF NOT EXISTS build_stat_cache(root TEXT PRIMARY KEY, format TEXT NOT NULL, data BLOB NOT NULL,"
    " updated REAL NOT NULL)",
    "CREATE TABLE IF NOT EXISTS build_tree_sums(snapshot TEXT PRIMARY KEY, checksum TEXT NOT NULL,"
    " created REAL NOT NULL)",
    "CREATE TABLE IF NOT EXISTS build_source_sets(checksum TEXT PRIMARY KEY, files BLOB NOT NULL,"
    " created REAL NOT NULL)",
)


def _tables(db: Path) -> set[str]:
    conn = sqlite3.connect(db)
    try:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    finally:
        conn.close()


def _version(db: Path) -> int:
    conn = sqlite3.connect(db)
    try:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])
    finally:
        conn.close()


def _version_1_store(root: Path, with_build_tables: bool) -> Path:
    """A store as the previous release left it: schema 1 (``metadata._SCHEMA_V1`` is frozen:
    a migration never changes once released), a volume recorded, and the build's tables
    only if a build ran there."""
    Store(root).close()  # the directories a store has
    db = root / "metadata.db"
    db.unlink()
    for suffix in ("-wal", "-shm"):
        (root / f"metadata.db{suffix}").unlink(missing_ok=True)
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        conn.execute("BEGIN")
        for statement in metadata._SCHEMA_V1.split(";"):
            if statement.strip():
                conn.execute(statement)
        conn.execute("INSERT INTO volumes(name, created) VALUES ('kept', 1.0)")
        if with_build_tables:
            for statement in OLD_BUILD_DDL:
                conn.execute(statement)
            conn.execute("INSERT INTO build_tree_sums(snapshot, checksum, created) VALUES ('snap', 'xxh3:1', 1.0)")
        conn.execute("PRAGMA user_version=1")
        conn.execute("COMMIT")
    finally:
        conn.close()
    (root / "volumes" / "kept" / "_data").mkdir(parents=True)
    return db


@pytest.mark.parametrize("with_build_tables", [False, True], ids=["never-built", "built-before"])
def test_a_version_1_store_upgrades_in_place(tmp_path: Path, with_build_tables: bool) -> None:
    root = tmp_path / "store"
    db = _version_1_store(root, with_build_tables)
    assert _version(db) == 1 and (_tables(db) >= BUILD_TABLES) == with_build_tables
    store = Store(root)
    try:
        assert store.meta.one("PRAGMA user_version") == (metadata.SCHEMA_VERSION,)
        assert metadata.SCHEMA_VERSION == 2
        assert {r[0] for r in store.meta.query("SELECT name FROM sqlite_master WHERE type='table'")} >= BUILD_TABLES
        assert store.meta.query("SELECT name FROM volumes") == [("kept",)]
        cache = BuildCache(store)
        assert cache.tree_sum("snap") == ("xxh3:1" if with_build_tables else None)
        cache.put_tree_sum("new", "xxh3:2")
        assert cache.tree_sum("new") == "xxh3:2"
    finally:
        store.close()
    assert _version(db) == 2
    Store(root).close()  # the upgraded store opens as it is


def test_a_new_store_and_a_rebuilt_one_hold_the_whole_schema(tmp_path: Path) -> None:
    """Every path to a database (a new store, a migration, a rebuild after damage) runs the
    same migrations, so none of them misses the build's tables."""
    Store(tmp_path / "new").close()
    fresh = tmp_path / "fresh.db"
    conn = sqlite3.connect(fresh, isolation_level=None)
    try:
        conn.execute("BEGIN")
        metadata.migrate_from(conn, 0)
        conn.execute("COMMIT")
    finally:
        conn.close()
    assert _tables(tmp_path / "new" / "metadata.db") == _tables(fresh)
    assert _tables(fresh) >= BUILD_TABLES and _version(fresh) == metadata.SCHEMA_VERSION


def test_a_store_from_a_newer_strata_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "store"
    Store(root).close()
    conn = sqlite3.connect(root / "metadata.db")
    conn.execute(f"PRAGMA user_version={metadata.SCHEMA_VERSION + 1}")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="written by a newer strata"):
        Store(root).meta.one("SELECT 1")
