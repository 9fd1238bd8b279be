"""What the window's editor needs to know about Dockerfiles, from the build's own front end.

The editor flags exactly what the build will reject, colours exactly the keywords the
parser knows and offers exactly the stages ``--target`` accepts, so all three come from
``explorer.builder`` through here: the GUI talks to the API layer only, and the grammar
lives in one place.
"""

from __future__ import annotations

from ..builder.events import BuildEvent, BuildResult
from ..builder.parser import INSTRUCTIONS, Diagnostic
from ..builder.stages import diagnostics, stage_names

KEYWORDS: tuple[str, ...] = tuple(word.upper() for word in INSTRUCTIONS)

__all__ = ["KEYWORDS", "BuildEvent", "BuildResult", "Diagnostic", "diagnostics", "stage_names"]
