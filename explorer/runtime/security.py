"""Apply a container's isolation profile in its first process, just before exec.

Order matters and is the one runc uses: the new session keyring first (``keyctl``
is refused afterwards), then the bounding set, then ``no_new_privs``, then the
seccomp filter while the process still holds ``CAP_SYS_ADMIN`` of its namespace
(loading one needs it, or ``no_new_privs``), then the switch to the container's
user, and last the capability sets of a process that stays uid 0. The filter is
compiled in the caller, before fork, so a bad profile fails ``create``/``start``
with one line instead of inside the container.
"""

from __future__ import annotations

import contextlib
import errno

from . import caps, linux, seccomp
from .config import Security


class Prepared:
    """What ``apply`` needs, computed by the caller."""

    def __init__(self, security: Security) -> None:
        self.security = security
        self.keep = caps.effective_set(security.cap_add, security.cap_drop, privileged=security.privileged)
        self.last_cap = caps.last_cap()
        self.filter: seccomp.Filter | None = None
        if not security.privileged and security.seccomp != "unconfined":
            if security.seccomp:
                self.filter = seccomp.parse_profile(security.seccomp, self.keep)
            else:
                self.filter = seccomp.default_filter(self.keep)
            seccomp.prepare()

    @property
    def confined(self) -> bool:
        return not self.security.privileged


def check(security: Security) -> None:
    """Refuse a bad profile (unknown capability, broken JSON) with one line."""
    Prepared(security)


def before_user_switch(prepared: Prepared) -> None:
    try:
        linux.join_new_session_keyring()
    except OSError as e:
        # Refused where an outer sandbox already filters keyctl: nothing is shared then.
        if e.errno not in (errno.EPERM, errno.ENOSYS, errno.EACCES):
            raise
    if prepared.confined:
        caps.limit_to(prepared.keep, prepared.last_cap)
    if prepared.security.no_new_privileges:
        linux.prctl(linux.PR_SET_NO_NEW_PRIVS, 1)
    if prepared.filter is not None:
        seccomp.load(prepared.filter)


def after_user_switch(prepared: Prepared) -> None:
    if prepared.confined:
        with contextlib.suppress(OSError):
            caps.settle(prepared.keep)
