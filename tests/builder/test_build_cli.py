"""`strata build` and `strata builder prune` as a user runs them."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from tests.capabilities import require_userns
from tests.fixtures import run_strata
from tests.fixtures.images import BUSYBOX_TAG

FROM = f"FROM {BUSYBOX_TAG}\n"


@pytest.fixture
def store(strata_root: Path, busybox_rootfs_tar: Path) -> Path:
    run_strata("import", busybox_rootfs_tar, BUSYBOX_TAG, check=True)
    return strata_root


@pytest.fixture
def ctx(tmp_path: Path) -> Path:
    path = tmp_path / "ctx"
    path.mkdir()
    (path / "a.txt").write_text("alpha\n")
    (path / "b.txt").write_text("beta\n")
    return path


def events(stdout: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def test_plain_progress_shows_steps_misses_and_hits(store: Path, ctx: Path) -> None:
    (ctx / "Dockerfile").write_text(FROM + "COPY a.txt /\nLABEL a=b\n")
    first = run_strata("build", "--progress", "plain", "-t", "plain:1", ctx, check=True)
    err = first.stderr
    assert f"#1 [1/3] FROM {BUSYBOX_TAG}\n#1 CACHED\n" in err
    assert "#2 [2/3] COPY a.txt /\n#2 CACHE MISS: first build of this step\n" in err
    assert re.search(r"^#2 DONE \d+\.\ds$", err, re.M)
    assert re.search(r"^#4 writing image sha256:[0-9a-f]{64} done$", err, re.M)
    again = run_strata("build", "--progress", "plain", "-t", "plain:1", ctx, check=True)
    assert "#2 [2/3] COPY a.txt /\n#2 CACHED\n" in again.stderr and "#3 CACHED" in again.stderr


def test_json_progress_is_one_object_per_line(store: Path, ctx: Path) -> None:
    (ctx / "Dockerfile").write_text(FROM + "COPY a.txt /\n")
    proc = run_strata("build", "--progress", "json", "-t", "json:1", ctx, check=True)
    lines = events(proc.stdout)
    assert lines[0]["status"] == "cached" and lines[0]["step"] == 1 and lines[0]["total"] == 2
    done = next(e for e in lines if e.get("step") == 2 and e["status"] == "done")
    assert done["instruction"] == "COPY a.txt /" and done["line"] == 2
    assert isinstance(done["duration_s"], float) and done["reason"] == "first build of this step"
    assert lines[-1]["status"] == "done" and lines[-1]["tags"] == ["json:1"]
    assert str(lines[-1]["image"]).startswith("sha256:")
    quiet = run_strata("build", "-q", ctx, check=True)
    assert quiet.stdout.strip() == lines[-1]["image"] and quiet.stderr == ""


def test_bad_dockerfiles_fail_with_their_line(store: Path, ctx: Path) -> None:
    (ctx / "Dockerfile").write_text(FROM + "COPY a.txt /\nFOO bar\n")
    proc = run_strata("build", ctx)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == "Error: Dockerfile:3: unknown instruction: FOO"
    proc = run_strata("build", "--progress", "json", ctx)
    last = events(proc.stdout)[-1]
    assert last == {"status": "error", "line": 3, "message": "Dockerfile:3: unknown instruction: FOO"}
    (ctx / "app.Dockerfile").write_text(FROM + "COPY ../secret /\n")
    proc = run_strata("build", "-f", ctx / "app.Dockerfile", ctx)
    assert proc.stderr.strip() == (  # ../secret is secret: the context is the root, as in BuildKit
        "Error: app.Dockerfile:2: COPY failed: file not found in build context or excluded by .dockerignore: ../secret"
    )
    images = run_strata("images", "-q", check=True).stdout.split()
    assert len(images) == 1  # only the base


def test_custom_dockerfile_build_args_and_stdin(store: Path, ctx: Path) -> None:
    (ctx / "app.Dockerfile").write_text(FROM + "ARG WHERE\nCOPY . /$WHERE/\n")
    (ctx / "app.Dockerfile.dockerignore").write_text("b.txt\n*.Dockerfile*\n")
    env = {**os.environ, "WHERE": "from-env"}
    run_strata("build", "-f", ctx / "app.Dockerfile", "--build-arg", "WHERE", "-t", "args:1", ctx, env=env, check=True)
    listing = run_strata("ls", "-R", "--json", "args:1", "/from-env", check=True).stdout
    assert [json.loads(line)["path"] for line in listing.splitlines()] == ["/from-env", "/from-env/a.txt"]
    proc = run_strata("build", "-f", "-", "-t", "stdin:1", ctx, input=FROM + "LABEL from=stdin\n", check=True)
    assert "naming to stdin:1" in proc.stderr


def test_builder_prune(store: Path, ctx: Path) -> None:
    (ctx / "Dockerfile").write_text(FROM + "COPY a.txt /\n")
    run_strata("build", "-t", "prune:1", ctx, check=True)
    (ctx / "a.txt").write_text("changed\n")
    run_strata("build", "-t", "prune:2", ctx, check=True)
    run_strata("rmi", "prune:1", check=True)
    proc = run_strata("builder", "prune", "-f", check=True)
    assert "Deleted build cache objects:" in proc.stdout and "Total reclaimed space: 6B" in proc.stdout
    assert run_strata("builder", "prune").returncode == 1  # not confirmed
    assert "Total reclaimed space" in run_strata("builder", "prune", "-a", "-f", check=True).stdout


def test_two_dockerfiles_one_trunk_two_branches(store: Path, ctx: Path) -> None:
    require_userns()
    shared = FROM + "RUN echo one > /one\nRUN echo two > /two\n"
    (ctx / "A.Dockerfile").write_text(shared + "COPY a.txt /app/\nRUN cat /app/a.txt\n")
    (ctx / "B.Dockerfile").write_text(shared + "COPY b.txt /app/\nRUN cat /app/b.txt\n")
    run_strata("build", "-f", ctx / "A.Dockerfile", "-t", "app:a", ctx, check=True)
    proc = run_strata("build", "--progress", "json", "-f", ctx / "B.Dockerfile", "-t", "app:b", ctx, check=True)
    lines = events(proc.stdout)
    assert [e["step"] for e in lines if e["status"] == "cached"] == [1, 2, 3]
    assert [e["step"] for e in lines if e["status"] == "done" and "step" in e] == [4, 5]
    assert [e["output"] for e in lines if e["status"] == "output"] == ["beta"]
    tree = run_strata("tree", check=True).stdout.splitlines()
    branches = [line for line in tree if "COPY" in line]
    assert len(branches) == 2 and len({line.index("COPY") for line in branches}) == 1
    assert sum(1 for line in tree if "RUN /bin/sh -c echo one" in line) == 1


def test_failing_run_exits_with_its_code_and_shows_its_output(store: Path, ctx: Path) -> None:
    require_userns()
    (ctx / "Dockerfile").write_text(FROM + "RUN echo visible output && exit 7\n")
    proc = run_strata("build", "--progress", "plain", ctx)
    assert proc.returncode == 7
    assert re.search(r"^#2 \d+\.\d{3} visible output$", proc.stderr, re.M)
    assert "did not complete successfully: exit code: 7" in proc.stderr.splitlines()[-1]
