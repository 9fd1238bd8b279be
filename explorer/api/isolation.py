"""``--privileged``, ``--cap-add``, ``--cap-drop`` and ``--security-opt``, as Docker reads them.

The options are checked and stored when the container is created (a seccomp
profile file is read then and kept inline, as Docker keeps it in ``SecurityOpt``),
so ``start`` never depends on a file that may have changed or gone, and a bad
option fails ``create`` with one line and no container left behind.
"""

from __future__ import annotations

from typing import Any

from .. import runtime
from ..errors import InvalidArgument

_TRUE = ("", "true", "1", "yes")
_FALSE = ("false", "0", "no")


def _split(opt: str) -> tuple[str, str]:
    # Docker takes both key=value and the older key:value
    for sep in ("=", ":"):
        if sep in opt:
            key, _sep, value = opt.partition(sep)
            return key.strip(), value
    return opt.strip(), ""


def host_config(privileged: bool, cap_add: list[str], cap_drop: list[str], security_opt: list[str]) -> dict[str, Any]:
    """The ``HostConfig`` fields the container record keeps (Docker's names)."""
    opts: list[str] = []
    for opt in security_opt:
        key, value = _split(opt)
        if key == "seccomp":
            if value in ("", "unconfined"):
                if not value:
                    raise InvalidArgument("--security-opt seccomp needs a value: unconfined or a profile file")
                opts.append("seccomp=unconfined")
                continue
            if value.lstrip().startswith("{"):
                text = value
            else:
                try:
                    with open(value, encoding="utf-8") as fh:
                        text = fh.read()
                except OSError as e:
                    raise InvalidArgument(
                        f"--security-opt seccomp={value}: cannot read the profile: {e.strerror}"
                    ) from None
            opts.append("seccomp=" + text)
        elif key == "no-new-privileges":
            if value.lower() not in _TRUE + _FALSE:
                raise InvalidArgument(f"--security-opt {opt}: use no-new-privileges or no-new-privileges=true|false")
            opts.append("no-new-privileges=" + ("true" if value.lower() in _TRUE else "false"))
        elif key in ("apparmor", "label") and value in ("unconfined", "disable"):
            opts.append(f"{key}={value}")  # no LSM confines Strata's containers: nothing to lift
        else:
            raise InvalidArgument(
                f"--security-opt {opt!r} is not supported: use seccomp=unconfined|FILE or no-new-privileges"
            )
    config = {"Privileged": privileged, "CapAdd": list(cap_add), "CapDrop": list(cap_drop), "SecurityOpt": opts}
    runtime.check_security(security_of(config))
    return config


def security_of(config: dict[str, Any]) -> runtime.Security:
    """The runtime's profile for a container record's config (old records: the default)."""
    seccomp = ""
    no_new_privileges = False
    for opt in config.get("SecurityOpt") or []:
        key, _sep, value = str(opt).partition("=")
        if key == "seccomp":
            seccomp = value
        elif key == "no-new-privileges":
            no_new_privileges = value == "true"
    return runtime.Security(
        privileged=bool(config.get("Privileged")),
        cap_add=[str(c) for c in config.get("CapAdd") or []],
        cap_drop=[str(c) for c in config.get("CapDrop") or []],
        seccomp=seccomp,
        no_new_privileges=no_new_privileges,
    )
