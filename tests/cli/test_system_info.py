"""`strata system info` / `strata info`: docker info's shape, with what rootless needs to know."""

from __future__ import annotations

import json
from pathlib import Path

from tests.capabilities import real_root, require_userns
from tests.fixtures import run_strata


def test_info_names_driver_mapping_and_store(strata_root: Path) -> None:
    require_userns()
    text = run_strata("system", "info", check=True).stdout
    assert f" Strata Root Dir: {strata_root}" in text.splitlines()
    assert any(line.startswith(" Storage Driver: ") for line in text.splitlines())
    info = json.loads(run_strata("info", "--format", "json", check=True).stdout)
    assert info["root"] == str(strata_root)
    assert info["driver"] in ("overlay", "vfs")
    assert info["filesystem"] not in ("", "unknown")
    if real_root():
        assert (info["rootless"], info["id_mapping"], info["userxattr"]) == (False, "root", False)
        assert info["uid_map"] == [[0, 0, 4294967295]]
        assert "  root" in text.splitlines()
    else:
        assert (info["rootless"], info["id_mapping"]) == (True, "subids")
        assert info["userxattr"] == (info["driver"] == "overlay")
        assert [r[0] for r in info["uid_map"]] == [0, 1] and info["uid_map"][1][2] == 65536
        assert "  rootless: id mapping subids" in text.splitlines()
    assert info["advice"] is None
    if info["driver"] == "overlay":
        assert info["warnings"] == []
    assert (info["containers"], info["images"], info["volumes"]) == (0, 0, 0)
