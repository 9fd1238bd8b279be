"""The operations a user names (build, run, ls, save, pull …), shared by the CLI and the GUI.

Porcelain over plumbing, as dulwich has it: the store, builder, registry and runtime are
the plumbing; here each group of operations is one class that is handed, in its
constructor, exactly the collaborators it uses, and ``Strata`` is the porcelain that
builds the groups and forwards each public method to the one group that does it::

    StoreContext   root, the store (opened on first use), the storage driver (context.py)
    Images         list, history, inspect, tag, rmi, layer tree, image views   (context)
    Archives       import, load, save                                          (context)
    Volumes        volume create/ls/rm/prune/inspect, volume views             (context)
    Mounts         a container's -v/--mount/VOLUME plan, volume fill, runtime mounts (context)
    Containers     create … commit, ps, logs, exec, diff, views      (context, Volumes, Mounts)
    ContainerFiles cp, the window's edits of container files  (context, Containers, Mounts)
    Registries     pull, push, login, logout, a build's FROM               (context)
    Builds         build, builder prune, the build cache                   (context)
    System         info, df, the prunes, check --repair          (context, Containers)

No group looks another up by name or inherits from one; a group a test needs is built
from a ``StoreContext`` and the groups it names. ``Strata`` exposes them as typed
attributes (``strata.container_ops`` …) besides its forwarding methods, which are what
the CLI, the window and the tests call. What keeps what, gc and check are the store's
(``store.gc``, ``store.check``); ``System`` only adds the containers' states to them.

``Strata`` owns the store and nothing is global. Everything here is plain Python;
progress is reported through callbacks.
"""

from typing import TYPE_CHECKING

from .app import Strata

if TYPE_CHECKING:
    from .model import HistoryRow, ImageSummary, LsEntry, TreeNode

__all__ = ["HistoryRow", "ImageSummary", "LsEntry", "Strata", "TreeNode"]


def __getattr__(name: str) -> object:
    """The plain records load on first use: a `strata run` never needs them."""
    if name in ("HistoryRow", "ImageSummary", "LsEntry", "TreeNode"):
        from . import model

        return getattr(model, name)
    raise AttributeError(name)
