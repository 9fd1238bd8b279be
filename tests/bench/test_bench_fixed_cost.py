"""Fixed-cost benchmarks (issue 16): what a small command costs before it does any work.

Run with ``--bench``. Each figure is a ratio against a reference timed in the same run,
pair by pair (A, B, A, B …) so that the machine's drift lands on both sides:

- ``strata --version`` against ``python -c pass`` of the same interpreter (target 1.5x);
- a no-change build of a 4-file context, and the same with one file edited, against
  BuildKit (``DOCKER_BUILDKIT=1 docker build``, Docker 20.10's own BuildKit) when Docker
  is there, else against 3x ``python -c pass`` (target: no slower than the reference);
- ``run --rm IMAGE true`` against ``docker run --rm --network host`` (target 1/3).

Every figure is measured twice: for the editable tree the tests use, and for the package
installed from a wheel into a fresh virtual environment, because what a user runs is the
installed one (its console script, its byte-compiled modules).
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

from tests.capabilities import require_docker, require_userns
from tests.fixtures import REPO_ROOT
from tests.fixtures.images import busybox_rootfs, write_rootfs_tar

pytestmark = pytest.mark.bench
SMALL = os.environ.get("STRATA_BENCH_SMALL") == "1"
RUNS = 7 if SMALL else 21
BASE = "bench/fixed:1"
DOCKER = "/usr/bin/docker"  # Docker 20.10's client: its BuildKit needs no buildx plug-in
DOCKERFILE = f"""\
FROM {BASE}
WORKDIR /app
COPY requirements.txt .
RUN cat requirements.txt > /app/installed
COPY . .
CMD ["python", "app.py"]
"""


@dataclass
class Paired:
    """Medians of two commands timed in turn, and the median of their pairwise ratios."""

    a: float
    b: float
    ratio: float

    def line(self, what: str, a: str, b: str) -> str:
        return f"{what}: {a} {self.a * 1000:.1f} ms, {b} {self.b * 1000:.1f} ms, ratio {self.ratio:.2f}"


def _once(command: list[str], env: dict[str, str] | None, cwd: Path | None, before: object = None) -> float:
    if callable(before):
        before()
    started = time.perf_counter()
    done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=cwd)
    took = time.perf_counter() - started
    if done.returncode != 0:
        pytest.fail(f"{' '.join(command)} exited {done.returncode}: {done.stderr.decode(errors='replace')[-1500:]}")
    return took


def paired(
    a: list[str],
    b: list[str],
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    before_a: object = None,
    before_b: object = None,
    runs: int = RUNS,
) -> Paired:
    for _ in range(2):  # warm the page cache and the byte-code cache of both sides
        _once(a, env, cwd, before_a)
        _once(b, env, cwd, before_b)
    ta: list[float] = []
    tb: list[float] = []
    for _ in range(runs):
        ta.append(_once(a, env, cwd, before_a))
        tb.append(_once(b, env, cwd, before_b))
    return Paired(
        statistics.median(ta), statistics.median(tb), statistics.median(x / y for x, y in zip(ta, tb, strict=True))
    )


@dataclass
class Install:
    """One way of running strata: its command and the environment it needs."""

    name: str
    python: str
    strata: list[str]
    env: dict[str, str]


def _editable() -> Install:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = str(REPO_ROOT)
    script = Path(sys.executable).with_name("strata")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "explorer"]
    return Install("editable", sys.executable, command, env)


def _wheel(work: Path) -> Install:
    """Build a wheel of this tree and install it into a new venv. The venv gets the
    dependencies by seeing this interpreter's site-packages after its own (a .pth line),
    so nothing is downloaded and the editable install's finder is not picked up."""
    dist = work / "dist"
    source = work / "source"  # a copy: building writes build/ and *.egg-info beside the sources
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO_ROOT / name, source / name)
    for name in ("explorer", "resources"):
        shutil.copytree(REPO_ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(source)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    ours = subprocess.run(
        [sys.executable, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    Path(purelib, "zz_strata_bench_deps.pth").write_text(ours + "\n")
    wheel = next(dist.glob("strata-*.whl"))
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", str(wheel)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONDONTWRITEBYTECODE")}
    return Install("installed", str(python), [str(venv / "bin" / "strata")], env)


@pytest.fixture(scope="module", params=["editable", "installed"])
def install(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Install:
    if request.param == "editable":
        return _editable()
    return _wheel(tmp_path_factory.mktemp("wheel"))


@dataclass
class Small:
    """A 4-file context built once by strata (and by Docker when it is there)."""

    context: Path
    root: Path
    docker: bool

    def touch_edit(self) -> None:
        """Edit app2.py with new content each time, so every build sees a change."""
        path = self.context / "app2.py"
        path.write_text(f"print({time.monotonic_ns()})\n")


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Small]:
    require_userns()
    work = tmp_path_factory.mktemp("small")
    rootfs = busybox_rootfs(work / "rootfs")
    tar = write_rootfs_tar(rootfs, work / "base.tar")
    context = work / "context"
    context.mkdir()
    (context / "Dockerfile").write_text(DOCKERFILE)
    (context / "requirements.txt").write_text("flask\n")
    (context / "app.py").write_text("print(1)\n")
    (context / "app2.py").write_text("print(2)\n")
    editable = _editable()
    root = work / "store"
    subprocess.run(
        [*editable.strata, "--root", str(root), "import", str(tar), BASE],
        check=True,
        env=editable.env,
        stdout=subprocess.DEVNULL,
    )
    has_docker = _docker_up()
    if has_docker:
        subprocess.run([DOCKER, "import", str(tar), BASE], check=True, stdout=subprocess.DEVNULL)
    yield Small(context, root, has_docker)
    if has_docker:
        subprocess.run([DOCKER, "rmi", "-f", "bench/fixed-out:1", BASE], capture_output=True)


def _docker_up() -> bool:
    """Docker is optional here (the build figures fall back to python -c pass), except
    under CI=true, where require_docker fails the run instead."""
    if os.environ.get("CI") == "true":
        require_docker()
        return True
    if shutil.which(DOCKER) is None:
        return False
    return subprocess.run([DOCKER, "info"], capture_output=True, timeout=20).returncode == 0


def _buildkit(small: Small) -> list[str]:
    return ["env", "DOCKER_BUILDKIT=1", DOCKER, "build", "-q", "-t", "bench/fixed-out:1", str(small.context)]


def test_version_against_python(install: Install) -> None:
    result = paired([*install.strata, "--version"], [install.python, "-c", "pass"], env=install.env)
    print("\n" + result.line(f"[{install.name}] strata --version", "strata", "python -c pass") + " (target 1.50)")
    assert result.ratio <= 1.5


def _build(install: Install, small: Small) -> list[str]:
    return [*install.strata, "--root", str(small.root), "build", "-q", "-t", "bench/fixed-out:1", str(small.context)]


def test_small_build_nothing_changed(install: Install, small: Small) -> None:
    ours = _build(install, small)
    if small.docker:
        result = paired(ours, _buildkit(small), env=install.env)
        print("\n" + result.line(f"[{install.name}] no-change build, 4 files", "strata", "BuildKit") + " (target 1.00)")
        assert result.ratio <= 1.0
    else:
        result = paired(ours, [install.python, "-c", "pass"], env=install.env)
        print("\n" + result.line(f"[{install.name}] no-change build, 4 files", "strata", "python") + " (target 3.00)")
        assert result.ratio <= 3.0


def test_small_build_one_file_edited(install: Install, small: Small) -> None:
    ours = _build(install, small)
    if not small.docker:
        pytest.skip("the one-edit figure is a ratio against BuildKit: Docker is not here")
    result = paired(ours, _buildkit(small), env=install.env, before_a=small.touch_edit, before_b=small.touch_edit)
    print("\n" + result.line(f"[{install.name}] one file edited, 4 files", "strata", "BuildKit") + " (target 1.00)")
    assert result.ratio <= 1.0


def test_run_rm_true_against_docker_host_network(install: Install, small: Small) -> None:
    if not small.docker:
        pytest.skip("a ratio against docker run: Docker is not here")
    ours = [*install.strata, "--root", str(small.root), "run", "--rm", BASE, "true"]
    theirs = [DOCKER, "run", "--rm", "--network", "host", BASE, "true"]
    result = paired(ours, theirs, env=install.env)
    print("\n" + result.line(f"[{install.name}] run --rm true", "strata", "docker --network host") + " (target 0.33)")
    assert result.ratio <= 1 / 3
