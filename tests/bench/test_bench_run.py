"""Container start-up benchmarks (issue: rootless containers). Run with `--bench`.

`strata run --rm IMAGE true` is timed end to end as a user runs it (a new process
each time) against `docker run --rm IMAGE true` in the same run; creating a container
must not depend on the image's size with overlay."""

from __future__ import annotations

import io
import os
import statistics
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from explorer.api import Strata
from explorer.api.containers import RunOptions
from tests.capabilities import require_docker, require_userns
from tests.fixtures import REPO_ROOT

pytestmark = pytest.mark.bench
SMALL = os.environ.get("STRATA_BENCH_SMALL") == "1"


def timed(cmd: list[str], n: int, env: dict[str, str] | None = None) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=env)
        out.append(time.perf_counter() - t0)
    return out


def strata_command() -> list[str]:
    script = Path(sys.executable).with_name("strata")
    return [str(script)] if script.exists() else [sys.executable, "-m", "explorer"]


def test_run_rm_true_vs_docker(tmp_path: Path, busybox_rootfs_tar: Path, docker_busybox: str) -> None:
    require_userns()
    require_docker()
    root = tmp_path / "store"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    base = [*strata_command(), "--root", str(root)]
    subprocess.run(
        [*base, "import", str(busybox_rootfs_tar), "bench/bb:1"], check=True, env=env, stdout=subprocess.DEVNULL
    )
    n = 5 if SMALL else 15
    timed([*base, "run", "--rm", "bench/bb:1", "true"], 2, env)  # warm caches
    ours = statistics.median(timed([*base, "run", "--rm", "bench/bb:1", "true"], n, env))
    theirs = statistics.median(timed(["docker", "run", "--rm", "--network", "none", docker_busybox, "true"], n))
    print(f"\nrun --rm true: strata {ours * 1000:.0f} ms, docker {theirs * 1000:.0f} ms, ratio {ours / theirs:.2f}")
    assert ours < 0.5 * theirs


def _image_with_payload(app: Strata, base_tar: Path, name: str, size: int) -> None:
    buf = io.BytesIO()
    with tarfile.open(base_tar) as src, tarfile.open(fileobj=buf, mode="w") as dst:
        for member in src.getmembers():
            dst.addfile(member, src.extractfile(member) if member.isfile() else None)
        chunk = 64 << 20
        for i in range(max(1, size // chunk)):
            info = tarfile.TarInfo(f"payload/blob{i}")
            info.size = min(chunk, size)
            dst.addfile(info, io.BytesIO(os.urandom(1 << 20) * (info.size >> 20) or b"x" * info.size))
    buf.seek(0)
    from explorer.store import archive

    archive.import_rootfs(app.store, buf, name)


def test_create_is_constant_in_image_size(tmp_path: Path, busybox_rootfs_tar: Path) -> None:
    require_userns()
    app = Strata(tmp_path / "store", storage_driver="overlay")
    big = (128 << 20) if SMALL else (1 << 30)
    _image_with_payload(app, busybox_rootfs_tar, "bench/small:1", 1 << 20)
    _image_with_payload(app, busybox_rootfs_tar, "bench/big:1", big)

    def create(image: str) -> float:
        t0 = time.perf_counter()
        info = app.create(image, RunOptions(cmd=["true"]))
        took = time.perf_counter() - t0
        app.rm(info.id)
        return took

    for _ in range(3):
        create("bench/small:1")
        create("bench/big:1")
    small = statistics.median(create("bench/small:1") for _ in range(15))
    large = statistics.median(create("bench/big:1") for _ in range(15))
    print(
        f"\ncreate: {big >> 20} MB image {large * 1000:.1f} ms, 1 MB image {small * 1000:.1f} ms, "
        f"ratio {large / small:.2f}"
    )
    assert large < small * 1.10 + 0.002
