"""Files given on the command line or by the desktop entry reach the window."""

from __future__ import annotations

import configparser
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from explorer.gui.main_window import MainWindow
from explorer.launcher import USAGE, UsageError, launch_gui, parse_args
from tests.gui.archives import write_docker_archive
from tests.gui.conftest import wait_tasks

REPO = Path(__file__).resolve().parents[2]


def test_parse_args(tmp_path: Path) -> None:
    df = tmp_path / "Dockerfile"
    df.write_text("FROM scratch\n")
    assert parse_args([]) == (None, [])
    assert parse_args(["gui", "--root", "/s", str(df)]) == ("/s", [df])
    assert parse_args(["--root=/s", "gui", str(tmp_path)]) == ("/s", [tmp_path])
    assert parse_args(["gui", "--", f"file://{df}"]) == (None, [df])
    with pytest.raises(UsageError, match="no such file or folder"):
        parse_args(["gui", str(tmp_path / "missing")])
    with pytest.raises(UsageError, match="unknown option --bogus"):
        parse_args(["gui", "--bogus"])
    with pytest.raises(UsageError, match="needs a directory"):
        parse_args(["gui", "--root"])


def test_launch_reports_bad_input_in_one_line(capsys: Any) -> None:
    assert launch_gui(["gui", "/nonexistent/Dockerfile"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "/nonexistent/Dockerfile" in err
    assert launch_gui(["gui", "--help"]) == 0
    assert capsys.readouterr().out.strip() == USAGE


def test_desktop_entry_passes_files_and_names_the_types() -> None:
    entry = configparser.ConfigParser(interpolation=None)
    entry.optionxform = str  # type: ignore[assignment,method-assign]
    entry.read(REPO / "packaging" / "strata.desktop")
    section = entry["Desktop Entry"]
    assert section["Exec"] == "strata gui %F"
    types = [t for t in section["MimeType"].split(";") if t]
    assert {"text/x-dockerfile", "application/x-tar"} <= set(types)
    assert section["MimeType"].endswith(";") and section["Keywords"].endswith(";")
    mime = ET.parse(REPO / "resources" / "strata-mime.xml").getroot()
    ns = {"m": "http://www.freedesktop.org/standards/shared-mime-info"}
    declared = mime.find("m:mime-type", ns)
    assert declared is not None and declared.get("type") == "text/x-dockerfile"
    assert {g.get("pattern") for g in declared.findall("m:glob", ns)} >= {"Dockerfile", "Containerfile"}


def test_dev_run_installs_the_entry_icon_and_type_for_the_user(tmp_path: Path) -> None:
    """``dev.sh run`` puts the desktop entry (pointing at the venv's strata), the icons and
    the Dockerfile MIME type under the user's XDG data directory."""
    import subprocess

    data = tmp_path / "data"
    script = (
        f'source <(sed -n "/^ensure_desktop_entry()/,/^}}/p" {REPO}/packaging/dev.sh); '
        f"REPO={REPO} VENV=/opt/venv ensure_desktop_entry"
    )
    subprocess.run(
        ["bash", "-c", script],
        check=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "XDG_DATA_HOME": str(data)},
    )
    entry = (data / "applications" / "strata.desktop").read_text()
    assert "Exec=/opt/venv/bin/strata gui %F" in entry and "TryExec=/opt/venv/bin/strata" in entry
    assert (data / "icons/hicolor/scalable/apps/strata.svg").is_file()
    installed = data / "mime" / "packages" / "strata-dockerfile.xml"
    assert installed.read_bytes() == (REPO / "resources" / "strata-mime.xml").read_bytes()


def test_files_open_in_the_window(qtbot: Any, window: MainWindow, tmp_path: Path) -> None:
    one = tmp_path / "one"
    one.mkdir()
    (one / "Dockerfile").write_text("FROM scratch\nCOPY a /a\n")
    two = tmp_path / "two"
    two.mkdir()
    (two / "build.dockerfile").write_text("FROM scratch\n")
    archive = write_docker_archive(tmp_path / "img.tar", "fromcli:1", {"/hello": b"hi\n"})
    window.open_paths([one, two / "build.dockerfile", archive, tmp_path / "notes.txt"])
    editors = window.editors()
    assert [e.path for e in editors] == [one / "Dockerfile", two / "build.dockerfile"]
    assert editors[0].context_dir == one and editors[1].context_dir == two
    assert all(e.run is None for e in editors)  # opened, not built
    wait_tasks(qtbot, window.ctx)
    qtbot.waitUntil(lambda: any(r.repository == "fromcli" for r in window.images_view.model.records), timeout=5000)
    assert "notes.txt" in window.events.toPlainText()
