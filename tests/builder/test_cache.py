"""Cache keys and the reasons a step missed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from explorer.builder.cache import BuildCache, CacheEntry, base_key, step_key
from explorer.store.store import Store


@pytest.fixture
def cache(tmp_path: Path) -> Iterator[BuildCache]:
    store = Store(tmp_path / "store")
    yield BuildCache(store)
    store.close()


def detail(instruction: str, **extra: Any) -> dict[str, Any]:
    return {"instruction": instruction, "expanded": instruction, "args": {}, "env": [], "sources": None, **extra}


def test_every_part_of_a_key_matters() -> None:
    base = step_key("p", "RUN x", {"A": "1"}, ["E=1"], "s")
    assert step_key("p", "RUN x", {"A": "1"}, ["E=1"], "s") == base
    for other in (
        step_key("q", "RUN x", {"A": "1"}, ["E=1"], "s"),
        step_key("p", "RUN y", {"A": "1"}, ["E=1"], "s"),
        step_key("p", "RUN x", {"A": "2"}, ["E=1"], "s"),
        step_key("p", "RUN x", {"A": "1"}, ["E=2"], "s"),
        step_key("p", "RUN x", {"A": "1"}, ["E=1"], "t"),
        step_key("p", "RUN x", {"A": "1"}, ["E=1"], None),
    ):
        assert other != base
    assert base_key("sha256:a") != base_key("sha256:b")


def test_reasons(cache: BuildCache) -> None:
    parent = base_key("image")
    assert cache.explain(parent, False, detail("COPY a /"), {}) == "first build of this step"
    assert cache.explain(parent, True, detail("COPY a /"), {}).startswith("parent changed")
    cache.save_sources("sum1", {"a": "1", "b": "2", "gone": "3"})
    cache.put(CacheEntry("k1", parent, None, b"{}", "COPY a /", detail("COPY a /", sources="sum1", args={"V": "1"})))
    assert cache.explain(parent, False, detail("COPY b /"), {}) == "instruction changed (last built here: COPY a /)"
    assert cache.explain(parent, False, detail("COPY a /", sources="sum1", args={"V": "2"}), {}) == "ARG V changed"
    files = {"a": "1", "b": "changed", "new": "4"}
    reason = cache.explain(parent, False, detail("COPY a /", sources="sum2", args={"V": "1"}), files)
    assert reason == "files changed: b, new (new), gone (removed)"
    many = {f"f{i}": "x" for i in range(9)}
    reason = cache.explain(parent, False, detail("COPY a /", sources="sum3", args={"V": "1"}), many)
    assert reason.endswith("and 7 more")  # 9 new, 3 removed, 5 shown
    # The same instruction elsewhere in the cache: what changed is below it.
    assert cache.explain(base_key("other image"), False, detail("COPY a /"), {}).startswith("parent changed")


def test_source_sets_and_tree_sums_round_trip(cache: BuildCache) -> None:
    files = {f"dir/{i}.txt": f"{i:x}" for i in range(1000)}
    cache.save_sources("sum", files)
    cache.save_sources("sum", {"ignored": "second save of the same checksum"})
    assert cache.load_sources("sum") == files
    assert cache.load_sources("other") is None
    assert cache.tree_sum("snap") is None
    cache.put_tree_sum("snap", "xxh3:1")
    assert cache.tree_sum("snap") == "xxh3:1"


def test_the_build_tables_are_the_stores_and_survive_reopening(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    BuildCache(store).put_tree_sum("snap", "xxh3:1")
    store.close()
    again = Store(tmp_path / "store")
    names = {r[0] for r in again.meta.query("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"build_stat_cache", "build_source_sets", "build_tree_sums", "build_cache"} <= names
    assert BuildCache(again).tree_sum("snap") == "xxh3:1"
    again.close()


def test_touch_and_entries(cache: BuildCache) -> None:
    cache.put(CacheEntry("k", "p", None, b"{}", "ENV A=1", detail("ENV A=1")))
    before = cache.get("k")
    assert before is not None
    cache.touch(["k"])
    after = cache.get("k")
    assert after is not None and after.last_used >= before.last_used
    assert [e.key for e in cache.entries()] == ["k"]
    assert cache.siblings("p")[0].instruction == "ENV A=1"
