"""Start latency: ``run --rm IMAGE true`` should cost well under 150 ms (Docker: ~300 ms).

Run with ``--bench -s`` to see the numbers."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.runtime.harness import Harness

RUNS = 20


def _average_start_wait(h: Harness) -> float:
    h.run(["true"])  # warm: init layer, page cache
    config = h.config(["true"])
    from explorer.runtime import start

    with open(os.devnull, "wb") as null:
        began = time.perf_counter()
        for _ in range(RUNS):
            assert start(config, stdout=null.fileno()).wait() == 0
        return (time.perf_counter() - began) / RUNS


@pytest.mark.bench
@pytest.mark.parametrize("driver", ["overlay", "vfs"])
@pytest.mark.parametrize("layer_count", [1, 130])
def test_start_latency(
    make_container: Callable[..., Harness], image: Path, tmp_path: Path, driver: str, layer_count: int
) -> None:
    layers = []
    for i in range(layer_count - 1):
        layer = tmp_path / "layers" / f"{i:03d}"
        layer.mkdir(parents=True)
        (layer / f"f{i}").write_text("x")
        layers.append(layer)
    h = make_container(driver, [*layers, image])
    seconds = _average_start_wait(h)
    print(f"\nstart+wait of true, {driver}, {layer_count} layers: {seconds * 1000:.1f} ms (average of {RUNS})")
    assert seconds < 0.15
