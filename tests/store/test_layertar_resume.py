"""write_layer_tar's fast paths: headers built directly, and hashing resumed from an
earlier layer's checkpoints. Both must give exactly the bytes and digest of the slow way."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from explorer.store import layertar, tarstream
from explorer.store.index import FileEntry
from explorer.store.layertar import CHECKPOINTS_KEY, EarlierLayer, write_layer_tar
from explorer.store.tarsplit import read_footer, reassemble

MTIME = 1_700_000_000.5

names = st.one_of(
    st.text(alphabet="abc/._-", min_size=1, max_size=120),
    st.text(min_size=1, max_size=30),
)
numbers = st.one_of(
    st.integers(0, 10), st.integers(0, 2**40), st.sampled_from([0o7777777, 0o10000000, 0o77777777777, 0o100000000000])
)


@settings(max_examples=400, deadline=None)
@given(
    name=names,
    link=st.one_of(st.just(""), names),
    flag=st.sampled_from(["0", "1", "2", "3", "4", "5", "6"]),
    mode=st.integers(0, 0o177777),
    uid=numbers,
    gid=numbers,
    size=numbers,
    mtime=st.one_of(numbers, st.integers(-(2**34), -1)),
    dev=st.sampled_from([0, 8, 0o7777777, 0o10000000]),
)
def test_direct_headers_are_build_header_bytes(
    name: str, link: str, flag: str, mode: int, uid: int, gid: int, size: int, mtime: int, dev: int
) -> None:
    expected = tarstream.build_header(
        name, flag, mode=mode, uid=uid, gid=gid, size=size, mtime=mtime, linkname=link, devmajor=dev, devminor=dev
    )
    assert layertar._header(name, flag, mode, uid, gid, size, mtime, link, dev, dev) == expected


def make_tree(root: Path, files: int = 40) -> list[FileEntry]:
    entries = [FileEntry("/d", "dir", 0o755, mtime=MTIME)]
    (root / "d").mkdir(parents=True)
    for i in range(files):
        data = os.urandom(2000 + 37 * i)
        (root / "d" / f"f{i:02d}").write_bytes(data)
        entries.append(FileEntry(f"/d/f{i:02d}", "file", 0o644, 0, 0, len(data), MTIME))
    return entries


def sha_of(root: Path, entries: list[FileEntry]) -> tuple[str, int, bytes]:
    out = io.BytesIO()
    diff_id, size = write_layer_tar(str(root), entries, out)
    return diff_id, size, out.getvalue()


@pytest.fixture
def small_checkpoints(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(layertar, "_MIN_SPACING", 4096)


def relink(old: Path, new: Path, entries: list[FileEntry], changed: str) -> set[str]:
    """``new`` as a build step would make it: hard links of ``old`` but for ``changed``."""
    same = set()
    (new / "d").mkdir(parents=True)
    for e in entries:
        if e.type == "file" and e.path != changed:
            os.link(old / e.path[1:], new / e.path[1:])
            same.add(e.path[1:])
    (new / changed[1:]).write_bytes(b"a different payload")
    return same


def earlier_of(split: Path, same: set[str], entries: list[FileEntry]) -> EarlierLayer:
    return EarlierLayer(str(split), frozenset(same), {e.path: e for e in entries})


def with_size(entries: list[FileEntry], path: str, size: int) -> list[FileEntry]:
    return [FileEntry(e.path, e.type, e.mode, e.uid, e.gid, size, e.mtime) if e.path == path else e for e in entries]


def test_resumed_hash_is_the_full_hash(
    tmp_path: Path, small_checkpoints: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    entries = make_tree(old)
    write_layer_tar(str(old), entries, None, str(tmp_path / "old.split"))
    points = read_footer(str(tmp_path / "old.split"))[CHECKPOINTS_KEY]
    assert isinstance(points, list) and len(points) > 5
    same = relink(old, new, entries, "/d/f30")
    changed = with_size(entries, "/d/f30", len(b"a different payload"))
    read: list[str] = []
    real = layertar._Stream.payload

    def counting(self: layertar._Stream, rel: str, size: int) -> None:
        read.append(rel)
        real(self, rel, size)

    monkeypatch.setattr(layertar._Stream, "payload", counting)
    split = tmp_path / "new.split"
    resumed = write_layer_tar(
        str(new), changed, None, str(split), earlier=earlier_of(tmp_path / "old.split", same, entries)
    )
    assert read and "d/f00" not in read and "d/f30" in read  # the shared head was not read again
    monkeypatch.setattr(layertar._Stream, "payload", real)
    full_id, full_size, data = sha_of(new, changed)
    assert resumed == (full_id, full_size) == ("sha256:" + hashlib.sha256(data).hexdigest(), len(data))
    again = io.BytesIO()
    reassemble(str(split), str(new), again)
    assert again.getvalue() == data
    # The new tar-split's checkpoints are those a full write makes: the next rebuild resumes too.
    write_layer_tar(str(new), changed, None, str(tmp_path / "full.split"))
    assert read_footer(str(split))[CHECKPOINTS_KEY] == read_footer(str(tmp_path / "full.split"))[CHECKPOINTS_KEY]


def test_only_files_named_the_same_are_shared(tmp_path: Path, small_checkpoints: None) -> None:
    """A payload that is not a link of the earlier file (even with equal bytes) is hashed."""
    old, new = tmp_path / "old", tmp_path / "new"
    entries = make_tree(old)
    write_layer_tar(str(old), entries, None, str(tmp_path / "old.split"))
    relink(old, new, entries, "/d/f30")
    changed = with_size(entries, "/d/f30", len(b"a different payload"))
    resumed = write_layer_tar(
        str(new), changed, None, str(tmp_path / "new.split"), earlier=earlier_of(tmp_path / "old.split", set(), entries)
    )
    assert resumed == sha_of(new, changed)[:2]


def test_earlier_layers_without_checkpoints_or_libcrypto(
    tmp_path: Path, small_checkpoints: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    entries = make_tree(old)
    monkeypatch.setattr(layertar, "_LIB", [None])  # hashlib only: no states, no checkpoints
    write_layer_tar(str(old), entries, None, str(tmp_path / "old.split"))
    assert CHECKPOINTS_KEY not in read_footer(str(tmp_path / "old.split"))
    same = relink(old, new, entries, "/d/f05")
    changed = with_size(entries, "/d/f05", len(b"a different payload"))
    earlier = earlier_of(tmp_path / "old.split", same, entries)
    expected = sha_of(new, changed)[:2]
    assert write_layer_tar(str(new), changed, None, str(tmp_path / "a.split"), earlier=earlier) == expected
    monkeypatch.setattr(layertar, "_LIB", [])
    assert write_layer_tar(str(new), changed, None, str(tmp_path / "b.split"), earlier=earlier) == expected
    (tmp_path / "old.split").write_bytes(b"damaged")
    assert write_layer_tar(str(new), changed, None, str(tmp_path / "c.split"), earlier=earlier) == expected


def test_the_sha256_state_round_trips() -> None:
    lib = layertar._libcrypto()
    if lib is None:
        from tests.capabilities import missing

        missing("no libcrypto with SHA256_* here: layer writes fall back to hashlib")
    data = os.urandom(64 * 100 + 7)
    first = layertar._OpenSSLSha256(lib)
    first.update(memoryview(data[:6400]), 6400)
    state = first.state()
    assert state is not None
    second = layertar._OpenSSLSha256(lib)
    second.restore(6400, state)
    second.update(memoryview(data[6400:]), 7)
    assert second.hexdigest() == hashlib.sha256(data).hexdigest()
    odd = layertar._OpenSSLSha256(lib)
    odd.update(memoryview(data[:10]), 10)
    assert odd.state() is None  # only block boundaries are kept


def rewrite_footer(path: Path, change: dict[str, object]) -> None:
    import json
    import struct

    data = path.read_bytes()
    (length,) = struct.unpack("<Q", data[-16:-8])
    footer = json.loads(data[-16 - length : -16])
    footer.update(change)
    encoded = json.dumps(footer).encode()
    path.write_bytes(data[: -16 - length] + encoded + struct.pack("<Q", len(encoded)) + data[-8:])


@pytest.mark.parametrize(
    "points",
    [
        [[4096 + 1, "00" * 32, 3, 40, 1]],  # not at a block boundary
        [[1024, "not hex at all" + "0" * 50, 2, 40, 0]],
        "junk",
        [[512, "00" * 32, "extra"]],  # the old two-field form, damaged
        [[1024, "00" * 32, 2, 10**9, 0]],  # more records than the tar-split has
        [[1024, "00" * 32, 2, 7, 0]],  # records that do not end where the point says
    ],
)
def test_damaged_checkpoints_mean_hashing_everything(tmp_path: Path, small_checkpoints: None, points: object) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    entries = make_tree(old)
    write_layer_tar(str(old), entries, None, str(tmp_path / "old.split"))
    rewrite_footer(tmp_path / "old.split", {CHECKPOINTS_KEY: points})
    same = relink(old, new, entries, "/d/f35")
    changed = with_size(entries, "/d/f35", len(b"a different payload"))
    earlier = earlier_of(tmp_path / "old.split", same, entries)
    resumed = write_layer_tar(str(new), changed, None, str(tmp_path / "n.split"), earlier=earlier)
    assert resumed == sha_of(new, changed)[:2]


def test_a_path_the_new_layer_lacks_ends_the_shared_part(tmp_path: Path, small_checkpoints: None) -> None:
    """The earlier tar has a member the new one does not: nothing after it is shared."""
    old, new = tmp_path / "old", tmp_path / "new"
    entries = make_tree(old)
    write_layer_tar(str(old), entries, None, str(tmp_path / "old.split"))
    same = relink(old, new, entries, "/d/f35")
    (new / "d" / "f10").unlink()
    same.discard("d/f10")
    changed = [e for e in with_size(entries, "/d/f35", len(b"a different payload")) if e.path != "/d/f10"]
    resumed = write_layer_tar(
        str(new), changed, None, str(tmp_path / "n.split"), earlier=earlier_of(tmp_path / "old.split", same, entries)
    )
    assert resumed == sha_of(new, changed)[:2]


def test_a_tree_still_being_made_hashes_from_where_the_bytes_are(tmp_path: Path, small_checkpoints: None) -> None:
    """While the new tree is a clone in progress, shared files are read from the earlier
    tree, new content from where the writer parked it, and anything else waits for the
    tree (``settle``), which then is complete."""
    old, new, side = tmp_path / "old", tmp_path / "new", tmp_path / "side"
    entries = make_tree(old)
    write_layer_tar(str(old), entries, None, str(tmp_path / "old.split"))
    (new / "d").mkdir(parents=True)  # the clone has barely begun
    side.mkdir()
    (side / "parked").write_bytes(b"a different payload")
    changed = with_size(entries, "/d/f30", len(b"a different payload"))
    same = {e.path[1:] for e in entries if e.type == "file" and e.path not in ("/d/f30", "/d/f33")}
    settled: list[bool] = []

    def settle() -> None:  # what the writer's settle does: the tree becomes final
        settled.append(True)
        for e in entries:
            if e.type == "file" and e.path != "/d/f30":
                os.link(old / e.path[1:], new / e.path[1:])
        os.rename(side / "parked", new / "d/f30")

    earlier = EarlierLayer(str(tmp_path / "old.split"), frozenset(same), {e.path: e for e in entries}, str(old))
    resumed = write_layer_tar(
        str(new),
        changed,
        None,
        str(tmp_path / "n.split"),
        earlier=earlier,
        elsewhere={"d/f30": str(side / "parked")},
        settle=settle,
    )
    assert settled == [True]  # d/f33 is neither shared nor parked: it waited for the tree
    assert resumed == sha_of(new, changed)[:2]


def test_members_after_the_change_are_replayed_not_remade(
    tmp_path: Path, small_checkpoints: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file added in the middle: the tar before it is spliced, the tar after it is the
    earlier tar-split's records replayed (headers not made again), and every byte hashed
    is still the new tar's."""
    old, new = tmp_path / "old", tmp_path / "new"
    entries = make_tree(old, files=60)
    write_layer_tar(str(old), entries, None, str(tmp_path / "old.split"))
    same = relink(old, new, entries, "/d/f50")
    (new / "d" / "f20x").write_bytes(b"a file between f20 and f21")
    added = FileEntry("/d/f20x", "file", 0o644, 0, 0, len(b"a file between f20 and f21"), MTIME)
    changed = [*with_size(entries, "/d/f50", len(b"a different payload")), added]
    made: list[str] = []
    real = layertar._member

    def counting(e: FileEntry) -> object:
        made.append(e.path)
        return real(e)

    monkeypatch.setattr(layertar, "_member", counting)
    split = tmp_path / "new.split"
    resumed = write_layer_tar(
        str(new), changed, None, str(split), earlier=earlier_of(tmp_path / "old.split", same, entries)
    )
    assert "/d/f20x" in made and "/d/f59" not in made and "/d/f05" not in made
    monkeypatch.setattr(layertar, "_member", real)
    full_id, full_size, data = sha_of(new, changed)
    assert resumed == (full_id, full_size)
    again = io.BytesIO()
    reassemble(str(split), str(new), again)
    assert again.getvalue() == data
    # Its own resume points are sound: a further change resumes from them.
    (new / "d" / "f55").unlink()
    (new / "d" / "f55").write_bytes(b"changed again")
    third = with_size(changed, "/d/f55", len(b"changed again"))
    newer = {e.path[1:] for e in changed if e.type == "file" and e.path != "/d/f55"}
    again_id = write_layer_tar(
        str(new), third, None, str(tmp_path / "third.split"), earlier=earlier_of(split, newer, changed)
    )
    assert again_id == sha_of(new, third)[:2]
