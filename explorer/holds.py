"""Named points where a test can stop a command, to kill it exactly there.

Crash tests used to kill after a delay, which lands somewhere different on every
machine. Instead a long operation calls ``hold("build.step3.executed")`` at the points
that matter (a step ran but is not recorded, a layer is in place but not committed …);
with ``STRATA_TEST_HOLD`` naming one of them (``fnmatch`` pattern, ``@n`` for the n-th
time it is reached in this process) the command prints ``strata-test-hold NAME`` on
stderr and waits there for the test's SIGKILL. Without the variable a hold costs one
dictionary lookup.
"""

from __future__ import annotations

import fnmatch
import os
import time

ENV = "STRATA_TEST_HOLD"
_seen: dict[str, int] = {}


def hold(name: str) -> None:
    wanted = os.environ.get(ENV)
    if not wanted:
        return
    pattern, _, nth = wanted.partition("@")
    if not fnmatch.fnmatchcase(name, pattern):
        return
    _seen[pattern] = count = _seen.get(pattern, 0) + 1
    if nth and count != int(nth):
        return
    os.write(2, f"strata-test-hold {name}\n".encode())
    while True:
        time.sleep(3600)
