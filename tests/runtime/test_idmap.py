"""Which ids a container gets: the caller as 0, plus its subordinate ranges."""

from __future__ import annotations

from pathlib import Path

from explorer.runtime.idmap import IdMap, subordinate_ranges


def test_subordinate_ranges_by_name_or_uid(tmp_path: Path) -> None:
    subuid = tmp_path / "subuid"
    subuid.write_text("alice:100000:65536\nbob:200000:1000\n1001:300000:10\nbad:line\nalice:500000:5\n")
    assert subordinate_ranges(str(subuid), "alice", 1000) == [(100000, 65536), (500000, 5)]
    assert subordinate_ranges(str(subuid), "carol", 1001) == [(300000, 10)]
    assert subordinate_ranges(str(tmp_path / "absent"), "alice", 1000) == []


def test_idmap_lookup() -> None:
    m = IdMap(((0, 1000, 1), (1, 100000, 65536)))
    assert m.contains(0) and m.contains(65536) and not m.contains(65537)
    assert m.to_host(0) == 1000 and m.to_host(1000) == 100999 and m.to_host(70000) is None
    assert m.to_inside(1000) == 0 and m.to_inside(100999) == 1000 and m.to_inside(5) == 65534  # nobody
    assert m.text() == "0 1000 1\n1 100000 65536\n"
