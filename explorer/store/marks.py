"""Ownership marks on directories being written, so a crash can be told from work in
progress: a writer puts ``<pid> <start time>`` in ``owner`` and removes it after its
metadata commit. The start time (clock ticks since boot, from /proc) guards against a
crashed writer's pid being reused by an unrelated process later."""

from __future__ import annotations

import os
from pathlib import Path


def _start_time(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    return int(data[data.rindex(b")") + 2 :].split()[19])


def _read(path: Path) -> tuple[int, int | None]:
    """The owner a name carries (the newer mark: it came with the last rename), else the
    one in the ``owner`` file."""
    named = _from_name(path.name)
    if named[0]:
        return named
    try:
        fields = (path / "owner").read_text().split()
        return int(fields[0]), (int(fields[1]) if len(fields) > 1 else None)
    except (OSError, ValueError, IndexError):
        return 0, None


def _from_name(name: str) -> tuple[int, int | None]:
    """The owner a name made by ``owned_name`` carries, (0, None) for any other name."""
    _, sep, tail = name.rpartition(_NAME_MARK)
    if not sep:
        return 0, None
    pid, _, start = tail.partition("-")
    try:
        return int(pid), (int(start) if start else None)
    except ValueError:
        return 0, None


def _owner(path: Path) -> int:
    """The pid recorded in ``path``'s mark, 0 when it has none."""
    return _read(path)[0]


def marked(path: Path) -> bool:
    """``path`` carries an owner mark (in its name or an ``owner`` file), live or not."""
    return _owner(path) != 0


def owner_text() -> str:
    pid = os.getpid()
    start = _start_time(pid)
    return f"{pid} {start}\n" if start is not None else f"{pid}\n"


_NAME_MARK = "@"


def owned_name(base: str) -> str:
    """``base`` with this process's mark in the name itself (``trash-…@<pid>-<start>``).

    Trash is made by renaming a directory into tmp/, and the name is the only mark that
    arrives with the rename itself: a mark file written before the rename would need a
    free block (not there on a full disk, when deleting matters most), and one written
    after leaves a moment in which a checker sees unmarked trash and takes a live
    remover's work for a crash's."""
    start = _start_time(os.getpid())
    return f"{base}{_NAME_MARK}{os.getpid()}" + (f"-{start}" if start is not None else "")


def mark_owner(path: Path) -> None:
    """Mark ``path`` as being written by this process (see ``Store.clean_staging``)."""
    (path / "owner").write_text(owner_text())


def owner_live(path: Path) -> bool:
    """True while the process that marked ``path`` still runs (the same process, not
    a later one that got its pid, and not its zombie: a killed writer has closed its
    files, released its locks and will write nothing more, even before it is reaped)."""
    pid, start = _read(path)
    if not pid or not _alive(pid) or _exited(pid):
        return False
    return start is None or _start_time(pid) == start


_PF_EXITING = 0x4  # the kernel's task flag, set before the exiting task closes its files


def _exited(pid: int) -> bool:
    """``pid`` is exiting or a zombie: exited, not yet reaped (see ``exiting``)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return exiting(f.read())
    except OSError:
        return False  # not ours to see: ``_alive`` decided


def exiting(stat: bytes) -> bool:
    """Whether a ``/proc/PID/stat`` line is a task past the point of writing anything.
    The kernel closes a dying task's files (so releases its flocks) before it becomes a
    zombie; in between its state still reads R or D, but its flags carry PF_EXITING. A
    prune that got the gc lock from a killed pull must see that pull as gone already."""
    fields = stat[stat.rindex(b")") + 2 :].split()
    if fields[:1] in ([b"Z"], [b"X"]):
        return True
    try:
        return bool(int(fields[6]) & _PF_EXITING)
    except (IndexError, ValueError):
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
