"""The store's contract runs on both storage drivers wherever a container's files take
part (a RUN step, a commit, a copy into a stopped container, a container's leftovers):
overlay keeps a container's changes in its diff, vfs in a full copy of its root, and
both must meet the same promises.

``driver`` runs a test once per driver and makes it the default of every ``strata`` the
test runs (``STRATA_STORAGE_DRIVER``); a test that takes the API passes it to ``Strata``.
Long tests that repeat one operation many times alternate instead (``alternate``), so
both drivers are covered without doubling their time. A test that involves no
container's files, or only one driver's by nature, says why in its docstring.
"""

from __future__ import annotations

import pytest

DRIVERS = ("overlay", "vfs")


def alternate(i: int) -> str:
    """The driver for the ``i``-th repetition of a long test."""
    return DRIVERS[i % len(DRIVERS)]


@pytest.fixture(params=DRIVERS)
def driver(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    name: str = request.param
    monkeypatch.setenv("STRATA_STORAGE_DRIVER", name)
    return name
