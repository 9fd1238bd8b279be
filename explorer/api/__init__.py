"""The operations a user names (build, run, ls, save, pull …), shared by the CLI and the GUI.

``Strata`` is the one application context: it owns the store and nothing global.
Everything here is plain Python; progress is reported through callbacks.
"""

from .app import Strata
from .model import HistoryRow, ImageSummary, LsEntry, TreeNode

__all__ = ["HistoryRow", "ImageSummary", "LsEntry", "Strata", "TreeNode"]
