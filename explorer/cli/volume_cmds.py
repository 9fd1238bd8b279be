"""`strata volume create|ls|inspect|rm|prune`, as docker's."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from ..errors import InvalidArgument, StrataError
from .argv import show_help
from .each import each
from .format import human_size, table

if TYPE_CHECKING:
    from ..api import Strata


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    volume = sub.add_parser("volume", help="manage volumes")
    vsub = volume.add_subparsers(dest="volume_verb", metavar="COMMAND", parser_class=type(volume))
    volume.set_defaults(func=show_help(volume))

    p = vsub.add_parser("create", help="create a volume")
    p.add_argument("name", nargs="?")
    p.add_argument("-l", "--label", action="append", default=[])
    p.add_argument("-d", "--driver", default="local")
    p.set_defaults(func=cmd_create)

    p = vsub.add_parser("ls", help="list volumes")
    p.add_argument("-q", "--quiet", action="store_true")
    p.add_argument("-f", "--filter", action="append", default=[], help="dangling=true|false, label=K[=V]")
    p.add_argument("--format")
    p.set_defaults(func=cmd_ls)

    p = vsub.add_parser("inspect", help="details of volumes (JSON)")
    p.add_argument("names", nargs="+")
    p.set_defaults(func=cmd_inspect)

    p = vsub.add_parser("rm", help="remove volumes")
    p.add_argument("-f", "--force", action="store_true")
    p.add_argument("names", nargs="+")
    p.set_defaults(func=cmd_rm)

    p = vsub.add_parser("prune", help="remove unused anonymous volumes (-a: unused named ones too)")
    p.add_argument("-a", "--all", action="store_true")
    p.add_argument("-f", "--force", action="store_true", help="do not ask for confirmation")
    p.add_argument("--filter", action="append", default=[])
    p.set_defaults(func=cmd_prune)


def _labels(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        key, _, value = item.partition("=")
        if not key:
            raise InvalidArgument(f"invalid label {item!r}: use KEY=VALUE")
        out[key] = value
    return out


def cmd_create(app: Strata, args: argparse.Namespace) -> int:
    if args.driver != "local":
        raise InvalidArgument(f"volume driver {args.driver!r} is not supported; only local")
    info = app.volume_create(args.name, _labels(args.label))
    print(info.name)
    return 0


def cmd_ls(app: Strata, args: argparse.Namespace) -> int:
    dangling: bool | None = None
    labels: list[str] = []
    for f in args.filter:
        key, _, value = f.partition("=")
        if key == "dangling":
            if value.lower() not in ("true", "false", "1", "0"):
                raise InvalidArgument(f"invalid filter {f!r}: dangling takes true or false")
            dangling = value.lower() in ("true", "1")
        elif key == "label":
            labels.append(value)
        else:
            raise InvalidArgument(f"invalid filter {f!r}: use dangling=… or label=…")
    rows = app.volumes(dangling=dangling, labels=labels)
    if args.quiet:
        for r in rows:
            print(r.name)
        return 0
    if args.format == "json":
        for r in rows:
            print(json.dumps({"Name": r.name, "Driver": "local", "Labels": r.labels, "Mountpoint": str(r.mountpoint)}))
        return 0
    print(table(["DRIVER", "VOLUME NAME"], [["local", r.name] for r in rows]))
    return 0


def cmd_inspect(app: Strata, args: argparse.Namespace) -> int:
    out = []
    status = 0
    for name in args.names:
        try:
            out.append(app.inspect_volume(name))
        except StrataError as e:
            print(f"Error: {e}", file=sys.stderr)
            status = 1
    print(json.dumps(out, indent=4))
    return status


def cmd_rm(app: Strata, args: argparse.Namespace) -> int:
    # docker prints every name it did not fail on, also one -f let go of because it was missing
    return each(args.names, lambda name: (app.volume_rm([name], force=args.force), print(name)))


def cmd_prune(app: Strata, args: argparse.Namespace) -> int:
    from .confirm import NotConfirmed, confirm, refused

    what = (
        "  - all volumes not used by at least one container"
        if args.all
        else "  - all anonymous volumes not used by at least one container"
    )
    try:
        confirm(what, args.force)
    except NotConfirmed as e:
        return refused(e)
    removed, freed = app.volume_prune(all=args.all)
    if removed:
        print("Deleted Volumes:")
        for name in removed:
            print(name)
        print()
    print(f"Total reclaimed space: {human_size(freed)}")
    return 0
