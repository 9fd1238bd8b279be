"""Disk usage counts shared bytes once and matches the disk; check finds and repairs."""

from __future__ import annotations

import os
from pathlib import Path

from explorer.api import Strata
from tests.api.conftest import IMAGE
from tests.api.test_containers import run


def bytes_on_disk(root: Path) -> int:
    seen: set[int] = set()
    total = 0
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            st = os.lstat(os.path.join(dirpath, name))
            if (
                st.st_ino in seen
                or not os.path.isfile(os.path.join(dirpath, name))
                or os.path.islink(os.path.join(dirpath, name))
            ):
                continue
            seen.add(st.st_ino)
            total += st.st_size
    return total


def test_df_counts_shared_layers_once_and_matches_disk(app: Strata) -> None:
    cid, _, _ = run(app, "sh", "-c", "head -c 50000 /dev/urandom > /blob")
    app.commit(cid, "test/child:1")
    cid2, _, _ = run(app, "sh", "-c", "head -c 7000 /dev/urandom > /other")
    app.commit(cid2, "test/child:2")
    usage = app.df()
    # layer content lives in layers/<id>/diff; the tar-split beside it is store metadata
    on_disk = sum(bytes_on_disk(d / "diff") for d in (app.store.root / "layers").iterdir())
    assert usage.layers_size == on_disk
    by_tag = {i.tags[0]: i for i in usage.images}
    base = by_tag[IMAGE]
    assert by_tag["test/child:1"].size == base.size + 50000
    assert by_tag["test/child:1"].shared_size == base.size
    assert by_tag["test/child:1"].unique_size == 50000
    assert by_tag["test/child:2"].unique_size == 7000
    assert sum(i.unique_size for i in usage.images) + base.size == usage.layers_size
    sizes = {c.id: c.size for c in usage.containers}
    if app.container(cid).driver == "overlay":
        assert sizes[cid] == 50000


def test_check_reports_and_repairs_without_touching_referenced_data(app: Strata) -> None:
    assert app.check() == []
    (app.store.root / "layers" / "stray").mkdir()
    (app.store.root / "containers" / "stray").mkdir()
    conn = app.store.meta.conn
    conn.execute("PRAGMA foreign_keys=OFF")  # simulate damage the constraints would normally prevent
    with app.store.meta.transaction() as conn:
        conn.execute("INSERT INTO tags(name, image) VALUES ('docker.io/x/y:z', 'sha256:" + "0" * 64 + "')")
    conn.execute("PRAGMA foreign_keys=ON")
    problems = app.check()
    assert {p.kind for p in problems} == {"orphan-dir", "dangling-tag"}
    fixed = app.check(repair=True)
    assert all(p.repaired for p in fixed)
    assert app.check() == []
    assert app.ls(IMAGE, "/bin")  # the image still reads


def test_check_says_what_each_directory_repair_frees(app: Strata) -> None:
    """The size the window shows beside a repair comes from the check itself, measured as
    ``system df`` measures (each inode once), before the repair moves the directory aside."""
    stray = app.store.root / "layers" / "stray"
    (stray / "diff").mkdir(parents=True)
    (stray / "diff" / "blob").write_bytes(bytes(5000))
    os.link(stray / "diff" / "blob", stray / "diff" / "blob-again")
    (app.store.root / "containers" / "empty").mkdir()
    found = {p.what: p.size for p in app.check()}
    assert found == {"layers/stray": 5000, "containers/empty": 0}
    repaired = app.check(repair=True)
    assert {p.what: (p.size, p.repaired) for p in repaired} == {
        "layers/stray": (5000, True),
        "containers/empty": (0, True),
    }
    assert not stray.exists()


def test_check_detects_corrupted_layer_content(app: Strata) -> None:
    layer = app.store.images.layers(app.image(IMAGE))[0]
    target = app.store.layers.diff_dir(layer.id) / "etc" / "passwd"
    data = target.read_bytes()
    target.write_bytes(data.replace(b"root", b"toor"))
    problems = app.check()
    assert [p.kind for p in problems] == ["corrupt-layer"]
    assert layer.diff_id in problems[0].detail
