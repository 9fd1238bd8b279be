"""Rootless containers: Linux namespaces, overlay mounts, process start and stop.

The runtime knows paths, not images: the store hands it layer directories
(top-most first), a container layer and a per-container ``runtime_dir``; the
runtime mounts, starts, waits, signals and execs. Nothing here needs a daemon,
root or a setuid helper (newuidmap/newgidmap are used when configured).

Every wait on a process the runtime forked has a deadline and a cancel path: a
container start's (``start(cancel=)``, ``START_TIMEOUT``), and a helper's or an exec's
(``watch.py``: no progress for ``IDLE_TIMEOUT_S``, or the caller's ``cancel`` set, and
the child's whole tree is killed; ``HelperStalled`` or ``Cancelled`` says which).

Names are imported on first use (PEP 562): ``strata run --rm IMAGE true`` needs
the start path only, not exec, vfs, the support probes or the copy machinery.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .command import DEFAULT_PATH, combine_command
    from .config import ContainerConfig, Mount, Process, RootFS, Security
    from .container import RunningContainer, start
    from .forking import exit_code_of
    from .inroot import InRoot, in_container, in_directory, in_rootfs, pseudo_mounts
    from .nsenter import exec_in
    from .rootfs import mount_overlay
    from .security import check as check_security
    from .state import (
        container_pid,
        is_alive,
        kill,
        read_exit_code,
        read_state,
        wait_exit,
    )
    from .storens import privileged
    from .support import check_support, detect_driver
    from .sysctls import userns_problem
    from .userns import call_in_userns
    from .users import ExecUser, resolve_user
    from .vfs import diff as vfs_diff
    from .vfs import materialize as vfs_materialize

# public name -> (module, attribute)
_EXPORTS: dict[str, tuple[str, str]] = {
    "DEFAULT_PATH": ("command", "DEFAULT_PATH"),
    "combine_command": ("command", "combine_command"),
    "ContainerConfig": ("config", "ContainerConfig"),
    "Mount": ("config", "Mount"),
    "Process": ("config", "Process"),
    "RootFS": ("config", "RootFS"),
    "Security": ("config", "Security"),
    "check_security": ("security", "check"),
    "RunningContainer": ("container", "RunningContainer"),
    "exit_code_of": ("forking", "exit_code_of"),
    "start": ("container", "start"),
    "InRoot": ("inroot", "InRoot"),
    "in_container": ("inroot", "in_container"),
    "in_directory": ("inroot", "in_directory"),
    "in_rootfs": ("inroot", "in_rootfs"),
    "pseudo_mounts": ("inroot", "pseudo_mounts"),
    "exec_in": ("nsenter", "exec_in"),
    "mount_overlay": ("rootfs", "mount_overlay"),
    "container_pid": ("state", "container_pid"),
    "is_alive": ("state", "is_alive"),
    "kill": ("state", "kill"),
    "read_exit_code": ("state", "read_exit_code"),
    "read_state": ("state", "read_state"),
    "wait_exit": ("state", "wait_exit"),
    "privileged": ("storens", "privileged"),
    "check_support": ("support", "check_support"),
    "detect_driver": ("support", "detect_driver"),
    "userns_problem": ("sysctls", "userns_problem"),
    "call_in_userns": ("userns", "call_in_userns"),
    "ExecUser": ("users", "ExecUser"),
    "resolve_user": ("users", "resolve_user"),
    "vfs_diff": ("vfs", "diff"),
    "vfs_materialize": ("vfs", "materialize"),
}

__all__ = [
    "DEFAULT_PATH",
    "ContainerConfig",
    "ExecUser",
    "InRoot",
    "Mount",
    "Process",
    "RootFS",
    "RunningContainer",
    "Security",
    "call_in_userns",
    "check_security",
    "check_support",
    "combine_command",
    "container_pid",
    "detect_driver",
    "exec_in",
    "exit_code_of",
    "in_container",
    "in_directory",
    "in_rootfs",
    "is_alive",
    "kill",
    "mount_overlay",
    "privileged",
    "pseudo_mounts",
    "read_exit_code",
    "read_state",
    "resolve_user",
    "start",
    "userns_problem",
    "vfs_diff",
    "vfs_materialize",
    "wait_exit",
]


def __getattr__(name: str) -> Any:
    try:
        module, attr = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    # __import__, not importlib.import_module: the same work, and -X importtime sees it
    value = getattr(__import__(f"{__name__}.{module}", fromlist=[attr]), attr)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
