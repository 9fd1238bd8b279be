"""The Qt binding must keep Python's reference counts straight.

PySide6 6.12.0 on Python 3.11 drops a reference to ``None`` on every call of a C++
method returning void (``QLabel.setText``, ``QTreeWidgetItem.setData`` …) and one to
``True``/``False`` on every signal emission; 3.12+ hides this (immortal objects), 3.11
aborts with "none_dealloc" a few thousand calls later, i.e. seconds into using the window.
This test names the problem instead of letting the window die at random.
"""

from __future__ import annotations

import sys
from typing import Any

import PySide6
from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QLabel

# References handed back when a broken binding took them, so the test run itself survives.
_RESTORED: list[object] = []


class _Emitter(QObject):
    fired = Signal(object)


def test_setters_and_signals_keep_reference_counts(qapp: Any) -> None:
    label = QLabel()
    emitter = _Emitter()
    emitter.fired.connect(lambda _: None)
    none_before, true_before = sys.getrefcount(None), sys.getrefcount(True)
    for _ in range(50):
        label.setText("x")
        emitter.fired.emit(1)
    none_lost = none_before - sys.getrefcount(None)
    true_lost = true_before - sys.getrefcount(True)
    _RESTORED.extend([None] * max(0, none_lost) + [True] * max(0, true_lost))
    assert none_lost < 25 and true_lost < 25, (
        f"PySide6 {PySide6.__version__} on Python {sys.version.split()[0]} loses references to None/True "
        f"({none_lost}/{true_lost} in 50 calls): the window would abort with 'none_dealloc'. "
        "Install PySide6-Essentials<6.12 (6.11.3 is fine) or use Python 3.12+."
    )
