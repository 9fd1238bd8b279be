"""What a build reports while it runs: one event record, shared by the CLI, the GUI and tests.

The executor never prints. It hands ``BuildEvent`` objects to a callback; the CLI renders
them as BuildKit-like lines or JSON, the GUI turns them into signals, and tests read them
as data. Keeping one record for all three means a test of the JSON output also tests what
the GUI is shown.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

Status = Literal["running", "cached", "done", "error", "output", "finished"]

RUNNING: Status = "running"
CACHED: Status = "cached"
DONE: Status = "done"
ERROR: Status = "error"
OUTPUT: Status = "output"
FINISHED: Status = "finished"


@dataclass
class BuildEvent:
    """One thing that happened in a build.

    Step events carry ``step``/``total`` (1-based, counted within the stage, FROM is step
    1), the ``stage`` name (empty for an unnamed stage), the instruction as written and its
    ``line``; ``vertex`` numbers steps across the whole build (BuildKit's ``#3``). A miss
    carries ``reason``; a finished layer step carries ``layer``; an ``output`` event carries
    one line the command wrote. The build ends with exactly one ``finished`` event
    (``image``, ``tags``) or one ``error`` event (``message``, and ``line`` when a
    Dockerfile line is to blame).
    """

    status: Status
    step: int = 0
    total: int = 0
    stage: str = ""
    instruction: str = ""
    line: int = 0
    vertex: int = 0
    duration_s: float | None = None
    reason: str | None = None
    layer: str | None = None
    output: str | None = None
    image: str | None = None
    tags: list[str] = field(default_factory=list)
    message: str | None = None
    exit_code: int | None = None

    @property
    def is_step(self) -> bool:
        return self.step > 0

    def to_json(self) -> dict[str, Any]:
        """The JSON object ``--progress json`` prints: only the fields that mean something.

        The last object of a build has ``"status": "done"`` with ``image`` and ``tags`` and
        no ``step``, so a reader tells it from a step's ``done`` by the missing ``step``.
        """
        if self.status == FINISHED:
            return {"status": "done", "image": self.image, "tags": list(self.tags)}
        out: dict[str, Any] = {"status": self.status}
        if self.step:
            out.update(
                step=self.step, total=self.total, stage=self.stage, instruction=self.instruction, vertex=self.vertex
            )
        if self.line:
            out["line"] = self.line
        if self.duration_s is not None:
            out["duration_s"] = round(self.duration_s, 3)
        for name in ("reason", "layer", "output", "message", "exit_code"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        if self.image is not None:
            out["image"] = self.image
        return out

    def to_json_line(self) -> str:
        return json.dumps(self.to_json(), ensure_ascii=False)


@dataclass(frozen=True)
class BuildResult:
    """What a successful build made: the image and the names it was given."""

    image_id: str
    tags: list[str]
    steps: int = 0
    cached: int = 0
