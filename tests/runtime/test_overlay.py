"""Overlay mounts with many layers, by both ways of passing the layer list."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from explorer.runtime import call_in_userns, mount_overlay
from explorer.runtime.rootfs import PAGE_LIMIT
from tests.capabilities import require_userns


def _mount_and_list(lowers: list[str], upper: str, work: str, merged: str, legacy: bool) -> list[str]:
    mount_overlay(lowers, upper, work, merged, legacy=legacy, scratch=os.path.dirname(upper))
    with open(os.path.join(merged, "top")) as fh:
        top = fh.read()
    return [top, *sorted(os.listdir(merged))]


@pytest.mark.parametrize("legacy", [False, True], ids=["new-mount-api", "mount-option-string"])
def test_130_layers_with_long_paths(tmp_path: Path, legacy: bool) -> None:
    require_userns()
    parent = tmp_path / ("a-rather-long-directory-name,with:odd-characters-" * 2)
    lowers = []
    for i in range(130):
        layer = parent / f"layer-{i:03d}"
        layer.mkdir(parents=True)
        (layer / f"f{i:03d}").write_text("x")
        (layer / "top").write_text(str(i))
        lowers.append(str(layer))
    assert len(":".join(lowers)) > PAGE_LIMIT
    upper, work, merged = (tmp_path / n for n in ("upper", "work", "merged"))
    for d in (upper, work, merged):
        d.mkdir()
    listed = call_in_userns(_mount_and_list, lowers, str(upper), str(work), str(merged), legacy)
    assert listed[0] == "0"
    assert listed[1:] == sorted([f"f{i:03d}" for i in range(130)] + ["top"])
    assert os.listdir(upper) == []
    assert [p for p in os.listdir(tmp_path) if p.startswith(".l-")] == []  # short links cleaned up
