"""RUN under both storage drivers (issue 14: the vfs driver's RUN never ran in the
tests). The same Dockerfile gives the same files, owners, modes, links and deletions
whether its RUN steps ran on overlay or on vfs. (One difference is the kernel's, and
Docker's two drivers have it too: a later step that changes one name of a hard link
breaks the link on overlay, where copy-up makes a new inode, and not on vfs.)"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.capabilities import require_userns
from tests.fixtures import run_strata

DOCKERFILE = """\
FROM bb:1
RUN mkdir -p /data/keep /data/gone /opt && echo one > /data/keep/a && echo two > /data/gone/b \\
    && chmod 0700 /data/keep && chmod 0600 /data/keep/a && ln -s keep/a /data/link \\
    && echo linked > /opt/x && ln /opt/x /data/hard && chown 42:7 /data/hard
RUN chown -R 1000:1000 /data/keep && touch /opt/t && chmod 4755 /opt/t
RUN rm -rf /data/gone && mv /data/keep /data/kept && rm /bin/true
"""


def _listing(root: Path, image: str) -> list[dict[str, Any]]:
    out = run_strata("ls", image, "/", "-R", "--json", root=root, check=True).stdout
    rows = [json.loads(line) for line in out.splitlines() if line.strip()]
    return sorted(({k: v for k, v in r.items() if k not in ("layer", "mtime")} for r in rows), key=lambda r: r["path"])


@pytest.fixture
def context(tmp_path: Path) -> Path:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    return ctx


def test_run_steps_give_the_same_image_on_overlay_and_on_vfs(
    tmp_path: Path, busybox_rootfs_tar: Path, context: Path
) -> None:
    require_userns()
    listings = {}
    for driver in ("overlay", "vfs"):
        root = tmp_path / driver
        run_strata("import", busybox_rootfs_tar, "bb:1", root=root, check=True)
        run_strata("--storage-driver", driver, "build", "-q", "-t", "both:1", context, root=root, check=True)
        listings[driver] = _listing(root, "both:1")
        assert (
            run_strata(
                "--storage-driver", driver, "run", "--rm", "both:1", "cat", "/data/kept/a", root=root, check=True
            ).stdout
            == "one\n"
        )
    assert listings["overlay"] == listings["vfs"]
    paths = {r["path"]: r for r in listings["vfs"]}
    assert "/data/gone" not in paths and "/bin/true" not in paths and "/data/keep" not in paths
    assert (paths["/data/kept"]["uid"], paths["/data/kept"]["mode"] & 0o7777) == (1000, 0o700)
    assert (paths["/data/hard"]["uid"], paths["/data/hard"]["gid"]) == (42, 7)
    assert (paths["/opt/x"]["uid"], paths["/opt/x"]["gid"]) == (42, 7)
    assert paths["/opt/t"]["mode"] & 0o7777 == 0o4755
