"""Verbs about registries: pull, push, login, logout.

Progress looks like docker's: on a terminal one line per layer, redrawn in place with
bytes and rate; otherwise one line per change of a layer's state, so logs stay short.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import TYPE_CHECKING, TextIO

from ..errors import InvalidArgument
from ..registry import events
from ..registry.events import TransferEvent
from ..store import reference
from ..store.reference import DAEMON_FORMS, is_daemon_reference
from .format import human_size

if TYPE_CHECKING:
    from ..api import Strata


BAR_WIDTH = 30
MOVING = (events.DOWNLOADING, events.UPLOADING, events.COPYING)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("pull", help=f"download an image from a registry (or {DAEMON_FORMS})")
    p.add_argument("name", metavar="NAME[:TAG|@DIGEST]")
    p.add_argument("--platform", help="os/arch[/variant] to pick from a multi-platform image (default: this host)")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the image name")
    p.set_defaults(func=cmd_pull)

    p = sub.add_parser("push", help="upload an image to a registry")
    p.add_argument("name", metavar="NAME[:TAG]")
    p.add_argument(
        "--compression",
        choices=["gzip", "zstd", "none"],
        default="gzip",
        help="how layers are compressed (default gzip, what every client reads)",
    )
    p.add_argument(
        "--format",
        choices=["docker", "oci"],
        default=None,
        dest="fmt",
        help="manifest format (default: docker for gzip, oci otherwise)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="print only the final digest line")
    p.set_defaults(func=cmd_push)

    p = sub.add_parser("login", help="log in to a registry (default Docker Hub)")
    p.add_argument("server", nargs="?", metavar="SERVER")
    p.add_argument("-u", "--username")
    p.add_argument("-p", "--password")
    p.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    p.set_defaults(func=cmd_login)

    p = sub.add_parser("logout", help="forget the credentials Strata keeps for a registry")
    p.add_argument("server", nargs="?", metavar="SERVER")
    p.set_defaults(func=cmd_logout)


# --- progress --------------------------------------------------------------------------


def _bar(current: int, total: int) -> str:
    if total <= 0:
        return ""
    done = min(BAR_WIDTH, current * BAR_WIDTH // total)
    arrow = ">" if done < BAR_WIDTH else ""
    return "[" + "=" * done + arrow + " " * (BAR_WIDTH - done - len(arrow)) + "]"


def describe(event: TransferEvent) -> str:
    """One line for an event, docker style."""
    if not event.layer:
        return event.message
    text = f"{event.layer}: {event.message}"
    if event.status in MOVING:
        amount = f"{human_size(event.current)}/{human_size(event.total)}" if event.total else human_size(event.current)
        rate = f" {human_size(event.rate)}/s" if event.rate else ""
        text = f"{text} {_bar(event.current, event.total)} {amount}{rate}".replace("  ", " ")
    return text


class Printer:
    """Turns events into terminal output: live lines on a TTY, state changes elsewhere."""

    def __init__(self, out: TextIO, live: bool, quiet: bool = False) -> None:
        self.out = out
        self.live = live
        self.quiet = quiet
        self.lines = 0
        self.row: dict[str, int] = {}
        self.state: dict[str, str] = {}

    def __call__(self, event: TransferEvent) -> None:
        if self.quiet:
            return
        if not event.layer:
            self._new_line(event.message)
            return
        if self.live:
            self._live(event)
        elif self.state.get(event.layer) != event.status:
            self.state[event.layer] = event.status
            self._new_line(f"{event.layer}: {event.message}")
        self.out.flush()

    def _new_line(self, text: str) -> None:
        self.out.write(text + "\n")
        self.lines += 1

    def _live(self, event: TransferEvent) -> None:
        text = describe(event)
        row = self.row.get(event.layer)
        if row is None:
            self.row[event.layer] = self.lines
            self._new_line(text)
            return
        up = self.lines - row
        self.out.write(f"\x1b[{up}A\r\x1b[2K{text}\x1b[{up}B\r")


def _live(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


# --- verbs -----------------------------------------------------------------------------


def cmd_pull(app: Strata, args: argparse.Namespace) -> int:
    name: str = args.name
    daemon = is_daemon_reference(name)
    if not daemon and not args.quiet:
        ref = reference.parse(name, default_tag=False)
        if ref.tag is None and ref.digest is None:
            print("Using default tag: latest", flush=True)
    printer = Printer(sys.stdout, _live(sys.stdout), args.quiet)
    result = app.pull(name, platform=args.platform, progress=printer)
    if result.tag:
        print(reference.familiar(result.tag) if args.quiet else result.tag)
    elif not daemon:
        print(reference.parse(name).name)
    else:
        print(result.image.id)
    return 0


def cmd_push(app: Strata, args: argparse.Namespace) -> int:
    printer = Printer(sys.stdout, _live(sys.stdout), args.quiet)
    result = app.push(args.name, compression=args.compression, fmt=args.fmt, progress=printer)
    if args.quiet:
        print(result.line)
    return 0


def cmd_login(app: Strata, args: argparse.Namespace) -> int:
    username = args.username
    password = args.password
    if password is not None and args.password_stdin:
        raise InvalidArgument("--password and --password-stdin are mutually exclusive")
    if args.password_stdin:
        if not username:
            raise InvalidArgument("--password-stdin needs --username")
        password = sys.stdin.read().rstrip("\r\n")
    elif password is not None:
        print("WARNING! Using --password via the CLI is insecure. Use --password-stdin.", file=sys.stderr)
    interactive = _live(sys.stdin)
    if not username:
        if not interactive:
            raise InvalidArgument("give --username (no terminal to ask on)")
        username = input("Username: ").strip()
    if not password:
        if not interactive:
            raise InvalidArgument("give --password-stdin (no terminal to ask on)")
        password = getpass.getpass("Password: ")
    print(app.login(args.server, username, password))
    return 0


def cmd_logout(app: Strata, args: argparse.Namespace) -> int:
    print(app.logout(args.server))
    return 0
