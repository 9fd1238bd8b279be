"""The model checks can fail: a model that breaks a rule after the tester was attached
aborts the process when the tester is kept (``tests.gui.modeltest.checked``), and passes
unnoticed when the tester is created and dropped, as the old tests did."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.fixtures import REPO_ROOT

SCRIPT = """
import gc, sys
from PySide6.QtCore import QAbstractListModel, QModelIndex, Qt
from PySide6.QtWidgets import QApplication
from PySide6.QtTest import QAbstractItemModelTester
from tests.gui.modeltest import checked

class Liar(QAbstractListModel):
    def rowCount(self, parent=QModelIndex()):
        return 0 if parent.isValid() else 1
    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        return "row" if role == Qt.ItemDataRole.DisplayRole and index.isValid() else None
    def lie(self):  # says a row came, but the count stays the same
        self.beginInsertRows(QModelIndex(), 1, 1)
        self.endInsertRows()

app = QApplication([])
model = Liar()
if sys.argv[1] == "kept":
    checked(model)
else:
    QAbstractItemModelTester(model, QAbstractItemModelTester.FailureReportingMode.Fatal)
gc.collect()
model.lie()
print("unnoticed")
"""


@pytest.mark.parametrize("how, caught", [("kept", True), ("dropped", False)])
def test_a_model_that_breaks_later_is_caught_only_by_a_kept_tester(how: str, caught: bool) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "QT_QPA_PLATFORM": "offscreen"}
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, how], capture_output=True, text=True, env=env, cwd=REPO_ROOT, timeout=60
    )
    if caught:
        assert proc.returncode != 0 and "unnoticed" not in proc.stdout, proc.stdout + proc.stderr
    else:
        assert proc.returncode == 0 and "unnoticed" in proc.stdout, proc.stdout + proc.stderr
