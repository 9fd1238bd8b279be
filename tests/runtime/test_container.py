"""One suite over both storage drivers: what a process in a container sees and
what the container leaves behind."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from explorer.errors import CommandNotExecutable, CommandNotFound, InvalidArgument
from explorer.runtime import (
    Mount,
    Process,
    exec_in,
    idmap,
    is_alive,
    kill,
    read_exit_code,
    read_state,
    start,
    wait_exit,
)
from explorer.runtime.layerpath import LayerStack
from tests.capabilities import missing
from tests.runtime.harness import Harness, listing

REPO = Path(__file__).resolve().parents[2]


def _sub_ids_mapped() -> bool:
    return idmap.plan().uid.contains(1000)


def _require_sub_ids() -> None:
    if not _sub_ids_mapped():
        missing("needs a subordinate uid range (/etc/subuid, newuidmap) to switch users rootless")


# --- exit codes ----------------------------------------------------------------------------


def test_exit_codes(ctr: Harness) -> None:
    assert ctr.run(["true"]).code == 0
    assert ctr.run(["false"]).code == 1
    assert ctr.run(["sh", "-c", "exit 42"]).code == 42
    assert read_exit_code(ctr.runtime_dir) == 42


@pytest.mark.parametrize("command", [["no-such-command"], ["/no/such/file"]])
def test_missing_command_is_127(ctr: Harness, command: list[str]) -> None:
    with pytest.raises(CommandNotFound) as info:
        ctr.run(command)
    assert info.value.exit_code == 127
    assert command[0] in str(info.value)
    assert read_exit_code(ctr.runtime_dir) == 127


@pytest.mark.parametrize("command", [["/etc/passwd"], ["/etc"]])
def test_command_that_cannot_run_is_126(ctr: Harness, command: list[str]) -> None:
    with pytest.raises(CommandNotExecutable) as info:
        ctr.run(command)
    assert info.value.exit_code == 126
    assert read_exit_code(ctr.runtime_dir) == 126


def test_killed_by_signal_is_128_plus_n(ctr: Harness) -> None:
    cfg = ctr.config(["sh", "-c", "trap 'exit 3' TERM; while true; do sleep 0.05; done"])
    with open(os.devnull, "wb") as null:
        running = start(cfg, stdout=null.fileno(), stderr=null.fileno())
        deadline = time.monotonic() + 20
        code = None
        while code is None and time.monotonic() < deadline:  # until the trap is in place
            running.kill(signal.SIGTERM)
            code = running.wait(timeout=0.2)
        assert code == 3
        running = start(ctr.config(["sleep", "30"]), stdout=null.fileno())
        assert running.kill(signal.SIGKILL)
        assert running.wait(timeout=10) == 128 + signal.SIGKILL


# --- process environment -----------------------------------------------------------------


def test_env_cwd_and_defaults(ctr: Harness) -> None:
    script = 'echo "$FOO|$PATH|$HOSTNAME|$HOME"; pwd'
    result = ctr.run(["sh", "-c", script], env=["FOO=bar baz"], cwd="/work/dir")
    first, cwd = result.out.splitlines()
    assert first == "bar baz|/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin|box|/root"
    assert cwd == "/work/dir"


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("", "0 0 0"),
        ("app", "1000 1000 1000 2000"),
        ("1000", "1000 1000 1000 2000"),
        ("1000:2000", "1000 2000 2000"),
        ("app:extra", "1000 2000 2000"),
        ("4321", "4321 0 0"),
    ],
)
def test_user(ctr: Harness, spec: str, expected: str) -> None:
    if spec:
        _require_sub_ids()
    result = ctr.run(["sh", "-c", 'echo "$(id -u) $(id -g) $(id -G)"; echo "$HOME"'], user=spec)
    ids, home = result.out.splitlines()
    assert ids == expected, result.err
    assert home == ("/home/app" if spec.startswith(("app", "1000")) else ("/root" if not spec else "/"))


def test_user_can_write_its_home(ctr: Harness) -> None:
    _require_sub_ids()
    result = ctr.run(["sh", "-c", "echo hi > ~/note && ls -ln ~/note"], user="app")
    assert result.code == 0, result.err
    assert result.out.split()[2:4] == ["1000", "1000"]


@pytest.mark.parametrize("spec", ["nosuch", "app:nosuchgroup"])
def test_unknown_user_or_group(ctr: Harness, spec: str) -> None:
    with pytest.raises(InvalidArgument, match="unable to find"):
        ctr.run(["true"], user=spec)


def test_user_lookup_stays_inside_the_root(
    ctr: Harness, make_container: Callable[..., Harness], tmp_path: Path
) -> None:
    """A symlinked /etc/passwd resolves in the container root, never on the host."""
    host_dir = tmp_path / "host-secrets"
    host_dir.mkdir()
    (host_dir / "passwd").write_text("evil:x:4242:4242::/:/bin/sh\n")
    layer = tmp_path / "escape-layer"
    (layer / "etc").mkdir(parents=True)
    (layer / "etc" / "passwd").symlink_to(host_dir / "passwd")
    (layer / "etc" / "group").symlink_to("../" * 12 + str(host_dir / "passwd").lstrip("/"))
    ctr.add_layers_on_top(layer)
    with pytest.raises(InvalidArgument, match="unable to find user evil"):
        ctr.run(["true"], user="evil")
    with pytest.raises(InvalidArgument, match="unable to find group evil"):
        ctr.run(["true"], user="0:evil")
    assert ctr.run(["true"], user="4242").code == 0  # numeric ids need no entry


def test_user_lookup_follows_links_within_the_root(
    make_container: Callable[..., Harness], tmp_path: Path, image: Path
) -> None:
    layer = tmp_path / "link-layer"
    (layer / "etc").mkdir(parents=True)
    (layer / "usr" / "lib").mkdir(parents=True)
    (layer / "usr" / "lib" / "passwd").write_text("svc:x:0:0::/srv:/bin/sh\n")
    (layer / "etc" / "passwd").symlink_to("/usr/lib/passwd")
    for driver in ("overlay", "vfs"):
        h = make_container(driver, [layer, image])
        assert h.run(["sh", "-c", "echo $HOME"], user="svc").out.strip() == "/srv"


def test_pid_one_and_hostname(ctr: Harness) -> None:
    script = "echo $$; hostname; cat /etc/hostname; tr '\\0' ' ' < /proc/1/cmdline; echo"
    result = ctr.run(["sh", "-c", script], hostname="web-1")
    pid, name, file_name, cmdline = result.out.splitlines()
    assert (pid, name, file_name) == ("1", "web-1", "web-1")
    assert cmdline.startswith("sh")


def test_stdin_only_when_asked(ctr: Harness) -> None:
    assert ctr.run(["cat"], stdin=True, stdin_data=b"through stdin\n").out == "through stdin\n"
    assert ctr.run(["cat"], stdin_data=b"not passed\n").out == ""


def test_minimal_dev_and_proc(ctr: Harness) -> None:
    script = (
        "ls /dev; echo x > /dev/null; head -c 5 /dev/urandom | wc -c; head -c 3 /dev/zero | wc -c;"
        "grep -E ' /dev/(pts|shm) ' /proc/mounts | cut -d' ' -f2,3; ls /proc/self/fd >/dev/null && echo proc"
    )
    result = ctr.run(["sh", "-c", script])
    lines = result.out.split()
    for node in ("null", "zero", "full", "random", "urandom", "tty", "pts", "shm", "ptmx", "fd"):
        assert node in lines, result.out
    assert "5" in lines and "3" in lines and "proc" in lines
    assert "/dev/pts" in result.out and "devpts" in result.out and "/dev/shm" in result.out


def test_network_none_has_only_loopback(ctr: Harness) -> None:
    result = ctr.run(["sh", "-c", "tail -n +3 /proc/net/dev | cut -d: -f1; ip link show lo"], network="none")
    lines = result.out.splitlines()
    names = [line.strip() for line in lines if line.strip() and ":" not in line and "link/" not in line]
    assert names == ["lo"], result.out
    assert "UP" in result.out


def test_network_host_is_the_hosts(ctr: Harness) -> None:
    with open("/proc/net/dev") as fh:
        host = sorted(line.split(":")[0].strip() for line in fh.readlines()[2:])
    result = ctr.run(["sh", "-c", "tail -n +3 /proc/net/dev | cut -d: -f1"])
    assert sorted(line.strip() for line in result.out.splitlines()) == host


def test_etc_files(ctr: Harness) -> None:
    result = ctr.run(["sh", "-c", "cat /etc/hosts; echo ---; cat /etc/resolv.conf"], network="none", hostname="h1")
    hosts, _sep, _resolv = result.out.partition("---")
    assert "localhost" in hosts and "h1" in hosts


# --- the container's layer ---------------------------------------------------------------


def test_copy_on_write(ctr: Harness, image: Path) -> None:
    script = "echo new > /data/new.txt && echo changed > /data/lower.txt && rm /data/gone.txt"
    assert ctr.run(["sh", "-c", script]).code == 0
    changes = ctr.changes()
    assert listing(changes) == {
        "data": "dir",
        "data/new.txt": "file",
        "data/lower.txt": "file",
        "data/gone.txt": "whiteout",
    }
    assert (changes / "data" / "lower.txt").read_text() == "changed\n"
    assert (image / "data" / "lower.txt").read_text() == "lower\n"
    assert (image / "data" / "gone.txt").exists()
    again = ctr.run(["sh", "-c", "cat /data/new.txt /data/lower.txt; ls /data"])
    assert again.out.split() == ["new", "changed", "dir", "lower.txt", "new.txt"]


def test_replaced_directory_hides_the_lower_one(ctr: Harness) -> None:
    assert ctr.run(["sh", "-c", "rm -rf /data/dir && mkdir /data/dir && echo b > /data/dir/b"]).code == 0
    stack = LayerStack([str(ctr.changes()), *ctr.layers])
    _rel, gone = stack.resolve("/data/dir/a")
    _rel, kept = stack.resolve("/data/dir/b")
    assert gone is None and kept is not None


def test_runtime_mounts_do_not_leak_into_the_diff(ctr: Harness) -> None:
    result = ctr.run(["sh", "-c", "cat /etc/hostname; ls /proc/1 >/dev/null; ls /dev/null; cat /etc/hosts >/dev/null"])
    assert result.code == 0, result.err
    assert listing(ctr.changes()) == {}


def test_no_leak_when_the_image_lacks_etc(make_container: Callable[..., Harness], bare_image: Path) -> None:
    for driver in ("overlay", "vfs"):
        h: Harness = make_container(driver, [bare_image])
        result = h.run(["sh", "-c", "cat /etc/hostname; ls /"], hostname="bare")
        assert result.out.splitlines()[0] == "bare"
        assert listing(h.changes()) == {}, driver
        assert not (bare_image / "etc").exists()


def test_mount_targets_behind_image_symlinks(
    make_container: Callable[..., Harness], tmp_path: Path, image: Path
) -> None:
    """/etc/resolv.conf and /var/run are often symlinks: the mounts land where they point."""
    layer = tmp_path / "links-layer"
    (layer / "etc").mkdir(parents=True)
    (layer / "run").mkdir()
    (layer / "var").mkdir()
    (layer / "etc" / "resolv.conf").symlink_to("../run/resolver/stub.conf")
    (layer / "var" / "run").symlink_to("/run")
    volume = tmp_path / "volume"
    volume.mkdir()
    (volume / "marker").write_text("in the volume\n")
    with open("/etc/resolv.conf") as fh:
        host_resolv = fh.read()
    for driver in ("overlay", "vfs"):
        h = make_container(driver, [layer, image])
        script = "cat /etc/resolv.conf; cat /var/run/app/marker; ls -ld /var/run | cut -c1"
        result = h.run(["sh", "-c", script], mounts=[Mount(str(volume), "/var/run/app")])
        assert result.out == host_resolv + "in the volume\nl\n", result.err
        assert listing(h.changes()) == {}, driver


def test_many_layers(make_container: Callable[..., Harness], tmp_path: Path, image: Path) -> None:
    """130 layers, named by long paths: more than a page of overlay options."""
    layers = []
    parent = tmp_path / ("long-directory-name-" * 4)
    for i in range(130):
        layer = parent / f"layer-{i:03d}" / "diff"
        (layer / "layers").mkdir(parents=True)
        (layer / "layers" / f"f{i:03d}").write_text(str(i))
        (layer / "layers" / "top").write_text(str(i))
        layers.append(layer)
    for driver in ("overlay", "vfs"):
        h: Harness = make_container(driver, [*layers, image])
        result = h.run(["sh", "-c", "cat /layers/top; echo; ls /layers | wc -l"])
        assert result.out.split() == ["0", "131"], result.err


def test_restart_keeps_the_container_layer(ctr: Harness) -> None:
    assert ctr.run(["sh", "-c", "echo kept > /root/state"]).code == 0
    assert ctr.run(["cat", "/root/state"]).out == "kept\n"


# --- mounts --------------------------------------------------------------------------------


def test_bind_readonly_and_tmpfs_mounts(ctr: Harness, tmp_path: Path) -> None:
    rw = tmp_path / "rw"
    ro = tmp_path / "ro"
    rw.mkdir()
    ro.mkdir()
    os.chmod(rw, 0o777)
    (ro / "file").write_text("ro\n")
    single = tmp_path / "single.conf"
    single.write_text("one file\n")
    mounts = [
        Mount(str(rw), "/vol/rw"),
        Mount(str(ro), "/vol/ro", readonly=True),
        Mount(str(single), "/etc/app.conf", readonly=True),
        Mount("", "/scratch", kind="tmpfs", options=["size=1m", "mode=1777"]),
    ]
    script = (
        "echo hello > /vol/rw/out; cat /vol/ro/file; cat /etc/app.conf;"
        "if echo no > /vol/ro/x 2>/dev/null; then echo WRITABLE; fi;"
        "echo t > /scratch/t && grep ' /scratch ' /proc/mounts | cut -d' ' -f3"
    )
    result = ctr.run(["sh", "-c", script], mounts=mounts)
    assert result.out.split("\n")[:4] == ["ro", "one file", "tmpfs", ""], result.out + result.err
    assert (rw / "out").read_text() == "hello\n"
    assert not (ro / "x").exists()
    assert listing(ctr.changes()) == {}


def test_missing_bind_source_is_one_clear_error(ctr: Harness, tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="does not exist"):
        ctr.run(["true"], mounts=[Mount(str(tmp_path / "absent"), "/x")])


# --- exec, detach, tty ---------------------------------------------------------------------


def test_exec_into_a_running_container(ctr: Harness, tmp_path: Path) -> None:
    out_path = tmp_path / "exec.out"
    with open(os.devnull, "wb") as null:
        running = start(ctr.config(["sleep", "30"], hostname="inside"), stdout=null.fileno())
    try:
        with out_path.open("wb") as out:
            script = "echo $$; cat /proc/1/cmdline; echo; hostname; pwd; echo $FOO"
            code = exec_in(running.pid, Process(["sh", "-c", script], env=["FOO=x"], cwd="/data"), stdout=out.fileno())
        assert code == 0
        pid, cmdline, host, cwd, foo = out_path.read_text().splitlines()
        assert int(pid) > 1 and cmdline.startswith("sleep") and host == "inside"
        assert (cwd, foo) == ("/data", "x")
        with out_path.open("wb") as out:
            assert running.exec(Process(["sh", "-c", "exit 5"]), stdout=out.fileno()) == 5
        with pytest.raises(CommandNotFound):
            exec_in(running.pid, Process(["nope"]))
        with out_path.open("wb") as out:
            exec_in(running.pid, Process(["sh", "-c", "tty; echo $TERM"], tty=True), stdout=out.fileno())
        tty_name, term = (line.strip() for line in out_path.read_text().splitlines())
        assert tty_name.startswith("/dev/pts/") and term == "xterm"
        if _sub_ids_mapped():
            with out_path.open("wb") as out:
                exec_in(running.pid, Process(["id", "-u"], user="app"), stdout=out.fileno())
            assert out_path.read_text().strip() == "1000"
    finally:
        running.kill()
        assert running.wait(timeout=10) == 137


def test_detached_container_outlives_and_is_managed_from_another_process(ctr: Harness, tmp_path: Path) -> None:
    log = tmp_path / "log"
    with log.open("wb") as fh:
        running = start(
            ctr.config(["sh", "-c", "echo started; exec sleep 30"]),
            stdout=fh.fileno(),
            stderr=fh.fileno(),
            detach=True,
        )
    deadline = time.monotonic() + 20
    while log.read_text() != "started\n" and time.monotonic() < deadline:
        time.sleep(0.02)
    state = read_state(ctr.runtime_dir)
    assert state is not None and state.pid == running.pid
    assert is_alive(ctr.runtime_dir)
    with open(f"/proc/{state.monitor}/stat") as fh:
        monitor_parent = int(fh.read().rsplit(")", 1)[1].split()[1])
    assert monitor_parent != os.getpid()
    code = (
        "import sys; from explorer.runtime import is_alive, kill, wait_exit;"
        "rd = sys.argv[1]; assert is_alive(rd); assert kill(rd); print(wait_exit(rd, timeout=10))"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-c", code, ctr.runtime_dir], capture_output=True, text=True, env=env, timeout=60
    )
    assert proc.stdout.strip() == "137", proc.stderr
    assert running.wait(timeout=5) == 137
    assert not is_alive(ctr.runtime_dir)
    assert not kill(ctr.runtime_dir)
    assert log.read_text() == "started\n"


def test_detached_exit_code_is_recorded(ctr: Harness) -> None:
    running = start(ctr.config(["sh", "-c", "exit 7"]), detach=True)
    assert wait_exit(ctr.runtime_dir, timeout=10) == 7
    assert running.wait() == 7


def test_tty(ctr: Harness) -> None:
    result = ctr.run(["sh", "-c", "tty; test -t 0 && test -t 1 && echo isatty; echo $TERM"], tty=True)
    lines = [line.strip() for line in result.out.splitlines()]
    assert lines[0].startswith("/dev/pts/"), result.out
    assert lines[1:] == ["isatty", "xterm"]


def test_runtime_dir_layout(ctr: Harness) -> None:
    ctr.run(["true"])
    init = Path(ctr.runtime_dir) / "init"
    assert stat.S_ISDIR(os.lstat(init / "proc").st_mode)
    assert (init / "etc" / "hosts").is_file()
