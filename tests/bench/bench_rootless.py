"""Rootless benchmark: ``strata build`` as root, as an unprivileged user, and ``docker build``, side by side.

    python tests/bench/bench_rootless.py [--files 20000] [--mb 500] [--runs 7] [--skip-docker]

Why: rootless must cost no more than root (issue "Real distributions, rootless"). A
rootless Strata does its content work inside the store's user namespace, with files
owned by subordinate ids; this measures what that costs against the same Strata run as
root, with the legacy ``docker build`` (``DOCKER_BUILDKIT=0``) as an outside reference.

Run it as root, on demand (it is not part of CI). The rootless side runs as
``strata-test`` (``packaging/dev.sh`` creates it, with a subordinate range) through
``runuser``, with its store and contexts in a directory that user owns. Every builder
starts from a fresh store (for Docker: its scenario images removed and ``docker builder
prune -af``) holding the Debian bookworm base (``tests/fixtures/debian.py``) as
``deb:12``. Each build is its own process, timed wall-clock around it.

Scenario A is the Debian flask scenario of ``tests/distro/test_debian_scenario.py``:
the cold build (apt-get fetches from the Debian mirror, so network time is part of it;
run once per builder), a second build of a context that differs only in its COPY line
(both RUNs from the cache) and a rebuild after app.py changed, the last two ``--runs``
times each (medians). Scenario B is a context of ``--files`` files (``--mb`` MB in all)
made by ``../shared/bench/make_context.py``: the first build, then ``--runs`` rebuilds
after one file changed, for the two Strata builders only. The builders take turns within
each round, so the machine's drift hits all of them alike.

Target: rootless / root <= 1.2 for the three figures of A and for B's one-file rebuild.
Exit status 0 when every target is met, 1 otherwise. Each Strata side keeps its bytecode
in a directory of its own (``PYTHONPYCACHEPREFIX``), so neither recompiles the package on
every run and nothing is written into the checkout.
"""

from __future__ import annotations

import argparse
import os
import pwd
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MAKE_CONTEXT = REPO.parent / "shared" / "bench" / "make_context.py"
VENV_PYTHON = Path(os.environ.get("STRATA_VENV") or "/opt/strata-venv") / "bin" / "python"
TARBALL = Path(os.environ.get("STRATA_TEST_CACHE") or "/var/tmp/strata-test-cache") / "debian-bookworm-minbase.tar"
USER = "strata-test"
BASE = "deb:12"
TAG_ONE = "strata-bench/flask-one:latest"
TAG_TWO = "strata-bench/flask-two:latest"
TAG_MANY = "strata-bench/many:latest"
BUILD_TIMEOUT = 1800.0
TARGET = 1.2

APP_PY = """\
from flask import Flask

app = Flask(__name__)


@app.route("/")
def hello():
    return "{text}\\n"
"""

FLASK_DOCKERFILE = """\
FROM deb:12
RUN apt-get update && apt-get -y install python3
RUN apt-get -y install python3-flask
COPY {copy} /opt/source-code/
ENTRYPOINT python3 -m flask --app /opt/source-code/app.py run --host 127.0.0.1 --port $PORT
"""

MANY_DOCKERFILE = "FROM deb:12\nCOPY . /src\nRUN ls /src | wc -l\n"

ROOT, ROOTLESS, DOCKER = "strata root", "strata rootless", "docker"
COLUMNS = (ROOT, ROOTLESS, DOCKER)


@dataclass
class Builder:
    """One side of the comparison: ``prefix + ["build", "-t", TAG, CTX]`` builds, and
    ``prefix + ["import", TARBALL, BASE]`` makes the base (the same shape for all three)."""

    name: str
    prefix: list[str]
    env: dict[str, str] | None
    work: Path  # its contexts live here, owned by ``owner`` when set
    owner: str | None = None
    images: list[str] = field(default_factory=list)  # Docker: the ids it built, removed at the end

    @property
    def is_docker(self) -> bool:
        return self.name == DOCKER


# -- running things ---------------------------------------------------------------------------------------------------


def run(
    argv: list[str], env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = BUILD_TIMEOUT
) -> str:
    """Run to the end; the output (stdout and stderr together), or RuntimeError with its last 2000 characters."""
    proc = subprocess.run(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        env=env,
        cwd=cwd,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}:\n{proc.stdout[-2000:]}")
    return proc.stdout


def quiet(argv: list[str]) -> subprocess.CompletedProcess[str]:
    """Run, whatever comes of it (clean-up, probes)."""
    return subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL)


def build(builder: Builder, tag: str, ctx: Path) -> float:
    """One build in its own process: the wall-clock seconds it took."""
    started = time.perf_counter()
    run([*builder.prefix, "build", "-t", tag, str(ctx)], env=builder.env, cwd=builder.work)
    took = time.perf_counter() - started
    if builder.is_docker:
        builder.images.append(run(["docker", "image", "inspect", "--format", "{{.Id}}", tag]).strip())
    return took


def give(builder: Builder, path: Path) -> None:
    """Hand what root just wrote for this builder to its user."""
    if builder.owner is not None:
        run(["chown", "-R", f"{builder.owner}:", str(path)])


# -- the three builders -----------------------------------------------------------------------------------------------


def clean_env(home: str, user: str, tree: Path, pycache: Path) -> list[str]:
    """The same few variables for both Strata sides."""
    return [
        f"HOME={home}",
        f"USER={user}",
        f"LOGNAME={user}",
        "LANG=C.UTF-8",
        f"PATH={VENV_PYTHON.parent}:/usr/bin:/bin:/usr/sbin:/sbin",
        f"PYTHONPATH={tree}",
        f"PYTHONPYCACHEPREFIX={pycache}",
    ]


def root_builder(work: Path) -> Builder:
    work.mkdir(mode=0o700)
    (work / "store").mkdir(mode=0o700)
    pairs = clean_env(os.environ.get("HOME") or "/root", "root", REPO, work / "pycache")
    env = {key: value for key, _eq, value in (pair.partition("=") for pair in pairs)}
    return Builder(ROOT, [str(VENV_PYTHON), "-m", "explorer", "--root", str(work / "store")], env, work)


def readable_tree(holder: Path) -> Path:
    """The checkout if strata-test can read it, else a copy of it (without .git) that it can."""
    if quiet(["runuser", "-u", USER, "--", "test", "-r", str(REPO / "pyproject.toml")]).returncode == 0:
        return REPO
    tree = holder / "tree" / REPO.name
    ignore = shutil.ignore_patterns(".git", "__pycache__", "*.egg-info", ".mypy_cache", ".pytest_cache", ".ruff_cache")
    shutil.copytree(REPO, tree, symlinks=True, ignore=ignore)
    run(["chmod", "-R", "a+rX", str(holder / "tree")])
    return tree


def rootless_builder(work: Path, tree: Path) -> Builder:
    work.mkdir(mode=0o700)
    (work / "store").mkdir(mode=0o700)
    run(["chown", "-R", f"{USER}:", str(work)])
    home = pwd.getpwnam(USER).pw_dir
    prefix = [
        "runuser",
        "-u",
        USER,
        "--",
        "env",
        "-i",
        *clean_env(home, USER, tree, work / "pycache"),
        str(VENV_PYTHON),
        "-m",
        "explorer",
        "--root",
        str(work / "store"),
    ]
    return Builder(ROOTLESS, prefix, None, work, owner=USER)


def docker_builder(work: Path) -> Builder:
    work.mkdir(mode=0o700)
    env = {**os.environ, "DOCKER_BUILDKIT": "0"}
    return Builder(DOCKER, ["docker"], env, work)


def docker_usable() -> str | None:
    """None when Docker can be used, else why not."""
    if shutil.which("docker") is None:
        return "docker is not installed"
    if quiet(["docker", "info"]).returncode != 0:
        return "the Docker daemon is not reachable (docker info failed)"
    return None


def docker_image_id(ref: str) -> str | None:
    proc = quiet(["docker", "image", "inspect", "--format", "{{.Id}}", ref])
    return proc.stdout.strip() if proc.returncode == 0 else None


def prepare(builder: Builder) -> None:
    """Put the Debian base into the builder's fresh store, as its own user."""
    run([*builder.prefix, "import", str(TARBALL), BASE], env=builder.env, cwd=builder.work, timeout=900)
    if builder.is_docker:
        for tag in (TAG_ONE, TAG_TWO, TAG_MANY):
            quiet(["docker", "rmi", "--force", tag])
        run(["docker", "builder", "prune", "-af"])
        return
    info = run([*builder.prefix, "info"], env=builder.env, cwd=builder.work, timeout=120)
    wanted = ("Storage Driver:", "uid map:", "Backing Filesystem:")
    lines = [line.strip() for line in info.splitlines() if line.strip().startswith(wanted)]
    print(f"  {builder.name}: {'; '.join(lines)}", flush=True)


def docker_restore(builder: Builder, previous_base: str | None) -> None:
    """Leave the daemon as it was: the images this run made go, ``deb:12`` points where it did."""
    quiet(["docker", "rmi", "--force", TAG_ONE, TAG_TWO, TAG_MANY, *reversed(builder.images)])
    ours = docker_image_id(BASE)
    if previous_base is not None:
        quiet(["docker", "tag", previous_base, BASE])
    if ours is not None and ours != previous_base:
        quiet(["docker", "rmi", ours] if previous_base is not None else ["docker", "rmi", BASE])


# -- scenario A: the Debian flask images ------------------------------------------------------------------------------


def flask_context(ctx: Path, text: str, copy: str) -> Path:
    ctx.mkdir()
    (ctx / "app.py").write_text(APP_PY.format(text=text))
    (ctx / "README").write_text(f"{ctx.name}\n")
    (ctx / "Dockerfile").write_text(FLASK_DOCKERFILE.format(copy=copy))
    return ctx


def scenario_a(builders: list[Builder], runs: int, results: dict[str, dict[str, list[float]]]) -> None:
    cold, second, edit = results["A cold build"], results["A second build"], results["A one-file edit"]
    for b in builders:
        ctx = flask_context(b.work / "flask-one", "one", ".")
        give(b, ctx)
        print(f"  {b.name}: cold build (apt-get from the mirror) …", flush=True)
        cold[b.name] = [build(b, TAG_ONE, ctx)]
        print(f"  {b.name}: cold build {cold[b.name][0]:.1f} s", flush=True)
    for i in range(runs):
        for b in builders:
            # a context of its own each round: its COPY runs, both RUNs come from the cache
            ctx = flask_context(b.work / f"flask-two-{i}", f"two {i}", "app.py")
            give(b, ctx)
            second.setdefault(b.name, []).append(build(b, TAG_TWO, ctx))
        for b in builders:
            (b.work / "flask-one" / "app.py").write_text(APP_PY.format(text=f"one, edit {i}"))
            edit.setdefault(b.name, []).append(build(b, TAG_ONE, b.work / "flask-one"))
        print(
            f"  round {i + 1}/{runs}: second build "
            + ", ".join(f"{b.name} {second[b.name][-1]:.2f} s" for b in builders)
            + "; one-file edit "
            + ", ".join(f"{b.name} {edit[b.name][-1]:.2f} s" for b in builders),
            flush=True,
        )


# -- scenario B: a context of many files ------------------------------------------------------------------------------


def make_many(src: Path, files: int, mb: int) -> list[Path]:
    """Make the context once (as root); the files of it that the rounds change, relative to it."""
    if not MAKE_CONTEXT.is_file():
        raise SystemExit(f"{MAKE_CONTEXT} not found: the benchmark needs ../shared/bench beside the repository")
    run([sys.executable, str(MAKE_CONTEXT), str(src), str(files), str(mb)], timeout=3600)
    (src / "Dockerfile").write_text(MANY_DOCKERFILE)
    found = sorted(p.relative_to(src) for p in src.rglob("*.dat"))
    return [found[(k * 7919) % len(found)] for k in range(1, 64)]


def scenario_b(
    builders: list[Builder], src: Path, changed: list[Path], runs: int, results: dict[str, dict[str, list[float]]]
) -> None:
    first, same, edit = results["B first build"], results["B no-change rebuild"], results["B one-file edit"]
    for b in builders:
        run(["cp", "-a", str(src), str(b.work / "many")], timeout=3600)
        give(b, b.work / "many")
    for b in builders:
        first[b.name] = [build(b, TAG_MANY, b.work / "many")]
        print(f"  {b.name}: first build {first[b.name][0]:.1f} s", flush=True)
    time.sleep(1.0)  # the context's files age past the stat cache's "racily clean" window
    for b in builders:
        same[b.name] = [build(b, TAG_MANY, b.work / "many")]
    for i in range(runs):
        for b in builders:
            with (b.work / "many" / changed[i % len(changed)]).open("ab") as fh:
                fh.write(f"{b.name} edit {i} {time.time()}\n".encode())
            edit.setdefault(b.name, []).append(build(b, TAG_MANY, b.work / "many"))
        print(
            f"  round {i + 1}/{runs}: one-file edit "
            + ", ".join(f"{b.name} {edit[b.name][-1]:.2f} s" for b in builders),
            flush=True,
        )


# -- report -----------------------------------------------------------------------------------------------------------


def median(results: dict[str, list[float]], name: str) -> float | None:
    samples = results.get(name)
    return statistics.median(samples) if samples else None


def cell(value: float | None, width: int) -> str:
    return f"{value:.2f} s".rjust(width) if value is not None else "-".rjust(width)


def report(results: dict[str, dict[str, list[float]]], labels: dict[str, str]) -> bool:
    """Print the table, the samples and the targets; True when every target is met."""
    widths = (14, 18, 10, 16)
    print()
    print(" " * 26 + "".join(name.rjust(w) for name, w in zip((*COLUMNS, "rootless/root"), widths, strict=True)))
    ratios: dict[str, float | None] = {}
    for key, label in labels.items():
        row = results[key]
        root, rootless = median(row, ROOT), median(row, ROOTLESS)
        ratios[key] = rootless / root if root and rootless is not None else None
        cells = "".join(cell(median(row, name), w) for name, w in zip(COLUMNS, widths[:3], strict=True))
        ratio = ratios[key]
        print(f"{label:<26}{cells}" + (f"{ratio:.2f}" if ratio is not None else "-").rjust(widths[3]))
    print("\nsamples (seconds, in the order taken):")
    for key, label in labels.items():
        for name in COLUMNS:
            if results[key].get(name):
                print(f"  {label:<26}{name:<17}" + "  ".join(f"{t:.3f}" for t in results[key][name]))
    print("\nnetwork time (the Debian mirror) is part of the cold builds; each is a single sample\n")
    ok = True
    for key in ("A cold build", "A second build", "A one-file edit", "B one-file edit"):
        ratio = ratios[key]
        met = ratio is not None and ratio <= TARGET
        ok = ok and met
        shown = f"{ratio:.2f}" if ratio is not None else "n/a"
        root, rootless = median(results[key], ROOT), median(results[key], ROOTLESS)
        print(
            f"{'PASS' if met else 'FAIL'}  {labels[key]}: rootless/root {shown} <= {TARGET}"
            f" (root {cell(root, 0)}, rootless {cell(rootless, 0)})"
        )
    return ok


# -- main -------------------------------------------------------------------------------------------------------------


def preflight() -> None:
    if os.geteuid() != 0:
        raise SystemExit("run this as root: it drives the rootless side through runuser")
    if quiet(["id", "-u", USER]).returncode != 0:
        raise SystemExit(f"no user {USER}: packaging/dev.sh creates it (with a subordinate range)")
    if not VENV_PYTHON.exists():
        raise SystemExit(f"{VENV_PYTHON} not found: packaging/dev.sh makes the shared venv")
    if not TARBALL.exists():
        print(f"{TARBALL} is missing: making it (debootstrap from the host's mirror) …", flush=True)
        run(
            [str(VENV_PYTHON), "-m", "tests.fixtures.debian"],
            env={**os.environ, "PYTHONPATH": str(REPO)},
            cwd=REPO,
            timeout=3600,
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--files", type=int, default=20_000, help="files in scenario B's context (default 20000)")
    parser.add_argument("--mb", type=int, default=500, help="MB in scenario B's context (default 500)")
    parser.add_argument("--runs", type=int, default=7, help="rounds of the warm builds (medians; default 7)")
    parser.add_argument("--skip-docker", action="store_true", help="leave Docker out")
    args = parser.parse_args()
    if args.runs < 1 or args.files < 1 or args.mb < 1:
        parser.error("--runs, --files and --mb must be at least 1")
    preflight()
    many = f"{args.files // 1000}k" if args.files >= 1000 else str(args.files)
    labels = {
        "A cold build": "A cold build",
        "A second build": "A second build",
        "A one-file edit": "A one-file edit",
        "B first build": f"B first build ({many})",
        "B no-change rebuild": f"B no-change rebuild ({many})",
        "B one-file edit": f"B one-file edit ({many})",
    }
    results: dict[str, dict[str, list[float]]] = {key: {} for key in labels}
    holder = Path(tempfile.mkdtemp(prefix="strata-bench-rootless-", dir="/tmp"))
    os.chmod(holder, 0o755)
    docker: Builder | None = None
    previous_base: str | None = None
    started = time.perf_counter()
    try:
        strata = [root_builder(holder / "root"), rootless_builder(holder / "rootless", readable_tree(holder))]
        why = "--skip-docker" if args.skip_docker else docker_usable()
        if why is None:
            previous_base = docker_image_id(BASE)
            docker = docker_builder(holder / "docker")
        else:
            print(f"Docker is skipped: {why}")
        builders = [*strata, *([docker] if docker else [])]
        print(f"importing {TARBALL.name} as {BASE} into each store …", flush=True)
        for b in builders:
            prepare(b)
        print("scenario A: the Debian flask images", flush=True)
        scenario_a(builders, args.runs, results)
        print(f"scenario B: {args.files} files, ~{args.mb} MB (Strata only)", flush=True)
        src = holder / "many-src"
        changed = make_many(src, args.files, args.mb)
        scenario_b(strata, src, changed, args.runs, results)
        ok = report(results, labels)
    finally:
        if docker is not None:
            docker_restore(docker, previous_base)
        # the rootless store holds files of subordinate ids: only root removes them from here
        quiet(["rm", "-rf", "--one-file-system", str(holder)])
    print(f"\n(the whole run took {(time.perf_counter() - started) / 60:.1f} min)")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
