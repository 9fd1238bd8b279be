"""Stores with known images for the GUI tests, written straight through the layer store.

The GUI tests need images with given files, shared steps and whiteouts, fast and without
a build or a runtime; committing staged directories gives exactly that. Identical layer
specs on identical parents commit to the same layer (same chain id), as a build would.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Sequence
from typing import Any

from explorer.api import Strata
from explorer.store.images import Image, new_config
from explorer.store.index import DIR, FILE, WHITEOUT, FileEntry

WH = object()  # a file spec value meaning "delete this path"

FileSpec = dict[str, "bytes | object | None"]  # path → content, None for a directory, WH for a whiteout
LayerSpec = tuple[str, FileSpec]  # (created_by, files)

MTIME = 1_700_000_000.0


def _entries_for(files: FileSpec) -> list[FileEntry]:
    out: dict[str, FileEntry] = {}
    for path, content in sorted(files.items()):
        parts = path.strip("/").split("/")
        for i in range(1, len(parts)):
            d = "/" + "/".join(parts[:i])
            out.setdefault(d, FileEntry(d, DIR, 0o755, mtime=MTIME))
        p = "/" + "/".join(parts)
        if content is None:
            out[p] = FileEntry(p, DIR, 0o755, mtime=MTIME)
        elif content is WH:
            out[p] = FileEntry(p, WHITEOUT, 0, mtime=MTIME)
        else:
            assert isinstance(content, bytes)
            digest = hashlib.sha256(content).hexdigest()[:32]
            out[p] = FileEntry(p, FILE, 0o644, size=len(content), mtime=MTIME, digest=digest)
    return list(out.values())


def add_layer(strata: Strata, parent: str | None, created_by: str, files: FileSpec, write: bool = True) -> Any:
    """Commit ``files`` as a layer; ``write=False`` records only the index (fast, for big benches)."""
    store = strata.store
    entries = _entries_for(files)
    ident = hashlib.sha256(repr(sorted((e.path, e.type, e.digest) for e in entries)).encode()).hexdigest()
    with store.layers.staging() as st:
        for e in entries if write else ():
            target = st.diff / e.path.lstrip("/")
            if e.type == DIR:
                target.mkdir(parents=True, exist_ok=True)
            elif e.type == FILE:
                target.parent.mkdir(parents=True, exist_ok=True)
                content = files[e.path]
                assert isinstance(content, bytes)
                target.write_bytes(content)
                os.utime(target, (MTIME, MTIME))
        size = sum(e.size for e in entries)
        return store.layers.commit(st, entries, "sha256:" + ident, size, parent, created_by)


def add_image(
    strata: Strata,
    name: str | None,
    layers: Sequence[LayerSpec],
    config: dict[str, Any] | None = None,
    write: bool = True,
) -> Image:
    parent = None
    chain = []
    history = []
    for created_by, files in layers:
        layer = add_layer(strata, parent, created_by, files, write)
        chain.append(layer)
        parent = layer.id
        history.append({"created": "2024-01-01T00:00:00Z", "created_by": created_by})
    cfg = new_config(
        [layer.diff_id for layer in chain],
        history,
        config or {"Cmd": ["/bin/sh"]},
        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    )
    cfg["history"].append(
        {"created": cfg["created"], "created_by": f"/bin/sh -c #(nop) LABEL x={name}", "empty_layer": True}
    )
    return strata.store.images.create(cfg, parent, tags=[name] if name else [])


BASE: list[LayerSpec] = [
    (
        "/bin/sh -c #(nop) ADD file:rootfs in / ",
        {
            "/etc": None,
            "/etc/hostname": b"base\n",
            "/etc/passwd": b"root:x:0:0:root:/root:/bin/sh\n",
            "/etc/group": b"root:x:0:\n",
            "/bin": None,
            "/bin/sh": b"\x7fELF" + bytes(200),
            "/usr/share/doc/readme.txt": b"hello\n" * 100,
        },
    ),
    ("/bin/sh -c echo one > /etc/motd", {"/etc/motd": b"one\n", "/tmp/cache.bin": bytes(4096)}),
]


def two_images_sharing_steps(strata: Strata) -> tuple[Image, Image]:
    """app:1 and app:2 share the base and one step, then differ."""
    a = add_image(
        strata,
        "app:1",
        [*BASE, ("/bin/sh -c rm /tmp/cache.bin && echo a > /app", {"/tmp/cache.bin": WH, "/app": b"a\n"})],
    )
    b = add_image(
        strata, "app:2", [*BASE, ("/bin/sh -c echo bb > /etc/motd", {"/etc/motd": b"bb\n", "/etc/extra": b"x"})]
    )
    return a, b


def big_image(strata: Strata, name: str, files: int = 100_000, big_dir: int = 10_000) -> Image:
    """One layer of ``files`` files: ``big_dir`` of them in /big, the rest 1,000 to a folder."""
    spec: FileSpec = {f"/big/file{i:05d}": b"x" * (i % 7) for i in range(big_dir)}
    for i in range(files - big_dir):
        spec[f"/usr/lib/pkg{i // 1000:03d}/f{i:06d}.so"] = b"y" * (i % 11)
    spec["/etc/hostname"] = b"big\n"
    return add_image(strata, name, [("/bin/sh -c #(nop) ADD big", spec)], write=False)
