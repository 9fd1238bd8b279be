"""Build benchmark: Strata against ``cp -a``, ``docker build`` and ``buildah bud --layers``.

    python tests/bench/bench_build.py [--files 20000] [--mb 500] [--workdir DIR]

One run makes a context with ``../shared/bench/make_context.py`` (relative to the repository
root), builds ``FROM <busybox> / COPY . /src / RUN ls /src | wc -l`` with every tool that is
installed and usable, and prints wall-clock times and ratios for: the first build, a rebuild
with nothing changed, and a rebuild after one file changed. Times are measured in the same
run because the machine is shared and absolute numbers drift: each first build is compared
with the mean of a ``cp -a`` of the context timed just before it and one just after
(creating many files right after many were deleted is slow for whoever comes first, so
they take turns), rebuilds are medians.
The targets checked: no-change rebuild < 0.5 s, first build < 4x ``cp -a`` of the context,
one-file rebuild < 2 s. Strata runs as installed programs do: with bytecode written (the
environment's PYTHONDONTWRITEBYTECODE is dropped for it).

(``tests/bench/test_bench_build.py`` checks the same targets for Strata alone under pytest.)
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MAKE_CONTEXT = REPO.parent / "shared" / "bench" / "make_context.py"
TAG = "strata-bench/build:latest"
BASE = "strata-bench/busybox:latest"
DOCKERFILE = f"FROM {BASE}\nCOPY . /src\nRUN ls /src | wc -l\n"

sys.path.insert(0, str(REPO))


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def run(*args: str | os.PathLike[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> str:
    proc = subprocess.run(
        [os.fspath(a) for a in args], capture_output=True, text=True, env=env, cwd=cwd, stdin=subprocess.DEVNULL
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(map(str, args))} exited {proc.returncode}:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}"
        )
    return proc.stdout


class Tool:
    """One builder under test: how to prepare it and how to build once."""

    name = ""

    def available(self) -> str | None:
        """None when usable, else why not."""
        return None

    def prepare(self, base_tar: Path) -> None: ...

    def build(self, ctx: Path, no_cache: bool = False) -> None: ...

    def cleanup(self) -> None:
        pass


class Strata(Tool):
    name = "strata"

    def __init__(self, work: Path) -> None:
        self.root = work / "strata-store"
        self.env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        self.env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))

    def strata(self, *args: str | os.PathLike[str]) -> str:
        return run(sys.executable, "-m", "explorer", "--root", self.root, *args, env=self.env)

    def prepare(self, base_tar: Path) -> None:
        self.strata("import", base_tar, BASE)

    def build(self, ctx: Path, no_cache: bool = False) -> None:
        self.strata("build", "-q", "-t", TAG, *(["--no-cache"] if no_cache else []), ctx)


class Docker(Tool):
    name = "docker"

    def __init__(self) -> None:
        self.built: list[str] = []

    def available(self) -> str | None:
        if shutil.which("docker") is None:
            return "docker not installed"
        proc = subprocess.run(["docker", "info"], capture_output=True, text=True, stdin=subprocess.DEVNULL)
        return None if proc.returncode == 0 else "docker daemon not reachable"

    def prepare(self, base_tar: Path) -> None:
        run("docker", "import", base_tar, BASE)

    def build(self, ctx: Path, no_cache: bool = False) -> None:
        run("docker", "build", "-q", "-t", TAG, *(["--no-cache"] if no_cache else []), ctx)
        self.built.append(run("docker", "image", "inspect", "--format", "{{.Id}}", TAG).strip())

    def cleanup(self) -> None:
        """Leave the daemon as it was: the images this run made go."""
        subprocess.run(
            ["docker", "rmi", "--force", TAG, BASE, *reversed(self.built)],
            capture_output=True,
            stdin=subprocess.DEVNULL,
        )


class Buildah(Tool):
    name = "buildah"

    def __init__(self, work: Path) -> None:
        self.flags = ["--root", str(work / "buildah-root"), "--runroot", str(work / "buildah-run")]
        self.work = work

    def available(self) -> str | None:
        if shutil.which("buildah") is None:
            return "buildah not installed"
        return None

    def buildah(self, *args: str | os.PathLike[str]) -> str:
        return run("buildah", *self.flags, *args)

    def prepare(self, base_tar: Path) -> None:
        base = self.work / "buildah-base"
        base.mkdir()
        shutil.copy(base_tar, base / "rootfs.tar")
        (base / "Dockerfile").write_text("FROM scratch\nADD rootfs.tar /\n")
        try:
            self.buildah("bud", "--isolation", "chroot", "-t", BASE, base)
        except RuntimeError:
            self.flags += ["--storage-driver", "vfs"]
            self.buildah("bud", "--isolation", "chroot", "-t", BASE, base)

    def build(self, ctx: Path, no_cache: bool = False) -> None:
        self.buildah(
            "bud", "--isolation", "chroot", "--layers", "-q", "-t", TAG, *(["--no-cache"] if no_cache else []), ctx
        )


def make_context(ctx: Path, files: int, mb: int) -> None:
    if not MAKE_CONTEXT.is_file():
        raise SystemExit(f"{MAKE_CONTEXT} not found: the benchmark needs ../shared/bench beside the repository")
    run(sys.executable, MAKE_CONTEXT, ctx, str(files), str(mb))
    (ctx / "Dockerfile").write_text(DOCKERFILE)


def base_tar(work: Path) -> Path:
    from tests.fixtures.images import busybox_rootfs, write_rootfs_tar

    return write_rootfs_tar(busybox_rootfs(work / "busybox-rootfs"), work / "busybox.tar")


def cp_a(ctx: Path, work: Path) -> float:
    target = work / "cp-a"
    took = timed(lambda: run("cp", "-a", ctx, target))
    shutil.rmtree(target)
    return took


def measure(tool: Tool, ctx: Path, work: Path, changed: list[Path]) -> dict[str, float]:
    before = cp_a(ctx, work)
    first = timed(lambda: tool.build(ctx, no_cache=True))
    # The disk's speed swings within a minute (writeback of what was just written): one
    # cp -a on each side of the build, and their mean is the reference.
    reference = (before + cp_a(ctx, work)) / 2
    time.sleep(0.5)  # let the context's files age past the stat cache's "racily clean" window
    tool.build(ctx)
    unchanged = [timed(lambda: tool.build(ctx)) for _ in range(5)]
    one = []
    for path in changed:
        with path.open("ab") as fh:
            fh.write(f"{tool.name} {time.time()}\n".encode())
        one.append(timed(lambda: tool.build(ctx)))
    return {
        "cp_a": reference,
        "first": first,
        "first_ratio": first / reference,
        "unchanged": statistics.median(unchanged),
        "unchanged_min": min(unchanged),
        "one_file": statistics.median(one),
        "one_file_max": max(one),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=20_000)
    parser.add_argument("--mb", type=int, default=500)
    parser.add_argument("--workdir", help="where to put the context and the stores (default: a temp dir)")
    parser.add_argument(
        "--only", action="append", choices=["strata", "docker", "buildah"], help="run only these builders (repeatable)"
    )
    parser.add_argument("--context", help="use this existing context (it is modified: two files get a line)")
    args = parser.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="strata-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        if args.context:
            ctx = Path(args.context).resolve()
            (ctx / "Dockerfile").write_text(DOCKERFILE)
        else:
            ctx = work / "ctx"
            print(f"making a context of {args.files} files, ~{args.mb} MB in {ctx} …", flush=True)
            make_context(ctx, args.files, args.mb)
        tar = base_tar(work)
        files = sorted(p for p in ctx.rglob("*.dat"))
        changed = [files[k * len(files) // 6] for k in range(1, 6)]
        results: dict[str, dict[str, float]] = {}
        tools: list[Tool] = [Strata(work), Docker(), Buildah(work)]
        for tool in tools:
            if args.only and tool.name not in args.only:
                continue
            why = tool.available()
            if why is not None:
                print(f"{tool.name}: skipped ({why})")
                continue
            print(f"{tool.name}: building …", flush=True)
            try:
                tool.prepare(tar)
                results[tool.name] = measure(tool, ctx, work, changed)
            finally:
                tool.cleanup()
        report(results, args.files, args.mb)
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    return 0


def report(results: dict[str, dict[str, float]], files: int, mb: int) -> None:
    print(f"\ncontext: {files} files, ~{mb} MB\n")
    names = list(results)
    print(f"{'':34}" + "".join(f"{n:>12}" for n in names))
    rows = (
        ("cp -a around the first build (mean)", "cp_a", "s"),
        ("first build", "first", "s"),
        ("  / that cp -a", "first_ratio", "x"),
        ("rebuild, nothing changed (median)", "unchanged", "s"),
        ("  (fastest of 5)", "unchanged_min", "s"),
        ("rebuild, one file changed (median)", "one_file", "s"),
        ("  (slowest of 5)", "one_file_max", "s"),
    )
    for label, key, unit in rows:
        print(f"{label:34}" + "".join(f"{results[n][key]:>11.2f}{unit}" for n in names))
    ours = results.get("strata")
    if ours is None:
        return
    print()
    for other in names:
        if other == "strata":
            continue
        theirs = results[other]
        ratios = ", ".join(
            f"{key} {ours[key] / theirs[key]:.2f}x"
            for _l, key, unit in rows
            if unit == "s" and key != "cp_a" and theirs[key] > 0
        )
        print(f"strata / {other}: {ratios}")
    checks = (
        ("rebuild with nothing changed < 0.5 s", ours["unchanged"] < 0.5, f"{ours['unchanged']:.2f} s"),
        ("first build < 4x cp -a", ours["first_ratio"] < 4, f"{ours['first_ratio']:.2f}x cp -a"),
        ("rebuild after one file changed < 2 s", ours["one_file"] < 2.0, f"{ours['one_file']:.2f} s"),
    )
    for what, ok, value in checks:
        print(f"{'PASS' if ok else 'MISS'}  {what}: {value}")


if __name__ == "__main__":
    raise SystemExit(main())
