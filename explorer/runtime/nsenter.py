"""``exec``: run another process inside a running container.

The new process joins the namespaces of the container's init (user first, since
it owns the others), then forks once more so the child is inside the pid
namespace too. USER, WORKDIR, Env and the pty work as for ``start``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from typing import NoReturn

from ..errors import ContainerStateError, InvalidArgument, StrataError
from . import forking, linux, seccomp
from . import security as isolation
from .config import Process, Security
from .process import (
    FORWARDED_SIGNALS,
    Launch,
    forward_to,
    pipe,
    raise_report,
    read_all,
    relay_tty,
    report_exception,
    run_process,
    socket_pair,
    stdio_for,
    wait_child,
)
from .pty import get_winsize
from .watch import IDLE_TIMEOUT_S, Watch

# Join order: the user namespace owns the others, so it comes first.
_NAMESPACES = (
    ("user", linux.CLONE_NEWUSER),
    ("mnt", linux.CLONE_NEWNS),
    ("uts", linux.CLONE_NEWUTS),
    ("ipc", linux.CLONE_NEWIPC),
    ("net", linux.CLONE_NEWNET),
    ("pid", linux.CLONE_NEWPID),
)


def _open_namespaces(pid: int) -> list[tuple[int, int]]:
    opened: list[tuple[int, int]] = []
    try:
        for name, flag in _NAMESPACES:
            theirs = os.stat(f"/proc/{pid}/ns/{name}")
            ours = os.stat(f"/proc/self/ns/{name}")
            if (theirs.st_dev, theirs.st_ino) == (ours.st_dev, ours.st_ino):
                continue  # shared with us (host network): joining it would need host privileges
            opened.append((os.open(f"/proc/{pid}/ns/{name}", os.O_RDONLY | os.O_CLOEXEC), flag))
    except FileNotFoundError:
        for fd, _flag in opened:
            os.close(fd)
        raise ContainerStateError(f"container process {pid} is not running") from None
    except PermissionError:
        for fd, _flag in opened:
            os.close(fd)
        raise ContainerStateError(f"container process {pid} belongs to another user") from None
    return opened


def _exec_child(namespaces: list[tuple[int, int]], launch: Launch, detach: bool = False) -> NoReturn:
    code = 125
    try:
        keep = {*launch.stdio, launch.report_w, *(fd for fd, _f in namespaces)}
        if launch.tty_socks is not None:
            keep.update(sock.fileno() for sock in launch.tty_socks)
        linux.close_fds_except(keep)
        try:
            for fd, flag in namespaces:
                linux.setns(fd, flag)
                os.close(fd)
        except OSError as e:
            raise StrataError(f"cannot join the container's namespaces: {e.strerror}") from e
        signal.pthread_sigmask(signal.SIG_BLOCK, FORWARDED_SIGNALS)
        pid = os.fork()
        if pid == 0:
            child_code = 125
            try:
                if launch.tty_socks is not None:
                    launch.tty_socks[0].close()
                launch.hostname = os.uname().nodename  # the container's: its uts namespace is joined
                run_process(launch)
            except BaseException as e:
                child_code = report_exception(launch.report_w, e)
            finally:
                os._exit(child_code)
        os.close(launch.report_w)
        if detach:  # exec -d: the process goes on alone, reparented; nothing here waits for it
            os._exit(0)
        if launch.tty_socks is not None:
            launch.tty_socks[1].close()
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
    except BaseException as e:
        code = report_exception(launch.report_w, e)
    finally:
        os._exit(code)


def exec_in(
    pid: int,
    process: Process,
    stdin: int | None = None,
    stdout: int | None = None,
    stderr: int | None = None,
    *,
    security: Security | None = None,
    detach: bool = False,
    idle: float | None = IDLE_TIMEOUT_S,
    cancel: threading.Event | None = None,
) -> int:
    """Run ``process`` in the container whose init has host pid ``pid``; its exit code.
    With ``detach`` (``exec -d``) return 0 once it runs, without waiting for it.

    Getting in (joining the namespaces, the user, the working directory) must not take
    ``idle`` seconds without progress, or the attempt is killed with ``HelperStalled``;
    once the program runs it may take as long as it likes. Setting ``cancel`` kills it
    (and anything it started) at any point, and ``Cancelled`` is raised.

    ``security`` is the container's profile (``state.read_security``): an exec'd
    process is held to the same capabilities and seccomp filter as the container's.

    A missing command raises CommandNotFound (127), one that cannot run
    CommandNotExecutable (126), as ``docker exec`` reports them.
    """
    if not process.args:
        raise InvalidArgument("no command specified")
    namespaces = _open_namespaces(pid)
    stdio, opened = stdio_for(process, stdin, stdout, stderr, detach=False)
    report_r, report_w = pipe()
    socks = socket_pair() if process.tty else None
    prepared = isolation.Prepared(security if security is not None else Security())
    launch = Launch(process, "", stdio, get_winsize(stdio[1]) if process.tty else None, report_w, socks, prepared)
    tty_fds = tuple(sock.detach() for sock in socks) if socks is not None else None
    launch.tty_socks = None  # sockets do not pickle: their descriptors travel (tty_fds)
    try:
        child = forking.fork_call(
            _exec_entry,
            namespaces,
            launch,
            tty_fds,
            detach,
            fds=[*(fd for fd, _flag in namespaces), *stdio, report_w, *(tty_fds or ())],
        )
    finally:
        for fd, _flag in namespaces:
            os.close(fd)
        for fd in (report_w, *opened, *(tty_fds or ())):
            os.close(fd)
    watch = Watch(f"exec in the container of process {pid}", idle, cancel)
    try:
        watch.follow(child.pid)
        report = read_all(report_r)  # ends when the program runs, fails to, or the watch killed it
        watch.settle()
        code = child.wait()
    finally:
        os.close(report_r)
        watch.close()
    watch.check()
    assert code is not None
    raise_report(report)
    return code


def _exec_entry(
    namespaces: list[tuple[int, int]], launch: Launch, tty_fds: tuple[int, int] | None, detach: bool
) -> NoReturn:
    """``_exec_child`` in a child of ``forking``: the tty sockets come as descriptors."""
    if tty_fds is not None:
        import socket

        launch.tty_socks = (socket.socket(fileno=tty_fds[0]), socket.socket(fileno=tty_fds[1]))
    if launch.prepared.filter is not None:
        seccomp.prepare()  # a fork server's child loads it here, before the root changes
    _exec_child(namespaces, launch, detach)
