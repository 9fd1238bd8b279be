"""What a container's runtime_dir records, so any process can find, wait for or
signal a container another process started.

The init pid is stored with its kernel start time: a pid alone may be reused by
an unrelated process after the container exits, the pair cannot. Signals go
through a pidfd opened and then checked, so there is no window for reuse.
"""

from __future__ import annotations

import json
import os
import select
import signal
import time
from dataclasses import asdict, dataclass

from ..errors import ContainerStateError
from .config import Security

STATE_FILE = "state.json"
EXIT_FILE = "exitcode"
SECURITY_FILE = "security.json"


@dataclass(frozen=True)
class State:
    pid: int  # the container's init, as the host sees it
    start: int  # its start time in clock ticks since boot (/proc/PID/stat field 22)
    monitor: int  # the process that waits for init and records the exit code
    monitor_start: int


def proc_start(pid: int) -> tuple[int, str] | None:
    """(start time, state letter) of a process, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            data = fh.read()
    except OSError:
        return None
    fields = data[data.rindex(b")") + 2 :].split()
    return int(fields[19]), fields[0].decode()


def _write(path: str, text: str, size: int) -> None:
    """Overwrite a small record in place, padded to a fixed size.

    Replacing or truncating files frees blocks, which on a file system mounted
    with ``discard`` costs milliseconds per start; one page-sized pwrite is seen
    whole by readers."""
    data = text.encode().ljust(size)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        os.pwrite(fd, data, 0)
    finally:
        os.close(fd)


def write_security(runtime_dir: str, security: Security) -> None:
    """The profile ``exec`` holds its processes to; rewritten only when it changed."""
    path = os.path.join(runtime_dir, SECURITY_FILE)
    data = json.dumps(asdict(security), sort_keys=True).encode()
    try:
        with open(path, "rb") as fh:
            if fh.read() == data:
                return
    except OSError:
        pass
    tmp = path + ".tmp"
    with open(tmp, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


def read_security(runtime_dir: str) -> Security:
    """The running container's profile; the default one if it was never written."""
    try:
        with open(os.path.join(runtime_dir, SECURITY_FILE), "rb") as fh:
            raw = json.loads(fh.read())
        return Security(
            privileged=bool(raw.get("privileged")),
            cap_add=[str(c) for c in raw.get("cap_add") or []],
            cap_drop=[str(c) for c in raw.get("cap_drop") or []],
            seccomp=str(raw.get("seccomp") or ""),
            no_new_privileges=bool(raw.get("no_new_privileges")),
        )
    except (OSError, ValueError, AttributeError):
        return Security()


def write_state(runtime_dir: str, state: State) -> None:
    _write(os.path.join(runtime_dir, STATE_FILE), json.dumps(asdict(state)), 256)


def write_exit_code(runtime_dir: str, code: int) -> None:
    _write(os.path.join(runtime_dir, EXIT_FILE), str(code), 16)


def clear(runtime_dir: str) -> None:
    """Forget the previous run: blank records, written now at their full size so that
    recording the exit code later rewrites blocks the file already has and still
    succeeds when the container has filled the disk meanwhile."""
    for name, size in ((STATE_FILE, 256), (EXIT_FILE, 16)):
        _write(os.path.join(runtime_dir, name), "", size)


def read_state(runtime_dir: str) -> State | None:
    try:
        with open(os.path.join(runtime_dir, STATE_FILE), encoding="utf-8") as fh:
            raw = json.load(fh)
        return State(int(raw["pid"]), int(raw["start"]), int(raw["monitor"]), int(raw["monitor_start"]))
    except (OSError, ValueError, KeyError, TypeError):  # missing, blank (cleared) or torn
        return None


def exit_time(runtime_dir: str) -> float | None:
    """When the last run's exit code was recorded (the monitor writes it as the
    container ends): a detached container's FinishedAt, whenever Strata notices."""
    if read_exit_code(runtime_dir) is None:
        return None
    try:
        return os.stat(os.path.join(runtime_dir, EXIT_FILE)).st_mtime
    except OSError:
        return None


def read_exit_code(runtime_dir: str) -> int | None:
    """The recorded exit code of the last run, docker conventions; None while running."""
    try:
        with open(os.path.join(runtime_dir, EXIT_FILE), encoding="utf-8") as fh:
            return int(fh.read().strip())
    except (OSError, ValueError):
        return None


def _alive(pid: int, start: int) -> bool:
    info = proc_start(pid)
    return info is not None and info[0] == start and info[1] not in ("Z", "X")


def _pidfd(pid: int, start: int) -> int | None:
    """A pidfd for exactly that process, or None when it already exited."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return None
    if not _alive(pid, start):
        os.close(fd)
        return None
    return fd


def is_alive(runtime_dir: str) -> bool:
    st = read_state(runtime_dir)
    return st is not None and _alive(st.pid, st.start)


def container_pid(runtime_dir: str) -> int | None:
    """The host pid of the running container's init (for ``exec_in``), else None."""
    st = read_state(runtime_dir)
    return st.pid if st is not None and _alive(st.pid, st.start) else None


def kill(runtime_dir: str, sig: int = signal.SIGKILL) -> bool:
    """Signal the container's init; False when it is not running.

    As with Docker, init (pid 1 inside) ignores signals it has no handler for,
    except SIGKILL and SIGSTOP.
    """
    st = read_state(runtime_dir)
    if st is None:
        return False
    fd = _pidfd(st.pid, st.start)
    if fd is None:
        return False
    try:
        signal.pidfd_send_signal(fd, sig)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        raise ContainerStateError(f"not permitted to signal the container's process {st.pid}") from None
    finally:
        os.close(fd)


def wait_exit(runtime_dir: str, timeout: float | None = None) -> int | None:
    """Wait until the container ended and return its exit code; None on timeout."""
    st = read_state(runtime_dir)
    if st is None:
        code = read_exit_code(runtime_dir)
        if code is None:
            raise ContainerStateError(f"no container was started from {runtime_dir}")
        return code
    fd = _pidfd(st.monitor, st.monitor_start)
    if fd is not None:
        try:
            ready, _w, _x = select.select([fd], [], [], timeout)
            if not ready:
                return None
        finally:
            os.close(fd)
    for _ in range(50):  # the monitor writes the code just before it exits
        code = read_exit_code(runtime_dir)
        if code is not None:
            return code
        time.sleep(0.002)
    raise ContainerStateError("the container's monitor process ended without recording an exit code")
