"""USER as Docker understands it, looked up in the container's own /etc/passwd and /etc/group.

Lookups run after ``pivot_root`` (or after joining the container's mount
namespace for exec), so a symlinked /etc/passwd resolves inside the container
root and can never reach the host's files.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import InvalidArgument


@dataclass(frozen=True)
class ExecUser:
    uid: int
    gid: int
    groups: list[int] = field(default_factory=list)
    home: str = "/"
    name: str = ""


@dataclass(frozen=True)
class _Passwd:
    name: str
    uid: int
    gid: int
    home: str


@dataclass(frozen=True)
class _Group:
    name: str
    gid: int
    members: tuple[str, ...]


def _read_lines(path: str) -> list[list[str]] | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            text = fh.read(16 * 1024 * 1024)
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None
    except OSError:
        return None
    rows = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            rows.append(line.split(":"))
    return rows


def _passwd(root: str) -> list[_Passwd] | None:
    rows = _read_lines(root.rstrip("/") + "/etc/passwd")
    if rows is None:
        return None
    out = []
    for row in rows:
        if len(row) < 6:
            continue
        try:
            out.append(_Passwd(row[0], int(row[2]), int(row[3]), row[5] or "/"))
        except ValueError:
            continue
    return out


def _groups(root: str) -> list[_Group] | None:
    rows = _read_lines(root.rstrip("/") + "/etc/group")
    if rows is None:
        return None
    out = []
    for row in rows:
        if len(row) < 3:
            continue
        try:
            members = tuple(m for m in (row[3].split(",") if len(row) > 3 else []) if m)
            out.append(_Group(row[0], int(row[2]), members))
        except ValueError:
            continue
    return out


def _number(text: str) -> int | None:
    if text.isdigit():
        value = int(text)
        if value < 2**31:
            return value
    return None


def resolve_user(spec: str, root: str = "/") -> ExecUser:
    """``name``, ``uid``, ``uid:gid``, ``name:group`` … → ids, groups and home.

    Follows Docker: a numeric uid need not exist in /etc/passwd (gid 0, home /);
    a name must; a numeric gid need not exist in /etc/group, a group name must.
    Without an explicit group the user's supplementary groups come from /etc/group.
    """
    user_part, _, group_part = (spec or "").partition(":")
    user_part = user_part or "0"
    users = _passwd(root)
    uid_num = _number(user_part)
    entry: _Passwd | None = None
    for candidate in users or []:
        if (uid_num is not None and candidate.uid == uid_num) or (uid_num is None and candidate.name == user_part):
            entry = candidate
            break
    if entry is None and uid_num is None:
        raise InvalidArgument(f"unable to find user {user_part}: no matching entries in passwd file")
    uid = entry.uid if entry else int(user_part)
    gid = entry.gid if entry else 0
    home = entry.home if entry else "/"
    name = entry.name if entry else ""
    groups: list[int] = []
    if group_part:
        gid_num = _number(group_part)
        if gid_num is not None:
            gid = gid_num
        else:
            match = [g for g in _groups(root) or [] if g.name == group_part]
            if not match:
                raise InvalidArgument(f"unable to find group {group_part}: no matching entries in group file")
            gid = match[0].gid
    elif name:
        groups = sorted({g.gid for g in _groups(root) or [] if name in g.members} - {gid})
    return ExecUser(uid, gid, groups, home, name)
