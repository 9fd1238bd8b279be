"""Which host ids a container's ids map to, and writing those maps.

The caller's uid/gid become 0 inside. A subordinate range from /etc/subuid and
/etc/subgid (written through the setuid helpers newuidmap/newgidmap) adds ids 1..n,
so images whose files belong to other users work and ``chown`` inside RUN succeeds.
Real root needs no helper and maps every id to itself, as Docker runs containers.
"""

from __future__ import annotations

import os
import pwd
from dataclasses import dataclass, field

from ..errors import RuntimeUnavailable

Range = tuple[int, int, int]  # (inside, outside, count), as /proc/PID/uid_map holds

FULL_RANGE = 4294967295


@dataclass(frozen=True)
class IdMap:
    ranges: tuple[Range, ...]
    helper: str = ""  # newuidmap/newgidmap path when the map needs privilege to write

    def contains(self, inside: int) -> bool:
        return any(start <= inside < start + count for start, _outside, count in self.ranges)

    def to_host(self, inside: int) -> int | None:
        for start, outside, count in self.ranges:
            if start <= inside < start + count:
                return outside + inside - start
        return None

    def to_inside(self, host: int) -> int:
        """The id a process inside sees for host id ``host``: the overflow id (65534,
        "nobody") when the map does not reach it, as the kernel shows it."""
        for start, outside, count in self.ranges:
            if outside <= host < outside + count:
                return start + host - outside
        return 65534

    def text(self) -> str:
        return "".join(f"{a} {b} {c}\n" for a, b, c in self.ranges)


@dataclass(frozen=True)
class IdMaps:
    uid: IdMap
    gid: IdMap
    setgroups_denied: bool = field(default=False)


def subordinate_ranges(path: str, user: str, uid: int) -> list[tuple[int, int]]:
    """(start, count) ranges a subuid/subgid file gives a user (by name or number)."""
    ranges: list[tuple[int, int]] = []
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return ranges
    for line in lines:
        parts = line.strip().split(":")
        if len(parts) != 3 or parts[0] not in (user, str(uid)):
            continue
        try:
            start, count = int(parts[1]), int(parts[2])
        except ValueError:
            continue
        if count > 0:
            ranges.append((start, count))
    return ranges


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _one(kind: str, host_id: int, euid: int, name: str) -> IdMap:
    sub = subordinate_ranges(f"/etc/sub{kind}", name, euid)
    if euid == 0:
        if not sub:
            return IdMap(((0, 0, FULL_RANGE),))
        return IdMap(((0, host_id, 1), *((1 + i, s, c) for i, (s, c) in _stack(sub))))
    helper = _which(f"new{kind}map")
    if sub and helper:
        return IdMap(((0, host_id, 1), *((1 + i, s, c) for i, (s, c) in _stack(sub))), helper)
    return IdMap(((0, host_id, 1),))


def _stack(sub: list[tuple[int, int]]) -> list[tuple[int, tuple[int, int]]]:
    """Lay several subordinate ranges end to end inside the container."""
    out: list[tuple[int, tuple[int, int]]] = []
    offset = 0
    for start, count in sub[:4]:
        out.append((offset, (start, count)))
        offset += count
    return out


def _own_ranges(path: str) -> list[Range]:
    try:
        with open(path, encoding="ascii") as fh:
            nums = [int(n) for n in fh.read().split()]
    except (OSError, ValueError):
        return []
    return [(nums[i], nums[i + 1], nums[i + 2]) for i in range(0, len(nums) - 2, 3)]


def plan() -> IdMaps:
    """The maps a container started by this process gets.

    Inside a user namespace (the store's, see ``storens``) a container gets every id
    that namespace has, each as itself: the namespace already did the mapping."""
    euid = os.geteuid()
    own_uid = _own_ranges("/proc/self/uid_map")
    if euid == 0 and own_uid and own_uid != [(0, 0, FULL_RANGE)]:
        own_gid = _own_ranges("/proc/self/gid_map")
        return IdMaps(IdMap(tuple((i, i, c) for i, _o, c in own_uid)), IdMap(tuple((i, i, c) for i, _o, c in own_gid)))
    name = _user_name(euid)
    uid = _one("uid", euid, euid, name)
    gid = _one("gid", os.getegid(), euid, name)
    return IdMaps(uid, gid, setgroups_denied=euid != 0 and not gid.helper)


def which(name: str) -> str:
    """The path of an executable helper (newuidmap, newgidmap), or ""."""
    return _which(name)


def _which(name: str) -> str:
    dirs = [*os.environ.get("PATH", "").split(":"), "/usr/bin", "/usr/sbin", "/bin", "/sbin"]
    for directory in dirs:
        path = os.path.join(directory, name)
        if directory and os.access(path, os.X_OK):
            return path
    return ""


def _spawn_helper(args: list[str]) -> tuple[int, int]:
    """Start newuidmap/newgidmap; returns its pid and the read end of its stderr."""
    err_r, err_w = os.pipe()
    null = os.open(os.devnull, os.O_RDWR)
    try:
        actions = [
            (os.POSIX_SPAWN_DUP2, null, 0),
            (os.POSIX_SPAWN_DUP2, null, 1),
            (os.POSIX_SPAWN_DUP2, err_w, 2),
        ]
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"}
        pid = os.posix_spawn(args[0], args, env, file_actions=actions)
    except OSError:
        os.close(err_r)
        raise
    finally:
        os.close(null)
        os.close(err_w)
    return pid, err_r


def _finish_helper(pid: int, err_r: int) -> str | None:
    """Wait for a helper; its complaint, or None when it succeeded."""
    chunks: list[bytes] = []
    try:
        while chunk := os.read(err_r, 4096):
            chunks.append(chunk)
    finally:
        os.close(err_r)
    _pid, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) == 0:
        return None
    return b"".join(chunks).decode(errors="replace").strip() or f"exit status {status}"


def write(pid: int, maps: IdMaps) -> None:
    """Give the user namespace of ``pid`` its maps; the child waits meanwhile.

    Both helpers run at once: each is a setuid exec, the slowest step of a start."""
    helpers: list[tuple[str, int, int]] = []
    failures: list[str] = []
    try:
        for kind, idmap in (("uid", maps.uid), ("gid", maps.gid)):
            if idmap.helper:
                args = [idmap.helper, str(pid)]
                for inside, outside, count in idmap.ranges:
                    args += [str(inside), str(outside), str(count)]
                try:
                    helpers.append((kind, *_spawn_helper(args)))
                except OSError as e:
                    failures.append(f"new{kind}map: {e.strerror}")
        if maps.setgroups_denied:
            _write_proc(pid, "setgroups", "deny")
        for kind, idmap in (("uid", maps.uid), ("gid", maps.gid)):
            if not idmap.helper:
                _write_proc(pid, f"{kind}_map", idmap.text())
    finally:
        for kind, helper_pid, err_r in helpers:
            complaint = _finish_helper(helper_pid, err_r)
            if complaint:
                failures.append(f"new{kind}map: {complaint}")
    if failures:
        raise RuntimeUnavailable(
            f"cannot map subordinate ids ({'; '.join(failures)}); check /etc/subuid and /etc/subgid"
        )


def _write_proc(pid: int, name: str, text: str) -> None:
    try:
        fd = os.open(f"/proc/{pid}/{name}", os.O_WRONLY)
        try:
            os.write(fd, text.encode())
        finally:
            os.close(fd)
    except OSError as e:
        raise RuntimeUnavailable(f"cannot write /proc/{pid}/{name}: {e.strerror}") from e
