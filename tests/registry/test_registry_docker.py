"""Docker and Podman as the other end: what Strata pushes Docker pulls and runs, what
Docker pushes Strata pulls and runs, and images straight from a local daemon.

Docker's daemon is shared by the whole machine: every name used here is unique to the
test and removed afterwards."""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from explorer.api import Strata
from tests.capabilities import missing, require_docker, require_tool, require_userns
from tests.fixtures import run_strata
from tests.fixtures.images import BUSYBOX_TAG, RICH_TAG, docker, docker_export_listing
from tests.fixtures.services import Registry
from tests.registry.conftest import derived

FIELDS = ("path", "type", "mode", "uid", "gid", "size", "link")
pytestmark = pytest.mark.registry


@pytest.fixture
def docker_names() -> Iterator[list[str]]:
    """Image names this test creates in Docker; removed at the end."""
    names: list[str] = []
    yield names
    if names:
        subprocess.run(["docker", "rmi", "--force", *names], capture_output=True, stdin=subprocess.DEVNULL)


def strata_listing(app: Strata, name: str) -> list[dict[str, object]]:
    rows = [row.to_json() for row in app.ls(name, "/", recursive=True)]
    return sorted(({k: r[k] for k in FIELDS} for r in rows), key=lambda r: str(r["path"]))


def test_docker_pulls_and_runs_what_strata_pushed(
    app: Strata, registry: Registry, busybox_rootfs_tar: Path, docker_names: list[str]
) -> None:
    require_docker()
    derived(app, busybox_rootfs_tar)
    name = f"{registry.address}/strata/pushed:{secrets.token_hex(4)}"
    app.tag("test/app:1", name)
    run_strata("push", name, root=app.root, check=True)
    docker_names.append(name)
    docker("pull", name)
    out = docker(
        "run",
        "--rm",
        "--network",
        "none",
        name,
        "/bin/sh",
        "-c",
        "cat /app/hello.txt /app/more.txt; test -e /app/data.bin || echo deleted",
    )
    assert out.stdout == "hello\nmore\ndeleted\n"
    inspected = docker("image", "inspect", "--format", "{{.Id}}", name).stdout.strip()
    assert inspected == app.image(name).id


def test_strata_pulls_and_runs_what_docker_pushed(
    docker_rich_image: str, other: Strata, registry: Registry, docker_names: list[str]
) -> None:
    name = f"{registry.address}/docker/rich:{secrets.token_hex(4)}"
    docker("tag", RICH_TAG, name)
    docker_names.append(name)
    docker("push", name)
    proc = run_strata("pull", name, root=other.root, check=True)
    assert "Pull complete" in proc.stdout
    assert other.image(name).id == docker("image", "inspect", "--format", "{{.Id}}", RICH_TAG).stdout.strip()
    theirs = sorted(
        ({k: e[k] for k in FIELDS} for e in docker_export_listing(RICH_TAG)),  # type: ignore[literal-required]
        key=lambda r: str(r["path"]),
    )
    assert strata_listing(other, name) == theirs
    require_userns()
    ran = run_strata("run", "--rm", name, "/bin/cat", "/data/replaced/new.txt", root=other.root, check=True)
    assert ran.stdout == "new\n"


def test_pull_from_the_docker_daemon(docker_busybox: str, other: Strata) -> None:
    proc = run_strata("pull", f"docker-daemon:{BUSYBOX_TAG}", root=other.root, check=True)
    assert proc.stdout.splitlines()[-1] == f"docker.io/{BUSYBOX_TAG}"
    assert other.image(BUSYBOX_TAG).id == docker("image", "inspect", "--format", "{{.Id}}", BUSYBOX_TAG).stdout.strip()
    assert list(other.store.tmp.iterdir()) == []
    missing = run_strata("pull", "docker-daemon:strata-test/not-there:never", root=other.root)
    assert missing.returncode == 1 and missing.stderr.startswith("Error: docker save")
    assert missing.stderr.count("\n") == 1


def test_pull_from_podman(busybox_rootfs_tar: Path, other: Strata) -> None:
    podman = require_tool("podman")
    name = f"localhost/strata-test-{secrets.token_hex(4)}:1"
    made = subprocess.run(
        [podman, "import", str(busybox_rootfs_tar), name], capture_output=True, text=True, stdin=subprocess.DEVNULL
    )
    if made.returncode != 0:
        missing(f"podman cannot import an image here: {made.stderr.strip().splitlines()[-1:]}")
    try:
        run_strata("pull", f"podman:{name}", root=other.root, check=True)
        image = other.image(name)
        assert image.tags == [name]
        assert other.ls(name, "/bin/busybox")[0].size == Path("/bin/busybox").stat().st_size
    finally:
        subprocess.run([podman, "rmi", "--force", name], capture_output=True, stdin=subprocess.DEVNULL)
