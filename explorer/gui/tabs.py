"""The window's tabs: the store's own views, then the documents the user opens.

A title takes the width it needs up to a cap, and no more: a long one is elided at its
end (in the middle it would shrink to a bare "…" when the tabs are crowded); its full
name, a path for a Dockerfile, is in the tooltip. When the tabs do not fit, the store's
views — pinned, always there, and reachable from the sidebar too — show their icon only,
as a browser's pinned tabs do; then the documents shrink, eliding their titles, down to a
few letters each; only past that do the scroll buttons appear. A button at the end lists
every tab, so none is ever out of reach.
"""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt, QTimer
from PySide6.QtGui import QIcon, QResizeEvent
from PySide6.QtWidgets import QMenu, QTabBar, QTabWidget, QToolButton, QWidget

MAX_TITLE_CHARS = 26  # a tab is never wider than about this many average characters
HYSTERESIS = 24  # px: the pinned tabs get their titles back only with this much room to spare


class DocumentTabBar(QTabBar):
    """Tabs that elide their titles past a width cap, and shrink further when crowded."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setElideMode(Qt.TextElideMode.ElideRight)
        self.setUsesScrollButtons(True)
        self.setExpanding(False)

    def max_tab_width(self) -> int:
        return self.fontMetrics().averageCharWidth() * MAX_TITLE_CHARS + 2 * self.iconSize().width() + 24

    def tabSizeHint(self, index: int) -> QSize:
        size = super().tabSizeHint(index)
        if size.width() > self.max_tab_width():
            size.setWidth(self.max_tab_width())
        return size


class DocumentTabs(QTabWidget):
    """Pinned views first (no close button), then closable documents."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.bar = DocumentTabBar(self)
        self.setTabBar(self.bar)
        self.setDocumentMode(True)
        self.setMovable(True)
        self.setTabsClosable(True)
        self._pinned: dict[QWidget, tuple[str, int]] = {}  # widget → (title, width with the title)
        self.compact = False  # pinned tabs show their icon only
        self.all_tabs = QToolButton(self)
        self.all_tabs.setObjectName("all-tabs")
        self.all_tabs.setArrowType(Qt.ArrowType.DownArrow)
        self.all_tabs.setAutoRaise(True)
        self.all_tabs.setToolTip("All open tabs")
        self.all_tabs.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.tab_menu = QMenu(self.all_tabs)
        self.tab_menu.aboutToShow.connect(self._fill_menu)
        self.all_tabs.setMenu(self.tab_menu)
        self.setCornerWidget(self.all_tabs, Qt.Corner.TopRightCorner)
        self._fit_timer = QTimer(self)
        self._fit_timer.setSingleShot(True)
        self._fit_timer.setInterval(0)
        self._fit_timer.timeout.connect(self.fit)

    # --- adding ------------------------------------------------------------------------------

    def add_pinned(self, widget: QWidget, icon: QIcon, title: str) -> int:
        index = self.addTab(widget, icon, title)
        for side in (QTabBar.ButtonPosition.RightSide, QTabBar.ButtonPosition.LeftSide):
            self.bar.setTabButton(index, side, None)
        self.setTabToolTip(index, title)
        self._pinned[widget] = (title, self.bar.tabSizeHint(index).width())
        if self.compact:
            self.setTabText(index, "")
        return index

    def add_document(self, widget: QWidget, icon: QIcon, title: str, tooltip: str) -> int:
        index = self.addTab(widget, icon, title)
        self.setTabToolTip(index, tooltip or title)
        return index

    def set_document_title(self, widget: QWidget, title: str, tooltip: str) -> None:
        index = self.indexOf(widget)
        if index >= 0 and widget not in self._pinned:
            self.setTabText(index, title)
            self.setTabToolTip(index, tooltip or title)
            self._fit_timer.start()

    def is_pinned(self, widget: QWidget | None) -> bool:
        return widget in self._pinned

    def title_of(self, index: int) -> str:
        """The tab's full title, also while a pinned one shows its icon only."""
        widget = self.widget(index)
        if widget in self._pinned:
            return self._pinned[widget][0]
        return self.tabText(index)

    # --- fitting -----------------------------------------------------------------------------

    def room(self) -> int:
        """The width the tabs have: the widget's, less the corner button."""
        return self.width() - self.all_tabs.sizeHint().width()

    def natural_width(self) -> int:
        """What all tabs take with every title shown (documents up to their cap)."""
        total = 0
        for i in range(self.count()):
            widget = self.widget(i)
            total += self._pinned[widget][1] if widget in self._pinned else self.bar.tabSizeHint(i).width()
        return total

    def fit(self) -> None:
        """Pinned tabs lose their titles when the tabs would not fit, and get them back with room to spare."""
        natural, room = self.natural_width(), self.room()
        compact = natural > room if not self.compact else natural + HYSTERESIS > room
        if compact == self.compact:
            return
        self.compact = compact
        for widget, (title, _) in self._pinned.items():
            index = self.indexOf(widget)
            if index >= 0:
                self.setTabText(index, "" if compact else title)

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._fit_timer.start()

    def tabInserted(self, index: int) -> None:
        super().tabInserted(index)
        self._fit_timer.start()

    def tabRemoved(self, index: int) -> None:
        super().tabRemoved(index)
        self._fit_timer.start()

    def _fill_menu(self) -> None:
        self.tab_menu.clear()
        for i in range(self.count()):
            action = self.tab_menu.addAction(self.tabIcon(i), self.title_of(i))
            action.setToolTip(self.tabToolTip(i))
            action.setCheckable(True)
            action.setChecked(i == self.currentIndex())
            action.triggered.connect(lambda _=False, w=self.widget(i): self.setCurrentWidget(w))
