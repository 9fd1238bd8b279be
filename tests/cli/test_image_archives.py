"""docker-archive and OCI round trips through the real `strata` command, with Docker
and skopeo as the oracles."""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
from pathlib import Path

from tests.capabilities import require_docker, require_tool
from tests.fixtures import run_strata
from tests.fixtures.images import RICH_TAG, docker, docker_export_listing, docker_save

FIELDS = ("path", "type", "mode", "uid", "gid", "size", "link")


def strata_listing(root: Path, image: str) -> list[dict[str, object]]:
    proc = run_strata("ls", image, "-R", "--json", root=root, check=True)
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    return sorted(({k: r[k] for k in FIELDS} for r in rows), key=lambda r: str(r["path"]))


def docker_listing(tag: str) -> list[dict[str, object]]:
    return sorted(
        ({k: e[k] for k in FIELDS} for e in docker_export_listing(tag)),  # type: ignore[literal-required]
        key=lambda r: str(r["path"]),
    )


def assert_same_tree(ours: list[dict[str, object]], theirs: list[dict[str, object]]) -> None:
    a = {r["path"]: r for r in ours}
    b = {r["path"]: r for r in theirs}
    only_ours = sorted(set(a) - set(b))
    only_theirs = sorted(set(b) - set(a))
    differ = [(a[p], b[p]) for p in sorted(set(a) & set(b)) if a[p] != b[p]]
    assert not only_ours and not only_theirs and not differ, (
        f"only in strata: {only_ours[:10]}\nonly in docker: {only_theirs[:10]}\ndiffering: {differ[:5]}"
    )


def test_docker_save_loads_and_matches_docker_export(docker_rich_image: str, strata_root: Path, tmp_path: Path) -> None:
    archive = docker_save(docker_rich_image, tmp_path / "rich.tar")
    proc = run_strata("load", "-i", archive, check=True)
    assert "Loaded image: strata-test/rich:latest" in proc.stdout
    ours = strata_listing(strata_root, RICH_TAG)
    assert_same_tree(ours, docker_listing(docker_rich_image))
    by_path = {r["path"]: r for r in ours}
    assert by_path["/modes/setuid"]["mode"] == 0o4755
    assert by_path["/modes/sticky"]["mode"] == 0o1777
    assert by_path["/links/dangling"] == {**by_path["/links/dangling"], "type": "symlink", "link": "/nowhere/at/all"}
    assert by_path["/home/app/owned/file.txt"]["uid"] == 1000
    assert "/data/lower.txt" not in by_path and "/data/gone" not in by_path
    assert sorted(p for p in by_path if str(p).startswith("/data/replaced")) == [
        "/data/replaced",
        "/data/replaced/new.txt",
    ]
    assert "/names/dir with space/ünïcødé.txt" in by_path


def test_strata_save_loads_into_docker_and_matches(docker_rich_image: str, strata_root: Path, tmp_path: Path) -> None:
    run_strata("load", "-i", docker_save(docker_rich_image, tmp_path / "rich.tar"), check=True)
    expected = docker_listing(docker_rich_image)
    out = tmp_path / "ours.tar"
    run_strata("save", "-o", out, RICH_TAG, check=True)
    # Make Docker forget the image so that loading ours must ingest every layer above the base.
    docker("rmi", "--force", docker_rich_image)
    try:
        loaded = docker("load", "--input", str(out))
        assert "strata-test/rich:latest" in loaded.stdout
        assert_same_tree(docker_listing(docker_rich_image), expected)
        run = docker("run", "--rm", "--network", "none", docker_rich_image, "cat", "/links/hard.txt")
        assert run.stdout == "target\n"
    finally:
        subprocess.run(["docker", "image", "inspect", docker_rich_image], capture_output=True, check=False)


def test_save_is_deterministic_and_layers_keep_their_digests(
    docker_rich_image: str, strata_root: Path, tmp_path: Path
) -> None:
    run_strata("load", "-i", docker_save(docker_rich_image, tmp_path / "rich.tar"), check=True)
    run_strata("save", "-o", tmp_path / "a.tar", RICH_TAG, check=True)
    run_strata("save", "-o", tmp_path / "b.tar", RICH_TAG, check=True)
    assert (tmp_path / "a.tar").read_bytes() == (tmp_path / "b.tar").read_bytes()
    inspect = json.loads(run_strata("inspect", RICH_TAG, check=True).stdout)[0]
    docker_inspect = json.loads(docker("image", "inspect", docker_rich_image).stdout)[0]
    assert inspect["Id"] == docker_inspect["Id"]
    assert inspect["RootFS"]["Layers"] == docker_inspect["RootFS"]["Layers"]


def test_skopeo_accepts_both_formats(busybox_rootfs_tar: Path, strata_root: Path, tmp_path: Path) -> None:
    skopeo = require_tool("skopeo")
    run_strata("import", busybox_rootfs_tar, "demo/bb:1", check=True)
    run_strata("save", "-o", tmp_path / "d.tar", "demo/bb:1", check=True)
    run_strata("save", "--format", "oci", "-o", tmp_path / "o.tar", "demo/bb:1", check=True)
    for transport in (f"docker-archive:{tmp_path / 'd.tar'}", f"oci-archive:{tmp_path / 'o.tar'}"):
        proc = subprocess.run([str(skopeo), "inspect", transport], capture_output=True, text=True, check=False)
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["Layers"]


def test_oci_layout_round_trip_through_strata(busybox_rootfs_tar: Path, tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    run_strata("import", busybox_rootfs_tar, "demo/bb:1", root=a, check=True)
    run_strata("save", "--format", "oci", "-o", f"{tmp_path / 'layout'}/", "demo/bb:1", root=a, check=True)
    assert (tmp_path / "layout" / "oci-layout").is_file()
    run_strata("load", "-i", tmp_path / "layout", root=b, check=True)
    assert strata_listing(a, "demo/bb:1") == strata_listing(b, "demo/bb:1")


def test_skopeo_made_oci_archive_with_gzip_layers_loads(
    busybox_rootfs_tar: Path, strata_root: Path, tmp_path: Path
) -> None:
    skopeo = require_tool("skopeo")
    run_strata("import", busybox_rootfs_tar, "demo/bb:1", check=True)
    run_strata("save", "-o", tmp_path / "d.tar", "demo/bb:1", check=True)
    oci = tmp_path / "gz.tar"
    subprocess.run(
        [
            str(skopeo),
            "copy",
            "--dest-compress-format",
            "gzip",
            f"docker-archive:{tmp_path / 'd.tar'}",
            f"oci-archive:{oci}:demo/copied:2",
        ],
        check=True,
        capture_output=True,
    )
    other = tmp_path / "other"
    proc = run_strata("load", "-i", oci, root=other, check=True)
    assert "Loaded image" in proc.stdout
    ids = run_strata("images", "-q", root=other, check=True).stdout.split()
    assert len(ids) == 1
    assert strata_listing(other, "demo/copied:2") == strata_listing(strata_root, "demo/bb:1")


def test_load_rejects_a_tampered_blob_and_leaves_the_store_unchanged(
    busybox_rootfs_tar: Path, strata_root: Path, tmp_path: Path
) -> None:
    run_strata("import", busybox_rootfs_tar, "demo/bb:1", check=True)
    layout = tmp_path / "layout"
    run_strata("save", "--format", "oci", "-o", f"{layout}/", "demo/bb:1", check=True)
    index = json.loads((layout / "index.json").read_text())
    manifest_digest = index["manifests"][0]["digest"]
    manifest = json.loads((layout / "blobs/sha256" / manifest_digest[7:]).read_text())
    layer_blob = layout / "blobs/sha256" / manifest["layers"][0]["digest"][7:]
    with tarfile.open(layer_blob, "a") as tar:
        info = tarfile.TarInfo("evil.txt")
        tar.addfile(info)
    fresh = tmp_path / "fresh"
    proc = run_strata("load", "-i", layout, root=fresh)
    assert proc.returncode != 0
    assert "digest mismatch" in proc.stderr and manifest["layers"][0]["digest"] in proc.stderr
    assert "Traceback" not in proc.stderr
    assert run_strata("images", "-q", root=fresh, check=True).stdout.strip() == ""
    assert not any((fresh / "layers").iterdir())
    assert not [p for p in (fresh / "tmp").iterdir()]


def test_bad_input_is_one_line(strata_root: Path, tmp_path: Path) -> None:
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"not a tar at all" * 100)
    for args in (
        ["load", "-i", str(junk)],
        ["load", "-i", str(tmp_path / "missing.tar")],
        ["ls", "nosuch:image"],
        ["rmi", "nosuch"],
        ["tag", "nosuch", "x"],
        ["import", str(junk), "x"],
        ["tag", "x", "UPPER"],
    ):
        proc = run_strata(*args)
        assert proc.returncode != 0, args
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in proc.stderr, (args, proc.stderr)


def test_rmi_keeps_shared_layers(busybox_rootfs_tar: Path, strata_root: Path) -> None:
    run_strata("import", busybox_rootfs_tar, "demo/bb:1", check=True)
    run_strata("tag", "demo/bb:1", "demo/bb:2", check=True)
    out = run_strata("rmi", "demo/bb:1", check=True).stdout
    assert out.strip() == "Untagged: demo/bb:1"
    assert any((strata_root / "layers").iterdir())
    out = run_strata("rmi", "demo/bb:2", check=True).stdout
    assert "Deleted:" in out
    assert not any((strata_root / "layers").iterdir())


def test_docker_is_there_in_ci() -> None:
    require_docker()
    assert shutil.which("docker")
