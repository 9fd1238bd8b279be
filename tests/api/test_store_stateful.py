"""The store under operations in random order: whatever hypothesis tries, afterwards
``system check`` (after a repair of what the test damaged on purpose) finds nothing,
and every image still runs.

Operations: build (sometimes from cache), run, commit, rm, rmi, the prunes, a killed
container, and damage a crash could leave (a stray layer directory, a container's
runtime directory gone, a staging directory of a dead process).
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from explorer.api import Strata
from explorer.api.containers import RunOptions
from explorer.errors import StrataError
from tests.capabilities import in_ci, require_busybox, require_userns
from tests.fixtures.images import busybox_rootfs, write_rootfs_tar

BASE = "test/busybox:1"

_TAR: Path | None = None


def _busybox_tar() -> Path:
    global _TAR
    if _TAR is None:
        work = Path(tempfile.mkdtemp(prefix="strata-stateful-tar-"))
        _TAR = write_rootfs_tar(busybox_rootfs(work / "rootfs"), work / "busybox.tar")
    return _TAR


class StoreMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.work = Path(tempfile.mkdtemp(prefix="strata-stateful-"))
        self.app: Strata | None = None
        self.images: set[str] = set()
        self.built = 0
        self.damaged = False

    @initialize(driver=st.sampled_from(["overlay", "vfs"]))
    def open_store(self, driver: str) -> None:
        self.app = Strata(self.work / "store", storage_driver=driver)
        self.app.import_rootfs(str(_busybox_tar()), BASE)
        self.images = {BASE}

    @property
    def strata(self) -> Strata:
        assert self.app is not None
        return self.app

    def _containers(self, state: str | None = None) -> list[str]:
        return [c.id for c in self.strata.containers() if state is None or c.state == state]

    @rule(step=st.integers(0, 3))
    def build(self, step: int) -> None:
        ctx = self.work / f"ctx{step}"
        ctx.mkdir(exist_ok=True)
        (ctx / "Dockerfile").write_text(f"FROM {BASE}\nRUN echo {step} > /step\nRUN mkdir -p /d{step}\n")
        tag = f"built:{step}"
        self.strata.build(str(ctx), tags=[tag])
        self.images.add(tag)

    @rule(data=st.data())
    def run(self, data: st.DataObject) -> None:
        image = data.draw(st.sampled_from(sorted(self.images)))
        info = self.strata.create(image, RunOptions(cmd=["sh", "-c", "echo changed > /changed; rm -f /step"]))
        null = os.open(os.devnull, os.O_WRONLY)
        try:
            assert self.strata.start_attached(info.id, None, null, null) == 0
        finally:
            os.close(null)

    @precondition(lambda self: self.app is not None)
    @rule(data=st.data())
    def commit(self, data: st.DataObject) -> None:
        stopped = self._containers("exited")
        if not stopped:
            return
        name = data.draw(st.sampled_from(stopped))
        self.built += 1
        tag = f"committed:{self.built}"
        self.strata.commit(name, tag)
        self.images.add(tag)

    @rule(data=st.data())
    def rm(self, data: st.DataObject) -> None:
        ids = self._containers()
        if ids:
            self.strata.rm(data.draw(st.sampled_from(ids)), force=True)

    @rule(data=st.data())
    def rmi(self, data: st.DataObject) -> None:
        removable = sorted(self.images - {BASE})
        if not removable:
            return
        tag = data.draw(st.sampled_from(removable))
        try:
            self.strata.rmi([tag])
        except StrataError:
            return  # in use by a container: Docker refuses too
        self.images.discard(tag)

    @rule(which=st.sampled_from(["container", "image", "builder"]))
    def prune(self, which: str) -> None:
        if which == "container":
            self.strata.container_prune()
        elif which == "image":
            self.strata.image_prune(all=False)
        else:
            self.strata.builder_prune(all=True)

    @rule()
    def kill(self) -> None:
        info = self.strata.create(BASE, RunOptions(cmd=["sleep", "30"]))
        self.strata.start(info.id)
        self.strata.kill(info.id, "SIGKILL")
        assert self.strata.wait(info.id) == 128 + signal.SIGKILL

    @rule(kind=st.sampled_from(["stray-layer", "run-dir", "staging"]))
    def damage(self, kind: str) -> None:
        root = self.work / "store"
        if kind == "stray-layer":
            stray = root / "layers" / ("f" * 64)
            (stray / "diff").mkdir(parents=True, exist_ok=True)
            (stray / "diff" / "junk").write_text("left by a crash\n")
        elif kind == "run-dir":
            stopped = [c for c in self.strata.containers() if c.state == "exited"]
            if not stopped:
                return
            shutil.rmtree(root / "containers" / stopped[0].id / "run", ignore_errors=True)
        else:
            staging = root / "tmp" / "stage-99999999-deadbeef"
            staging.mkdir(parents=True, exist_ok=True)
            (staging / "half").write_text("half written\n")
        self.damaged = True

    @invariant()
    def base_stays(self) -> None:
        if self.app is not None:
            assert self.strata.image(BASE) is not None

    def teardown(self) -> None:
        try:
            if self.app is None:
                return
            strata = self.strata
            for cid in self._containers("running"):
                strata.rm(cid, force=True)
            strata.check(repair=True)
            left = [p for p in strata.check() if p.kind != "quarantine"]
            assert left == [], left
            for image in sorted(self.images):
                info = strata.create(image, RunOptions(cmd=["true"]))
                null = os.open(os.devnull, os.O_WRONLY)
                try:
                    assert strata.start_attached(info.id, None, null, null) == 0, image
                finally:
                    os.close(null)
                strata.rm(info.id, force=True)
            strata.close()
        finally:
            shutil.rmtree(self.work, ignore_errors=True)


@pytest.mark.timeout(1200)
def test_the_store_survives_operations_in_any_order() -> None:
    require_userns()
    require_busybox()
    StoreMachine.TestCase.settings = settings(
        max_examples=15 if in_ci() else 6,
        stateful_step_count=15,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    StoreMachine.TestCase().runTest()
