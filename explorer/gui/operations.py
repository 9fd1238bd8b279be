"""The operations a user starts from menus, toolbars and views.

Views say what the user wants (signals with a name); this object asks what it must
(confirmations, names, files), runs the API call in a worker, reports the outcome in the
events panel, and shows a failure in a dialog over the window. A success touches the store,
so lists refresh even when the watcher is off.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import QFileDialog, QInputDialog, QMessageBox, QWidget

from ..api.model import Image
from .context import AppContext
from .dialogs import RunDialog, TextDialog, error_box
from .pull_dialog import PullDialog
from .workers import Control, Task, TaskFailure


class Operations(QObject):
    containerCreated = Signal(str)
    imagesLoaded = Signal(list)
    # A clean-up asked for from a menu or a view: "system", "containers", "images", "volumes",
    # "cache". The Disk usage tab runs it: it measures, asks with the figures, and removes.
    cleanupRequested = Signal(str)

    def __init__(self, ctx: AppContext, window: QWidget) -> None:
        super().__init__(window)
        self.ctx = ctx
        self.window = window
        self.pull_dialog: PullDialog | None = None

    def _do(
        self, title: str, fn: Callable[[Control], Any], done: Callable[[Any], None] | None = None, touch: bool = True
    ) -> Task:
        def ok(result: Any) -> None:
            if touch:
                self.ctx.store_touched.emit()
            if done is not None:
                done(result)

        def failed(failure: TaskFailure) -> None:
            if failure.cancelled:
                self.ctx.info(f"{title}: cancelled")
            else:
                self.ctx.message.emit("error", f"{title}: {failure.message}")
                error_box(self.window, title[:1].upper() + title[1:], failure)
            if touch:
                self.ctx.store_touched.emit()

        return self.ctx.submit(title, fn, on_result=ok, on_error=failed, owner=self)

    def _confirm(self, title: str, text: str) -> bool:
        answer = QMessageBox.question(self.window, title, text)
        return answer == QMessageBox.StandardButton.Yes

    # --- images ------------------------------------------------------------------------------

    def load_archive(self, path: str | None = None) -> Task | None:
        if path is None:
            path, _ = QFileDialog.getOpenFileName(
                self.window,
                "Load image archive",
                str(Path.home()),
                "Image archives (*.tar *.tar.gz *.tgz);;All files (*)",
            )
            if not path:
                return None

        def work(control: Control) -> list[str]:
            return self.ctx.api().load(path, progress=control.progress)

        def done(names: list[str]) -> None:
            self.ctx.info(f"loaded {Path(path).name}: {', '.join(names) or 'no images'}")
            self.imagesLoaded.emit(list(names))

        return self._do(f"load {Path(path).name}", work, done)

    def save_images(self, refs: list[str]) -> Task | None:
        if not refs:
            return None
        suggested = refs[0].replace("/", "_").replace(":", "_") + ".tar"
        path, chosen = QFileDialog.getSaveFileName(
            self.window,
            "Save image",
            str(Path.home() / suggested),
            "docker-archive (*.tar);;OCI layout archive (*.tar)",
        )
        if not path:
            return None
        fmt = "oci" if chosen.startswith("OCI") else "docker"

        def work(control: Control) -> None:
            self.ctx.api().save(refs, path, fmt=fmt, progress=control.progress)

        return self._do(
            f"save {', '.join(refs)}", work, lambda _: self.ctx.info(f"saved {', '.join(refs)} to {path}"), touch=False
        )

    def pull(self, reference: str = "") -> PullDialog | None:
        """The Pull dialog (not modal: the window stays usable while layers arrive)."""
        dialog = PullDialog(self.ctx, reference, self.window)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.pulled.connect(lambda name: self.imagesLoaded.emit([f"Loaded image: {name}"]))
        dialog.show()
        self.pull_dialog = dialog
        return dialog

    def remove_images(self, refs: list[str]) -> Task | None:
        if not refs or not self._confirm("Remove images", "Remove " + ", ".join(refs) + "?"):
            return None

        def work(_: Control) -> list[str]:
            return self.ctx.api().rmi(refs)

        def done(lines: list[str]) -> None:
            for line in lines:
                self.ctx.info(line)

        return self._do(f"remove {', '.join(refs)}", work, done)

    def tag_image(self, ref: str) -> Task | None:
        target, ok = QInputDialog.getText(self.window, "Tag image", f"New name for {ref}:")
        target = target.strip()
        if not ok or not target:
            return None
        return self._do(
            f"tag {ref} as {target}",
            lambda _: self.ctx.api().tag(ref, target),
            lambda _: self.ctx.info(f"tagged {ref} as {target}"),
        )

    def run_image(self, ref: str) -> Task | None:
        dialog = RunDialog(ref, self.window)
        if dialog.exec() != RunDialog.DialogCode.Accepted:
            return None
        image = dialog.image.text().strip()
        name = dialog.name.text().strip() or None
        try:
            cmd = shlex.split(dialog.command.text()) or None
        except ValueError as e:
            error_box(self.window, "Run", f"command: {e}")
            return None
        env = [line.strip() for line in dialog.env.toPlainText().splitlines() if line.strip()]
        volumes = dialog.volumes.text().split()
        start = dialog.start.isChecked()

        def work(control: Control) -> Any:
            from ..api.containers import RunOptions

            api = self.ctx.api()
            info = api.create(image, RunOptions(cmd=cmd, env=env, volumes=volumes), name=name, hold=start)
            if start:
                control.progress(f"starting {info.name}")
                api.start(info.name)
            return info

        def done(info: Any) -> None:
            self.ctx.info(f"{'started' if start else 'created'} container {info.name} from {image}")
            self.containerCreated.emit(info.name)

        return self._do(f"run {image}", work, done)

    # --- containers --------------------------------------------------------------------------

    def container_action(self, verb: str, names: list[str]) -> Task | None:
        if not names:
            return None
        question = "Remove " + ", ".join(names) + " and their changes?"
        if verb == "rm" and not self._confirm("Remove containers", question):
            return None

        def work(control: Control) -> list[str]:
            api = self.ctx.api()
            out = []
            for n in names:
                control.progress(f"{verb} {n}")
                if verb == "rm":
                    info = api.container(n)
                    out.append(api.rm(n, force=info.state == "running") or n)
                elif verb == "start":
                    out.append(api.start(n).name)
                else:
                    out.append(api.stop(n) or n)
            return out

        return self._do(f"{verb} {', '.join(names)}", work, lambda done: self.ctx.info(f"{verb}: {', '.join(done)}"))

    def show_logs(self, name: str) -> Task:
        def work(_: Control) -> str:
            logs = self.ctx.api().logs(name)
            if isinstance(logs, tuple):
                return "".join(
                    part.decode("utf-8", "replace") if isinstance(part, bytes) else str(part) for part in logs
                )
            return logs.decode("utf-8", "replace") if isinstance(logs, bytes) else str(logs)

        return self._do(
            f"logs of {name}",
            work,
            lambda text: TextDialog(f"Logs — {name}", text or "(no output yet)", self.window).show(),
            touch=False,
        )

    def show_diff(self, name: str) -> Task:
        def work(_: Control) -> str:
            changes = self.ctx.api().diff(name)
            return "\n".join(f"{c.kind} {c.path}" for c in changes)

        return self._do(
            f"diff of {name}",
            work,
            lambda text: TextDialog(f"Changes — {name}", text or "(no changes)", self.window).show(),
            touch=False,
        )

    def commit(self, name: str) -> Task | None:
        ref, ok = QInputDialog.getText(
            self.window, "Commit container", f"Image name for {name}'s filesystem (empty: untagged):"
        )
        if not ok:
            return None
        target = ref.strip() or None

        def work(_: Control) -> Image:
            return self.ctx.api().commit(name, target)

        return self._do(
            f"commit {name}", work, lambda image: self.ctx.info(f"committed {name} as {target or image.id}")
        )

    # --- the whole store ---------------------------------------------------------------------

    def prune(self) -> None:
        """docker system prune, with a choice of what goes and what each frees."""
        self.cleanupRequested.emit("system")

    # --- volumes -----------------------------------------------------------------------------

    def volume_create(self) -> Task | None:
        name, ok = QInputDialog.getText(self.window, "Create volume", "Volume name (empty: generated):")
        if not ok:
            return None
        wanted = name.strip() or None

        def work(_: Control) -> Any:
            return self.ctx.api().volume_create(wanted)

        return self._do("create volume", work, lambda v: self.ctx.info(f"created volume {v.name}"))

    def volume_rm(self, names: list[str]) -> Task | None:
        if not names or not self._confirm("Remove volumes", "Remove " + ", ".join(names) + " and their data?"):
            return None
        return self._do(
            f"remove volume {', '.join(names)}",
            lambda _: self.ctx.api().volume_rm(names),
            lambda _: self.ctx.info(f"removed volumes {', '.join(names)}"),
        )

    def volume_prune(self) -> None:
        self.cleanupRequested.emit("volumes")
