"""A container reaches no more of its host than Docker's default container does.

``isolation_probe.pl`` tries, from inside a Debian container, what an attacker would:
write kernel settings, remount ``/sys`` and a ``:ro`` volume read-write, read the
caller's keys, make namespaces, ptrace, raw sockets, set the clock, make and open
device nodes, open a device node the image ships, read kernel memory. The same probe
runs under ``docker run`` and ``strata run`` (root with overlay and with vfs, and
rootless) and every answer must be Docker's. The table is printed for the record.
"""

from __future__ import annotations

import ctypes
import io
import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.capabilities import real_root, require_docker
from tests.distro.conftest import BASE, SUBIDS_USER, OtherUser, other_user
from tests.fixtures import debian as deb
from tests.fixtures import run_strata
from tests.fixtures.images import docker, docker_import

PROBE = Path(__file__).with_name("isolation_probe.pl")
DOCKER_BASE = "strata-test/deb-probe:1"
IMAGE = "probe:1"
# Device nodes an image may ship: a hardware RNG, KVM, a loop device, a terminal.
NODES = (
    ("hwrng", tarfile.CHRTYPE, 10, 183),
    ("kvm", tarfile.CHRTYPE, 10, 232),
    ("loop0", tarfile.BLKTYPE, 7, 0),
    ("tty0", tarfile.CHRTYPE, 4, 0),
)
DOCKERFILE = "FROM {base}\nADD nodes.tar /\n"


def _context(where: Path, base: str) -> Path:
    where.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        top = tarfile.TarInfo("nodes")
        top.type, top.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(top)
        for name, kind, major, minor in NODES:
            info = tarfile.TarInfo(f"nodes/{name}")
            info.type, info.mode, info.devmajor, info.devminor = kind, 0o666, major, minor
            tar.addfile(info)
    (where / "nodes.tar").write_bytes(buf.getvalue())
    (where / "Dockerfile").write_text(DOCKERFILE.format(base=base))
    (where / "probe.pl").write_bytes(PROBE.read_bytes())
    (where / "ro").mkdir(exist_ok=True)
    (where / "ro" / "f").write_text("unchanged\n")
    for path in (where, where / "ro"):
        os.chmod(path, 0o755)
    for path in (where / "probe.pl", where / "ro" / "f", where / "nodes.tar", where / "Dockerfile"):
        os.chmod(path, 0o644)
    return where


def _host_key() -> int:
    """A key in this process's session keyring; a container must not read it."""
    libc = ctypes.CDLL(None, use_errno=True)
    serial = libc.syscall(248, b"user", b"strata-probe", b"host secret", 11, -3)
    return max(int(serial), 0)


def _parse(output: str) -> dict[str, tuple[str, str]]:
    rows: dict[str, tuple[str, str]] = {}
    for line in output.splitlines():
        parts = line.split(" ", 2)
        if len(parts) >= 2:
            rows[parts[0]] = (parts[1], parts[2].strip() if len(parts) > 2 else "")
    assert "done" in rows, f"the probe did not finish:\n{output}"
    return rows


def _verdicts(rows: dict[str, tuple[str, str]]) -> dict[str, str]:
    return {name: (detail if verdict == "value" else verdict) for name, (verdict, detail) in rows.items()}


def _probe_args(ctx: Path, key: int) -> list[str]:
    probe = "/probe.pl"
    # --network none on both sides: each container has a network namespace of its own
    return [
        "run",
        "--rm",
        "--network",
        "none",
        "-e",
        f"PROBE_KEY={key}",
        "-v",
        f"{ctx / 'ro'}:/ro:ro",
        "-v",
        f"{ctx / 'probe.pl'}:{probe}:ro",
        IMAGE,
        "perl",
        probe,
    ]


@pytest.fixture(scope="module")
def rootless(readable_tree: Path) -> OtherUser:
    return other_user(SUBIDS_USER, readable_tree)


@pytest.fixture(scope="module")
def docker_side(debian_tar: Path) -> Iterator[tuple[Path, dict[str, tuple[str, str]]]]:
    """Docker's answers, and the image Docker built, saved for Strata to load (so both
    run exactly the same files, device nodes included)."""
    require_docker()
    # under /tmp itself: the rootless side (another user) loads the archive too
    work = Path(tempfile.mkdtemp(prefix="strata-probe-docker-", dir="/tmp"))
    ctx = _context(work / "ctx", DOCKER_BASE)
    docker_import(debian_tar, DOCKER_BASE)
    docker("build", "--quiet", "--tag", IMAGE, str(ctx), timeout=600)
    archive = work / "probe.tar"
    docker("save", "-o", str(archive), IMAGE, timeout=600)
    os.chmod(work, 0o755)
    os.chmod(archive, 0o644)
    rows = _parse(docker(*_probe_args(ctx, _host_key())).stdout)
    assert (ctx / "ro" / "f").read_text() == "unchanged\n"
    yield archive, rows
    shutil.rmtree(work, ignore_errors=True)


def _table(columns: dict[str, dict[str, tuple[str, str]]]) -> str:
    names = list(next(iter(columns.values())))
    width = max(len(n) for n in names)
    head = f"{'probe':<{width}}  " + "  ".join(f"{c:<22}" for c in columns)
    lines = [head]
    for name in names:
        cells = []
        for rows in columns.values():
            verdict, detail = rows.get(name, ("-", ""))
            cells.append(f"{(detail if verdict == 'value' else f'{verdict} {detail}'.strip()):<22}")
        lines.append(f"{name:<{width}}  " + "  ".join(cells))
    return "\n".join(lines)


@pytest.mark.timeout(1800)
@pytest.mark.parametrize("driver", ["overlay", "vfs"])
def test_root_containers_answer_the_probe_as_docker_does(
    tmp_path: Path, driver: str, docker_side: tuple[Path, dict[str, tuple[str, str]]]
) -> None:
    if not real_root():
        pytest.skip("root's containers: the root pass runs this; the rootless side is the next test")
    archive, dockers = docker_side
    root = tmp_path / "store"
    root.mkdir(mode=0o700)
    ctx = _context(tmp_path / "ctx", BASE)
    run_strata("--storage-driver", driver, "load", "-i", archive, root=root, check=True, timeout=600)
    done = run_strata("--storage-driver", driver, *_probe_args(ctx, _host_key()), root=root, timeout=300)
    ours = _parse(done.stdout)
    print(_table({"docker (root)": dockers, f"strata root {driver}": ours}))
    assert (ctx / "ro" / "f").read_text() == "unchanged\n"
    assert _verdicts(ours) == _verdicts(dockers), _table({"docker": dockers, "strata": ours})


@pytest.mark.timeout(1800)
def test_rootless_containers_answer_the_probe_as_docker_does(
    rootless: OtherUser, docker_side: tuple[Path, dict[str, tuple[str, str]]]
) -> None:
    archive, dockers = docker_side
    holder = rootless.dir("probe")
    try:
        root = holder / "store"
        ctx = _context(holder / "ctx", BASE)
        shutil.chown(ctx / "ro" / "f", rootless.name, rootless.name)
        rootless.run("load", "-i", archive, root=root, check=True)
        done = rootless.run(*_probe_args(ctx, 0), root=root, timeout=300)
        ours = _parse(done.stdout)
        print(_table({"docker (root)": dockers, "strata rootless": ours}))
        assert (ctx / "ro" / "f").read_text() == "unchanged\n"
        assert _verdicts(ours) == _verdicts(dockers), _table({"docker": dockers, "strata": ours})
    finally:
        rootless.remove(holder)


KEY_READ = (
    'my $b = "\\0" x 64; my $r = syscall(250, 11, $ENV{PROBE_KEY} + 0, $b, 64);'
    ' print $r < 0 ? "denied $!\\n" : "read " . substr($b, 0, $r) . "\\n";'
)


def test_the_callers_session_keyring_stays_outside_even_without_seccomp(deb_store: Path) -> None:
    """With the seccomp filter lifted, the fresh session keyring is what keeps the
    caller's keys out (Docker's runc joins a new one for every container too)."""
    key = _host_key()
    assert key > 0, "add_key to the session keyring failed"
    done = run_strata(
        "run",
        "--rm",
        "--security-opt",
        "seccomp=unconfined",
        "-e",
        f"PROBE_KEY={key}",
        BASE,
        "perl",
        "-e",
        KEY_READ,
        root=deb_store,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("denied"), done.stdout
    if real_root():
        require_docker()
        docker_import(deb.tarball_path(), DOCKER_BASE)
        theirs = docker(
            "run",
            "--rm",
            "--security-opt",
            "seccomp=unconfined",
            "-e",
            f"PROBE_KEY={key}",
            DOCKER_BASE,
            "perl",
            "-e",
            KEY_READ,
        ).stdout
        assert theirs.split()[0] == done.stdout.split()[0], (theirs, done.stdout)
