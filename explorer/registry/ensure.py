"""The base image of a build: used from the store when present, pulled when missing, and
pulled again when the user asks (``build --pull``), as ``FROM`` does in Docker."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from ..errors import ImageNotFound
from ..store import reference
from ..store.images import Image
from ..store.reference import daemon_source
from .daemon import import_from_daemon
from .events import Progress
from .pull import pull as pull_image
from .settings import RegistrySettings

if TYPE_CHECKING:
    from ..store.store import Store


def ensure_image(
    app_or_store: Any,
    ref: str,
    pull: bool = False,
    *,
    platform: str | None = None,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    settings: RegistrySettings | None = None,
) -> Image:
    """The image ``ref`` names, pulling it when it is not in the store or when ``pull``.

    ``app_or_store`` is a ``Strata`` (anything with ``.store``) or a ``Store``. An image
    id that is not here cannot be pulled and raises ImageNotFound.
    """
    store: Store = getattr(app_or_store, "store", app_or_store)
    if daemon_source(ref) is not None:
        return import_from_daemon(store, ref, progress=progress, cancel=cancel).image
    if not pull:
        try:
            return store.images.resolve(ref)
        except ImageNotFound:
            if reference.IMAGE_ID_RE.match(ref):
                raise  # a full image id names no repository to pull from
    return pull_image(store, ref, platform=platform, progress=progress, cancel=cancel, settings=settings).image
