"""Build the container's file-system view; runs in the container's first process.

Everything here happens inside the container's own mount namespace, so nothing
needs undoing on the host: when the last process of the container exits, the
kernel drops every mount made here.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import struct
from collections.abc import Callable
from dataclasses import dataclass, field

from ..errors import RuntimeUnavailable
from ..fsutil import rmtree
from . import linux
from .config import Mount
from .initlayer import Target
from .securepath import open_in_root

DEV_NODES = ("null", "zero", "full", "random", "urandom", "tty")

# Docker's defaults: hidden (an empty read-only tmpfs, or /dev/null over a file) and
# read-only kernel paths. Without them the container reads the kernel's memory map
# and timers and, where its uid 0 is the host's, writes kernel settings.
MASKED_PATHS = (
    "/proc/asound", "/proc/acpi", "/proc/interrupts", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware",
    "/sys/devices/virtual/powercap",
)  # fmt: skip
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")
PAGE_LIMIT = os.sysconf("SC_PAGE_SIZE") - 1

_new_api_overlay: bool | None = None  # learnt on first use, per process


@dataclass
class RootPlan:
    """What the container process mounts; computed on the host side before fork."""

    driver: str
    mountpoint: str
    lowerdirs: list[str] = field(default_factory=list)  # top-most first, init layer included
    upperdir: str = ""
    workdir: str = ""
    rootdir: str = ""
    targets: dict[str, Target] = field(default_factory=dict)  # base targets by path
    etc_sources: dict[str, str] = field(default_factory=dict)  # target path → host file
    mounts: list[tuple[Mount, Target]] = field(default_factory=list)
    network: str = "host"
    devpts_gid: bool = False
    scratch: str = ""
    confined: bool = True  # masked paths (everything but --privileged)


def _escape(path: str) -> str:
    return path.replace("\\", "\\\\").replace(":", "\\:").replace(",", "\\,")


def _legacy_overlay(lowerdirs: list[str], upper: str, work: str, target: str, scratch: str) -> None:
    """mount(2) with one option string: it must fit in a page, so past that the
    layers are named by short symlinks and the mount is done from their directory."""
    options = (
        "lowerdir="
        + ":".join(_escape(p) for p in lowerdirs)
        + f",upperdir={_escape(upper)},workdir={_escape(work)},userxattr"
    )
    if len(options) <= PAGE_LIMIT:
        linux.mount("overlay", target, "overlay", 0, options)
        return
    links = linux.make_temp_dir(scratch or os.path.dirname(upper), ".l-")
    old_cwd = os.open(".", os.O_PATH | os.O_DIRECTORY)
    try:
        for i, lower in enumerate(lowerdirs):
            os.symlink(lower, os.path.join(links, format(i, "x")))
        os.symlink(upper, os.path.join(links, "u"))
        os.symlink(work, os.path.join(links, "w"))
        short = (
            "lowerdir=" + ":".join(format(i, "x") for i in range(len(lowerdirs))) + ",upperdir=u,workdir=w,userxattr"
        )
        if len(short) > PAGE_LIMIT:
            raise RuntimeUnavailable(f"too many image layers ({len(lowerdirs)}) for this kernel's overlayfs")
        os.chdir(links)
        linux.mount("overlay", os.path.abspath(target), "overlay", 0, short)
    finally:
        os.fchdir(old_cwd)
        os.close(old_cwd)
        rmtree(links)


def mount_overlay(
    lowerdirs: list[str], upper: str, work: str, target: str, *, legacy: bool | None = None, scratch: str = ""
) -> None:
    """Mount overlayfs with ``userxattr``; the new mount API (``lowerdir+``, Linux 6.8)
    takes one layer per call, so any number of layers fits; older kernels fall back."""
    global _new_api_overlay
    target = os.path.abspath(target)
    if legacy is None:
        legacy = _new_api_overlay is False
    if not legacy:
        strings = [("lowerdir+", p) for p in lowerdirs] + [("upperdir", upper), ("workdir", work)]
        try:
            linux.mount_fs("overlay", target, strings, ["userxattr"])
            _new_api_overlay = True
            return
        except OSError as e:
            if e.errno not in (errno.EINVAL, errno.ENOSYS) or _new_api_overlay:
                raise
            _new_api_overlay = False
    _legacy_overlay(lowerdirs, upper, work, target, scratch)


def _touch(path: str, mode: int = 0o644) -> None:
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, mode))


def _setup_dev(dev: str, devpts_gid: bool) -> None:
    # nodev: a node made here later (mknod with CAP_MKNOD) opens nothing; the
    # nodes below are bind mounts of the host's, which keep their own mount.
    flags = linux.MS_NOSUID | linux.MS_NODEV | linux.MS_STRICTATIME
    linux.mount("tmpfs", dev, "tmpfs", flags, "mode=755,size=65536k")
    for name in DEV_NODES:
        node = os.path.join(dev, name)
        _touch(node, 0o666)
        linux.mount("/dev/" + name, node, None, linux.MS_BIND)
    pts = os.path.join(dev, "pts")
    os.mkdir(pts, 0o755)
    opts = "newinstance,ptmxmode=0666,mode=0620" + (",gid=5" if devpts_gid else "")
    linux.mount("devpts", pts, "devpts", linux.MS_NOSUID | linux.MS_NOEXEC, opts)
    os.symlink("pts/ptmx", os.path.join(dev, "ptmx"))
    shm = os.path.join(dev, "shm")
    os.mkdir(shm, 0o1777)
    flags = linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC
    linux.mount("shm", shm, "tmpfs", flags, "mode=1777,size=65536k")
    mqueue = os.path.join(dev, "mqueue")
    os.mkdir(mqueue, 0o755)
    try:
        linux.mount("mqueue", mqueue, "mqueue", flags)
    except OSError:
        os.rmdir(mqueue)
    for name, target in (
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("core", "/proc/kcore"),
    ):
        os.symlink(target, os.path.join(dev, name))


def _setup_sys(sys_dir: str, network: str) -> None:
    """Best effort: sysfs needs a network namespace of our own; otherwise a
    read-only view of the host's. Containers rarely need it, so no failure."""
    flags = linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC | linux.MS_RDONLY
    with contextlib.suppress(OSError):
        if network == "none":
            linux.mount("sysfs", sys_dir, "sysfs", flags)
            return
        linux.mount("/sys", sys_dir, None, linux.MS_BIND | linux.MS_REC)
        with contextlib.suppress(OSError):
            linux.mount_setattr(sys_dir, linux.MOUNT_ATTR_RDONLY)


_FLAG_OPTIONS = {
    "nosuid": (linux.MS_NOSUID, linux.MOUNT_ATTR_NOSUID),
    "nodev": (linux.MS_NODEV, linux.MOUNT_ATTR_NODEV),
    "noexec": (linux.MS_NOEXEC, linux.MOUNT_ATTR_NOEXEC),
    "ro": (linux.MS_RDONLY, linux.MOUNT_ATTR_RDONLY),
}


def _fd_path(fd: int) -> str:
    return f"/proc/self/fd/{fd}"


def _bind(source: str, target_fd: int, where: str, attrs: int, *, recursive: bool = True) -> None:
    """Bind ``source`` onto the target the descriptor holds, its flags (read-only,
    nodev …) set on the detached copy before it is attached: there is no moment
    when the mount is visible and writable, and no path is resolved twice."""
    try:
        tree = linux.open_tree(source, linux.OPEN_TREE_CLONE | (linux.AT_RECURSIVE if recursive else 0))
    except OSError as e:
        if e.errno != errno.ENOSYS:
            raise
        _bind_legacy(source, target_fd, attrs, recursive)
        return
    try:
        if attrs:
            linux.mount_setattr_fd(tree, attrs)
        linux.move_mount_fd(tree, target_fd, where)
    finally:
        os.close(tree)


def _bind_legacy(source: str, target_fd: int, attrs: int, recursive: bool) -> None:
    """Kernels before 5.2: mount(2) onto the descriptor, then a remount for flags."""
    linux.mount(source, _fd_path(target_fd), None, linux.MS_BIND | (linux.MS_REC if recursive else 0))
    if attrs:
        flags = sum(ms for ms, attr in _FLAG_OPTIONS.values() if attrs & attr)
        mounted = os.readlink(_fd_path(target_fd))
        keep = linux.statvfs_mount_flags(mounted)
        linux.mount(None, mounted, None, linux.MS_BIND | linux.MS_REMOUNT | keep | flags)


def _tmpfs(target_fd: int, where: str, flags: int, attrs: int, options: list[str]) -> None:
    strings = [tuple(o.split("=", 1)) for o in options if "=" in o]
    bare = [o for o in options if "=" not in o]
    try:
        linux.mount_fs("tmpfs", where, strings, bare, target_fd=target_fd, attrs=attrs)  # type: ignore[arg-type]
    except OSError as e:
        if e.errno != errno.ENOSYS:
            raise
        linux.mount("tmpfs", _fd_path(target_fd), "tmpfs", flags, ",".join(options) or None)


def _user_mount(mount: Mount, target_fd: int) -> None:
    """nodev on every user mount: an image or a volume may carry device nodes."""
    flags = linux.MS_NODEV
    attrs = linux.MOUNT_ATTR_NODEV
    data: list[str] = []
    for opt in mount.options:
        if opt in _FLAG_OPTIONS:
            flags |= _FLAG_OPTIONS[opt][0]
            attrs |= _FLAG_OPTIONS[opt][1]
        elif opt not in ("rw", "bind", "rbind"):
            data.append(opt)
    if mount.readonly:
        flags |= linux.MS_RDONLY
        attrs |= linux.MOUNT_ATTR_RDONLY
    if mount.kind == "tmpfs":
        _tmpfs(target_fd, mount.target, flags | linux.MS_NOSUID, attrs | linux.MOUNT_ATTR_NOSUID, data)
        return
    _bind(mount.source, target_fd, mount.target, attrs)


def _mask(root: str) -> None:
    """Docker's masked and read-only paths, on the container's fresh /proc and /sys."""
    for path in MASKED_PATHS:
        where = os.path.join(root, path.lstrip("/"))
        try:
            st = os.lstat(where)
        except OSError:
            continue
        if stat.S_ISDIR(st.st_mode):
            linux.mount("tmpfs", where, "tmpfs", linux.MS_RDONLY | linux.MS_NOSUID | linux.MS_NODEV, "size=0")
        elif not stat.S_ISLNK(st.st_mode):
            linux.mount("/dev/null", where, None, linux.MS_BIND)
    for path in READONLY_PATHS:
        where = os.path.join(root, path.lstrip("/"))
        if not os.path.lexists(where):
            continue
        linux.mount(where, where, None, linux.MS_BIND | linux.MS_REC)
        try:
            linux.mount_setattr(where, linux.MOUNT_ATTR_RDONLY | linux.MOUNT_ATTR_NOSUID | linux.MOUNT_ATTR_NODEV)
        except OSError as e:
            if e.errno != errno.ENOSYS:
                raise
            keep = linux.statvfs_mount_flags(where)
            linux.mount(None, where, None, linux.MS_BIND | linux.MS_REMOUNT | linux.MS_RDONLY | keep)


def setup_root(plan: RootPlan, *, kernel_fs: bool = True) -> None:
    """Mount the root, the runtime's mounts and the user's mounts, then pivot into it.

    Every target is found with ``open_in_root`` and mounted onto its descriptor,
    at every start: what the image, the container layer or a shared volume put on
    the way is resolved inside the container, never on the host.

    ``kernel_fs=False`` leaves out /proc, /dev and /sys: a helper that only works on
    a stopped container's files (``inroot``) has no pid namespace to mount /proc for
    and wants the container's files, not the kernel's."""
    linux.mount(None, "/", None, linux.MS_REC | linux.MS_PRIVATE)
    root = plan.mountpoint
    try:
        if plan.driver == "overlay":
            mount_overlay(plan.lowerdirs, plan.upperdir, plan.workdir, root, scratch=plan.scratch)
        else:
            linux.mount(plan.rootdir, root, None, linux.MS_BIND | linux.MS_REC)
            # A vfs root is a bind of the store's own file system, whose device
            # nodes would open; overlay made in a user namespace is nodev already.
            _set_nodev(root)
    except OSError as e:
        raise RuntimeUnavailable(f"cannot mount the container's root file system: {e.strerror or e}") from e
    root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        _mount_all(plan, root, root_fd, kernel_fs)
    finally:
        os.close(root_fd)
    os.chdir(root)
    linux.pivot_root(".", ".")
    linux.umount2(".", linux.MNT_DETACH)
    os.chdir("/")


def _set_nodev(root: str) -> None:
    try:
        linux.mount_setattr(root, linux.MOUNT_ATTR_NODEV)
    except OSError as e:
        if e.errno != errno.ENOSYS:
            raise
        keep = linux.statvfs_mount_flags(root)
        linux.mount(None, root, None, linux.MS_BIND | linux.MS_REMOUNT | linux.MS_NODEV | keep)


def _mount_all(plan: RootPlan, root: str, root_fd: int, kernel_fs: bool) -> None:
    def target(path: str, is_dir: bool) -> int:
        return open_in_root(root_fd, path, is_dir=is_dir)

    if kernel_fs:
        fd = target("/proc", True)
        try:
            linux.mount("proc", _fd_path(fd), "proc", linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC)
        except OSError as e:
            raise RuntimeUnavailable(
                f"cannot mount /proc in the container ({e.strerror}); the host's /proc may be partly hidden"
            ) from e
        finally:
            os.close(fd)
        setups: tuple[tuple[str, Callable[[str], None]], ...] = (
            ("/dev", lambda p: _setup_dev(p, plan.devpts_gid)),
            ("/sys", lambda p: _setup_sys(p, plan.network)),
        )
        for path, setup in setups:
            fd = target(path, True)
            try:
                setup(os.readlink(_fd_path(fd)))
            finally:
                os.close(fd)
        if plan.confined:
            _mask(root)
    for path, source in plan.etc_sources.items():
        fd = target(path, False)
        try:
            _bind(source, fd, path, 0, recursive=False)
        finally:
            os.close(fd)
    for mount, spec in sorted(plan.mounts, key=lambda mt: mt[1].rel.count("/")):
        try:
            fd = target(mount.target, spec.is_dir)
        except OSError as e:
            raise RuntimeUnavailable(f"cannot make the mount point {mount.target}: {e.strerror}") from e
        try:
            _user_mount(mount, fd)
        except OSError as e:
            raise RuntimeUnavailable(
                f"cannot mount {mount.source or mount.kind} on {mount.target}: {e.strerror}"
            ) from e
        finally:
            os.close(fd)


def loopback_up() -> None:
    """A new network namespace starts with ``lo`` down; Docker's ``none`` has it up."""
    import socket  # network "none" only; still the host's files here (before pivot_root)

    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        req = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(sock.fileno(), siocgifflags, req))[1]
        fcntl.ioctl(sock.fileno(), siocsifflags, struct.pack("16sH14x", b"lo", flags | iff_up))
