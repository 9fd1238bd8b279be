"""The options that come before a verb, read the same way wherever argv is looked at.

``strata`` decides between the window and a verb, the CLI finds the verb to build only
its parser, and the window's launcher takes ``--root``: all three see ``--root DIR`` and
``--root=DIR`` (and ``--storage-driver``) alike because they all read them here. The
full parse of a verb's own options stays with argparse.
"""

from __future__ import annotations

# Nothing is imported at run time: ``strata --version`` reads argv through this module and
# pays for every import it makes (``typing`` alone costs more than the rest of the command).
TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable
    from typing import Any

WITH_VALUE = ("--root", "--storage-driver")
FLAGS = ("-D", "--debug")


class Leading:
    """The global options before the first other word, and everything from there on.

    A plain class, not a dataclass: ``strata --version`` reads argv through here, and
    importing ``dataclasses`` (with ``inspect``) would double what that command costs."""

    __slots__ = ("flags", "missing_value", "rest", "values")

    def __init__(self) -> None:
        self.values: dict[str, str] = {}
        self.flags: set[str] = set()
        self.rest: list[str] = []
        self.missing_value: str | None = None  # an option given last, without its value

    @property
    def root(self) -> str | None:
        return self.values.get("--root")

    @property
    def verb(self) -> str | None:
        """The first word that is not an option; None when there is none."""
        return next((a for a in self.rest if not a.startswith("-")), None)


def leading(argv: list[str]) -> Leading:
    out = Leading()
    i = 0
    while i < len(argv):
        arg = argv[i]
        name, eq, value = arg.partition("=")
        if name in WITH_VALUE:
            if eq:
                out.values[name] = value
            elif i + 1 < len(argv):
                out.values[name] = argv[i + 1]
                i += 1
            else:
                out.missing_value = name
            i += 1
            continue
        if arg in FLAGS:
            out.flags.add(arg)
            i += 1
            continue
        break
    out.rest = argv[i:]
    return out


def show_help(parser: argparse.ArgumentParser) -> Callable[[Any, argparse.Namespace], int]:
    """The action of a verb group given without its sub-verb (``strata system``): its help."""

    def action(_app: Any, _args: argparse.Namespace) -> int:
        parser.print_help()
        return 0

    return action
