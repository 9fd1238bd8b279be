"""Build benchmarks (issue: builds with a cache). Run with `--bench`; STRATA_BENCH_SMALL=1
shrinks the context from 20,000 files / 500 MB to 2,000 files / 50 MB for a smoke run.

The context comes from ``../shared/bench/make_context.py``; the Dockerfile is
``FROM <busybox> / COPY . /src / RUN ls /src | wc -l``. Every build is a new ``strata``
process, as a user runs it. The machine is shared, so each figure is a median and the
first build is compared with ``cp -a`` of the same context timed in the same run,
alternately with it (whoever creates 20,000 files right after others were deleted pays
for it; alternating shares that out). The stat walk (``find -printf``) is timed too: it
is the floor of a rebuild with nothing changed. Targets (the issue's, at full size):
nothing changed < 0.5 s, first build < 4x ``cp -a``, one file changed < 2 s; the two
absolute ones are scaled by the stat walk timed in the same run (see ``slowness``).
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.capabilities import missing, require_userns
from tests.fixtures import REPO_ROOT

pytestmark = pytest.mark.bench
SMALL = os.environ.get("STRATA_BENCH_SMALL") == "1"
FILES, MB = (2_000, 50) if SMALL else (20_000, 500)
MAKE_CONTEXT = REPO_ROOT.parent / "shared" / "bench" / "make_context.py"
BASE = "bench/busybox:1"
DOCKERFILE = f"FROM {BASE}\nCOPY . /src\nRUN ls /src | wc -l\n"


def strata_command() -> list[str]:
    script = Path(sys.executable).with_name("strata")
    return [str(script)] if script.exists() else [sys.executable, "-m", "explorer"]


def timed(command: list[str], env: dict[str, str] | None = None) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    took = time.perf_counter() - started
    if done.returncode != 0:
        pytest.fail(f"{' '.join(command)} exited {done.returncode}: {done.stderr.decode(errors='replace')[-2000:]}")
    return took


@dataclass
class Bench:
    work: Path
    context: Path
    env: dict[str, str]

    def store(self, name: str) -> list[str]:
        return [*strata_command(), "--root", str(self.work / name)]

    def new_store(self, name: str, base_tar: Path) -> list[str]:
        command = self.store(name)
        shutil.rmtree(self.work / name, ignore_errors=True)
        subprocess.run([*command, "import", str(base_tar), BASE], check=True, stdout=subprocess.DEVNULL, env=self.env)
        return command

    def build(self, store: list[str], *flags: str) -> float:
        return timed([*store, "build", "-q", "-t", "bench/built:1", *flags, str(self.context)], self.env)

    def cp_a(self) -> float:
        target = self.work / "cp-a"
        took = timed(["cp", "-a", str(self.context), str(target)])
        shutil.rmtree(target)
        return took

    def stat_walk(self) -> float:
        return timed(["find", str(self.context), "-printf", "%s %T@ %C@ %i %m\n"])

    def data_files(self) -> list[Path]:
        return sorted(self.context.rglob("*.dat"))


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bench]:
    require_userns()
    if not MAKE_CONTEXT.is_file():
        missing(f"{MAKE_CONTEXT} not found: the build benchmark needs ../shared/bench beside the checkout")
    work = tmp_path_factory.mktemp("build-bench")
    context = work / "ctx"
    subprocess.run([sys.executable, str(MAKE_CONTEXT), str(context), str(FILES), str(MB)], check=True)
    (context / "Dockerfile").write_text(DOCKERFILE)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}  # as installed: with .pyc
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    yield Bench(work, context, env)
    shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(scope="module")
def built(bench: Bench, busybox_rootfs_tar: Path) -> list[str]:
    """A store holding one build of the context (and bytecode for every module it used)."""
    store = bench.new_store("main", busybox_rootfs_tar)
    bench.build(store)
    time.sleep(0.3)  # past the stat cache's "racily clean" window
    bench.build(store)
    return store


def test_first_build_within_4x_cp_a(bench: Bench, busybox_rootfs_tar: Path) -> None:
    ratios, ours, theirs = [], [], []
    for i in range(3):
        store = bench.new_store(f"first-{i}", busybox_rootfs_tar)
        reference = bench.cp_a()
        first = bench.build(store, "--no-cache")
        shutil.rmtree(bench.work / f"first-{i}")
        ours.append(first)
        theirs.append(reference)
        ratios.append(first / reference)
    ratio = statistics.median(ratios)
    print(
        f"\nfirst build of {FILES} files / {MB} MB: strata {statistics.median(ours):.2f}s, "
        f"cp -a {statistics.median(theirs):.2f}s; median ratio {ratio:.2f} (runs: "
        + ", ".join(f"{r:.2f}" for r in ratios)
        + ")"
    )
    assert ratio < 4


# The issue set its rebuild targets (0.5 s, 2 s) where a stat walk of this context took
# 0.05 s, and says so. This machine is shared and its speed drifts by a factor of two or
# three within an hour, so the targets are checked against the walk timed in the same
# run: as many times the walk as the issue's targets were (10x and 40x). The absolute
# times are printed beside them. (The smoke size keeps the absolute targets.)
ISSUE_WALK_S = 0.05


def slowness(bench: Bench) -> tuple[float, float]:
    """The stat walk's median here, and how much slower than the issue's it is (>= 1)."""
    walk = statistics.median(bench.stat_walk() for _ in range(5))
    return walk, 1.0 if SMALL else max(1.0, walk / ISSUE_WALK_S)


def test_rebuild_with_nothing_changed_under_half_a_second(bench: Bench, built: list[str]) -> None:
    walk, factor = slowness(bench)
    times = [bench.build(built) for _ in range(7)]
    ours = statistics.median(times)
    print(
        f"\nrebuild, nothing changed: strata median {ours:.3f}s (min {min(times):.3f}s); "
        f"stat walk (find) {walk:.3f}s; {ours / walk:.1f}x the walk (target: 0.5 s = 10x the issue's "
        f"0.05 s walk; here {0.5 * factor:.2f}s)"
    )
    assert ours < 0.5 * factor


def test_rebuild_after_one_file_changed_under_two_seconds(bench: Bench, built: list[str]) -> None:
    files = bench.data_files()
    times = []
    walk, factor = slowness(bench)
    for k in range(1, 6):
        path = files[k * len(files) // 6]  # spread over the tar: the hash resumes where it changed
        with path.open("ab") as fh:
            fh.write(f"changed {time.time_ns()}\n".encode())
        times.append(bench.build(built))
    ours = statistics.median(times)
    walk_after, factor_after = slowness(bench)
    factor = min(factor, factor_after)  # the calmer of the two
    print(
        f"\nrebuild, one file changed: strata median {ours:.2f}s (runs: "
        + ", ".join(f"{t:.2f}" for t in times)
        + f"); stat walk {walk:.3f}s/{walk_after:.3f}s before/after: "
        f"{ours / min(walk, walk_after):.0f}x the walk (target: 2 s = 40x the issue's 0.05 s walk; "
        f"here {2.0 * factor:.2f}s); cp -a {bench.cp_a():.2f}s for scale"
    )
    assert ours < 2.0 * factor
