"""How the CLI shows transfer progress: live lines on a terminal, state changes elsewhere."""

from __future__ import annotations

import io

from explorer.cli.registry_cmds import Printer, describe
from explorer.registry import events
from explorer.registry.events import TransferEvent

RUN = [
    TransferEvent("", events.INFO, message="1: Pulling from demo/app"),
    TransferEvent("aaaaaaaaaaaa", events.WAITING, 0, 2_000_000, message="Waiting"),
    TransferEvent("bbbbbbbbbbbb", events.EXISTS, message="Already exists"),
    TransferEvent("aaaaaaaaaaaa", events.DOWNLOADING, 500_000, 2_000_000, 1_000_000.0, "Downloading"),
    TransferEvent("aaaaaaaaaaaa", events.DOWNLOADING, 1_000_000, 2_000_000, 1_000_000.0, "Downloading"),
    TransferEvent("aaaaaaaaaaaa", events.COMPLETE, 2_000_000, 2_000_000, 1_000_000.0, "Pull complete"),
    TransferEvent("", events.INFO, message="Digest: sha256:00"),
]


def test_a_log_gets_one_line_per_state_change() -> None:
    out = io.StringIO()
    printer = Printer(out, live=False)
    for event in RUN:
        printer(event)
    assert out.getvalue().splitlines() == [
        "1: Pulling from demo/app",
        "aaaaaaaaaaaa: Waiting",
        "bbbbbbbbbbbb: Already exists",
        "aaaaaaaaaaaa: Downloading",
        "aaaaaaaaaaaa: Pull complete",
        "Digest: sha256:00",
    ]


def test_a_terminal_gets_each_layer_redrawn_in_place_with_bytes_and_rate() -> None:
    out = io.StringIO()
    printer = Printer(out, live=True)
    for event in RUN[:4]:
        printer(event)
    text = out.getvalue()
    # the layer's line is two lines up (below it: the "Already exists" line)
    assert "\x1b[2A\r\x1b[2K" in text
    assert "500kB/2MB 1MB/s" in text and "[=======>" in text
    assert describe(RUN[5]) == "aaaaaaaaaaaa: Pull complete"


def test_quiet_prints_nothing() -> None:
    out = io.StringIO()
    printer = Printer(out, live=True, quiet=True)
    for event in RUN:
        printer(event)
    assert out.getvalue() == ""
