"""Verbs about builds: ``build`` and ``builder prune``.

Progress comes from the build as ``BuildEvent`` records; this module only renders them:
``plain`` as BuildKit-like lines (``#3 [2/5] RUN …``, the command's output, ``#3 CACHED``,
``#3 DONE 0.4s``), ``json`` as one object per line on stdout, and ``auto`` as a live
display when stderr is a terminal (plain otherwise). Like BuildKit, human progress goes
to stderr so stdout stays for ``-q`` and ``json``.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from typing import TYPE_CHECKING, TextIO

from ..builder.events import BuildEvent
from ..errors import BuildError, InvalidArgument
from .format import human_size

if TYPE_CHECKING:
    from ..api import Strata


_TAIL_LINES = 6


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("build", help="build an image from a Dockerfile")
    p.add_argument("context", help="the build context directory")
    p.add_argument("-t", "--tag", action="append", default=[], help="name:tag for the image (repeatable)")
    p.add_argument("-f", "--file", help="the Dockerfile (default: CONTEXT/Dockerfile; - for standard input)")
    p.add_argument(
        "--build-arg",
        action="append",
        default=[],
        metavar="KEY[=VALUE]",
        help="set a build-time variable (KEY alone takes it from the environment)",
    )
    p.add_argument("--target", help="build only up to this stage")
    p.add_argument("--no-cache", action="store_true", help="do not use the build cache")
    p.add_argument("--pull", action="store_true", help="always pull a newer version of the base images")
    p.add_argument(
        "--progress",
        choices=["auto", "plain", "json", "tty", "quiet"],
        default="auto",
        help="how to show progress (default auto: live on a terminal, plain otherwise)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="print only the image id")
    p.add_argument(
        "--network", choices=["host", "none", "default"], default="host", help="network for RUN steps (default host)"
    )
    p.set_defaults(func=cmd_build)

    builder = sub.add_parser("builder", help="manage the build cache")
    bsub = builder.add_subparsers(dest="builder_verb", metavar="COMMAND", parser_class=sub._parser_class)
    prune = bsub.add_parser("prune", help="remove build cache")
    prune.add_argument("-a", "--all", action="store_true", help="remove all build cache, not just unused entries")
    prune.add_argument("-f", "--force", action="store_true", help="do not ask for confirmation")
    prune.set_defaults(func=cmd_builder_prune)
    builder.set_defaults(func=_builder_help(builder))


def _builder_help(parser: argparse.ArgumentParser):  # type: ignore[no-untyped-def]
    def show(_app: Strata, _args: argparse.Namespace) -> int:
        parser.print_help()
        return 0

    return show


def _build_args(raw: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in raw:
        key, has_value, value = item.partition("=")
        if not key:
            raise InvalidArgument(f"--build-arg {item!r}: give KEY=VALUE")
        if has_value:
            out[key] = value
        elif key in os.environ:
            out[key] = os.environ[key]
    return out


def cmd_build(app: Strata, args: argparse.Namespace) -> int:
    mode = "quiet" if args.quiet else args.progress
    if mode == "auto":
        mode = "tty" if sys.stderr.isatty() and os.environ.get("TERM") != "dumb" else "plain"
    renderer: _Renderer
    if mode == "json":
        renderer = _JsonRenderer(sys.stdout)
    elif mode == "tty":
        renderer = _TtyRenderer(sys.stderr)
    elif mode == "quiet":
        renderer = _Renderer()
    else:
        renderer = _PlainRenderer(sys.stderr)
    dockerfile, text = args.file, None
    if args.file == "-":
        dockerfile, text = None, sys.stdin.read()
    cancel = threading.Event()
    try:
        result = app.build(
            args.context,
            dockerfile=dockerfile,
            tags=args.tag,
            build_args=_build_args(args.build_arg),
            target=args.target,
            no_cache=args.no_cache,
            on_event=renderer.handle,
            cancel=cancel,
            dockerfile_text=text,
            network="host" if args.network == "default" else args.network,
            pull=args.pull,
        )
    except BuildError as err:
        renderer.close()
        print(f"Error: {err}", file=sys.stderr)
        return err.exit_status or 1
    except KeyboardInterrupt:
        cancel.set()
        renderer.close()
        raise
    except BaseException:
        renderer.close()
        raise
    renderer.close()
    if mode == "quiet":
        print(result.image_id)
    return 0


def cmd_builder_prune(app: Strata, args: argparse.Namespace) -> int:
    from .confirm import NotConfirmed, confirm, refused

    try:
        confirm("  - all build cache" if args.all else "  - all dangling build cache", args.force)
    except NotConfirmed as e:
        return refused(e)
    report = app.builder_prune(all=args.all)
    if report.layers:
        print("Deleted build cache objects:")
        for layer in report.layers:
            print(layer)
        print()
    print(f"Total reclaimed space: {human_size(report.reclaimed)}")
    return 0


# --- renderers ---------------------------------------------------------------------------------


def _step_title(e: BuildEvent) -> str:
    where = f"{e.stage} {e.step}/{e.total}" if e.stage else f"{e.step}/{e.total}"
    return f"[{where}] {_one_line(e.instruction)}"


def _one_line(text: str, width: int = 0) -> str:
    line = " ".join(text.split())
    if width and len(line) > width:
        return line[: width - 1] + "…"
    return line


class _Renderer:
    """Shows nothing (``-q``); the base of the others."""

    def handle(self, event: BuildEvent) -> None:
        pass

    def close(self) -> None:
        pass


class _JsonRenderer(_Renderer):
    def __init__(self, out: TextIO) -> None:
        self.out = out

    def handle(self, event: BuildEvent) -> None:
        self.out.write(event.to_json_line() + "\n")
        self.out.flush()


class _PlainRenderer(_Renderer):
    """BuildKit's ``--progress=plain``, plus the reason of each cache miss."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.started: dict[int, float] = {}
        self.final_vertex = 0

    def _print(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def handle(self, e: BuildEvent) -> None:
        v = e.vertex
        self.final_vertex = max(self.final_vertex, v)
        if e.status == "cached":
            self._print(f"#{v} {_step_title(e)}")
            self._print(f"#{v} CACHED")
            self._print("")
        elif e.status == "running":
            self.started[v] = time.monotonic()
            self._print(f"#{v} {_step_title(e)}")
            if e.reason:
                self._print(f"#{v} CACHE MISS: {e.reason}")
        elif e.status == "output":
            elapsed = time.monotonic() - self.started.get(v, time.monotonic())
            self._print(f"#{v} {elapsed:.3f} {e.output}")
        elif e.status == "done":
            self._print(f"#{v} DONE {e.duration_s or 0:.1f}s")
            self._print("")
        elif e.status == "error":
            if e.step:
                self._print(f"#{v} ERROR: {e.message}")
        elif e.status == "finished":
            n = self.final_vertex + 1
            self._print(f"#{n} exporting to image")
            self._print(f"#{n} writing image {e.image} done")
            for tag in e.tags:
                self._print(f"#{n} naming to {tag} done")
            self._print(f"#{n} DONE 0.0s")


class _TtyRenderer(_Renderer):
    """A live view: finished steps scroll up, running steps show a timer and their last lines."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.lock = threading.Lock()
        self.start = time.monotonic()
        self.done_steps = 0
        self.total_seen: dict[str, int] = {}
        self.running: dict[int, tuple[BuildEvent, float, list[str]]] = {}
        self.drawn = 0
        self.width = 100
        self.failed_output: list[str] = []
        self._stop = threading.Event()
        self._ticker = threading.Thread(target=self._tick, name="build-progress", daemon=True)
        self._ticker.start()

    def _tick(self) -> None:
        while not self._stop.wait(0.2):
            with self.lock:
                if self.running:
                    self._redraw()

    def _clear(self) -> None:
        if self.drawn:
            self.out.write(f"\x1b[{self.drawn}A\x1b[J")
            self.drawn = 0

    def _redraw(self) -> None:
        try:
            self.width = max(40, os.get_terminal_size(self.out.fileno()).columns)
        except (OSError, ValueError):
            self.width = 100
        self._clear()
        lines = [f"[+] Building {time.monotonic() - self.start:.1f}s ({self.done_steps} steps done)"]
        for e, began, tail in self.running.values():
            lines.append(_one_line(f" => {_step_title(e)}  {time.monotonic() - began:.1f}s", self.width - 1))
            if e.reason:
                lines.append(_one_line(f"    cache miss: {e.reason}", self.width - 1))
            for out in tail[-_TAIL_LINES:]:
                lines.append("\x1b[2m" + _one_line(f"    {out}", self.width - 1) + "\x1b[0m")
        self.out.write("\n".join(lines) + "\n")
        self.out.flush()
        self.drawn = len(lines)

    def _permanent(self, text: str) -> None:
        self._clear()
        self.out.write(_one_line(text, self.width - 1) + "\n")

    def handle(self, e: BuildEvent) -> None:
        with self.lock:
            v = e.vertex
            if e.status == "cached":
                self.done_steps += 1
                self._permanent(f" => CACHED {_step_title(e)}")
            elif e.status == "running":
                self.running[v] = (e, time.monotonic(), [])
            elif e.status == "output" and v in self.running:
                tail = self.running[v][2]
                tail.append(e.output or "")
                del tail[:-200]
            elif e.status == "done":
                began = self.running.pop(v, (e, time.monotonic(), []))[1]
                self.done_steps += 1
                self._permanent(f" => {_step_title(e)}  {time.monotonic() - began:.1f}s")
            elif e.status == "error":
                if v in self.running:
                    _e, _began, tail = self.running.pop(v)
                    self._permanent(f" => ERROR {_step_title(e)}")
                    for out in tail[-20:]:
                        self.out.write(f"    {out}\n")
            elif e.status == "finished":
                self._permanent(f" => writing image {e.image}")
                for tag in e.tags:
                    self._permanent(f" => naming to {tag}")
            self._redraw() if self.running else self.out.flush()

    def close(self) -> None:
        self._stop.set()
        with self.lock:
            self._clear()
            self.out.flush()
