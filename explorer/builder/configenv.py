"""A step's view of the container config: its ``Env`` list as a mapping, and the argv a
shell-form command becomes under the config's ``Shell``. Planning, COPY and RUN all need
these, so they live apart from each."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

DEFAULT_SHELL = ["/bin/sh", "-c"]


def env_dict(env: Iterable[str]) -> dict[str, str]:
    """``["K=V", …]`` as a dict (a later duplicate wins, as in a process environment)."""
    out: dict[str, str] = {}
    for item in env:
        key, _, value = item.partition("=")
        out[key] = value
    return out


def set_env(env: list[str], key: str, value: str) -> list[str]:
    """``env`` with ``key`` set: a variable already there keeps its place (both of Docker's
    builders replace it in place, so ``docker inspect`` lists Env in first-set order), a new
    one goes at the end."""
    out: list[str] = []
    found = False
    for item in env:
        if item.partition("=")[0] == key:
            if not found:
                out.append(f"{key}={value}")
            found = True
        else:
            out.append(item)
    if not found:
        out.append(f"{key}={value}")
    return out


def shell_form(config: Mapping[str, Any], command: Sequence[str], json_form: bool) -> list[str]:
    """The argv of a command: exec form as written, shell form under the config's shell."""
    if json_form:
        return list(command)
    shell = list(config.get("Shell") or DEFAULT_SHELL)
    return [*shell, *command]
