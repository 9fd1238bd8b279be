"""Diagnostics for the text being typed, from the build's own parser.

The editor must flag exactly what the build will reject, so the marks are the
parser's ``diagnostics`` (through ``api.dockerfile``), nothing re-derived here.
"""

from __future__ import annotations

from .code_editor import Mark


def diagnose(text: str) -> list[Mark]:
    from ...api.dockerfile import diagnostics  # the parser loads with the first keystroke, not the window

    return [Mark(d.line, d.end_line or d.line, d.message, d.severity) for d in diagnostics(text)]
