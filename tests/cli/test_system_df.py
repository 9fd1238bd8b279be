"""`strata system df` counts active containers by the API's state, the rule the prune
uses, never by reading the STATUS text back (issue 14)."""

from __future__ import annotations

import argparse
from typing import Any, cast

import pytest

from explorer.api.usage import ContainerUsage, DiskUsage
from explorer.cli.system_cmds import cmd_df

MIB = 1 << 20


class _App:
    def df(self) -> DiskUsage:
        return DiskUsage(
            containers=[
                ContainerUsage("1" * 64, "a", "app:1", "sh", 3 * MIB, "Up to date", "exited", 0.0, 0),
                ContainerUsage("2" * 64, "b", "app:1", "sh", 1 * MIB, "Restarting", "running", 0.0, 0),
            ]
        )


def test_active_and_reclaimable_follow_the_state(capsys: pytest.CaptureFixture[str]) -> None:
    assert cmd_df(cast(Any, _App()), argparse.Namespace(verbose=False)) == 0
    row = next(line.split() for line in capsys.readouterr().out.splitlines() if line.startswith("Containers"))
    assert row[1:3] == ["2", "1"]  # TOTAL, ACTIVE
    assert row[-2:] == ["3.15MB", "(75%)"]  # RECLAIMABLE: the exited one
