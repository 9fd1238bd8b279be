"""Volumes outlive containers; docker's mount rules, against both storage drivers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from explorer.api import Strata
from explorer.api.containers import RunOptions
from explorer.errors import InvalidArgument, InvalidName, VolumeInUse
from tests.api.conftest import IMAGE
from tests.api.test_containers import run


def test_named_volume_outlives_its_container(app: Strata) -> None:
    cid, code, _ = run(app, "sh", "-c", "echo kept > /data/file", volumes=["db:/data"])
    assert code == 0
    app.rm(cid)
    cid2, code, out = run(app, "cat", "/data/file", volumes=["db:/data"])
    assert out == b"kept\n"
    with pytest.raises(VolumeInUse) as err:
        app.volume_rm(["db"])
    assert app.container(cid2).name in str(err.value)
    app.rm(cid2)
    assert app.volume_rm(["db"]) == ["db"]
    assert not (app.store.root / "volumes" / "db").exists()


def test_writes_to_a_volume_do_not_touch_the_container_layer(app: Strata) -> None:
    cid, _, _ = run(app, "sh", "-c", "echo x > /data/f", volumes=["v1:/data"])
    assert all(not c.path.startswith("/data/") for c in app.diff(cid))
    assert (app.store.volumes.data_dir("v1") / "f").read_bytes() == b"x\n"


def test_new_volume_is_filled_from_the_image_but_a_bind_never_is(app: Strata, tmp_path: Path) -> None:
    _, _, out = run(app, "ls", "/etc", volumes=["etcvol:/etc"])
    assert out.split() == [b"group", b"passwd"]
    assert (app.store.volumes.data_dir("etcvol") / "passwd").exists()
    _, _, out = run(app, "ls", "/etc", volumes=["fresh:/etc:nocopy"])
    assert out.split() == []
    empty = tmp_path / "empty"
    empty.mkdir()
    _, _, out = run(app, "ls", "/etc", volumes=[f"{empty}:/etc"])
    assert out.split() == [] and list(empty.iterdir()) == []
    # not refilled once it holds data: a second mount sees what the first left
    run(app, "rm", "/etc/group", volumes=["etcvol:/etc"])
    _, _, out = run(app, "ls", "/etc", volumes=["etcvol:/etc"])
    assert out.split() == [b"passwd"]


def test_anonymous_volumes_and_rm(app: Strata) -> None:
    cid, _, _ = run(app, "sh", "-c", "echo a > /anon/f", volumes=["/anon", "named:/named"])
    vols = {v.name: v for v in app.volumes()}
    anonymous = [v for v in vols.values() if v.anonymous]
    assert len(anonymous) == 1 and "named" in vols
    app.rm(cid, volumes=True)
    names = {v.name for v in app.volumes()}
    assert names == {"named"}
    auto, _, _ = run(app, "true", volumes=["/anon2", "named:/named"], auto_remove=True)
    assert {v.name for v in app.volumes()} == {"named"}
    assert all(c.id != auto for c in app.containers())


def test_readonly_is_enforced(app: Strata, tmp_path: Path) -> None:
    _, code, out = run(app, "sh", "-c", "echo x > /ro/f", volumes=["rov:/ro:ro"])
    assert code != 0 and b"Read-only" in out
    host = tmp_path / "host"
    host.mkdir()
    _, code, _ = run(app, "sh", "-c", "echo x > /b/f", mounts=[f"type=bind,source={host},target=/b,readonly"])
    assert code != 0 and not (host / "f").exists()
    _, code, _ = run(app, "sh", "-c", "echo x > /b/f", volumes=[f"{host}:/b"])
    assert code == 0 and (host / "f").read_bytes() == b"x\n"


def test_tmpfs_mount(app: Strata) -> None:
    cid, code, out = run(
        app, "sh", "-c", "echo t > /scratch/f && grep /scratch /proc/mounts", mounts=["type=tmpfs,target=/scratch"]
    )
    assert code == 0 and b"tmpfs" in out
    assert all(not c.path.startswith("/scratch/") for c in app.diff(cid))


def test_prune_rules(app: Strata) -> None:
    app.volume_create("keepme")
    unnamed = app.volume_create()  # `volume create` without a name is not anonymous, as in docker
    used, _, _ = run(app, "true", volumes=["/inuse"])
    stale, _, _ = run(app, "true", volumes=["/stale"])
    app.rm(stale)  # without -v: its anonymous volume stays behind, unused
    removed, _ = app.volume_prune()
    remaining = {v.name for v in app.volumes()}
    assert {"keepme", unnamed.name} <= remaining
    assert len(removed) == 1 and removed[0] not in remaining
    assert any(v.anonymous for v in app.volumes())  # the one the running container record uses
    removed, _ = app.volume_prune(all=True)
    assert {"keepme", unnamed.name} == set(removed)
    app.rm(used, volumes=True)
    assert app.volumes() == []


def test_bad_volume_input(app: Strata) -> None:
    for bad in ["a/b", "..", "x", "-x"]:
        with pytest.raises(InvalidName):
            app.volume_create(bad)
    with pytest.raises(InvalidArgument, match="does not exist"):
        app.create(IMAGE, RunOptions(cmd=["true"], volumes=["/definitely/not/here:/x"]))
    with pytest.raises(InvalidArgument):
        app.create(IMAGE, RunOptions(cmd=["true"], volumes=["v:relative"]))
    assert not os.path.exists("/definitely/not/here")
    assert app.containers() == []


def test_volume_listing_uses_the_ls_shape(app: Strata) -> None:
    run(app, "sh", "-c", "mkdir -p /d/sub && echo 12345 > /d/sub/f", volumes=["lv:/d"])
    view = app.volume_view("lv")
    entries = {h.path: h.entry for h in view.walk()}
    assert entries["/sub/f"].size == 6 and entries["/sub"].type == "dir"
    assert app.volume_size("lv") == 6
