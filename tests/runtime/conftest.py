"""A busybox image made on the spot and a container harness that runs the same
test against both storage drivers (overlay and vfs).

The same tests run as root and, in the unprivileged pass (``tests/runtime/unpriv.py``
or ``packaging/dev.sh test``), as the user strata-test with a subordinate id range.

Where a container's root takes part (start, exec's view, edits of a stopped container,
copies, the fork server's starts) a test runs on both drivers (``ctr``) or alternates;
the rest touch no container root (id maps, users, the namespace keeper, tar streams,
path resolution) or test one driver's own code (``test_vfs``, ``test_overlay``).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from explorer.runtime import call_in_userns
from tests.capabilities import require_busybox, require_userns
from tests.fixtures.images import busybox_rootfs
from tests.runtime.harness import Harness

DRIVERS = ("overlay", "vfs")
EXTRA_GROUP = "extra:x:2000:app\n"


@pytest.fixture(scope="session")
def image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One read-only image layer: busybox, users (app 1000, group extra 2000 with app), data files."""
    require_busybox()
    require_userns()
    root = busybox_rootfs(tmp_path_factory.mktemp("image") / "layer")
    with (root / "etc" / "group").open("a") as fh:
        fh.write(EXTRA_GROUP)
    data = root / "data"
    (data / "dir").mkdir(parents=True)
    (data / "lower.txt").write_text("lower\n")
    (data / "gone.txt").write_text("gone\n")
    (data / "dir" / "a").write_text("a\n")
    os.chmod(data / "dir", 0o755)
    # /home/app belongs to app inside the container, whoever runs the tests (this needs a
    # subordinate id range when unprivileged; without one the user tests say so themselves).
    with contextlib.suppress(OSError):
        call_in_userns(os.chown, str(root / "home" / "app"), 1000, 1000)
    return root


@pytest.fixture(scope="session")
def bare_image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An image with nothing but /bin: no /etc, /proc, /dev at all."""
    require_busybox()
    root = tmp_path_factory.mktemp("bare") / "layer"
    (root / "bin").mkdir(parents=True)
    os.chmod(root, 0o755)
    (root / "bin" / "busybox").write_bytes(Path("/bin/busybox").read_bytes())
    os.chmod(root / "bin" / "busybox", 0o755)
    for applet in ("sh", "true", "ls", "cat", "echo"):
        (root / "bin" / applet).symlink_to("busybox")
    return root


@pytest.fixture
def make_container(tmp_path: Path, image: Path) -> Iterator[Callable[..., Harness]]:
    made: list[Harness] = []

    def make(driver: str, layers: list[Path] | None = None) -> Harness:
        base = tmp_path / f"c{len(made)}"
        base.mkdir()
        harness = Harness(driver, base, layers if layers is not None else [image])
        made.append(harness)
        return harness

    yield make
    for harness in made:
        harness.remove()


@pytest.fixture(params=DRIVERS)
def ctr(request: pytest.FixtureRequest, make_container: Callable[..., Harness]) -> Harness:
    return make_container(request.param)
