"""What the step mixins (``copystep.CopySteps``, ``runstep.RunSteps``) use of
``executor.Builder``, declared once so mypy checks every use. ``Builder`` sets the
attributes and defines the methods; nothing here runs."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..store.store import Store
    from ..store.union import UnionView
    from .context import BuildContext
    from .executor import BuildOptions, Snapshot, Step
    from .stages import BuildPlan


class StepHost:
    store: Store
    options: BuildOptions
    filename: str
    ctx: BuildContext | None
    plan: BuildPlan | None
    snapshots: dict[int, Snapshot]

    if TYPE_CHECKING:

        def _view(self, snap: Snapshot) -> UnionView: ...
        def _new_scratch(self, what: str) -> Path: ...
        def _created_by(self, step: Step) -> str: ...
