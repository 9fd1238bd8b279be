"""Kernel settings that forbid user namespaces, as one line saying how to allow them.

A leaf of the runtime: the namespace code (``userns``, ``container``, ``storens``)
explains its failures with it without importing the support probes, which themselves
use the namespace code.
"""

from __future__ import annotations

import os


def _sysctl(name: str) -> str | None:
    try:
        with open("/proc/sys/" + name.replace(".", "/"), encoding="ascii") as fh:
            return fh.read().strip()
    except OSError:
        return None


def userns_problem() -> str | None:
    """The one-line reason user namespaces are unavailable, or None if no setting forbids them."""
    if _sysctl("user.max_user_namespaces") == "0":
        return (
            "user namespaces are disabled (user.max_user_namespaces=0); "
            "allow them with: sudo sysctl -w user.max_user_namespaces=28633"
        )
    if os.geteuid() == 0:
        return None
    if _sysctl("kernel.unprivileged_userns_clone") == "0":
        return (
            "unprivileged user namespaces are disabled (kernel.unprivileged_userns_clone=0); "
            "allow them with: sudo sysctl -w kernel.unprivileged_userns_clone=1"
        )
    if _sysctl("kernel.apparmor_restrict_unprivileged_userns") == "1":
        return (
            "AppArmor restricts unprivileged user namespaces "
            "(kernel.apparmor_restrict_unprivileged_userns=1); allow them with: "
            "sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0 "
            "(or an AppArmor profile that grants 'userns' to strata)"
        )
    return None
