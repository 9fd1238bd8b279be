"""Mounts a container cannot turn against its host: targets resolved inside the root,
read-only locked, device nodes dead, the profile flags as Docker has them.

Each test drives the real ``strata`` command; in the root pass uid 0 of the container
is the host's root, in the unprivileged pass the test user's.
"""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

import pytest

from tests.capabilities import real_root, require_userns
from tests.fixtures import run_strata

IMAGE = "test/busybox:1"
DEFAULT_CAPS = "00000000a80425fb"  # Docker's default set, as /proc/self/status shows it


@pytest.fixture
def store(strata_root: Path, busybox_rootfs_tar: Path) -> Path:
    require_userns()
    run_strata("import", busybox_rootfs_tar, IMAGE, check=True)
    return strata_root


def _host_dir(tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    path.mkdir()
    return path


def test_a_symlink_in_a_volume_does_not_take_a_nested_volume_to_the_host(store: Path, tmp_path: Path) -> None:
    host = _host_dir(tmp_path, "host")
    run_strata("run", "--rm", "-v", "outer:/a", IMAGE, "ln", "-s", str(host), "/a/b", check=True)
    done = run_strata(
        "run",
        "--rm",
        "-v",
        "outer:/a",
        "-v",
        "inner:/a/b/newdir",
        IMAGE,
        "sh",
        "-c",
        f"test -d {host}/newdir && echo inside",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "inside\n"  # the link was followed inside the container's root, as Docker does
    assert list(host.iterdir()) == []


def test_a_symlink_in_a_volume_does_not_take_a_file_bind_to_the_host(store: Path, tmp_path: Path) -> None:
    host = _host_dir(tmp_path, "host")
    source = tmp_path / "source.txt"
    source.write_text("data\n")
    run_strata("run", "--rm", "-v", "outer:/a", IMAGE, "ln", "-s", str(host), "/a/b", check=True)
    done = run_strata("run", "--rm", "-v", "outer:/a", "-v", f"{source}:/a/b/f", IMAGE, "cat", "/a/b/f")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "data\n"
    assert list(host.iterdir()) == []


def test_a_mount_point_the_container_layer_replaced_by_a_symlink_stays_inside(store: Path, tmp_path: Path) -> None:
    host = _host_dir(tmp_path, "host")
    run_strata("create", "--name", "victim", "-v", "vol:/srv/data", IMAGE, "true", check=True)
    run_strata("start", "-a", "victim", check=True)
    info = run_strata("inspect", "victim", check=True).stdout
    import json

    upper = Path(json.loads(info)[0]["GraphDriver"]["Data"]["UpperDir"])
    # what `rm -rf /srv; ln -s HOST /srv` inside the container leaves in its layer
    (upper / "srv").mkdir(exist_ok=True)
    os.rename(upper / "srv", upper / "srv.old")
    os.symlink(str(host), upper / "srv")
    done = run_strata("start", "-a", "victim")
    assert done.returncode == 0, done.stderr
    assert list(host.iterdir()) == []


def test_a_read_only_bind_cannot_be_remounted_writable(store: Path, tmp_path: Path) -> None:
    host = _host_dir(tmp_path, "ro")
    (host / "f").write_text("unchanged\n")
    done = run_strata(
        "run", "--rm", "-v", f"{host}:/ro:ro", IMAGE, "sh", "-c", "mount -o remount,rw,bind /ro; echo x > /ro/f"
    )
    assert done.returncode != 0
    assert (host / "f").read_text() == "unchanged\n"


def test_a_build_bind_mount_cannot_rewrite_the_context(store: Path, tmp_path: Path) -> None:
    ctx = _host_dir(tmp_path, "ctx")
    (ctx / "file").write_text("source\n")
    (ctx / "Dockerfile").write_text(
        f"FROM {IMAGE}\nRUN --mount=type=bind,target=/ctx sh -c 'mount -o remount,rw,bind /ctx; echo x > /ctx/file'\n"
    )
    done = run_strata("build", "-t", "escape:1", ctx)
    assert done.returncode != 0
    assert (ctx / "file").read_text() == "source\n"


def _rootfs_with_nodes(busybox_tar: Path, dest: Path) -> Path:
    """The busybox root plus device nodes, as an image could ship them."""
    with tarfile.open(busybox_tar) as src, tarfile.open(dest, "w") as out:
        for member in src.getmembers():
            out.addfile(member, src.extractfile(member) if member.isfile() else None)
        for name, major, minor in (("random", 1, 8), ("zero", 1, 5)):
            info = tarfile.TarInfo(f"nodes/{name}")
            info.type, info.mode, info.devmajor, info.devminor = tarfile.CHRTYPE, 0o666, major, minor
            out.addfile(info)
    return dest


@pytest.mark.parametrize("driver", ["overlay", "vfs"])
def test_device_nodes_an_image_ships_do_not_open(
    strata_root: Path, busybox_rootfs_tar: Path, tmp_path: Path, driver: str
) -> None:
    require_userns()
    rootfs = _rootfs_with_nodes(busybox_rootfs_tar, tmp_path / "nodes.tar")
    run_strata("--storage-driver", driver, "import", rootfs, "withnodes:1", check=True)
    done = run_strata(
        "--storage-driver", driver, "run", "--rm", "withnodes:1", "sh", "-c", "head -c 4 /nodes/random | wc -c"
    )
    assert done.stdout.strip() == "0", done.stdout + done.stderr
    if real_root():
        listing = run_strata("--storage-driver", driver, "run", "--rm", "withnodes:1", "ls", "-l", "/nodes/random")
        assert listing.stdout.startswith("c"), listing.stdout  # a real node, only dead


def test_the_default_profile_and_its_flags(store: Path) -> None:
    def status(*flags: str) -> dict[str, str]:
        out = run_strata("run", "--rm", *flags, IMAGE, "cat", "/proc/self/status", check=True).stdout
        return {k: v.strip() for k, _sep, v in (line.partition(":") for line in out.splitlines())}

    default = status()
    assert default["CapEff"] == DEFAULT_CAPS and default["CapBnd"] == DEFAULT_CAPS
    assert default["Seccomp"] == "2" and default["NoNewPrivs"] == "0"
    assert status("--cap-drop", "ALL")["CapBnd"] == "0000000000000000"
    assert int(status("--cap-add", "NET_ADMIN")["CapEff"], 16) == int(DEFAULT_CAPS, 16) | (1 << 12)
    assert int(status("--cap-drop", "chown")["CapEff"], 16) == int(DEFAULT_CAPS, 16) & ~1
    assert status("--security-opt", "seccomp=unconfined")["Seccomp"] == "0"
    assert status("--security-opt", "no-new-privileges")["NoNewPrivs"] == "1"
    privileged = status("--privileged")
    assert privileged["Seccomp"] == "0" and int(privileged["CapEff"], 16) > int(DEFAULT_CAPS, 16)
    # a non-root user keeps no capability, as in Docker
    assert status("-u", "1000")["CapEff"] == "0000000000000000"


def test_a_seccomp_profile_file_in_dockers_format(store: Path, tmp_path: Path) -> None:
    profile = tmp_path / "profile.json"
    profile.write_text(
        '{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdirat", "mkdir"], '
        '"action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}'
    )
    done = run_strata("run", "--rm", "--security-opt", f"seccomp={profile}", IMAGE, "mkdir", "/x")
    assert done.returncode != 0 and "Operation not permitted" in done.stderr
    ok = run_strata("run", "--rm", "--security-opt", f"seccomp={profile}", IMAGE, "touch", "/y")
    assert ok.returncode == 0, ok.stderr


@pytest.mark.parametrize(
    "args,message",
    [
        (["--cap-add", "NOT_A_CAP"], "unknown capability 'NOT_A_CAP'"),
        (["--security-opt", "seccomp=/nonexistent.json"], "cannot read the profile"),
        (["--security-opt", "bogus=1"], "is not supported"),
    ],
)
def test_bad_profile_options_are_one_line_and_create_nothing(store: Path, args: list[str], message: str) -> None:
    done = run_strata("run", "--rm", *args, IMAGE, "true")
    assert done.returncode == 125 and message in done.stderr and done.stderr.count("\n") == 1, done.stderr
    assert run_strata("ps", "-aq", check=True).stdout == ""


def test_exec_gets_the_containers_profile(store: Path) -> None:
    run_strata("run", "-d", "--name", "long", "--cap-drop", "ALL", IMAGE, "sleep", "30", check=True)
    try:
        out = run_strata("exec", "long", "cat", "/proc/self/status", check=True).stdout
        fields = {k: v.strip() for k, _sep, v in (line.partition(":") for line in out.splitlines())}
        assert fields["CapBnd"] == "0000000000000000" and fields["Seccomp"] == "2"
    finally:
        run_strata("rm", "-f", "long")
