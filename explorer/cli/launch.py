"""Starting the window from the command line, or saying in one line why it cannot start."""

from __future__ import annotations

import os
import sys


def has_display() -> bool:
    if os.environ.get("QT_QPA_PLATFORM", "").split(":")[0] in ("offscreen", "minimal", "vnc", "eglfs", "linuxfb"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def launch_gui(args: list[str]) -> int:
    root = None
    rest = [a for a in args if a != "gui"]
    if len(rest) == 2 and rest[0] == "--root":
        root = rest[1]
    root = root or os.environ.get("STRATA_ROOT") or None
    if not has_display():
        print("strata: no display found (DISPLAY and WAYLAND_DISPLAY are unset); "
              "the window needs one — use the CLI instead: strata --help", file=sys.stderr)
        return 1
    try:
        from ..gui.app import run_app
    except ImportError as e:
        print(f"strata: the window cannot start: {e}; install PySide6 or use the CLI: strata --help",
              file=sys.stderr)
        return 1
    return run_app(root)
