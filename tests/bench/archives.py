"""Synthetic docker-archives for benchmarks: many files, many layers, deterministic."""

from __future__ import annotations

import hashlib
import io
import json
import random
import tarfile
from pathlib import Path


def _layer_tar(index: int, files: int, size: int, rng: random.Random) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        dirs: set[str] = set()
        blob = rng.randbytes(max(size, 1) * 4)
        for i in range(files):
            d = f"l{index}/d{i % 100:03d}"
            if d not in dirs:
                for part in (f"l{index}", d):
                    if part not in dirs:
                        info = tarfile.TarInfo(part)
                        info.type = tarfile.DIRTYPE
                        info.mode = 0o755
                        tar.addfile(info)
                        dirs.add(part)
            info = tarfile.TarInfo(f"{d}/f{i:06d}")
            start = rng.randrange(0, len(blob) - size) if size else 0
            data = blob[start : start + size]
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def make_docker_archive(
    path: Path, layers: int, files_per_layer: int, file_size: int, tag: str = "bench/many:1", seed: int = 7
) -> Path:
    """A docker-archive of ``layers`` layers with ``files_per_layer`` files each."""
    rng = random.Random(seed)
    diff_ids = []
    with tarfile.open(path, "w") as out:
        names = []
        for i in range(layers):
            data = _layer_tar(i, files_per_layer, file_size, rng)
            digest = hashlib.sha256(data).hexdigest()
            diff_ids.append("sha256:" + digest)
            info = tarfile.TarInfo(f"{digest}/layer.tar")
            info.size = len(data)
            out.addfile(info, io.BytesIO(data))
            names.append(info.name)
        config = json.dumps(
            {
                "architecture": "amd64",
                "os": "linux",
                "config": {},
                "rootfs": {"type": "layers", "diff_ids": diff_ids},
                "history": [{"created_by": f"layer {i}"} for i in range(layers)],
            }
        ).encode()
        config_name = hashlib.sha256(config).hexdigest() + ".json"
        for name, data in (
            (config_name, config),
            ("manifest.json", json.dumps([{"Config": config_name, "RepoTags": [tag], "Layers": names}]).encode()),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            out.addfile(info, io.BytesIO(data))
    return path
