"""Seccomp filters for containers, compiled by libseccomp (through ctypes, no BPF by hand).

Two sources of a filter:

- the default, which refuses what Docker's default profile refuses a container
  with Docker's default capabilities: mounting, new namespaces (``unshare``,
  ``setns``, ``clone`` with a ``CLONE_NEW*`` flag; ``clone3`` answers ENOSYS so
  libc falls back to ``clone``), the kernel keyring, modules, kexec, reboot, the
  clock, swap, accounting, BPF, perf, io_uring, handles, NUMA policy and the old
  obsolete calls. Each group is allowed again by the capability that Docker's
  profile ties it to (``--cap-add SYS_ADMIN`` makes ``mount`` callable again).
  Docker's profile is an allowlist; this one is the matching denylist, so a
  syscall newer than this table is allowed where Docker would refuse it;
- a profile file in Docker's JSON format (``--security-opt seccomp=FILE``):
  ``defaultAction``, ``defaultErrnoRet``, ``architectures``, and ``syscalls``
  entries with ``names``, ``action``, ``errnoRet``, ``args`` and
  ``includes``/``excludes`` on ``caps``, ``arches`` and ``minKernel``.

The filter covers the native architecture and its 32-bit companions, so a
32-bit system call cannot step around it.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import platform
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..errors import InvalidArgument, RuntimeUnavailable

ACT_KILL_PROCESS = 0x80000000
ACT_KILL_THREAD = 0x00000000
ACT_TRAP = 0x00030000
ACT_LOG = 0x7FFC0000
ACT_ALLOW = 0x7FFF0000
_ACT_ERRNO = 0x00050000
_ACT_TRACE = 0x7FF00000

_OPS = {
    "SCMP_CMP_NE": 1, "SCMP_CMP_LT": 2, "SCMP_CMP_LE": 3, "SCMP_CMP_EQ": 4,
    "SCMP_CMP_GE": 5, "SCMP_CMP_GT": 6, "SCMP_CMP_MASKED_EQ": 7,
}  # fmt: skip

_ARCHES = {
    "SCMP_ARCH_X86_64": 0xC000003E, "SCMP_ARCH_X86": 0x40000003, "SCMP_ARCH_X32": 0x4000003E,
    "SCMP_ARCH_AARCH64": 0xC00000B7, "SCMP_ARCH_ARM": 0x40000028,
    "SCMP_ARCH_PPC64LE": 0xC0000015, "SCMP_ARCH_S390X": 0x80000016, "SCMP_ARCH_S390": 0x00000016,
    "SCMP_ARCH_RISCV64": 0xC00000F3,
}  # fmt: skip

# The native architecture and those whose binaries it also runs.
_COMPANIONS = {
    "x86_64": ("SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"),
    "aarch64": ("SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"),
    "ppc64le": ("SCMP_ARCH_PPC64LE",),
    "s390x": ("SCMP_ARCH_S390X", "SCMP_ARCH_S390"),
    "riscv64": ("SCMP_ARCH_RISCV64",),
}

_ATTR_CTL_NNP = 3  # SCMP_FLTATR_CTL_NNP

_NAMESPACE_FLAGS = (0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000, 0x00000080)

# (syscalls, errno, capabilities any of which allows them again)
_DENIED: tuple[tuple[tuple[str, ...], int, tuple[str, ...]], ...] = (
    (("mount", "umount", "umount2", "pivot_root", "unshare", "setns", "fsopen", "fsconfig", "fsmount",
      "fspick", "move_mount", "open_tree", "mount_setattr", "quotactl", "quotactl_fd", "lookup_dcookie",
      "name_to_handle_at", "fanotify_init", "swapon", "swapoff"), errno.EPERM, ("SYS_ADMIN",)),
    (("vhangup",), errno.EPERM, ("SYS_TTY_CONFIG",)),
    (("add_key", "keyctl", "request_key"), errno.EPERM, ()),
    (("bpf",), errno.EPERM, ("SYS_ADMIN", "BPF")),
    (("perf_event_open",), errno.EPERM, ("SYS_ADMIN", "PERFMON")),
    (("syslog",), errno.EPERM, ("SYSLOG", "SYS_ADMIN")),
    (("kexec_load", "kexec_file_load", "reboot"), errno.EPERM, ("SYS_BOOT",)),
    (("init_module", "finit_module", "delete_module", "create_module", "query_module", "get_kernel_syms"),
     errno.EPERM, ("SYS_MODULE",)),
    (("acct",), errno.EPERM, ("SYS_PACCT",)),
    (("settimeofday", "stime", "clock_settime", "clock_settime64", "clock_adjtime", "clock_adjtime64"),
     errno.EPERM, ("SYS_TIME",)),
    (("iopl", "ioperm"), errno.EPERM, ("SYS_RAWIO",)),
    (("kcmp", "pidfd_getfd"), errno.EPERM, ("SYS_PTRACE",)),
    (("open_by_handle_at",), errno.EPERM, ("DAC_READ_SEARCH",)),
    (("mbind", "set_mempolicy", "get_mempolicy", "move_pages", "migrate_pages", "set_mempolicy_home_node"),
     errno.EPERM, ("SYS_NICE",)),
    (("io_uring_setup", "io_uring_enter", "io_uring_register"), errno.EPERM, ()),
    (("userfaultfd",), errno.EPERM, ("SYS_PTRACE",)),
    (("vm86", "vm86old", "uselib", "ustat", "sysfs", "_sysctl", "nfsservctl", "afs_syscall", "tuxcall",
      "security", "vserver", "putpmsg", "getpmsg"), errno.EPERM, ()),
)  # fmt: skip


@dataclass(frozen=True)
class Rule:
    syscall: str
    action: int
    args: tuple[tuple[int, int, int, int], ...] = ()  # (index, op, value, value_two)


@dataclass(frozen=True)
class Filter:
    default_action: int
    rules: tuple[Rule, ...]
    arches: tuple[str, ...] = ()


def errno_action(code: int) -> int:
    return _ACT_ERRNO | (code & 0xFFFF)


def default_filter(caps: Iterable[str]) -> Filter:
    """The default profile for a container holding ``caps``."""
    held = set(caps)
    rules: list[Rule] = []
    for names, code, allowed_by in _DENIED:
        if any(cap in held for cap in allowed_by):
            continue
        rules.extend(Rule(name, errno_action(code)) for name in names)
    if "SYS_ADMIN" not in held:
        for flag in _NAMESPACE_FLAGS:
            # clone(flags, …): refuse any flag that makes a namespace
            rules.append(Rule("clone", errno_action(errno.EPERM), ((0, _OPS["SCMP_CMP_MASKED_EQ"], flag, flag),)))
        rules.append(Rule("clone3", errno_action(errno.ENOSYS)))
    return Filter(ACT_ALLOW, tuple(rules))


# --- Docker's JSON profile format -------------------------------------------------------


def _action(name: object, errno_ret: object, where: str) -> int:
    if not isinstance(name, str):
        raise InvalidArgument(f"seccomp profile: {where}: action must be a string")
    code = errno_ret if isinstance(errno_ret, int) else errno.EPERM
    simple = {
        "SCMP_ACT_ALLOW": ACT_ALLOW, "SCMP_ACT_KILL": ACT_KILL_THREAD, "SCMP_ACT_KILL_THREAD": ACT_KILL_THREAD,
        "SCMP_ACT_KILL_PROCESS": ACT_KILL_PROCESS, "SCMP_ACT_TRAP": ACT_TRAP, "SCMP_ACT_LOG": ACT_LOG,
    }  # fmt: skip
    if name in simple:
        return simple[name]
    if name == "SCMP_ACT_ERRNO":
        return errno_action(code)
    if name == "SCMP_ACT_TRACE":
        return _ACT_TRACE | (code & 0xFFFF)
    raise InvalidArgument(f"seccomp profile: {where}: unknown action {name!r}")


def _kernel_at_least(version: str) -> bool:
    def parts(text: str) -> tuple[int, ...]:
        out: list[int] = []
        for piece in text.split(".")[:3]:
            digits = "".join(ch for ch in piece if ch.isdigit())
            out.append(int(digits or 0))
        return tuple(out)

    return parts(os.uname().release) >= parts(version)


def _applies(conditions: object, caps: set[str], arch: str, *, include: bool) -> bool:
    if not isinstance(conditions, dict) or not conditions:
        return True
    checks: list[bool] = []
    wanted_caps = [str(c).upper().removeprefix("CAP_") for c in conditions.get("caps") or []]
    if wanted_caps:
        checks.append(all(c in caps for c in wanted_caps) if include else any(c in caps for c in wanted_caps))
    arches = [str(a) for a in conditions.get("arches") or []]
    if arches:
        checks.append(arch in arches)
    min_kernel = conditions.get("minKernel")
    if isinstance(min_kernel, str) and min_kernel:
        checks.append(_kernel_at_least(min_kernel))
    if not checks:
        return True
    return all(checks) if include else not any(checks)


def parse_profile(text: str, caps: Iterable[str], where: str = "seccomp profile") -> Filter:
    """A Docker-format JSON profile as a filter for a container holding ``caps``."""
    try:
        profile = json.loads(text)
    except (ValueError, RecursionError) as e:
        raise InvalidArgument(f"{where}: not valid JSON ({e})") from None
    if not isinstance(profile, dict):
        raise InvalidArgument(f"{where}: the profile must be a JSON object")
    held = set(caps)
    arch = platform.machine()
    short = {"x86_64": "amd64", "aarch64": "arm64"}.get(arch, arch)
    default = _action(profile.get("defaultAction", "SCMP_ACT_ERRNO"), profile.get("defaultErrnoRet"), where)
    rules: list[Rule] = []
    for i, entry in enumerate(profile.get("syscalls") or []):
        if not isinstance(entry, dict):
            raise InvalidArgument(f"{where}: syscalls[{i}] must be an object")
        if not _applies(entry.get("includes"), held, short, include=True):
            continue
        if not _applies(entry.get("excludes"), held, short, include=False):
            continue
        action = _action(entry.get("action"), entry.get("errnoRet"), f"{where}: syscalls[{i}]")
        names = entry.get("names") or ([entry["name"]] if isinstance(entry.get("name"), str) else [])
        args: list[tuple[int, int, int, int]] = []
        for arg in entry.get("args") or []:
            if not isinstance(arg, dict) or arg.get("op") not in _OPS:
                raise InvalidArgument(f"{where}: syscalls[{i}]: each arg needs index, value and a SCMP_CMP_* op")
            args.append(
                (int(arg.get("index", 0)), _OPS[arg["op"]], int(arg.get("value", 0)), int(arg.get("valueTwo", 0)))
            )
        rules.extend(Rule(str(name), action, tuple(args)) for name in names if action != default)
    arches = tuple(str(a) for a in profile.get("architectures") or [])
    return Filter(default, tuple(rules), arches)


# --- libseccomp -----------------------------------------------------------------------


class _ArgCmp(ctypes.Structure):
    _fields_ = [
        ("arg", ctypes.c_uint),
        ("op", ctypes.c_int),
        ("datum_a", ctypes.c_uint64),
        ("datum_b", ctypes.c_uint64),
    ]


_lib: ctypes.CDLL | None = None


def _libseccomp() -> ctypes.CDLL:
    global _lib
    if _lib is None:
        # The soname first: ``ctypes.util`` costs tens of milliseconds to import and its
        # find_library runs ldconfig, on every container start. It is asked only when the
        # library is installed under another name.
        lib: ctypes.CDLL | None
        try:
            lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
        except OSError:
            lib = None
        if lib is None:
            from ctypes import util

            name = util.find_library("seccomp")
            try:
                lib = ctypes.CDLL(name or "libseccomp.so.2", use_errno=True)
            except OSError:
                lib = None
        if lib is None:
            raise RuntimeUnavailable(
                "libseccomp is not installed, so containers cannot get their seccomp filter: "
                "install libseccomp2 (or run with --security-opt seccomp=unconfined)"
            ) from None
        lib.seccomp_init.restype = ctypes.c_void_p
        lib.seccomp_init.argtypes = [ctypes.c_uint32]
        lib.seccomp_release.argtypes = [ctypes.c_void_p]
        lib.seccomp_arch_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
        lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
        lib.seccomp_rule_add_array.argtypes = [
            ctypes.c_void_p,
            ctypes.c_uint32,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.POINTER(_ArgCmp),
        ]
        lib.seccomp_load.argtypes = [ctypes.c_void_p]
        lib.seccomp_attr_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32]
        _lib = lib
    return _lib


def available() -> bool:
    try:
        _libseccomp()
    except RuntimeUnavailable:
        return False
    return True


def prepare() -> None:
    """Load libseccomp before the fork into the container (the image has its own)."""
    _libseccomp()


def load(flt: Filter) -> None:
    """Install ``flt`` on the calling process; its children inherit it."""
    lib = _libseccomp()
    ctx = lib.seccomp_init(flt.default_action)
    if not ctx:
        raise RuntimeUnavailable("seccomp: libseccomp could not create a filter")
    try:
        # libseccomp sets no_new_privs by default; Docker's containers keep setuid
        # programs working (su, sudo, ping), and this process holds CAP_SYS_ADMIN of
        # its namespace, which is what loading without it needs.
        rc = lib.seccomp_attr_set(ctx, _ATTR_CTL_NNP, 0)
        if rc < 0:
            raise RuntimeUnavailable(f"seccomp: cannot keep no_new_privs off: {os.strerror(-rc)}")
        machine = platform.machine()
        wanted = flt.arches or _COMPANIONS.get(machine, ())
        for arch in wanted:
            token = _ARCHES.get(arch)
            if token is None:
                continue
            rc = lib.seccomp_arch_add(ctx, token)
            if rc < 0 and -rc not in (errno.EEXIST, errno.EINVAL):
                raise RuntimeUnavailable(f"seccomp: cannot add architecture {arch}: {os.strerror(-rc)}")
        for rule in flt.rules:
            number = lib.seccomp_syscall_resolve_name(rule.syscall.encode())
            if number < 0:
                continue  # not a call of this architecture
            array = (_ArgCmp * max(len(rule.args), 1))(*(_ArgCmp(*a) for a in rule.args))
            rc = lib.seccomp_rule_add_array(ctx, rule.action, number, len(rule.args), array)
            if rc < 0 and -rc not in (errno.EEXIST, errno.EACCES, errno.EDOM):
                raise RuntimeUnavailable(f"seccomp: cannot add the rule for {rule.syscall}: {os.strerror(-rc)}")
        rc = lib.seccomp_load(ctx)
        if rc < 0:
            raise RuntimeUnavailable(f"seccomp: cannot load the filter: {os.strerror(-rc)}")
    finally:
        lib.seccomp_release(ctx)


def describe(flt: Filter) -> dict[str, Any]:
    """What ``inspect`` may show: the default action and the refused calls."""
    return {"defaultAction": flt.default_action, "refused": sorted({r.syscall for r in flt.rules})}
