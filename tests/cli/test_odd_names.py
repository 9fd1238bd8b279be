"""File names that are not UTF-8 through the real `strata` command: a Linux file name is
bytes, and images hold such names (Debian's own test data does). Each must travel through
import, load, build, run, diff, commit, ls and save unchanged, and be shown escaped."""

from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from tests.capabilities import require_docker, require_userns
from tests.fixtures import run_strata
from tests.fixtures.images import docker

BASE = "test/busybox:1"

# In Python a name that is not UTF-8 is a str with its bad bytes surrogate-escaped.
BAD = os.fsdecode(b"bad\xffname")
DIR = os.fsdecode(b"dir\xfe")
INNER = os.fsdecode(b"inner\x80")
LINK = os.fsdecode(b"ln\xfd")
HARD = os.fsdecode(b"hl\xfc")

# The shell lines a RUN or a container runs to make the same kind of names.
MAKE_NAMES = (
    "touch \"$(printf 'bad\\377name')\" && mkdir \"$(printf 'dir\\376')\""
    " && echo inner > \"$(printf 'dir\\376/inner\\200')\""
    " && ln -s \"$(printf 'bad\\377name')\" \"$(printf 'ln\\375')\""
)


@pytest.fixture
def store(strata_root: Path, busybox_rootfs_tar: Path) -> Path:
    require_userns()
    run_strata("import", busybox_rootfs_tar, BASE, check=True)
    return strata_root


def _ok(*args: str | Path, root: Path | None = None) -> str:
    """stdout of a strata command that must succeed."""
    done = run_strata(*args, root=root)
    assert done.returncode == 0 and "Error" not in done.stderr, f"strata {args}: {done.stderr}"
    return done.stdout


def _odd_tar(path: Path) -> Path:
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT, encoding="utf-8", errors="surrogateescape") as tar:
        for name, data in ((BAD, b"hello\n"), (f"{DIR}/{INNER}", b"inner\n")):
            if "/" in name:
                folder = tarfile.TarInfo(DIR)
                folder.type, folder.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(folder)
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
        for kind, name in ((tarfile.SYMTYPE, LINK), (tarfile.LNKTYPE, HARD)):
            info = tarfile.TarInfo(name)
            info.type, info.linkname, info.mode = kind, BAD, 0o777 if kind == tarfile.SYMTYPE else 0o644
            tar.addfile(info)
    return path


def _listing(image: str, root: Path | None = None) -> dict[str, dict[str, object]]:
    rows = [json.loads(line) for line in _ok("ls", image, "-R", "--json", root=root).splitlines()]
    return {str(r["path"]): r for r in rows}


def _layer_names(archive: Path) -> dict[str, bytes | None]:
    """Every member of every layer of a saved archive: name → content (None if no file)."""
    out: dict[str, bytes | None] = {}
    with tarfile.open(archive) as outer:
        manifest = json.loads(outer.extractfile("manifest.json").read())  # type: ignore[union-attr]
        for layer in manifest[0]["Layers"]:
            blob = outer.extractfile(layer).read()  # type: ignore[union-attr]
            with tarfile.open(fileobj=io.BytesIO(blob), encoding="utf-8", errors="surrogateescape") as inner:
                for member in inner:
                    data = inner.extractfile(member) if member.isreg() else None
                    out[member.name] = data.read() if data is not None else None
    return out


def test_a_layer_with_names_that_are_not_utf8_imports_lists_and_saves(store: Path, tmp_path: Path) -> None:
    _ok("import", _odd_tar(tmp_path / "odd.tar"), "odd:1")
    assert _ok("ls", "odd:1", "/").splitlines() == [
        "-rw-r--r--     0     0          6  L0   added    bad\\xffname",
        "drwxr-xr-x     0     0          0  L0   added    dir\\xfe",
        "hrw-r--r--     0     0          6  L0   added    hl\\xfc link to /bad\\xffname",
        "lrwxrwxrwx     0     0          0  L0   added    ln\\xfd -> bad\\xffname",
    ]
    assert _ok("ls", "odd:1", DIR).splitlines() == ["-rw-r--r--     0     0          6  L0   added    inner\\x80"]
    listing = _listing("odd:1")
    assert sorted(listing) == ["/bad\\xffname", "/dir\\xfe", "/dir\\xfe/inner\\x80", "/hl\\xfc", "/ln\\xfd"]
    assert listing["/ln\\xfd"]["link"] == "bad\\xffname" and listing["/hl\\xfc"]["link"] == "/bad\\xffname"
    missing = run_strata("ls", "odd:1", f"/{DIR}/gone{INNER}")
    assert missing.returncode == 1
    assert missing.stderr == "Error: image: no such file or directory: /dir\\xfe/goneinner\\x80\n"

    _ok("save", "-o", tmp_path / "saved.tar", "odd:1")
    assert _layer_names(tmp_path / "saved.tar") == {
        BAD: b"hello\n",
        DIR: None,
        f"{DIR}/{INNER}": b"inner\n",
        LINK: None,
        HARD: None,
    }
    other = tmp_path / "other-store"
    other.mkdir(mode=0o700)
    _ok("load", "-i", tmp_path / "saved.tar", root=other)
    assert _listing("odd:1", root=other) == listing
    assert _ok("system", "check") == "The store is consistent: no problems found.\n"


def test_a_run_a_container_and_a_commit_that_make_such_names(store: Path, tmp_path: Path) -> None:
    context = tmp_path / "context"
    context.mkdir()
    (context / "Dockerfile").write_text(f"FROM {BASE}\nRUN cd / && {MAKE_NAMES}\n")
    _ok("build", "-q", "-t", "oddrun:1", context)
    built = _listing("oddrun:1")
    for path in ("/bad\\xffname", "/dir\\xfe", "/dir\\xfe/inner\\x80", "/ln\\xfd"):
        assert built[path]["layer"] == 1, path
    assert built["/ln\\xfd"]["link"] == "bad\\xffname"

    _ok("run", "--name", "maker", BASE, "sh", "-c", f"cd / && {MAKE_NAMES} && rm /etc/group")
    assert _ok("diff", "maker").splitlines() == [
        "A /bad\\xffname",
        "A /dir\\xfe",
        "A /dir\\xfe/inner\\x80",
        "C /etc",
        "D /etc/group",
        "A /ln\\xfd",
    ]
    _ok("commit", "maker", "oddc:1")
    committed = _listing("oddc:1")
    assert {p: committed[p]["size"] for p in ("/bad\\xffname", "/dir\\xfe/inner\\x80")} == {
        "/bad\\xffname": 0,
        "/dir\\xfe/inner\\x80": 6,
    }
    assert "/etc/group" not in committed
    tree = _ok("ls", "-R", "oddc:1").splitlines()
    assert "-rw-r--r--     0     0          6  L1   added    /dir\\xfe/inner\\x80" in tree

    # The committed image runs and its files hold their exact names.
    names = _ok("run", "--rm", "oddc:1", "sh", "-c", "printf '%s\\n' /* /dir*/* | od -An -tx1 | tr -d ' \\n'")
    assert bytes.fromhex(names).split(b"\n")[:3] == [b"/bad\xffname", b"/bin", b"/dev"]
    assert b"/dir\xfe/inner\x80" in bytes.fromhex(names).split(b"\n")

    _ok("save", "-o", tmp_path / "saved.tar", "oddc:1")
    members = _layer_names(tmp_path / "saved.tar")
    assert members[BAD] == b"" and members[f"{DIR}/{INNER}"] == b"inner\n" and LINK in members
    assert _ok("system", "check") == "The store is consistent: no problems found.\n"


@pytest.mark.docker
def test_names_that_are_not_utf8_round_trip_through_docker(store: Path, tmp_path: Path) -> None:
    require_docker()
    context = tmp_path / "context"
    context.mkdir()
    (context / "Dockerfile").write_text(f"FROM {BASE}\nRUN cd / && {MAKE_NAMES}\n")
    _ok("build", "-q", "-t", "strata-test/odd:1", context)
    _ok("save", "-o", tmp_path / "ours.tar", "strata-test/odd:1")
    docker("load", "--input", str(tmp_path / "ours.tar"))
    try:
        names = subprocess.run(
            [
                "docker",
                "run",
                "--rm",
                "--network",
                "none",
                "strata-test/odd:1",
                "sh",
                "-c",
                "printf '%s\\n' /*; cat \"$(printf '/dir\\376/inner\\200')\"; readlink \"$(printf '/ln\\375')\"",
            ],
            capture_output=True,
            check=True,
            stdin=subprocess.DEVNULL,
            timeout=120,
        ).stdout.split(b"\n")
        assert b"/bad\xffname" in names and b"/dir\xfe" in names and b"/ln\xfd" in names
        assert names[-3:] == [b"inner", b"bad\xffname", b""]
        maker = docker("create", "strata-test/odd:1", "sh", "-c", "touch \"$(printf '/dir\\376/more\\201')\"")
        container = maker.stdout.strip()
        docker("start", "--attach", container)
        docker("commit", container, "strata-test/odd:2")
        docker("rm", container)
        docker("save", "--output", str(tmp_path / "theirs.tar"), "strata-test/odd:2")
    finally:
        subprocess.run(
            ["docker", "rmi", "--force", "strata-test/odd:1", "strata-test/odd:2"],
            capture_output=True,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    _ok("rmi", "strata-test/odd:1")
    _ok("load", "-i", tmp_path / "theirs.tar")
    listing = _listing("strata-test/odd:2")
    assert listing["/dir\\xfe/more\\x81"]["layer"] == 2
    assert listing["/dir\\xfe/inner\\x80"]["size"] == 6 and listing["/ln\\xfd"]["link"] == "bad\\xffname"
    assert _ok("ls", "strata-test/odd:2", DIR).splitlines()[1].endswith("added    more\\x81")
