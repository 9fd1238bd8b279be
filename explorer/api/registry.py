"""Registry operations: pull, push, login, logout, and the build's base-image
lookup. Progress comes back as ``TransferEvent``s through ``progress``; ``cancel`` stops
a transfer between two reads."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from .context import StoreContext

if TYPE_CHECKING:
    from ..registry.events import Progress, TransferEvent
    from ..registry.pull import PullResult
    from ..registry.push import PushResult
    from ..store.images import Image
    from ..store.store import Store

__all__ = ["PullResult", "PushResult", "Registries", "TransferEvent"]


class Registries:
    """pull, push, login, logout; needs only the store."""

    def __init__(self, context: StoreContext) -> None:
        self._context = context

    @property
    def store(self) -> Store:
        return self._context.store

    def pull(
        self,
        name: str,
        *,
        platform: str | None = None,
        progress: Progress | None = None,
        cancel: threading.Event | None = None,
    ) -> PullResult:
        """``name``: ``alpine``, ``host:5000/app:1``, ``app@sha256:…``, ``docker-daemon:NAME``
        or ``podman:NAME``."""
        from ..registry.daemon import import_from_daemon
        from ..store.reference import daemon_source

        with self.store.gc_lock():  # a prune must not take the layers this pull builds on
            if daemon_source(name) is not None:
                return import_from_daemon(self.store, name, progress=progress, cancel=cancel)
            from ..registry.pull import pull

            return pull(self.store, name, platform=platform, progress=progress, cancel=cancel)

    def push(
        self,
        name: str,
        *,
        compression: str = "gzip",
        fmt: str | None = None,
        progress: Progress | None = None,
        cancel: threading.Event | None = None,
    ) -> PushResult:
        """``compression``: gzip (default), zstd or none; ``fmt``: docker or oci (default:
        docker for gzip, oci otherwise)."""
        from ..registry.push import push

        return push(self.store, name, compression=compression, fmt=fmt, progress=progress, cancel=cancel)

    def login(self, server: str | None, username: str, password: str) -> str:
        from ..registry.login import login

        return login(server, username, password)

    def logout(self, server: str | None) -> str:
        from ..registry.login import logout

        return logout(server)

    def ensure_image(
        self, name: str, pull: bool = False, *, progress: Progress | None = None, cancel: threading.Event | None = None
    ) -> Image:
        """The image a build's FROM names: from the store, pulled when missing or when ``pull``."""
        from ..registry.ensure import ensure_image

        return ensure_image(self.store, name, pull, progress=progress, cancel=cancel)
