"""Verbs about containers: create, run, start, stop, kill, rm, ps, logs, exec, wait,
diff, commit, cp."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import TYPE_CHECKING

from ..errors import InvalidArgument
from ..store.index import shown
from .each import each
from .format import human_ago, table, truncate

if TYPE_CHECKING:
    from ..api import Strata
    from ..api.containers import RunOptions


def _run_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--name")
    p.add_argument("-e", "--env", action="append", default=[], help="set an environment variable (K=V)")
    p.add_argument("--env-file", action="append", default=[])
    p.add_argument("-w", "--workdir")
    p.add_argument("-u", "--user")
    p.add_argument("--entrypoint")
    p.add_argument("-i", "--interactive", action="store_true")
    p.add_argument("-t", "--tty", action="store_true")
    p.add_argument("--network", "--net", default="host", help="host (default) or none")
    p.add_argument("-h", "--hostname")
    p.add_argument("-v", "--volume", action="append", default=[], help="NAME:/path[:ro], /host:/path[:ro], or /path")
    p.add_argument("--mount", action="append", default=[], help="type=volume|bind|tmpfs,source=…,target=…")
    p.add_argument("--rm", action="store_true", help="remove the container (and its anonymous volumes) on exit")
    p.add_argument("--privileged", action="store_true", help="every capability, no seccomp filter, nothing masked")
    p.add_argument("--cap-add", action="append", default=[], help="add a Linux capability (NET_ADMIN, ALL …)")
    p.add_argument("--cap-drop", action="append", default=[], help="drop a Linux capability (or ALL)")
    p.add_argument(
        "--security-opt", action="append", default=[], help="seccomp=unconfined|PROFILE.json, no-new-privileges"
    )
    p.add_argument("image")
    p.add_argument("command", nargs=argparse.REMAINDER)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("create", help="create a container", add_help=False)
    p.add_argument("--help", action="help")
    _run_flags(p)
    p.set_defaults(func=cmd_create)

    p = sub.add_parser("run", help="create and start a container", add_help=False)
    p.add_argument("--help", action="help")
    p.add_argument("-d", "--detach", action="store_true")
    _run_flags(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("start", help="start stopped containers")
    p.add_argument("-a", "--attach", action="store_true")
    p.add_argument("-i", "--interactive", action="store_true")
    p.add_argument("containers", nargs="+")
    p.set_defaults(func=cmd_start)

    p = sub.add_parser("stop", help="stop running containers")
    p.add_argument("-t", "--time", type=float, default=10.0)
    p.add_argument("containers", nargs="+")
    p.set_defaults(func=cmd_stop)

    p = sub.add_parser("kill", help="kill running containers")
    p.add_argument("-s", "--signal", default="SIGKILL")
    p.add_argument("containers", nargs="+")
    p.set_defaults(func=cmd_kill)

    p = sub.add_parser("rm", help="remove containers")
    p.add_argument("-f", "--force", action="store_true")
    p.add_argument("-v", "--volumes", action="store_true", help="also remove anonymous volumes")
    p.add_argument("containers", nargs="+")
    p.set_defaults(func=cmd_rm)

    p = sub.add_parser("ps", help="list containers")
    p.add_argument("-a", "--all", action="store_true")
    p.add_argument("-q", "--quiet", action="store_true")
    p.add_argument("--no-trunc", action="store_true")
    p.add_argument("--format")
    p.set_defaults(func=cmd_ps)

    p = sub.add_parser("logs", help="show a container's output")
    p.add_argument("-f", "--follow", action="store_true")
    p.add_argument("container")
    p.set_defaults(func=cmd_logs)

    p = sub.add_parser("exec", help="run a command in a running container", add_help=False)
    p.add_argument("--help", action="help")
    p.add_argument("-i", "--interactive", action="store_true")
    p.add_argument("-t", "--tty", action="store_true")
    p.add_argument("-e", "--env", action="append", default=[])
    p.add_argument("-u", "--user")
    p.add_argument("-w", "--workdir")
    p.add_argument("-d", "--detach", action="store_true")
    p.add_argument("container")
    p.add_argument("command", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_exec)

    p = sub.add_parser("wait", help="wait for containers to stop, print their exit codes")
    p.add_argument("containers", nargs="+")
    p.set_defaults(func=cmd_wait)

    p = sub.add_parser("diff", help="changes in a container's layer (A added, C changed, D deleted)")
    p.add_argument("container")
    p.set_defaults(func=cmd_diff)

    p = sub.add_parser("commit", help="make an image from a container's changes")
    p.add_argument("-m", "--message", default="")
    p.add_argument("-a", "--author", default="")
    p.add_argument("-c", "--change", action="append", default=[])
    p.add_argument("container")
    p.add_argument("reference", nargs="?")
    p.set_defaults(func=cmd_commit)

    p = sub.add_parser("cp", help="copy files between a container and the host")
    p.add_argument("-a", "--archive", action="store_true")
    p.add_argument("-L", "--follow-link", action="store_true")
    p.add_argument("source", help="CONTAINER:PATH or host path (- for a tar on stdin)")
    p.add_argument("dest", help="CONTAINER:PATH or host path (- for a tar on stdout)")
    p.set_defaults(func=cmd_cp)


def _options(args: argparse.Namespace) -> RunOptions:
    from ..api.containers import RunOptions

    env = list(args.env)
    for path in args.env_file:
        try:
            with open(path, encoding="utf-8") as f:
                env += [line.strip() for line in f if line.strip() and not line.startswith("#")]
        except OSError as e:
            raise InvalidArgument(f"--env-file {path}: {e.strerror}") from None
    entrypoint = None
    if args.entrypoint is not None:
        entrypoint = [args.entrypoint] if args.entrypoint else [""]
    return RunOptions(
        cmd=list(args.command) or None,
        entrypoint=entrypoint,
        env=env,
        workdir=args.workdir,
        user=args.user,
        tty=args.tty,
        stdin=args.interactive,
        network=args.network,
        hostname=args.hostname,
        auto_remove=args.rm,
        volumes=list(args.volume),
        mounts=list(args.mount),
        privileged=args.privileged,
        cap_add=list(args.cap_add),
        cap_drop=list(args.cap_drop),
        security_opt=list(args.security_opt),
    )


def cmd_create(app: Strata, args: argparse.Namespace) -> int:
    info = app.create(args.image, _options(args), name=args.name)
    print(info.id)
    return 0


def cmd_run(app: Strata, args: argparse.Namespace) -> int:
    info = app.create(args.image, _options(args), name=args.name, hold=True)
    if args.detach:
        app.start(info.id)
        print(info.id)
        return 0
    stdin = sys.stdin.fileno() if args.interactive else None
    return app.start_attached(info.id, stdin, sys.stdout.fileno(), sys.stderr.fileno())


def cmd_start(app: Strata, args: argparse.Namespace) -> int:
    if args.attach:
        if len(args.containers) != 1:
            raise InvalidArgument("you cannot attach to more than one container")
        stdin = sys.stdin.fileno() if args.interactive else None
        return app.start_attached(args.containers[0], stdin, sys.stdout.fileno(), sys.stderr.fileno())
    return each(args.containers, lambda c: print(c) if app.start(c) else None)


def cmd_stop(app: Strata, args: argparse.Namespace) -> int:
    return each(args.containers, lambda c: (app.stop(c, args.time), print(c)))


def cmd_kill(app: Strata, args: argparse.Namespace) -> int:
    return each(args.containers, lambda c: (app.kill(c, args.signal), print(c)))


def cmd_rm(app: Strata, args: argparse.Namespace) -> int:
    return each(args.containers, lambda c: (app.rm(c, force=args.force, volumes=args.volumes), print(c)))


def cmd_ps(app: Strata, args: argparse.Namespace) -> int:
    rows = app.containers(all=args.all)
    if args.quiet:
        for r in rows:
            print(r.id if args.no_trunc else r.id[:12])
        return 0
    if args.format == "json":
        for r in rows:
            print(
                json.dumps(
                    {
                        "ID": r.id,
                        "Names": r.name,
                        "Image": r.image_ref,
                        "Command": r.command,
                        "State": r.state,
                        "Status": r.status,
                        "ExitCode": r.exit_code,
                    }
                )
            )
        return 0
    out = []
    for r in rows:
        command = r.command if args.no_trunc else truncate(r.command, 20)
        out.append(
            [
                r.id if args.no_trunc else r.id[:12],
                r.image_ref,
                f'"{command}"',
                human_ago(r.created),
                r.status,
                "",
                r.name,
            ]
        )
    print(table(["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"], out))
    return 0


def cmd_logs(app: Strata, args: argparse.Namespace) -> int:
    sys.stdout.flush()
    if args.follow:
        app.follow_logs(args.container, sys.stdout.fileno(), sys.stderr.fileno())
        return 0
    out, err = app.logs(args.container)
    os.write(sys.stdout.fileno(), out) if out else None
    os.write(sys.stderr.fileno(), err) if err else None
    return 0


def cmd_exec(app: Strata, args: argparse.Namespace) -> int:
    stdin = sys.stdin.fileno() if args.interactive else None
    stdio = (stdin, sys.stdout.fileno(), sys.stderr.fileno())
    return app.exec(
        args.container,
        list(args.command),
        env=args.env,
        user=args.user,
        workdir=args.workdir,
        tty=args.tty and not args.detach,
        stdin=args.interactive and not args.detach,
        stdio=stdio,
        detach=args.detach,
    )


def cmd_wait(app: Strata, args: argparse.Namespace) -> int:
    return each(args.containers, lambda c: print(app.wait(c)))


def cmd_diff(app: Strata, args: argparse.Namespace) -> int:
    for change in app.diff(args.container):
        print(f"{change.kind} {shown(change.path)}")
    return 0


def cmd_commit(app: Strata, args: argparse.Namespace) -> int:
    from .image_cmds import _parse_changes

    image = app.commit(
        args.container, args.reference, message=args.message, author=args.author, changes=_parse_changes(args.change)
    )
    print(image.id)
    return 0


def cmd_cp(app: Strata, args: argparse.Namespace) -> int:
    src_c, src_path = _split_cp(args.source)
    dst_c, dst_path = _split_cp(args.dest)
    if (src_c is None) == (dst_c is None):
        raise InvalidArgument("cp copies between a container and the host: give exactly one CONTAINER:PATH")
    cp_in = getattr(app, "cp_in", None)
    cp_out = getattr(app, "cp_out", None)
    if cp_in is None or cp_out is None:
        raise InvalidArgument("cp is not available in this build of strata")
    if dst_c is not None:
        report = cp_in(dst_c, src_path, dst_path, archive=args.archive, follow_link=args.follow_link)
    else:
        assert src_c is not None
        report = cp_out(src_c, src_path, dst_path, archive=args.archive, follow_link=args.follow_link)
    if report.skipped_devices:
        # stderr: with "-" stdout carries the tar stream
        print(_skipped_line(report.skipped_devices, report.why), file=sys.stderr)
    return 0


def _skipped_line(paths: tuple[str, ...], why: str) -> str:
    count = len(paths)
    names = ", ".join(paths[:3]) + (f" and {count - 3} more" if count > 3 else "")
    return f"strata cp: left out {count} device node{'s' if count != 1 else ''} ({names}): {why}"


def _split_cp(spec: str) -> tuple[str | None, str]:
    if spec.startswith(("/", ".")) or ":" not in spec:
        return None, spec
    name, _, path = spec.partition(":")
    if not path:
        raise InvalidArgument(f"{spec}: give a path after the container name")
    return name, path
