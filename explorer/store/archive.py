"""Images in and out as files: `docker import` tarballs, docker-archives and OCI layouts.

What ``save`` writes is the layout current Docker writes: an OCI image layout
(``oci-layout``, ``index.json``, ``blobs/sha256/…``) that also carries docker's
``manifest.json`` and ``repositories``, so ``docker load``, ``podman load`` and
``skopeo`` (``docker-archive:`` and ``oci-archive:``) all read it. Layer blobs are the
layers' own tars, reassembled byte for byte, so their digests are the diff ids the
config names.

The outer archive is read with ``tarfile`` for random access to members only; nothing
is ever extracted through it. Layer tars go through ``extract.extract_layer``, which
does its own safe extraction.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import posixpath
import secrets
import shutil
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, BinaryIO

from .. import jsoninput
from ..digest import chain_ids, check_digest, sha256_bytes
from ..errors import ArchiveError, DigestMismatch, InvalidArgument, SizeMismatch, StrataError
from ..fsutil import guard_enospc, rmtree
from . import reference
from .images import Image, canonical_json, host_architecture, new_config, now_rfc3339
from .marks import mark_owner

if TYPE_CHECKING:
    from .store import Store

MT_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MT_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
MT_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MT_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
INDEX_MEDIA_TYPES = (MT_OCI_INDEX, MT_DOCKER_LIST)
MANIFEST_MEDIA_TYPES = (MT_OCI_MANIFEST, MT_DOCKER_MANIFEST)
MAX_JSON = 32 << 20  # manifests and configs are small; refuse absurd ones

Progress = Callable[[str], None]


def _noop(_: str) -> None:
    pass


# --- import ----------------------------------------------------------------------------


def import_rootfs(
    store: Store,
    stream: BinaryIO,
    name: str | None,
    source: str = "-",
    changes: dict[str, Any] | None = None,
    message: str = "",
) -> Image:
    """`docker import`: a root filesystem tarball becomes a one-layer image."""
    ref = reference.parse(name) if name else None
    layer, _, _ = store.layers.add_tar(stream, None, created_by="", what=f"import {source}")
    history = {"created": now_rfc3339(), "comment": message or f"Imported from {source}"}
    config = new_config([layer.diff_id], [history], changes or {}, architecture=host_architecture())
    return store.images.create(config, layer.id, tags=[ref.name] if ref else [])


# --- reading archives ------------------------------------------------------------------


class _Source:
    """Random access to the files of an archive: a tar or an unpacked directory."""

    def names(self) -> set[str]:
        raise NotImplementedError

    def open(self, name: str) -> IO[bytes]:
        raise NotImplementedError

    def size(self, name: str) -> int:
        raise NotImplementedError

    def read_json(self, name: str, what: str) -> tuple[Any, bytes]:
        if name not in self.names():
            raise ArchiveError(f"{what}: {name} is missing from the archive")
        if self.size(name) > MAX_JSON:
            raise ArchiveError(f"{what}: {name} is implausibly large ({self.size(name)} bytes)")
        with self.open(name) as f:
            raw = f.read()
        try:
            return jsoninput.loads(raw), raw
        except (ValueError, UnicodeDecodeError) as e:
            raise ArchiveError(f"{what}: {name} is not valid JSON: {e}") from None


class _TarSource(_Source):
    def __init__(self, path: Path) -> None:
        try:
            self.tar = tarfile.open(path, "r:")  # noqa: SIM115 - closed by close()
        except (tarfile.TarError, OSError) as e:
            raise ArchiveError(f"{path}: not a tar archive ({e})") from None
        self.members: dict[str, tarfile.TarInfo] = {}
        try:
            for m in self.tar.getmembers():
                if m.isfile():
                    self.members[posixpath.normpath(m.name.lstrip("/")).removeprefix("./")] = m
        except tarfile.TarError as e:
            raise ArchiveError(f"{path}: damaged tar archive ({e})") from None

    def names(self) -> set[str]:
        return set(self.members)

    def open(self, name: str) -> IO[bytes]:
        f = self.tar.extractfile(self.members[name])
        assert f is not None
        return f

    def size(self, name: str) -> int:
        return self.members[name].size

    def close(self) -> None:
        self.tar.close()


class _DirSource(_Source):
    def __init__(self, path: Path) -> None:
        self.root = path
        self._names: set[str] = set()
        for dirpath, _dirs, files in os.walk(path):
            for f in files:
                full = os.path.join(dirpath, f)
                if not os.path.islink(full):
                    self._names.add(os.path.relpath(full, path))

    def names(self) -> set[str]:
        return self._names

    def open(self, name: str) -> IO[bytes]:
        fd = os.open(self.root / name, os.O_RDONLY | os.O_NOFOLLOW)
        return os.fdopen(fd, "rb")

    def size(self, name: str) -> int:
        return os.lstat(self.root / name).st_size

    def close(self) -> None:
        pass


@dataclass
class _ImageToLoad:
    config_raw: bytes
    layers: list[tuple[str, str | None, int | None]]  # (member name, compressed digest, size)
    tags: list[str]


def _blob_name(digest: str) -> str:
    algo, _, hexpart = check_digest(digest).partition(":")
    return f"blobs/{algo}/{hexpart}"


@contextlib.contextmanager
def _open_archive(store: Store, path: Path) -> Iterator[_Source]:
    if path.is_dir():
        yield _DirSource(path)
        return
    if not path.exists():
        raise InvalidArgument(f"{path}: no such file; give a docker-archive or OCI layout (tar or directory)")
    with open(path, "rb") as f:
        magic = f.read(6)
    scratch: Path | None = None
    try:
        if magic[:2] == b"\x1f\x8b" or magic[:4] == b"\x28\xb5\x2f\xfd":
            scratch = store.tmp / f"load-{secrets.token_hex(8)}"
            scratch.mkdir(mode=0o700)
            mark_owner(scratch)
            plain = scratch / "archive.tar"
            with open(path, "rb") as src, open(plain, "wb") as dst, guard_enospc(str(plain)):
                if magic[:2] == b"\x1f\x8b":
                    import gzip

                    try:
                        shutil.copyfileobj(gzip.GzipFile(fileobj=src), dst, 1 << 20)
                    except (OSError, EOFError) as e:
                        raise ArchiveError(f"{path}: broken gzip data ({e})") from None
                else:
                    import zstandard

                    try:
                        zstandard.ZstdDecompressor().copy_stream(src, dst)
                    except zstandard.ZstdError as e:
                        raise ArchiveError(f"{path}: broken zstd data ({e})") from None
            path = plain
        source = _TarSource(path)
        try:
            yield source
        finally:
            source.close()
    finally:
        if scratch is not None:
            rmtree(scratch)


def _plan_docker_archive(src: _Source) -> list[_ImageToLoad]:
    manifest, _ = src.read_json("manifest.json", "docker-archive")
    if not isinstance(manifest, list):
        raise ArchiveError("docker-archive: manifest.json is not a list")
    out = []
    for entry in manifest:
        if not isinstance(entry, dict) or "Config" not in entry or "Layers" not in entry:
            raise ArchiveError("docker-archive: manifest.json entry lacks Config or Layers")
        config_name = str(entry["Config"])
        _, raw = src.read_json(config_name, "docker-archive config")
        if config_name.startswith("blobs/sha256/"):
            expected = "sha256:" + config_name.rsplit("/", 1)[-1]
            if sha256_bytes(raw) != expected:
                raise DigestMismatch(f"config {config_name}", expected, sha256_bytes(raw))
        layers: list[tuple[str, str | None, int | None]] = []
        for name in entry["Layers"]:
            name = str(name)
            if name not in src.names():
                raise ArchiveError(f"docker-archive: layer {name} named in manifest.json is missing")
            digest = "sha256:" + name.rsplit("/", 1)[-1] if name.startswith("blobs/sha256/") else None
            layers.append((name, digest, None))
        tags = [str(t) for t in entry.get("RepoTags") or []]
        out.append(_ImageToLoad(raw, layers, tags))
    return out


def _plan_oci_layout(src: _Source, platform: str | None = None) -> list[_ImageToLoad]:
    layout, _ = src.read_json("oci-layout", "OCI layout")
    if not isinstance(layout, dict) or "imageLayoutVersion" not in layout:
        raise ArchiveError("OCI layout: oci-layout lacks imageLayoutVersion")
    index, _ = src.read_json("index.json", "OCI layout")
    out: list[_ImageToLoad] = []

    def read_blob(desc: dict[str, Any], what: str) -> tuple[Any, bytes]:
        digest = str(desc.get("digest", ""))
        name = _blob_name(digest)
        parsed, raw = src.read_json(name, what)
        if sha256_bytes(raw) != digest:
            raise DigestMismatch(what, digest, sha256_bytes(raw))
        if "size" in desc and int(desc["size"]) != len(raw):
            raise SizeMismatch(what, int(desc["size"]), len(raw))
        return parsed, raw

    def visit(desc: dict[str, Any], ref_name: str | None, depth: int) -> None:
        if depth > 4:
            raise ArchiveError("OCI layout: indexes nested too deeply")
        media = desc.get("mediaType", "")
        annotations = desc.get("annotations") or {}
        name = (
            annotations.get("io.containerd.image.name")
            or ref_name
            or annotations.get("org.opencontainers.image.ref.name")
        )
        parsed, _ = read_blob(desc, f"manifest {desc.get('digest')}")
        media = parsed.get("mediaType", media)
        if media in INDEX_MEDIA_TYPES or "manifests" in parsed:
            chosen = select_platform(parsed.get("manifests") or [], platform)
            for child in chosen:
                visit(child, name, depth + 1)
            return
        config_desc = parsed.get("config") or {}
        _, config_raw = read_blob(config_desc, f"config {config_desc.get('digest')}")
        layers: list[tuple[str, str | None, int | None]] = []
        for layer in parsed.get("layers") or []:
            digest = str(layer.get("digest", ""))
            blob = _blob_name(digest)
            if blob not in src.names():
                raise ArchiveError(f"OCI layout: layer blob {digest} is missing")
            layers.append((blob, digest, int(layer["size"]) if "size" in layer else None))
        tags = []
        if name and (":" in name or "/" in name):
            tags.append(name)
        out.append(_ImageToLoad(config_raw, layers, tags))

    for desc in index.get("manifests") or []:
        visit(desc, None, 0)
    if not out:
        raise ArchiveError("OCI layout: index.json lists no images")
    return out


def select_platform(manifests: list[dict[str, Any]], platform: str | None) -> list[dict[str, Any]]:
    """Pick the manifest for ``platform`` (default: this host) from an index."""
    want_os, _, want_arch = (platform or f"linux/{host_architecture()}").partition("/")
    want_arch, _, want_variant = want_arch.partition("/")
    with_platform = [m for m in manifests if m.get("platform")]
    if not with_platform:
        return manifests
    for m in with_platform:
        p = m["platform"]
        if (
            p.get("os") == want_os
            and p.get("architecture") == want_arch
            and (not want_variant or p.get("variant") == want_variant)
        ):
            return [m]
    available = ", ".join(f"{m['platform'].get('os')}/{m['platform'].get('architecture')}" for m in with_platform)
    raise ArchiveError(f"no image for platform {want_os}/{want_arch}; available: {available}")


def _guarded(plan: Callable[[], list[_ImageToLoad]], what: str) -> list[_ImageToLoad]:
    """Manifests are untrusted JSON: a value of the wrong shape anywhere in them is a
    malformed archive, reported as such, not a crash."""
    try:
        return plan()
    except (AttributeError, TypeError, KeyError, ValueError) as e:
        raise ArchiveError(f"{what} is malformed ({type(e).__name__}: {e})") from None


def load(
    store: Store, path: str | os.PathLike[str], progress: Progress = _noop, platform: str | None = None
) -> list[str]:
    """`docker load`: returns docker's ``Loaded image: …`` lines."""
    p = Path(path)
    lines: list[str] = []
    with _open_archive(store, p) as src:
        names = src.names()
        if "manifest.json" in names:
            plan = _guarded(lambda: _plan_docker_archive(src), "docker-archive manifest.json")
        elif "index.json" in names and "oci-layout" in names:
            plan = _guarded(lambda: _plan_oci_layout(src, platform), "OCI layout index.json")
        else:
            raise ArchiveError(
                f"{p}: neither a docker-archive (manifest.json) nor an OCI layout (oci-layout, index.json)"
            )
        for item in plan:
            image = _load_one(store, src, item, progress)
            if item.tags:
                for tag in item.tags:
                    lines.append(f"Loaded image: {reference.familiar(reference.parse(tag).name)}")
            else:
                lines.append(f"Loaded image ID: {image.id}")
    return lines


def _load_one(store: Store, src: _Source, item: _ImageToLoad, progress: Progress) -> Image:
    try:
        config = json.loads(item.config_raw)
        diff_ids = [str(d) for d in config["rootfs"]["diff_ids"]]
        history = [h for h in config.get("history") or [] if not h.get("empty_layer")]
    except (ValueError, KeyError, TypeError, AttributeError):
        raise ArchiveError("image config lacks rootfs.diff_ids or has a malformed history") from None
    for d in diff_ids:
        check_digest(d)
    if len(diff_ids) != len(item.layers):
        raise ArchiveError(f"image config names {len(diff_ids)} layers but the manifest lists {len(item.layers)}")
    chains = chain_ids(diff_ids)
    parent: str | None = None
    for i, ((name, digest, size), diff_id, chain) in enumerate(zip(item.layers, diff_ids, chains, strict=True)):
        existing = store.layers.by_chain(chain)
        if existing is not None:
            progress(f"{diff_id[7:19]}: already exists")
            parent = existing.id
            continue
        created_by = str(history[i].get("created_by", "")) if i < len(history) else ""
        progress(f"{diff_id[7:19]}: loading layer {i + 1}/{len(diff_ids)}")
        with src.open(name) as stream:
            layer, got_digest, got_size = store.layers.add_tar(
                stream,  # type: ignore[arg-type]
                parent,
                created_by,
                what=f"layer {name}",
                expected_diff_id=diff_id,
                expected_digest=digest,
                expected_size=size,
            )
        if digest:
            store.layers.record_blob(layer.id, got_digest, MT_OCI_LAYER if got_digest == diff_id else "", got_size)
        parent = layer.id
    tags = []
    for tag in item.tags:
        try:
            tags.append(reference.parse(tag).name)
        except StrataError:
            continue
    return store.images.add(item.config_raw, parent, tags=tags)


# --- writing archives ------------------------------------------------------------------


class _TarWriter:
    """A minimal, deterministic outer tar: regular files only, fixed owner and time."""

    def __init__(self, f: BinaryIO) -> None:
        self.f = f

    def _header(self, name: str, size: int, kind: bytes = tarfile.REGTYPE) -> None:
        info = tarfile.TarInfo(name)
        info.size = size
        info.type = kind
        info.mode = 0o644 if kind == tarfile.REGTYPE else 0o755
        info.mtime = 0
        self.f.write(info.tobuf(format=tarfile.PAX_FORMAT))

    def _pad(self, size: int) -> None:
        if size % 512:
            self.f.write(b"\0" * (512 - size % 512))

    def add_dir(self, name: str) -> None:
        self._header(name.rstrip("/") + "/", 0, tarfile.DIRTYPE)

    def add_bytes(self, name: str, data: bytes) -> None:
        self._header(name, len(data))
        self.f.write(data)
        self._pad(len(data))

    def add_stream(self, name: str, size: int, produce: Callable[[BinaryIO], int]) -> None:
        self._header(name, size)
        written = produce(self.f)
        if written != size:
            raise ArchiveError(f"{name}: wrote {written} bytes, expected {size}")
        self._pad(size)

    def close(self) -> None:
        self.f.write(b"\0" * 1024)


class _HashingWriter(io.RawIOBase):
    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.hash = hashlib.sha256()
        self.count = 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.hash.update(data)
        self.out.write(data)
        self.count += len(data)
        return len(data)


class _DirWriter:
    """The same layout as an unpacked directory (an OCI layout dir)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def add_dir(self, name: str) -> None:
        (self.root / name).mkdir(parents=True, exist_ok=True)

    def add_bytes(self, name: str, data: bytes) -> None:
        target = self.root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)

    def add_stream(self, name: str, size: int, produce: Callable[[BinaryIO], int]) -> None:
        target = self.root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "wb") as f:
            produce(f)

    def close(self) -> None:
        pass


def save(
    store: Store, names: list[str], output: str | os.PathLike[str], fmt: str = "docker", progress: Progress = _noop
) -> None:
    """`docker save`: write ``names`` to ``output`` (a tar file, or a directory for OCI)."""
    if fmt not in ("docker", "oci"):
        raise InvalidArgument(f"unknown format {fmt!r}: use docker or oci")
    if not names:
        raise InvalidArgument("no image given to save")
    images: list[tuple[Image, list[str]]] = []
    for name in names:
        image = store.images.resolve(name)
        tags = []
        if not reference.looks_like_id(name) or store.images._tag_exists(name):
            tags = [reference.parse(name).name]
        images.append((image, tags))
    out = Path(output)
    as_dir = out.is_dir() or str(output).endswith("/")
    tmp = out.with_name(f".{out.name}.strata-{secrets.token_hex(4)}")
    try:
        with guard_enospc(str(out)):
            if as_dir:
                if fmt != "oci":
                    raise InvalidArgument("a directory output needs --format oci")
                tmp.mkdir()
                _write_layout(store, _DirWriter(tmp), images, fmt, progress)
                if out.exists():
                    rmtree(out)
                os.rename(tmp, out)
            else:
                with open(tmp, "wb") as f:
                    writer = _TarWriter(f)
                    _write_layout(store, writer, images, fmt, progress)
                    writer.close()
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, out)
    except BaseException:
        if tmp.exists():
            rmtree(tmp)
        raise


def _write_layout(
    store: Store, w: _TarWriter | _DirWriter, images: list[tuple[Image, list[str]]], fmt: str, progress: Progress
) -> None:
    written: set[str] = set()
    manifest_json: list[dict[str, Any]] = []
    repositories: dict[str, dict[str, str]] = {}
    index: list[dict[str, Any]] = []
    w.add_dir("blobs")
    w.add_dir("blobs/sha256")
    w.add_bytes("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
    for image, tags in images:
        layers = store.images.layers(image)
        layer_descs = []
        for layer in layers:
            name = _blob_name(layer.diff_id)
            if name not in written:
                progress(f"{layer.diff_id[7:19]}: writing layer")

                def produce(f: BinaryIO, layer_id: str = layer.id, diff_id: str = layer.diff_id) -> int:
                    hasher = _HashingWriter(f)
                    store.layers.write_tar(layer_id, hasher)  # type: ignore[arg-type]
                    got = "sha256:" + hasher.hash.hexdigest()
                    if got != diff_id:
                        raise DigestMismatch(
                            f"stored layer {layer_id[:12]} (store damaged? run `strata system check`)", diff_id, got
                        )
                    return hasher.count

                w.add_stream(name, layer.size, produce)
                written.add(name)
            layer_descs.append({"mediaType": MT_OCI_LAYER, "digest": layer.diff_id, "size": layer.size})
        config_name = _blob_name(image.id)
        if config_name not in written:
            w.add_bytes(config_name, image.raw_config)
            written.add(config_name)
        manifest = {
            "schemaVersion": 2,
            "mediaType": MT_OCI_MANIFEST,
            "config": {"mediaType": MT_OCI_CONFIG, "digest": image.id, "size": len(image.raw_config)},
            "layers": layer_descs,
        }
        raw_manifest = canonical_json(manifest)
        manifest_digest = sha256_bytes(raw_manifest)
        if _blob_name(manifest_digest) not in written:
            w.add_bytes(_blob_name(manifest_digest), raw_manifest)
            written.add(_blob_name(manifest_digest))
        base_desc = {"mediaType": MT_OCI_MANIFEST, "digest": manifest_digest, "size": len(raw_manifest)}
        if tags:
            for tag in tags:
                repo, tag_part = reference.split_name(tag)
                desc = dict(base_desc)
                desc["annotations"] = {
                    "io.containerd.image.name": tag,
                    "org.opencontainers.image.ref.name": tag_part,
                }
                index.append(desc)
                repositories.setdefault(reference.familiar(repo), {})[tag_part] = image.id[7:]
        else:
            index.append(base_desc)
        manifest_json.append(
            {
                "Config": config_name,
                "RepoTags": [reference.familiar(t) for t in tags],
                "Layers": [_blob_name(layer.diff_id) for layer in layers],
            }
        )
    w.add_bytes("index.json", canonical_json({"schemaVersion": 2, "mediaType": MT_OCI_INDEX, "manifests": index}))
    if fmt == "docker":
        w.add_bytes("manifest.json", json.dumps(manifest_json).encode())
        if repositories:
            w.add_bytes("repositories", json.dumps(repositories).encode())
