"""``RUN --mount=…`` specs: parsed into ``Mount`` records and checked like BuildKit's.

A spec is one CSV row of ``key=value`` fields. Its values may use ``$VAR``, so the builder
parses it at build time with the ARGs and ENV in effect at that step (``parse_mount(spec,
expand)``). ``check_mount_spec`` is what can be checked without a build: everything,
unless values hold variables. The parser of RUN calls it so a typo in a mount option fails
in the editor, with the line, instead of halfway through a build.

This module knows nothing of instructions or stages; ``Run.mounts()`` builds on it.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable
from dataclasses import dataclass

from explorer.builder.parser import go_quote as _q
from explorer.builder.parser import suggest
from explorer.errors import DockerfileError

__all__ = [
    "Mount",
    "MountSpecError",
    "check_mount_spec",
    "mount_fields",
    "parse_mount",
]


class MountSpecError(Exception):
    """Internal: a bad ``--mount`` spec; the caller adds where it is.

    Parsing a RUN re-raises it with the RUN's line; ``parse_mount`` makes it a ``DockerfileError``.
    """


@dataclass(frozen=True)
class Mount:
    """One ``RUN --mount=…`` after parsing (values expanded when an expander was given)."""

    type: str = "bind"
    target: str = ""
    source: str = ""
    from_: str = ""
    readonly: bool = True
    id: str = ""
    sharing: str = ""
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None
    required: bool = False
    size: int | None = None


_MOUNT_TYPES = ("bind", "cache", "tmpfs", "secret", "ssh")
_SHARING_MODES = ("shared", "private", "locked")
_MOUNT_KEYS = (
    "type",
    "from",
    "source",
    "src",
    "target",
    "dst",
    "destination",
    "readonly",
    "ro",
    "readwrite",
    "rw",
    "id",
    "sharing",
    "required",
    "mode",
    "uid",
    "gid",
    "size",
)


def mount_fields(spec: str) -> list[tuple[str, str | None]]:
    """The spec's ``(key, value)`` fields, keys lowercased, value None for a bare key."""
    try:
        rows = list(csv.reader([spec], strict=True))
    except csv.Error as err:
        raise MountSpecError(f"RUN --mount: failed to parse csv mounts: {err}") from None
    fields = rows[0] if rows else []
    out: list[tuple[str, str | None]] = []
    for item in fields:
        key, has_value, value = item.partition("=")
        out.append((key.lower(), value if has_value else None))
    return out


def _parse_bool(key: str, value: str) -> bool:
    lowered = value.lower()
    if lowered in ("1", "t", "true"):
        return True
    if lowered in ("0", "f", "false"):
        return False
    raise MountSpecError(f"RUN --mount: invalid value for {key}: {value}")


def _parse_size(value: str) -> int:
    match = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)\s*([kmgtp]?)i?b?", value.strip().lower())
    if match is None:
        raise MountSpecError(f"RUN --mount: invalid value for size: {value}")
    power = "kmgtp".find(match.group(2)) + 1 if match.group(2) else 0
    return int(float(match.group(1)) * 1024**power)


def _parse_uint(key: str, value: str, base: int) -> int:
    try:
        number = int(value, base)
    except ValueError:
        raise MountSpecError(f"RUN --mount: invalid value {value} for {key}") from None
    if not 0 <= number < 2**32:
        raise MountSpecError(f"RUN --mount: invalid value {value} for {key}")
    return number


def _require_secret_or_ssh(mount_type: str) -> None:
    if mount_type not in ("secret", "ssh"):
        raise MountSpecError(f"RUN --mount: unexpected key 'required' for mount type '{mount_type}'")


def _build_mount(spec: str, expand: Callable[[str], str] | None) -> Mount:
    values: dict[str, object] = {}
    mount_type = "bind"
    ro_auto = True
    for key, raw in mount_fields(spec):
        if raw is None:
            if key in ("readonly", "ro"):
                values["readonly"], ro_auto = True, False
            elif key in ("readwrite", "rw"):
                values["readonly"], ro_auto = False, False
            elif key == "required":
                _require_secret_or_ssh(mount_type)
                values["required"] = True
            else:
                raise MountSpecError(f"RUN --mount: invalid field '{key}' must be a key=value pair")
            continue
        value = expand(raw) if expand is not None else raw
        if key == "type":
            mount_type = value.lower()
            if mount_type not in _MOUNT_TYPES:
                raise MountSpecError(
                    f"RUN --mount: unsupported mount type {_q(value)} (use one of {', '.join(_MOUNT_TYPES)})"
                )
            values["type"] = mount_type
        elif key == "from":
            values["from_"] = value
        elif key in ("source", "src"):
            values["source"] = value
        elif key in ("target", "dst", "destination"):
            values["target"] = value
        elif key in ("readonly", "ro"):
            values["readonly"], ro_auto = _parse_bool(key, value), False
        elif key in ("readwrite", "rw"):
            values["readonly"], ro_auto = not _parse_bool(key, value), False
        elif key == "required":
            _require_secret_or_ssh(mount_type)
            values["required"] = _parse_bool(key, value)
        elif key == "size":
            if mount_type != "tmpfs":
                raise MountSpecError(f"RUN --mount: unexpected key 'size' for mount type '{mount_type}'")
            values["size"] = _parse_size(value)
        elif key == "id":
            values["id"] = value
        elif key == "sharing":
            if value.lower() not in _SHARING_MODES:
                raise MountSpecError(
                    f"RUN --mount: unsupported sharing value {_q(value)} (use one of {', '.join(_SHARING_MODES)})"
                )
            values["sharing"] = value.lower()
        elif key == "mode":
            values["mode"] = _parse_uint(key, value, 8)
        elif key in ("uid", "gid"):
            values[key] = _parse_uint(key, value, 10)
        else:
            hint = suggest(key, _MOUNT_KEYS)
            raise MountSpecError(
                f"RUN --mount: unexpected key '{key}'" + (f" (did you mean '{hint}'?)" if hint else "")
            )
    if ro_auto:
        values["readonly"] = mount_type not in ("cache", "tmpfs")
    mount = Mount(**values)  # type: ignore[arg-type]
    _validate_mount(mount)
    return mount


def _validate_mount(mount: Mount) -> None:
    kind = mount.type
    if kind not in ("secret", "ssh", "cache"):
        for name in ("mode", "uid", "gid"):
            if getattr(mount, name) is not None:
                raise MountSpecError(f"RUN --mount: {name} not allowed for {_q(kind)} type mounts")
    if kind == "secret":
        if mount.from_:
            raise MountSpecError("RUN --mount: secret mount should not have a from")
        if mount.sharing:
            raise MountSpecError("RUN --mount: secret mount should not define sharing")
        if not (mount.source or mount.target or mount.id):
            raise MountSpecError("RUN --mount: invalid secret mount. one of source, target required")
        if mount.source and mount.id:
            raise MountSpecError("RUN --mount: both source and id can't be set")
    if mount.sharing and kind != "cache":
        raise MountSpecError(f"RUN --mount: invalid cache sharing set for {kind} mount")
    if kind in ("bind", "cache", "tmpfs") and not mount.target:
        raise MountSpecError(f"RUN --mount: type={kind} needs a target (target=<path in the container>)")


def check_mount_spec(spec: str) -> None:
    """What can be checked before the build: everything, unless values hold variables."""
    for key, value in mount_fields(spec):
        if key == "from" and value is not None and re.search(r"\$.", value):
            raise MountSpecError("RUN --mount: 'from' doesn't support variable expansion, define alias stage instead")
    if "$" not in spec:
        _build_mount(spec, None)


def parse_mount(spec: str, expand: Callable[[str], str] | None = None) -> Mount:
    """One ``--mount`` value; with ``expand``, variable references in values are resolved."""
    try:
        return _build_mount(spec, expand)
    except MountSpecError as err:
        raise DockerfileError(str(err)) from None
