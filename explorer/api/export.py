"""Files out of a view onto the host for the user (the window's Extract and drag-out).

The copy itself is the store's one export (``store/export.py``) with the hardening every
export gets; what is the user's here is the rule set: contents and permission bits, no
setuid or setgid, no owners, devices left out, and every file readable and writable by
the user who asked, so they can open, change and remove what they took.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from ..store.export import USER_COPY, export_view
from ..store.union import UnionView


def export_to_host(
    view: UnionView, path: str, dest: str | os.PathLike[str], check: Callable[[], None] | None = None
) -> None:
    """Write ``path`` of ``view`` (a file, a link or a whole directory) as ``dest``, which
    must not exist; ``check`` raises to cancel between entries."""
    export_view(view, path, dest, USER_COPY, check=check)
