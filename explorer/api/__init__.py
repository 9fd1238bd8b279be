"""The operations a user names (build, run, ls, save, pull …), shared by the CLI and the GUI.

``Strata`` is the one application context: it owns the store and nothing global.
Everything here is plain Python; progress is reported through callbacks.
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
