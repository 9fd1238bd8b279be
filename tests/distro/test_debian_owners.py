"""Files of many owners with 0700/0600/0000 modes and setuid bits, on the Debian image:
every content operation keeps them, as root and rootless.

Runs in both passes. Rootless, the tree on disk belongs to subordinate ids the test
user cannot read from the host; everything here goes through ``strata`` (and, for the
GUI's file model, through the same view the window uses).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from tests.distro.conftest import BASE
from tests.fixtures import REPO_ROOT, run_strata

OWNERS_DOCKERFILE = f"""\
FROM {BASE}
RUN apt-get update
RUN useradd -u 1000 -m app && useradd -u 1001 -M svc && groupadd -g 1002 team \\
 && mkdir -p /data /secret /srv/shared \\
 && chown app:app /data && chmod 0700 /data \\
 && echo key > /secret/key && chown 1001:1002 /secret/key && chmod 0600 /secret/key \\
 && chown 1001:1001 /secret && chmod 0700 /secret \\
 && chown 1001:1000 /srv/shared && chmod 2770 /srv/shared \\
 && install -m 4755 /bin/true /usr/local/bin/suid-true \\
 && touch /zero && chmod 0000 /zero
USER 1000
RUN echo mine > /data/own && chmod 0640 /data/own
USER root
"""

STAT_PATHS = [
    "/data",
    "/data/own",
    "/secret",
    "/secret/key",
    "/srv/shared",
    "/usr/local/bin/suid-true",
    "/zero",
    "/etc/shadow",
    "/var/lib/apt/lists/partial",
    "/home/app",
]
EXPECTED = {
    "/data": "1000:1000:700",
    "/data/own": "1000:1000:640",
    "/secret": "1001:1001:700",
    "/secret/key": "1001:1002:600",
    "/srv/shared": "1001:1000:2770",
    "/usr/local/bin/suid-true": "0:0:4755",
    "/zero": "0:0:0",
    "/etc/shadow": "0:42:640",
    "/var/lib/apt/lists/partial": "42:0:700",
    "/home/app": "1000:1000:755",
}
STAT = "stat -c '%n %u:%g:%a' " + " ".join(STAT_PATHS)


def stat_table(output: str) -> dict[str, str]:
    return {line.split()[0]: line.split()[1] for line in output.splitlines() if line.strip()}


@pytest.fixture(scope="module")
def owners_image(deb_store: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    ctx = tmp_path_factory.mktemp("owners-ctx")
    (ctx / "Dockerfile").write_text(OWNERS_DOCKERFILE)
    run_strata("build", "-t", "owners:1", ctx, root=deb_store, check=True, timeout=900)
    return "owners:1"


def test_owners_and_modes_hold_inside_containers(deb_store: Path, owners_image: str) -> None:
    done = run_strata("run", "--rm", owners_image, "sh", "-c", STAT, root=deb_store, check=True)
    assert stat_table(done.stdout) == EXPECTED
    # USER 1000 writes to its own 0700 directory, and 0600 of another user stays closed to it
    mine = run_strata(
        "run",
        "--rm",
        "-u",
        "1000",
        owners_image,
        "sh",
        "-c",
        "echo new > /data/new && cat /data/own /data/new && id -u",
        root=deb_store,
        check=True,
    )
    assert mine.stdout == "mine\nnew\n1000\n"
    denied = run_strata("run", "--rm", "-u", "1000", owners_image, "cat", "/secret/key", root=deb_store)
    assert denied.returncode == 1 and "Permission denied" in denied.stderr
    assert (
        run_strata("run", "--rm", "-u", "1001", owners_image, "cat", "/secret/key", root=deb_store, check=True).stdout
        == "key\n"
    )


def test_index_listing_agrees_with_the_container(deb_store: Path, owners_image: str) -> None:
    import json

    listed = {}
    for line in run_strata("ls", owners_image, "/", "-R", "--json", root=deb_store, check=True).stdout.splitlines():
        e = json.loads(line)
        listed[e["path"]] = f"{e['uid']}:{e['gid']}:{e['mode'] & 0o7777:o}"
    assert {p: listed[p] for p in STAT_PATHS} == EXPECTED


def test_every_content_operation_on_a_tree_of_many_owners(deb_store: Path, owners_image: str, tmp_path: Path) -> None:
    root = deb_store
    run_strata("run", "-d", "--name", "owners-c", owners_image, "sleep", "600", root=root, check=True).stdout.strip()
    try:
        # cp out of a 0700 directory of another user: the copy is the caller's, readable
        out = tmp_path / "key"
        run_strata("cp", "owners-c:/secret/key", out, root=root, check=True)
        assert out.read_text() == "key\n"
        assert out.stat().st_uid == os.getuid()
        run_strata("cp", "owners-c:/secret", tmp_path / "secret-dir", root=root, check=True)
        assert (tmp_path / "secret-dir" / "key").read_text() == "key\n"
        # cp in: as docker, files copied in belong to root of the container
        (tmp_path / "in.txt").write_text("in\n")
        run_strata("cp", tmp_path / "in.txt", "owners-c:/data/in.txt", root=root, check=True)
        changes = "echo more >> /secret/key && rm /zero && chmod 0604 /data/own && chown 1001 /data/in.txt"
        run_strata("exec", "owners-c", "sh", "-c", changes, root=root, check=True)
        seen = run_strata(
            "exec", "owners-c", "stat", "-c", "%n %u:%g:%a", "/data/in.txt", "/secret/key", root=root, check=True
        ).stdout
        assert stat_table(seen) == {"/data/in.txt": "1001:0:644", "/secret/key": "1001:1002:600"}
        diff = run_strata("diff", "owners-c", root=root, check=True).stdout.splitlines()
        for line in ("C /secret", "C /secret/key", "D /zero", "C /data", "C /data/own", "A /data/in.txt"):
            assert line in diff
        run_strata("stop", "-t", "1", "owners-c", root=root, check=True)
        run_strata("commit", "owners-c", "owners:committed", root=root, check=True)
    finally:
        run_strata("rm", "-f", "owners-c", root=root)
    after = run_strata(
        "run",
        "--rm",
        "owners:committed",
        "sh",
        "-c",
        "stat -c '%n %u:%g:%a' /secret/key /data/own /data/in.txt; cat /secret/key; test -e /zero || echo gone",
        root=root,
        check=True,
    ).stdout
    lines = after.splitlines()
    assert stat_table("\n".join(lines[:3])) == {
        "/secret/key": "1001:1002:600",
        "/data/own": "1000:1000:604",
        "/data/in.txt": "1001:0:644",
    }
    assert lines[3:] == ["key", "more", "gone"]

    # save writes the index's owners and modes
    saved = tmp_path / "owners.tar"
    run_strata("save", "-o", saved, "owners:committed", root=root, check=True)
    members = _merged_members(saved)
    assert members["secret/key"] == (1001, 1002, 0o600)
    assert members["usr/local/bin/suid-true"] == (0, 0, 0o4755)
    assert members["data"] == (1000, 1000, 0o700)

    # the GUI's file model and viewer read through the same store view
    (tmp_path / "extracted").mkdir()
    _gui_lists_and_opens(root, tmp_path / "extracted")

    # removal and the prunes leave nothing of either image's content behind
    stopped = run_strata("create", "owners:committed", "sh", "-c", "true", root=root, check=True).stdout.strip()
    run_strata("start", "-a", stopped, root=root, check=True)
    pruned = run_strata("container", "prune", "-f", root=root, check=True).stdout
    assert stopped in pruned
    assert not (root / "containers" / stopped).exists()
    run_strata("rmi", "owners:committed", root=root, check=True)
    run_strata("builder", "prune", "-af", root=root, check=True)
    assert run_strata("system", "check", root=root).returncode == 0
    leftovers = [n for n in os.listdir(root / "tmp") if not n.startswith(".")]
    assert leftovers == []


def _merged_members(archive: Path) -> dict[str, tuple[int, int, int]]:
    """Owners and modes of the top-most entry of each path over the saved image's layers."""
    import json

    out: dict[str, tuple[int, int, int]] = {}
    with tarfile.open(archive) as outer:
        manifest = json.load(outer.extractfile("manifest.json"))  # type: ignore[arg-type]
        for layer in manifest[0]["Layers"]:
            blob = outer.extractfile(layer)
            assert blob is not None
            with tarfile.open(fileobj=blob, mode="r:*") as inner:
                for m in inner:
                    out[m.name.rstrip("/").removeprefix("./")] = (m.uid, m.gid, m.mode & 0o7777)
    return out


def _gui_lists_and_opens(root: Path, dest: Path) -> None:
    """List /secret, read the 0600 key and extract /secret through the GUI's own code (file
    source, viewer, extract), in a process of its own as the window is one."""
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from explorer.api import Strata\n"
        "from explorer.gui.export import extract, read_head\n"
        "from explorer.gui.models.file_source import IMAGE, FileSource, open_snapshot\n"
        "app = Strata(sys.argv[1])\n"
        "snap = open_snapshot(app, FileSource(IMAGE, 'owners:committed'))\n"
        "rows = {r.path: (r.uid, r.gid, r.mode) for r in snap.listing('/secret')}\n"
        "print(rows['/secret/key'], snap.users.get(1001), snap.groups.get(1002))\n"
        "print(read_head(snap.view, '/secret/key', 100))\n"
        "print(extract(snap.view, '/secret', Path(sys.argv[2])).name)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "QT_QPA_PLATFORM": "offscreen"}
    done = subprocess.run(
        [sys.executable, "-c", script, str(root), str(dest)], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["(1001, 1002, 384) svc team", "(b'key\\nmore\\n', 9)", "secret"]
    assert (dest / "secret" / "key").read_text() == "key\nmore\n"


def _start_build(root: Path, tmp_path: Path, run: str, *options: str) -> subprocess.Popen[str]:
    """``strata build`` of ``FROM deb / RUN …`` in a session of its own (as a terminal
    runs it), its output readable line by line. SIGINT starts at its default, as in a
    terminal's foreground job: a runner started in the background of a script (CI) has it
    ignored, and Python keeps an inherited ignore, so Ctrl-C would reach only the RUN."""
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(f"FROM {BASE}\n{run}\n")
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "explorer", "--root", str(root), "build", "--progress", "plain", *options, str(ctx)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=env,
        start_new_session=True,
        text=True,
        preexec_fn=_default_sigint,
    )


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.timeout(600)
def test_sigint_during_apt_get_is_interrupted_and_leaves_nothing(deb_store: Path, tmp_path: Path) -> None:
    proc = _start_build(
        deb_store,
        tmp_path,
        "RUN echo strata-sigint-marker && apt-get update && apt-get -y install python3 && sleep 600",
        "--no-cache",
    )
    assert proc.stdout is not None
    seen: list[str] = []
    deadline = time.monotonic() + 300
    for line in proc.stdout:
        seen.append(line)
        if "Get:" in line or "Reading package lists" in line:
            break
        assert time.monotonic() < deadline, "".join(seen)
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
    rest, _ = proc.communicate(timeout=120)
    output = "".join(seen) + rest
    assert proc.returncode == 130, output
    assert "Error: interrupted" in output and "internal error" not in output
    left = subprocess.run(["pgrep", "-f", "strata-sigint-marker"], capture_output=True, text=True).stdout
    assert left == ""
    assert [n for n in os.listdir(deb_store / "tmp") if not n.startswith(".")] == []
    mounts = Path("/proc/self/mountinfo").read_text()
    assert str(deb_store) not in mounts
    assert run_strata("system", "check", root=deb_store).returncode == 0


@pytest.mark.timeout(600)
def test_kill_during_a_run_then_check_is_clean(deb_store: Path, tmp_path: Path) -> None:
    proc = _start_build(
        deb_store,
        tmp_path,
        "RUN mkdir /k && chown 1000:1000 /k && chmod 700 /k && echo x > /k/f && echo strata-kill-marker && sleep 600",
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if "strata-kill-marker" in line and "echo" not in line:
            break
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    # the container's processes die with their monitor; the next open cleans the staging
    check = run_strata("system", "check", root=deb_store)
    assert check.returncode == 0, check.stdout + check.stderr
    assert [n for n in os.listdir(deb_store / "tmp") if not n.startswith(".")] == []
