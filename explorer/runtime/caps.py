"""Linux capabilities of a container's process: Docker's default set, ``--cap-add``/``--cap-drop``.

Every container runs in a user namespace of its own, so its root holds every
capability *of that namespace*. That is still too much: with ``CAP_SYS_ADMIN`` it
can remount a ``:ro`` volume read-write or ``/sys`` writable, and where uid 0 maps
to the host's root (containers started by root) file permission checks on kernel
files such as ``/proc/sys/kernel/core_pattern`` are the host root's. So the process
keeps only Docker's default set: the bounding set is cut down before exec, which
for uid 0 makes the exec'd program's permitted and effective sets exactly that
set, and for any other uid the kernel clears them at ``setresuid``.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Iterable

from ..errors import InvalidArgument

# Numbers from linux/capability.h; the same on every architecture.
CAPABILITIES: dict[str, int] = {
    "CHOWN": 0, "DAC_OVERRIDE": 1, "DAC_READ_SEARCH": 2, "FOWNER": 3, "FSETID": 4, "KILL": 5,
    "SETGID": 6, "SETUID": 7, "SETPCAP": 8, "LINUX_IMMUTABLE": 9, "NET_BIND_SERVICE": 10,
    "NET_BROADCAST": 11, "NET_ADMIN": 12, "NET_RAW": 13, "IPC_LOCK": 14, "IPC_OWNER": 15,
    "SYS_MODULE": 16, "SYS_RAWIO": 17, "SYS_CHROOT": 18, "SYS_PTRACE": 19, "SYS_PACCT": 20,
    "SYS_ADMIN": 21, "SYS_BOOT": 22, "SYS_NICE": 23, "SYS_RESOURCE": 24, "SYS_TIME": 25,
    "SYS_TTY_CONFIG": 26, "MKNOD": 27, "LEASE": 28, "AUDIT_WRITE": 29, "AUDIT_CONTROL": 30,
    "SETFCAP": 31, "MAC_OVERRIDE": 32, "MAC_ADMIN": 33, "SYSLOG": 34, "WAKE_ALARM": 35,
    "BLOCK_SUSPEND": 36, "AUDIT_READ": 37, "PERFMON": 38, "BPF": 39, "CHECKPOINT_RESTORE": 40,
}  # fmt: skip

# What ``docker run`` grants by default (moby's oci/caps defaults).
DEFAULT: frozenset[str] = frozenset({
    "CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID", "SETUID",
    "SETFCAP", "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE",
})  # fmt: skip

_PR_CAPBSET_DROP = 24
_PR_CAP_AMBIENT = 47
_PR_CAP_AMBIENT_CLEAR_ALL = 4
_CAP_VERSION_3 = 0x20080522


def normalize(name: str) -> str:
    """``cap_net_admin``, ``NET_ADMIN`` and ``CAP_NET_ADMIN`` all name one capability."""
    upper = name.strip().upper()
    if upper.startswith("CAP_"):
        upper = upper[4:]
    if upper != "ALL" and upper not in CAPABILITIES:
        raise InvalidArgument(f"unknown capability {name!r}: use a name such as NET_ADMIN or ALL (see capabilities(7))")
    return upper


def effective_set(add: Iterable[str] = (), drop: Iterable[str] = (), *, privileged: bool = False) -> frozenset[str]:
    """The capabilities a container keeps, resolved as Docker does: ``--cap-drop ALL``
    empties the default set before ``--cap-add``; ``--cap-add ALL`` grants every one,
    and ``--cap-drop`` of a named one still removes it."""
    if privileged:
        return frozenset(CAPABILITIES)
    adds = {normalize(n) for n in add}
    drops = {normalize(n) for n in drop}
    base: set[str] = set() if "ALL" in drops else set(DEFAULT)
    base |= set(CAPABILITIES) if "ALL" in adds else adds - {"ALL"}
    base -= drops - {"ALL"}
    return frozenset(base)


def mask(names: Iterable[str]) -> int:
    bits = 0
    for name in names:
        bits |= 1 << CAPABILITIES[name]
    return bits


def last_cap() -> int:
    """The highest capability this kernel knows; newer ones than ours are dropped too."""
    try:
        with open("/proc/sys/kernel/cap_last_cap", "rb") as fh:  # bytes: no codec import
            return int(fh.read().strip())
    except (OSError, ValueError):
        return max(CAPABILITIES.values())


_libc = ctypes.CDLL(None, use_errno=True)


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def _prctl(option: int, arg2: int, arg3: int = 0) -> None:
    if (
        _libc.prctl(
            ctypes.c_int(option), ctypes.c_ulong(arg2), ctypes.c_ulong(arg3), ctypes.c_ulong(0), ctypes.c_ulong(0)
        )
        < 0
    ):
        err = ctypes.get_errno()
        raise OSError(err, f"prctl {option}: {os.strerror(err)}")


def _capset(effective: int, permitted: int, inheritable: int) -> None:
    header = _CapHeader(_CAP_VERSION_3, 0)
    data = (_CapData * 2)(
        _CapData(effective & 0xFFFFFFFF, permitted & 0xFFFFFFFF, inheritable & 0xFFFFFFFF),
        _CapData(effective >> 32, permitted >> 32, inheritable >> 32),
    )
    if _libc.capset(ctypes.byref(header), data) < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"capset: {os.strerror(err)}")


def limit_to(keep: frozenset[str], top: int) -> None:
    """Cut the bounding set to ``keep`` and empty the inheritable and ambient sets,
    so nothing the exec'd program or its children run can regain what was dropped.
    The permitted set is left whole: switching user and loading seccomp still follow.
    ``top`` is ``last_cap()``, read by the caller: inside the container nothing may
    be imported or looked up on the host's terms."""
    keep_bits = mask(keep)
    for number in range(top + 1):
        if not keep_bits & (1 << number):
            _prctl(_PR_CAPBSET_DROP, number)
    try:
        _prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL)
    except OSError:
        pass  # kernels before 4.3 have no ambient set
    everything = (1 << (top + 1)) - 1
    _capset(everything, everything, 0)


def settle(keep: frozenset[str]) -> None:
    """After the switch to the container's user: uid 0 keeps exactly ``keep``
    (exec would compute the same from the bounding set); others have none left."""
    if os.geteuid() == 0:
        bits = mask(keep)
        _capset(bits, bits, 0)
