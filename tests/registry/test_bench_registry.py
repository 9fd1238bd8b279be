"""Registry benchmark (issue: pull and push). Run with ``--bench``; STRATA_BENCH_SMALL=1
shrinks the image for a smoke run. The reference is ``skopeo copy`` of the same image
from the same loopback registry into a local directory, measured in the same run,
because this machine is shared and absolute times drift."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from explorer.api import Strata
from explorer.registry.pull import pull
from tests.bench.archives import make_docker_archive
from tests.capabilities import require_tool
from tests.fixtures.services import Registry

pytestmark = [pytest.mark.bench, pytest.mark.registry]
SMALL = os.environ.get("STRATA_BENCH_SMALL") == "1"


def best_of(n: int, fn: Callable[[], None]) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def test_pull_500mb_within_1_5x_of_skopeo_copy(tmp_path: Path, registry: Registry) -> None:
    skopeo = require_tool("skopeo")
    files = 200 if SMALL else 2_000
    archive = make_docker_archive(tmp_path / "big.tar", 4, files // 4, 256 * 1024)
    name = f"{registry.address}/bench/big:1"
    subprocess.run(
        [skopeo, "copy", "--quiet", "--dest-tls-verify=false", f"docker-archive:{archive}", f"docker://{name}"],
        check=True,
        stdin=subprocess.DEVNULL,
    )
    archive.unlink()
    target = tmp_path / "skopeo-dir"

    def skopeo_copy() -> None:
        shutil.rmtree(target, ignore_errors=True)
        subprocess.run(
            [skopeo, "copy", "--quiet", "--src-tls-verify=false", f"docker://{name}", f"dir:{target}"],
            check=True,
            stdin=subprocess.DEVNULL,
        )
        os.sync()

    counter = [0]

    def strata_pull() -> None:
        counter[0] += 1
        root = tmp_path / f"store{counter[0]}"
        app = Strata(root)
        try:
            assert pull(app.store, name).downloaded == 4
        finally:
            app.close()
        os.sync()

    ref = best_of(2, skopeo_copy)
    ours = best_of(2, strata_pull)
    for i in range(1, counter[0] + 1):
        shutil.rmtree(tmp_path / f"store{i}")
    size = sum(p.stat().st_size for p in target.iterdir())
    print(f"\npull {size / 1e6:.0f} MB: strata {ours:.2f}s, skopeo copy {ref:.2f}s, ratio {ours / ref:.2f}")
    assert ours < 1.5 * ref
