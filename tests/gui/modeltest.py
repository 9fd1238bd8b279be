"""Qt's model checker, kept alive as long as the model it checks.

``QAbstractItemModelTester`` checks a model on every change it signals, but only while
the tester object exists: one created and dropped checks only the model as it was at
that moment (often empty). ``checked`` parents the tester to the model, so it watches
every later change; a failure aborts the test process (Fatal mode), which
``test_modeltest.py`` shows happens.
"""

from __future__ import annotations

from PySide6.QtCore import QAbstractItemModel
from PySide6.QtTest import QAbstractItemModelTester


def checked(model: QAbstractItemModel) -> QAbstractItemModelTester:
    return QAbstractItemModelTester(model, QAbstractItemModelTester.FailureReportingMode.Fatal, model)
