"""Strata builds against Docker's legacy builder (DOCKER_BUILDKIT=0): same Dockerfile, same
context, the same final file tree (``strata ls -R --json`` against ``docker export``) and the
same cache hits after touching, editing, editing an ignored file and changing an ARG."""

from __future__ import annotations

import json
import os
import re
import tarfile
import time
from pathlib import Path

import pytest

from tests.capabilities import require_userns
from tests.fixtures import run_strata
from tests.fixtures.images import BUSYBOX_TAG, docker, docker_export_listing

pytestmark = pytest.mark.docker

FIELDS = ("path", "type", "mode", "uid", "gid", "size", "link")

TREE_DOCKERFILE = f"""\
FROM {BUSYBOX_TAG}
RUN mkdir -p /data/keep /data/gone/sub /data/replaced/sub && echo keep > /data/keep/file.txt \\
 && echo lower > /data/lower.txt && echo bye > /data/gone/sub/file.txt && echo old > /data/replaced/old.txt
RUN rm /data/lower.txt && rm -rf /data/gone
RUN rm -rf /data/replaced && mkdir /data/replaced && echo new > /data/replaced/new.txt
RUN mkdir /links && echo target > /links/target.txt && ln /links/target.txt /links/hard.txt \\
 && ln -s target.txt /links/relative && ln -s /links/target.txt /links/absolute && ln -s /nowhere /links/dangling
COPY dir /copied/
COPY --chown=app:app dir /owned
COPY --chown=1000:1000 a.txt /chowned/deep/
COPY *.txt /multi/
WORKDIR /made/by/workdir
COPY a.txt rel.txt
USER app
RUN touch /tmp/by-app && mkdir /tmp/app-dir
USER root
ARG DEST=/argdest
ENV SUB=envsub
COPY b.txt ${{DEST}}/$SUB/
ADD archive.tar /extracted/
COPY . /whole/
"""

STAGES_DOCKERFILE = f"""\
FROM {BUSYBOX_TAG} AS build
RUN mkdir /out && echo built > /out/artifact && ln -s artifact /out/link && ln /out/artifact /out/again \\
 && mkdir /out/sub && echo s > /out/sub/file && chown -R 101:201 /out/sub && chown 100:200 /out/artifact
COPY dir /out/dir
FROM build AS unused
RUN echo the legacy builder builds every stage > /unused
FROM {BUSYBOX_TAG}
COPY --from=build /out /app/
COPY --from=build /out/artifact /single
COPY --from=build --chown=300:400 /out/sub /chowned/
"""

CACHE_DOCKERFILE = f"""\
FROM {BUSYBOX_TAG}
COPY a.txt /a
COPY dir /dir
ARG V=1
LABEL unrelated=yes
RUN echo $V > /v
COPY b.txt /b
"""


@pytest.fixture
def store(strata_root: Path, busybox_rootfs_tar: Path, docker_busybox: str) -> Path:
    require_userns()
    run_strata("import", busybox_rootfs_tar, BUSYBOX_TAG, check=True)
    return strata_root


@pytest.fixture
def ctx(tmp_path: Path) -> Path:
    root = tmp_path / "ctx"
    (root / "dir" / "sub").mkdir(parents=True)
    (root / "a.txt").write_text("alpha\n")
    (root / "b.txt").write_text("beta\n")
    (root / "dir" / "one.txt").write_text("one\n")
    (root / "dir" / "sub" / "two.txt").write_text("two\n")
    os.chmod(root / "dir" / "sub" / "two.txt", 0o600)
    os.chmod(root / "dir" / "sub", 0o750)
    os.link(root / "dir" / "one.txt", root / "dir" / "one-again.txt")
    os.symlink("one.txt", root / "dir" / "link")
    (root / "ignored.txt").write_text("ignored\n")
    (root / "logs").mkdir()
    (root / "logs" / "drop.log").write_text("x\n")
    (root / "logs" / "keep.log").write_text("y\n")
    (root / ".dockerignore").write_text("ignored.txt\nlogs/*.log\n!logs/keep.log\n")
    payload = root / "payload"
    (payload / "inner").mkdir(parents=True)
    (payload / "inner" / "file.txt").write_text("inside\n")
    os.link(payload / "inner" / "file.txt", payload / "inner" / "hard.txt")
    with tarfile.open(root / "archive.tar", "w") as tar:
        for path in sorted(payload.rglob("*")):
            info = tar.gettarinfo(str(path), arcname=str(path.relative_to(payload)))
            info.uid, info.gid, info.uname, info.gname = 0, 0, "", ""
            if info.isreg():
                with path.open("rb") as fh:
                    tar.addfile(info, fh)
            else:
                tar.addfile(info)
    for path in payload.rglob("*"):
        if path.is_file():
            path.unlink()
    for path in sorted(payload.rglob("*"), reverse=True):
        path.rmdir()
    payload.rmdir()
    return root


def strata_listing(image: str) -> dict[str, dict[str, object]]:
    out = run_strata("ls", "-R", "--json", image, check=True).stdout
    rows = (json.loads(line) for line in out.splitlines())
    return {str(r["path"]): {k: r[k] for k in FIELDS} for r in rows}


def docker_listing(tag: str) -> dict[str, dict[str, object]]:
    return {str(e["path"]): {k: e[k] for k in FIELDS} for e in docker_export_listing(tag)}  # type: ignore[literal-required]


def assert_same_tree(ours: dict[str, dict[str, object]], theirs: dict[str, dict[str, object]]) -> None:
    only_ours = sorted(set(ours) - set(theirs))
    only_theirs = sorted(set(theirs) - set(ours))
    differ = [(ours[p], theirs[p]) for p in sorted(set(ours) & set(theirs)) if ours[p] != theirs[p]]
    assert not only_ours and not only_theirs and not differ, (
        f"only in strata: {only_ours[:10]}\nonly in docker: {only_theirs[:10]}\ndiffering: {differ[:5]}"
    )


def both_build(ctx: Path, dockerfile: str, tag: str, *args: str) -> tuple[list[int], list[int]]:
    """Build with Docker and Strata; the numbers of the steps (after FROM) each took from cache."""
    (ctx / "Dockerfile").write_text(dockerfile)
    proc = docker("build", "--network", "none", "-t", tag, *args, str(ctx), timeout=600)
    theirs: list[int] = []
    step = 0
    for line in proc.stdout.splitlines():
        match = re.match(r"Step (\d+)/\d+ :", line)
        if match:
            step = int(match.group(1))
        elif "Using cache" in line and step > 1:
            theirs.append(step)
    events = run_strata("build", "--progress", "json", "-t", tag, *args, ctx, check=True).stdout
    ours = [
        int(e["step"])
        for e in map(json.loads, events.splitlines())
        if e.get("status") == "cached" and int(e.get("step", 0)) > 1
    ]
    return sorted(set(theirs)), ours


def test_file_trees_match_docker(store: Path, ctx: Path) -> None:
    tag = "strata-test/build-tree:latest"
    both_build(ctx, TREE_DOCKERFILE, tag)
    ours = strata_listing(tag)
    assert_same_tree(ours, docker_listing(tag))
    assert ours["/owned"]["uid"] == 1000 and ours["/tmp/by-app"]["uid"] == 1000
    assert "/data/lower.txt" not in ours and "/whole/ignored.txt" not in ours
    assert "/whole/logs/keep.log" in ours and "/whole/logs/drop.log" not in ours


def test_multi_stage_trees_match_docker(store: Path, ctx: Path) -> None:
    tag = "strata-test/build-stages:latest"
    both_build(ctx, STAGES_DOCKERFILE, tag)
    assert_same_tree(strata_listing(tag), docker_listing(tag))


def test_cache_hits_match_docker(store: Path, ctx: Path) -> None:
    tag = "strata-test/build-cache:latest"
    first = both_build(ctx, CACHE_DOCKERFILE, tag, "--no-cache")
    assert first == ([], [])
    assert both_build(ctx, CACHE_DOCKERFILE, tag) == ([2, 3, 4, 5, 6, 7],) * 2
    stamp = time.time() - 100
    os.utime(ctx / "a.txt", (stamp, stamp))
    touched = both_build(ctx, CACHE_DOCKERFILE, tag)
    assert touched[0] == touched[1]
    (ctx / "dir" / "one.txt").write_text("edited\n")
    edited = both_build(ctx, CACHE_DOCKERFILE, tag)
    assert edited[0] == edited[1] == [2]
    (ctx / "ignored.txt").write_text("edited, but ignored\n")
    ignored = both_build(ctx, CACHE_DOCKERFILE, tag)
    assert ignored[0] == ignored[1] == [2, 3, 4, 5, 6, 7]
    arg = both_build(ctx, CACHE_DOCKERFILE, tag, "--build-arg", "V=2")
    assert arg[0] == arg[1] == [2, 3, 4, 5]
