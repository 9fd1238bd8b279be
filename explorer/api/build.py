"""Dockerfile builds and the build cache, as the CLI and the GUI ask for them.

The work happens in ``explorer.builder``; ``Builds`` turns keyword arguments into build
options, gives the builder the storage driver the containers of RUN steps use (the
context's, the same one ``strata run`` uses) and hands progress events through.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from .context import StoreContext

if TYPE_CHECKING:
    from ..builder.cache import CacheEntry, PruneReport
    from ..builder.events import BuildEvent, BuildResult
    from ..store.store import Store

__all__ = ["Builds"]


class Builds:
    """build, builder prune, and a look at the cache; needs the store and the driver."""

    def __init__(self, context: StoreContext) -> None:
        self._context = context

    @property
    def store(self) -> Store:
        return self._context.store

    def build(
        self,
        context_dir: str,
        dockerfile: str | None = None,
        tags: Sequence[str] = (),
        build_args: Mapping[str, str] | None = None,
        target: str | None = None,
        no_cache: bool = False,
        on_event: Callable[[BuildEvent], None] | None = None,
        cancel: threading.Event | None = None,
        *,
        dockerfile_text: str | None = None,
        network: str = "host",
        pull: bool = False,
    ) -> BuildResult:
        """Build the Dockerfile (default ``<context_dir>/Dockerfile``) and tag the result.

        ``on_event`` receives every ``BuildEvent`` (steps, output lines, the final
        ``finished`` or ``error``) on the calling thread; setting ``cancel`` stops the build
        between steps or kills a running RUN. Bad Dockerfiles raise ``DockerfileError``
        before anything is written; a failing RUN raises ``BuildError`` with its exit code.
        """
        from ..builder.executor import BuildOptions, build

        options = BuildOptions(
            context_dir=str(context_dir),
            dockerfile=str(dockerfile) if dockerfile else None,
            dockerfile_text=dockerfile_text,
            tags=list(tags),
            build_args=dict(build_args or {}),
            target=target or None,
            no_cache=no_cache,
            pull=pull,
            network=network,
        )
        with self.store.gc_lock():  # collectors wait: the layers this build stands on stay
            return build(self.store, options, on_event, cancel, self._context.driver)

    def builder_prune(self, all: bool = False) -> PruneReport:
        """Remove build cache: by default the entries whose layers no image uses; with
        ``all`` every entry, the context stat cache and RUN cache mounts too."""
        from ..builder.cache import BuildCache

        with self.store.gc_lock(exclusive=True):
            return BuildCache(self.store).prune(everything=all)

    def build_cache(self) -> list[CacheEntry]:
        """Every cache entry, oldest first (for ``df`` and the GUI)."""
        from ..builder.cache import BuildCache

        return BuildCache(self.store).entries()
