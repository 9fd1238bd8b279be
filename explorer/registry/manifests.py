"""Manifests and indexes as registries serve them: Docker v2 schema 2 and OCI, checked
before anything is downloaded, and written for a push.

A manifest is kept as the exact bytes received, because its digest (what ``name@sha256:…``
names) is the digest of those bytes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from .. import jsoninput
from ..digest import DIGEST_RE, sha256_bytes
from ..errors import RegistryProtocolError
from ..store.archive import (
    INDEX_MEDIA_TYPES,
    MANIFEST_MEDIA_TYPES,
    MT_DOCKER_LIST,
    MT_DOCKER_MANIFEST,
    MT_OCI_CONFIG,
    MT_OCI_INDEX,
    MT_OCI_LAYER,
    MT_OCI_MANIFEST,
)

MT_DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
MT_DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
MT_DOCKER_LAYER_TAR = "application/vnd.docker.image.rootfs.diff.tar"
MT_DOCKER_FOREIGN = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
MT_OCI_LAYER_GZIP = MT_OCI_LAYER + "+gzip"
MT_OCI_LAYER_ZSTD = MT_OCI_LAYER + "+zstd"
MT_OCI_NONDIST = "application/vnd.oci.image.layer.nondistributable.v1.tar"
MT_DOCKER_SCHEMA1 = (
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
)

# What a pull asks for, most specific first; without these a registry may down-convert to schema 1.
ACCEPT = ", ".join((MT_OCI_INDEX, MT_DOCKER_LIST, MT_OCI_MANIFEST, MT_DOCKER_MANIFEST))
CONFIG_MEDIA_TYPES = (MT_DOCKER_CONFIG, MT_OCI_CONFIG)
MAX_MANIFEST = 4 << 20

GZIP, ZSTD, NONE = "gzip", "zstd", "none"
LAYER_COMPRESSION = {
    MT_DOCKER_LAYER_GZIP: GZIP,
    MT_DOCKER_LAYER_TAR: NONE,
    MT_OCI_LAYER: NONE,
    MT_OCI_LAYER_GZIP: GZIP,
    MT_OCI_LAYER_ZSTD: ZSTD,
}
FOREIGN_LAYERS = (MT_DOCKER_FOREIGN, MT_OCI_NONDIST, MT_OCI_NONDIST + "+gzip", MT_OCI_NONDIST + "+zstd")

DOCKER, OCI = "docker", "oci"
# The layer media type a manifest format uses for each compression; Docker's has no zstd.
LAYER_MEDIA_TYPE = {
    (DOCKER, GZIP): MT_DOCKER_LAYER_GZIP,
    (DOCKER, NONE): MT_DOCKER_LAYER_TAR,
    (OCI, GZIP): MT_OCI_LAYER_GZIP,
    (OCI, ZSTD): MT_OCI_LAYER_ZSTD,
    (OCI, NONE): MT_OCI_LAYER,
}


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    platform: dict[str, Any] | None = None
    annotations: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, value: Any, what: str) -> Descriptor:
        if not isinstance(value, dict):
            raise RegistryProtocolError(f"{what}: a descriptor is not a JSON object")
        digest = value.get("digest")
        size = value.get("size")
        if not isinstance(digest, str) or not DIGEST_RE.match(digest):
            algo = str(digest).split(":", 1)[0] if isinstance(digest, str) else "?"
            why = (
                f"uses {algo}; only sha256 digests are supported"
                if algo and algo != "sha256"
                else f"has an invalid digest {digest!r}"
            )
            raise RegistryProtocolError(f"{what} {why}")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise RegistryProtocolError(f"{what} {digest} has an invalid size {size!r}")
        platform = value.get("platform")
        annotations = value.get("annotations")
        return cls(
            str(value.get("mediaType") or ""),
            digest,
            size,
            platform if isinstance(platform, dict) else None,
            {str(k): str(v) for k, v in annotations.items()} if isinstance(annotations, dict) else {},
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.platform:
            out["platform"] = self.platform
        if self.annotations:
            out["annotations"] = self.annotations
        return out

    @property
    def short(self) -> str:
        return self.digest.split(":", 1)[1][:12]


@dataclass(frozen=True)
class ImageManifest:
    media_type: str
    config: Descriptor
    layers: list[Descriptor]
    raw: bytes
    digest: str


@dataclass(frozen=True)
class ImageIndex:
    media_type: str
    manifests: list[dict[str, Any]]  # raw entries, as ``archive.select_platform`` takes them
    raw: bytes
    digest: str


def parse(raw: bytes, content_type: str, where: str) -> ImageManifest | ImageIndex:
    """Check and parse a manifest or index from ``where`` (for messages)."""
    head = raw.lstrip()[:1]
    if content_type in ("text/html", "application/xhtml+xml") or head == b"<":
        raise RegistryProtocolError(
            f"{where} answered with an HTML page instead of a manifest; is this address a registry?"
        )
    try:
        data = jsoninput.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise RegistryProtocolError(f"{where} answered with something that is not a JSON manifest") from None
    if not isinstance(data, dict):
        raise RegistryProtocolError(f"{where}: the manifest is not a JSON object")
    media = str(data.get("mediaType") or "")
    if data.get("schemaVersion") == 1 or media in MT_DOCKER_SCHEMA1 or content_type in MT_DOCKER_SCHEMA1:
        raise RegistryProtocolError(f"{where} only offers a Docker schema 1 manifest, which Strata does not support")
    if not media:
        media = content_type if content_type in INDEX_MEDIA_TYPES + MANIFEST_MEDIA_TYPES else ""
    if not media:
        media = MT_OCI_INDEX if "manifests" in data else MT_OCI_MANIFEST
    digest = sha256_bytes(raw)
    if media in INDEX_MEDIA_TYPES:
        entries = data.get("manifests")
        if not isinstance(entries, list) or not entries:
            raise RegistryProtocolError(f"{where}: the index lists no manifests")
        for entry in entries:
            Descriptor.parse(entry, f"{where}: an index entry")
        return ImageIndex(media, entries, raw, digest)
    if media not in MANIFEST_MEDIA_TYPES:
        raise RegistryProtocolError(f"{where}: unsupported manifest type {media!r}")
    config = Descriptor.parse(data.get("config"), f"{where}: the config")
    if config.media_type and config.media_type not in CONFIG_MEDIA_TYPES:
        raise RegistryProtocolError(f"{where} is not a container image (its config is {config.media_type!r})")
    layers_raw = data.get("layers")
    if not isinstance(layers_raw, list):
        raise RegistryProtocolError(f"{where}: the manifest has no layer list")
    layers = [Descriptor.parse(entry, f"{where}: layer {i + 1}") for i, entry in enumerate(layers_raw)]
    for i, layer in enumerate(layers):
        if layer.media_type in FOREIGN_LAYERS:
            raise RegistryProtocolError(
                f"{where}: layer {i + 1} is a foreign (non-distributable) layer, which Strata cannot pull"
            )
        if layer.media_type and layer.media_type not in LAYER_COMPRESSION:
            raise RegistryProtocolError(f"{where}: layer {i + 1} has unsupported media type {layer.media_type!r}")
    return ImageManifest(media, config, layers, raw, digest)


def image_manifest(fmt: str, config: Descriptor, layers: list[Descriptor]) -> bytes:
    """The bytes of a schema 2 (``docker``) or OCI manifest for a push."""
    if fmt == DOCKER:
        media, config_media = MT_DOCKER_MANIFEST, MT_DOCKER_CONFIG
    else:
        media, config_media = MT_OCI_MANIFEST, MT_OCI_CONFIG
    doc = {
        "schemaVersion": 2,
        "mediaType": media,
        "config": {"mediaType": config_media, "digest": config.digest, "size": config.size},
        "layers": [layer.to_json() for layer in layers],
    }
    return json.dumps(doc, indent=3).encode()


def image_index(fmt: str, manifests: list[Descriptor]) -> bytes:
    media = MT_DOCKER_LIST if fmt == DOCKER else MT_OCI_INDEX
    return json.dumps(
        {"schemaVersion": 2, "mediaType": media, "manifests": [m.to_json() for m in manifests]}, indent=3
    ).encode()
