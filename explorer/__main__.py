"""`strata`: with no arguments the window, with a verb the CLI."""

from __future__ import annotations

import os
import sys


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    from .cli.argv import leading

    given = leading(args)
    rest = given.rest
    if rest == ["--version"]:
        # Answered before any verb module is imported: the version needs no parser and no store.
        from . import __version__

        print(f"strata {__version__}")
        return 0
    if given.missing_value is None and (not rest or rest[:1] == ["gui"] or _only_files(rest)):
        from .launcher import launch_gui

        return launch_gui(args)
    from .cli.main import run

    return run(args)


_OPENABLE = ("Dockerfile", ".dockerfile", ".tar", ".tar.gz", ".tgz", ".tar.zst")


def _only_files(args: list[str]) -> bool:
    """`strata Dockerfile`, `strata app/` or `strata image.tar` (as the desktop entry calls
    it) opens the window with those files; anything else is a CLI verb."""
    return bool(args) and all(os.path.isdir(a) or (os.path.isfile(a) and a.endswith(_OPENABLE)) for a in args)


def entry() -> None:
    """The console script. A CLI verb ends with ``os._exit`` once its output is flushed:
    tearing down a hundred imported modules would cost more than many commands take."""
    code = main()
    if sys.argv[1:2] and sys.argv[1] != "gui":
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except BrokenPipeError:
            code = code or 141
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    entry()
