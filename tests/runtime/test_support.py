"""Telling the user which setting forbids rootless containers, and picking a driver."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from explorer.errors import RuntimeUnavailable
from explorer.runtime import (
    ContainerConfig,
    Process,
    RootFS,
    call_in_userns,
    check_support,
    detect_driver,
    start,
    support,
    sysctls,
)
from tests.capabilities import require_userns


def _fake_sysctls(monkeypatch: pytest.MonkeyPatch, values: dict[str, str]) -> None:
    monkeypatch.setattr(sysctls, "_sysctl", lambda name: values.get(name))


@pytest.mark.parametrize(
    ("values", "setting"),
    [
        ({"user.max_user_namespaces": "0"}, "user.max_user_namespaces=0"),
        ({"kernel.unprivileged_userns_clone": "0"}, "kernel.unprivileged_userns_clone=0"),
        ({"kernel.apparmor_restrict_unprivileged_userns": "1"}, "kernel.apparmor_restrict_unprivileged_userns=1"),
    ],
)
def test_each_setting_is_named_with_its_fix(
    monkeypatch: pytest.MonkeyPatch, values: dict[str, str], setting: str
) -> None:
    _fake_sysctls(monkeypatch, values)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    problem = support.userns_problem()
    assert problem is not None and setting in problem
    assert "sysctl -w" in problem and "\n" not in problem
    with pytest.raises(RuntimeUnavailable, match=setting.split("=")[0]):
        check_support()


def test_root_is_not_held_back_by_unprivileged_knobs(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_sysctls(monkeypatch, {"kernel.unprivileged_userns_clone": "0"})
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert support.userns_problem() is None


def test_this_machine_is_supported() -> None:
    require_userns()
    check_support()


def test_detect_driver_finds_overlay(tmp_path: Path) -> None:
    require_userns()
    assert detect_driver(str(tmp_path)) == "overlay"
    assert os.listdir(tmp_path) == []  # the probe cleans up after itself


def _start_with_namespaces_disabled(image: str, base: str) -> str:
    """Inside a namespace of our own, forbid further user namespaces, then start."""
    with open("/proc/sys/user/max_user_namespaces", "w") as fh:
        fh.write("0")
    for sub in ("diff", "work", "run"):
        os.makedirs(os.path.join(base, sub), exist_ok=True)
    config = ContainerConfig(
        RootFS("overlay", [image], os.path.join(base, "diff"), os.path.join(base, "work")),
        Process(["true"]),
        runtime_dir=os.path.join(base, "run"),
    )
    try:
        start(config).wait()
    except RuntimeUnavailable as e:
        return str(e)
    return "started"


def test_start_fails_with_one_line_when_userns_are_disabled(image: Path, tmp_path: Path) -> None:
    """user.max_user_namespaces is per user namespace, so it can be set to 0 for real here."""
    message: str = call_in_userns(_start_with_namespaces_disabled, str(image), str(tmp_path / "c"))
    assert message.startswith("user namespaces are disabled (user.max_user_namespaces=0)"), message
    assert "\n" not in message


def test_call_in_userns_returns_and_raises() -> None:
    require_userns()
    assert call_in_userns(os.getuid) == 0
    failing: Callable[[str], object] = os.stat
    with pytest.raises(FileNotFoundError):
        call_in_userns(failing, "/definitely/not/here")
