"""One Strata per test on a fresh store, run once per storage driver: every test that
takes ``app`` is part of the contract both drivers must meet."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from explorer.api import Strata
from tests.capabilities import require_userns

IMAGE = "test/busybox:1"


@pytest.fixture(params=["overlay", "vfs"])
def app(request: pytest.FixtureRequest, tmp_path: Path, busybox_rootfs_tar: Path) -> Iterator[Strata]:
    require_userns()
    strata = Strata(tmp_path / "store", storage_driver=request.param)
    strata.import_rootfs(str(busybox_rootfs_tar), IMAGE)
    yield strata
    for c in strata.containers():
        strata.rm(c.id, force=True)
    strata.close()
