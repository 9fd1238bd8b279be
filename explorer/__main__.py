"""`strata`: with no arguments the window, with a verb the CLI."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or (len(args) == 2 and args[0] == "--root") or args[:1] == ["gui"]:
        from .cli.launch import launch_gui

        return launch_gui(args)
    from .cli.main import run

    return run(args)


if __name__ == "__main__":
    sys.exit(main())
