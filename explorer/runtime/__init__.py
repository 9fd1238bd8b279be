"""Rootless containers: Linux namespaces, overlay mounts, process start and stop.

The runtime knows paths, not images: the store hands it layer directories
(top-most first), a container layer and a per-container ``runtime_dir``; the
runtime mounts, starts, waits, signals and execs. Nothing here needs a daemon,
root or a setuid helper (newuidmap/newgidmap are used when configured).
"""

from __future__ import annotations

from .command import DEFAULT_PATH, combine_command
from .config import ContainerConfig, Mount, Process, RootFS
from .container import RunningContainer, exit_code_of, start
from .nsenter import exec_in
from .rootfs import mount_overlay
from .state import (
    container_pid,
    is_alive,
    kill,
    read_exit_code,
    read_state,
    wait_exit,
)
from .support import check_support, detect_driver, userns_problem
from .userns import call_in_userns
from .users import ExecUser, resolve_user
from .vfs import diff as vfs_diff
from .vfs import materialize as vfs_materialize

__all__ = [
    "DEFAULT_PATH",
    "ContainerConfig",
    "ExecUser",
    "Mount",
    "Process",
    "RootFS",
    "RunningContainer",
    "call_in_userns",
    "check_support",
    "combine_command",
    "container_pid",
    "detect_driver",
    "exec_in",
    "exit_code_of",
    "is_alive",
    "kill",
    "mount_overlay",
    "read_exit_code",
    "read_state",
    "resolve_user",
    "start",
    "userns_problem",
    "vfs_diff",
    "vfs_materialize",
    "wait_exit",
]
