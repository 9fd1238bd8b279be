"""The build context: what a build may read, and checksums that ignore what Docker ignores."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from explorer.builder import checksum as checksum_module
from explorer.builder.checksum import StatCache, checksum, context_records, fingerprints, stat_snapshot
from explorer.builder.context import BuildContext, match_regex
from explorer.builder.dockerignore import IgnoreMatcher, load_dockerignore
from explorer.errors import DockerfileError
from explorer.store.store import Store


def make_tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def old(path: Path) -> None:
    """Give a file an old mtime (its ctime still becomes "now": see ``calm``)."""
    stamp = time.time() - 60
    os.utime(path, (stamp, stamp))


@pytest.fixture(autouse=True)
def calm(monkeypatch: pytest.MonkeyPatch) -> None:
    """Trust files changed right before a checksum starts; the real window is 0.2 s."""
    monkeypatch.setattr(checksum_module, "RACY_NS", 0)


@pytest.fixture
def ctx_dir(tmp_path: Path) -> Path:
    return make_tree(
        tmp_path / "ctx",
        {
            "a.txt": "a",
            "b.txt": "b",
            "sub/c.txt": "c",
            "sub/deep/d.txt": "d",
            "skip/x.log": "x",
            "skip/keep.txt": "k",
            "Dockerfile": "FROM scratch\n",
        },
    )


def test_walk_lists_everything_in_path_order(ctx_dir: Path) -> None:
    ctx = BuildContext(ctx_dir)
    rels = list(ctx.entries())
    assert rels == sorted(rels)
    assert {"a.txt", "sub", "sub/deep", "sub/deep/d.txt", "Dockerfile"} <= set(rels)
    assert [e.rel for e in ctx.under("sub")] == ["sub/c.txt", "sub/deep", "sub/deep/d.txt"]


def test_dockerignore_hides_files_and_exceptions_bring_them_back(ctx_dir: Path) -> None:
    (ctx_dir / ".dockerignore").write_text("skip\n!skip/keep.txt\n*.txt\n!a.txt\n")
    ctx = BuildContext(ctx_dir, load_dockerignore(ctx_dir))
    rels = set(ctx.entries())
    assert "skip/x.log" not in rels and "b.txt" not in rels
    assert "sub/c.txt" in rels  # "*" never crosses "/": *.txt is top-level only
    assert "skip/keep.txt" in rels and "a.txt" in rels
    with pytest.raises(DockerfileError, match=r"excluded by \.dockerignore: b\.txt"):
        ctx.sources("b.txt", 3)


def test_ignored_file_beside_custom_dockerfile_wins(ctx_dir: Path) -> None:
    (ctx_dir / ".dockerignore").write_text("a.txt\n")
    (ctx_dir / "app.Dockerfile").write_text("FROM scratch\n")
    (ctx_dir / "app.Dockerfile.dockerignore").write_text("b.txt\n")
    ctx = BuildContext(ctx_dir, load_dockerignore(ctx_dir, ctx_dir / "app.Dockerfile"))
    assert "a.txt" in ctx.entries() and "b.txt" not in ctx.entries()


def test_wildcards_follow_go_filepath_match(ctx_dir: Path) -> None:
    ctx = BuildContext(ctx_dir)
    assert [m.written for m in ctx.sources("*.txt", 1)] == ["a.txt", "b.txt"]
    assert [m.written for m in ctx.sources("sub/*/d.txt", 1)] == ["sub/deep/d.txt"]
    assert [m.written for m in ctx.sources("[ab].txt", 1)] == ["a.txt", "b.txt"]
    assert match_regex("*").fullmatch("a/b") is None
    assert ctx.sources("*.none", 4) == []  # BuildKit's AllowEmptyWildcard: nothing, no error
    [deep] = ctx.sources("sub/*/d.txt", 1)
    assert deep.pattern_base == "sub" and ctx.sources("a.txt", 1)[0].pattern_base is None


def test_sources_cannot_leave_the_context(tmp_path: Path, ctx_dir: Path) -> None:
    """The context is a root, as in BuildKit: ``..`` stops at it and absolute symlink
    targets are taken from it, so nothing outside is ever named; what that leaves
    missing is "not found"."""
    (tmp_path / "outside.txt").write_text("secret")
    os.symlink("../outside.txt", ctx_dir / "up")
    os.symlink(str(tmp_path / "outside.txt"), ctx_dir / "abs")
    os.symlink("..", ctx_dir / "parent")
    os.symlink("sub/c.txt", ctx_dir / "inside")
    os.symlink("/sub/c.txt", ctx_dir / "rooted")
    os.symlink("../../a.txt", ctx_dir / "sub" / "climber")
    ctx = BuildContext(ctx_dir)
    for src in ("../outside.txt", "up", "abs", "parent/outside.txt"):
        with pytest.raises(DockerfileError) as err:
            ctx.sources(src, 7)
        assert str(err.value).startswith("Dockerfile:7: COPY failed: file not found in build context")
    assert [m.real for m in ctx.sources("rooted", 1)] == ["sub/c.txt"]
    assert [m.real for m in ctx.sources("sub/climber", 1)] == ["a.txt"]
    assert [m.real for m in ctx.sources("../../b.txt", 1)] == ["b.txt"]
    [match] = ctx.sources("inside", 2)
    assert match.name == "inside" and match.real == "sub/c.txt" and not match.is_dir
    [root] = ctx.sources(".", 2)
    assert root.is_dir and root.real == ""


def test_checksum_ignores_mtime_but_not_content_or_mode(tmp_path: Path, ctx_dir: Path) -> None:
    store = Store(tmp_path / "store")
    for path in ctx_dir.rglob("*"):
        old(path)

    def sum_now() -> tuple[str, StatCache]:
        ctx = BuildContext(ctx_dir)
        cache = StatCache(store.meta, ctx.root)
        lines = sorted(context_records(ctx, cache, ctx.under(""), {}))
        cache.save(ctx.entries().keys())
        return checksum(lines), cache

    first, cache = sum_now()
    assert cache.hashed == 7  # every file, once
    again, cache = sum_now()
    assert again == first and cache.hashed == 0  # the stat cache vouched for everything
    stamp = time.time() - 30
    os.utime(ctx_dir / "a.txt", (stamp, stamp))
    touched, cache = sum_now()
    assert touched == first and cache.hashed == 1
    (ctx_dir / "b.txt").write_text("B")
    old(ctx_dir / "b.txt")
    edited, _ = sum_now()
    assert edited != first
    os.chmod(ctx_dir / "a.txt", 0o600)
    assert sum_now()[0] != edited
    store.close()


def test_stat_snapshot_detects_any_stat_change(ctx_dir: Path) -> None:
    ctx = BuildContext(ctx_dir)
    entries = ctx.under("")
    first, racy = stat_snapshot(ctx.root, entries, time.time_ns() - 10**9)
    assert racy  # changed after the (pretended) start
    for path in ctx_dir.rglob("*"):
        old(path)
    ctx = BuildContext(ctx_dir)
    calm, racy = stat_snapshot(ctx.root, ctx.under(""), time.time_ns())
    assert not racy and calm != first
    os.utime(ctx_dir / "a.txt", (1, 1))
    ctx = BuildContext(ctx_dir)
    assert stat_snapshot(ctx.root, ctx.under(""), time.time_ns())[0] != calm


def test_fingerprints_name_changed_paths() -> None:
    before = fingerprints(["a\0file\0644\0000\0001\0\0x", "b\0file\0644\0000\0001\0\0y"])
    after = fingerprints(["a\0file\0644\0000\0001\0\0x", "b\0file\0644\0000\0001\0\0z"])
    assert before["a"] == after["a"] and before["b"] != after["b"]


def test_empty_matcher_ignores_nothing(ctx_dir: Path) -> None:
    ctx = BuildContext(ctx_dir, IgnoreMatcher())
    assert "skip/x.log" in ctx.entries()


def test_many_files_are_hashed_in_order_with_reads_announced_ahead(tmp_path: Path) -> None:
    import xxhash

    files = {f"d{i % 4}/f{i:03d}": f"content {i}" * (i % 7) for i in range(120)}
    root = make_tree(tmp_path / "many", files)
    store = Store(tmp_path / "store")
    ctx = BuildContext(root)
    digests: dict[str, str] = {}
    fds_before = len(os.listdir("/proc/self/fd"))
    context_records(ctx, StatCache(store.meta, ctx.root), ctx.under(""), digests)
    assert digests == {rel: xxhash.xxh3_128_hexdigest(text.encode()) for rel, text in files.items()}
    (root / "d1" / "f061").unlink()  # gone between the walk and the read: an error, and no fd left open
    ctx = BuildContext(root)
    entries = ctx.under("")
    (root / "d2" / "f062").unlink()
    with pytest.raises(FileNotFoundError):
        context_records(ctx, StatCache(store.meta, ctx.root), entries, {})
    assert len(os.listdir("/proc/self/fd")) == fds_before
    store.close()


def test_walking_without_ignore_rules_sees_what_lstat_sees(ctx_dir: Path) -> None:
    os.symlink("a.txt", ctx_dir / "link")
    ctx = BuildContext(ctx_dir)
    for entry in ctx.under(""):
        st = os.lstat(ctx_dir / entry.rel)
        assert (entry.mode, entry.size, entry.mtime_ns, entry.ino, entry.nlink) == (
            st.st_mode,
            st.st_size,
            st.st_mtime_ns,
            st.st_ino,
            st.st_nlink,
        )
    assert ctx.lookup("link") is not None and ctx.lookup("link").link == "a.txt"  # type: ignore[union-attr]
