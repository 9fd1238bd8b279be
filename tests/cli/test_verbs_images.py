"""The image verbs through the real `strata` command: images (-q, -a, --no-trunc),
history, inspect (images and containers, JSON), tag, rmi and image prune, with docker's
exit statuses and one ``Error:`` line for every failure."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.capabilities import require_docker, require_userns
from tests.cli.verbs_kit import IMAGE, IMAGE_ID, SHORT_AGE, Store, docker_ok, docker_status, new_store, one_error
from tests.fixtures.images import BUSYBOX_TAG

CHILD = "test/child:1"
ALIAS = "test/alias:1"


def short(image_id: str) -> str:
    return image_id.removeprefix("sha256:")[:12]


def mb(size: int) -> str:
    """docker's HumanSize of a size in the megabytes (a busybox image is about 2MB)."""
    return f"{size / 1e6:.3g}MB"


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory, busybox_rootfs_tar: Path) -> Store:
    """IMAGE (also tagged ALIAS) and CHILD, committed from a container of IMAGE; the tests
    that use this store only read it."""
    require_userns()
    store = new_store(tmp_path_factory.mktemp("verbs-images") / "root", busybox_rootfs_tar)
    store.ok("tag", IMAGE, ALIAS)
    store.ok("run", "--name", "maker", IMAGE, "sh", "-c", "echo child > /child")
    store.ok("commit", "-m", "made by a test", "maker", CHILD)
    return store


@pytest.fixture
def fresh(tmp_path: Path, busybox_rootfs_tar: Path) -> Store:
    require_userns()
    return new_store(tmp_path / "root", busybox_rootfs_tar)


def ids(store: Store) -> tuple[str, str]:
    """The full ids of IMAGE and CHILD."""
    return store.inspect(IMAGE, "image")["Id"], store.inspect(CHILD, "image")["Id"]


def child_of(store: Store, base: str, ref: str | None = None) -> str:
    """A new image committed from a container of `base` (then removed): its id."""
    cid = store.ok("run", "-d", base, "touch", "/made").strip()
    store.ok("wait", cid)
    image = store.ok("commit", cid, *([ref] if ref else [])).strip()
    store.ok("rm", cid)
    return image


# --- images ------------------------------------------------------------------------------


def test_images_lists_every_tag_newest_first(shared: Store) -> None:
    base, child = ids(shared)
    assert shared.lines("images")[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    rows = shared.table("images")
    assert [(r["REPOSITORY"], r["TAG"], r["IMAGE ID"]) for r in rows] == [
        ("test/child", "1", short(child)),
        ("test/alias", "1", short(base)),
        ("test/busybox", "1", short(base)),
    ]
    assert all(re.fullmatch(f"{SHORT_AGE} ago", r["CREATED"]) for r in rows), rows
    assert rows[2]["SIZE"] == mb(shared.inspect(IMAGE, "image")["Size"])


def test_images_quiet_prints_each_id_once(shared: Store) -> None:
    base, child = ids(shared)
    assert shared.lines("images", "-q") == [short(child), short(base)]
    assert shared.lines("images", "-q", "--no-trunc") == [child, base]
    assert [r["IMAGE ID"] for r in shared.table("images", "--no-trunc")] == [child, base, base]


def test_images_json_lines(shared: Store) -> None:
    base, child = ids(shared)
    rows = [json.loads(line) for line in shared.lines("images", "--format", "json")]
    assert [(r["ID"], r["Repository"], r["Tag"], r["Layers"]) for r in rows] == [
        (child, "test/child", "1", 2),
        (base, "test/alias", "1", 1),
        (base, "test/busybox", "1", 1),
    ]


def test_images_all_shows_intermediate_images(fresh: Store) -> None:
    """An untagged image another image was made from is an intermediate one: docker lists
    it only with -a. An untagged image nothing was made from (dangling) is always listed."""
    base = fresh.inspect(IMAGE, "image")["Id"]
    middle = child_of(fresh, IMAGE)
    top = child_of(fresh, middle, "test/top:1")
    dangling = child_of(fresh, IMAGE)
    assert set(fresh.lines("images", "-q", "--no-trunc")) == {base, top, dangling}
    assert set(fresh.lines("images", "-a", "-q", "--no-trunc")) == {base, middle, top, dangling}
    listed = {r["IMAGE ID"]: (r["REPOSITORY"], r["TAG"]) for r in fresh.table("images", "-a")}
    assert listed[short(middle)] == listed[short(dangling)] == ("<none>", "<none>")
    assert short(middle) not in {r["IMAGE ID"] for r in fresh.table("images")}


# --- history -----------------------------------------------------------------------------


def test_history_shows_each_step_newest_first(shared: Store, busybox_rootfs_tar: Path) -> None:
    base, child = ids(shared)
    assert shared.lines("history", CHILD)[0].split() == ["IMAGE", "CREATED", "CREATED", "BY", "SIZE", "COMMENT"]
    rows = shared.table("history", CHILD)
    assert [(r["IMAGE"], r["CREATED BY"], r["SIZE"], r["COMMENT"]) for r in rows] == [
        (short(child), "sh -c echo child > /child", "6B", "made by a test"),
        (short(base), "", mb(shared.inspect(IMAGE, "image")["Size"]), f"Imported from {busybox_rootfs_tar}"),
    ]
    assert all(re.fullmatch(f"{SHORT_AGE} ago", r["CREATED"]) for r in rows), rows


def test_history_quiet_no_trunc_and_bytes(shared: Store) -> None:
    base, child = ids(shared)
    # The row of a step another local image ends with names that image, as docker's does.
    assert shared.lines("history", "-q", CHILD) == [short(child), short(base)]
    assert shared.lines("history", "-q", "--no-trunc", CHILD) == [child, base]
    assert shared.lines("history", "-q", IMAGE) == [short(base)]
    assert [r["SIZE"] for r in shared.table("history", "--no-human", CHILD)] == [
        "6",
        str(shared.inspect(IMAGE, "image")["Size"]),
    ]
    assert shared.table("history", "--no-trunc", CHILD)[0]["IMAGE"] == child


def test_history_truncates_long_steps(fresh: Store) -> None:
    script = "echo one two three four five six seven eight nine ten > /f"
    cid = fresh.ok("run", "-d", IMAGE, "sh", "-c", script).strip()
    fresh.ok("wait", cid)
    fresh.ok("commit", cid, "test/long:1")
    rows = fresh.table("history", "test/long:1")
    assert rows[0]["CREATED BY"] == ("sh -c " + script)[:44] + "…"
    assert fresh.table("history", "--no-trunc", "test/long:1")[0]["CREATED BY"] == "sh -c " + script


def test_history_of_a_missing_image(shared: Store) -> None:
    assert shared.error("history", "test/absent:1") == "No such image: test/absent:1"


# --- inspect -----------------------------------------------------------------------------


def test_inspect_an_image(shared: Store) -> None:
    base, child = ids(shared)
    found = json.loads(shared.ok("inspect", CHILD))
    assert len(found) == 1
    image = found[0]
    assert (image["Id"], image["RepoTags"], image["Parent"], image["Comment"]) == (
        child,
        [CHILD],
        base,
        "made by a test",
    )
    assert image["RootFS"]["Type"] == "layers" and len(image["RootFS"]["Layers"]) == 2
    assert json.loads(shared.ok("inspect", short(base)))[0]["RepoTags"] == sorted([IMAGE, ALIAS])
    assert json.loads(shared.ok("inspect", "--type", "image", base))[0]["Id"] == base


def test_inspect_a_container(shared: Store) -> None:
    container = shared.inspect("maker")
    assert (container["Name"], container["Path"], container["Args"]) == ("/maker", "sh", ["-c", "echo child > /child"])
    assert (container["State"]["Status"], container["State"]["ExitCode"]) == ("exited", 0)
    assert container["Image"] == ids(shared)[0]


def test_inspect_several_keeps_order_and_reports_the_missing(shared: Store) -> None:
    base, child = ids(shared)
    done = shared.run("inspect", CHILD, "test/absent:1", IMAGE)
    assert [o["Id"] for o in json.loads(done.stdout)] == [child, base]
    assert one_error(done, 1) == "No such object: test/absent:1"


@pytest.mark.parametrize(
    "args",
    [("absent",), ("--type", "image", "absent"), ("--type", "container", IMAGE), ("--type", "image", "maker")],
    ids=["any", "image", "image-as-container", "container-as-image"],
)
def test_inspect_of_nothing_is_an_empty_list_and_one_error(shared: Store, args: tuple[str, ...]) -> None:
    done = shared.run("inspect", *args)
    assert done.stdout == "[]\n"
    assert one_error(done, 1) == f"No such object: {args[-1]}"


# --- tag, rmi ----------------------------------------------------------------------------


def test_tag_adds_a_name_and_moves_an_existing_one(fresh: Store) -> None:
    base = fresh.inspect(IMAGE, "image")["Id"]
    assert fresh.run("tag", IMAGE, "test/other:2").stdout == ""
    other = child_of(fresh, IMAGE, "test/moved:1")
    fresh.ok("tag", IMAGE, "test/moved:1")
    names = {(r["REPOSITORY"], r["TAG"]): r["IMAGE ID"] for r in fresh.table("images")}
    assert names == {
        ("test/busybox", "1"): short(base),
        ("test/other", "2"): short(base),
        ("test/moved", "1"): short(base),
        ("<none>", "<none>"): short(other),
    }
    assert fresh.ok("tag", short(base), "plain") == ""
    assert fresh.inspect("plain:latest", "image")["Id"] == base


@pytest.mark.parametrize(
    ("source", "target", "message"),
    [
        ("test/absent:1", "test/x:1", "No such image: test/absent:1"),
        (IMAGE, "Upper:1", "invalid reference format 'Upper:1': repository name must be lowercase"),
    ],
    ids=["no-source", "bad-target"],
)
def test_tag_errors(shared: Store, source: str, target: str, message: str) -> None:
    assert shared.error("tag", source, target) == message


def test_rmi_untags_then_deletes(fresh: Store) -> None:
    base = fresh.inspect(IMAGE, "image")["Id"]
    layer = fresh.inspect(IMAGE, "image")["RootFS"]["Layers"][0]
    fresh.ok("tag", IMAGE, ALIAS)
    assert fresh.lines("rmi", ALIAS) == [f"Untagged: {ALIAS}"]
    assert fresh.lines("images", "-q", "--no-trunc") == [base]
    assert fresh.lines("rmi", IMAGE) == [f"Untagged: {IMAGE}", f"Deleted: {base}", f"Deleted: {layer}"]
    assert fresh.ok("images", "-q") == ""


def test_rmi_refuses_an_image_in_use_or_named_twice(fresh: Store) -> None:
    base = fresh.inspect(IMAGE, "image")["Id"]
    fresh.ok("tag", IMAGE, ALIAS)
    assert fresh.error("rmi", short(base)) == (
        f"image {short(base)} is in use by {ALIAS}, {IMAGE}; it is referenced "
        "in multiple repositories; remove by name or use -f"
    )
    fresh.ok("rmi", ALIAS)
    cid = fresh.ok("create", "--name", "user", IMAGE, "true").strip()
    assert fresh.error("rmi", IMAGE) == (
        f"image {short(base)} is in use by container {cid[:12]} (user); remove the containers first"
    )
    assert fresh.lines("images", "-q", "--no-trunc") == [base]


def test_rmi_goes_on_past_a_missing_name(fresh: Store) -> None:
    fresh.ok("tag", IMAGE, ALIAS)
    done = fresh.run("rmi", ALIAS, "test/absent:1", IMAGE)
    assert done.stdout.splitlines()[:2] == [f"Untagged: {ALIAS}", f"Untagged: {IMAGE}"]
    assert one_error(done, 1) == "No such image: test/absent:1"
    assert fresh.ok("images", "-q") == ""


def test_rmi_force_untags_an_image_a_stopped_container_uses(fresh: Store) -> None:
    """Docker also drops the image record and keeps only its layers for the container;
    a strata container's layers are its image's, so the image stays, untagged, while a
    container uses it, and the container still starts. Its removal leaves the image
    dangling for ``image prune``."""
    base = fresh.inspect(IMAGE, "image")["Id"]
    fresh.ok("create", "--name", "user", IMAGE, "true")
    assert fresh.lines("rmi", "-f", IMAGE) == [f"Untagged: {IMAGE}"]
    assert fresh.lines("images", "-a", "-q", "--no-trunc") == [base]
    assert fresh.run("start", "-a", "user").returncode == 0
    assert fresh.error("rmi", "-f", base) == (
        f"image {short(base)} is in use by container {fresh.inspect('user')['Id'][:12]} (user); "
        "remove the containers first"
    )
    fresh.ok("rm", "user")
    assert fresh.lines("image", "prune", "-f")[:2] == ["Deleted Images:", f"deleted: {base}"]


def test_rmi_force_by_name_untags_that_name_only(fresh: Store) -> None:
    base = fresh.inspect(IMAGE, "image")["Id"]
    fresh.ok("tag", IMAGE, ALIAS)
    fresh.ok("create", IMAGE, "true")
    assert fresh.lines("rmi", "-f", ALIAS) == [f"Untagged: {ALIAS}"]
    assert fresh.inspect(base, "image")["RepoTags"] == [IMAGE]


def test_rmi_deletes_untagged_parents_nothing_else_uses(fresh: Store) -> None:
    base = fresh.inspect(IMAGE, "image")["Id"]
    middle = child_of(fresh, IMAGE)
    top = child_of(fresh, middle, "test/top:1")
    out = fresh.lines("rmi", "test/top:1")
    # each image, then its own layer
    assert [out[0], out[1], out[3]] == ["Untagged: test/top:1", f"Deleted: {top}", f"Deleted: {middle}"]
    assert len(out) == 5 and all(IMAGE_ID.fullmatch(line.removeprefix("Deleted: ")) for line in out[1:])
    assert fresh.lines("images", "-a", "-q", "--no-trunc") == [base]


def test_rmi_keeps_parents_that_are_tagged_used_or_shared(fresh: Store) -> None:
    tagged = child_of(fresh, IMAGE, "test/tagged:1")
    used = child_of(fresh, IMAGE)
    shared = child_of(fresh, IMAGE)
    tops = [child_of(fresh, parent, f"test/top:{n}") for n, parent in enumerate((tagged, used, shared, shared))]
    fresh.ok("create", used, "true")
    for n in range(3):
        fresh.ok("rmi", f"test/top:{n}")
    left = set(fresh.lines("images", "-a", "-q", "--no-trunc"))
    assert {tagged, used, shared, tops[3]} <= left and not set(tops[:3]) & left


# --- image prune -------------------------------------------------------------------------


def test_image_prune_removes_dangling_images_only(fresh: Store) -> None:
    base = fresh.inspect(IMAGE, "image")["Id"]
    dangling = child_of(fresh, IMAGE)
    out = fresh.lines("image", "prune", "-f")
    assert out[:2] == ["Deleted Images:", f"deleted: {dangling}"]
    assert re.fullmatch(r"Total reclaimed space: \d+(\.\d+)?[kM]?B", out[-1]), out
    assert fresh.lines("images", "-a", "-q", "--no-trunc") == [base]
    assert fresh.lines("image", "prune", "-f") == ["Total reclaimed space: 0B"]


def test_image_prune_all_keeps_what_containers_use(fresh: Store) -> None:
    used = child_of(fresh, IMAGE, "test/used:1")
    spare = child_of(fresh, IMAGE, "test/spare:1")
    fresh.ok("create", "test/used:1", "true")
    out = fresh.ok("image", "prune", "-a", "-f")
    assert f"untagged: test/spare:1\ndeleted: {spare}\n" in out
    left = fresh.lines("images", "-a", "-q", "--no-trunc")
    # Whether IMAGE, the parent of test/used:1, stays is not asked: docker keeps a parent
    # only where the parent link exists (commit, the legacy builder), not for BuildKit's images.
    assert used in left and spare not in left


def test_image_prune_usage(shared: Store) -> None:
    done = shared.run("image", "prune", "--bogus")
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert shared.ok("image").startswith("usage: strata image")


# --- docker, the oracle ------------------------------------------------------------------

USED_IN_DOCKER = "strata-verbs/used:1"
USER_IN_DOCKER = "strata-verbs-image-user"

DOCKER_CASES = [
    pytest.param(("history", "strata-verbs/absent:1"), id="history-no-image"),
    pytest.param(("tag", "strata-verbs/absent:1", "strata-verbs/x:1"), id="tag-no-image"),
    pytest.param(("tag", USED_IN_DOCKER, "Upper:1"), id="tag-bad-target"),
    pytest.param(("rmi", "strata-verbs/absent:1"), id="rmi-no-image"),
    pytest.param(("rmi", USED_IN_DOCKER), id="rmi-in-use"),
    pytest.param(("inspect", "strata-verbs/absent:1"), id="inspect-nothing"),
    pytest.param(("inspect", "--type", "image", "strata-verbs/absent:1"), id="inspect-no-image"),
    pytest.param(("inspect", "--type", "container", USED_IN_DOCKER), id="inspect-image-as-container"),
    pytest.param(("images", "--bogus"), id="images-unknown-flag"),
    pytest.param(("rmi", "-f", "strata-verbs/absent:1"), id="rmi-force-no-image"),
]


@pytest.fixture(scope="module")
def twins(tmp_path_factory: pytest.TempPathFactory, busybox_rootfs_tar: Path, docker_busybox: str) -> Iterator[Store]:
    """USED_IN_DOCKER, committed from BUSYBOX_TAG and used by a container, in Docker and in a store."""
    require_userns()
    store = Store(tmp_path_factory.mktemp("verbs-images-docker") / "root")
    store.root.mkdir(mode=0o700)
    store.ok("import", busybox_rootfs_tar, BUSYBOX_TAG)
    docker_status("rm", "-f", USER_IN_DOCKER)
    for run in (store.ok, docker_ok):
        run("run", "--name", USER_IN_DOCKER, BUSYBOX_TAG, "touch", "/made")
        run("commit", USER_IN_DOCKER, USED_IN_DOCKER)
        run("rm", USER_IN_DOCKER)
        run("create", "--name", USER_IN_DOCKER, USED_IN_DOCKER, "true")
    yield store
    docker_status("rm", "-f", USER_IN_DOCKER)
    docker_status("rmi", USED_IN_DOCKER)


@pytest.mark.docker
@pytest.mark.parametrize("words", DOCKER_CASES)
def test_exit_status_is_dockers(twins: Store, words: tuple[str, ...]) -> None:
    require_docker()
    theirs = docker_status(*words)
    ours = twins.run(*words)
    assert ours.returncode == theirs.returncode, (
        f"docker: {theirs.returncode} {theirs.stderr!r}; strata: {ours.returncode} {ours.stderr!r}"
    )
    if theirs.stdout == "[]\n":
        assert ours.stdout == "[]\n"
    if "Error" in theirs.stderr:
        one_error(ours, theirs.returncode)


@pytest.mark.docker
def test_history_names_the_parent_as_docker_does(twins: Store) -> None:
    require_docker()
    for history, inspect in ((twins.lines, twins.inspect), (_docker_lines, _docker_inspect)):
        child, base = inspect(USED_IN_DOCKER, "image")["Id"], inspect(BUSYBOX_TAG, "image")["Id"]
        assert history("history", "-q", USED_IN_DOCKER) == [short(child), short(base)]
        assert IMAGE_ID.fullmatch(child)


def _docker_lines(*args: str) -> list[str]:
    return docker_ok(*args).splitlines()


def _docker_inspect(name: str, kind: str = "image") -> dict[str, str]:
    found: list[dict[str, str]] = json.loads(docker_ok("inspect", "--type", kind, name))
    return found[0]


def _commit_child(run: Callable[..., str], base: str, *ref: str) -> str:
    cid = run("run", "-d", base, "touch", "/made").strip()
    run("wait", cid)
    image = run("commit", cid, *ref).strip()
    run("rm", cid)
    return image


@pytest.mark.docker
def test_rmi_deletes_the_same_chain_as_docker(twins: Store) -> None:
    """A tagged image committed from an untagged one committed from the base: rmi of the
    top deletes both images and their layers in Docker's order, the base stays."""
    require_docker()
    docker_status("rmi", "strata-verbs/top:1")  # what a failed run may have left
    shapes = []
    for run in (twins.ok, docker_ok):
        middle = _commit_child(run, BUSYBOX_TAG)
        top = _commit_child(run, middle, "strata-verbs/top:1")
        out = run("rmi", "strata-verbs/top:1").splitlines()
        named = [line.replace(top, "TOP").replace(middle, "MIDDLE") for line in out]
        shapes.append([line if not line.startswith("Deleted: sha256:") else "Deleted" for line in named])
        assert middle not in run("images", "-a", "-q", "--no-trunc").split()
    assert (
        shapes[0]
        == shapes[1]
        == [
            "Untagged: strata-verbs/top:1",
            "Deleted: TOP",
            "Deleted",
            "Deleted: MIDDLE",
            "Deleted",
        ]
    )
