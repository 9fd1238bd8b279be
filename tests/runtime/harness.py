"""The container harness the runtime tests share: one container of one driver,
its runs, and its changes in overlay form."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from explorer.fsutil import rmtree
from explorer.runtime import (
    ContainerConfig,
    Mount,
    Process,
    RootFS,
    call_in_userns,
    start,
    vfs_diff,
    vfs_materialize,
)


@dataclass
class Result:
    code: int
    out: str
    err: str


class Harness:
    """One container (its layer dirs and runtime dir) of one driver."""

    def __init__(self, driver: str, base: Path, layers: list[Path]) -> None:
        self.driver = driver
        self.base = base
        self.layers = [str(p) for p in layers]  # top-most first
        self.upper = base / "diff"
        self.work = base / "work"
        self.rootdir = base / "root"
        self.runtime_dir = str(base / "run")
        self._materialized = False
        self._diffs = 0

    def add_layers_on_top(self, *layers: Path) -> None:
        assert not self._materialized, "add layers before the first run"
        self.layers = [str(p) for p in layers] + self.layers

    def rootfs(self) -> RootFS:
        if self.driver == "overlay":
            self.upper.mkdir(exist_ok=True)
            self.work.mkdir(exist_ok=True)
            return RootFS("overlay", self.layers, str(self.upper), str(self.work))
        if not self._materialized:
            call_in_userns(vfs_materialize, self.layers, str(self.rootdir))
            self._materialized = True
        return RootFS("vfs", rootdir=str(self.rootdir))

    def config(
        self,
        args: list[str],
        *,
        mounts: list[Mount] | None = None,
        network: str = "host",
        hostname: str = "box",
        **process: object,
    ) -> ContainerConfig:
        return ContainerConfig(
            rootfs=self.rootfs(),
            process=Process(args, **process),  # type: ignore[arg-type]
            runtime_dir=self.runtime_dir,
            hostname=hostname,
            mounts=mounts or [],
            network=network,  # type: ignore[arg-type]
        )

    def run(self, args: list[str], *, stdin_data: bytes | None = None, **kw: object) -> Result:
        cfg = self.config(args, **kw)  # type: ignore[arg-type]
        out_path, err_path = self.base / "out", self.base / "err"
        with out_path.open("wb") as out, err_path.open("wb") as err:
            stdin_fd = None
            if stdin_data is not None:
                in_path = self.base / "in"
                in_path.write_bytes(stdin_data)
                stdin_file = in_path.open("rb")
                stdin_fd = stdin_file.fileno()
            try:
                running = start(cfg, stdin=stdin_fd, stdout=out.fileno(), stderr=err.fileno())
            finally:
                if stdin_data is not None:
                    stdin_file.close()
            code = running.wait()
        assert code is not None
        return Result(code, out_path.read_text(errors="replace"), err_path.read_text(errors="replace"))

    def changes(self) -> Path:
        """The container's changes in overlay form: the upperdir, or the vfs diff."""
        if self.driver == "overlay":
            return self.upper
        self._diffs += 1
        dest = self.base / f"vfsdiff{self._diffs}"
        call_in_userns(vfs_diff, self.layers, str(self.rootdir), str(dest), runtime_dir=self.runtime_dir)
        return dest

    def remove(self) -> None:
        """Container files may belong to subordinate ids; delete them as the container's root."""
        call_in_userns(rmtree, str(self.base))


def listing(root: Path) -> dict[str, str]:
    """rel path → kind ('file', 'dir', 'link', 'whiteout', 'other') of a tree."""
    out: dict[str, str] = {}
    for top, dirs, files in os.walk(root):
        for name in dirs + files:
            full = os.path.join(top, name)
            st = os.lstat(full)
            rel = os.path.relpath(full, root)
            if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                out[rel] = "whiteout"
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = "dir"
            elif stat.S_ISREG(st.st_mode):
                out[rel] = "file"
            elif stat.S_ISLNK(st.st_mode):
                out[rel] = "link"
            else:
                out[rel] = "other"
    return out
