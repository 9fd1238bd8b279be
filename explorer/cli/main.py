"""Parsing argv, dispatching verbs, and turning every failure into one line.

Only this module reads the environment (``STRATA_ROOT``, ``STRATA_DEBUG``). Verbs live
in modules by subject (``image_cmds``, ``container_cmds`` …), each with a
``register(subparsers)`` that adds its parsers.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import cast

from ..errors import StrataError

# Verbs whose own errors use docker run's convention (125). Every other verb exits 1 for
# its own errors, as the docker CLI does for a daemon's refusal: create, start, exec and cp
# included. 126 and 127 (the command cannot run) are kept by every verb.
RUN_VERBS = {"run"}

Registrar = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]


# Which module registers which verbs: a command builds only its own verb's parser, so
# `strata run` does not pay for importing and describing forty other verbs.
VERB_MODULES: dict[str, str] = {
    **dict.fromkeys(
        ("images", "history", "inspect", "tag", "rmi", "tree", "ls", "import", "load", "save"), "image_cmds"
    ),
    **dict.fromkeys(
        ("create", "run", "start", "stop", "kill", "rm", "ps", "logs", "exec", "wait", "diff", "commit", "cp"),
        "container_cmds",
    ),
    **dict.fromkeys(("build", "builder"), "build_cmds"),
    "volume": "volume_cmds",
    **dict.fromkeys(("pull", "push", "login", "logout"), "registry_cmds"),
    **dict.fromkeys(("system", "image", "container", "df", "info"), "system_cmds"),
}
# Verbs that touch no layer, container or volume content: they stay outside the store's
# user namespace (see ``runtime.storens``).
NO_STORE_VERBS = {"login", "logout"}


# Verbs that may need more than one id: told once what is missing for a full mapping.
_MULTI_ID_VERBS = {"run", "create", "start", "build", "load", "pull", "import"}


def enter_store_namespace(verb: str | None = None) -> None:
    """Rootless, move into the store's user namespace before anything starts a thread."""
    if os.geteuid() == 0:
        return
    from ..runtime.storens import advice_once, enter

    if enter().mode == "single" and (verb is None or verb in _MULTI_ID_VERBS):
        advice = advice_once()
        if advice:
            print(f"strata: warning: {advice}", file=sys.stderr)


def _verb_of(argv: list[str]) -> str | None:
    from .argv import leading

    return leading(argv).verb


def _registrars(verb: str | None = None) -> list[Registrar]:
    names = list(dict.fromkeys(VERB_MODULES.values()))
    if verb is not None and verb in VERB_MODULES:
        names = [VERB_MODULES[verb]]
    found: list[Registrar] = []
    for name in names:
        try:
            module = __import__(f"explorer.cli.{name}", fromlist=["register"])
        except ModuleNotFoundError as e:
            if e.name != f"explorer.cli.{name}":
                raise
            continue
        found.append(module.register)
    return found


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one docker-like line and exit 125/1."""

    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"{self.prog}: {message}\nSee '{self.prog} --help'.", file=sys.stderr)
        # Docker: a flag it cannot parse is 125 for every verb; missing arguments are 1 for
        # every verb, run included.
        flag_error = not message.startswith("the following arguments are required")
        sys.exit(125 if flag_error else 1)


def build_parser(verb: str | None = None) -> argparse.ArgumentParser:
    parser = _Parser(
        prog="strata",
        description="See and work with container image storage, without a daemon and without root. "
        "With no arguments, opens the window.",
    )
    parser.add_argument("--root", help="store directory (default: $STRATA_ROOT or $XDG_DATA_HOME/strata)")
    parser.add_argument(
        "--storage-driver",
        choices=["overlay", "vfs"],
        help="driver for new containers (default: $STRATA_STORAGE_DRIVER or detected)",
    )
    parser.add_argument("-D", "--debug", action="store_true", help="show internal details of failures")
    parser.add_argument("--version", action="version", version=f"strata {__import__('explorer').__version__}")
    sub = cast(
        "argparse._SubParsersAction[argparse.ArgumentParser]",
        parser.add_subparsers(dest="verb", metavar="COMMAND", parser_class=_Parser),
    )
    gui = sub.add_parser("gui", help="open the window (with Dockerfiles, folders or image tars to open)")
    gui.add_argument("files", nargs="*")
    for register in _registrars(verb):
        register(sub)
    return parser


def run(argv: list[str]) -> int:
    parser = build_parser(_verb_of(argv))
    args = parser.parse_args(argv)
    if args.verb is None:
        parser.print_help()
        return 0
    if args.verb == "gui":  # the entry point opens the window before the CLI is reached
        print("strata: run `strata gui` (or `python -m explorer gui`) to open the window", file=sys.stderr)
        return 2
    debug = args.debug or os.environ.get("STRATA_DEBUG") == "1"
    if args.verb not in NO_STORE_VERBS:
        try:
            enter_store_namespace(args.verb)
        except StrataError as e:
            print(f"Error: {e}", file=sys.stderr)
            return 125 if args.verb in RUN_VERBS else 1
    from ..api import Strata

    app = Strata(
        args.root or os.environ.get("STRATA_ROOT") or None,
        storage_driver=args.storage_driver or os.environ.get("STRATA_STORAGE_DRIVER") or None,
    )
    try:
        code: int = args.func(app, args)
        return code
    except StrataError as e:
        print(f"Error: {_shown(str(e))}", file=sys.stderr)
        if debug:
            import traceback

            traceback.print_exc()
        if e.exit_code in (126, 127):
            return e.exit_code
        return e.exit_code if args.verb in RUN_VERBS else 1
    except KeyboardInterrupt:
        print("Error: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except Exception as e:
        if debug:
            raise
        print(
            f"Error: internal error ({type(e).__name__}: {_shown(str(e))}); this is a bug in strata — "
            "rerun with STRATA_DEBUG=1 and report it",
            file=sys.stderr,
        )
        return 125
    finally:
        app.close()


def _shown(message: str) -> str:
    """A message naming a file whose name is not UTF-8, printable (see index.shown)."""
    from ..store.index import shown

    return shown(message)
