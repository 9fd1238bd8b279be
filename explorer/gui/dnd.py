"""What a drop on the window means.

A Dockerfile (or a folder holding one) opens in the editor and builds with its folder
as the context; a ``.tar`` (docker-archive or OCI layout) loads. Anything else is
refused with a reason the window shows, rather than silently ignored.
"""

from __future__ import annotations

import tarfile
from dataclasses import dataclass
from pathlib import Path

BUILD = "build"
LOAD = "load"
REFUSE = "refuse"

DOCKERFILE_NAMES = ("Dockerfile", "dockerfile", "Containerfile", "containerfile")
ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.zst", ".oci")


@dataclass(frozen=True)
class DropAction:
    kind: str  # BUILD, LOAD or REFUSE
    path: Path  # the Dockerfile or the archive
    context: Path | None = None  # BUILD: the folder to build in
    reason: str = ""  # REFUSE: why


def is_dockerfile_name(name: str) -> bool:
    lower = name.lower()
    return (
        name in DOCKERFILE_NAMES
        or lower.endswith(".dockerfile")
        or lower.startswith("dockerfile.")
        or lower.startswith("containerfile.")
    )


def looks_like_dockerfile(path: Path) -> bool:
    """A file of any name whose first instruction is FROM (or an ARG before it), as
    BuildKit requires: what ``Dockerfile2`` or ``web.build`` holds. Only the first
    64 KiB are read, and it must be UTF-8 text."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(1 << 16)
    except OSError:
        return False
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        text = head[: head.rfind(b"\n") + 1].decode("utf-8", "replace") if len(head) == 1 << 16 else ""
    for line in text.splitlines():
        word = line.strip().split(maxsplit=1)[0].upper() if line.strip() else ""
        if not word or word.startswith("#"):
            continue
        return word in ("FROM", "ARG")
    return False


def _looks_like_archive(path: Path) -> bool:
    name = path.name.lower()
    if name.endswith(ARCHIVE_SUFFIXES):
        return True
    try:
        return tarfile.is_tarfile(path)
    except OSError:
        return False


def classify(path: Path) -> DropAction:
    if path.is_dir():
        for name in DOCKERFILE_NAMES:
            candidate = path / name
            if candidate.is_file():
                return DropAction(BUILD, candidate, path)
        if (path / "oci-layout").is_file():
            return DropAction(LOAD, path)
        return DropAction(REFUSE, path, reason=f"{path.name}: this folder holds no Dockerfile")
    if not path.is_file():
        return DropAction(REFUSE, path, reason=f"{path}: not a file")
    if is_dockerfile_name(path.name):
        return DropAction(BUILD, path, path.parent)
    if _looks_like_archive(path):
        return DropAction(LOAD, path)
    if looks_like_dockerfile(path):
        return DropAction(BUILD, path, path.parent)
    return DropAction(REFUSE, path, reason=f"{path.name}: drop a Dockerfile, a folder with one, or an image .tar")


def classify_all(paths: list[Path]) -> list[DropAction]:
    return [classify(p) for p in paths]
