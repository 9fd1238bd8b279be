"""Building a differential case: with Strata through the real ``strata`` command on a fresh
store, and with Docker's two builders (``/usr/bin/docker``, DOCKER_BUILDKIT=0 and =1).

Each side gives a `BuildOutcome`: success, its one error line, the final tree (read from the
saved image by difftree), the image config, and for every rebuild which instructions came
from the cache. Docker's outcomes are built in a small thread pool as soon as the session
knows which cases it runs, so Docker works while Strata's builds run (see `DockerBench`).

The base image is the busybox rootfs tar plus one small file (`MARKER`) naming the session
and, for a case with rebuilds, the case; it is imported under a tag saying the same, in
Strata's fresh store and in Docker alike, so both see the same Dockerfile bytes (``COPY .``
copies it). The file is there because BuildKit keys the cache of FROM on the base's
content, not its image id: without it a rebuild's cache hits could come from an earlier
session's run of the case, or from a state another case made. Cases without rebuilds
compare no cache hits and share one base per session, which spares Docker an import each.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import re
import secrets
import shutil
import subprocess
import tarfile
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from explorer.builder.parser import Node as ParsedNode
from explorer.builder.parser import parse
from tests.builder.diffcase import CASE_MTIME, Case, remove_paths, slug, write_context, write_entries
from tests.builder.difftree import Node, Tree, directory_disagreements, image_tree, listing_disagreements
from tests.fixtures import run_strata

DOCKER = "/usr/bin/docker"  # 20.10 with its own BuildKit; /usr/local/bin/docker has no buildx
BUILD_TIMEOUT = 180
BUILDERS = ("legacy", "buildkit")


@dataclass
class BuildOutcome:
    """What one builder made of a case."""

    builder: str
    ok: bool
    output: str  # what the build printed (Strata: stderr; Docker: both streams)
    error: str = ""  # Strata: the one error line; Docker: the last line of its output
    tree: Tree = field(default_factory=dict)
    inodes: dict[str, int] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    rebuilds: list[list[bool | None]] = field(default_factory=list)
    rebuild_errors: list[str] = field(default_factory=list)
    listing_problems: list[str] = field(default_factory=list)


MARKER = "/.strata-diff-base"


def base_key(case: Case) -> str:
    """Which base a case builds on: its own when it has rebuilds, else the session's."""
    return case.id if case.rebuilds else "shared"


def case_base_tar(busybox_tar: Path, work: Path, token: str, case: Case) -> Path:
    """The case's base rootfs tar (see the module docstring), made once per session."""
    dest = work / f"base-{slug(base_key(case))}.tar"
    if dest.exists():
        return dest
    fd, tmp = tempfile.mkstemp(prefix="base-", suffix=".tar", dir=work)
    os.close(fd)
    shutil.copyfile(busybox_tar, tmp)
    data = marker_content(token, case)
    with tarfile.open(tmp, "a") as tar:
        info = tarfile.TarInfo(MARKER.lstrip("/"))
        info.size, info.mode, info.mtime = len(data), 0o644, CASE_MTIME
        tar.addfile(info, io.BytesIO(data))
    os.replace(tmp, dest)
    return dest


def marker_content(token: str, case: Case) -> bytes:
    return f"{token} {base_key(case)}\n".encode()


def case_base_tree(busybox_tree: Tree, token: str, case: Case) -> Tree:
    """The tree of `case_base_tar`: the busybox tree plus the marker file."""
    data = marker_content(token, case)
    marker = Node("file", 0o644, 0, 0, len(data), None, hashlib.sha256(data).hexdigest())
    return {**busybox_tree, MARKER: marker}


def image_tag(base_tag: str, case: Case, builder: str) -> str:
    """The tag Docker's `builder` gives the case's image."""
    return f"{base_tag.rsplit(':', 1)[0]}:{slug(case.id)}-{builder}"[:128]


def case_tag(token: str, case: Case) -> str:
    """The base image's name for `case` in this session (Docker's and Strata's)."""
    return f"strata-diff-{token}/base:{slug(base_key(case))}"


def session_token() -> str:
    return f"{os.getpid()}{secrets.token_hex(3)}"


# --- instruction slots --------------------------------------------------------------------


@dataclass(frozen=True)
class _Stage:
    label: str  # BuildKit's: the AS name, else stage-N
    nodes: tuple[ParsedNode, ...]  # after FROM


def _stages(dockerfile: str) -> tuple[list[ParsedNode], list[_Stage]]:
    nodes = parse(dockerfile).nodes
    stages: list[_Stage] = []
    current: list[ParsedNode] | None = None
    label = ""
    for node in nodes:
        if node.cmd == "from":
            if current is not None:
                stages.append(_Stage(label, tuple(current)))
            words = node.args
            label = words[2].lower() if len(words) >= 3 and words[1].lower() == "as" else f"stage-{len(stages)}"
            current = []
        elif current is not None:
            current.append(node)
    if current is not None:
        stages.append(_Stage(label, tuple(current)))
    return nodes, stages


def _slot_of(lines: Sequence[int]) -> dict[int, int]:
    return {line: i for i, line in enumerate(lines)}


def strata_cached(case: Case, events: Sequence[Mapping[str, Any]]) -> list[bool | None]:
    slots = _slot_of(case.slots())
    out: list[bool | None] = [None] * len(slots)
    for event in events:
        if int(event.get("step", 0)) <= 1 or int(event.get("line", 0)) not in slots:
            continue
        index = slots[int(event["line"])]
        if event["status"] == "cached":
            out[index] = True
        elif event["status"] in ("running", "done") and out[index] is None:
            out[index] = False
    return out


def legacy_cached(case: Case, output: str) -> list[bool | None]:
    nodes, _ = _stages(case.dockerfile)
    slots = _slot_of(case.slots())
    out: list[bool | None] = [None] * len(slots)
    index: int | None = None
    for line in output.splitlines():
        step = re.match(r"Step (\d+)/\d+ : ", line)
        if step:
            node = nodes[int(step.group(1)) - 1]
            index = slots.get(node.start_line)
            if index is not None:
                out[index] = False
        elif index is not None and line.strip() == "---> Using cache":
            out[index] = True
    return out


def buildkit_cached(case: Case, output: str) -> list[bool | None]:
    """From ``--progress=plain``: ``#7 [stage-1 2/3] COPY …`` names a vertex, ``#7 CACHED``
    says it came from the cache. Only instructions that make a vertex appear."""
    _, stages = _stages(case.dockerfile)
    by_label = {s.label: s for s in stages}
    slots = _slot_of(case.slots())
    out: list[bool | None] = [None] * len(slots)
    vertex_slot: dict[str, int] = {}
    taken: set[int] = set()
    for line in output.splitlines():
        head = re.match(r"#(\d+) \[(?:(\S+) )?(\d+)/(\d+)\] (.*)$", line)
        if head:
            vertex, label, i, text = head.group(1), head.group(2), int(head.group(3)), head.group(5)
            if i == 1 or (label is not None and label not in by_label):
                continue
            stage = by_label[label] if label is not None else stages[-1]
            node = _match_node(stage, text, taken)
            if node is not None and node.start_line in slots:
                taken.add(node.start_line)
                vertex_slot[vertex] = slots[node.start_line]
                out[slots[node.start_line]] = False
            continue
        cached = re.match(r"#(\d+) CACHED$", line)
        if cached and cached.group(1) in vertex_slot:
            out[vertex_slot[cached.group(1)]] = True
    return out


def _match_node(stage: _Stage, text: str, taken: set[int]) -> ParsedNode | None:
    wanted = " ".join(text.split())
    free = [n for n in stage.nodes if n.start_line not in taken]
    for node in free:
        if " ".join(node.original.split()) == wanted:
            return node
    keyword = wanted.split(" ", 1)[0].lower()
    for node in free:
        if node.cmd == keyword:
            return node
    return None


# --- Strata -------------------------------------------------------------------------------


def build_with_strata(case: Case, work: Path, base_tar: Path, tag: str) -> BuildOutcome:
    """Build `case` with the real ``strata`` command on a fresh store under `work`.

    Only the builds run as the command; the import before them and the reading of the
    result (save, inspect, ls) go through the API in this process, which spares four
    interpreter starts per case."""
    from explorer.api import Strata

    root = work / "store"
    root.mkdir(mode=0o700)
    with _API_LOCK:
        app = Strata(root)
        try:
            app.import_rootfs(str(base_tar), tag)
        finally:
            app.close()
    ctx = write_context(case, work / "ctx", case.dockerfile_for(tag))
    image = f"strata-diff/{slug(case.id)}:strata"

    def build(args: Mapping[str, str]) -> tuple[subprocess.CompletedProcess[str], list[dict[str, Any]]]:
        proc = run_strata(
            "build", "--progress", "json", "--network", "none", "-t", image, *_build_flags(case, args), ctx,
            root=root, timeout=BUILD_TIMEOUT,
        )  # fmt: skip
        events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
        return proc, events

    proc, _ = build(case.build_args)
    error_lines = [line for line in proc.stderr.splitlines() if line.strip()]
    outcome = BuildOutcome("strata", proc.returncode == 0, proc.stderr, error=" | ".join(error_lines))
    if not outcome.ok:
        return outcome
    archive = work / "image.tar"
    with _API_LOCK:
        _read_result(outcome, root, image, archive)
    for number, rebuild in enumerate(case.rebuilds):
        _edit(case, ctx, number, tag)
        again, events = build(rebuild.build_args)
        outcome.rebuild_errors.append("" if again.returncode == 0 else again.stderr.strip())
        outcome.rebuilds.append(strata_cached(case, events))
    return outcome


# The in-process API calls of the Strata side run one at a time, whatever thread asks:
# the builds themselves are separate processes and run side by side.
_API_LOCK = threading.Lock()


def _read_result(outcome: BuildOutcome, root: Path, image: str, archive: Path) -> None:
    """Fill `outcome` from the built image: its saved layers' tree, its config, and the
    listings, which must agree with that tree and with each other."""
    from explorer.api import Strata

    app = Strata(root)
    try:
        app.save([image], str(archive))
        outcome.config = dict(app.inspect_image(image).get("Config") or {})
        recursive = [row.to_json() for row in app.ls(image, "/", recursive=True)]
        outcome.tree, outcome.inodes = image_tree(archive)
        outcome.listing_problems = listing_disagreements(outcome.tree, recursive)
        outcome.listing_problems += directory_disagreements(
            recursive, lambda path: [row.to_json() for row in app.ls(image, path)]
        )
    finally:
        app.close()


def _build_flags(case: Case, build_args: Mapping[str, str]) -> list[str]:
    flags: list[str] = []
    for key, value in build_args.items():
        flags += ["--build-arg", f"{key}={value}"]
    if case.target:
        flags += ["--target", case.target]
    return flags


def _edit(case: Case, ctx: Path, number: int, tag: str) -> None:
    """Apply rebuild `number`'s changes; what it writes gets the current time as its mtime
    unless the case names one (an edit backdated to an mtime the file never had can go unseen
    by Docker 20.10's BuildKit, whose context transfer compares stat data). An edit of
    the Dockerfile is written as the case's Dockerfile is: with ``FROM base`` naming `tag`."""
    rebuild = case.rebuilds[number]
    remove_paths(ctx, rebuild.remove)
    edit = [
        {**entry, "content": dataclasses.replace(case, dockerfile=str(entry["content"])).dockerfile_for(tag)}
        if entry["path"].strip("/") == "Dockerfile" and "content" in entry
        else entry
        for entry in rebuild.edit
    ]
    write_entries(ctx, edit, default_mtime=int(time.time()) + number)


def _config(inspect_json: str) -> dict[str, Any]:
    config = json.loads(inspect_json)[0].get("Config") or {}
    return dict(config)


# --- Docker -------------------------------------------------------------------------------


def _docker(*args: str, buildkit: bool = False, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DOCKER_BUILDKIT": "1" if buildkit else "0"}
    return subprocess.run(
        [DOCKER, *args], capture_output=True, text=True, env=env, timeout=timeout, stdin=subprocess.DEVNULL
    )


def build_with_docker(case: Case, builder: str, work: Path, tag: str) -> BuildOutcome:
    """Build `case` with one of Docker's builders; the base `tag` must be imported already."""
    buildkit = builder == "buildkit"
    ctx = write_context(case, work / f"ctx-{builder}", case.dockerfile_for(tag))
    image = image_tag(tag, case, builder)
    flags = ["build", "--network", "none", "-t", image, *_build_flags(case, case.build_args)]
    flags += ["--progress=plain"] if buildkit else ["--force-rm"]

    def build(args: list[str]) -> subprocess.CompletedProcess[str]:
        return _docker(*args, str(ctx), buildkit=buildkit, timeout=BUILD_TIMEOUT)

    proc = build(flags)
    output = proc.stdout + proc.stderr
    last = [line for line in output.splitlines() if line.strip()]
    outcome = BuildOutcome(builder, proc.returncode == 0, output, error=last[-1] if last else "")
    if not outcome.ok:
        return outcome
    archive = work / f"image-{builder}.tar"
    saved = _docker("save", "-o", str(archive), image)
    if saved.returncode != 0:
        raise RuntimeError(f"docker save {image}: {saved.stderr.strip()}")
    outcome.tree, outcome.inodes = image_tree(archive)
    archive.unlink()
    if buildkit:
        _drop_mount_stubs(outcome.tree)
    if case.expect.get("config"):  # only its keys are compared
        outcome.config = _config(_docker("image", "inspect", image).stdout)
    for number, rebuild in enumerate(case.rebuilds):
        _edit(case, ctx, number, tag)
        again_flags = ["build", "--network", "none", "-t", image, *_build_flags(case, rebuild.build_args)]
        again_flags += ["--progress=plain"] if buildkit else ["--force-rm"]
        again = build(again_flags)
        text = again.stdout + again.stderr
        outcome.rebuild_errors.append("" if again.returncode == 0 else text.strip().splitlines()[-1])
        outcome.rebuilds.append(buildkit_cached(case, text) if buildkit else legacy_cached(case, text))
    return outcome


# Empty directories Docker 20.10's BuildKit leaves in a RUN step's layer where it mounted
# /dev, /proc and /sys and the image had no such directory. Current BuildKit removes them
# after the step (moby/buildkit executor/stubs.go, since v0.12), so they are not compared.
_MOUNT_STUBS = ("/dev", "/proc", "/sys")


def _drop_mount_stubs(tree: Tree) -> None:
    for stub in _MOUNT_STUBS:
        node = tree.get(stub)
        if node is not None and node.type == "dir" and not any(p.startswith(stub + "/") for p in tree):
            del tree[stub]


class DockerBench:
    """Docker's outcomes for the session's cases, built ahead in a few threads.

    `want` queues cases (in the order the tests will ask); `outcome` waits for one. Images
    and base tags made here are removed by `close`.
    """

    def __init__(self, base_tar: Path, work: Path, token: str, workers: int = 3) -> None:
        self.base_tar = base_tar
        self.work = work
        self.token = token
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="docker-case")
        self._futures: dict[tuple[str, str], Future[BuildOutcome]] = {}
        self._bases: dict[str, Future[str]] = {}
        self._lock = threading.Lock()
        self._tags: list[str] = []

    def want(self, case: Case) -> None:
        with self._lock:
            for builder in BUILDERS:
                key = (case.id, builder)
                if key in self._futures or case.docker_note(builder).startswith("skip:"):
                    continue
                self._futures[key] = self._pool.submit(self._run, case, builder)

    def outcome(self, case: Case, builder: str) -> BuildOutcome:
        self.want(case)
        return self._futures[(case.id, builder)].result(timeout=4 * BUILD_TIMEOUT)

    def _base(self, case: Case) -> str:
        with self._lock:
            future = self._bases.get(base_key(case))
            if future is None:
                future = Future()
                self._bases[base_key(case)] = future
                mine = True
            else:
                mine = False
        if mine:
            tag = case_tag(self.token, case)
            try:
                base_tar = case_base_tar(self.base_tar, self.work, self.token, case)
                proc = _docker("import", str(base_tar), tag)
                if proc.returncode != 0:
                    raise RuntimeError(f"docker import {tag}: {proc.stderr.strip()}")
                with self._lock:
                    self._tags.append(tag)
                future.set_result(tag)
            except BaseException as err:
                future.set_exception(err)
                raise
        return future.result()

    def _run(self, case: Case, builder: str) -> BuildOutcome:
        tag = self._base(case)
        work = Path(tempfile.mkdtemp(prefix=f"{slug(case.id)}-{builder}-", dir=self.work))
        with self._lock:
            self._tags.append(image_tag(tag, case, builder))
        return build_with_docker(case, builder, work, tag)

    def close(self) -> None:
        for future in self._futures.values():
            future.cancel()
        self._pool.shutdown(wait=True)
        built = [t for t in self._tags if t.endswith(("-legacy", "-buildkit"))]
        bases = [t for t in self._tags if t not in built]
        for group in (built, bases):
            if group:
                _docker("rmi", "--force", *group, timeout=300)
