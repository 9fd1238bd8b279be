"""Compressing a layer tar on its way to a registry, hashing both sides as it goes.

The output is deterministic for a given zlib or zstd version (no timestamps, no file
names), so pushing the same layer twice gives the same blob digest; the digest is also
recorded per layer after a push, so a second push need not compress again at all.
"""

from __future__ import annotations

import hashlib
import zlib
from typing import Protocol

import zstandard

from .manifests import GZIP, NONE, ZSTD

GZIP_LEVEL = 6  # zlib's default, the same trade-off Docker's gzip writer makes
ZSTD_LEVEL = 3
COMPRESSIONS = (GZIP, ZSTD, NONE)


class Sink(Protocol):
    def write(self, data: bytes) -> int: ...


class _Codec(Protocol):
    def compress(self, data: bytes) -> bytes: ...

    def flush(self) -> bytes: ...


class _Identity:
    def compress(self, data: bytes) -> bytes:
        return data

    def flush(self) -> bytes:
        return b""


class CompressingWriter:
    """A binary writer: uncompressed tar in (hashed: the diff id), compressed blob out
    (hashed and counted: the blob digest and size)."""

    def __init__(self, kind: str, sink: Sink) -> None:
        self.kind = kind
        self._sink = sink
        self._codec: _Codec
        if kind == GZIP:
            self._codec = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)  # 31: gzip wrapper, mtime 0
        elif kind == ZSTD:
            self._codec = zstandard.ZstdCompressor(level=ZSTD_LEVEL).compressobj()
        elif kind == NONE:
            self._codec = _Identity()
        else:
            raise ValueError(f"unknown compression {kind!r}")
        self.tar_sha = hashlib.sha256()
        self.blob_sha = hashlib.sha256()
        self.tar_size = 0
        self.blob_size = 0

    def write(self, data: bytes) -> int:
        self.tar_sha.update(data)
        self.tar_size += len(data)
        self._out(self._codec.compress(data))
        return len(data)

    def _out(self, data: bytes) -> None:
        if data:
            self.blob_sha.update(data)
            self.blob_size += len(data)
            self._sink.write(data)

    def close(self) -> None:
        self._out(self._codec.flush())

    @property
    def diff_id(self) -> str:
        return "sha256:" + self.tar_sha.hexdigest()

    @property
    def digest(self) -> str:
        return "sha256:" + self.blob_sha.hexdigest()
