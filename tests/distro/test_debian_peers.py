"""Root against rootless against Docker, on the Debian image (the root pass drives the
unprivileged side through ``runuser``).

- the image tree a rootless store builds equals the root store's, entry for entry, and
  Docker's build of the same Dockerfile (``docker export``);
- an image Docker built, saved and loaded into a rootless store keeps every owner and
  mode inside a container, and ``strata save`` of it gives Docker the same owners back;
- a user without a subordinate range is told what is missing, and what cannot work
  (apt-get) stops with that message.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.capabilities import require_docker
from tests.distro.conftest import BASE, SINGLE_USER, SUBIDS_USER, OtherUser, other_user
from tests.distro.test_debian_owners import EXPECTED, OWNERS_DOCKERFILE, STAT, stat_table
from tests.fixtures import run_strata
from tests.fixtures.images import (
    _added_by_docker,
    _relink_in_path_order,
    docker,
    docker_export_listing,
    docker_import,
    docker_save,
)

DOCKER_TAG = "strata-test/debian-owners:1"
# Files whose size records when or in which order things ran, not what the image holds.
VOLATILE = (
    "/var/log/",
    "/var/cache/ldconfig/aux-cache",
    "/var/cache/debconf/",
    "/var/lib/dpkg/status-old",
    "/etc/shadow-",
    "/etc/gshadow-",
    "/etc/passwd-",
    "/etc/group-",
    "/etc/subuid-",
    "/etc/subgid-",
)


def _comparable(entries: list[dict]) -> dict[str, tuple]:
    """Path → what both sides must agree on; of a hard-link group the first name in path
    order holds the data (the order an archive stored them in is no property of the tree)."""
    by_path = {e["path"]: {k: e[k] for k in ("path", "type", "mode", "uid", "gid", "size", "link")} for e in entries}
    _relink_in_path_order(by_path)  # type: ignore[arg-type]
    out = {}
    for e in by_path.values():
        path = e["path"]
        volatile = any(path.startswith(v) if v.endswith("/") else path == v for v in VOLATILE)
        size = None if volatile else e["size"]
        out[path] = (e["type"], e["mode"] & 0o7777, e["uid"], e["gid"], size, e["link"])
    return out


def _listing(output: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines() if line.strip()]


def _diff(a: dict[str, tuple], b: dict[str, tuple]) -> list[str]:
    out = [f"only first: {p}" for p in sorted(a.keys() - b.keys())]
    out += [f"only second: {p}" for p in sorted(b.keys() - a.keys())]
    out += [f"{p}: {a[p]} != {b[p]}" for p in sorted(a.keys() & b.keys()) if a[p] != b[p]]
    return out


@pytest.fixture(scope="module")
def rootless(readable_tree: Path) -> OtherUser:
    return other_user(SUBIDS_USER, readable_tree)


@pytest.fixture(scope="module")
def rootless_store(rootless: OtherUser, debian_tar: Path) -> Iterator[Path]:
    holder = rootless.dir("store")
    store = holder / "store"
    rootless.run("import", debian_tar, BASE, root=store, check=True)
    yield store
    rootless.remove(holder)


def _owners_context(user: OtherUser | None, tmp: Path) -> Path:
    if user is None:
        ctx = tmp / "ctx"
        ctx.mkdir(exist_ok=True)
    else:
        ctx = user.dir("ctx")
    (ctx / "Dockerfile").write_text(OWNERS_DOCKERFILE)
    if user is not None:
        shutil.chown(ctx / "Dockerfile", user.name, user.name)
    return ctx


@pytest.mark.timeout(1800)
def test_rootless_tree_equals_root_tree_and_dockers(
    deb_store: Path, rootless: OtherUser, rootless_store: Path, tmp_path: Path
) -> None:
    ctx = _owners_context(None, tmp_path)
    run_strata("build", "-t", "owners:1", ctx, root=deb_store, check=True, timeout=900)
    as_root = _comparable(
        _listing(run_strata("ls", "owners:1", "/", "-R", "--json", root=deb_store, check=True).stdout)
    )
    rctx = _owners_context(rootless, tmp_path)
    rootless.run("build", "-t", "owners:1", rctx, root=rootless_store, check=True)
    as_user = _comparable(
        _listing(rootless.run("ls", "owners:1", "/", "-R", "--json", root=rootless_store, check=True).stdout)
    )
    rootless.remove(rctx)
    assert _diff(as_root, as_user) == []

    require_docker()
    docker_import(_debian_tar_for_docker(), BASE)
    docker("build", "--quiet", "--tag", DOCKER_TAG, str(ctx), timeout=900)
    dockers = _comparable([dict(e) for e in docker_export_listing(DOCKER_TAG)])
    # docker export shows the container's init layer (/dev, /etc/hosts …) instead of the image's
    ours = {p: v for p, v in as_root.items() if not _added_by_docker({"path": p, "type": v[0], "link": v[5]})}  # type: ignore[typeddict-item]
    assert _diff(ours, dockers) == []


def _debian_tar_for_docker() -> Path:
    from tests.fixtures import debian

    return debian.tarball_path()


@pytest.mark.timeout(1800)
def test_docker_built_image_keeps_its_owners_through_a_rootless_store(
    rootless: OtherUser, rootless_store: Path, tmp_path: Path
) -> None:
    require_docker()
    docker_import(_debian_tar_for_docker(), BASE)
    ctx = _owners_context(None, tmp_path)
    docker("build", "--quiet", "--tag", DOCKER_TAG, str(ctx), timeout=900)
    holder = rootless.dir("archives")
    try:
        saved = docker_save(DOCKER_TAG, holder / "from-docker.tar")
        shutil.chown(saved, rootless.name, rootless.name)
        rootless.run("load", "-i", saved, root=rootless_store, check=True)
        inside = rootless.run("run", "--rm", DOCKER_TAG, "sh", "-c", STAT, root=rootless_store, check=True)
        assert stat_table(inside.stdout) == EXPECTED
        wrote = rootless.run(
            "run",
            "--rm",
            "-u",
            "1000",
            DOCKER_TAG,
            "sh",
            "-c",
            "echo w > /data/w && cat /data/w",
            root=rootless_store,
            check=True,
        )
        assert wrote.stdout == "w\n"

        back = holder / "from-strata.tar"
        rootless.run("save", "-o", back, DOCKER_TAG, root=rootless_store, check=True)
        docker("rmi", "--force", DOCKER_TAG)
        docker("load", "--input", str(back))
        again = docker("run", "--rm", "--network", "none", DOCKER_TAG, "sh", "-c", STAT)
        assert stat_table(again.stdout) == EXPECTED
    finally:
        rootless.remove(holder)


@pytest.mark.timeout(900)
def test_a_single_id_mapping_is_named_and_apt_get_stops_with_the_fix(readable_tree: Path, debian_tar: Path) -> None:
    single = other_user(SINGLE_USER, readable_tree)
    holder = single.dir("single")
    # "the first command" is the first of this user's namespace: start from a new one
    subprocess.run(["pkill", "-KILL", "-u", SINGLE_USER, "-f", "strata-keeper"], check=False)
    try:
        store = holder / "store"
        first = single.run("import", debian_tar, BASE, root=store, check=True)
        told = first.stderr + single.run("run", "--rm", BASE, "true", root=store, check=True).stderr
        assert told.count("rootless with a single id") == 1, told
        assert f"usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {SINGLE_USER}" in told
        # the index keeps the owner the single id cannot hold on disk
        shadow = [
            e
            for e in _listing(single.run("ls", BASE, "/etc", "--json", root=store, check=True).stdout)
            if e["path"] == "/etc/shadow"
        ]
        assert (shadow[0]["uid"], shadow[0]["gid"]) == (0, 42)
        info = single.run("system", "info", root=store, check=True).stdout
        assert "rootless: id mapping single" in info
        ctx = single.dir("ctx")
        (ctx / "Dockerfile").write_text(f"FROM {BASE}\nRUN apt-get update\n")
        failed = single.run("build", "--progress", "plain", ctx, root=store)
        assert failed.returncode != 0
        last = failed.stderr.strip().splitlines()[-1]
        assert last.startswith("Error: Dockerfile:2: RUN apt-get update") and "rootless with a single id" in last
        assert "internal error" not in failed.stderr
        single.remove(ctx)
    finally:
        single.remove(holder)
