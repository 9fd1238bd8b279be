"""Verbs about images and their files: images, history, inspect, tag, rmi, tree, ls,
import, load, save."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from ..digest import short
from ..errors import ImageNotFound, InvalidArgument
from ..store.index import shown
from .each import each, print_lines
from .format import human_ago, human_size, mode_string, table, truncate

if TYPE_CHECKING:
    from ..api import Strata, TreeNode


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("images", help="list images")
    p.add_argument("-a", "--all", action="store_true")
    p.add_argument("-q", "--quiet", action="store_true", help="only image ids")
    p.add_argument("--no-trunc", action="store_true")
    p.add_argument("--format", help="'json' for one JSON object per line")
    p.set_defaults(func=cmd_images)

    p = sub.add_parser("history", help="show the steps that made an image")
    p.add_argument("image")
    p.add_argument("--no-trunc", action="store_true")
    p.add_argument("-q", "--quiet", action="store_true")
    p.add_argument("-H", "--human", action=argparse.BooleanOptionalAction, default=True)
    p.set_defaults(func=cmd_history)

    p = sub.add_parser("inspect", help="low-level information on images (JSON)")
    p.add_argument("names", nargs="+")
    p.add_argument("--type", choices=["image", "container", "volume"], default=None)
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("tag", help="give an image another name")
    p.add_argument("source")
    p.add_argument("target")
    p.set_defaults(func=cmd_tag)

    p = sub.add_parser("rmi", help="remove images")
    p.add_argument("images", nargs="+")
    p.add_argument("-f", "--force", action="store_true")
    p.set_defaults(func=cmd_rmi)

    p = sub.add_parser("tree", help="the layer tree shared across images")
    p.add_argument("--no-trunc", action="store_true")
    p.set_defaults(func=cmd_tree)

    p = sub.add_parser("ls", help="list the merged files of an image or container")
    p.add_argument("target", help="image or container")
    p.add_argument("path", nargs="?", default="/")
    p.add_argument("-R", "--recursive", action="store_true")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.set_defaults(func=cmd_ls)

    p = sub.add_parser("import", help="make a one-layer image from a root filesystem tarball")
    p.add_argument("file", help="tarball (.tar, .tar.gz, .tar.zst) or - for standard input")
    p.add_argument("reference", nargs="?")
    p.add_argument("-m", "--message", default="")
    p.add_argument("-c", "--change", action="append", default=[], help="Dockerfile instruction to apply (CMD, ENV, …)")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("load", help="load images from a docker-archive or OCI layout")
    p.add_argument("-i", "--input", help="archive file or OCI layout directory (default: standard input)")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=cmd_load)

    p = sub.add_parser("save", help="save images to a docker-archive or OCI layout")
    p.add_argument("images", nargs="+")
    p.add_argument("-o", "--output", help="file to write (default: standard output)")
    p.add_argument("--format", choices=["docker", "oci"], default="docker")
    p.set_defaults(func=cmd_save)


def cmd_images(app: Strata, args: argparse.Namespace) -> int:
    rows = app.images()
    if not args.all:
        # docker hides intermediate images (untagged, and the parent of another image)
        # unless -a asks for them; dangling ones, which nothing builds on, stay listed.
        parents = {app.image(r.id).parent for r in rows}
        rows = [r for r in rows if r.repository != "<none>" or r.id not in parents]
    if args.quiet:
        seen = []
        for r in rows:
            ident = r.id if args.no_trunc else short(r.id)
            if ident not in seen:
                seen.append(ident)
        print("\n".join(seen)) if seen else None
        return 0
    if args.format == "json":
        for r in rows:
            print(
                json.dumps(
                    {
                        "ID": r.id,
                        "Repository": r.repository,
                        "Tag": r.tag,
                        "CreatedAt": r.created,
                        "Size": r.size,
                        "Layers": r.layers,
                    }
                )
            )
        return 0
    print(
        table(
            ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"],
            [
                [r.repository, r.tag, r.id if args.no_trunc else short(r.id), human_ago(r.created), human_size(r.size)]
                for r in rows
            ],
        )
    )
    return 0


def _history_ids(app: Strata, image_id: str, count: int) -> list[str]:
    """The IMAGE column of docker history: the id of each image of the parent chain on
    the row of its newest step, ``<missing>`` for steps no local image ends with."""
    from ..errors import NotFound

    ids = ["<missing>"] * count
    current: str | None = image_id
    while current:
        try:
            image = app.image(current)
        except NotFound:
            break
        row = count - len(app.history(image.id))
        if 0 <= row < count:
            ids[row] = image.id
        current = image.parent
    return ids


def cmd_history(app: Strata, args: argparse.Namespace) -> int:
    image = app.image(args.image)
    rows = app.history(args.image)
    ids = [i if i == "<missing>" or args.no_trunc else short(i) for i in _history_ids(app, image.id, len(rows))]
    if args.quiet:
        print("\n".join(ids)) if ids else None
        return 0
    out = []
    for ident, r in zip(ids, rows, strict=True):
        created_by = r.created_by if args.no_trunc else truncate(r.created_by, 45)
        size = human_size(r.size) if args.human else str(r.size)
        out.append([ident, human_ago(r.created), created_by, size, r.comment])
    print(table(["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"], out))
    return 0


def cmd_inspect(app: Strata, args: argparse.Namespace) -> int:
    results: list[Any] = []
    failed = []
    for name in args.names:
        try:
            results.append(_inspect_one(app, name, args.type))
        except Exception as e:
            from ..errors import StrataError

            if not isinstance(e, StrataError):
                raise
            failed.append(str(e))
    print(json.dumps(results, indent=4, ensure_ascii=False))
    for message in failed:
        print(f"Error: {message}", file=sys.stderr)
    return 1 if failed else 0


def _inspect_one(app: Strata, name: str, kind: str | None) -> Any:
    from ..errors import NotFound

    lookups = []
    if kind in (None, "container") and hasattr(app, "inspect_container"):
        lookups.append(app.inspect_container)
    if kind in (None, "image"):
        lookups.append(app.inspect_image)
    if kind in (None, "volume") and hasattr(app, "inspect_volume"):
        lookups.append(app.inspect_volume)
    last: Exception | None = None
    for lookup in lookups:
        try:
            return lookup(name)
        except NotFound as e:
            last = e
    if last is not None:
        from ..errors import StrataError

        raise StrataError(f"No such object: {name}")
    raise InvalidArgument(f"cannot inspect {name}")


def cmd_tag(app: Strata, args: argparse.Namespace) -> int:
    app.tag(args.source, args.target)
    return 0


def cmd_rmi(app: Strata, args: argparse.Namespace) -> int:
    forgiven = (ImageNotFound,) if args.force else ()
    return each(args.images, lambda name: print_lines(app.rmi([name], force=args.force)), forgiven)


def cmd_tree(app: Strata, args: argparse.Namespace) -> int:
    roots = app.layer_tree()
    if not roots:
        print("(no layers)")
        return 0
    lines: list[str] = []

    def describe(node: TreeNode) -> str:
        ident = node.chain_id if args.no_trunc else short(node.chain_id)
        step = node.created_by or "(no history)"
        if not args.no_trunc:
            step = truncate(step.removeprefix("/bin/sh -c "), 60)
        changes = f"+{node.added} ~{node.modified} -{node.deleted}"
        tags = f"  [{', '.join(node.tags)}]" if node.tags else ""
        return f"{ident}  {human_size(node.size):>8}  {changes:<14} {step}{tags}"

    def walk(node: TreeNode, prefix: str, last: bool, top: bool) -> None:
        if top:
            lines.append(describe(node))
            child_prefix = ""
        else:
            lines.append(prefix + ("└── " if last else "├── ") + describe(node))
            child_prefix = prefix + ("    " if last else "│   ")
        for i, child in enumerate(node.children):
            walk(child, child_prefix, i == len(node.children) - 1, False)

    for root in roots:
        walk(root, "", True, True)
    print("\n".join(lines))
    return 0


def cmd_ls(app: Strata, args: argparse.Namespace) -> int:
    rows = app.ls(args.target, args.path, recursive=args.recursive)
    out = sys.stdout
    if args.json:
        dumps = json.dumps
        out.write("".join(dumps(r.to_json(), ensure_ascii=False) + "\n" for r in rows))
        return 0
    for r in rows:
        shown_link = shown(r.link) if r.link else ""
        link = f" -> {shown_link}" if r.link and r.type == "symlink" else (f" link to {shown_link}" if r.link else "")
        name = shown(r.path if args.recursive else r.path.rsplit("/", 1)[-1] or "/")
        out.write(
            f"{mode_string(r.type, r.mode)} {r.uid:>5} {r.gid:>5} {r.size:>10}  L{r.layer!s:<3} "
            f"{r.status:<8} {name}{link}\n"
        )
    return 0


def cmd_import(app: Strata, args: argparse.Namespace) -> int:
    changes = _parse_changes(args.change)
    image = app.import_rootfs(args.file, args.reference, args.message, changes, stdin=sys.stdin.buffer)
    print(image.id)
    return 0


def _parse_changes(changes: list[str]) -> dict[str, Any]:
    """The subset of Dockerfile instructions `docker import --change` accepts."""
    import shlex

    config: dict[str, Any] = {}
    for change in changes:
        word, _, rest = change.strip().partition(" ")
        word = word.upper()
        rest = rest.strip()

        def cmd_list(text: str, change: str = change) -> list[str]:
            if text.startswith("["):
                try:
                    value = json.loads(text)
                except ValueError:
                    raise InvalidArgument(f"--change {change!r}: invalid JSON") from None
                return [str(v) for v in value]
            return ["/bin/sh", "-c", text]

        if word == "CMD":
            config["Cmd"] = cmd_list(rest)
        elif word == "ENTRYPOINT":
            config["Entrypoint"] = cmd_list(rest)
        elif word == "ENV":
            key, sep, value = rest.partition("=")
            if not sep:
                key, _, value = rest.partition(" ")
            config.setdefault("Env", []).append(f"{key}={value}")
        elif word == "WORKDIR":
            config["WorkingDir"] = rest
        elif word == "USER":
            config["User"] = rest
        elif word == "EXPOSE":
            for port in rest.split():
                config.setdefault("ExposedPorts", {})[port if "/" in port else f"{port}/tcp"] = {}
        elif word == "VOLUME":
            for v in cmd_list(rest) if rest.startswith("[") else rest.split():
                config.setdefault("Volumes", {})[v] = {}
        elif word == "LABEL":
            for item in shlex.split(rest):
                key, _, value = item.partition("=")
                config.setdefault("Labels", {})[key] = value
        elif word == "STOPSIGNAL":
            config["StopSignal"] = rest
        else:
            raise InvalidArgument(f"--change {change!r}: {word} cannot be changed on import")
    return config


def cmd_load(app: Strata, args: argparse.Namespace) -> int:
    def progress(line: str) -> None:
        if not args.quiet:
            print(line, file=sys.stderr)

    if args.input:
        lines = app.load(args.input, progress)
    else:
        if sys.stdin.isatty():
            raise InvalidArgument("requested load from stdin, but stdin is empty; use -i FILE")
        import shutil
        import tempfile

        with tempfile.NamedTemporaryFile(dir=app.store.tmp, prefix="load-stdin-") as tmp:
            shutil.copyfileobj(sys.stdin.buffer, tmp, 1 << 20)
            tmp.flush()
            lines = app.load(tmp.name, progress)
    for line in lines:
        print(line)
    return 0


def cmd_save(app: Strata, args: argparse.Namespace) -> int:
    if args.output:
        app.save(args.images, args.output, args.format)
        return 0
    if sys.stdout.isatty():
        raise InvalidArgument("cowardly refusing to save to a terminal; use -o FILE or redirect")
    import shutil
    import tempfile

    with tempfile.TemporaryDirectory(dir=app.store.tmp, prefix="save-") as tmp:
        path = f"{tmp}/out.tar"
        app.save(args.images, path, args.format)
        with open(path, "rb") as f:
            shutil.copyfileobj(f, sys.stdout.buffer, 1 << 20)
    return 0
