"""Fixtures for the whole suite; the helpers behind them live in tests/fixtures/.

Capabilities a test needs (Docker, user namespaces, busybox, root) are checked through
tests/capabilities.py: missing ones fail under CI=true. The one skip CI accepts is a
benchmark (marked ``bench``) when --bench was not given.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

# `from tests.… import …` must work however pytest was started (python -m pytest from the
# checkout puts it on sys.path; a bare `pytest` does not).
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import pytest

from tests.capabilities import require_busybox, require_docker, require_registry
from tests.fixtures.images import (
    BUSYBOX_TAG,
    build_rich_image,
    busybox_rootfs,
    docker_import,
    write_rootfs_tar,
)
from tests.fixtures.services import Registry


def pytest_configure(config: pytest.Config) -> None:
    # Before any test module imports Qt: widgets need no display unless a test asks for one.
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    # Rootless, the whole test process works inside the store's user namespace, as the
    # `strata` command and the window do (runtime/storens.py); it must be entered before
    # any thread starts. Where user namespaces are missing the tests that need them say so.
    if os.geteuid() != 0:
        from explorer.errors import StrataError
        from explorer.runtime.storens import enter

        try:
            enter()
        except StrataError as e:
            os.environ["STRATA_TEST_NO_STORE_NS"] = str(e)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--bench", action="store_true", default=False, help="run the benchmarks (marked bench)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--bench"):
        return
    skip = pytest.mark.skip(reason="benchmark: run with --bench (not required in CI)")
    for item in items:
        if item.get_closest_marker("bench") is not None:
            item.add_marker(skip)


@pytest.fixture(scope="session", autouse=True)
def _private_xdg_dirs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Keep the developer's own store and settings out of reach of every test."""
    home = tmp_path_factory.mktemp("xdg")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_DATA_HOME", str(home / "data"))
        mp.setenv("XDG_CONFIG_HOME", str(home / "config"))
        yield


@pytest.fixture
def strata_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty store directory (mode 0700), also exported as STRATA_ROOT."""
    root = tmp_path / "strata-root"
    root.mkdir(mode=0o700)
    os.chmod(root, 0o700)
    monkeypatch.setenv("STRATA_ROOT", str(root))
    return root


@pytest.fixture
def busybox_rootfs_dir(tmp_path: Path) -> Path:
    """A fresh busybox root filesystem directory per test (tests may change it)."""
    require_busybox()
    return busybox_rootfs(tmp_path / "rootfs")


@pytest.fixture(scope="session")
def busybox_rootfs_tar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The busybox rootfs as a deterministic tar: the input of strata/docker import."""
    require_busybox()
    work = tmp_path_factory.mktemp("busybox")
    return write_rootfs_tar(busybox_rootfs(work / "rootfs"), work / "busybox-rootfs.tar")


@pytest.fixture(scope="session")
def docker_busybox(busybox_rootfs_tar: Path) -> str:
    """BUSYBOX_TAG in Docker, imported from `busybox_rootfs_tar` (at most once a session)."""
    require_docker()
    return docker_import(busybox_rootfs_tar, BUSYBOX_TAG)


@pytest.fixture(scope="session")
def docker_rich_image(docker_busybox: str) -> str:
    """RICH_DOCKERFILE built by Docker; returns its tag."""
    return build_rich_image()


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    """A fresh loopback registry; `.address` is host:port, `.requests()` what it served."""
    require_registry()
    with Registry(tmp_path / "registry") as running:
        yield running
