"""Details a Docker user relies on: a failed ``run --rm`` leaves nothing, a detached
container finished when it exited, a hard link is as big as its file, and a base
without PATH gets Docker's default one."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from explorer.api import Strata
from explorer.api.containers import RunOptions
from explorer.errors import StrataError
from explorer.runtime.command import DEFAULT_PATH
from tests.api.conftest import IMAGE
from tests.fixtures import run_strata


def test_run_rm_whose_start_fails_removes_its_container(app: Strata) -> None:
    info = app.create(IMAGE, RunOptions(cmd=["true"], user="nosuchuser", auto_remove=True))
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        with pytest.raises(StrataError, match="nosuchuser"):
            app.start_attached(info.id, None, null, null)
    finally:
        os.close(null)
    assert app.containers() == []
    assert not (app.store.root / "containers" / info.id).exists()


def test_cli_run_rm_with_an_unknown_user_leaves_no_container(strata_root: Path, busybox_rootfs_tar: Path) -> None:
    run_strata("import", busybox_rootfs_tar, IMAGE, check=True)
    done = run_strata("run", "--rm", "-u", "nosuchuser", IMAGE, "true")
    assert done.returncode == 125 and "nosuchuser" in done.stderr
    assert "Traceback" not in done.stderr
    assert run_strata("ps", "-a", "-q", check=True).stdout == ""


def test_finished_at_is_when_a_detached_container_exited(app: Strata) -> None:
    info = app.create(IMAGE, RunOptions(cmd=["true"]))
    app.start(info.id)
    assert app.wait(info.id) == 0
    exited = time.time()
    time.sleep(1.5)  # Strata notices only now: FinishedAt must not move to this moment
    finished = app.inspect_container(info.id)["State"]["FinishedAt"]
    from datetime import datetime

    stamp = datetime.fromisoformat(finished.replace("Z", "+00:00")).timestamp()
    assert stamp <= exited + 0.5, (finished, exited)


def test_a_hard_link_lists_with_the_size_of_its_file(app: Strata, tmp_path: Path) -> None:
    info = app.create(IMAGE, RunOptions(cmd=["sh", "-c", "mkdir /h && printf 12345 > /h/a && ln /h/a /h/b"]))
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        assert app.start_attached(info.id, None, null, null) == 0
    finally:
        os.close(null)
    app.commit(info.id, "test/hardlinks:1")
    for target in ("test/hardlinks:1", info.id):
        listed = {e.path: (e.type, e.size, e.link) for e in app.ls(target, "/h")}
        assert listed == {"/h/a": ("file", 5, None), "/h/b": ("hardlink", 5, "/h/a")}
        recursive = {e.path: e.size for e in app.ls(target, "/h", recursive=True) if e.path.startswith("/h/")}
        assert recursive == {"/h/a": 5, "/h/b": 5}


def test_ls_json_gives_a_hard_link_its_files_size(strata_root: Path, busybox_rootfs_tar: Path, tmp_path: Path) -> None:
    run_strata("import", busybox_rootfs_tar, IMAGE, check=True)
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(f"FROM {IMAGE}\nRUN printf 1234567 > /a && ln /a /b\n")
    run_strata("build", "-t", "links:1", ctx, check=True)
    rows = [json.loads(line) for line in run_strata("ls", "links:1", "/", "--json", check=True).stdout.splitlines()]
    sizes = {r["path"]: (r["type"], r["size"]) for r in rows if r["path"] in ("/a", "/b")}
    assert sizes == {"/a": ("file", 7), "/b": ("hardlink", 7)}


def test_a_base_without_path_gets_dockers_default(app: Strata, tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM scratch\nENV PATH=/x:$PATH\n")
    result = app.build(str(ctx), tags=["nopath:1"])
    env = app.image(result.image_id).config["config"]["Env"]
    assert env == [f"PATH=/x:{DEFAULT_PATH}"]
    (ctx / "Dockerfile").write_text(f"FROM {IMAGE}\nRUN echo $PATH > /path\n")
    app.build(str(ctx), tags=["withpath:1"])
    with app.image_view("withpath:1").open("/path") as f:
        assert f.read().decode().strip() == DEFAULT_PATH
