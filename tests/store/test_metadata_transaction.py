"""``Metadata.transaction`` under the errors SQLite ends a transaction for by itself
(issue 14): the caller sees the error that happened, the thread's connection is never
left inside a transaction, and a store that cannot be written is not called full."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from explorer.errors import StoreError, StoreFull, StoreReadOnly
from explorer.store.metadata import Metadata, classify


def _meta(tmp_path: Path) -> Metadata:
    meta = Metadata(tmp_path / "metadata.db")
    meta.conn.execute("CREATE TABLE scratch(x BLOB)")
    return meta


def test_a_full_database_is_a_full_store_not_a_failed_rollback(tmp_path: Path) -> None:
    meta = _meta(tmp_path)
    pages = meta.conn.execute("PRAGMA page_count").fetchone()[0]
    meta.conn.execute(f"PRAGMA max_page_count={pages + 2}")  # SQLITE_FULL after two pages
    with pytest.raises(StoreFull) as caught, meta.transaction() as conn:
        for _ in range(50):
            conn.execute("INSERT INTO scratch VALUES (?)", (b"x" * 4000,))
    assert "no space left" in str(caught.value)
    assert not meta.conn.in_transaction
    meta.conn.execute(f"PRAGMA max_page_count={1 << 30}")
    with meta.transaction() as conn:  # the connection works on
        conn.execute("INSERT INTO scratch VALUES (x'00')")
    assert meta.one("SELECT count(*) FROM scratch") == (1,)
    meta.close()


def test_a_failed_commit_leaves_no_transaction_open(tmp_path: Path) -> None:
    meta = _meta(tmp_path)
    conn = meta.conn
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("CREATE TABLE parent(id INTEGER PRIMARY KEY)")
    conn.execute("CREATE TABLE child(p INTEGER REFERENCES parent(id) DEFERRABLE INITIALLY DEFERRED)")
    with pytest.raises(StoreError), meta.transaction() as c:
        c.execute("INSERT INTO child VALUES (7)")  # fails only at COMMIT
    assert not conn.in_transaction
    with meta.transaction() as c:
        c.execute("INSERT INTO parent VALUES (7)")
        c.execute("INSERT INTO child VALUES (7)")
    assert meta.one("SELECT count(*) FROM child") == (1,)
    meta.close()


def test_an_error_in_the_body_is_the_error_raised(tmp_path: Path) -> None:
    meta = _meta(tmp_path)
    with pytest.raises(ValueError, match="mine"), meta.transaction() as conn:
        conn.execute("INSERT INTO scratch VALUES (x'01')")
        raise ValueError("mine")
    assert meta.one("SELECT count(*) FROM scratch") == (0,)
    assert not meta.conn.in_transaction
    meta.close()


def test_a_read_only_database_is_read_only_not_full(tmp_path: Path) -> None:
    err = classify(sqlite3.OperationalError("attempt to write a readonly database"), str(tmp_path / "m.db"))
    assert isinstance(err, StoreReadOnly) and not isinstance(err, StoreFull)
    assert "read-only" in str(err) and "prune" not in str(err)


def test_writing_a_read_only_store_says_read_only(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root writes through file modes; the unprivileged pass runs this")
    meta = _meta(tmp_path)
    meta.close()
    os.chmod(tmp_path / "metadata.db", 0o444)
    try:
        again = Metadata(tmp_path / "metadata.db")
        with pytest.raises(StoreReadOnly), again.transaction() as conn:
            conn.execute("INSERT INTO scratch VALUES (x'02')")
        again.close()
    finally:
        os.chmod(tmp_path / "metadata.db", 0o644)
