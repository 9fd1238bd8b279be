"""The command line and environment a container process gets, and its exec.

Docker's rules, so an image behaves here as it does there: Entrypoint + Cmd,
a default PATH when the image sets none, HOSTNAME and HOME filled in, and exit
status 127 for a command that is not there, 126 for one that cannot run.
"""

from __future__ import annotations

import errno
import os
import stat
from typing import NoReturn

from ..errors import InvalidArgument

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class ExecFailure(Exception):
    """Raised inside the container child before exec; travels to the caller as data."""

    def __init__(self, code: int, kind: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.kind = kind
        self.message = message


def combine_command(
    entrypoint: list[str] | None,
    cmd: list[str] | None,
    override_entrypoint: list[str] | None = None,
    override_cmd: list[str] | None = None,
) -> list[str]:
    """argv as ``docker run [--entrypoint E] IMAGE [ARGS…]`` builds it.

    Arguments after the image replace the image's Cmd; ``--entrypoint`` replaces
    the Entrypoint and also drops the image's Cmd (``[]`` resets it to nothing).
    """
    if override_entrypoint is not None:
        first = list(override_entrypoint)
        rest = list(override_cmd or [])
    else:
        first = list(entrypoint or [])
        rest = list(override_cmd) if override_cmd else list(cmd or [])
    argv = first + rest
    if not argv:
        raise InvalidArgument("no command specified: the image has no CMD or ENTRYPOINT; give one after the image name")
    return argv


def env_dict(env: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in env:
        key, sep, value = item.partition("=")
        if sep and key:
            out[key] = value
    return out


def final_env(env: list[str], *, hostname: str, home: str, tty: bool) -> dict[str, str]:
    values = env_dict(env)
    values.setdefault("PATH", DEFAULT_PATH)
    if hostname:
        values.setdefault("HOSTNAME", hostname)
    values.setdefault("HOME", home or "/")
    if tty:
        values.setdefault("TERM", "xterm")
    return values


def _executable(path: str) -> bool:
    try:
        st = os.stat(path)
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and bool(st.st_mode & 0o111)


def _fail_exec(name: str, err: OSError) -> NoReturn:
    if err.errno in (errno.ENOENT, errno.ENOTDIR):
        raise ExecFailure(127, "notfound", f'exec: "{name}": no such file or directory')
    if err.errno in (errno.EACCES, errno.EPERM, errno.EISDIR):
        raise ExecFailure(126, "notexec", f'exec: "{name}": permission denied')
    if err.errno == errno.ENOEXEC:
        raise ExecFailure(126, "notexec", f'exec: "{name}": exec format error')
    raise ExecFailure(126, "notexec", f'exec: "{name}": {err.strerror}')


def exec_program(args: list[str], env: dict[str, str]) -> NoReturn:
    """execve ``args`` looking the program up in the container's PATH (not ours)."""
    name = args[0]
    if "/" in name:
        try:
            os.execve(name, args, env)
        except OSError as e:
            _fail_exec(name, e)
    for directory in env.get("PATH", DEFAULT_PATH).split(":"):
        candidate = os.path.join(directory or ".", name)
        if not _executable(candidate):
            continue
        try:
            os.execve(candidate, args, env)
        except OSError as e:
            _fail_exec(name, e)
    raise ExecFailure(127, "notfound", f'exec: "{name}": executable file not found in $PATH')
