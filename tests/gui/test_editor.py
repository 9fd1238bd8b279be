"""The Dockerfile editor: colours, live diagnostics, and the gutter during a build."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtGui import QTextCursor

from explorer.api import Strata
from explorer.builder.events import BuildEvent, BuildResult
from explorer.errors import BuildError, Cancelled
from explorer.gui.context import AppContext
from explorer.gui.editor.code_editor import CACHED, FAILED, REBUILT
from explorer.gui.editor.dockerfile_editor import DockerfileEditor, parse_build_args
from explorer.gui.editor.highlighter import CONTINUED, NORMAL, DockerfileHighlighter
from tests.capabilities import require_userns
from tests.gui.conftest import wait_tasks

DOCKERFILE = """\
# syntax=docker/dockerfile:1
FROM scratch AS base
ARG VERSION=1
COPY --chown=0:0 app.txt /app/
RUN echo "$VERSION" \\
    > /version
RUN <<EOF
echo heredoc
EOF
CMD ["/app/run"]
"""


def _formats(doc: Any, line: int) -> list[tuple[int, int, str]]:
    block = doc.findBlockByNumber(line - 1)
    return [(r.start, r.length, r.format.foreground().color().name()) for r in block.layout().formats()]


def test_highlighting_spans_and_states(qapp: Any) -> None:
    from PySide6.QtWidgets import QPlainTextEdit

    edit = QPlainTextEdit()
    doc = edit.document()
    hl = DockerfileHighlighter(doc)
    edit.setPlainText(DOCKERFILE)
    qapp.processEvents()  # the highlighter's first pass is queued
    s = hl.scheme
    color = {
        name: getattr(s, name).foreground().color().name()
        for name in (
            "instruction",
            "flag",
            "string",
            "variable",
            "comment",
            "directive",
            "heredoc",
            "heredoc_marker",
            "stage",
        )
    }
    assert (0, 28, color["directive"]) in _formats(doc, 1)
    line2 = _formats(doc, 2)
    assert (0, 4, color["instruction"]) in line2 and any(c == color["stage"] for _, _, c in line2)
    assert (5, 11, color["flag"]) in _formats(doc, 4)
    line5 = _formats(doc, 5)
    assert any(c == color["string"] for _, _, c in line5)
    assert doc.findBlockByNumber(4).userState() == CONTINUED
    assert not any(start == 0 and c == color["instruction"] for start, _, c in _formats(doc, 6))
    assert any(c == color["heredoc_marker"] for _, _, c in _formats(doc, 7))
    assert _formats(doc, 8) == [(0, 12, color["heredoc"])]
    assert _formats(doc, 9) == [(0, 3, color["heredoc_marker"])]
    assert doc.findBlockByNumber(8).userState() == NORMAL
    assert (0, 3, color["instruction"]) in _formats(doc, 10)
    # breaking the terminator re-colours what follows: the heredoc now runs to the end
    cursor = QTextCursor(doc.findBlockByNumber(8))
    cursor.insertText("X")
    qapp.processEvents()
    assert _formats(doc, 10)[0][2] == color["heredoc"]


def test_build_args_and_stages() -> None:
    assert parse_build_args('A=1 B="two words", C') == {"A": "1", "B": "two words", "C": ""}
    with pytest.raises(Exception, match="NAME=value"):
        parse_build_args("1A=x")


def test_the_target_list_holds_the_stages_the_build_reads(qtbot: Any, ctx: AppContext) -> None:
    editor = DockerfileEditor(ctx)
    qtbot.addWidget(editor)
    editor.set_text("FROM scratch AS Base\nFROM base \\\n  AS final\nFROM base AS 2x\n")

    def targets() -> list[str]:
        return [editor.target_box.itemText(i) for i in range(editor.target_box.count())]

    qtbot.waitUntil(lambda: targets() == ["", "base", "final"], timeout=5000)


def test_live_diagnostics_mark_the_line(qtbot: Any, ctx: AppContext) -> None:
    editor = DockerfileEditor(ctx)
    qtbot.addWidget(editor)
    editor.set_text("FROM scratch\nCOPY a b\nFRUM x\nEXPOSE\n")
    qtbot.waitUntil(lambda: len(editor.editor.marks) >= 2, timeout=5000)
    marks = editor.editor.marks
    lines = {m.line for m in marks}
    assert 3 in lines and 4 in lines and 1 not in lines
    assert "FRUM" in editor.editor.tooltip_for_line(3)
    underlined = [s for s in editor.editor.extraSelections() if s.format.underlineStyle() != 0]
    assert len(underlined) >= 2
    editor.set_text("FROM scratch\nCOPY a b\n")
    qtbot.waitUntil(lambda: editor.editor.marks == [], timeout=5000)


class ScriptedBuild(Strata):
    """A build that reports a fixed script of events (the GUI side of a build, no executor)."""

    script: list[BuildEvent] = []
    fail: Exception | None = None
    calls: list[dict[str, Any]] = []
    gate: threading.Event | None = None

    def build(
        self,
        context_dir: str,
        dockerfile: str | None = None,
        tags: tuple[str, ...] = (),
        build_args: dict[str, str] | None = None,
        target: str | None = None,
        no_cache: bool = False,
        on_event: Callable[[BuildEvent], None] | None = None,
        cancel: threading.Event | None = None,
        **_: Any,
    ) -> BuildResult:
        self.calls.append(
            {
                "context": context_dir,
                "dockerfile": dockerfile,
                "tags": tags,
                "build_args": build_args,
                "target": target,
                "no_cache": no_cache,
            }
        )
        for event in self.script:
            if self.gate is not None:
                self.gate.wait(5)
            if cancel is not None and cancel.is_set():
                raise Cancelled("build")
            assert on_event is not None
            on_event(event)
        if self.fail is not None:
            raise self.fail
        return BuildResult("sha256:" + "ab" * 32, list(tags))


@pytest.fixture
def scripted(tmp_path: Path, settings: Any) -> Any:
    strata = ScriptedBuild(tmp_path / "store")
    strata.calls = []
    strata.gate = None
    strata.fail = None
    c = AppContext(strata, settings)
    yield strata, c
    c.shutdown()


def _editor_on_disk(qtbot: Any, ctx: AppContext, tmp_path: Path) -> DockerfileEditor:
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "app.txt").write_text("hi\n")
    (context / "Dockerfile").write_text(DOCKERFILE)
    editor = DockerfileEditor(ctx)
    qtbot.addWidget(editor)
    assert editor.open_file(context / "Dockerfile")
    return editor


def test_build_paints_the_gutter(qtbot: Any, scripted: Any, tmp_path: Path) -> None:
    strata, ctx = scripted
    strata.script = [
        BuildEvent("running", 1, 5, instruction="FROM scratch AS base", line=2, vertex=1),
        BuildEvent("cached", 1, 5, instruction="FROM scratch AS base", line=2, vertex=1),
        BuildEvent("running", 3, 5, instruction="COPY --chown=0:0 app.txt /app/", line=4, vertex=3),
        BuildEvent("done", 3, 5, instruction="COPY", line=4, vertex=3, duration_s=0.2, reason="app.txt changed"),
        BuildEvent("running", 4, 5, instruction="RUN echo", line=5, vertex=4),
        BuildEvent("output", 4, 5, vertex=4, output="1"),
        BuildEvent("done", 4, 5, line=5, vertex=4, duration_s=0.5, reason="a previous step was rebuilt"),
        BuildEvent("finished", image="sha256:" + "ab" * 32, tags=["demo:1"]),
    ]
    editor = _editor_on_disk(qtbot, ctx, tmp_path)
    editor.tag_edit.setText("demo:1")
    editor.args_edit.setText("VERSION=2")
    editor.no_cache.setChecked(True)
    lines: list[str] = []
    editor.output.connect(lambda text: lines.extend(text.split("\n")))  # a batch's lines come in one piece
    with qtbot.waitSignal(editor.buildFinished, timeout=10000) as finished:
        editor.build()
    assert isinstance(finished.args[0], BuildResult)
    call = strata.calls[0]
    assert call["tags"] == ("demo:1",) and call["build_args"] == {"VERSION": "2"} and call["no_cache"]
    assert call["dockerfile"] == str(tmp_path / "ctx" / "Dockerfile")
    steps = editor.editor.steps
    assert steps[2].state == CACHED
    assert steps[4].state == REBUILT and "app.txt changed" in editor.editor.tooltip_for_line(4)
    assert steps[5].state == REBUILT
    assert "#4 1" in lines
    assert "built abababababab" in editor.status.text()


def test_failed_run_jumps_to_its_line_and_shows_output(qtbot: Any, scripted: Any, tmp_path: Path) -> None:
    strata, ctx = scripted
    strata.script = [
        BuildEvent("running", 4, 5, instruction="RUN echo", line=5, vertex=4),
        BuildEvent("output", 4, 5, vertex=4, output="sh: oops: not found\n"),
        BuildEvent("error", 4, 5, line=5, vertex=4, message="RUN exited with 127", exit_code=127),
    ]
    strata.fail = BuildError("The command '/bin/sh -c oops' returned a non-zero code: 127", line=5, exit_status=127)
    editor = _editor_on_disk(qtbot, ctx, tmp_path)
    editor.editor.go_to_line(1)
    with qtbot.waitSignal(editor.buildFinished, timeout=10000):
        editor.build()
    assert editor.editor.steps[5].state == FAILED
    assert editor.editor.textCursor().blockNumber() == 4
    assert not editor.failure_output.isHidden()
    assert "oops: not found" in editor.failure_output.toPlainText()
    assert "build failed" in editor.status.text()


def test_cancel_a_running_build(qtbot: Any, scripted: Any, tmp_path: Path) -> None:
    strata, ctx = scripted
    strata.script = [BuildEvent("running", i, 9, line=2, vertex=i) for i in range(1, 9)]
    strata.gate = threading.Event()
    editor = _editor_on_disk(qtbot, ctx, tmp_path)
    with qtbot.waitSignal(editor.buildFinished, timeout=10000) as finished:
        editor.build()
        assert editor.cancel_button.isEnabled() and not editor.build_button.isEnabled()
        editor.cancel_build()
        strata.gate.set()
    assert finished.args[0].cancelled
    assert editor.build_button.isEnabled() and "cancelled" in editor.status.text()
    wait_tasks(qtbot, ctx)


def test_unsaved_edits_are_saved_before_a_build(qtbot: Any, scripted: Any, tmp_path: Path) -> None:
    strata, ctx = scripted
    strata.script = []
    editor = _editor_on_disk(qtbot, ctx, tmp_path)
    editor.set_text("FROM scratch\nCOPY app.txt /\n")
    assert editor.is_modified() and editor.title().endswith("•")
    with qtbot.waitSignal(editor.buildFinished, timeout=10000):
        editor.build()
    assert (tmp_path / "ctx" / "Dockerfile").read_text() == "FROM scratch\nCOPY app.txt /\n"
    assert not editor.is_modified()
    # a diagnostics pass that ends after the build (and finds nothing) keeps the outcome shown
    with qtbot.waitSignal(editor.diagnosticsReady, timeout=5000) as ready:
        editor.run_diagnostics()
    assert ready.args == [[]] and "built abababababab" in editor.status.text()


def test_real_build_through_the_editor(
    qtbot: Any, window: Any, strata: Strata, tmp_path: Path, busybox_rootfs_tar: Path
) -> None:
    """Strata.build itself, from the editor, on a busybox base: a COPY and a RUN are rebuilt,
    then cached; an edited RUN is rebuilt on top of the cached COPY, and the two images share
    that trunk in the layer tree."""
    require_userns()  # RUN steps run in a container
    strata.import_rootfs(str(busybox_rootfs_tar), "busybox:gui")
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "hello.txt").write_text("hello\n")
    (context / "Dockerfile").write_text("FROM busybox:gui\nCOPY hello.txt /hello.txt\nRUN echo one > /built\nENV A=1\n")
    editor = window.open_editor(context / "Dockerfile", context)
    editor.tag_edit.setText("hello:1")

    def build() -> Any:
        with qtbot.waitSignal(editor.buildFinished, timeout=30000) as finished:
            editor.build()
        assert not hasattr(finished.args[0], "cancelled"), getattr(finished.args[0], "message", "")
        return finished.args[0]

    build()
    steps = editor.editor.steps
    assert steps[1].state == CACHED and steps[2].state == REBUILT and steps[3].state == REBUILT
    assert "first build" in editor.editor.tooltip_for_line(2)
    build()
    assert [editor.editor.steps[line].state for line in (2, 3, 4)] == [CACHED, CACHED, CACHED]
    editor.set_text("FROM busybox:gui\nCOPY hello.txt /hello.txt\nRUN echo two > /built\nENV A=1\n")
    editor.tag_edit.setText("hello:2")
    build()
    assert editor.editor.steps[2].state == CACHED and editor.editor.steps[3].state == REBUILT
    assert strata.image_view("hello:2").open("/built").read() == b"two\n"
    qtbot.waitUntil(
        lambda: {"hello:1", "hello:2"} <= {f"{r.repository}:{r.tag}" for r in window.images_view.model.records},
        timeout=10000,
    )
    chain1 = [layer.id for layer in strata.store.layers.chain(strata.image("hello:1").top_layer)]
    chain2 = [layer.id for layer in strata.store.layers.chain(strata.image("hello:2").top_layer)]
    assert len(chain1) == 3 and chain1[:-1] == chain2[:-1] and chain1[-1] != chain2[-1]  # one trunk, two tops
