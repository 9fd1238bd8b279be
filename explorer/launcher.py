"""Starting the window from the command line, or saying in one line why it cannot start.

The entry point (``explorer/__main__``) sends ``strata``, ``strata gui …`` and
``strata FILE …`` here; the CLI never imports the window (nor the window the CLI).

``strata gui [--root DIR] [FILE …]`` (and the desktop entry's ``strata gui %F``): each
FILE opens once the window is up: a Dockerfile, or a folder holding one, in the editor
with its folder as the build context; an image archive (.tar, OCI layout) is loaded.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

USAGE = "usage: strata gui [--root DIR] [DOCKERFILE | FOLDER | ARCHIVE.tar …]"


class UsageError(Exception):
    """A command line the window cannot start with; the message is the one line to print."""


def has_display() -> bool:
    if os.environ.get("QT_QPA_PLATFORM", "").split(":")[0] in ("offscreen", "minimal", "vnc", "eglfs", "linuxfb"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def parse_args(args: list[str]) -> tuple[str | None, list[Path]]:
    """``[gui] [--root DIR | --root=DIR] [--] [FILE …]`` → (root, files). Desktops hand
    over ``file://`` URLs when an entry asks for %U; they are accepted too."""
    from .cli.argv import leading

    given = leading(list(args))
    if given.missing_value is not None:
        raise UsageError(f"strata gui: {given.missing_value} needs a value")
    rest = given.rest
    if rest[:1] == ["gui"]:
        rest = rest[1:]
    root: str | None = given.root
    files: list[Path] = []
    only_files = False
    while rest:
        arg = rest.pop(0)
        if only_files:
            files.append(_path(arg))
        elif arg == "--":
            only_files = True
        elif arg == "--root":
            if not rest:
                raise UsageError("strata gui: --root needs a directory")
            root = rest.pop(0)
        elif arg.startswith("--root="):
            root = arg.split("=", 1)[1]
        elif arg == "gui" and not files:
            continue  # "strata --root DIR gui …"
        elif arg in ("-h", "--help"):
            raise UsageError(USAGE)
        elif arg.startswith("-") and arg != "-":
            raise UsageError(f"strata gui: unknown option {arg}; {USAGE}")
        else:
            files.append(_path(arg))
    for f in files:
        if not f.exists():
            raise UsageError(
                f"strata gui: {f}: no such file or folder; give a Dockerfile, a folder with one, or an image archive"
            )
    return root, files


def _path(arg: str) -> Path:
    if arg.startswith("file://"):
        from urllib.parse import unquote, urlparse

        return Path(unquote(urlparse(arg).path))
    return Path(arg).absolute()


def launch_gui(args: list[str]) -> int:
    try:
        root, files = parse_args(args)
    except UsageError as e:
        if str(e) == USAGE:
            print(e)
            return 0
        print(e, file=sys.stderr)
        return 2
    root = root or os.environ.get("STRATA_ROOT") or None
    if not has_display():
        print(
            "strata: no display found (DISPLAY and WAYLAND_DISPLAY are unset); "
            "the window needs one — use the CLI instead: strata --help",
            file=sys.stderr,
        )
        return 1
    from .cli.main import enter_store_namespace
    from .errors import StrataError

    try:
        enter_store_namespace()
        # Before Qt starts its threads: every later fork (a start, a RUN, a cp) from
        # a worker thread goes through this one-threaded server (runtime/forking.py).
        from .runtime.forking import ensure_server

        ensure_server()
    except StrataError as e:
        print(f"strata: {e}", file=sys.stderr)
        return 1
    try:
        from .gui.app import run_app
    except ImportError as e:
        print(f"strata: the window cannot start: {e}; install PySide6 or use the CLI: strata --help", file=sys.stderr)
        return 1
    return run_app(root, files)
