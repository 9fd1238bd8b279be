"""What the runtime is asked to run: plain records, no behaviour.

The runtime knows paths, not images: the store resolves an image to its layer
directories and hands them over here, top-most first, as overlayfs wants them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

DriverName = Literal["overlay", "vfs"]
NetworkMode = Literal["host", "none"]


@dataclass
class Mount:
    """A bind mount of a host path or a fresh tmpfs at ``target`` inside the container.

    ``options`` are mount flags (``nosuid``, ``nodev``, ``noexec``) and, for tmpfs,
    its own options (``size=64m``, ``mode=1777``).
    """

    source: str
    target: str
    kind: Literal["bind", "tmpfs"] = "bind"
    readonly: bool = False
    options: list[str] = field(default_factory=list)


@dataclass
class Process:
    """The program to start, as ``docker run`` describes it.

    ``args`` is the final argv (entrypoint + cmd already combined, see
    ``command.combine_command``); ``user`` is docker's USER syntax: ``name``,
    ``uid``, ``uid:gid``, ``name:group``; empty means root. ``make_cwd``: a missing
    ``cwd`` is made first, as ``docker run`` makes its WORKDIR; ``docker exec`` does not,
    and fails (126) in a directory that is not there.
    """

    args: list[str]
    env: list[str] = field(default_factory=list)
    cwd: str = "/"
    user: str = ""
    tty: bool = False
    stdin: bool = False
    make_cwd: bool = True


@dataclass
class RootFS:
    """Where the container's files live.

    overlay: ``lowerdirs`` (read-only, top-most first) + ``upperdir`` + ``workdir``.
    vfs: ``rootdir`` is a full private copy (see ``vfs.materialize``).
    """

    driver: DriverName = "overlay"
    lowerdirs: list[str] = field(default_factory=list)
    upperdir: str = ""
    workdir: str = ""
    rootdir: str = ""


@dataclass
class Security:
    """The isolation profile, as ``docker run`` takes it.

    The default is Docker's: its capability set, its seccomp refusals, masked and
    read-only ``/proc`` and ``/sys`` paths. ``seccomp`` is empty for the default
    filter, ``unconfined`` for none, or the text of a profile in Docker's JSON
    format (read when the container is created, as Docker does).
    """

    privileged: bool = False
    cap_add: list[str] = field(default_factory=list)
    cap_drop: list[str] = field(default_factory=list)
    seccomp: str = ""
    no_new_privileges: bool = False


@dataclass
class ContainerConfig:
    """Everything ``start`` needs; ``runtime_dir`` is private to the runtime
    (hosts files, init layer, pid and exit-code records) and must outlive the run
    as long as the container exists."""

    rootfs: RootFS
    process: Process
    runtime_dir: str
    hostname: str = ""
    mounts: list[Mount] = field(default_factory=list)
    network: NetworkMode = "host"
    security: Security = field(default_factory=Security)
