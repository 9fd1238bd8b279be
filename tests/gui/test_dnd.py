"""What a dropped or opened file is (issue 14): Dockerfiles are known by their content as
well as by their name, so ``strata gui Dockerfile2`` opens it in the editor."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from explorer.gui import dnd


@pytest.mark.parametrize(
    "name, text",
    [
        ("Dockerfile2", "FROM debian:12\nRUN true\n"),
        ("web.build", "# syntax=docker/dockerfile:1\n\n# comment\nARG BASE=alpine\nFROM $BASE\n"),
        ("lower", "from busybox\n"),
    ],
)
def test_a_dockerfile_by_content_builds(tmp_path: Path, name: str, text: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    action = dnd.classify(path)
    assert (action.kind, action.path, action.context) == (dnd.BUILD, path, tmp_path)


@pytest.mark.parametrize(
    "name, data",
    [
        ("notes.txt", b"RUN is not first: this is prose\nFROM later\n"),
        ("empty", b""),
        ("binary", bytes(range(256)) * 10),
        ("script.sh", b"#!/bin/sh\necho FROM\n"),
    ],
)
def test_other_files_are_refused(tmp_path: Path, name: str, data: bytes) -> None:
    path = tmp_path / name
    path.write_bytes(data)
    action = dnd.classify(path)
    assert action.kind == dnd.REFUSE and name in action.reason


def test_names_and_archives_keep_their_meaning(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("RUN not even valid\n")
    assert dnd.classify(tmp_path / "Dockerfile").kind == dnd.BUILD  # the name says so
    archive = tmp_path / "image"
    with tarfile.open(archive, "w") as tar:
        (tmp_path / "FROM").write_text("FROM x\n")
        tar.add(tmp_path / "FROM", "manifest.json")
    assert dnd.classify(archive).kind == dnd.LOAD
