"""A registry's manifest or config nested without end is one line, as ``load`` says it
(issue 13, inputs): the pull used to die of a RecursionError."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from explorer.api import Strata
from tests.fixtures import run_strata
from tests.registry.conftest import FakeRegistry, sha

DEEP = b"[" * 100_000 + b"]" * 100_000


def _one_error(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr, proc.stderr
    (line,) = [line for line in proc.stderr.splitlines() if line.strip()]
    return line


def test_a_manifest_nested_too_deeply(app: Strata, fake_registry: FakeRegistry) -> None:
    fake_registry.manifests["deep/m:1"] = ("application/vnd.oci.image.manifest.v1+json", DEEP)
    line = _one_error(run_strata("pull", f"{fake_registry.address}/deep/m:1", root=app.root))
    assert line.startswith("Error: ") and "JSON" in line


@pytest.mark.parametrize("config", [DEEP, b'{"rootfs": {"diff_ids": []}, "history": ' + DEEP + b"}"])
def test_a_config_nested_too_deeply(app: Strata, fake_registry: FakeRegistry, config: bytes, tmp_path: Path) -> None:
    fake_registry.blobs[sha(config)] = config
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": sha(config),
                "size": len(config),
            },
            "layers": [],
        }
    ).encode()
    fake_registry.manifests["deep/c:1"] = ("application/vnd.oci.image.manifest.v1+json", manifest)
    line = _one_error(run_strata("pull", f"{fake_registry.address}/deep/c:1", root=app.root))
    assert line.startswith("Error: ")
    assert run_strata("system", "check", root=app.root).returncode == 0
