"""Archives with values no file can hold, or JSON nested past any parser's depth: `strata
import` and `strata load` answer with one line naming the entry and leave the store as it was
(before, each ended in "internal error (OverflowError …)" or "(RecursionError …)")."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import tarfile
from pathlib import Path

import pytest

from tests.capabilities import require_userns
from tests.fixtures import run_strata

BASE = "test/base:1"


def pax_tar(pax: dict[str, str], name: str = "etc/f") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.pax_headers = 3, 1_700_000_000, pax
        tar.addfile(info, io.BytesIO(b"abc"))
    return buf.getvalue()


def docker_archive(manifest: bytes, config: bytes, layer: bytes) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in (("manifest.json", manifest), ("config.json", config), ("l/layer.tar", layer)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def config_for(layer: bytes) -> bytes:
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    return json.dumps(
        {"architecture": "amd64", "os": "linux", "config": {}, "rootfs": {"type": "layers", "diff_ids": [diff_id]}}
    ).encode()


MANIFEST = json.dumps([{"Config": "config.json", "RepoTags": ["hostile/x:1"], "Layers": ["l/layer.tar"]}]).encode()

OUT_OF_RANGE = [
    ({"uid": str(2**33)}, "uid 8589934592 is out of range (0 to 4294967294)"),
    ({"uid": "-5"}, "uid -5 is out of range (0 to 4294967294)"),
    ({"gid": str(2**40)}, "gid 1099511627776 is out of range (0 to 4294967294)"),
    ({"gid": "4294967295"}, "gid 4294967295 is out of range (0 to 4294967294)"),
    ({"mtime": "9" * 40}, f"mtime {'9' * 40} is out of range (years 1677 to 2262)"),
    ({"mtime": "-99999999999999"}, "mtime -99999999999999 is out of range (years 1677 to 2262)"),
    ({"mtime": "9223372036.854775808"}, "mtime 9223372036 is out of range (years 1677 to 2262)"),
    ({"mtime": "nan"}, "bad PAX time 'nan'"),
    ({"mtime": "inf"}, "bad PAX time 'inf'"),
    ({"mtime": "1e9"}, "bad PAX time '1e9'"),
    ({"mtime": "\u00b2"}, "bad PAX time '\u00b2'"),
    ({"mtime": "9" * 5000}, f"bad PAX time '{'9' * 40}…'"),
    ({"uid": "\u0661\u0662"}, "bad PAX uid '\u0661\u0662'"),
    ({"uid": "1_000"}, "bad PAX uid '1_000'"),
]


def _tree(root: Path) -> list[str]:
    return sorted(
        str(p.relative_to(root))
        for p in root.rglob("*")
        if "tmp" not in p.relative_to(root).parts[:1] and not p.name.startswith("metadata.db")
    )


@pytest.fixture
def store(strata_root: Path, busybox_rootfs_tar: Path) -> Path:
    require_userns()
    run_strata("import", busybox_rootfs_tar, BASE, check=True)
    return strata_root


def _state(store: Path) -> tuple[list[str], str, str]:
    images = run_strata("images", "-a", "-q", "--no-trunc", check=True).stdout
    tree = run_strata("tree", check=True).stdout
    return _tree(store), images, tree


def _one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    """The error line (load's progress lines before it aside)."""
    assert done.returncode != 0, done.stdout
    assert "internal error" not in done.stderr and "Traceback" not in done.stderr, done.stderr
    lines = [line for line in done.stderr.splitlines() if "loading layer" not in line]
    assert len(lines) == 1, done.stderr
    return lines[0]


@pytest.mark.parametrize(
    ("pax", "why"), OUT_OF_RANGE, ids=[f"{key}={value[:12]}" for pax, _ in OUT_OF_RANGE for key, value in pax.items()]
)
def test_import_refuses_values_no_file_can_hold(store: Path, tmp_path: Path, pax: dict[str, str], why: str) -> None:
    archive = tmp_path / "hostile.tar"
    archive.write_bytes(pax_tar(pax))
    before = _state(store)
    line = _one_line_error(run_strata("import", archive, "hostile/x:1"))
    assert line == f"Error: import {archive}: tar entry 'etc/f': {why}"
    assert _state(store) == before


@pytest.mark.parametrize(("pax", "why"), OUT_OF_RANGE[:5])
def test_load_refuses_a_layer_with_values_no_file_can_hold(
    store: Path, tmp_path: Path, pax: dict[str, str], why: str
) -> None:
    layer = pax_tar(pax)
    archive = tmp_path / "saved.tar"
    archive.write_bytes(docker_archive(MANIFEST, config_for(layer), layer))
    before = _state(store)
    line = _one_line_error(run_strata("load", "-i", archive))
    assert line == f"Error: layer l/layer.tar: tar entry 'etc/f': {why}"
    assert _state(store) == before


@pytest.mark.parametrize(
    "pax",
    [
        {"mtime": "9223372036.854775807"},
        {"mtime": "-9223372036.854775808"},
        {"uid": "4294967294", "gid": "+7"},
        {"mtime": "-1.5"},
    ],
)
def test_values_at_the_ends_of_the_range_load_and_save(store: Path, tmp_path: Path, pax: dict[str, str]) -> None:
    """Legitimate, if odd: such a layer imports, lists and saves again."""
    archive = tmp_path / "edge.tar"
    archive.write_bytes(pax_tar(pax))
    run_strata("import", archive, "edge/x:1", check=True)
    listed = run_strata("ls", "--json", "edge/x:1", "/etc", check=True).stdout
    entry = json.loads(listed)
    assert (entry["path"], entry["size"]) == ("/etc/f", 3)
    if "uid" in pax:
        assert (entry["uid"], entry["gid"]) == (4294967294, 7)
    run_strata("save", "-o", tmp_path / "again.tar", "edge/x:1", check=True)


def _deep(n: int) -> bytes:
    return b"[" * n + b"]" * n


@pytest.mark.parametrize("where", ["manifest", "config"])
@pytest.mark.parametrize("depth", [100_000, 2_000, 513])
def test_load_refuses_json_nested_too_deeply(store: Path, tmp_path: Path, where: str, depth: int) -> None:
    layer = pax_tar({})
    config = config_for(layer)
    manifest = MANIFEST
    if where == "manifest":
        manifest = b"[" * depth
        expected = "Error: docker-archive: manifest.json is not valid JSON: "
        at = 512  # the 513th "["
    else:
        config = config[:-1] + b', "deep": ' + _deep(depth) + b"}"
        expected = "Error: docker-archive config: config.json is not valid JSON: "
        at = config.index(b"[[") + 511  # inside the config's own object, the 512th "[" is level 513
    archive = tmp_path / "deep.tar"
    archive.write_bytes(docker_archive(manifest, config, layer))
    before = _state(store)
    line = _one_line_error(run_strata("load", "-i", archive))
    assert line == expected + f"arrays and objects nested deeper than 512 levels (at byte {at})"
    assert _state(store) == before


def test_json_nested_512_deep_still_loads(store: Path, tmp_path: Path) -> None:
    layer = pax_tar({})
    config = config_for(layer)[:-1] + b', "deep": ' + _deep(511) + b"}"
    archive = tmp_path / "deep.tar"
    archive.write_bytes(docker_archive(MANIFEST, config, layer))
    assert run_strata("load", "-i", archive, check=True).stdout.endswith("Loaded image: hostile/x:1\n")


@pytest.mark.parametrize(
    ("uid", "why"),
    [(-1, "uid -1 is out of range (0 to 4294967294)"), (2**40, "uid 1099511627776 is out of range (0 to 4294967294)")],
)
def test_import_refuses_base256_ids_in_the_header_itself(store: Path, tmp_path: Path, uid: int, why: str) -> None:
    """GNU tar writes big or negative numbers base-256 in the ustar field, no PAX record needed."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        info = tarfile.TarInfo("etc/f")
        info.size, info.uid = 3, uid
        tar.addfile(info, io.BytesIO(b"abc"))
    archive = tmp_path / "gnu.tar"
    archive.write_bytes(buf.getvalue())
    before = _state(store)
    line = _one_line_error(run_strata("import", archive, "hostile/x:1"))
    assert line == f"Error: import {archive}: tar entry 'etc/f': {why}"
    assert _state(store) == before


def test_load_refuses_an_oci_layout_whose_index_nests_too_deeply(store: Path, tmp_path: Path) -> None:
    layout = tmp_path / "layout"
    (layout / "blobs" / "sha256").mkdir(parents=True)
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (layout / "index.json").write_bytes(b'{"schemaVersion": 2, "manifests": ' + b"[" * 100_000)
    before = _state(store)
    line = _one_line_error(run_strata("load", "-i", layout))
    assert line == (
        "Error: OCI layout: index.json is not valid JSON: "
        "arrays and objects nested deeper than 512 levels (at byte 545)"
    )
    assert _state(store) == before
