"""Stand-ins for the container and volume file operations, for the GUI tests.

The GUI tests exercise the window, not the backend: ``ShimStrata`` does what the API
contract says for a *stopped* overlay container directly in its diff directory (its
upper layer; a deletion of an image file is a 0/0 whiteout), and copies into a volume's
data folder. The backend's own versions enter the container's root in a helper process;
they are tested with the backend, and these keep the GUI tests fast and independent of
user namespaces.
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

from explorer.api import Strata


def _inside(base: Path, path: str) -> Path:
    parts = [p for p in path.split("/") if p]
    if any(p == ".." for p in parts):
        raise ValueError(f"{path}: no .. allowed")
    return base.joinpath(*parts) if parts else base


def _copy_in(host: str, directory: Path) -> None:
    src = Path(host)
    target = directory / src.name
    if src.is_dir():
        shutil.copytree(src, target, symlinks=True, dirs_exist_ok=True)
    else:
        directory.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target)


class ShimStrata(Strata):
    pass


def _container_write(self: Strata, name: str, path: str, data: bytes) -> None:
    target = _inside(self.container_diff_dir(name), path)
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists() and not target.is_file():
        target.unlink()
    target.write_bytes(data)


def _container_delete(self: Strata, name: str, path: str) -> None:
    target = _inside(self.container_diff_dir(name), path)
    if target.is_dir() and not target.is_symlink():
        shutil.rmtree(target)
    elif target.exists() or target.is_symlink():
        target.unlink()
    below = self.image_view(self.container(name).image)
    if below.lookup(path) is not None:
        target.parent.mkdir(parents=True, exist_ok=True)
        os.mknod(target, stat.S_IFCHR | 0o000, os.makedev(0, 0))


def _container_mkdir(self: Strata, name: str, path: str) -> None:
    _inside(self.container_diff_dir(name), path).mkdir(parents=True, exist_ok=False)


def _cp_in(self: Strata, name: str, host_path: str, container_path: str) -> None:
    _copy_in(host_path, _inside(self.container_diff_dir(name), container_path))


def _cp_in_volume(self: Strata, name: str, host_path: str, path: str) -> None:
    _copy_in(host_path, _inside(self.volume(name).mountpoint, path))


for _name, _fn in (("container_write", _container_write), ("container_delete", _container_delete),
                   ("container_mkdir", _container_mkdir), ("cp_in", _cp_in), ("cp_in_volume", _cp_in_volume)):
    setattr(ShimStrata, _name, _fn)
