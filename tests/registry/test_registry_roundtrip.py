"""Push and pull against a real registry on loopback (Debian's docker-registry)."""

from __future__ import annotations

import json
import threading
import urllib.request
from pathlib import Path

import pytest

from explorer.api import Strata
from explorer.errors import Cancelled, ImageNotFound, ManifestUnknown, RegistryError
from explorer.registry import events
from explorer.registry.client import RegistryClient
from explorer.registry.ensure import ensure_image
from explorer.registry.events import TransferEvent
from explorer.registry.manifests import MT_OCI_LAYER_ZSTD, Descriptor, image_index
from explorer.registry.pull import pull
from explorer.registry.push import push
from explorer.registry.settings import RegistrySettings
from explorer.store.images import host_architecture
from tests.fixtures import run_strata
from tests.fixtures.services import Registry
from tests.registry.conftest import add_layer, blob_gets, derived, leftovers, listing

pytestmark = pytest.mark.registry


def test_push_then_pull_into_an_empty_store_gives_the_same_image(
    app: Strata, other: Strata, registry: Registry, busybox_rootfs_tar: Path
) -> None:
    _, top = derived(app, busybox_rootfs_tar)
    name = f"{registry.address}/demo/app:1"
    app.tag("test/app:1", name)
    seen: list[TransferEvent] = []
    pushed = push(app.store, name, progress=seen.append)
    assert pushed.uploaded == 3
    assert {e.status for e in seen if e.layer} >= {events.PREPARING, events.PUSHED}

    got: list[TransferEvent] = []
    result = pull(other.store, name, progress=got.append)
    assert result.image.id == top.id  # the config bytes went through unchanged
    assert result.digest == pushed.digest
    assert result.tag == name and other.image(name).id == top.id
    assert listing(other, name) == listing(app, "test/app:1")
    assert [layer.diff_id for layer in other.store.images.layers(result.image)] == top.diff_ids
    moving = [e for e in got if e.status == events.DOWNLOADING]
    assert moving and all(e.total > 0 and e.current <= e.total for e in moving)
    assert sum(e.status == events.COMPLETE for e in got) == 3
    assert leftovers(other.store) == []


def test_a_second_push_sends_no_layer_and_another_repository_mounts(
    app: Strata, registry: Registry, busybox_rootfs_tar: Path
) -> None:
    derived(app, busybox_rootfs_tar)
    first = f"{registry.address}/demo/app:1"
    app.tag("test/app:1", first)
    push(app.store, first)
    before = len(registry.requests())

    again = push(app.store, first)
    assert again.uploaded == 0
    requests = registry.requests()[before:]
    assert not [r for r in requests if r.method in ("PATCH", "PUT") and "/blobs/" in r.path]

    second = f"{registry.address}/elsewhere/app:2"
    app.tag("test/app:1", second)
    before = len(registry.requests())
    seen: list[TransferEvent] = []
    moved = push(app.store, second, progress=seen.append)
    assert moved.uploaded == 0
    requests = registry.requests()[before:]
    mounts = [r for r in requests if r.method == "POST" and "mount=" in r.path]
    assert len(mounts) == 3 and all(r.status == 201 for r in mounts)
    assert not [r for r in requests if r.method == "PATCH"]
    assert sum(e.status == events.MOUNTED for e in seen) == 3


def test_pulling_an_image_whose_base_is_here_fetches_only_the_new_layers(
    app: Strata, other: Strata, registry: Registry, busybox_rootfs_tar: Path
) -> None:
    derived(app, busybox_rootfs_tar)
    base, full = f"{registry.address}/demo/base:1", f"{registry.address}/demo/app:1"
    app.tag("test/busybox:1", base)
    app.tag("test/app:1", full)
    push(app.store, base)
    push(app.store, full)
    pull(other.store, base)

    before = len(registry.requests())
    seen: list[TransferEvent] = []
    result = pull(other.store, full, progress=seen.append)
    assert result.downloaded == 2
    fetched = blob_gets(registry, before)
    assert len(fetched) == 3  # the config and the two new layers; the base layer is not asked for
    assert sum(e.status == events.EXISTS for e in seen) == 1
    assert pull(other.store, full).up_to_date


def test_an_interrupted_pull_keeps_finished_layers_and_the_next_pull_finishes(
    app: Strata, other: Strata, registry: Registry, busybox_rootfs_tar: Path
) -> None:
    derived(app, busybox_rootfs_tar)
    name = f"{registry.address}/demo/app:1"
    app.tag("test/app:1", name)
    push(app.store, name)
    cancel = threading.Event()

    def stop_after_first_layer(event: TransferEvent) -> None:
        if event.status == events.COMPLETE:
            cancel.set()

    with pytest.raises(Cancelled, match="pull cancelled"):
        pull(other.store, name, progress=stop_after_first_layer, cancel=cancel, concurrency=1)
    assert len(other.store.layers.all()) == 1
    assert other.store.images.all() == []
    assert leftovers(other.store) == []

    before = len(registry.requests())
    result = pull(other.store, name)
    assert result.downloaded == 2
    assert len(blob_gets(registry, before)) == 3  # config + the two layers still missing
    assert listing(other, name) == listing(app, "test/app:1")


def test_zstd_layers_and_oci_manifests_round_trip(
    app: Strata, other: Strata, registry: Registry, busybox_rootfs_tar: Path
) -> None:
    derived(app, busybox_rootfs_tar)
    name = f"{registry.address}/demo/zstd:1"
    app.tag("test/app:1", name)
    push(app.store, name, compression="zstd")
    request = urllib.request.Request(
        f"{registry.url}/v2/demo/zstd/manifests/1", headers={"Accept": "application/vnd.oci.image.manifest.v1+json"}
    )
    with urllib.request.urlopen(request) as response:
        manifest = json.loads(response.read())
    assert {layer["mediaType"] for layer in manifest["layers"]} == {MT_OCI_LAYER_ZSTD}
    result = pull(other.store, name)
    assert listing(other, name) == listing(app, "test/app:1")
    assert result.image.id == app.image("test/app:1").id


def test_an_index_resolves_to_this_platform_or_the_one_asked_for(
    app: Strata, other: Strata, registry: Registry, busybox_rootfs_tar: Path, settings: RegistrySettings
) -> None:
    base = app.import_rootfs(str(busybox_rootfs_tar), "test/busybox:1")
    native = add_layer(app.store, base, "test/multi:native", {"/arch": host_architecture().encode()})
    foreign_config = json.loads(native.raw_config)
    foreign_config["architecture"] = "s390x"
    foreign = app.store.images.create(foreign_config, native.top_layer, tags=["test/multi:foreign"])
    digests = {}
    for tag in ("native", "foreign"):
        name = f"{registry.address}/demo/multi:{tag}"
        app.tag(f"test/multi:{tag}", name)
        digests[tag] = push(app.store, name, fmt="oci")
    entries = [
        Descriptor(
            "application/vnd.oci.image.manifest.v1+json",
            digests["native"].digest,
            digests["native"].size,
            platform={"os": "linux", "architecture": host_architecture()},
        ),
        Descriptor(
            "application/vnd.oci.image.manifest.v1+json",
            digests["foreign"].digest,
            digests["foreign"].size,
            platform={"os": "linux", "architecture": "s390x"},
        ),
    ]
    raw = image_index("oci", entries)
    with RegistryClient(registry.address, settings) as client:
        client.put_manifest("demo/multi", "all", raw, "application/vnd.oci.image.index.v1+json")

    name = f"{registry.address}/demo/multi:all"
    assert pull(other.store, name).image.id == native.id
    chosen = pull(other.store, name, platform="linux/s390x")
    assert chosen.image.id == foreign.id and chosen.image.config["architecture"] == "s390x"
    with pytest.raises(RegistryError, match=r"no image for platform linux/riscv64; available: .*linux/s390x"):
        pull(other.store, name, platform="linux/riscv64")


def test_unknown_images_and_digests_are_one_line_errors(other: Strata, registry: Registry) -> None:
    with pytest.raises(ManifestUnknown, match=r"manifest for .*/nothing/here:latest not found"):
        pull(other.store, f"{registry.address}/nothing/here")
    with pytest.raises(ManifestUnknown, match="not found"):
        pull(other.store, f"{registry.address}/nothing/here@sha256:" + "0" * 64)
    proc = run_strata("pull", f"{registry.address}/nothing/here:1", root=other.root)
    assert proc.returncode == 1
    assert proc.stderr.strip().count("\n") == 0
    assert proc.stderr.startswith("Error: manifest for ") and "not found" in proc.stderr
    assert other.store.layers.all() == [] and leftovers(other.store) == []


def test_build_base_images_are_pulled_when_missing_or_asked_for(
    app: Strata, other: Strata, registry: Registry, busybox_rootfs_tar: Path
) -> None:
    derived(app, busybox_rootfs_tar)
    name = f"{registry.address}/demo/base:1"
    app.tag("test/mid:1", name)
    push(app.store, name)

    before = len(registry.requests())
    first = ensure_image(other, name)
    assert first.id == app.image("test/mid:1").id
    assert len(registry.requests()) > before

    before = len(registry.requests())
    assert ensure_image(other, name).id == first.id
    assert len(registry.requests()) == before  # present: the registry is not asked

    app.tag("test/app:1", name)
    push(app.store, name)
    refreshed = ensure_image(other.store, name, pull=True)
    assert refreshed.id == app.image("test/app:1").id
    with pytest.raises(ImageNotFound):
        ensure_image(other, "sha256:" + "1" * 64)


def test_the_cli_pulls_and_pushes_with_docker_like_output(
    app: Strata, other: Strata, registry: Registry, busybox_rootfs_tar: Path
) -> None:
    derived(app, busybox_rootfs_tar)
    app.close()
    name = f"{registry.address}/demo/cli"
    run_strata("tag", "test/app:1", name, root=app.root, check=True)
    pushed = run_strata("push", name, root=app.root, check=True)
    assert f"The push refers to repository [{name}]" in pushed.stdout
    assert "Pushed" in pushed.stdout and "latest: digest: sha256:" in pushed.stdout

    pulled = run_strata("pull", name, root=other.root, check=True)
    lines = pulled.stdout.splitlines()
    assert lines[0] == "Using default tag: latest"
    assert lines[1] == f"latest: Pulling from {name}"
    assert "Pull complete" in pulled.stdout
    assert f"Status: Downloaded newer image for {name}:latest" in lines
    assert lines[-1] == f"{name}:latest"
    again = run_strata("pull", "-q", name, root=other.root, check=True)
    assert again.stdout == f"{name}:latest\n"


def test_a_cancelled_push_leaves_no_tag_behind(app: Strata, registry: Registry, busybox_rootfs_tar: Path) -> None:
    derived(app, busybox_rootfs_tar)
    name = f"{registry.address}/demo/cancelled:1"
    app.tag("test/app:1", name)
    cancel = threading.Event()

    def stop_when_bytes_move(event: TransferEvent) -> None:
        if event.status == events.UPLOADING:
            cancel.set()

    with pytest.raises(Cancelled, match="push cancelled"):
        push(app.store, name, progress=stop_when_bytes_move, cancel=cancel)
    assert not [r for r in registry.requests() if "/manifests/" in r.path and r.method == "PUT"]
