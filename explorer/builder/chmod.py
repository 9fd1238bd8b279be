"""``COPY --chmod`` / ``ADD --chmod``: octal modes and, since Dockerfile 1.14, chmod(1)'s
symbolic ones (``u=rwX,go=rX``, ``+x``, ``g=u``), as BuildKit reads them.

BuildKit (dockerfile2llb/convert_copy.go) takes a value that parses as octal as a mode, and
refuses one above 07777 or one that starts like a number but is not octal with the words
"invalid chmod parameter: '…'. it should be octal string and between 0 and 07777"; anything
else is parsed as a symbolic mode with a umask of 0 (tonistiigi/dchapes-mode).

An octal mode is every copied file's and directory's mode, and also the mode of the
directories the copy makes for its destination (fsutil's MkdirAll gets it); a symbolic
mode changes each copied path's own mode, and made directories stay 0755.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .copyitems import CopyError

_WHO = {"u": 0o4700, "g": 0o2070, "o": 0o1007}  # class -> its rwx bits plus its special bit
_CLAUSE = re.compile(r"([ugoa]*)((?:[-+=](?:[ugo]|[rwxXst]*))+)$")
_OPS = re.compile(r"([-+=])([ugo]|[rwxXst]*)")


@dataclass(frozen=True)
class _Op:
    who: str  # a subset of "ugo"; empty means all, as "a" does (umask 0)
    op: str  # + - =
    perms: str  # letters of rwxXst, or one of u g o (copy that class's bits)


@dataclass(frozen=True)
class Chmod:
    """A parsed --chmod: ``octal`` for a numeric mode, else the symbolic operations."""

    spec: str
    octal: int | None
    ops: tuple[_Op, ...] = ()

    @property
    def dir_mode(self) -> int:
        """The mode of a directory the copy makes (a destination or one of its parents)."""
        return self.octal if self.octal is not None else 0o755

    def apply(self, mode: int, is_dir: bool) -> int:
        """The mode a copied path with mode ``mode`` gets."""
        if self.octal is not None:
            return self.octal
        current = mode & 0o7777
        for op in self.ops:
            current = _apply_op(op, current, is_dir)
        return current


def _bits(op: _Op, current: int, is_dir: bool) -> tuple[int, int]:
    """The permission bits ``op`` names for its classes, and the mask of those classes."""
    classes = op.who or "ugo"
    mask = 0
    for who in classes:
        mask |= _WHO[who]
    if op.perms in ("u", "g", "o"):
        shift = {"u": 6, "g": 3, "o": 0}[op.perms]
        rwx = (current >> shift) & 0o7
        value = 0
        for who in classes:
            value |= rwx << {"u": 6, "g": 3, "o": 0}[who]
        return value, mask
    rwx = 0
    for letter in op.perms:
        if letter == "r":
            rwx |= 0o4
        elif letter == "w":
            rwx |= 0o2
        elif letter == "x" or (letter == "X" and (is_dir or current & 0o111)):
            rwx |= 0o1
    value = 0
    for who in classes:
        value |= rwx << {"u": 6, "g": 3, "o": 0}[who]
    if "s" in op.perms:
        value |= (0o4000 if "u" in classes else 0) | (0o2000 if "g" in classes else 0)
    if "t" in op.perms and (not op.who or "o" in op.who):
        value |= 0o1000
    return value, mask


def _apply_op(op: _Op, current: int, is_dir: bool) -> int:
    value, mask = _bits(op, current, is_dir)
    if op.op == "+":
        return current | value
    if op.op == "-":
        return current & ~value
    return (current & ~mask) | value


def _non_octal(spec: str) -> str:
    return f"invalid chmod parameter: '{spec}'. it should be octal string and between 0 and 07777"


def parse_chmod(spec: str | None, line: int, filename: str, keyword: str) -> Chmod | None:
    """``spec`` as a Chmod, or None without one; a bad one is a CopyError naming it."""
    if not spec:
        return None
    if spec[0].isdigit():
        try:
            value = int(spec, 8)
        except ValueError:
            value = -1
        if not 0 <= value <= 0o7777:
            raise CopyError(f"{keyword}: {_non_octal(spec)}", line, filename)
        return Chmod(spec, value)
    ops: list[_Op] = []
    for clause in spec.split(","):
        match = _CLAUSE.match(clause)
        if match is None:
            raise CopyError(
                f"{keyword}: invalid chmod parameter: '{spec}': {clause!r} is not a symbolic mode "
                "(use octal such as 0755, or chmod's symbolic form such as u=rwX,go=rX)",
                line,
                filename,
            )
        who = "" if "a" in match.group(1) else "".join(sorted(set(match.group(1)), key="ugo".index))
        for op, perms in _OPS.findall(match.group(2)):
            ops.append(_Op(who, op, perms))
    return Chmod(spec, None, tuple(ops))
