"""The build cache: step keys, the ``build_cache`` table, and why a step missed.

A step's key is a hash of its parent step's key, the instruction after variable
expansion, the build args and env in effect and, for COPY/ADD, the checksum of the
source files. As in BuildKit a layer step's parent is the previous layer step, not a LABEL
or CMD between them, and its key also holds what it reads from the config (RUN: shell,
working directory, user, mounted stages); see ``executor.Snapshot``. A hit reuses the
layer the step made before (the image config is made again from the plan); a miss cascades
to every later step of its chain because their parent keys change.

Every row also keeps, as JSON, what its key was made of. When a step misses, the rows
that share its parent key are the builds of "the same place" in the past, and comparing
with them says why: first build of this step, the parent changed, the instruction
changed, these files changed, this ARG changed. Source file lists are kept per checksum
(``build_source_sets``, zstd-compressed) so the changed names can be shown.

The tables this module reads and writes (``build_cache``, ``build_stat_cache``,
``build_tree_sums``, ``build_source_sets``) are the store's, defined and versioned with the
rest of its schema in ``store/metadata.py``.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import LayerNotFound
from ..fsutil import dir_size, rmtree

if TYPE_CHECKING:
    from ..store.store import Store

KEY_VERSION = 2  # 2: layer steps keyed on the layer chain (see executor.Snapshot)
MOUNTS_DIR = "build-mounts"


#: How a miss reason names what changed in a layer step's context (see executor._op_context).
_CONTEXT_NAMES = {
    "shell": "SHELL",
    "workdir": "the working directory (WORKDIR)",
    "user": "USER",
    "mounts": "a mounted stage",
    "path": "the directory",
}


def step_key(parent: str, instruction: str, args: Mapping[str, str], env: Sequence[str], sources: str | None) -> str:
    payload = json.dumps(
        {
            "v": KEY_VERSION,
            "parent": parent,
            "instruction": instruction,
            "args": sorted(args.items()),
            "env": list(env),
            "sources": sources,
        },
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(payload.encode("utf-8", "surrogateescape")).hexdigest()


def base_key(what: str) -> str:
    """The key a stage starts from: a base image id, ``scratch``, or an earlier stage's key."""
    return hashlib.sha256(f"v{KEY_VERSION} from {what}".encode()).hexdigest()


@dataclass
class CacheEntry:
    key: str
    parent_key: str
    layer: str | None
    config: bytes
    instruction: str
    detail: dict[str, Any] = field(default_factory=dict)
    created: float = 0.0
    last_used: float = 0.0


@dataclass(frozen=True)
class PruneReport:
    entries: int
    layers: list[str]
    reclaimed: int  # bytes of layer content freed


_COLS = "key, parent_key, layer, config, instruction, detail, created, last_used"


def _entry(row: Sequence[Any]) -> CacheEntry:
    try:
        detail = json.loads(row[5] or "{}")
    except ValueError:
        detail = {}
    return CacheEntry(row[0], row[1] or "", row[2], bytes(row[3]), row[4], detail, row[6], row[7])


class BuildCache:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.meta = store.meta

    # --- lookups ---------------------------------------------------------------------

    def get(self, key: str) -> CacheEntry | None:
        row = self.meta.one(f"SELECT {_COLS} FROM build_cache WHERE key=?", (key,))
        return _entry(row) if row else None

    def siblings(self, parent_key: str, limit: int = 50) -> list[CacheEntry]:
        """Earlier steps built on the same parent, most recently used first."""
        rows = self.meta.query(
            f"SELECT {_COLS} FROM build_cache WHERE parent_key=? ORDER BY last_used DESC LIMIT ?", (parent_key, limit)
        )
        return [_entry(r) for r in rows]

    def seen_instruction(self, instruction: str) -> bool:
        return self.meta.one("SELECT 1 FROM build_cache WHERE instruction=? LIMIT 1", (instruction,)) is not None

    def entries(self) -> list[CacheEntry]:
        return [_entry(r) for r in self.meta.query(f"SELECT {_COLS} FROM build_cache ORDER BY created")]

    # --- writes ----------------------------------------------------------------------

    def put(self, entry: CacheEntry) -> None:
        now = time.time()
        with self.meta.transaction() as conn:
            conn.execute(
                f"INSERT OR REPLACE INTO build_cache({_COLS}) VALUES (?,?,?,?,?,?,?,?)",
                (
                    entry.key,
                    entry.parent_key,
                    entry.layer,
                    entry.config,
                    entry.instruction,
                    json.dumps(entry.detail, ensure_ascii=False),
                    entry.created or now,
                    now,
                ),
            )

    def touch(self, keys: Iterable[str]) -> None:
        keys = list(keys)
        if not keys:
            return
        now = time.time()
        with self.meta.transaction() as conn:
            conn.executemany("UPDATE build_cache SET last_used=? WHERE key=?", [(now, k) for k in keys])

    # --- checksums of unchanged contexts -------------------------------------------------

    def tree_sum(self, snapshot: str) -> str | None:
        row = self.meta.one("SELECT checksum FROM build_tree_sums WHERE snapshot=?", (snapshot,))
        return str(row[0]) if row else None

    def put_tree_sum(self, snapshot: str, summary: str) -> None:
        with self.meta.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO build_tree_sums(snapshot, checksum, created) VALUES (?,?,?)",
                (snapshot, summary, time.time()),
            )

    # --- source file lists -------------------------------------------------------------

    def save_sources(self, checksum: str, files: Mapping[str, str]) -> None:
        if self.meta.one("SELECT 1 FROM build_source_sets WHERE checksum=?", (checksum,)):
            return
        import zstandard

        text = "".join(f"{path}\0{fp}\n" for path, fp in files.items())
        blob = zstandard.ZstdCompressor(level=3).compress(text.encode("utf-8", "surrogateescape"))
        with self.meta.transaction() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO build_source_sets(checksum, files, created) VALUES (?,?,?)",
                (checksum, blob, time.time()),
            )

    def load_sources(self, checksum: str) -> dict[str, str] | None:
        row = self.meta.one("SELECT files FROM build_source_sets WHERE checksum=?", (checksum,))
        if row is None:
            return None
        import zstandard

        text = zstandard.ZstdDecompressor().decompress(bytes(row[0])).decode("utf-8", "surrogateescape")
        out: dict[str, str] = {}
        for line in text.split("\n"):
            if line:
                path, _, fp = line.partition("\0")
                out[path] = fp
        return out

    # --- explaining a miss ---------------------------------------------------------------

    def explain(
        self, parent_key: str, parent_rebuilt: bool, detail: Mapping[str, Any], files: Mapping[str, str] | None
    ) -> str:
        """Why no row has this step's key; ``detail`` is what the key is being made of."""
        if parent_rebuilt:
            return "parent changed: an earlier step was rebuilt"
        siblings = self.siblings(parent_key)
        instruction = str(detail.get("instruction", ""))
        if not siblings:
            if instruction and self.seen_instruction(instruction):
                return "parent changed: the base image or an earlier step differs from the last build"
            return "first build of this step"
        same = [s for s in siblings if s.detail.get("instruction") == instruction]
        if not same:
            return f"instruction changed (last built here: {siblings[0].instruction})"
        old = same[0].detail
        args_now = dict(detail.get("args") or {})
        args_then = dict(old.get("args") or {})
        changed_args = sorted(n for n in set(args_now) | set(args_then) if args_now.get(n) != args_then.get(n))
        if changed_args:
            names = ", ".join(changed_args)
            return f"ARG {names} changed" if len(changed_args) == 1 else f"ARGs {names} changed"
        if detail.get("sources") != old.get("sources"):
            return self._files_reason(str(old.get("sources") or ""), files)
        if list(detail.get("env") or []) != list(old.get("env") or []):
            return "environment changed"
        context_now = dict(detail.get("context") or {})
        context_then = dict(old.get("context") or {})
        changed = sorted(k for k in set(context_now) | set(context_then) if context_now.get(k) != context_then.get(k))
        if changed:
            return f"{_CONTEXT_NAMES.get(changed[0], changed[0])} changed"
        if detail.get("expanded") != old.get("expanded"):
            return "instruction changed after variable expansion"
        return "not in the cache"

    def _files_reason(self, old_checksum: str, files: Mapping[str, str] | None, show: int = 5) -> str:
        before = self.load_sources(old_checksum) if old_checksum else None
        if before is None or files is None:
            return "source files changed"
        changed = [p for p, fp in files.items() if before.get(p) != fp]
        removed = [p for p in before if p not in files]
        names = [f"{p} (new)" if p not in before else p for p in changed] + [f"{p} (removed)" for p in removed]
        if not names:
            return "source files changed"
        more = f" and {len(names) - show} more" if len(names) > show else ""
        noun = "file" if len(names) == 1 else "files"
        return f"{noun} changed: {', '.join(names[:show])}{more}"

    # --- prune ---------------------------------------------------------------------------

    def prune(self, everything: bool = False) -> PruneReport:
        """Drop cache rows and the layers only they kept.

        By default rows whose layer no image uses go (what Docker calls dangling cache);
        with ``everything`` every row, the stat cache, source lists and RUN cache mounts.
        """
        in_images: set[str] = set()
        for image in self.store.images.all():
            in_images.update(layer.id for layer in self.store.layers.chain(image.top_layer))
        rows = self.meta.query("SELECT key, layer FROM build_cache")
        doomed = [(k, lid) for k, lid in rows if everything or (lid is not None and lid not in in_images)]
        with self.meta.transaction() as conn:
            conn.executemany("DELETE FROM build_cache WHERE key=?", [(k,) for k, _ in doomed])
            if everything:
                conn.execute("DELETE FROM build_source_sets")
                conn.execute("DELETE FROM build_stat_cache")
                conn.execute("DELETE FROM build_tree_sums")
            else:
                conn.execute(
                    "DELETE FROM build_source_sets WHERE checksum NOT IN (SELECT json_extract(detail, '$.sources') "
                    "FROM build_cache WHERE json_extract(detail, '$.sources') IS NOT NULL)"
                )
        freed: list[str] = []
        reclaimed = 0
        for _key, layer_id in doomed:
            if layer_id is None:
                continue
            layer_id_now: str | None = layer_id
            while layer_id_now is not None:
                try:
                    layer = self.store.layers.get(layer_id_now)
                except LayerNotFound:
                    break
                if self.store.layers.users(layer_id_now):
                    break
                self.store.layers.delete(layer_id_now)
                freed.append(layer.id)
                reclaimed += layer.content_size
                layer_id_now = layer.parent
        if everything:
            mounts = Path(self.store.root) / MOUNTS_DIR
            if mounts.exists():
                reclaimed += dir_size(mounts)
                rmtree(mounts)
        return PruneReport(len(doomed), freed, reclaimed)


def mounts_dir(store: Store) -> Path:
    """Where RUN --mount=type=cache directories live (kept across builds, removed by prune -a)."""
    path = Path(store.root) / MOUNTS_DIR
    path.mkdir(mode=0o700, exist_ok=True)
    return path


__all__ = [
    "BuildCache",
    "CacheEntry",
    "PruneReport",
    "base_key",
    "mounts_dir",
    "step_key",
]
