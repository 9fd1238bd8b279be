"""The process a container runs, as both ``start`` and ``exec`` launch it.

What the caller prepares before the fork (``Launch``: the process, its stdio, the
security profile), what the child does last before ``exec`` (user, groups, working
directory, signals, stdio or a pty) and how a failure in there crosses back to the
caller (one line on the report pipe). ``container`` (start) and ``nsenter`` (exec)
both use it; neither imports the other's internals.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
from dataclasses import dataclass
from typing import TYPE_CHECKING, NoReturn

from ..errors import (
    CommandNotExecutable,
    CommandNotFound,
    InvalidArgument,
    RuntimeUnavailable,
    StrataError,
)
from . import linux, pty, security
from .command import ExecFailure, exec_program, final_env
from .config import Process
from .forking import exit_code_of
from .userns import read_all as read_all  # one reader of pipes for the whole runtime
from .users import ExecUser, resolve_user

if TYPE_CHECKING:
    import socket


FORWARDED_SIGNALS = (
    signal.SIGINT,
    signal.SIGTERM,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGUSR2,
)


_RESET_SIGNALS = (
    signal.SIGPIPE,
    signal.SIGXFSZ,
    signal.SIGINT,
    signal.SIGTERM,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGUSR2,
    signal.SIGCHLD,
    signal.SIGTSTP,
    signal.SIGTTIN,
    signal.SIGTTOU,
    signal.SIGWINCH,
)


def report(fd: int, code: int, kind: str, message: str) -> None:
    with contextlib.suppress(OSError):
        os.write(fd, json.dumps({"code": code, "kind": kind, "message": message}).encode())


def report_exception(fd: int, err: BaseException) -> int:
    if isinstance(err, ExecFailure):
        report(fd, err.code, err.kind, err.message)
        return err.code
    if isinstance(err, InvalidArgument):
        report(fd, 125, "invalid", str(err))
    elif isinstance(err, StrataError):
        report(fd, 125, "runtime", str(err))
    elif isinstance(err, OSError):
        report(fd, 125, "runtime", f"{err.strerror or err}{f': {err.filename}' if err.filename else ''}")
    else:
        report(fd, 125, "runtime", f"{type(err).__name__}: {err}")
    return 125


def raise_report(data: bytes) -> None:
    if not data:
        return
    try:
        report = json.loads(data)
        kind, message = report["kind"], report["message"]
    except (ValueError, KeyError, TypeError):
        raise RuntimeUnavailable("the container failed to start") from None
    if kind == "notfound":
        raise CommandNotFound(message)
    if kind == "notexec":
        raise CommandNotExecutable(message)
    if kind == "invalid":
        raise InvalidArgument(message)
    from .sysctls import userns_problem  # only on failure: start does not pay for it

    if kind == "userns":
        raise RuntimeUnavailable(userns_problem() or message)
    if kind == "runtime" and "Operation not permitted" in message:
        problem = userns_problem()
        if problem:
            raise RuntimeUnavailable(problem)
    raise RuntimeUnavailable(message)


def socket_pair() -> tuple[socket.socket, socket.socket]:
    """For ``-t`` only: hands the pty master out of the container (socket is not
    imported otherwise; ``run`` without a terminal does not pay for it)."""
    import socket

    return socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)


def pipe() -> tuple[int, int]:
    """A close-on-exec pipe whose ends are never 0-2, whatever the caller closed."""
    r, w = os.pipe()
    hr, hw = linux.dup_high(r, 3), linux.dup_high(w, 3)
    os.close(r)
    os.close(w)
    return hr, hw


def _install_stdio(fds: tuple[int, int, int]) -> None:
    high = [linux.dup_high(fd) for fd in fds]
    for target, fd in enumerate(high):
        os.dup2(fd, target)
        os.close(fd)


def _switch_user(user: ExecUser) -> None:
    try:
        os.setgroups(user.groups)
    except PermissionError:
        pass  # setgroups is denied in a namespace mapped without newgidmap
    try:
        os.setresgid(user.gid, user.gid, user.gid)
    except OSError as e:
        raise RuntimeUnavailable(
            f"group {user.gid} is not mapped in the container: give your user a range in /etc/subgid "
            "(and install newgidmap)"
        ) from e
    try:
        os.setresuid(user.uid, user.uid, user.uid)
    except OSError as e:
        raise RuntimeUnavailable(
            f"user {user.uid} is not mapped in the container: give your user a range in /etc/subuid "
            "(and install newuidmap)"
        ) from e


def _reset_signals() -> None:
    for sig in _RESET_SIGNALS:
        with contextlib.suppress(OSError, ValueError):
            signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])


@dataclass
class Launch:
    """What the processes inside need, prepared by the caller before fork."""

    process: Process
    hostname: str
    stdio: tuple[int, int, int]
    winsize: bytes | None
    report_w: int
    tty_socks: tuple[socket.socket, socket.socket] | None  # (monitor's end, init's end)
    prepared: security.Prepared


def run_process(launch: Launch) -> NoReturn:
    """USER, WORKDIR, Env, stdio or pty, exec; after the root is in place."""
    proc = launch.process
    user = resolve_user(proc.user)
    env = final_env(proc.env, hostname=launch.hostname, home=user.home, tty=proc.tty)
    cwd = proc.cwd or "/"
    if not cwd.startswith("/"):
        raise InvalidArgument(f"the working directory must be an absolute path: {cwd}")
    if proc.make_cwd and not os.path.isdir(cwd):
        try:
            os.makedirs(cwd, 0o755, exist_ok=True)
        except OSError as e:
            raise InvalidArgument(f"cannot create the working directory {cwd}: {e.strerror}") from e
    if proc.tty and launch.tty_socks is not None:
        master, slave = os.openpty()
        pty.set_winsize(slave, launch.winsize)
        pty.send_fd(launch.tty_socks[1], master)
        os.close(master)
        launch.tty_socks[1].close()
        with contextlib.suppress(OSError):
            os.fchown(slave, user.uid, -1)
        pty.make_controlling(slave)
    else:
        _install_stdio(launch.stdio)
    security.before_user_switch(launch.prepared)
    _switch_user(user)
    security.after_user_switch(launch.prepared)
    try:
        os.chdir(cwd)
    except OSError as e:
        raise ExecFailure(126, "notexec", f"chdir to cwd ({cwd!r}) failed: {e.strerror}") from e
    _reset_signals()
    exec_program(proc.args, env)


def forward_to(pid: int) -> None:
    def forward(sig: int, _frame: object) -> None:
        with contextlib.suppress(OSError):
            os.kill(pid, sig)

    for sig in FORWARDED_SIGNALS:
        signal.signal(sig, forward)


def wait_child(pid: int) -> int:
    while True:
        try:
            _pid, status = os.waitpid(pid, 0)
            return exit_code_of(status)
        except InterruptedError:
            continue


def relay_tty(launch: Launch, pid: int) -> None:
    if launch.tty_socks is None:
        return
    master = pty.recv_fd(launch.tty_socks[0])
    launch.tty_socks[0].close()
    if master is None:
        return
    pidfd = os.pidfd_open(pid)
    in_fd = launch.stdio[0] if launch.process.stdin else None
    try:
        pty.relay(master, in_fd, launch.stdio[1], pidfd)
    finally:
        os.close(pidfd)
        os.close(master)


def stdio_for(
    process: Process, stdin: int | None, stdout: int | None, stderr: int | None, detach: bool
) -> tuple[tuple[int, int, int], list[int]]:
    opened: list[int] = []

    def null() -> int:
        if not opened:
            opened.append(os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC))
        return opened[0]

    fallback_in, fallback_out, fallback_err = (None, None, None) if detach else (0, 1, 2)
    in_fd = (stdin if stdin is not None else fallback_in) if process.stdin else None
    out_fd = stdout if stdout is not None else fallback_out
    err_fd = stderr if stderr is not None else fallback_err
    return (
        in_fd if in_fd is not None else null(),
        out_fd if out_fd is not None else null(),
        err_fd if err_fd is not None else null(),
    ), opened
