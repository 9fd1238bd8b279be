"""The differential build cases (tests/builder/cases/<area>/<name>/): loading, checking their
shape, and making their build contexts.

A case is data only: a ``Dockerfile`` and a ``case.json`` (the format is described in
test_differential.py's docstring). Contexts are made by this module rather than kept in git
because git cannot hold hard links, owners, odd modes, fixed mtimes or damaged archives.
"""

from __future__ import annotations

import base64
import bz2
import gzip
import io
import json
import lzma
import os
import re
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zstandard

from explorer.builder.parser import parse

CASES_DIR = Path(__file__).resolve().parent / "cases"

# Every mtime a case does not name: contexts and archives are the same on every run.
CASE_MTIME = 1_700_000_000

_ENTRY_KEYS = {
    "path",
    "type",
    "content",
    "content_b64",
    "mode",
    "uid",
    "gid",
    "mtime",
    "target",
    "compression",
    "members",
    "damage",
}
_ENTRY_TYPES = {"file", "dir", "symlink", "hardlink", "tar"}
_COMPRESSIONS = {"gz", "bz2", "xz", "zstd", "none"}
_DAMAGES = {"truncate-data", "drop-end-block", "none"}
_CASE_KEYS = {"what", "context", "dockerignore", "build_args", "target", "expect", "rebuild", "docker"}
_EXPECT_KEYS = {"ok", "error", "docker_error", "paths", "absent", "config", "same_inode", "distinct_inode"}
_PATH_KEYS = {"type", "mode", "uid", "gid", "size", "link", "sha256", "content"}
_REBUILD_KEYS = {"edit", "remove", "build_args", "cached"}
_BUILDERS = ("legacy", "buildkit")


class CaseFormatError(ValueError):
    """A case directory that does not follow the format: names the case and the key."""


@dataclass(frozen=True)
class Rebuild:
    """One build after the first, with the context changed first; `cached` has one entry per
    instruction slot (see `Case.slots`), None where that instruction is not run."""

    edit: tuple[Mapping[str, Any], ...]
    remove: tuple[str, ...]
    build_args: Mapping[str, str]
    cached: tuple[bool | None, ...]


@dataclass(frozen=True)
class Case:
    """One case directory, read and checked."""

    id: str  # "<area>/<name>"
    directory: Path
    dockerfile: str  # as written: FROM base
    what: str
    context: tuple[Mapping[str, Any], ...]
    dockerignore: str | None
    build_args: Mapping[str, str]
    target: str | None
    expect: Mapping[str, Any]
    rebuilds: tuple[Rebuild, ...]
    docker: Mapping[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return bool(self.expect["ok"])

    def docker_note(self, builder: str) -> str:
        """'same', 'differs: …' or 'skip: …' for `builder` (legacy or buildkit)."""
        return self.docker.get(builder, "same")

    def dockerfile_for(self, base_tag: str) -> str:
        """The Dockerfile with ``FROM base`` naming `base_tag` (the flags of FROM are kept)."""
        return _FROM_BASE.sub(lambda m: m.group(1) + base_tag + m.group(2), self.dockerfile)

    def slots(self) -> list[int]:
        """The Dockerfile lines of the instructions a rebuild's `cached` list is about: every
        instruction but FROM and the ARGs before the first FROM, in order."""
        nodes = parse(self.dockerfile).nodes
        seen_from = False
        lines: list[int] = []
        for node in nodes:
            if node.cmd == "from":
                seen_from = True
            elif seen_from:
                lines.append(node.start_line)
        return lines


_FROM_BASE = re.compile(r"(?im)^(\s*FROM\s+(?:--\S+\s+)*)base(\s|$)")


def load_cases(root: Path = CASES_DIR) -> list[Case]:
    """Every case under `root`, sorted by id; a malformed case raises CaseFormatError."""
    cases = []
    for meta in sorted(root.glob("*/*/case.json")):
        cases.append(load_case(meta.parent, root))
    return cases


def load_case(directory: Path, root: Path = CASES_DIR) -> Case:
    case_id = directory.relative_to(root).as_posix()

    def fail(message: str) -> CaseFormatError:
        return CaseFormatError(f"case {case_id}: {message}")

    try:
        raw = json.loads((directory / "case.json").read_text(encoding="utf-8"))
        dockerfile = (directory / "Dockerfile").read_text(encoding="utf-8")
    except (OSError, json.JSONDecodeError) as err:
        raise fail(str(err)) from err
    if not isinstance(raw, dict):
        raise fail("case.json must hold an object")
    _only(raw, _CASE_KEYS, fail, "case.json")
    if not isinstance(raw.get("what"), str) or not raw["what"].strip():
        raise fail('"what" must say in one line what the case checks')
    expect = raw.get("expect")
    if not isinstance(expect, dict) or not isinstance(expect.get("ok"), bool):
        raise fail('"expect" must be an object with "ok": true or false')
    _only(expect, _EXPECT_KEYS, fail, "expect")
    if not expect["ok"] and not isinstance(expect.get("error"), str):
        raise fail('a failing case needs "expect.error" (a substring of the one-line error)')
    for path, attrs in expect.get("paths", {}).items():
        if not path.startswith("/") or not isinstance(attrs, dict):
            raise fail(f"expect.paths: {path!r} must be absolute and map to an object")
        _only(attrs, _PATH_KEYS, fail, f"expect.paths[{path!r}]")
    context = tuple(raw.get("context", []))
    for entry in context:
        _check_entry(entry, fail)
    rebuilds = []
    for i, item in enumerate(raw.get("rebuild", [])):
        _only(item, _REBUILD_KEYS, fail, f"rebuild[{i}]")
        for entry in item.get("edit", []):
            _check_entry(entry, fail)
        cached = tuple(item.get("cached", []))
        rebuilds.append(
            Rebuild(
                edit=tuple(item.get("edit", [])),
                remove=tuple(item.get("remove", [])),
                build_args=dict(item.get("build_args", raw.get("build_args", {}))),
                cached=cached,
            )
        )
    docker = dict(raw.get("docker", {}))
    for builder, note in docker.items():
        if builder not in _BUILDERS or not isinstance(note, str):
            raise fail(f"docker.{builder}: give legacy/buildkit as 'same', 'differs: why' or 'skip: why'")
        if note != "same" and not re.match(r"(differs|skip): \S", note):
            raise fail(f"docker.{builder} = {note!r}: 'same', 'differs: why' or 'skip: why'")
    case = Case(
        id=case_id,
        directory=directory,
        dockerfile=dockerfile,
        what=raw["what"],
        context=context,
        dockerignore=raw.get("dockerignore"),
        build_args=dict(raw.get("build_args", {})),
        target=raw.get("target"),
        expect=expect,
        rebuilds=tuple(rebuilds),
        docker=docker,
    )
    # Only a case with rebuilds needs its Dockerfile parsed here: a failure case's may not parse.
    slots = case.slots() if case.rebuilds else []
    for i, rebuild in enumerate(case.rebuilds):
        if len(rebuild.cached) != len(slots):
            raise fail(
                f"rebuild[{i}].cached has {len(rebuild.cached)} entries; the Dockerfile has {len(slots)} "
                "instructions after FROM (FROM lines and ARGs before the first FROM are not counted)"
            )
    return case


def _only(obj: Mapping[str, Any], allowed: set[str], fail: Any, where: str) -> None:
    unknown = sorted(set(obj) - allowed)
    if unknown:
        raise fail(f"{where}: unknown keys {unknown} (allowed: {sorted(allowed)})")


def _check_entry(entry: Any, fail: Any) -> None:
    if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
        raise fail(f"context entry {entry!r} needs a path")
    _only(entry, _ENTRY_KEYS, fail, f"context entry {entry['path']!r}")
    kind = entry.get("type", "file")
    if kind not in _ENTRY_TYPES:
        raise fail(f"context entry {entry['path']!r}: type {kind!r} is not one of {sorted(_ENTRY_TYPES)}")
    if kind in ("symlink", "hardlink") and not isinstance(entry.get("target"), str):
        raise fail(f"context entry {entry['path']!r}: a {kind} needs a target")
    if kind == "tar":
        if entry.get("compression", "none") not in _COMPRESSIONS:
            raise fail(f"context entry {entry['path']!r}: compression must be one of {sorted(_COMPRESSIONS)}")
        if entry.get("damage", "none") not in _DAMAGES:
            raise fail(f"context entry {entry['path']!r}: damage must be one of {sorted(_DAMAGES)}")
        for member in entry.get("members", []):
            _check_entry(member, fail)


# --- contexts -----------------------------------------------------------------------------


def write_context(case: Case, dest: Path, dockerfile_text: str) -> Path:
    """Make the case's build context in `dest` (which must not exist): its entries, its
    .dockerignore, and the Dockerfile (with the base tag already substituted)."""
    dest.mkdir(parents=True)
    os.chmod(dest, 0o755)
    (dest / "Dockerfile").write_text(dockerfile_text, encoding="utf-8")
    os.chmod(dest / "Dockerfile", 0o644)
    if case.dockerignore is not None:
        (dest / ".dockerignore").write_text(case.dockerignore, encoding="utf-8")
        os.chmod(dest / ".dockerignore", 0o644)
    write_entries(dest, case.context)
    return dest


def write_entries(root: Path, entries: Sequence[Mapping[str, Any]], default_mtime: int = CASE_MTIME) -> None:
    """Write (or replace) `entries` under `root`; directories' mtimes are set last, once
    nothing more is written into them.

    An edit must not keep the old mtime unless it says so: BuildKit's context transfer can
    take a file whose stat data looks unchanged as unchanged and not send it again."""
    dir_times: list[tuple[Path, int]] = []
    for entry in entries:
        path = root / entry["path"].strip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        kind = entry.get("type", "file")
        if kind != "dir" and (path.is_symlink() or path.exists()):
            if path.is_dir() and not path.is_symlink():
                raise CaseFormatError(f"{entry['path']}: a directory cannot be replaced by a {kind}")
            path.unlink()
        if kind == "file":
            path.write_bytes(entry_content(entry))
        elif kind == "dir":
            path.mkdir(exist_ok=True)
        elif kind == "symlink":
            os.symlink(entry["target"], path)
        elif kind == "hardlink":
            os.link(root / entry["target"].strip("/"), path)
        else:
            path.write_bytes(tar_bytes(entry))
        if kind != "symlink" and (kind != "hardlink" or "mode" in entry):
            os.chmod(path, int(entry.get("mode", "0755" if kind == "dir" else "0644"), 8))
        if "uid" in entry or "gid" in entry:
            os.lchown(path, int(entry.get("uid", 0)), int(entry.get("gid", 0)))
        mtime = int(entry.get("mtime", default_mtime))
        if kind == "dir":
            dir_times.append((path, mtime))
        elif kind != "hardlink" or "mtime" in entry:
            os.utime(path, (mtime, mtime), follow_symlinks=False)
    for path, mtime in reversed(dir_times):
        os.utime(path, (mtime, mtime))


def remove_paths(root: Path, paths: Sequence[str]) -> None:
    for rel in paths:
        path = root / rel.strip("/")
        if path.is_dir() and not path.is_symlink():
            for sub in sorted(path.rglob("*"), key=lambda p: len(p.parts), reverse=True):
                if sub.is_dir() and not sub.is_symlink():
                    sub.rmdir()
                else:
                    sub.unlink()
            path.rmdir()
        else:
            path.unlink()


def entry_content(entry: Mapping[str, Any]) -> bytes:
    if "content_b64" in entry:
        return base64.b64decode(entry["content_b64"])
    return str(entry.get("content", "")).encode("utf-8")


_TAR_TYPES = {
    "file": tarfile.REGTYPE,
    "dir": tarfile.DIRTYPE,
    "symlink": tarfile.SYMTYPE,
    "hardlink": tarfile.LNKTYPE,
}


def tar_bytes(entry: Mapping[str, Any]) -> bytes:
    """The archive a ``tar`` context entry describes: ustar/PAX members in the order given,
    then the damage asked for (applied to the tar stream, before compression)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for member in entry.get("members", []):
            kind = member.get("type", "file")
            if kind not in _TAR_TYPES:
                raise CaseFormatError(f"tar member {member['path']!r}: type {kind!r} cannot be archived")
            info = tarfile.TarInfo(member["path"])
            info.type = _TAR_TYPES[kind]
            info.mode = int(member.get("mode", "0755" if kind == "dir" else "0644"), 8)
            info.uid, info.gid = int(member.get("uid", 0)), int(member.get("gid", 0))
            info.mtime = int(member.get("mtime", CASE_MTIME))
            data = b""
            if kind == "file":
                data = entry_content(member)
                info.size = len(data)
            elif kind in ("symlink", "hardlink"):
                info.linkname = member["target"]
            tar.addfile(info, io.BytesIO(data) if kind == "file" else None)
    raw = _damage(buf.getvalue(), entry.get("damage", "none"))
    compression = entry.get("compression", "none")
    if compression == "gz":
        return gzip.compress(raw, mtime=0)
    if compression == "bz2":
        return bz2.compress(raw)
    if compression == "xz":
        return lzma.compress(raw)
    if compression == "zstd":
        return zstandard.ZstdCompressor().compress(raw)
    return raw


def _damage(raw: bytes, damage: str) -> bytes:
    """Cut a tar stream: ``truncate-data`` inside the last regular member's data,
    ``drop-end-block`` inside the second of the two zero blocks that end the archive."""
    if damage == "none":
        return raw
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        members = tar.getmembers()
        end = tar.offset  # where the end-of-archive blocks start
    if damage == "truncate-data":
        files = [m for m in members if m.isreg() and m.size > 1]
        if not files:
            raise CaseFormatError("damage truncate-data needs a regular member of at least 2 bytes")
        last = files[-1]
        return raw[: last.offset_data + last.size // 2]
    return raw[: end + 512 + 100]


def slug(case_id: str) -> str:
    """A case id as a Docker tag component."""
    return re.sub(r"[^a-z0-9_.-]+", "-", case_id.lower()).strip("-.")[:100]
