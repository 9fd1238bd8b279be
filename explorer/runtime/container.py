"""Start a container, wait for it, exec into it.

Process layout (no helper binaries, no second interpreter, so start costs two
forks and a few hundred syscalls):

    caller ── fork ──▶ monitor: unshare(user, pid); waits for the caller to write
                       its uid/gid maps; forks init; records init's pid and, when
                       init ends, its exit code; relays the pty for ``-t``
                          └─ fork ─▶ init (pid 1 inside): unshare(mnt, uts, ipc
                                      [, net]); mounts; pivot_root; USER; exec

With ``detach`` an extra fork and ``setsid`` put the monitor out of the caller's
session, so the container outlives the caller. Failures before exec travel to the
caller on a close-on-exec pipe as one JSON object: the pipe closing empty means
exec succeeded.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import threading
import time
from typing import TYPE_CHECKING, NoReturn

from ..errors import (
    Cancelled,
    ContainerStateError,
    InvalidArgument,
    RuntimeUnavailable,
)
from . import forking, idmap, linux, pty, seccomp, security, state
from .config import ContainerConfig, Process
from .forking import Child
from .initlayer import (
    BASE_TARGETS,
    ROOTFS_DIR,
    copy_missing_into,
    host_hostname,
    init_dir,
    prepare_targets,
    wanted_targets,
    write_etc_files,
)
from .process import (
    FORWARDED_SIGNALS,
    Launch,
    forward_to,
    pipe,
    raise_report,
    read_all,
    relay_tty,
    report,
    report_exception,
    run_process,
    socket_pair,
    stdio_for,
    wait_child,
)
from .rootfs import RootPlan, loopback_up, setup_root

if TYPE_CHECKING:
    pass


# --- failures crossing the process boundary -----------------------------------------


# --- the process inside ---------------------------------------------------------------


def _init_main(plan: RootPlan, launch: Launch, network: str) -> NoReturn:
    code = 125
    try:
        flags = linux.CLONE_NEWNS | linux.CLONE_NEWUTS | linux.CLONE_NEWIPC
        if network == "none":
            flags |= linux.CLONE_NEWNET
        try:
            linux.unshare(flags)
        except OSError as e:
            raise RuntimeUnavailable(f"cannot create namespaces: {e.strerror}") from e
        if network == "none":
            loopback_up()
        if launch.hostname:
            linux.sethostname(launch.hostname)
        setup_root(plan)
        run_process(launch)
    except BaseException as e:
        code = report_exception(launch.report_w, e)
    finally:
        os._exit(code)


def _monitor_main(
    config: ContainerConfig, plan: RootPlan, launch: Launch, ready_w: int, go_r: int, detach: bool
) -> NoReturn:
    code = 125
    try:
        keep = {*launch.stdio, ready_w, go_r, launch.report_w}
        if launch.tty_socks is not None:
            keep.update(sock.fileno() for sock in launch.tty_socks)
        linux.close_fds_except(keep)
        if detach:
            os.setsid()
            if os.fork() != 0:
                os._exit(0)
            null = os.open(os.devnull, os.O_RDWR)
            for target in (0, 1, 2):
                if target not in launch.stdio:
                    os.dup2(null, target)
            os.close(null)
        try:
            linux.unshare(linux.CLONE_NEWUSER | linux.CLONE_NEWPID)
        except OSError as e:
            report(launch.report_w, 125, "userns", f"cannot create a user namespace: {e.strerror}")
            os._exit(125)
        os.write(ready_w, f"U {os.getpid()}\n".encode())
        if os.read(go_r, 1) != b"G":
            os._exit(125)
        os.close(go_r)
        # Signals that arrive before the forwarders are installed wait instead of
        # killing the monitor; init clears the mask before exec.
        signal.pthread_sigmask(signal.SIG_BLOCK, FORWARDED_SIGNALS)
        pid = os.fork()
        if pid == 0:
            os.close(ready_w)
            if launch.tty_socks is not None:
                launch.tty_socks[0].close()
            _init_main(plan, launch, config.network)
        os.close(launch.report_w)
        if launch.tty_socks is not None:
            launch.tty_socks[1].close()
        info = state.proc_start(pid)
        me = state.proc_start(os.getpid())
        state.write_state(config.runtime_dir, state.State(pid, info[0] if info else 0, os.getpid(), me[0] if me else 0))
        os.write(ready_w, f"P {pid}\n".encode())
        os.close(ready_w)
        forward_to(pid)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, FORWARDED_SIGNALS)
        if launch.process.tty:
            with contextlib.suppress(OSError):
                relay_tty(launch, pid)
        else:
            for fd in set(launch.stdio):
                if fd > 2:
                    os.close(fd)
        code = wait_child(pid)
        state.write_exit_code(config.runtime_dir, code)
    except BaseException:
        code = 125
    finally:
        os._exit(code)


# --- the caller's side ------------------------------------------------------------------


def _plan(config: ContainerConfig, maps: idmap.IdMaps) -> RootPlan:
    rootfs = config.rootfs
    rd = config.runtime_dir
    os.makedirs(rd, mode=0o700, exist_ok=True)
    mountpoint = os.path.join(rd, ROOTFS_DIR)
    with contextlib.suppress(FileExistsError):
        os.mkdir(mountpoint, 0o755)
    if rootfs.driver == "overlay":
        for what, path in (("upperdir", rootfs.upperdir), ("workdir", rootfs.workdir)):
            if not path or not os.path.isdir(path):
                raise InvalidArgument(f"overlay {what} does not exist: {path!r}")
        layers = list(rootfs.lowerdirs)
        for layer in layers:
            if not os.path.isdir(layer):
                raise InvalidArgument(f"image layer directory does not exist: {layer}")
        image = layers or [init_dir(rd)]
    elif rootfs.driver == "vfs":
        if not rootfs.rootdir or not os.path.isdir(rootfs.rootdir):
            raise InvalidArgument(f"vfs root directory does not exist: {rootfs.rootdir!r}")
        image = [rootfs.rootdir]
    else:
        raise InvalidArgument(f"unknown storage driver {rootfs.driver!r}: use overlay or vfs")
    init = init_dir(rd)
    os.makedirs(init, mode=0o755, exist_ok=True)
    targets = prepare_targets(image, init, wanted_targets(config))
    base = {t.path: t for t in targets[: len(BASE_TARGETS)]}
    mounts = list(zip(config.mounts, targets[len(BASE_TARGETS) :], strict=True))
    if rootfs.driver == "vfs":
        copy_missing_into(init, rootfs.rootdir, targets)
    hostname = config.hostname or host_hostname()
    etc = write_etc_files(rd, hostname, config.network)
    return RootPlan(
        driver=rootfs.driver,
        mountpoint=mountpoint,
        lowerdirs=[init, *rootfs.lowerdirs] if rootfs.driver == "overlay" else [],
        upperdir=rootfs.upperdir,
        workdir=rootfs.workdir,
        rootdir=rootfs.rootdir,
        targets=base,
        etc_sources=etc,
        mounts=mounts,
        network=config.network,
        devpts_gid=maps.gid.contains(5),
        scratch=rd,
        confined=not config.security.privileged,
    )


START_TIMEOUT = 120.0  # seconds a monitor may take to set up a container (a slow disk, a big vfs root)


def _read_line(fd: int, cancel: threading.Event | None = None, timeout: float = START_TIMEOUT) -> str:
    """One line from the monitor: raises when it takes longer than ``timeout`` or
    ``cancel`` is set (the caller then kills the monitor)."""
    out = b""
    deadline = time.monotonic() + timeout
    while not out.endswith(b"\n"):
        if cancel is not None and cancel.is_set():
            raise Cancelled("container start")
        left = deadline - time.monotonic()
        if left <= 0:
            raise RuntimeUnavailable(f"the container's monitor did not answer within {timeout:.0f} s")
        ready, _w, _x = select.select([fd], [], [], min(left, 0.2))
        if not ready:
            continue
        try:
            chunk = os.read(fd, 1)
        except InterruptedError:
            continue
        if not chunk:
            break
        out += chunk
    return out.decode().strip()


def _monitor_entry(
    config: ContainerConfig,
    plan: RootPlan,
    launch: Launch,
    ready_w: int,
    go_r: int,
    detach: bool,
    tty_fds: tuple[int, int] | None,
) -> NoReturn:
    """``_monitor_main`` in a child of ``forking``: the tty sockets come as descriptors."""
    if tty_fds is not None:
        import socket

        launch.tty_socks = (socket.socket(fileno=tty_fds[0]), socket.socket(fileno=tty_fds[1]))
    if launch.prepared.filter is not None:
        seccomp.prepare()  # a fork server's child loads it here, before the root changes
    _monitor_main(config, plan, launch, ready_w, go_r, detach)


class RunningContainer:
    """A started container. ``wait`` works from the starting process; any other
    process uses the functions in ``state`` with the same runtime_dir."""

    def __init__(self, runtime_dir: str, pid: int, monitor_pid: int, monitor: Child | None) -> None:
        self.runtime_dir = runtime_dir
        self.pid = pid
        self.monitor_pid = monitor_pid
        self._monitor = monitor  # None when detached: then the state files tell
        self._code: int | None = None

    def wait(self, timeout: float | None = None) -> int | None:
        """The exit code (docker conventions); None if still running after ``timeout``."""
        if self._code is not None:
            return self._code
        if self._monitor is None:
            self._code = state.wait_exit(self.runtime_dir, timeout)
            return self._code
        status_code = self._monitor.wait(timeout)
        if status_code is None:
            return None
        recorded = state.read_exit_code(self.runtime_dir)
        self._code = recorded if recorded is not None else status_code
        return self._code

    def poll(self) -> int | None:
        return self.wait(timeout=0)

    def kill(self, sig: int = signal.SIGKILL) -> bool:
        return state.kill(self.runtime_dir, sig)

    def exec(
        self,
        process: Process,
        stdin: int | None = None,
        stdout: int | None = None,
        stderr: int | None = None,
        *,
        cancel: threading.Event | None = None,
    ) -> int:
        """Run another process in this container (see ``nsenter.exec_in``)."""
        from .nsenter import exec_in

        security = state.read_security(self.runtime_dir)
        return exec_in(self.pid, process, stdin, stdout, stderr, security=security, cancel=cancel)


def start(
    config: ContainerConfig,
    stdin: int | None = None,
    stdout: int | None = None,
    stderr: int | None = None,
    *,
    detach: bool = False,
    cancel: threading.Event | None = None,
) -> RunningContainer:
    """Start the container and return once its process has been exec'd.

    Every wait for the monitor has a deadline (``START_TIMEOUT``) and stops when
    ``cancel`` is set; the fork itself goes through ``forking`` (see there why).

    stdio are file descriptors, None to inherit the caller's (``detach``: /dev/null).
    A command that is missing or cannot run raises CommandNotFound (127) or
    CommandNotExecutable (126), after the exit code has been recorded.
    """
    if not config.process.args:
        raise InvalidArgument("no command specified")
    running_pid = state.container_pid(config.runtime_dir)
    if running_pid is not None:
        raise ContainerStateError(f"the container is already running (pid {running_pid})")
    prepared = security.Prepared(config.security)
    maps = idmap.plan()
    plan = _plan(config, maps)
    state.write_security(config.runtime_dir, config.security)
    state.clear(config.runtime_dir)
    stdio, opened = stdio_for(config.process, stdin, stdout, stderr, detach)
    ready_r, ready_w = pipe()
    go_r, go_w = pipe()
    report_r, report_w = pipe()
    socks = socket_pair() if config.process.tty else None
    winsize = pty.get_winsize(stdio[1]) if config.process.tty else None
    launch = Launch(config.process, config.hostname or host_hostname(), stdio, winsize, report_w, socks, prepared)
    tty_fds = tuple(sock.detach() for sock in socks) if socks is not None else None
    launch.tty_socks = None  # sockets do not pickle: their descriptors travel (tty_fds)
    child = forking.fork_call(
        _monitor_entry,
        config,
        plan,
        launch,
        ready_w,
        go_r,
        detach,
        tty_fds,
        fds=[ready_w, go_r, report_w, *stdio, *(tty_fds or ())],
    )
    for fd in (ready_w, go_r, report_w, *opened, *(tty_fds or ())):
        os.close(fd)
    reaped = False
    try:
        if detach:
            child.wait()
            reaped = True
        line = _read_line(ready_r, cancel)
        if not line.startswith("U "):
            raise_report(read_all(report_r))
            raise RuntimeUnavailable("the container's monitor process died while starting")
        monitor_pid = int(line.split()[1])
        idmap.write(monitor_pid, maps)
        os.write(go_w, b"G")
        os.close(go_w)
        go_w = -1
        line = _read_line(ready_r, cancel)
        report = read_all(report_r)
        if not line.startswith("P "):
            raise_report(report)
            raise RuntimeUnavailable("the container's monitor process died while starting")
        running = RunningContainer(config.runtime_dir, int(line.split()[1]), monitor_pid, None if detach else child)
        if report:
            if not detach:
                running.wait()
                reaped = True
            raise_report(report)
        return running
    except BaseException:
        if not reaped:
            child.kill()
            with contextlib.suppress(ChildProcessError, RuntimeUnavailable):
                child.wait(10)
        raise
    finally:
        for fd in (ready_r, report_r, go_w):
            if fd >= 0:
                os.close(fd)
