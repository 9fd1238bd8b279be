"""`strata system df|prune|check`, `strata image prune`, `strata container prune`."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from ..digest import short
from ..errors import InvalidArgument
from .argv import show_help
from .format import human_ago, human_size, table, truncate

if TYPE_CHECKING:
    from ..api import Strata


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    system = sub.add_parser("system", help="disk usage, clean-up and store checks")
    ssub = system.add_subparsers(dest="system_verb", metavar="COMMAND", parser_class=type(system))
    system.set_defaults(func=show_help(system))

    p = ssub.add_parser("df", help="where the space goes")
    p.add_argument("-v", "--verbose", action="store_true")
    p.set_defaults(func=cmd_df)

    p = ssub.add_parser("prune", help="remove stopped containers, dangling images and build cache")
    p.add_argument("-a", "--all", action="store_true", help="all unused images, not only dangling ones")
    p.add_argument("--volumes", action="store_true", help="prune anonymous volumes too")
    p.add_argument(
        "--quarantine", action="store_true", help="also delete what `system check --repair` set aside under quarantine/"
    )
    p.add_argument("-f", "--force", action="store_true")
    p.set_defaults(func=cmd_system_prune)

    for parent in (ssub, sub):
        p = parent.add_parser("info", help="the storage driver, id mapping and store this Strata uses")
        p.add_argument("-f", "--format", choices=["json"], help="json: one JSON object")
        p.set_defaults(func=cmd_info)

    p = ssub.add_parser("check", help="verify layers, indexes and references against the disk")
    p.add_argument("--repair", action="store_true", help="fix what can be fixed without losing referenced data")
    p.add_argument("--quick", action="store_true", help="skip re-hashing layer content")
    p.set_defaults(func=cmd_check)

    image = sub.add_parser("image", help="manage images")
    isub = image.add_subparsers(dest="image_verb", metavar="COMMAND", parser_class=type(image))
    image.set_defaults(func=show_help(image))
    p = isub.add_parser("prune", help="remove dangling images (-a: every image no container uses)")
    p.add_argument("-a", "--all", action="store_true")
    p.add_argument("-f", "--force", action="store_true")
    p.set_defaults(func=cmd_image_prune)

    container = sub.add_parser("container", help="manage containers")
    csub = container.add_subparsers(dest="container_verb", metavar="COMMAND", parser_class=type(container))
    container.set_defaults(func=show_help(container))
    p = csub.add_parser("prune", help="remove all stopped containers")
    p.add_argument("-f", "--force", action="store_true")
    p.set_defaults(func=cmd_container_prune)


PARTIAL_PULLS = "  - all layers interrupted pulls kept for resuming (no running pull's)"


def _confirm(args: argparse.Namespace, what: str) -> int | None:
    """None to go ahead, else the exit status of a prune the user did not confirm."""
    from .confirm import NotConfirmed, confirm, refused

    try:
        confirm(what, args.force)
    except NotConfirmed as e:
        return refused(e)
    return None


def _pct(part: int, whole: int) -> str:
    return f"{human_size(part)} ({round(100 * part / whole) if whole else 0}%)"


def cmd_df(app: Strata, args: argparse.Namespace) -> int:
    u = app.df()
    active_images = sum(1 for i in u.images if i.containers)
    containers_size = sum(c.size for c in u.containers)
    stopped_size = sum(c.size for c in u.containers if not c.running)
    volumes_size = sum(v.size for v in u.volumes)
    unused_volumes = sum(v.size for v in u.volumes if v.links == 0)
    if not args.verbose:
        print(
            table(
                ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"],
                [
                    [
                        "Images",
                        str(len(u.images)),
                        str(active_images),
                        human_size(u.layers_size),
                        _pct(u.images_reclaimable, u.layers_size),
                    ],
                    [
                        "Containers",
                        str(len(u.containers)),
                        str(sum(1 for c in u.containers if c.running)),
                        human_size(containers_size),
                        _pct(stopped_size, containers_size),
                    ],
                    [
                        "Local Volumes",
                        str(len(u.volumes)),
                        str(sum(1 for v in u.volumes if v.links)),
                        human_size(volumes_size),
                        _pct(unused_volumes, volumes_size),
                    ],
                    [
                        "Build Cache",
                        str(len(u.build_cache)),
                        "0",
                        human_size(u.cache_size),
                        human_size(u.cache_reclaimable),
                    ],
                    *(
                        [
                            [
                                "Quarantine",
                                str(len(u.quarantine)),
                                "0",
                                human_size(u.quarantine_size),
                                human_size(u.quarantine_size),
                            ]
                        ]
                        if u.quarantine
                        else []
                    ),
                    *(
                        [
                            [
                                "Partial Pulls",
                                str(len(u.partial_pulls)),
                                str(sum(1 for p in u.partial_pulls if p.busy)),
                                human_size(u.partial_pulls_size),
                                human_size(u.partial_pulls_reclaimable),
                            ]
                        ]
                        if u.partial_pulls
                        else []
                    ),
                ],
            )
        )
        return 0
    print("Images space usage:\n")
    rows = []
    for i in u.images:
        for tag in i.tags or ["<none>:<none>"]:
            repo, _, t = tag.rpartition(":")
            rows.append(
                [
                    repo,
                    t,
                    short(i.id),
                    human_ago(i.created),
                    human_size(i.size),
                    human_size(i.shared_size),
                    human_size(i.unique_size),
                    str(i.containers),
                ]
            )
    print(table(["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE", "SHARED SIZE", "UNIQUE SIZE", "CONTAINERS"], rows))
    print("\nContainers space usage:\n")
    print(
        table(
            ["CONTAINER ID", "IMAGE", "COMMAND", "LOCAL VOLUMES", "SIZE", "CREATED", "STATUS", "NAMES"],
            [
                [
                    c.id[:12],
                    c.image,
                    f'"{truncate(c.command, 20)}"',
                    str(c.volumes),
                    human_size(c.size),
                    human_ago(c.created),
                    c.status,
                    c.name,
                ]
                for c in u.containers
            ],
        )
    )
    print("\nLocal Volumes space usage:\n")
    print(table(["VOLUME NAME", "LINKS", "SIZE"], [[v.name, str(v.links), human_size(v.size)] for v in u.volumes]))
    print("\nBuild cache usage: " + human_size(u.cache_size) + "\n")
    print(
        table(
            ["CACHE ID", "CACHE TYPE", "SIZE", "CREATED", "LAST USED", "SHARED"],
            [
                [
                    c.key[:12],
                    "regular",
                    human_size(c.size),
                    human_ago(c.created),
                    human_ago(c.last_used),
                    "true" if c.shared else "false",
                ]
                for c in u.build_cache
            ],
        )
    )
    if u.quarantine:
        print("\nQuarantine (set aside by `system check --repair`; `system prune --quarantine` deletes it):\n")
        print(table(["PATH", "ITEMS", "SIZE"], [[q.path, str(q.items), human_size(q.size)] for q in u.quarantine]))
    if u.partial_pulls:
        print("\nPartial pulls (layers kept for a pull to resume; `image prune` or `system prune` deletes them):\n")
        print(
            table(
                ["LAYER", "SIZE", "CREATED", "FROM", "IN USE"],
                [
                    [short(p.chain_id), human_size(p.size), human_ago(p.created), p.source or "-", str(p.busy).lower()]
                    for p in u.partial_pulls
                ],
            )
        )
    return 0


def cmd_system_prune(app: Strata, args: argparse.Namespace) -> int:
    what = [
        "  - all stopped containers",
        "  - all images without at least one container associated to them" if args.all else "  - all dangling images",
        PARTIAL_PULLS,
        "  - all build cache",
    ]
    if args.volumes:
        what.insert(1, "  - all anonymous volumes not used by at least one container")
    if args.quarantine:
        what.append("  - everything `system check --repair` set aside under quarantine/")
    if (stop := _confirm(args, "\n".join(what))) is not None:
        return stop
    total = 0
    removed, freed = app.container_prune()
    total += freed
    if removed:
        print("Deleted Containers:\n" + "\n".join(removed) + "\n")
    if args.volumes:
        vols, freed = app.volume_prune()
        total += freed
        if vols:
            print("Deleted Volumes:\n" + "\n".join(vols) + "\n")
    lines, freed = app.image_prune(all=args.all)
    total += freed
    if lines:
        print("Deleted Images:\n" + "\n".join(lines) + "\n")
    entries, freed = app.cache_prune()
    total += freed
    if entries:
        print(f"Deleted build cache objects: {entries}\n")
    if args.quarantine:
        kept, freed = app.quarantine_prune()
        total += freed
        if kept:
            print("Deleted from quarantine:\n" + "\n".join(kept) + "\n")
    print(f"Total reclaimed space: {human_size(total)}")
    return 0


def cmd_image_prune(app: Strata, args: argparse.Namespace) -> int:
    what = "  - all images without at least one container associated to them" if args.all else "  - all dangling images"
    what += "\n" + PARTIAL_PULLS
    if (stop := _confirm(args, what)) is not None:
        return stop
    lines, freed = app.image_prune(all=args.all)
    if lines:
        print("Deleted Images:\n" + "\n".join(lines) + "\n")
    print(f"Total reclaimed space: {human_size(freed)}")
    return 0


def cmd_container_prune(app: Strata, args: argparse.Namespace) -> int:
    if (stop := _confirm(args, "  - all stopped containers")) is not None:
        return stop
    removed, freed = app.container_prune()
    if removed:
        print("Deleted Containers:\n" + "\n".join(removed) + "\n")
    print(f"Total reclaimed space: {human_size(freed)}")
    return 0


def cmd_check(app: Strata, args: argparse.Namespace) -> int:
    if args.quick and args.repair:
        raise InvalidArgument("--repair needs the full check; drop --quick")
    problems = app.check(repair=args.repair, verify_content=not args.quick)
    if not problems:
        print("The store is consistent: no problems found.")
        return 0
    notes = [p for p in problems if p.note]
    problems = [p for p in problems if not p.note]
    for p in problems:
        state = "repaired" if p.repaired else ("repairable with --repair" if p.repairable else "needs attention")
        print(f"{p.kind:<15} {p.what}: {p.detail} [{state}]")
    for p in notes:
        print(f"{p.kind:<15} {p.what}: {human_size(p.size)}, {p.detail} [note]")
    if not problems:
        print("The store is consistent: no problems found.")
        return 0
    unresolved = [p for p in problems if not p.repaired]
    print(f"{len(problems)} problem(s), {len(problems) - len(unresolved)} repaired.")
    return 1 if unresolved else 0


def _map_text(ranges: list[tuple[int, int, int]]) -> str:
    return ", ".join(
        f"{inside}-{inside + count - 1}→{outside}-{outside + count - 1}" if count > 1 else f"{inside}→{outside}"
        for inside, outside, count in ranges
    )


def cmd_info(app: Strata, args: argparse.Namespace) -> int:
    info = app.info()
    if args.format == "json":
        import json

        print(json.dumps(info.as_json(), indent=2))
        return 0
    lines = [
        "Client:",
        f" Version:    {info.version}",
        "",
        "Server:",
        f" Containers: {info.containers}",
        f"  Running: {info.running}",
        f"  Stopped: {info.stopped}",
        f" Images: {info.images}",
        f" Volumes: {info.volumes}",
        f" Build Cache Entries: {info.build_cache}",
        f" Storage Driver: {info.driver}",
        f"  Backing Filesystem: {info.filesystem}",
        f"  userxattr: {'true' if info.userxattr else 'false'}",
        " Security Options:",
        *(
            f"  {opt.split(',')[0].removeprefix('name=')}"
            + (f" (profile {opt.split('profile=')[1]})" if "profile=" in opt else "")
            for opt in info.security_options
            if "rootless" not in opt
        ),
        *([f"  rootless: id mapping {info.id_mapping}"] if info.rootless else ["  root"]),
        f"  uid map: {_map_text(info.uid_map)}",
        f"  gid map: {_map_text(info.gid_map)}",
        f" Kernel Version: {info.kernel}",
        f" Operating System: {info.operating_system}",
        " OSType: linux",
        f" Architecture: {info.architecture}",
        f" CPUs: {info.cpus}",
        f" Total Memory: {human_size(info.memory)}",
        f" Strata Root Dir: {info.root}",
    ]
    print("\n".join(lines))
    for warning in info.warnings:
        print(f"WARNING: {warning}", file=sys.stderr)
    return 0
