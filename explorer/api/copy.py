"""``cp`` between the host and a container or volume, and the GUI's edits of a
container's files.

Every operation on a container's content runs in a helper process whose root is
that container's root (``runtime.inroot``): a running container's own namespaces,
or, when it is stopped, its layers mounted privately as ``start`` would mount them,
so a write lands in its diff by the kernel's copy-up. Container paths, ``..`` and
symlinks are resolved by the kernel inside that root and cannot name a host file,
whatever the container changes meanwhile (the docker cp symlink-exchange attack,
CVE-2018-15664). Host files cross as a tar stream on a pipe and, on the host,
are packed from or unpacked beneath the path the user gave, never through a link
the container made (``runtime.tarcopy``).

``ContainerFiles`` is given ``Containers`` (for a container's record, reconciled) and
``Mounts`` (its volumes and binds, mounted as ``start`` would mount them).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import os
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO

from .. import runtime
from ..errors import ContainerStateError, FileOperationFailed, InvalidArgument, PathNotFound, StrataError
from ..store.index import normalize
from .containers import Containers, lowerdirs
from .context import StoreContext
from .mounts import Mounts

if TYPE_CHECKING:
    from ..store.containers import ContainerRecord
    from ..store.store import Store

LOCK_FILE = "files.lock"
_CHUNK = 1 << 20

# Files the runtime bind-mounts over the container at every start: an edit of the
# stopped container would land under the mount and never be seen.
RUNTIME_FILES = frozenset({"/etc/hosts", "/etc/hostname", "/etc/resolv.conf"})


def _broken_pipe(err: BaseException) -> bool:
    return isinstance(err, OSError) and err.errno == errno.EPIPE


@dataclass(frozen=True)
class CopyReport:
    """What a cp left out: device nodes it could not make, and why (docker cp makes them
    only as root, and skips them unseen in a user namespace)."""

    skipped_devices: tuple[str, ...] = ()
    why: str = ""

    @classmethod
    def from_reply(cls, reply: object) -> CopyReport:
        """From ``tarcopy.receive``'s answer, which may come from inside a container."""
        if not isinstance(reply, dict):
            return cls()
        devices = reply.get("devices")
        why = reply.get("why")
        if not isinstance(devices, list) or not isinstance(why, str):
            return cls()
        return cls(tuple(str(d) for d in devices), why)


def _exchange(helper: runtime.InRoot, host_side: Callable[[], Any], host_produces: bool, where: str) -> Any:
    """Run the host's half of a copy while the helper runs its half; returns the helper's result.

    When one side fails the other usually sees only a broken stream; the error
    reported is the cause: the producer's failure, or the consumer's when the
    producer merely found the pipe closed.
    """
    from ..runtime.tarcopy import EmptyStream

    try:
        host_side()
    except Exception as host_error:
        try:
            helper.wait()
        except Exception as helper_error:
            consequence = _broken_pipe(host_error) or isinstance(host_error, EmptyStream)
            if not _broken_pipe(helper_error) and (not host_produces or consequence):
                raise _labelled(helper_error, where) from None
        raise _labelled(host_error, "host") from None
    try:
        return helper.wait()
    except OSError as e:
        raise _failure(e, where) from e


def _labelled(err: Exception, where: str) -> Exception:
    return _failure(err, where) if isinstance(err, OSError) else err


def _failure(err: OSError, where: str) -> FileOperationFailed:
    text = err.strerror or str(err)
    if err.filename:
        text += f": {err.filename}"
    return FileOperationFailed(f"{where}: {text}")


@contextlib.contextmanager
def _reported(where: str) -> Iterator[None]:
    """OSErrors from either side become one line that says where it happened."""
    try:
        yield
    except StrataError:
        raise
    except OSError as e:
        raise _failure(e, where) from e


def _pump_in(read: Callable[[int], bytes], fd: int) -> None:
    """Copy a host stream into a pipe (closed here)."""
    with open(fd, "wb", buffering=0) as out:
        while chunk := read(_CHUNK):
            out.write(chunk)


def _pump_out(fd: int, write: Callable[[bytes], Any]) -> None:
    """Copy a pipe (closed here) to a host stream."""
    with open(fd, "rb", buffering=0) as src:
        while chunk := src.read(_CHUNK):
            write(chunk)


@contextlib.contextmanager
def _locked(run_dir: str) -> Iterator[None]:
    """One file operation at a time per container: two private overlay mounts of
    one upper directory must not write at once."""
    fd = os.open(os.path.join(run_dir, LOCK_FILE), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


class ContainerFiles:
    """Files in and out of containers and volumes."""

    def __init__(self, context: StoreContext, containers: Containers, mounts: Mounts) -> None:
        self._context = context
        self._containers = containers
        self._mounts = mounts

    @property
    def store(self) -> Store:
        return self._context.store

    # --- entering a container ---------------------------------------------------------

    def _root_config(self, rec: ContainerRecord) -> runtime.ContainerConfig:
        """What ``start`` would mount for this container (its command aside)."""
        containers = self.store.containers
        if rec.driver == "vfs":
            rootfs = runtime.RootFS("vfs", rootdir=str(containers.rootfs_dir(rec.id)))
        else:
            image = self.store.images.get(rec.image)
            rootfs = runtime.RootFS(
                "overlay",
                lowerdirs=lowerdirs(self.store, image),
                upperdir=str(containers.diff_dir(rec.id)),
                workdir=str(containers.work_dir(rec.id)),
            )
        c = rec.config
        return runtime.ContainerConfig(
            rootfs=rootfs,
            process=runtime.Process(args=["true"]),
            runtime_dir=str(containers.run_dir(rec.id)),
            hostname=c.get("Hostname") or rec.id[:12],
            mounts=self._mounts.for_runtime(rec),
            network=c.get("NetworkMode") or "host",
        )

    @contextlib.contextmanager
    def _inside(
        self,
        rec: ContainerRecord,
        fn: Callable[[], Any],
        keep_fds: tuple[int, ...] = (),
        cancel: threading.Event | None = None,
    ) -> Iterator[runtime.InRoot]:
        """A helper running ``fn`` with the container's root as ``/``: its own
        namespaces while it runs, a private mount of its layers while it is stopped.
        Setting ``cancel`` kills it; its ``wait`` then raises ``Cancelled``."""
        where = f"container {rec.name}"
        run_dir = str(self.store.containers.run_dir(rec.id))
        with _locked(run_dir):
            helper: runtime.InRoot | None = None
            if runtime.container_pid(run_dir) is not None:
                with contextlib.suppress(ContainerStateError):  # it stopped just now
                    helper = runtime.in_container(run_dir, fn, keep_fds=keep_fds, where=where, cancel=cancel)
            if helper is None:
                helper = runtime.in_rootfs(self._root_config(rec), fn, keep_fds=keep_fds, where=where, cancel=cancel)
            with helper:
                yield helper

    def _edit(self, name: str, fn: Callable[..., None], *args: Any) -> None:
        rec = self._containers.record(name)
        where = f"container {rec.name}"
        path = str(args[0]) if args else ""
        if normalize(path) in RUNTIME_FILES:
            raise InvalidArgument(
                f"{where}: {normalize(path)} is provided by strata at every start (as docker does); "
                "set it with --hostname or edit the image instead"
            )
        with _reported(where), self._inside(rec, functools.partial(fn, *args, where)) as helper:
            helper.wait()

    # --- the GUI's edits ---------------------------------------------------------------

    def container_write(self, name: str, path: str, data: bytes) -> None:
        """Replace (or create, 0644) the file ``path`` in the container. A stopped
        overlay container gets the file and its parents copied up into its diff."""
        from ..runtime import rootedit

        self._edit(name, rootedit.write_file, path, data)

    def container_delete(self, name: str, path: str) -> None:
        """Delete a file, link or directory tree; what the image has leaves a whiteout.

        Refused at or above a mount point: the helper that deletes runs with the
        container's mounts in place, so removing a tree that holds one would empty the
        volume (or the host folder) mounted there, which outlives the container."""
        from ..runtime import rootedit

        rec = self._containers.record(name)
        target = normalize(path)
        points = [(t, f"volume {v}") for v, t, _ro in rec.volumes]
        for b in rec.config.get("Binds") or []:
            points.append((b["Destination"], "a tmpfs" if b["Type"] == "tmpfs" else f"bind of {b['Source']}"))
        for where, what in points:
            point = normalize(where)
            if point == target or target == "/" or point.startswith(target + "/"):
                raise InvalidArgument(
                    f"container {rec.name}: {target} holds the mount point {point} ({what}); deleting it would "
                    "delete what is mounted there: delete the files inside the mount, or remove the volume"
                )
        self._edit(name, rootedit.remove, path)

    def container_mkdir(self, name: str, path: str) -> None:
        """Make a directory (and missing parents)."""
        from ..runtime import rootedit

        self._edit(name, rootedit.make_dir, path)

    # --- cp ----------------------------------------------------------------------------

    def cp_in(
        self,
        name: str,
        host_path: str,
        container_path: str,
        *,
        archive: bool = False,
        follow_link: bool = False,
        stdin: BinaryIO | None = None,
        cancel: threading.Event | None = None,
    ) -> CopyReport:
        """docker cp HOST_PATH CONTAINER:PATH (``-``: a tar stream on ``stdin``,
        unpacked into the directory PATH). ``archive`` keeps the host's uid/gid;
        otherwise the copy belongs to the container's root. ``cancel`` stops it."""
        rec = self._containers.record(name)
        receiver = self._receiver(container_path, host_path, archive, f"container {rec.name}")

        def enter(fn: Callable[[], Any], keep: tuple[int, ...]) -> contextlib.AbstractContextManager[runtime.InRoot]:
            return self._inside(rec, fn, keep, cancel)

        return _copy_in(enter, receiver, host_path, follow_link, stdin, f"container {rec.name}")

    def cp_in_volume(
        self,
        name: str,
        host_path: str,
        path: str,
        *,
        archive: bool = False,
        follow_link: bool = False,
        stdin: BinaryIO | None = None,
        cancel: threading.Event | None = None,
    ) -> CopyReport:
        """cp into a volume; ``path`` is inside the volume ("/" is its top)."""
        volume = self.store.volumes.get(name)
        where = f"volume {volume.name}"
        data = str(self.store.volumes.data_dir(volume.name))
        receiver = self._receiver(path, host_path, archive, where)

        @contextlib.contextmanager
        def enter(fn: Callable[[], Any], keep: tuple[int, ...]) -> Iterator[runtime.InRoot]:
            with runtime.in_directory(data, fn, keep_fds=keep, where=where, cancel=cancel) as helper:
                yield helper

        return _copy_in(enter, receiver, host_path, follow_link, stdin, where)

    @staticmethod
    def _receiver(dest: str, host_path: str, archive: bool, where: str) -> Callable[[int], Any]:
        from ..runtime import tarcopy

        dest = dest if dest.startswith("/") else "/" + dest
        contents = tarcopy.Source.parse(host_path).contents if host_path != "-" else False
        rules = tarcopy.Rules(owners=archive, devices=True)
        return functools.partial(
            tarcopy.receive, dest=dest, contents=contents, where=where, rules=rules, raw=host_path == "-"
        )

    def cp_out(
        self,
        name: str,
        container_path: str,
        host_path: str,
        *,
        archive: bool = False,
        follow_link: bool = False,
        stdout: BinaryIO | None = None,
        cancel: threading.Event | None = None,
    ) -> CopyReport:
        """docker cp CONTAINER:PATH HOST_PATH (``-``: a tar stream on ``stdout``).
        The copy belongs to the caller unless ``archive`` (and real root); setuid and
        setgid bits are dropped unless ``archive``; device nodes are made only by real
        root, as docker cp makes them (the report names those left out)."""
        from ..runtime import tarcopy

        rec = self._containers.record(name)
        where = f"container {rec.name}"
        path = container_path if container_path.startswith("/") else "/" + container_path
        source = tarcopy.Source.parse(path, follow_link)
        skip = runtime.pseudo_mounts(str(self.store.containers.run_dir(rec.id)))
        # Owners cross to the host only as real root: inside the store's user namespace
        # they would become subordinate ids the user could not remove.
        rules = tarcopy.Rules(
            owners=archive and runtime.privileged(), strip_setid=not archive, devices=runtime.privileged()
        )
        received: list[object] = []
        r, w = os.pipe()
        try:
            sender = functools.partial(tarcopy.send, w, source, where=where, skip_mounts=skip)
            with _reported(where), self._inside(rec, sender, (w,), cancel) as helper:
                os.close(w)
                w = -1
                if host_path == "-":
                    out = stdout if stdout is not None else sys.stdout.buffer
                    host_side: Callable[[], None] = functools.partial(_pump_out, r, out.write)
                else:
                    unpack = functools.partial(
                        tarcopy.receive, r, host_path, contents=source.contents, where="host", rules=rules
                    )

                    def host_side() -> None:
                        received.append(unpack())

                r = -1  # the host side closes it
                _exchange(helper, host_side, False, where)
                if host_path == "-":
                    out.flush()
        finally:
            for fd in (r, w):
                if fd >= 0:
                    os.close(fd)
        return CopyReport.from_reply(received[0] if received else None)


def _copy_in(
    enter: Callable[[Callable[[], Any], tuple[int, ...]], contextlib.AbstractContextManager[runtime.InRoot]],
    receiver: Callable[[int], Any],
    host_path: str,
    follow_link: bool,
    stdin: BinaryIO | None,
    where: str,
) -> CopyReport:
    """The host packs (or relays stdin), the helper unpacks inside its root."""
    from ..runtime import tarcopy

    host_side: Callable[[int], None]
    if host_path == "-":
        source = sys.stdin.buffer if stdin is None else stdin
        host_side = functools.partial(_pump_in, source.read)
    else:
        host_side = functools.partial(tarcopy.send, source=tarcopy.Source.parse(host_path, follow_link), where="host")
        if not os.path.lexists(host_path):
            raise PathNotFound("host", host_path)
    r, w = os.pipe()
    try:
        with _reported(where), enter(functools.partial(receiver, r), (r,)) as helper:
            os.close(r)
            r = -1
            feed, w = w, -1  # the host side closes it
            reply = _exchange(helper, functools.partial(host_side, feed), True, where)
    finally:
        for fd in (r, w):
            if fd >= 0:
                os.close(fd)
    return CopyReport.from_reply(reply)
