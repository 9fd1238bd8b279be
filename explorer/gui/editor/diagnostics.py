"""Diagnostics for the text being typed, from the build's own parser.

The editor must flag exactly what the build will reject, so the messages come from
``explorer.build.parser.diagnostics``. Until that front end is present a small check over
the BuildKit grammar (the ``dockerfile`` package) stands in: parse errors, unknown
instructions, missing arguments and a first instruction that is not FROM.
"""

from __future__ import annotations

import importlib
import re
from typing import Any

from .code_editor import Mark

_KNOWN = {
    "ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK", "LABEL",
    "MAINTAINER", "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR",
}
_NEEDS_ARGS = _KNOWN - {"HEALTHCHECK"}
_LINE = re.compile(r"line (\d+)")


def _backend() -> Any | None:
    try:
        module = importlib.import_module("explorer.build.parser")
    except ImportError:
        return None
    fn = getattr(module, "diagnostics", None)
    return fn if callable(fn) else None


def diagnose(text: str) -> list[Mark]:
    backend = _backend()
    if backend is not None:
        out: list[Mark] = []
        for d in backend(text):
            line = int(getattr(d, "line", 0) or 1)
            end = int(getattr(d, "end_line", 0) or line)
            out.append(Mark(line, end, str(getattr(d, "message", d)), str(getattr(d, "severity", "error"))))
        return out
    return _fallback(text)


def _fallback(text: str) -> list[Mark]:
    try:
        import dockerfile
    except ImportError:
        return []
    if not text.strip():
        return [Mark(1, 1, "the Dockerfile is empty: start with FROM <image>")]
    try:
        commands = dockerfile.parse_string(text)
    except dockerfile.GoParseError as e:
        m = _LINE.search(str(e))
        line = int(m.group(1)) if m else 1
        return [Mark(line, line, str(e))]
    out: list[Mark] = []
    first = True
    for c in commands:
        name = c.cmd.upper()
        if name not in _KNOWN:
            out.append(Mark(c.start_line, c.end_line, f"unknown instruction: {c.cmd}"))
            continue
        if first and name not in ("FROM", "ARG"):
            out.append(Mark(c.start_line, c.end_line, f"the first instruction must be FROM (or ARG), not {name}"))
        if name == "FROM":
            first = False
        if name in _NEEDS_ARGS and not any(v.strip() for v in c.value) and not c.heredocs:
            out.append(Mark(c.start_line, c.end_line, f"{name} requires at least one argument"))
    if first and commands:
        out.append(Mark(commands[0].start_line, commands[0].start_line, "no FROM instruction: nothing to build on"))
    return out
