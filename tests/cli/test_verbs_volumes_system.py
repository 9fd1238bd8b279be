"""The volume verbs (create, ls, inspect, rm, prune) and the system ones (df, prune,
container prune, info) through the real `strata` command: what each keeps and removes,
docker's exit statuses, one ``Error:`` line for every failure.

Whether a prune asks first is tests/cli/test_prune_confirm.py's; here every prune is
given -f and the question is what it removed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.capabilities import require_docker, require_userns
from tests.cli.verbs_kit import FULL_ID, IMAGE, Store, docker_ok, docker_status, new_store, one_error
from tests.fixtures.images import BUSYBOX_TAG

GATED = "while [ ! -e /tmp/go ]; do sleep 0.02; done"


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory, busybox_rootfs_tar: Path) -> Store:
    """Volumes `plain` and `labelled` (a=b), and `used`, which a stopped container mounts;
    the tests that use this store only read it."""
    require_userns()
    store = new_store(tmp_path_factory.mktemp("verbs-volumes") / "root", busybox_rootfs_tar)
    store.ok("volume", "create", "plain")
    store.ok("volume", "create", "--label", "a=b", "--label", "empty=", "labelled")
    store.ok("run", "--name", "mounter", "-v", "used:/data", IMAGE, "sh", "-c", "echo 12345 > /data/f")
    return store


@pytest.fixture
def fresh(tmp_path: Path, busybox_rootfs_tar: Path) -> Store:
    require_userns()
    return new_store(tmp_path / "root", busybox_rootfs_tar)


# --- volume create, ls, inspect ----------------------------------------------------------


def test_volume_create_prints_the_name(fresh: Store) -> None:
    assert fresh.ok("volume", "create", "mine") == "mine\n"
    assert fresh.ok("volume", "create", "mine") == "mine\n"  # an existing one: docker's answer too
    anonymous = fresh.ok("volume", "create").strip()
    assert FULL_ID.fullmatch(anonymous)
    assert sorted(fresh.lines("volume", "ls", "-q")) == sorted(["mine", anonymous])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("bad/name",),
            "invalid volume name 'bad/name': use 2 or more of [a-zA-Z0-9_.-], starting with a letter or digit",
        ),
        (("-d", "nfs", "x1"), "volume driver 'nfs' is not supported; only local"),
        (("-l", "=v", "x2"), "invalid label '=v': use KEY=VALUE"),
    ],
    ids=["bad-name", "driver", "bad-label"],
)
def test_volume_create_errors(shared: Store, args: tuple[str, ...], message: str) -> None:
    before = shared.ok("volume", "ls", "-q")
    assert shared.error("volume", "create", *args) == message
    assert shared.ok("volume", "ls", "-q") == before


def test_volume_ls_and_its_filters(shared: Store) -> None:
    assert shared.lines("volume", "ls") == [
        "DRIVER   VOLUME NAME",
        "local    labelled",
        "local    plain",
        "local    used",
    ]
    assert shared.lines("volume", "ls", "-q") == ["labelled", "plain", "used"]
    assert shared.lines("volume", "ls", "-q", "-f", "label=a=b") == ["labelled"]
    assert shared.lines("volume", "ls", "-q", "-f", "label=a") == ["labelled"]
    assert shared.lines("volume", "ls", "-q", "-f", "label=a=c") == []
    assert shared.lines("volume", "ls", "-q", "-f", "dangling=true") == ["labelled", "plain"]
    assert shared.lines("volume", "ls", "-q", "-f", "dangling=false") == ["used"]
    rows = [json.loads(line) for line in shared.lines("volume", "ls", "--format", "json")]
    assert [(r["Name"], r["Driver"], r["Labels"]) for r in rows] == [
        ("labelled", "local", {"a": "b", "empty": ""}),
        ("plain", "local", {}),
        ("used", "local", {}),
    ]
    assert shared.error("volume", "ls", "-f", "bogus=1") == "invalid filter 'bogus=1': use dangling=… or label=…"
    assert (
        shared.error("volume", "ls", "-f", "dangling=maybe")
        == "invalid filter 'dangling=maybe': dangling takes true or false"
    )


def test_volume_inspect(shared: Store) -> None:
    found = json.loads(shared.ok("volume", "inspect", "labelled", "used"))
    assert [v["Name"] for v in found] == ["labelled", "used"]
    labelled, used = found
    assert (labelled["Driver"], labelled["Labels"], labelled["Scope"], labelled["UsedBy"]) == (
        "local",
        {"a": "b", "empty": ""},
        "local",
        [],
    )
    assert labelled["Mountpoint"] == str(shared.root / "volumes" / "labelled" / "_data")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", labelled["CreatedAt"]), labelled
    assert used["UsedBy"] == ["mounter"]
    # `strata inspect` finds a volume as well
    assert json.loads(shared.ok("inspect", "plain"))[0]["Name"] == "plain"


def test_volume_inspect_of_a_missing_one(shared: Store) -> None:
    done = shared.run("volume", "inspect", "absent")
    assert done.stdout == "[]\n"
    assert one_error(done, 1) == "No such volume: absent"
    done = shared.run("volume", "inspect", "plain", "absent")
    assert [v["Name"] for v in json.loads(done.stdout)] == ["plain"]
    assert one_error(done, 1) == "No such volume: absent"


# --- volume rm, prune --------------------------------------------------------------------


def test_volume_rm(fresh: Store) -> None:
    fresh.ok("volume", "create", "first")
    fresh.ok("volume", "create", "second")
    done = fresh.run("volume", "rm", "first", "absent", "second")
    assert done.stdout == "first\nsecond\n"
    assert one_error(done, 1) == "No such volume: absent"
    assert fresh.ok("volume", "ls", "-q") == ""
    assert fresh.run("volume", "rm", "-f", "absent").returncode == 0


def test_volume_rm_of_a_volume_in_use(fresh: Store) -> None:
    fresh.ok("run", "-d", "--name", "holder", "-v", "held:/d", IMAGE, "sh", "-c", GATED)
    for force in ([], ["-f"]):
        assert (
            fresh.error("volume", "rm", *force, "held") == "volume held is in use by holder; remove those "
            "containers first"
        )
    fresh.ok("rm", "-f", "holder")
    assert fresh.ok("volume", "rm", "held") == "held\n"


def test_volume_prune_removes_unused_anonymous_then_with_all_named(fresh: Store) -> None:
    fresh.ok("volume", "create", "named")
    fresh.ok("run", "--rm", "-v", "kept:/d", IMAGE, "true")
    cid = fresh.ok("run", "-d", "-v", "/anon", IMAGE, "sh", "-c", "echo 12345 > /anon/f").strip()
    fresh.ok("wait", cid)
    anonymous = [v for v in fresh.lines("volume", "ls", "-q") if FULL_ID.fullmatch(v)]
    assert len(anonymous) == 1
    fresh.ok("run", "-d", "--name", "user", "-v", "busy:/d", "-v", "/busy-anon", IMAGE, "sh", "-c", GATED)
    # the stopped container still holds its anonymous volume: nothing anonymous is unused yet
    assert fresh.lines("volume", "prune", "-f") == ["Total reclaimed space: 0B"]
    fresh.ok("rm", cid)
    assert fresh.lines("volume", "prune", "-f") == ["Deleted Volumes:", anonymous[0], "", "Total reclaimed space: 6B"]
    assert fresh.lines("volume", "prune", "-a", "-f") == [
        "Deleted Volumes:",
        "kept",
        "named",
        "",
        "Total reclaimed space: 0B",
    ]
    left = fresh.lines("volume", "ls", "-q")
    assert "busy" in left and len(left) == 2  # the running container's named and anonymous volumes
    fresh.ok("rm", "-f", "user")


# --- system df ---------------------------------------------------------------------------


def test_system_df_counts_what_is_used(shared: Store) -> None:
    rows = {r["TYPE"]: r for r in shared.table("system", "df")}
    assert list(rows) == ["Images", "Containers", "Local Volumes", "Build Cache"]
    counts = {kind: (r["TOTAL"], r["ACTIVE"]) for kind, r in rows.items()}
    assert counts == {
        "Images": ("1", "1"),
        "Containers": ("1", "0"),
        "Local Volumes": ("3", "1"),
        "Build Cache": ("0", "0"),
    }
    assert rows["Local Volumes"]["SIZE"] == "6B"
    assert rows["Local Volumes"]["RECLAIMABLE"] == "0B (0%)"  # the only data is in the used one
    # mounter wrote only into its volume: its own layer is empty
    assert (rows["Containers"]["SIZE"], rows["Containers"]["RECLAIMABLE"]) == ("0B", "0B (0%)")


def test_system_df_verbose_lists_each_thing(shared: Store) -> None:
    text = shared.ok("system", "df", "-v")
    sections = [line for line in text.splitlines() if line.endswith(":") or line.startswith("Build cache usage")]
    assert sections == [
        "Images space usage:",
        "Containers space usage:",
        "Local Volumes space usage:",
        "Build cache usage: 0B",
    ]
    volumes = text.split("Local Volumes space usage:\n\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert volumes == [
        "VOLUME NAME   LINKS   SIZE",
        "labelled      0       0B",
        "plain         0       0B",
        "used          1       6B",
    ]
    containers = text.split("Containers space usage:\n\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert len(containers) == 2 and containers[1].split()[-1] == "mounter"


def test_system_group_without_a_verb_prints_its_help(shared: Store) -> None:
    for group in ("system", "volume", "container", "image"):
        assert shared.ok(group).startswith(f"usage: strata {group} ")


# --- system prune, container prune -------------------------------------------------------


def test_container_prune_removes_stopped_containers_only(fresh: Store) -> None:
    stopped = [fresh.ok("create", IMAGE, "true").strip() for _ in range(2)]
    exited = fresh.ok("run", "-d", IMAGE, "true").strip()
    fresh.ok("wait", exited)
    running = fresh.ok("run", "-d", IMAGE, "sh", "-c", GATED).strip()
    out = fresh.lines("container", "prune", "-f")
    assert out[0] == "Deleted Containers:" and sorted(out[1:4]) == sorted([*stopped, exited])
    assert out[4:] == ["", "Total reclaimed space: 0B"]
    assert fresh.lines("ps", "-a", "-q", "--no-trunc") == [running]
    assert fresh.lines("container", "prune", "-f") == ["Total reclaimed space: 0B"]
    fresh.ok("rm", "-f", running)


def test_system_prune_removes_stopped_dangling_and_with_volumes_anonymous(fresh: Store) -> None:
    base = fresh.inspect(IMAGE, "image")["Id"]
    stopped = fresh.ok("run", "-d", "-v", "/anon", IMAGE, "touch", "/made").strip()
    fresh.ok("wait", stopped)
    dangling = fresh.ok("commit", stopped).strip()
    running = fresh.ok("run", "-d", "-v", "named:/d", IMAGE, "sh", "-c", GATED).strip()
    out = fresh.ok("system", "prune", "-f")
    assert out.startswith(f"Deleted Containers:\n{stopped}\n\nDeleted Images:\ndeleted: {dangling}\n")
    assert re.search(r"\nTotal reclaimed space: \d+(\.\d+)?[kM]?B\n\Z", out), out
    assert fresh.lines("ps", "-a", "-q", "--no-trunc") == [running]
    assert fresh.lines("images", "-a", "-q", "--no-trunc") == [base]
    anonymous = [v for v in fresh.lines("volume", "ls", "-q") if FULL_ID.fullmatch(v)]
    assert len(anonymous) == 1  # without --volumes the anonymous volume stays
    out = fresh.ok("system", "prune", "-f", "--volumes")
    assert f"Deleted Volumes:\n{anonymous[0]}\n" in out
    assert fresh.lines("volume", "ls", "-q") == ["named"]
    # -a: every image no container uses; IMAGE is the running container's
    assert fresh.lines("images", "-q", "--no-trunc") == [base]
    fresh.ok("system", "prune", "-a", "-f")
    assert fresh.lines("images", "-q", "--no-trunc") == [base]
    fresh.ok("rm", "-f", running)
    fresh.ok("system", "prune", "-a", "-f")
    assert fresh.ok("images", "-q") == ""


# --- info --------------------------------------------------------------------------------


def test_info_counts_what_the_store_holds(shared: Store, tmp_path: Path) -> None:
    info = json.loads(shared.ok("info", "--format", "json"))
    assert (info["containers"], info["running"], info["stopped"], info["images"], info["volumes"]) == (1, 0, 1, 1, 3)
    assert info == json.loads(shared.ok("system", "info", "--format", "json"))
    text = shared.lines("info")
    assert text[:4] == ["Client:", f" Version:    {info['version']}", "", "Server:"]
    assert text[4:9] == [" Containers: 1", "  Running: 0", "  Stopped: 1", " Images: 1", " Volumes: 3"]
    assert shared.run("info", "--format", "yaml").returncode != 0


# --- docker, the oracle ------------------------------------------------------------------

USER_IN_DOCKER = "strata-verbs-volume-user"
VOLUME_IN_DOCKER = "strata-verbs-volume"

DOCKER_CASES = [
    pytest.param(("volume", "rm", "strata-verbs-absent"), id="rm-missing"),
    pytest.param(("volume", "rm", "-f", "strata-verbs-absent"), id="rm-force-missing"),
    pytest.param(("volume", "rm", VOLUME_IN_DOCKER), id="rm-in-use"),
    pytest.param(("volume", "inspect", "strata-verbs-absent"), id="inspect-missing"),
    pytest.param(("volume", "create", "bad/name"), id="create-bad-name"),
    pytest.param(("volume", "create", VOLUME_IN_DOCKER), id="create-existing"),
    pytest.param(("volume", "ls", "-f", "bogus=1"), id="ls-bad-filter"),
    pytest.param(
        ("system", "prune", "--bogus"),
        id="system-prune-unknown-flag",
    ),
]


@pytest.fixture(scope="module")
def twins(tmp_path_factory: pytest.TempPathFactory, busybox_rootfs_tar: Path, docker_busybox: str) -> Iterator[Store]:
    """VOLUME_IN_DOCKER, mounted by a stopped container, in Docker and in a store."""
    require_userns()
    store = Store(tmp_path_factory.mktemp("verbs-volumes-docker") / "root")
    store.root.mkdir(mode=0o700)
    store.ok("import", busybox_rootfs_tar, BUSYBOX_TAG)
    docker_status("rm", "-f", USER_IN_DOCKER)
    for run in (store.ok, docker_ok):
        run("create", "--name", USER_IN_DOCKER, "-v", f"{VOLUME_IN_DOCKER}:/d", BUSYBOX_TAG, "true")
    yield store
    docker_status("rm", "-f", USER_IN_DOCKER)
    docker_status("volume", "rm", VOLUME_IN_DOCKER)


@pytest.mark.docker
@pytest.mark.parametrize("words", DOCKER_CASES)
def test_exit_status_is_dockers(twins: Store, words: tuple[str, ...]) -> None:
    require_docker()
    theirs = docker_status(*words)
    ours = twins.run(*words)
    assert ours.returncode == theirs.returncode, (
        f"docker: {theirs.returncode} {theirs.stderr!r}; strata: {ours.returncode} {ours.stderr!r}"
    )
    assert ours.stdout == theirs.stdout
    if "Error" in theirs.stderr:
        one_error(ours, theirs.returncode)
