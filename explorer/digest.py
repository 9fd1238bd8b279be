"""Content identities: OCI digests (sha256) and the fast xxh3-128 file hash.

sha256 names what leaves the store (diff ids, chain ids, image ids, blobs);
xxh3-128 fingerprints file content inside it, where speed matters and nobody
outside needs to verify it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

from .errors import InvalidArgument

if TYPE_CHECKING:
    import xxhash

DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
CHUNK = 1 << 20


def sha256_bytes(data: bytes) -> str:
    import hashlib

    return "sha256:" + hashlib.sha256(data).hexdigest()


def check_digest(value: str) -> str:
    if not DIGEST_RE.match(value):
        raise InvalidArgument(f"not a sha256 digest: {value!r}")
    return value


def chain_ids(diff_ids: Iterable[str]) -> list[str]:
    """OCI image spec: ChainID(L0) = DiffID(L0); ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln))."""
    out: list[str] = []
    for diff_id in diff_ids:
        if not out:
            out.append(diff_id)
        else:
            out.append(sha256_bytes(f"{out[-1]} {diff_id}".encode()))
    return out


def new_xxh3() -> xxhash.xxh3_128:
    import xxhash

    return xxhash.xxh3_128()


def short(digest: str, n: int = 12) -> str:
    """Docker's short form: the hex without the algorithm, first ``n`` characters."""
    return digest.split(":", 1)[-1][:n]
