"""The test infrastructure checked on its own, so a broken fixture is not mistaken for a
broken Strata."""

from __future__ import annotations

import io
import os
import stat
import subprocess
import tarfile
import urllib.request
from pathlib import Path

import pytest

from tests import capabilities
from tests.capabilities import missing, require_root
from tests.fixtures import run_strata
from tests.fixtures.images import (
    APP_UID,
    FIXED_MTIME,
    ListingEntry,
    busybox_rootfs,
    docker_export_listing,
    tar_listing,
    write_rootfs_tar,
)
from tests.fixtures.services import Registry

# --- capabilities ------------------------------------------------------------------------


def test_missing_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="no frobnicator"):
        missing("no frobnicator")


def test_missing_skips_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no frobnicator"):
        missing("no frobnicator")


def test_root_is_absent_by_design_in_the_unprivileged_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    monkeypatch.setenv("STRATA_TEST_UNPRIV", "1")
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(pytest.skip.Exception, match="root pass"):
        require_root()


def test_static_busybox_is_recognised(tmp_path: Path) -> None:
    capabilities.require_busybox()
    assert capabilities._is_static_elf(capabilities.BUSYBOX)
    not_elf = tmp_path / "script"
    not_elf.write_text("#!/bin/sh\n")
    assert not capabilities._is_static_elf(not_elf)
    python = Path("/usr/bin/python3").resolve()
    if python.exists():
        assert not capabilities._is_static_elf(python)


# --- busybox rootfs ----------------------------------------------------------------------


def test_busybox_rootfs_layout(busybox_rootfs_dir: Path) -> None:
    root = busybox_rootfs_dir
    assert (root / "bin" / "busybox").is_file()
    assert os.readlink(root / "bin" / "sh") == "busybox"
    assert os.readlink(root / "bin" / "ls") == "busybox"
    assert stat.S_IMODE((root / "tmp").stat().st_mode) == 0o1777
    assert stat.S_IMODE((root / "root").stat().st_mode) == 0o700
    assert "app:x:1000:1000:" in (root / "etc" / "passwd").read_text()
    assert "app:x:1000:" in (root / "etc" / "group").read_text()
    if os.geteuid() == 0:
        assert (root / "home" / "app").stat().st_uid == APP_UID


def test_busybox_rootfs_runs_in_chroot(busybox_rootfs_dir: Path) -> None:
    require_root()
    done = subprocess.run(
        ["chroot", str(busybox_rootfs_dir), "/bin/sh", "-c", "busybox true && id -u app"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "1000"


def test_rootfs_tar_is_deterministic_and_owned_numerically(busybox_rootfs_tar: Path, tmp_path: Path) -> None:
    capabilities.require_busybox()
    again = write_rootfs_tar(busybox_rootfs(tmp_path / "rootfs"), tmp_path / "again.tar")
    assert again.read_bytes() == busybox_rootfs_tar.read_bytes()
    with tarfile.open(busybox_rootfs_tar) as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    assert names == sorted(names)
    assert {m.mtime for m in members} == {FIXED_MTIME}
    assert {m.uname for m in members} == {""}
    by_name = {m.name: m for m in members}
    assert (by_name["home/app"].uid, by_name["home/app"].gid) == (1000, 1000)
    assert (by_name["bin/busybox"].uid, by_name["bin/busybox"].mode) == (0, 0o755)
    assert by_name["tmp"].mode == 0o1777
    assert by_name["bin/sh"].issym() and by_name["bin/sh"].linkname == "busybox"


# --- Docker's view -----------------------------------------------------------------------


def test_tar_listing_shape_and_hard_links_in_path_order(tmp_path: Path) -> None:
    archive = tmp_path / "flat.tar"
    with tarfile.open(archive, "w") as tar:
        for name, kind, extra in (
            ("./", tarfile.DIRTYPE, {"mode": 0o755}),
            ("./z", tarfile.REGTYPE, {"mode": 0o640, "uid": 7, "gid": 8}),
            ("./a", tarfile.LNKTYPE, {"linkname": "./z", "mode": 0o640, "uid": 7, "gid": 8}),
            ("./dev", tarfile.DIRTYPE, {"mode": 0o755}),
            ("./s", tarfile.SYMTYPE, {"linkname": "../z", "mode": 0o777}),
        ):
            info = tarfile.TarInfo(name)
            info.type = kind
            for key, value in extra.items():
                setattr(info, key, value)
            if kind == tarfile.REGTYPE:
                info.size = 3
                tar.addfile(info, io.BytesIO(b"abc"))
            else:
                tar.addfile(info)
    assert tar_listing(archive, drop_docker_init=True) == [
        ListingEntry(path="/a", type="file", mode=0o640, uid=7, gid=8, size=3, link=None),
        ListingEntry(path="/s", type="symlink", mode=0o777, uid=0, gid=0, size=0, link="../z"),
        ListingEntry(path="/z", type="hardlink", mode=0o640, uid=7, gid=8, size=3, link="/a"),
    ]
    assert "/dev" in {e["path"] for e in tar_listing(archive)}


def _by_path(listing: list[ListingEntry]) -> dict[str, ListingEntry]:
    return {entry["path"]: entry for entry in listing}


@pytest.mark.docker
def test_export_listing_of_busybox(docker_busybox: str) -> None:
    listing = docker_export_listing(docker_busybox)
    assert [e["path"] for e in listing] == sorted(e["path"] for e in listing)
    assert all(set(e) == {"path", "type", "mode", "uid", "gid", "size", "link"} for e in listing)
    entries = _by_path(listing)
    busybox = entries["/bin/busybox"]
    assert (busybox["type"], busybox["mode"], busybox["uid"], busybox["link"]) == ("file", 0o755, 0, None)
    assert busybox["size"] == Path("/bin/busybox").stat().st_size
    assert entries["/bin/sh"] == ListingEntry(
        path="/bin/sh", type="symlink", mode=0o777, uid=0, gid=0, size=0, link="busybox"
    )
    assert entries["/tmp"]["mode"] == 0o1777
    assert (entries["/home/app"]["uid"], entries["/home/app"]["gid"]) == (1000, 1000)
    for added in ("/.dockerenv", "/dev", "/dev/console", "/proc", "/sys", "/etc/hosts", "/etc/mtab"):
        assert added not in entries


@pytest.mark.docker
def test_export_listing_of_rich_image(docker_rich_image: str) -> None:
    entries = _by_path(docker_export_listing(docker_rich_image))
    assert "/data/lower.txt" not in entries and "/data/gone" not in entries
    assert [p for p in entries if p.startswith("/data/replaced/")] == ["/data/replaced/new.txt"]
    assert entries["/data/keep/file.txt"]["size"] == len("keep\n")
    assert entries["/links/hard.txt"]["type"] == "file"
    assert entries["/links/hard.txt"]["size"] == len("target\n")
    target = entries["/links/target.txt"]
    assert (target["type"], target["link"], target["size"]) == ("hardlink", "/links/hard.txt", len("target\n"))
    assert entries["/links/relative"]["link"] == "target.txt"
    assert entries["/links/absolute"]["link"] == "/links/target.txt"
    assert entries["/links/dangling"]["link"] == "/nowhere/at/all"
    assert entries["/modes/setuid"]["mode"] == 0o4755
    assert entries["/modes/setgid"]["mode"] == 0o2775
    assert entries["/modes/sticky"]["mode"] == 0o1777
    assert (entries["/modes/fifo"]["type"], entries["/modes/fifo"]["mode"]) == ("fifo", 0o600)
    assert entries["/empty/outer/inner"]["type"] == "dir"
    assert not [p for p in entries if p.startswith(("/empty/outer/inner/", "/empty/alone/"))]
    assert entries["/names/dir with space/ünïcødé.txt"]["size"] == len("hi\n")
    owned = entries["/home/app/owned/file.txt"]
    assert (owned["uid"], owned["gid"]) == (1000, 1000)


# --- registry and strata -----------------------------------------------------------------


@pytest.mark.registry
def test_registry_answers_v2_and_logs_requests(registry: Registry) -> None:
    with urllib.request.urlopen(f"{registry.url}/v2/", timeout=5) as response:
        assert response.status == 200
    assert registry.address.startswith("127.0.0.1:")
    served = registry.requests()
    assert served and served[-1].method == "GET" and served[-1].path == "/v2/"
    assert served[-1].status == 200


def test_strata_root_is_private_and_exported(strata_root: Path) -> None:
    assert list(strata_root.iterdir()) == []
    assert stat.S_IMODE(strata_root.stat().st_mode) == 0o700
    assert os.environ["STRATA_ROOT"] == str(strata_root)


def test_run_strata_refuses_without_a_store(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STRATA_ROOT", raising=False)
    with pytest.raises(AssertionError, match="refusing"):
        run_strata("images")


def test_run_strata_runs_the_cli(strata_root: Path) -> None:
    done = run_strata("--help")
    assert done.returncode == 0, done.stderr
    assert "usage" in done.stdout.lower()
