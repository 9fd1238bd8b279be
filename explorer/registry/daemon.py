"""``strata pull docker-daemon:NAME`` and ``podman:NAME``: an image from a local Docker
or Podman, through their save command, into the store's docker-archive loader.

``docker save`` / ``podman save`` stream the archive to us; it lands in the store's own
staging (``tmp/load-…``, removed afterwards, or by the next start after a crash) because
the loader needs random access to its members. Whatever the daemon names the image is
the name it gets here, as ``docker load`` would give it.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import threading
from typing import TYPE_CHECKING

from ..errors import ImageNotFound, InvalidArgument, RegistryError
from ..fsutil import guard_enospc, rmtree
from ..store import archive, reference
from ..store.marks import mark_owner
from ..store.reference import DAEMON_FORMS, daemon_source
from . import events
from .events import Progress, Reporter
from .pull import PullResult

if TYPE_CHECKING:
    from ..store.store import Store

CHUNK = 1 << 20


def _save_command(tool: str, program: str, name: str) -> list[str]:
    if tool == "podman":
        return [program, "save", "--format", "docker-archive", name]
    return [program, "save", name]


def import_from_daemon(
    store: Store, text: str, *, progress: Progress | None = None, cancel: threading.Event | None = None
) -> PullResult:
    source = daemon_source(text)
    if source is None:
        raise InvalidArgument(f"{text} is not a daemon reference ({DAEMON_FORMS})")
    tool, name = source
    program = shutil.which(tool)
    if program is None:
        raise RegistryError(f"cannot import {text}: the {tool} command is not installed")
    reporter = Reporter(progress, cancel, "pull")
    reporter.info(f"Copying {name} from {tool}")
    scratch = store.tmp / f"load-{secrets.token_hex(8)}"
    scratch.mkdir(mode=0o700)
    mark_owner(scratch)
    try:
        path = scratch / "image.tar"
        _copy_out(tool, _save_command(tool, program, name), path, reporter)
        lines = archive.load(store, path, progress=reporter.info)
    finally:
        rmtree(scratch)
    image = None
    for line in lines:
        if line.startswith("Loaded image: "):
            image = store.images.resolve(line.removeprefix("Loaded image: "))
        elif line.startswith("Loaded image ID: "):
            image = store.images.get(line.removeprefix("Loaded image ID: "))
    if image is None:
        raise ImageNotFound(text)
    tag = image.tags[0] if image.tags else None
    shown = reference.familiar(tag) if tag else name
    result = PullResult(image, shown, tag, "", len(store.images.layers(image)), False)
    reporter.info(result.status)
    return result


def _copy_out(tool: str, command: list[str], path: os.PathLike[str], reporter: Reporter) -> None:
    """Run the save command, copying its output to ``path`` with progress and cancel."""
    meter = reporter.meter(tool, events.COPYING, 0, f"Copying from {tool}")
    try:
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    except OSError as e:
        raise RegistryError(f"cannot run {tool} save: {e.strerror}") from None
    assert proc.stdout is not None and proc.stderr is not None
    errors: list[bytes] = []
    reader = threading.Thread(target=lambda: errors.append(proc.stderr.read() if proc.stderr else b""), daemon=True)
    reader.start()
    try:
        with open(path, "wb") as out, guard_enospc(os.fspath(path)):
            while chunk := proc.stdout.read(CHUNK):
                reporter.check()
                out.write(chunk)
                meter.add(len(chunk))
        code = proc.wait()
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    finally:
        proc.stdout.close()
        reader.join()
        proc.stderr.close()
    if code != 0:
        text = b"".join(errors).decode(errors="replace").strip().splitlines()
        why = text[-1] if text else f"exit status {code}"
        raise RegistryError(f"{tool} save {command[-1]} failed: {why}")
    meter.done(events.COMPLETE, f"Copied from {tool}")
