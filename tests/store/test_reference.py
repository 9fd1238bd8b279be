import pytest

from explorer.errors import InvalidArgument, InvalidReference
from explorer.store import reference


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("busybox", "docker.io/library/busybox:latest"),
        ("busybox:1.36", "docker.io/library/busybox:1.36"),
        ("user/app", "docker.io/user/app:latest"),
        ("docker.io/busybox", "docker.io/library/busybox:latest"),
        ("index.docker.io/library/busybox:1", "docker.io/library/busybox:1"),
        ("localhost/app", "localhost/app:latest"),
        ("localhost:5000/a/b/c:v1", "localhost:5000/a/b/c:v1"),
        ("127.0.0.1:5000/x", "127.0.0.1:5000/x:latest"),
        ("ghcr.io/o/r:t-1.2_3", "ghcr.io/o/r:t-1.2_3"),
        ("a__b/c-d--e.f", "docker.io/a__b/c-d--e.f:latest"),
    ],
)
def test_normalises_like_docker(text: str, name: str) -> None:
    assert reference.parse(text).name == name


def test_digest_reference_has_no_default_tag() -> None:
    ref = reference.parse("alpine@sha256:" + "a" * 64)
    assert ref.tag is None
    assert ref.name == "docker.io/library/alpine@sha256:" + "a" * 64


@pytest.mark.parametrize(
    "bad", ["", "UPPER", "a/UPPER", "a:", "a:-x", "a//b", "-a", "a_", "a:" + "x" * 129, " a", "a@sha256:xyz"]
)
def test_rejects_bad_references(bad: str) -> None:
    with pytest.raises(InvalidReference):
        reference.parse(bad)


def test_uppercase_message_is_docker_like() -> None:
    with pytest.raises(InvalidReference, match="must be lowercase"):
        reference.parse("Busybox")


@pytest.mark.parametrize(
    ("name", "short"),
    [
        ("docker.io/library/busybox:latest", "busybox:latest"),
        ("docker.io/user/app:1", "user/app:1"),
        ("localhost:5000/app:1", "localhost:5000/app:1"),
        ("docker.io/library/a/b:1", "library/a/b:1"),
    ],
)
def test_familiar_form(name: str, short: str) -> None:
    assert reference.familiar(name) == short


def test_daemon_references_are_known_in_one_place() -> None:
    """The build's FROM, ``strata pull`` and the CLI's output all ask these two functions
    whether a name is a local daemon's."""
    assert reference.daemon_source("docker-daemon:busybox:1") == ("docker", "busybox:1")
    assert reference.daemon_source("podman:localhost/app:1") == ("podman", "localhost/app:1")
    assert reference.daemon_source("docker.io/library/busybox") is None
    assert reference.daemon_source("localhost:5000/podman:1") is None
    assert [reference.is_daemon_reference(t) for t in ("docker-daemon:x", "podman:x", "podman", "x")] == [
        True,
        True,
        False,
        False,
    ]
    with pytest.raises(InvalidArgument, match="give an image name after podman:"):
        reference.daemon_source("podman:")
    assert reference.DAEMON_FORMS == "docker-daemon:NAME or podman:NAME"
