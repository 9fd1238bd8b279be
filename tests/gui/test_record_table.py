"""Tables merge by key and sort in place."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QPersistentModelIndex, Qt

from explorer.gui.models.record_table import Column, RecordTableModel
from tests.gui.modeltest import checked


@dataclass(frozen=True)
class Rec:
    name: str
    size: int


def _model() -> RecordTableModel[Rec]:
    return RecordTableModel(
        [Column("Name", lambda r: r.name), Column("Size", lambda r: str(r.size), sort=lambda r: r.size, right=True)],
        key=lambda r: r.name,
    )


def test_merge_and_sort(qapp: Any) -> None:
    model = _model()
    checked(model)
    model.set_records([Rec("a", 3), Rec("b", 10), Rec("c", 2)])
    held = QPersistentModelIndex(model.index(1, 0))
    removed: list[int] = []
    model.rowsRemoved.connect(lambda *_: removed.append(1))
    model.set_records([Rec("b", 11), Rec("c", 2), Rec("d", 1)])
    assert [r.name for r in model.records] == ["b", "c", "d"] and removed == [1]
    assert held.isValid() and model.data(held) == "b" and model.data(model.index(held.row(), 1)) == "11"
    model.sort(1, Qt.SortOrder.DescendingOrder)
    assert [r.name for r in model.records] == ["b", "c", "d"][::1]
    model.sort(1, Qt.SortOrder.AscendingOrder)
    assert [r.name for r in model.records] == ["d", "c", "b"]
    assert model.data(held) == "b" and held.row() == 2
    model.set_records([Rec("b", 11), Rec("c", 2), Rec("d", 1), Rec("a", 5)])
    assert [r.name for r in model.records] == ["d", "c", "a", "b"]  # new rows land sorted
