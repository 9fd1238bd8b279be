"""Running RUN steps: a command in a temporary rootless container, its changes a layer.

The container's root is the image so far. With the overlay driver its upperdir is the
new layer's staging directory, so what the command changes is written straight into the
layer; with the vfs driver (no rootless overlayfs) the layers are copied into a scratch
root and the difference is taken afterwards. Either way the result is indexed
(``store.scan``), with the owners the command gave its files: rootless, the build runs
inside the store's user namespace, where the disk holds them. Output is reported line by
line as ``OUTPUT`` events, and a cancelled build kills the command.

``RUN --mount`` sources are prepared here too: cache mounts live in the store and outlive
the build, writable bind mounts are copies, so nothing a RUN does reaches the context.

``RunSteps`` is a mixin of ``executor.Builder``; it holds no state of its own.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import secrets
import select
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import BuildError, Cancelled, DockerfileError, StoreFull, StrataError
from ..fsutil import rmtree
from ..store.index import FileEntry, normalize
from ..store.union import UnionView
from .cache import mounts_dir
from .configenv import env_dict, shell_form
from .events import OUTPUT, BuildEvent
from .instructions import PREDEFINED_ARGS, Run
from .stages import Stage
from .stephost import StepHost

if TYPE_CHECKING:
    from .executor import Snapshot, Step

# Where a ``RUN <<EOF`` script with a ``#!`` line is bound in the container.
HEREDOC_SCRIPT = "/.strata-heredoc"


class RunSteps(StepHost):
    """The RUN half of ``Builder``."""

    # Set by ``Builder.__init__``; declared here so mypy checks their use.
    emit: Callable[[BuildEvent], None]
    cancel: threading.Event | None
    _driver_fn: Callable[[], str] | None
    _driver: str | None

    if TYPE_CHECKING:

        def _event(self, step: Step, status: str, **extra: Any) -> BuildEvent: ...

    def _driver_name(self) -> str:
        if self._driver is None:
            if self._driver_fn is not None:
                self._driver = self._driver_fn()
            else:
                from .. import runtime

                self._driver = runtime.detect_driver(str(self.store.tmp))
        return self._driver

    def _run(self, step: Step, snap: Snapshot) -> str:
        from .. import runtime

        ins = step.expanded
        assert isinstance(ins, Run)
        c = step.config_before
        argv, script = self._run_argv(step, ins)
        # A declared ARG in run_args replaces an Env entry of its name: the planner puts one
        # there only when it was set after that ENV (BuildKit's order; executor._StageState).
        env = [e for e in c.get("Env") or [] if e.partition("=")[0] not in step.run_args]
        env_keys = {e.partition("=")[0] for e in env}
        env += [f"{k}={v}" for k, v in sorted({**self._predefined(step), **step.run_args}.items()) if k not in env_keys]
        process = runtime.Process(args=argv, env=env, cwd=c.get("WorkingDir") or "/", user=c.get("User") or "")
        chain = self.store.layers.chain(snap.top_layer)
        lowerdirs = [str(self.store.layers.diff_dir(layer.id)) for layer in reversed(chain)]
        network = "none" if ins.network == "none" else self.options.network
        scratch = self._new_scratch("run")
        mounts = self._mounts(step, ins, scratch)
        if script is not None:
            mounts.append(runtime.Mount(script, HEREDOC_SCRIPT, "bind", readonly=True))
        driver = self._driver_name()
        with self.store.layers.staging() as st:
            if driver == "vfs":
                rootdir = scratch / "rootfs"
                runtime.vfs_materialize(lowerdirs, str(rootdir))
                rootfs = runtime.RootFS("vfs", rootdir=str(rootdir))
            else:
                (scratch / "work").mkdir()
                rootfs = runtime.RootFS(
                    "overlay", lowerdirs=lowerdirs, upperdir=str(st.diff), workdir=str(scratch / "work")
                )
            config = runtime.ContainerConfig(
                rootfs=rootfs,
                process=process,
                runtime_dir=str(scratch / "run"),
                hostname=secrets.token_hex(6),
                mounts=mounts,
                network=network,  # type: ignore[arg-type]
            )
            code = self._run_container(config, step)
            if code != 0:
                _raise_if_store_full(self.store.root, step.text)
                shown = " ".join(argv)
                raise BuildError(
                    f'{self.filename}:{step.line}: {step.text}: process "{shown}" did not complete '
                    f"successfully: exit code: {code}{_single_id_hint()}",
                    step.line,
                    code,
                )
            if driver == "vfs":
                runtime.vfs_diff(lowerdirs, str(scratch / "rootfs"), str(st.diff), runtime_dir=str(scratch / "run"))
            rmtree(scratch / "work")
            entries = self._scan(str(st.diff), chain)
            return self.store.layers.add_dir(st, entries, snap.top_layer, self._created_by(step)).id

    def _predefined(self, step: Step) -> dict[str, str]:
        return {k: v for k, v in self.options.build_args.items() if k in PREDEFINED_ARGS}

    def _run_argv(self, step: Step, ins: Run) -> tuple[list[str], str | None]:
        """The RUN's argv, and a script to bind at ``HEREDOC_SCRIPT`` for ``RUN <<EOF`` with a
        ``#!`` line (BuildKit runs such a heredoc as a script, not through the shell)."""

        if ins.json:
            return list(ins.command), None
        command = ins.command[0] if ins.command else ""
        if ins.heredocs:
            docs = list(ins.heredocs)
            only = command.strip().lstrip("0123456789")
            name = docs[0].name
            if len(docs) == 1 and only in (
                f"<<{name}",
                f"<<-{name}",
                f'<<"{name}"',
                f"<<'{name}'",
                f'<<-"{name}"',
                f"<<-'{name}'",
            ):
                body = docs[0].chomped_content()
                if body.startswith("#!"):
                    script = self._new_scratch("script") / "script"
                    script.write_text(body, encoding="utf-8", errors="surrogateescape")
                    os.chmod(script, 0o755)
                    return [HEREDOC_SCRIPT], str(script)
                return shell_form(step.config_before, [body], False), None
            text = command
            for doc in docs:
                text += "\n" + doc.content + doc.name
            command = text
        return shell_form(step.config_before, [command], False), None

    def _mounts(self, step: Step, ins: Run, scratch: Path) -> list[Any]:
        from .. import runtime
        from .copy import export_subtree
        from .shell import expand_word

        assert self.ctx is not None and self.plan is not None
        env = {**step.run_args, **env_dict(step.env)}
        escape = self.plan.escape
        out: list[runtime.Mount] = []
        for index, mount in enumerate(ins.mounts(lambda w: expand_word(w, env, escape))):
            target = normalize(posixpath.join(step.config_before.get("WorkingDir") or "/", mount.target))
            if mount.type == "cache":
                import hashlib

                ident = mount.id or target
                where = mounts_dir(self.store) / hashlib.sha256(ident.encode()).hexdigest()[:24]
                if not where.exists():
                    where.mkdir(mode=mount.mode if mount.mode is not None else 0o755)
                    if os.geteuid() == 0:
                        os.chown(where, mount.uid or 0, mount.gid or 0)
                out.append(runtime.Mount(str(where), target, "bind", readonly=False))
            elif mount.type == "tmpfs":
                options = [f"size={mount.size}"] if mount.size else []
                out.append(runtime.Mount("tmpfs", target, "tmpfs", options=options))
            elif mount.type == "bind":
                ref = step.mount_refs.get(mount.from_) if mount.from_ else None
                if ref is None:
                    rel = self.ctx.resolve(
                        self.ctx.clean_source(mount.source or ".", step.line, "RUN --mount"), step.line, "RUN --mount"
                    )
                    source = self.ctx.abspath(rel)
                    if not os.path.exists(source):
                        raise DockerfileError(
                            f"RUN --mount: {mount.source} not found in the build context", step.line, self.filename
                        )
                    if not mount.readonly:
                        copy_to = scratch / f"mount-{index}"
                        _copy_host_tree(source, str(copy_to))
                        source = str(copy_to)
                else:
                    if isinstance(ref, Stage):
                        src_view = self._view(self.snapshots[ref.index])
                    else:
                        src_view = UnionView.of_layers(self.store, self.store.images.layers(ref))
                    copy_to = scratch / f"mount-{index}"
                    try:
                        export_subtree(src_view, mount.source or "/", str(copy_to))
                    except FileNotFoundError:
                        raise DockerfileError(
                            f"RUN --mount: {mount.source} not found in {mount.from_}", step.line, self.filename
                        ) from None
                    source = str(copy_to)
                out.append(runtime.Mount(source, target, "bind", readonly=mount.readonly))
        return out

    def _run_container(self, config: Any, step: Step) -> int:
        from .. import runtime

        read_fd, write_fd = os.pipe()
        try:
            # Processes in a container start with umask 022, as Docker's do, whatever the
            # caller's is: the files a RUN makes must not depend on who ran the build.
            saved = os.umask(0o022)
            try:
                running = runtime.start(config, stdout=write_fd, stderr=write_fd)
            except (StrataError, OSError) as err:
                code = getattr(err, "exit_code", 125)
                raise BuildError(
                    f"{self.filename}:{step.line}: {step.text}: {err}", step.line, code if code in (126, 127) else 125
                ) from None
            finally:
                os.umask(saved)
                os.close(write_fd)
                write_fd = -1
            pending = b""
            killed = False
            try:
                while True:
                    ready, _w, _x = select.select([read_fd], [], [], 0.25)
                    if self.cancel is not None and self.cancel.is_set() and not killed:
                        running.kill()
                        killed = True
                    if not ready:
                        continue
                    data = os.read(read_fd, 65536)
                    if not data:
                        break
                    pending += data
                    *lines, pending = pending.split(b"\n")
                    for raw in lines:
                        self.emit(self._event(step, OUTPUT, output=raw.decode("utf-8", "replace")))
                if pending:
                    self.emit(self._event(step, OUTPUT, output=pending.decode("utf-8", "replace")))
                code = running.wait()
            except BaseException:
                # Ctrl-C or an error while it runs: the container and its monitor end
                # before the step's scratch (which they write into) is removed.
                running.kill()
                with contextlib.suppress(StrataError, OSError):
                    running.wait(10)
                raise
            if killed:
                raise Cancelled("build")
            return code if code is not None else 125
        finally:
            os.close(read_fd)
            if write_fd >= 0:
                os.close(write_fd)

    def _scan(self, diff: str, chain: Sequence[Any]) -> list[FileEntry]:
        """Index what the RUN left in its upperdir, keeping what the layers below knew
        about paths the disk cannot describe (owners, when rootless)."""
        from ..store.scan import scan_dir

        paths: list[str] = []
        for root, dirs, files in os.walk(diff):
            rel = root[len(diff) :]
            paths += [f"{rel}/{name}" for name in dirs + files]
        if not paths:
            return []
        view = UnionView.of_layers(self.store, list(chain))
        base = {p: hit.entry for p, hit in view.lookup_many(paths).items()}
        return scan_dir(diff, base=base)


def _single_id_hint() -> str:
    """With a single-id mapping a command that switches users (apt-get, su) fails inside:
    a failed RUN then says what would let it run."""
    from ..runtime.storens import current, single_id_advice

    if current().mode != "single":
        return ""
    advice = single_id_advice()
    return f" ({advice})" if advice else ""


def _raise_if_store_full(root: os.PathLike[str] | str, what: str) -> None:
    """A RUN that failed because the store's filesystem filled up is a full store, not a
    failing command: say so, as every other write into the store does."""
    try:
        fs = os.statvfs(root)
    except OSError:
        return
    if fs.f_bavail * fs.f_frsize < 64 * 1024:
        raise StoreFull(
            f"no space left on device for the store at {root} while running {what}; free space and build again"
        )


def _copy_host_tree(source: str, dest: str) -> None:
    import shutil

    if os.path.isdir(source):
        shutil.copytree(source, dest, symlinks=True)
    else:
        shutil.copy2(source, dest)
