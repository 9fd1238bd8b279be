"""Container operations: create, run, start, stop, kill, rm, ps, logs, exec, wait,
diff, commit, and the merged view of a container's files.

The store keeps records and directories; the runtime starts processes. This module
joins them: it turns an image and docker-style options into a runtime configuration,
keeps the record's state current (a container started by another process may have
exited since), and reads the container layer for diff, ls and commit.

``Containers`` is given the two groups it works with: ``Volumes``, which takes back a
container's anonymous volumes, and ``Mounts``, which plans a new container's mounts and
lists them for every start.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import runtime
from ..errors import CommandNotExecutable, ContainerRunning, ContainerStateError, InvalidArgument, StrataError
from ..holds import hold
from ..store.containers import ContainerRecord
from ..store.images import Image, now_rfc3339
from ..store.index import FileEntry
from ..timestamps import human_ago, human_duration
from .context import StoreContext
from .isolation import host_config, security_of
from .mounts import Mounts
from .volumes import Volumes

if TYPE_CHECKING:
    from ..store.store import Store
    from .analysis import Change
    from .scratch import ContainerView, Scratch

STOP_TIMEOUT = 10.0


@dataclass(frozen=True)
class ContainerInfo:
    id: str
    name: str
    image: str  # image id
    image_ref: str  # what the user asked for
    command: str
    created: float
    state: str  # created | running | exited
    status: str  # docker's STATUS column
    exit_code: int | None
    driver: str


@dataclass
class RunOptions:
    """What `docker create`/`run` take, as far as Strata supports it."""

    cmd: list[str] | None = None
    entrypoint: list[str] | None = None
    env: list[str] = field(default_factory=list)
    workdir: str | None = None
    user: str | None = None
    tty: bool = False
    stdin: bool = False
    network: str = "host"
    hostname: str | None = None
    auto_remove: bool = False
    volumes: list[str] = field(default_factory=list)  # -v specs
    mounts: list[str] = field(default_factory=list)  # --mount specs
    privileged: bool = False
    cap_add: list[str] = field(default_factory=list)
    cap_drop: list[str] = field(default_factory=list)
    security_opt: list[str] = field(default_factory=list)


def _status(rec: ContainerRecord) -> str:
    now = time.time()
    if rec.state == "running" and rec.started:
        return "Up " + human_duration(max(0.0, now - rec.started))
    if rec.state == "exited":
        return f"Exited ({rec.exit_code}) {human_ago(rec.finished or now, now)}"
    return "Created"


def lowerdirs(store: Store, image: Image) -> list[str]:
    """The image's layer directories as overlay's lowerdir wants them: top-most first."""
    return [str(store.layers.diff_dir(layer.id)) for layer in reversed(store.images.layers(image))]


class Containers:
    """Everything a user does with containers."""

    def __init__(self, context: StoreContext, volumes: Volumes, mounts: Mounts) -> None:
        self._context = context
        self._volumes = volumes
        self._mounts = mounts

    @property
    def store(self) -> Store:
        return self._context.store

    # --- records ---------------------------------------------------------------------

    def record(self, name: str) -> ContainerRecord:
        """The record of ``name`` for a verb that changes the container: reconciled first
        (an exit its monitor recorded is written down, an ended ``--rm`` one removed)."""
        return self._refresh(self.store.containers.get(name))

    def _observed(self, name: str) -> ContainerRecord:
        """The record of ``name`` as it is now, for a verb that only reads."""
        return self._observe(self.store.containers.get(name))

    def _observe(self, rec: ContainerRecord) -> ContainerRecord:
        """``rec`` with what its run directory says about a process that has ended; the
        store is not touched and nothing waits, so a listing never changes anything or
        stalls on a container whose monitor has not written its exit code yet."""
        if rec.state != "running":
            return rec
        run_dir = str(self.store.containers.run_dir(rec.id))
        if runtime.is_alive(run_dir):
            return rec
        from ..runtime.state import exit_time

        code = runtime.read_exit_code(run_dir)
        ended = exit_time(run_dir) if code is not None else None
        return dataclasses.replace(
            rec,
            state="exited",
            exit_code=code if code is not None else 137,
            finished=ended or rec.finished or time.time(),
            pid=None,
        )

    def _refresh(self, rec: ContainerRecord) -> ContainerRecord:
        """Reconcile a 'running' record whose process has gone: write its exit down and
        remove it when it was started with ``--rm`` (the step a daemon would take at the
        exit; here the next verb that changes containers takes it)."""
        if rec.state != "running":
            return rec
        run_dir = str(self.store.containers.run_dir(rec.id))
        if runtime.is_alive(run_dir):
            return rec
        code = runtime.read_exit_code(run_dir)
        if code is None:  # its monitor records the code a moment after the process ends
            try:
                code = runtime.wait_exit(run_dir, 2.0)
            except StrataError:
                code = None
        from ..runtime.state import exit_time

        ended = exit_time(run_dir) if code is not None else None
        self.store.containers.set_state(
            rec.id, state="exited", exit_code=code if code is not None else 137, finished=ended or time.time(), pid=None
        )
        rec = self.store.containers.get(rec.id)
        if rec.config.get("AutoRemove"):
            self._remove_record(rec)
        return rec

    def reconcile(self) -> list[str]:
        """Write down every exit the monitors recorded and remove ended ``--rm``
        containers; the names of the containers that changed."""
        changed = []
        for rec in self.store.containers.all():
            if rec.state != "running":
                continue
            with contextlib.suppress(StrataError):
                if self._refresh(rec).state != "running":
                    changed.append(rec.name)
        return changed

    def _info(self, rec: ContainerRecord) -> ContainerInfo:
        command = " ".join(self._argv(rec, check=False))
        return ContainerInfo(
            rec.id,
            rec.name,
            rec.image,
            rec.image_ref,
            command,
            rec.created,
            rec.state,
            _status(rec),
            rec.exit_code,
            rec.driver,
        )

    def containers(self, all: bool = True) -> list[ContainerInfo]:
        """``docker ps``: read only. A ``--rm`` container whose process ended is gone for
        the user already, though its record goes at the next ``reconcile``."""
        out = []
        for rec in self.store.containers.all():
            seen = self._observe(rec)
            if seen.state != rec.state and seen.config.get("AutoRemove"):
                continue
            if all or seen.state == "running":
                out.append(self._info(seen))
        return out

    def container(self, name: str) -> ContainerInfo:
        return self._info(self._observed(name))

    def inspect_container(self, name: str) -> dict[str, Any]:
        rec = self._observed(name)
        return {
            "Id": rec.id,
            "Name": "/" + rec.name,
            "Created": now_rfc3339(rec.created),
            "Path": (self._argv(rec, check=False) or [""])[0],
            "Args": self._argv(rec, check=False)[1:],
            "State": {
                "Status": rec.state,
                "Running": rec.state == "running",
                "Pid": rec.pid or 0,
                "ExitCode": rec.exit_code or 0,
                "StartedAt": now_rfc3339(rec.started) if rec.started else "",
                "FinishedAt": now_rfc3339(rec.finished) if rec.finished else "",
            },
            "Image": rec.image,
            "Config": {**rec.config, "Image": rec.image_ref},
            "HostConfig": {
                "NetworkMode": rec.config.get("NetworkMode") or "host",
                "AutoRemove": bool(rec.config.get("AutoRemove")),
                "Privileged": bool(rec.config.get("Privileged")),
                "CapAdd": rec.config.get("CapAdd") or None,
                "CapDrop": rec.config.get("CapDrop") or None,
                "SecurityOpt": rec.config.get("SecurityOpt") or None,
            },
            "Driver": rec.driver,
            "GraphDriver": {
                "Name": rec.driver,
                "Data": {
                    "UpperDir": str(self.store.containers.diff_dir(rec.id)),
                    "WorkDir": str(self.store.containers.work_dir(rec.id)),
                },
            },
            "Mounts": [{"Type": "volume", "Name": v, "Destination": t, "RW": not ro} for v, t, ro in rec.volumes]
            + [m for m in rec.config.get("Binds", [])],
        }

    # --- create / start ----------------------------------------------------------------

    def create(
        self, image_name: str, options: RunOptions | None = None, name: str | None = None, hold: bool = False
    ) -> ContainerInfo:
        """``docker create``. With ``hold`` (``run``: a create and a start in one go) this
        process keeps the container from every prune until it has started it; without,
        the new container is an ordinary stopped one for a prune, as Docker's is."""
        with self.store.gc_lock():
            info = self._create(image_name, options or RunOptions(), name)
        if not hold:
            self.store.containers.release(info.id)
        return info

    def _create(self, image_name: str, options: RunOptions, name: str | None) -> ContainerInfo:
        image = self.store.images.resolve(image_name)
        image_config = image.config.get("config") or {}
        env = list(image_config.get("Env") or [])
        for item in options.env:
            key = item.partition("=")[0]
            if "=" not in item:
                value = os.environ.get(key)
                if value is None:
                    continue
                item = f"{key}={value}"
            env = [e for e in env if e.partition("=")[0] != key] + [item]
        config: dict[str, Any] = {
            "Cmd": options.cmd if options.cmd else image_config.get("Cmd"),
            "Entrypoint": options.entrypoint if options.entrypoint is not None else image_config.get("Entrypoint"),
            "EntrypointOverridden": options.entrypoint is not None,
            "Env": env,
            "WorkingDir": options.workdir if options.workdir is not None else image_config.get("WorkingDir") or "/",
            "User": options.user if options.user is not None else image_config.get("User") or "",
            "Tty": options.tty,
            "OpenStdin": options.stdin,
            "NetworkMode": options.network,
            "AutoRemove": options.auto_remove,
            "StopSignal": image_config.get("StopSignal") or "SIGTERM",
        }
        if options.network not in ("host", "none"):
            raise InvalidArgument(f"network {options.network!r} is not supported: use host or none")
        config.update(host_config(options.privileged, options.cap_add, options.cap_drop, options.security_opt))
        if options.entrypoint is not None and options.entrypoint == [""]:
            config["Entrypoint"] = []
        _command(config)  # nothing to run is refused here, as Docker's create does, before anything exists
        driver = self._context.driver()
        mounts_plan = self._mounts.plan(image, options.volumes, options.mounts)
        try:
            rec = self.store.containers.create(
                image.id, image_name, config, driver, name, volumes=[(v, t, ro) for v, t, ro in mounts_plan.volumes]
            )
        except BaseException:
            # A refused create (a name in use …) takes back the anonymous volumes it planned.
            self._volumes.remove_anonymous([v for v, _t, _ro in mounts_plan.volumes])
            raise
        try:
            config["Hostname"] = options.hostname or rec.id[:12]
            config["Binds"] = mounts_plan.binds
            self.store.containers.set_state(rec.id, config=config)
            self._mounts.prepare(rec.id, image, mounts_plan)
            if driver == "vfs":
                runtime.vfs_materialize(lowerdirs(self.store, image), str(self.store.containers.rootfs_dir(rec.id)))
        except BaseException:
            self._remove_record(self.store.containers.get(rec.id))
            raise
        return self._info(self.store.containers.get(rec.id))

    def _argv(self, rec: ContainerRecord, check: bool = True) -> list[str]:
        try:
            return _command(rec.config)
        except StrataError:
            if check:
                raise
            return []

    def _runtime_config(self, rec: ContainerRecord) -> runtime.ContainerConfig:
        image = self.store.images.get(rec.image)
        c = rec.config
        process = runtime.Process(
            args=self._argv(rec),
            env=list(c.get("Env") or []),
            cwd=c.get("WorkingDir") or "/",
            user=c.get("User") or "",
            tty=bool(c.get("Tty")),
            stdin=bool(c.get("OpenStdin")),
        )
        if rec.driver == "vfs":
            rootfs = runtime.RootFS("vfs", rootdir=str(self.store.containers.rootfs_dir(rec.id)))
        else:
            rootfs = runtime.RootFS(
                "overlay",
                lowerdirs=lowerdirs(self.store, image),
                upperdir=str(self.store.containers.diff_dir(rec.id)),
                workdir=str(self.store.containers.work_dir(rec.id)),
            )
        return runtime.ContainerConfig(
            rootfs=rootfs,
            process=process,
            runtime_dir=str(self.store.containers.run_dir(rec.id)),
            hostname=c.get("Hostname") or rec.id[:12],
            mounts=self._mounts.for_runtime(rec),
            network=c.get("NetworkMode") or "host",
            security=security_of(c),
        )

    def _begin(self, rec: ContainerRecord) -> runtime.ContainerConfig:
        self.store.containers.hold(rec.id)  # no prune takes it while it starts (issue 13)
        if rec.state == "running":
            raise ContainerStateError(f"container {rec.name} is already running")
        return self._runtime_config(rec)

    def _started(self, rec: ContainerRecord, running: runtime.RunningContainer) -> None:
        self.store.containers.set_state(
            rec.id, state="running", started=time.time(), finished=None, exit_code=None, pid=running.pid
        )

    def _finished(self, rec: ContainerRecord, code: int) -> None:
        self.store.containers.set_state(rec.id, state="exited", exit_code=code, finished=time.time(), pid=None)
        if rec.config.get("AutoRemove"):
            self._remove_record(self.store.containers.get(rec.id), volumes=True)

    def _log_fds(self, rec: ContainerRecord) -> tuple[int, int]:
        base = self.store.containers.path(rec.id)
        out = os.open(base / "stdout.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        err = os.open(base / "stderr.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        return out, err

    def start(self, name: str) -> ContainerInfo:
        """Start in the background (`docker start` without -a); output goes to the log."""
        rec = self.record(name)
        config = self._begin(rec)
        out, err = self._log_fds(rec)
        try:
            running = self._start_failed_cleanup(rec, lambda: runtime.start(config, None, out, err, detach=True))
        finally:
            os.close(out)
            os.close(err)
        self._started(rec, running)
        self.store.containers.release(rec.id)  # running: no prune takes it, and its exit is the monitor's
        return self._info(self.store.containers.get(rec.id))

    def _start_failed_cleanup(
        self, rec: ContainerRecord, launch: Callable[[], runtime.RunningContainer]
    ) -> runtime.RunningContainer:
        try:
            return launch()
        except StrataError as e:
            if e.exit_code in (126, 127):
                self._finished(rec, e.exit_code)
            elif rec.config.get("AutoRemove"):
                # `run --rm` whose start failed (no such user, a bad mount …) leaves
                # nothing behind, as Docker's does.
                self._remove_record(self.store.containers.get(rec.id), volumes=True)
            raise

    def start_attached(self, name: str, stdin: int | None, stdout: int, stderr: int) -> int:
        """Start and stay attached: output streams to ``stdout``/``stderr`` and to the
        log; returns the exit code (docker's conventions)."""
        rec = self.record(name)
        config = self._begin(rec)
        if config.process.tty:
            running = self._start_failed_cleanup(rec, lambda: runtime.start(config, stdin, stdout, stderr))
            self._started(rec, running)
            code = running.wait()
            assert code is not None
            self._finished(rec, code)
            return code
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        log_out, log_err = self._log_fds(rec)
        try:
            child_stdin = stdin if rec.config.get("OpenStdin") else None
            try:
                running = self._start_failed_cleanup(
                    rec,
                    lambda: runtime.start(config, child_stdin if child_stdin is not None else _devnull(), out_w, err_w),
                )
            finally:
                os.close(out_w)
                os.close(err_w)
            self._started(rec, running)
            _relay({out_r: (stdout, log_out), err_r: (stderr, log_err)})
            code = running.wait()
            assert code is not None
        finally:
            for fd in (out_r, err_r, log_out, log_err):
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._finished(rec, code)
        return code

    def stop(self, name: str, timeout: float = STOP_TIMEOUT) -> str:
        rec = self.record(name)
        if rec.state != "running":
            return rec.name
        run_dir = str(self.store.containers.run_dir(rec.id))
        sig = _signal_number(rec.config.get("StopSignal") or "SIGTERM")
        runtime.kill(run_dir, sig)
        code = runtime.wait_exit(run_dir, timeout)
        if code is None:
            runtime.kill(run_dir, signal.SIGKILL)
            code = runtime.wait_exit(run_dir, 10)
        self._refresh(self.store.containers.get(rec.id))
        return rec.name

    def kill(self, name: str, sig: str = "SIGKILL") -> str:
        rec = self.record(name)
        if rec.state != "running":
            raise ContainerStateError(f"container {rec.name} is not running")
        runtime.kill(str(self.store.containers.run_dir(rec.id)), _signal_number(sig))
        runtime.wait_exit(str(self.store.containers.run_dir(rec.id)), 2)
        self._refresh(self.store.containers.get(rec.id))
        return rec.name

    def wait(self, name: str) -> int:
        rec = self.record(name)
        if rec.state == "running":
            code = runtime.wait_exit(str(self.store.containers.run_dir(rec.id)), None)
            rec = self._refresh(self.store.containers.get(rec.id))
            return code if code is not None else (rec.exit_code or 0)
        return rec.exit_code or 0

    def rm(self, name: str, force: bool = False, volumes: bool = False) -> str:
        rec = self.record(name)
        if rec.state == "running":
            if not force:
                raise ContainerRunning(
                    f"container {rec.name}",
                    ["its running process"],
                    "stop the container before removing it, or use rm -f",
                )
            runtime.kill(str(self.store.containers.run_dir(rec.id)), signal.SIGKILL)
            runtime.wait_exit(str(self.store.containers.run_dir(rec.id)), 10)
        self._remove_record(rec, volumes=volumes)
        return rec.name

    def _remove_record(self, rec: ContainerRecord, volumes: bool = False) -> None:
        self.store.containers.remove(rec.id)
        if volumes:
            self._volumes.remove_anonymous(v for v, _t, _ro in rec.volumes)

    def logs(self, name: str) -> tuple[bytes, bytes]:
        rec = self._observed(name)
        out, err = self.store.containers.log_paths(rec.id)
        return (out.read_bytes() if out.exists() else b""), (err.read_bytes() if err.exists() else b"")

    def follow_logs(self, name: str, stdout: int, stderr: int, poll: float = 0.1) -> None:
        rec = self._observed(name)
        out, err = self.store.containers.log_paths(rec.id)
        offsets = {out: 0, err: 0}
        targets = {out: stdout, err: stderr}
        while True:
            for path, fd in targets.items():
                if path.exists():
                    with open(path, "rb") as f:
                        f.seek(offsets[path])
                        data = f.read()
                    if data:
                        os.write(fd, data)
                        offsets[path] += len(data)
            if self._observed(rec.id).state != "running":
                break
            time.sleep(poll)

    def exec(
        self,
        name: str,
        cmd: list[str],
        *,
        env: list[str] | None = None,
        user: str | None = None,
        workdir: str | None = None,
        tty: bool = False,
        stdin: bool = False,
        stdio: tuple[int | None, int | None, int | None] = (None, None, None),
        detach: bool = False,
    ) -> int:
        """``docker exec``: the process's exit code; with ``detach`` 0 once it runs
        (its output goes to /dev/null, as with Docker's ``exec -d``)."""
        rec = self.record(name)
        if rec.state != "running":
            raise ContainerStateError(f"container {rec.name} is not running")
        if not cmd:
            raise InvalidArgument("exec needs a command")
        pid = runtime.container_pid(str(self.store.containers.run_dir(rec.id)))
        if pid is None:
            raise ContainerStateError(f"container {rec.name} is not running")
        base_env = list(rec.config.get("Env") or [])
        for item in env or []:
            key = item.partition("=")[0]
            base_env = [e for e in base_env if e.partition("=")[0] != key] + [item]
        process = runtime.Process(
            args=cmd,
            env=base_env,
            cwd=workdir or rec.config.get("WorkingDir") or "/",
            user=user if user is not None else rec.config.get("User") or "",
            tty=tty,
            stdin=stdin,
            make_cwd=False,  # docker exec runs in -w as it is; a missing one fails (126)
        )
        try:
            if not detach:
                return runtime.exec_in(pid, process, *stdio, security=security_of(rec.config))
            null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
            try:
                return runtime.exec_in(pid, process, null, null, null, security=security_of(rec.config), detach=True)
            finally:
                os.close(null)
        except InvalidArgument as e:
            # What the process was given (its user, group, working directory) did not work
            # inside the container: docker exec reports that as the command not running.
            raise CommandNotExecutable(str(e)) from None

    # --- the container layer -----------------------------------------------------------

    def _read_layer(self, rec: ContainerRecord) -> tuple[list[FileEntry], Path, Scratch | None]:
        """The container layer's index and the directory holding its content; on vfs a
        diff computed into a scratch directory of this call's own, which the caller owns
        and closes (see ``scratch.py``).

        Read directly: rootless, this process works inside the store's user namespace
        (``runtime.storens``), where every file the container made is readable and
        shows the owner the container gave it."""
        from ..store.scan import scan_dir

        if rec.driver != "vfs":
            diff = self.store.containers.diff_dir(rec.id)
            return scan_dir(str(diff)), diff, None
        from .scratch import Scratch

        image = self.store.images.get(rec.image)
        scratch = Scratch(self.store.tmp, rec.id[:12])
        try:
            content = scratch.path / "diff"
            runtime.vfs_diff(
                lowerdirs(self.store, image),
                str(self.store.containers.rootfs_dir(rec.id)),
                str(content),
                runtime_dir=str(self.store.containers.run_dir(rec.id)),
            )
            return scan_dir(str(content)), content, scratch
        except BaseException:
            scratch.close()
            raise

    def container_view(self, name: str) -> ContainerView:
        """The container's merged files. On vfs the view owns a scratch copy of the
        container's changes: close it (or use ``with``) when done; the garbage collector
        removes what an unclosed view leaves."""
        from ..store.union import ListedLayer, UnionView
        from .scratch import ContainerView, ScratchLayer

        rec = self._observed(name)
        image = self.store.images.get(rec.image)
        entries, content, scratch = self._read_layer(rec)
        below = UnionView.of_layers(self.store, self.store.images.layers(image)).layers
        top: ListedLayer = (
            ScratchLayer("container", entries, scratch, content)
            if scratch is not None
            else ListedLayer("container", entries, content, kind="container")
        )
        return ContainerView([*below, top], scratch)

    def container_diff_dir(self, name: str) -> Path:
        rec = self._observed(name)
        if rec.driver == "vfs":
            return self.store.containers.rootfs_dir(rec.id)
        return self.store.containers.diff_dir(rec.id)

    def diff(self, name: str) -> list[Change]:
        from ..store.union import UnionView
        from .analysis import classify

        rec = self._observed(name)
        image = self.store.images.get(rec.image)
        entries, _content, scratch = self._read_layer(rec)
        try:
            below = UnionView.of_layers(self.store, self.store.images.layers(image))
            return sorted(classify(entries, below), key=lambda c: c.path)
        finally:
            if scratch is not None:
                scratch.close()

    def commit(
        self,
        name: str,
        reference_name: str | None = None,
        message: str = "",
        author: str = "",
        changes: dict[str, Any] | None = None,
    ) -> Image:
        """docker commit: the container layer becomes a new image layer on top of its image."""
        with self.store.gc_lock():
            return self._commit(name, reference_name, message, author, changes)

    def _commit(
        self, name: str, reference_name: str | None, message: str, author: str, changes: dict[str, Any] | None
    ) -> Image:
        rec = self.record(name)
        image = self.store.images.get(rec.image)
        entries, content, scratch = self._read_layer(rec)
        hold("commit.read")  # the changes are listed (on vfs: copied to scratch), nothing staged
        try:
            with self.store.layers.staging() as st:
                _copy_layer(str(content), str(st.diff), entries)
                hold("commit.staged")  # the layer's files are in staging, unrecorded
                argv = self._argv(rec, check=False)
                created_by = " ".join(argv)
                layer = self.store.layers.add_dir(st, entries, image.top_layer, created_by)
        finally:
            if scratch is not None:
                scratch.close()
        config = image.config
        container_config = dict(config.get("config") or {})
        c = rec.config
        container_config.update(
            {
                "Env": c.get("Env") or [],
                "WorkingDir": c.get("WorkingDir") or "",
                "User": c.get("User") or "",
            }
        )
        if c.get("Cmd") is not None:
            container_config["Cmd"] = c.get("Cmd")
        if c.get("EntrypointOverridden"):
            container_config["Entrypoint"] = c.get("Entrypoint") or None
        container_config.update(changes or {})
        config["config"] = container_config
        config["created"] = now_rfc3339()
        config["rootfs"] = {"type": "layers", "diff_ids": [*image.diff_ids, layer.diff_id]}
        entry: dict[str, Any] = {"created": config["created"], "created_by": created_by}
        if message:
            entry["comment"] = message
        if author:
            config["author"] = author
            entry["author"] = author
        config["history"] = [*(config.get("history") or []), entry]
        config.pop("container", None)
        tags = [reference_name] if reference_name else []
        hold("commit.layer-recorded")  # the layer is the store's; no image uses it yet
        return self.store.images.create(config, layer.id, parent=image.id, tags=tags)


def _command(config: dict[str, Any]) -> list[str]:
    """The argv a container's config runs: ``--entrypoint`` drops the image's Cmd."""
    if config.get("EntrypointOverridden"):
        return runtime.combine_command(None, None, config.get("Entrypoint") or [], config.get("Cmd") or [])
    return runtime.combine_command(config.get("Entrypoint"), config.get("Cmd"))


def _devnull() -> int:
    return os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)


def _relay(routes: dict[int, tuple[int, int]]) -> None:
    """Copy each pipe to its terminal fd and its log fd until every pipe closes."""
    import selectors

    sel = selectors.DefaultSelector()
    for fd in routes:
        sel.register(fd, selectors.EVENT_READ)
    open_fds = set(routes)
    while open_fds:
        for key, _ in sel.select():
            fd = int(key.fd)
            data = os.read(fd, 65536)
            if not data:
                sel.unregister(fd)
                open_fds.discard(fd)
                continue
            term, log = routes[fd]
            with contextlib.suppress(OSError):
                _write_all(term, data)
            _write_all(log, data)
    sel.close()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _signal_number(name: str | int) -> int:
    if isinstance(name, int) or str(name).isdigit():
        return int(name)
    text = str(name).upper()
    if not text.startswith("SIG"):
        text = "SIG" + text
    try:
        return int(signal.Signals[text])
    except KeyError:
        raise InvalidArgument(f"unknown signal {name!r}") from None


def _copy_layer(src: str, dest: str, entries: list[FileEntry]) -> None:
    """A container's diff into a staging layer, owners and modes kept (the copy runs
    inside the store's user namespace when rootless); checked against the index, since
    a walk would skip a directory it could not list."""
    from ..store.treecopy import copy_tree

    copied = copy_tree(src, dest)
    missing = [e.path for e in entries if e.path not in copied]
    if missing:
        raise InvalidArgument(f"cannot read all of {src}: {missing[0]} was not copied")
