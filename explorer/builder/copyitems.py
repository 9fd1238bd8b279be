"""The records COPY and ADD work with: what goes where (``CopyItem``), as whom (``Owner``),
and the error they fail with. A leaf module, so the planner (``copy``), the archive reader
(``archives``) and the layer writer (``layerwriter``) share them without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import DockerfileError
from ..store.tarstream import ByteSource


@dataclass(frozen=True)
class Owner:
    uid: int = 0
    gid: int = 0


ROOT = Owner()


@dataclass(slots=True)
class CopyItem:
    """One path to place in the new layer.

    ``source`` is the host file to read (regular files), ``data`` inline content (heredocs);
    ``link`` a symlink target or, for a hard link, the image path of the file it joins.
    """

    dest: str
    kind: str
    mode: int
    owner: Owner
    mtime_ns: int
    size: int = 0
    digest: str | None = None
    link: str | None = None
    source: str | None = None
    data: bytes | None = None
    reader: ByteSource | None = None
    immutable: bool = False  # ``source`` is a layer file, safe to hard-link


class CopyError(DockerfileError):
    """A COPY/ADD that cannot be carried out (bad destination, unknown owner …)."""
