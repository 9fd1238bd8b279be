"""The Pull dialog: per-layer progress with bytes and rate, cancel, and a real pull from a
loopback registry."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from explorer.api import Strata
from explorer.errors import Cancelled
from explorer.gui.context import AppContext
from explorer.gui.main_window import MainWindow
from explorer.gui.models.transfer_model import BYTES, PROGRESS, RATE, STATUS, Role, TransferModel
from explorer.gui.pull_dialog import PullDialog
from explorer.registry.events import TransferEvent
from tests.capabilities import require_registry
from tests.fixtures.services import Registry
from tests.gui.archives import write_docker_archive
from tests.gui.conftest import wait_tasks
from tests.gui.modeltest import checked

MIB = 1024 * 1024


def test_transfer_model_rows_follow_events(qapp: Any) -> None:
    model = TransferModel()
    tester = checked(model)
    info: list[str] = []
    model.infoLine.connect(info.append)
    model.apply(TransferEvent("", "info", message="1: Pulling from library/app"))
    model.apply(TransferEvent("aaaaaaaaaaaa", "waiting", 0, 4 * MIB, message="Waiting"))
    model.apply(TransferEvent("bbbbbbbbbbbb", "exists", message="Already exists"))
    model.apply(TransferEvent("aaaaaaaaaaaa", "downloading", MIB, 4 * MIB, 2 * MIB, "Downloading"))
    assert info == ["1: Pulling from library/app"] and model.rowCount() == 2
    first = model.index(0, 0)
    assert model.data(model.index(0, STATUS)) == "Downloading"
    assert model.data(model.index(0, BYTES)) == "1.0 MiB / 4.0 MiB"
    assert model.data(model.index(0, RATE)) == "2.0 MiB/s"
    assert model.data(model.index(0, PROGRESS)) == "25%" and model.data(first, Role.FRACTION) == 0.25
    assert model.data(model.index(1, STATUS)) == "Already exists" and model.data(model.index(1, PROGRESS)) == ""
    assert model.data(model.index(1, 0), Role.FRACTION) == 1
    model.apply(TransferEvent("aaaaaaaaaaaa", "complete", 4 * MIB, 4 * MIB, 3 * MIB, "Pull complete"))
    assert model.data(model.index(0, RATE)) == "" and model.finished() == 2 and model.moved() == 4 * MIB
    model.clear()
    assert model.rowCount() == 0
    del tester


class ScriptedPull(Strata):
    """A pull that reports a fixed script of layer events and waits at a gate (no registry)."""

    gate: threading.Event
    reached: threading.Event
    seen: dict[str, Any]

    def pull(
        self, name: str, *, platform: str | None = None, progress: Any = None, cancel: threading.Event | None = None
    ) -> Any:
        self.seen = {"name": name, "platform": platform}
        progress(TransferEvent("", "info", message=f"latest: Pulling from {name}"))
        progress(TransferEvent("aaaaaaaaaaaa", "waiting", 0, 8 * MIB))
        progress(TransferEvent("aaaaaaaaaaaa", "downloading", 2 * MIB, 8 * MIB, 4 * MIB))
        self.reached.set()
        self.gate.wait(5)
        if cancel is not None and cancel.is_set():
            raise Cancelled(f"pull {name}")
        raise AssertionError("the test cancels before the gate opens")


@pytest.fixture
def scripted(tmp_path: Path, settings: Any) -> Iterator[tuple[ScriptedPull, AppContext]]:
    strata = ScriptedPull(tmp_path / "store")
    strata.gate = threading.Event()
    strata.reached = threading.Event()
    c = AppContext(strata, settings)
    yield strata, c
    strata.gate.set()
    c.shutdown()
    strata.close()


def test_cancel_a_pull_shows_progress_then_stops(qtbot: Any, scripted: tuple[ScriptedPull, AppContext]) -> None:
    strata, ctx = scripted
    dialog = PullDialog(ctx, "example.com/app")
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.platform.setCurrentIndex(dialog.platform.findData("linux/arm64"))
    dialog.start()
    assert not dialog.pull_button.isEnabled() and dialog.cancel_button.isEnabled()
    qtbot.waitUntil(lambda: dialog.model.rowCount() == 1 and "MiB/s" in dialog.summary.text(), timeout=5000)
    assert strata.seen == {"name": "example.com/app", "platform": "linux/arm64"}
    assert "2.0 MiB of 8.0 MiB" in dialog.summary.text()
    assert "Pulling from" in dialog.log.toPlainText()
    dialog.cancel()
    strata.gate.set()
    qtbot.waitUntil(lambda: not dialog.running, timeout=5000)
    assert dialog.failure is not None and dialog.failure.cancelled
    assert "Cancelled" in dialog.summary.text() and dialog.pull_button.isEnabled()
    wait_tasks(qtbot, ctx)


def test_platform_typed_by_hand(qtbot: Any, ctx: AppContext) -> None:
    dialog = PullDialog(ctx)
    qtbot.addWidget(dialog)
    assert dialog.platform_value() is None and not dialog.pull_button.isEnabled()
    dialog.platform.setEditText("linux/mips64le")
    assert dialog.platform_value() == "linux/mips64le"


@pytest.fixture
def registry_with_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """``<registry>/app:1`` (one 2 MiB layer) pushed from a scratch store; yields the reference."""
    require_registry()
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker-config"))
    monkeypatch.delenv("STRATA_INSECURE_REGISTRIES", raising=False)
    with Registry(tmp_path / "registry") as reg:
        ref = f"{reg.address}/app:1"
        source = Strata(tmp_path / "source")
        archive = write_docker_archive(
            tmp_path / "app.tar", ref, {"/big.bin": os.urandom(2 * MIB), "/etc/app": b"app\n"}
        )
        source.load(str(archive))
        source.push(ref)
        source.close()
        yield ref


def test_pull_from_a_registry_through_the_window(
    qtbot: Any, window: MainWindow, strata: Strata, registry_with_app: str
) -> None:
    dialog = window.ops.pull(registry_with_app)
    assert isinstance(dialog, PullDialog) and dialog.isVisible()
    with qtbot.waitSignal(dialog.pulled, timeout=20000) as pulled:
        dialog.start()
    assert pulled.args == [registry_with_app]
    row = dialog.model.rows[0]
    assert row.status == "complete" and row.total > 2 * MIB
    assert "pulled in" in dialog.summary.text()
    assert any(r.repository.endswith("/app") for r in strata.images())
    qtbot.waitUntil(lambda: any(r.repository.endswith("/app") for r in window.images_view.model.records), timeout=5000)
    dialog.close()
    wait_tasks(qtbot, window.ctx)
