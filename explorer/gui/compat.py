"""Working around a broken Qt binding so the window does not abort.

PySide6 6.12.0 on Python 3.11 drops a reference to ``None`` on each call of a C++ method
returning void and one to ``True`` on each signal emission. Python 3.12 made these
objects immortal, which hides the bug there; on 3.11 their counts reach zero after a few
thousand calls and the interpreter aborts ("none_dealloc"), seconds into using the window.

The fix is a binding without the bug (PySide6 < 6.12, or Python 3.12+). Until then,
when the bug is detected, the counts of the three singletons are raised once by 2**40,
which no session can use up; the singletons are never freed in a healthy process anyway,
so this changes nothing else. The check costs a few calls at start-up.
"""

from __future__ import annotations

import ctypes
import sys

from PySide6.QtCore import QObject, Signal

_HEADROOM = 1 << 40


class _Probe(QObject):
    fired = Signal(object)


def binding_loses_references() -> bool:
    """Whether this binding drops references to ``None`` or ``True`` (see the module doc)."""
    probe = _Probe()
    probe.fired.connect(lambda _: None)
    none_before, true_before = sys.getrefcount(None), sys.getrefcount(True)
    for _ in range(8):
        probe.setObjectName("probe")
        probe.fired.emit(1)
    lost = (none_before - sys.getrefcount(None)) + (true_before - sys.getrefcount(True))
    probe.deleteLater()
    return lost >= 8


def guard_singletons() -> bool:
    """Give ``None``, ``True`` and ``False`` enough references to outlive a leaking binding.
    Returns whether the workaround was needed."""
    if sys.version_info >= (3, 12) or not binding_loses_references():
        return False
    for obj in (None, True, False):
        count = ctypes.c_ssize_t.from_address(id(obj))
        count.value += _HEADROOM
    return True
