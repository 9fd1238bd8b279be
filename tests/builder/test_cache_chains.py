"""The two cache chains (executor.Snapshot): layer steps are keyed on the previous layer step
and what they read from the config, so a config-only change misses no layer, and the config
a cache hit stands for is made again from the plan, not read back from the cache row."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from explorer.api import Strata
from explorer.builder import checksum as checksum_module
from explorer.builder.events import BuildEvent
from tests.fixtures.images import BUSYBOX_TAG

FROM = f"FROM {BUSYBOX_TAG}\n"


@pytest.fixture(autouse=True)
def calm(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(checksum_module, "RACY_NS", 0)


@pytest.fixture
def app(tmp_path: Path, busybox_rootfs_tar: Path) -> Iterator[Strata]:
    strata = Strata(tmp_path / "store")
    strata.import_rootfs(str(busybox_rootfs_tar), BUSYBOX_TAG)
    yield strata
    strata.close()


@pytest.fixture
def ctx(tmp_path: Path) -> Path:
    path = tmp_path / "ctx"
    path.mkdir()
    (path / "a.txt").write_text("alpha\n")
    return path


def build(app: Strata, ctx: Path, text: str, **kw: Any) -> tuple[Any, list[BuildEvent]]:
    (ctx / "Dockerfile").write_text(text)
    events: list[BuildEvent] = []
    result = app.build(str(ctx), on_event=events.append, **kw)
    return result, events


def cached(events: list[BuildEvent]) -> list[int]:
    return [e.step for e in events if e.status == "cached" and e.step > 1]


def reason(events: list[BuildEvent], step: int) -> str:
    return next(e.reason or "" for e in events if e.step == step and e.status == "running")


def config_of(app: Strata, image_id: str) -> dict[str, Any]:
    config: dict[str, Any] = app.store.images.get(image_id).config
    return config


def test_a_label_change_keeps_the_layers_after_it_and_the_hit_carries_the_new_label(app: Strata, ctx: Path) -> None:
    text = FROM + "LABEL x={}\nCOPY a.txt /a\nWORKDIR /w\nLABEL y=fixed\n"
    first, _ = build(app, ctx, text.format(1))
    changed, events = build(app, ctx, text.format(2))
    assert cached(events) == [3, 4, 5]  # COPY, WORKDIR and the LABEL after them
    image = config_of(app, changed.image_id)
    assert image["config"]["Labels"] == {"x": "2", "y": "fixed"}
    assert [h.get("created_by") for h in image["history"]][-4:] == [
        "LABEL x=2",
        "COPY a.txt /a # buildkit",
        "WORKDIR /w",
        "LABEL y=fixed",
    ]
    assert changed.image_id != first.image_id
    assert config_of(app, first.image_id)["rootfs"] == image["rootfs"]  # the same layers
    again, events = build(app, ctx, text.format(2))
    assert cached(events) == [2, 3, 4, 5] and again.image_id == changed.image_id


def test_an_env_change_keeps_copy(app: Strata, ctx: Path) -> None:
    text = FROM + "ENV E={}\nCOPY a.txt /a\n"
    build(app, ctx, text.format(1))
    _, events = build(app, ctx, text.format(2))
    assert cached(events) == [3]


def test_a_user_change_misses_workdir_which_it_owns(app: Strata, ctx: Path) -> None:
    text = FROM + "USER {}\nCOPY a.txt /a\nWORKDIR /made/here\n"
    build(app, ctx, text.format("app"))
    result, events = build(app, ctx, text.format("daemon"))
    assert cached(events) == [3]
    assert reason(events, 4) == "USER changed"
    owners = {e.path: (e.uid, e.gid) for e in app.ls(result.image_id, "/made", recursive=True)}
    assert owners == {"/made": (1, 1), "/made/here": (1, 1)}  # the parents it makes too


def test_workdir_under_a_numeric_or_unknown_user(app: Strata, ctx: Path) -> None:
    result, _ = build(app, ctx, FROM + "USER 1042:1043\nWORKDIR /n\nUSER nosuchuser\nWORKDIR /u\n")
    owners = {e.path: (e.uid, e.gid) for e in app.ls(result.image_id, "/") if e.path in ("/n", "/u")}
    assert owners == {"/n": (1042, 1043), "/u": (0, 0)}  # a name not in /etc/passwd is root, as in BuildKit
