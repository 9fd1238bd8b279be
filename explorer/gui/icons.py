"""Icons from the desktop's theme, with the style's built-in ones where a theme has none,
so the window looks native on a full desktop and still complete under Xvfb."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication, QStyle

SP = QStyle.StandardPixmap

# name → (freedesktop theme names, style fallback)
_ICONS: dict[str, tuple[tuple[str, ...], QStyle.StandardPixmap]] = {
    "new": (("document-new",), SP.SP_FileIcon),
    "open": (("document-open",), SP.SP_DialogOpenButton),
    "save": (("document-save",), SP.SP_DialogSaveButton),
    "save-as": (("document-save-as",), SP.SP_DialogSaveButton),
    "build": (("run-build", "system-run"), SP.SP_MediaPlay),
    "run": (("media-playback-start",), SP.SP_MediaPlay),
    "stop": (("media-playback-stop", "process-stop"), SP.SP_MediaStop),
    "cancel": (("process-stop",), SP.SP_BrowserStop),
    "refresh": (("view-refresh",), SP.SP_BrowserReload),
    "find": (("edit-find",), SP.SP_FileDialogContentsView),
    "delete": (("edit-delete", "user-trash"), SP.SP_TrashIcon),
    "load": (("document-import",), SP.SP_ArrowDown),
    "export": (("document-export",), SP.SP_ArrowUp),
    "pull": (("go-down",), SP.SP_ArrowDown),
    "prune": (("edit-clear",), SP.SP_DialogResetButton),
    "folder": (("folder",), SP.SP_DirIcon),
    "folder-new": (("folder-new",), SP.SP_FileDialogNewFolder),
    "file": (("text-x-generic",), SP.SP_FileIcon),
    "symlink": (("emblem-symbolic-link",), SP.SP_FileLinkIcon),
    "image": (("package-x-generic",), SP.SP_DriveHDIcon),
    "container": (("utilities-terminal",), SP.SP_ComputerIcon),
    "volume": (("drive-harddisk",), SP.SP_DriveHDIcon),
    "cache": (("folder-templates",), SP.SP_DirClosedIcon),
    "disk": (("disk-quota", "drive-harddisk"), SP.SP_DriveHDIcon),
    "layers": (("view-list-tree",), SP.SP_FileDialogDetailedView),
    "analyze": (("office-chart-bar", "utilities-system-monitor"), SP.SP_FileDialogInfoView),
    "info": (("dialog-information",), SP.SP_MessageBoxInformation),
    "warning": (("dialog-warning",), SP.SP_MessageBoxWarning),
    "error": (("dialog-error",), SP.SP_MessageBoxCritical),
    "whiteout": (("edit-delete",), SP.SP_DialogDiscardButton),
    "edit": (("document-edit",), SP.SP_FileDialogDetailedView),
    "logs": (("text-x-log", "text-x-generic"), SP.SP_FileDialogInfoView),
    "commit": (("document-save",), SP.SP_DialogApplyButton),
    "tag": (("tag",), SP.SP_FileDialogListView),
    "mount-volume": (("drive-harddisk",), SP.SP_DriveHDIcon),
    "mount-bind": (("folder-remote", "folder-link"), SP.SP_DirLinkIcon),
    "mount-tmpfs": (("media-flash", "drive-removable-media"), SP.SP_DriveFDIcon),
}

RESOURCES = Path(__file__).resolve().parents[2] / "resources"


@cache
def icon(name: str) -> QIcon:
    themes, fallback = _ICONS.get(name, ((name,), SP.SP_FileIcon))
    for theme in themes:
        if QIcon.hasThemeIcon(theme):
            return QIcon.fromTheme(theme)
    style = QApplication.style()
    return style.standardIcon(fallback) if style is not None else QIcon()


@cache
def app_icon() -> QIcon:
    result = QIcon()
    for name in ("strata.svg", "strata.png"):
        path = RESOURCES / name
        if path.is_file():
            result.addFile(str(path))
    if result.isNull():
        return icon("layers")
    return result


def file_icons() -> dict[str, QIcon]:
    """Icons by index entry type, and by mount type (``mount:volume`` …), for the file tree."""
    return {
        "dir": icon("folder"),
        "file": icon("file"),
        "hardlink": icon("file"),
        "symlink": icon("symlink"),
        "char": icon("file"),
        "block": icon("file"),
        "fifo": icon("file"),
        "socket": icon("file"),
        "whiteout": icon("whiteout"),
        "mount:volume": icon("mount-volume"),
        "mount:bind": icon("mount-bind"),
        "mount:tmpfs": icon("mount-tmpfs"),
    }


def render_png(svg: Path = RESOURCES / "strata.svg", png: Path = RESOURCES / "strata.png", size: int = 256) -> bool:
    """Render the SVG icon to a PNG (for desktops and READMEs that want a bitmap):
    ``python -m explorer.gui.icons``."""
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QGuiApplication, QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    _app = QGuiApplication.instance() or QGuiApplication([])
    renderer = QSvgRenderer(str(svg))
    if not renderer.isValid():
        return False
    image = QImage(size, size, QImage.Format.Format_ARGB32)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    renderer.render(painter)
    painter.end()
    del _app
    return bool(image.save(str(png)))


if __name__ == "__main__":
    import os

    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    raise SystemExit(0 if render_png() else 1)
