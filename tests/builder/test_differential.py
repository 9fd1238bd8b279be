"""The differential build suite: every case under tests/builder/cases/<area>/<name>/ built by
Strata, checked against the outcome recorded in the case, and (marked ``docker``) built by
Docker's legacy builder and by its BuildKit and compared with Strata's build.

A case is a directory of data (the format, shared by everyone who writes cases):

- ``Dockerfile``, whose ``FROM base`` names the busybox test image (the runner imports
  tests/fixtures' busybox rootfs tar under a tag of its own for each case, in Strata's fresh
  store and in Docker, and writes that tag into the Dockerfile both builders see);
- ``case.json``: ``what`` (one line, and where the case comes from), ``context`` (entries the
  runner makes: file, dir, symlink, hardlink, tar with compression and damage; see
  diffcase.py), ``dockerignore``, ``build_args``, ``target``, ``expect`` (``ok``, ``error``
  — a substring of Strata's one error line —, ``docker_error`` — a substring both Docker
  builders print, where their words are comparable —, ``paths``, ``absent``, ``config``,
  ``same_inode``, ``distinct_inode``), ``rebuild`` (context edits — an edit of the
  ``Dockerfile`` gets the same ``FROM base`` and must keep its instructions on their lines —,
  removals, build args, and ``cached``: one entry per instruction after FROM — FROMs and the
  ARGs before the first FROM are not counted —, null where the instruction is not run) and
  ``docker`` (per builder:
  ``same``, ``differs: why`` — the builder must differ, so a stale note fails —, or
  ``skip: why`` — not compared).

Compared with Docker: success or failure, the final tree's changes over the base (type,
mode, owner, size, link target, content digest of every path that differs from the base,
and the paths removed), the config keys the case names in ``expect.config``, and the cache
hits of each rebuild (on the instructions the builder reports: BuildKit shows no ENV or
LABEL). Every Strata image is also listed with ``strata ls -R --json``, which must agree
with the tree its layers make.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.builder.diffbuild import (
    BUILD_TIMEOUT,
    BUILDERS,
    BuildOutcome,
    DockerBench,
    build_with_strata,
    case_base_tar,
    case_base_tree,
    case_tag,
    session_token,
)
from tests.builder.diffcase import Case, load_cases, slug
from tests.builder.difftree import Tree, changes_over, expectation_failures, tar_tree
from tests.capabilities import is_unprivileged_run, require_docker, require_userns
from tests.fixtures.services import Dockerd

CASES = load_cases()
DOCKER_PARAMS = [
    pytest.param(case, builder, id=f"{case.id}-{builder}")
    for case in CASES
    for builder in BUILDERS
    if not case.docker_note(builder).startswith("skip:")
]


@dataclass
class DiffSession:
    """What the session's tests share: the base tree, Strata's outcomes, Docker's bench.

    Both sides are built ahead in threads as soon as the first test asks (Strata's in two,
    Docker's in the bench's): a test then mostly collects what is ready, and Strata's
    builds run while Docker's do."""

    base_tar: Path
    work: Path
    token: str
    strata_cases: list[Case]
    docker_cases: list[Case]
    bench: DockerBench | None = None
    _base_tree: Tree | None = None
    _strata: dict[str, Future[BuildOutcome]] = field(default_factory=dict)
    _pool: ThreadPoolExecutor | None = None

    @property
    def base_tree(self) -> Tree:
        if self._base_tree is None:
            self._base_tree = tar_tree(self.base_tar)
        return self._base_tree

    def _build(self, case: Case) -> BuildOutcome:
        work = Path(tempfile.mkdtemp(prefix=f"{slug(case.id)}-strata-", dir=self.work))
        base_tar = case_base_tar(self.base_tar, self.work, self.token, case)
        return build_with_strata(case, work, base_tar, case_tag(self.token, case))

    def strata_outcome(self, case: Case) -> BuildOutcome:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="strata-case")
            for queued in self.strata_cases:
                self._strata[queued.id] = self._pool.submit(self._build, queued)
        if case.id not in self._strata:
            self._strata[case.id] = self._pool.submit(self._build, case)
        return self._strata[case.id].result(timeout=20 * BUILD_TIMEOUT)

    def start_docker(self) -> DockerBench | None:
        """Queue every selected Docker comparison, once, if Docker can run here."""
        if self.bench is None and self.docker_cases and not is_unprivileged_run() and Dockerd.status().up:
            self.bench = DockerBench(self.base_tar, self.work, self.token)
            for case in self.docker_cases:
                self.bench.want(case)
        return self.bench

    def close(self) -> None:
        if self._pool is not None:
            for future in self._strata.values():
                future.cancel()
            self._pool.shutdown(wait=True)
        if self.bench is not None:
            self.bench.close()


@pytest.fixture(scope="session")
def diff_session(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, busybox_rootfs_tar: Path
) -> Iterator[DiffSession]:
    for_strata: dict[str, Case] = {}
    for_docker: dict[str, Case] = {}
    for item in request.session.items:
        callspec = getattr(item, "callspec", None)
        if callspec is None or not isinstance(callspec.params.get("case"), Case):
            continue
        case = callspec.params["case"]
        for_strata.setdefault(case.id, case)
        if item.get_closest_marker("docker") is not None:
            for_docker.setdefault(case.id, case)
    session = DiffSession(
        busybox_rootfs_tar,
        tmp_path_factory.mktemp("differential"),
        session_token(),
        list(for_strata.values()),
        list(for_docker.values()),
    )
    yield session
    session.close()


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_case_matches_its_recorded_outcome(diff_session: DiffSession, case: Case) -> None:
    require_userns()
    diff_session.start_docker()
    outcome = diff_session.strata_outcome(case)
    if outcome.ok != case.ok:
        pytest.fail(f"{case.id}: strata build ok={outcome.ok}, want ok={case.ok}\n{outcome.output}", pytrace=False)
    if not case.ok:
        lines = outcome.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: "), f"want one error line, got:\n{outcome.output}"
        assert "Traceback" not in outcome.output and "internal error" not in outcome.output.lower()
        assert case.expect["error"] in lines[0], f"error {lines[0]!r} lacks {case.expect['error']!r}"
        return
    problems = expectation_failures(outcome.tree, outcome.inodes, case.expect)
    for key, want in case.expect.get("config", {}).items():
        if outcome.config.get(key) != want:
            problems.append(f"config {key}: {outcome.config.get(key)!r}, want {want!r}")
    problems += [f"listing: {p}" for p in outcome.listing_problems]
    for i, (rebuild, got) in enumerate(zip(case.rebuilds, outcome.rebuilds, strict=True)):
        if outcome.rebuild_errors[i]:
            problems.append(f"rebuild {i} failed: {outcome.rebuild_errors[i]}")
        elif got != list(rebuild.cached):
            problems.append(f"rebuild {i} cached {got}, want {list(rebuild.cached)}")
    assert not problems, f"{case.id} ({case.what}):\n" + "\n".join(problems)


def differences(session: DiffSession, case: Case, ours: BuildOutcome, theirs: BuildOutcome) -> list[str]:
    """Every way `theirs` (a Docker builder) disagrees with Strata's outcome."""
    name = theirs.builder
    if ours.ok != theirs.ok:
        shown = theirs.error if not theirs.ok else ours.error
        return [f"strata ok={ours.ok}, {name} ok={theirs.ok}: {shown}"]
    out: list[str] = []
    if not ours.ok:
        wanted = case.expect.get("docker_error")
        if wanted and wanted.lower() not in theirs.output.lower():
            out.append(f"{name}'s failure does not say {wanted!r}: {theirs.error}")
        return out
    base = case_base_tree(session.base_tree, session.token, case)
    out += changes_over(base, ours.tree).differences(changes_over(base, theirs.tree), theirs=name)
    for key in case.expect.get("config", {}):
        if ours.config.get(key) != theirs.config.get(key):
            out.append(f"config {key}: strata {ours.config.get(key)!r}, {name} {theirs.config.get(key)!r}")
    for pair in case.expect.get("same_inode", []) + case.expect.get("distinct_inode", []):
        a, b = pair
        if (ours.inodes.get(a) == ours.inodes.get(b)) != (theirs.inodes.get(a) == theirs.inodes.get(b)):
            out.append(f"{a} and {b}: one inode in one image, two in the other")
    for i, (mine, yours) in enumerate(zip(ours.rebuilds, theirs.rebuilds, strict=True)):
        if bool(ours.rebuild_errors[i]) != bool(theirs.rebuild_errors[i]):
            out.append(f"rebuild {i}: strata {ours.rebuild_errors[i]!r}, {name} {theirs.rebuild_errors[i]!r}")
            continue
        both = [(j, a, b) for j, (a, b) in enumerate(zip(mine, yours, strict=True)) if a is not None and b is not None]
        if any(a != b for _, a, b in both):
            out.append(f"rebuild {i} cached: strata {mine}, {name} {yours}")
    return out


@pytest.mark.docker
@pytest.mark.parametrize(("case", "builder"), DOCKER_PARAMS)
def test_case_against_docker(diff_session: DiffSession, case: Case, builder: str) -> None:
    require_docker()
    require_userns()
    bench = diff_session.start_docker()
    assert bench is not None, "Docker is reachable but the differential bench did not start"
    ours = diff_session.strata_outcome(case)
    theirs = bench.outcome(case, builder)
    found = differences(diff_session, case, ours, theirs)
    note = case.docker_note(builder)
    if note == "same":
        assert not found, f"{case.id}: Strata and Docker's {builder} differ ({case.what}):\n" + "\n".join(found)
    else:
        assert found, f"{case.id}: the note {note!r} is stale: Strata and Docker's {builder} now agree"
