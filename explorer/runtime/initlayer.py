"""The init layer and the files the runtime writes for a container.

Mount targets the runtime needs (``/proc``, ``/dev``, ``/etc/hosts``, volume
targets …) must exist before something can be mounted on them; creating them
through the overlay would put them in the container's diff. Docker keeps them in
a separate init layer; so does Strata: ``runtime_dir/init`` is an extra read-only
layer on top of the image for overlay, and for vfs the missing targets are copied
into the root dir and the vfs diff treats the init layer as part of the image.
"""

from __future__ import annotations

import contextlib
import os
import stat
from dataclasses import dataclass

from ..errors import InvalidArgument
from .config import ContainerConfig, Mount
from .layerpath import LayerStack

INIT_DIR = "init"
ROOTFS_DIR = "rootfs"

# Targets every container gets: (path inside, is a directory).
BASE_TARGETS: tuple[tuple[str, bool], ...] = (
    ("/proc", True),
    ("/dev", True),
    ("/sys", True),
    ("/etc/hosts", False),
    ("/etc/hostname", False),
    ("/etc/resolv.conf", False),
)
ETC_FILES = {"/etc/hosts": "hosts", "/etc/hostname": "hostname", "/etc/resolv.conf": "resolv.conf"}


@dataclass(frozen=True)
class Target:
    """Where a mount lands: ``rel`` is resolved inside the image (no symlinks)."""

    path: str
    rel: str
    is_dir: bool


def init_dir(runtime_dir: str) -> str:
    return os.path.join(runtime_dir, INIT_DIR)


def mount_is_dir(mount: Mount) -> bool:
    if mount.kind == "tmpfs":
        return True
    try:
        return stat.S_ISDIR(os.stat(mount.source).st_mode)
    except FileNotFoundError:
        raise InvalidArgument(f"bind source path does not exist: {mount.source}; create it or fix the mount") from None
    except OSError as e:
        raise InvalidArgument(f"bind source {mount.source}: {e.strerror}") from None


def _copy_dir_meta(src: os.stat_result, dest: str) -> None:
    with contextlib.suppress(OSError):
        os.chmod(dest, stat.S_IMODE(src.st_mode))
    if os.geteuid() == 0:
        with contextlib.suppress(OSError):
            os.lchown(dest, src.st_uid, src.st_gid)
    with contextlib.suppress(OSError):
        os.utime(dest, ns=(src.st_atime_ns, src.st_mtime_ns), follow_symlinks=False)


def prepare_targets(layers: list[str], init: str, wanted: list[tuple[str, bool]]) -> list[Target]:
    """Resolve each wanted target in the image and create what is missing in ``init``.

    Creation is idempotent so a restarted container reuses its init layer.
    Parent dirs copy the image's mode and times so the merged view looks unchanged.
    """
    stack = LayerStack(layers)
    targets: list[Target] = []
    fixups: list[tuple[os.stat_result, str]] = []
    os.makedirs(init, mode=0o755, exist_ok=True)
    for path, is_dir in wanted:
        if not path.startswith("/"):
            raise InvalidArgument(f"mount target must be an absolute path: {path}")
        rel, found = stack.resolve(path)
        if not rel:
            raise InvalidArgument(f"cannot mount over the container's root directory: {path}")
        if found is not None and stat.S_ISDIR(found.st.st_mode) != is_dir:
            kind = "directory" if is_dir else "file"
            raise InvalidArgument(f"cannot mount a {kind} on {path}: the image has a different kind of file there")
        _create(stack, init, rel, is_dir, fixups)
        targets.append(Target(path, rel, is_dir))
    for st, dest in reversed(fixups):
        _copy_dir_meta(st, dest)
    return targets


def _create(stack: LayerStack, init: str, rel: str, is_dir: bool, fixups: list[tuple[os.stat_result, str]]) -> None:
    parts = rel.split("/")
    for i in range(1, len(parts) + 1):
        sub = "/".join(parts[:i])
        dest = os.path.join(init, sub)
        last = i == len(parts)
        if os.path.lexists(dest):
            continue
        image_rel, found = stack.resolve(sub)
        if last and not is_dir:
            fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
            os.close(fd)
            if found is not None and image_rel == sub:
                _copy_dir_meta(found.st, dest)
            continue
        os.mkdir(dest, 0o755)
        if found is not None and image_rel == sub:
            fixups.append((found.st, dest))


def wanted_targets(config: ContainerConfig) -> list[tuple[str, bool]]:
    wanted = list(BASE_TARGETS)
    for m in config.mounts:
        wanted.append((os.path.normpath(m.target), mount_is_dir(m)))
    return wanted


def host_hostname() -> str:
    return os.uname().nodename


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read()
    except OSError:
        return ""


def write_etc_files(runtime_dir: str, hostname: str, network: str) -> dict[str, str]:
    """Write hosts, hostname and resolv.conf for the container; returns target → source."""
    if network == "host":
        hosts = _read("/etc/hosts") or "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
        if hostname and hostname not in hosts.split():
            hosts += f"127.0.1.1\t{hostname}\n"
    else:
        hosts = (
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
            "fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n"
            f"127.0.0.1\t{hostname}\n"
        )
    resolv = _read("/etc/resolv.conf")
    contents = {"hosts": hosts, "hostname": hostname + "\n", "resolv.conf": resolv}
    sources: dict[str, str] = {}
    for target, name in ETC_FILES.items():
        path = os.path.join(runtime_dir, name)
        data = contents[name].encode()
        if _read_bytes(path) != data:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
        sources[target] = path
    return sources


def _read_bytes(path: str) -> bytes | None:
    """Unchanged files are not rewritten: rewriting frees blocks, slow under ``discard``."""
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError:
        return None


def copy_missing_into(init: str, rootdir: str, targets: list[Target]) -> None:
    """vfs: give the private root the init-layer entries it lacks for these targets.

    The targets were resolved against ``rootdir`` itself, so no component on their
    paths is a symlink; checking again keeps a racing change from escaping the root.
    """
    fixups: list[tuple[os.stat_result, str]] = []
    for target in targets:
        parts = target.rel.split("/")
        for i in range(1, len(parts) + 1):
            sub = "/".join(parts[:i])
            dest = os.path.join(rootdir, sub)
            try:
                st = os.lstat(dest)
            except FileNotFoundError:
                src = os.lstat(os.path.join(init, sub))
                if stat.S_ISDIR(src.st_mode):
                    os.mkdir(dest, 0o755)
                    fixups.append((src, dest))
                else:
                    os.close(os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644))
                    _copy_dir_meta(src, dest)
                continue
            if stat.S_ISLNK(st.st_mode):
                raise InvalidArgument(f"mount target {target.path} changed while starting; try again")
    for st, dest in reversed(fixups):
        _copy_dir_meta(st, dest)
