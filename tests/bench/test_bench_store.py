"""Store benchmarks (issue: layer store). Run with `--bench`; sizes shrink with
STRATA_BENCH_SMALL=1 for a smoke run. Ratios are against physical references measured
in the same run, because this machine is shared and absolute times drift."""

from __future__ import annotations

import os
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from explorer.api import Strata
from tests.bench.archives import make_docker_archive

pytestmark = pytest.mark.bench
SMALL = os.environ.get("STRATA_BENCH_SMALL") == "1"


def best_of(n: int, fn) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def test_listing_100k_files_in_10_layers_from_the_index(tmp_path: Path) -> None:
    files = 1_000 if SMALL else 10_000
    archive = make_docker_archive(tmp_path / "many.tar", 10, files, 16)
    app = Strata(tmp_path / "store")
    t0 = time.perf_counter()
    app.load(str(archive))
    load_s = time.perf_counter() - t0
    app.close()

    app = Strata(tmp_path / "store")

    def both() -> None:
        view = app.image_view("bench/many:1")
        root = view.list_dir("/")
        everything = view.walk()
        assert len(root) == 10
        assert len(everything) >= files * 10

    took = best_of(3, both)
    print(f"\nload of {files * 10} files in 10 layers: {load_s:.2f}s; root listing + recursive listing: {took:.3f}s")
    assert took < 1.0


def test_load_500mb_docker_archive_within_2x_of_tar_x(tmp_path: Path) -> None:
    files, size = (200, 256 * 1024) if SMALL else (2_000, 256 * 1024)
    archive = make_docker_archive(tmp_path / "big.tar", 4, files // 4, size)
    total = archive.stat().st_size
    # reference: tar -x of the same layer data (outer and inner tars) into a fresh dir
    ref_dir = tmp_path / "ref"

    with tarfile.open(archive) as t:
        layers = [m.name for m in t.getmembers() if m.name.endswith("layer.tar")]

    def tar_x() -> None:
        """The same data through GNU tar: each layer streamed out of the archive into its own
        directory (what a loader has to do), then synced like the store syncs."""
        subprocess.run(["rm", "-rf", str(ref_dir)], check=True)
        ref_dir.mkdir()
        for i, name in enumerate(layers):
            dest = ref_dir / f"x{i}"
            dest.mkdir()
            subprocess.run(f"tar -xOf {archive} {name} | tar -xf - -C {dest}", shell=True, check=True)
        os.sync()

    counter = [0]

    def strata_load() -> None:
        counter[0] += 1
        app = Strata(tmp_path / f"s{counter[0]}")
        app.load(str(archive))
        app.close()
        os.sync()

    ref = best_of(2, tar_x)
    ours = best_of(2, strata_load)
    print(f"\nload {total / 1e6:.0f} MB: strata {ours:.2f}s, tar -x {ref:.2f}s, ratio {ours / ref:.2f}")
    assert ours < 2 * ref
