"""Copy-on-write containers, against both storage drivers."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import pytest

from explorer.api import Strata
from explorer.api.containers import RunOptions
from explorer.errors import CommandNotFound, ContainerNotFound, ContainerRunning, ImageInUse
from tests.api.conftest import IMAGE


def run(app: Strata, *cmd: str, name: str | None = None, **opts: object) -> tuple[str, int, bytes]:
    info = app.create(IMAGE, RunOptions(cmd=list(cmd), **opts), name=name)  # type: ignore[arg-type]
    r, w = os.pipe()
    code = app.start_attached(info.id, None, w, w)
    os.close(w)
    out = b""
    while chunk := os.read(r, 65536):
        out += chunk
    os.close(r)
    return info.id, code, out


def snapshot(root: Path) -> dict[str, tuple[int, int, float]]:
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            out[p] = (st.st_mode, st.st_size, st.st_mtime)
    return out


def test_write_lands_in_the_container_layer_only(app: Strata) -> None:
    layers_before = snapshot(app.store.root / "layers")
    cid, code, _ = run(app, "sh", "-c", "echo changed > /etc/passwd")
    assert code == 0
    assert [(c.kind, c.path) for c in app.diff(cid)] == [("C", "/etc"), ("C", "/etc/passwd")]
    assert snapshot(app.store.root / "layers") == layers_before
    _other, code, out = run(app, "cat", "/etc/passwd")
    assert b"root:x:0:0" in out
    with app.view_of(cid).open("/etc/passwd") as f:
        assert f.read() == b"changed\n"
    app.rm(cid)
    with pytest.raises(ContainerNotFound):
        app.diff(cid)
    assert not (app.store.root / "containers" / cid).exists()


def test_delete_of_a_lower_file_is_a_whiteout(app: Strata) -> None:
    cid, code, _ = run(app, "rm", "/bin/vi")
    assert code == 0
    assert ("D", "/bin/vi") in [(c.kind, c.path) for c in app.diff(cid)]
    if app.container(cid).driver == "overlay":
        st = os.lstat(app.store.containers.diff_dir(cid) / "bin" / "vi")
        assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
    listed = {e.path for e in app.ls(cid, "/bin")}
    assert "/bin/vi" not in listed and "/bin/sh" in listed


def test_layer_lives_until_rm_and_survives_restart(app: Strata) -> None:
    cid, _, _ = run(app, "sh", "-c", "echo one >> /state")
    app.start_attached(cid, None, os.open(os.devnull, os.O_WRONLY), os.open(os.devnull, os.O_WRONLY))
    with app.view_of(cid).open("/state") as f:
        assert f.read() == b"one\none\n"


def test_exit_codes_follow_docker(app: Strata) -> None:
    assert run(app, "sh", "-c", "exit 3")[1] == 3
    assert run(app, "true")[1] == 0
    with pytest.raises(CommandNotFound) as err:
        run(app, "/no/such/command")
    assert err.value.exit_code == 127


def test_env_workdir_user(app: Strata) -> None:
    _, _, out = run(app, "sh", "-c", "echo $FOO; pwd; id -u; id -g", env=["FOO=bar"], workdir="/tmp", user="app")
    assert out.decode().split() == ["bar", "/tmp", "1000", "1000"]
    _, _, out = run(app, "id", "-u", user="123:456")
    assert out.decode().strip() == "123"


def test_commit_makes_a_layer_on_top_of_the_image(app: Strata) -> None:
    cid, _, _ = run(app, "sh", "-c", "mkdir /made && echo hi > /made/f && rm /bin/vi")
    image = app.commit(cid, "test/committed:1")
    layers = app.store.images.layers(image)
    assert len(layers) == 2
    changes = {(c.kind, c.path) for c in app.layer_changes(layers[-1].id)}
    assert {("A", "/made"), ("A", "/made/f"), ("D", "/bin/vi")} <= changes
    _, _, out = run(app, "cat", "/made/f")  # the base image still lacks it
    assert b"No such file" in out
    info = app.create("test/committed:1", RunOptions(cmd=["cat", "/made/f"]))
    r, w = os.pipe()
    assert app.start_attached(info.id, None, w, w) == 0
    os.close(w)
    assert os.read(r, 100) == b"hi\n"


def test_rm_of_running_container_needs_force_and_image_is_protected(app: Strata) -> None:
    info = app.create(IMAGE, RunOptions(cmd=["sleep", "30"]))
    app.start(info.id)
    assert app.container(info.id).state == "running"
    with pytest.raises(ContainerRunning):
        app.rm(info.id)
    with pytest.raises(ImageInUse):
        app.rmi([IMAGE])
    t0 = time.monotonic()
    app.stop(info.id, timeout=1)
    assert time.monotonic() - t0 < 8
    assert app.container(info.id).state == "exited"
    app.rm(info.id)


def test_detached_output_is_logged(app: Strata) -> None:
    info = app.create(IMAGE, RunOptions(cmd=["sh", "-c", "echo out; echo err >&2"]))
    app.start(info.id)
    assert app.wait(info.id) == 0
    out, err = app.logs(info.id)
    assert out == b"out\n" and err == b"err\n"
    # what start writes is where the store says the logs are: one definition of the names
    stdout_log, stderr_log = app.store.containers.log_paths(info.id)
    assert (stdout_log.read_bytes(), stderr_log.read_bytes()) == (b"out\n", b"err\n")
    assert (stdout_log.name, stderr_log.name) == ("stdout.log", "stderr.log")
    r, w = os.pipe()
    r2, w2 = os.pipe()
    app.follow_logs(info.id, w, w2)  # an exited container: what is there, then it returns
    os.close(w)
    os.close(w2)
    assert (os.read(r, 100), os.read(r2, 100)) == (b"out\n", b"err\n")
    os.close(r)
    os.close(r2)


def test_exec_into_running_container(app: Strata) -> None:
    info = app.create(IMAGE, RunOptions(cmd=["sleep", "30"]))
    app.start(info.id)
    try:
        r, w = os.pipe()
        code = app.exec(info.id, ["sh", "-c", "echo $$ > /exec-was-here; cat /proc/1/cmdline"], stdio=(None, w, w))
        os.close(w)
        assert code == 0
        assert b"sleep" in os.read(r, 1000)
        assert ("A", "/exec-was-here") in [(c.kind, c.path) for c in app.diff(info.id)]
    finally:
        app.rm(info.id, force=True)


def test_runtime_mounts_do_not_leak_into_the_diff(app: Strata) -> None:
    cid, code, _ = run(app, "true")
    assert code == 0
    assert app.diff(cid) == []
