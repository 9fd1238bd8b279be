"""Images: OCI image configs addressed by their sha256, and the tags that name them.

The config is kept as the exact bytes it arrived or was written with, because the
image id is the digest of those bytes. The layers of an image are its top layer's
chain; ``rootfs.diff_ids`` in the config must name the same chain.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..digest import chain_ids, sha256_bytes
from ..errors import AmbiguousName, ImageInUse, ImageNotFound, InvalidArgument, StoreError
from . import reference
from .layers import Layer

if TYPE_CHECKING:
    from .store import Store


@dataclass
class Image:
    id: str
    raw_config: bytes
    top_layer: str | None
    parent: str | None
    created_at: float
    tags: list[str] = field(default_factory=list)

    @property
    def config(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.raw_config)
        return parsed

    @property
    def short_id(self) -> str:
        return self.id.removeprefix("sha256:")[:12]

    @property
    def created(self) -> str:
        return str(self.config.get("created") or "")

    @property
    def diff_ids(self) -> list[str]:
        return list(self.config.get("rootfs", {}).get("diff_ids") or [])

    @property
    def familiar_tags(self) -> list[str]:
        return [reference.familiar(t) for t in self.tags]


def now_rfc3339(ts: float | None = None) -> str:
    from datetime import UTC, datetime

    moment = datetime.fromtimestamp(time.time() if ts is None else ts, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def new_config(
    diff_ids: Iterable[str],
    history: list[dict[str, Any]],
    container_config: dict[str, Any] | None = None,
    *,
    architecture: str = "amd64",
    os_name: str = "linux",
    created: str | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """An OCI image config with the fields docker writes."""
    config: dict[str, Any] = {
        "architecture": architecture,
        "os": os_name,
        "created": created or now_rfc3339(),
        "config": container_config or {},
        "rootfs": {"type": "layers", "diff_ids": list(diff_ids)},
        "history": history,
    }
    if extra:
        config.update(extra)
    return config


def host_architecture() -> str:
    import platform

    machine = platform.machine().lower()
    return {
        "x86_64": "amd64",
        "aarch64": "arm64",
        "armv7l": "arm",
        "i686": "386",
        "ppc64le": "ppc64le",
        "s390x": "s390x",
        "riscv64": "riscv64",
    }.get(machine, machine)


class ImageStore:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.meta = store.meta

    # --- reading -------------------------------------------------------------------

    def _from_row(self, row: tuple[Any, ...]) -> Image:
        tags = [r[0] for r in self.meta.query("SELECT name FROM tags WHERE image=? ORDER BY name", (row[0],))]
        return Image(row[0], bytes(row[1]), row[2], row[3], row[4], tags)

    def all(self) -> list[Image]:
        rows = self.meta.query("SELECT id, config, top_layer, parent, created FROM images ORDER BY created DESC")
        tags: dict[str, list[str]] = {}
        for name, image in self.meta.query("SELECT name, image FROM tags ORDER BY name"):
            tags.setdefault(image, []).append(name)
        return [Image(r[0], bytes(r[1]), r[2], r[3], r[4], tags.get(r[0], [])) for r in rows]

    def get(self, image_id: str) -> Image:
        row = self.meta.one("SELECT id, config, top_layer, parent, created FROM images WHERE id=?", (image_id,))
        if row is None:
            raise ImageNotFound(image_id)
        return self._from_row(row)

    def resolve(self, text: str) -> Image:
        """Find an image the way docker does: by name[:tag], by full id, by id prefix."""
        if not text:
            raise InvalidArgument("no image given")
        if reference.looks_like_id(text):
            t = text.removeprefix("sha256:")
            rows = self.meta.query(
                "SELECT id, config, top_layer, parent, created FROM images WHERE id LIKE ?", ("sha256:" + t + "%",)
            )
            if len(rows) == 1 and (len(t) >= 12 or text.startswith("sha256:") or not self._tag_exists(text)):
                return self._from_row(rows[0])
            if len(rows) > 1:
                raise AmbiguousName(text, [r[0] for r in rows])
        try:
            ref = reference.parse(text)
        except Exception:
            if reference.looks_like_id(text):
                raise ImageNotFound(text) from None
            raise
        if ref.digest is not None:
            row = self.meta.one(
                "SELECT i.id, i.config, i.top_layer, i.parent, i.created FROM tags t JOIN images i ON i.id=t.image "
                "WHERE t.name=?",
                (ref.name,),
            )
        else:
            row = self.meta.one(
                "SELECT i.id, i.config, i.top_layer, i.parent, i.created FROM tags t JOIN images i ON i.id=t.image "
                "WHERE t.name=?",
                (ref.name,),
            )
        if row is None:
            raise ImageNotFound(text)
        return self._from_row(row)

    def _tag_exists(self, text: str) -> bool:
        try:
            ref = reference.parse(text)
        except Exception:
            return False
        return self.meta.one("SELECT 1 FROM tags WHERE name=?", (ref.name,)) is not None

    def layers(self, image: Image) -> list[Layer]:
        return self.store.layers.chain(image.top_layer)

    def size(self, image: Image) -> int:
        return sum(layer.content_size for layer in self.layers(image))

    # --- writing -------------------------------------------------------------------

    def add(
        self, raw_config: bytes, top_layer: str | None, parent: str | None = None, tags: Iterable[str] = ()
    ) -> Image:
        """Register a config over a layer chain; the same bytes give the same image."""
        config = json.loads(raw_config)
        diff_ids = list(config.get("rootfs", {}).get("diff_ids") or [])
        chain = self.store.layers.chain(top_layer)
        if [layer.diff_id for layer in chain] != diff_ids:
            raise StoreError("image config rootfs.diff_ids do not match its layers")
        if chain and chain[-1].chain_id != chain_ids(diff_ids)[-1]:
            raise StoreError("image layer chain does not match its config")
        image_id = sha256_bytes(raw_config)
        with self.meta.transaction() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO images(id, config, top_layer, parent, created) VALUES (?,?,?,?,?)",
                (image_id, raw_config, top_layer, parent, time.time()),
            )
            for tag in tags:
                self._tag(conn, image_id, tag)
        return self.get(image_id)

    def create(
        self, config: dict[str, Any], top_layer: str | None, parent: str | None = None, tags: Iterable[str] = ()
    ) -> Image:
        return self.add(canonical_json(config), top_layer, parent, tags)

    def _tag(self, conn: Any, image_id: str, name: str) -> str:
        ref = reference.parse(name)
        if ref.digest is not None and ref.tag is None:
            raise InvalidArgument(f"cannot tag with a digest: {name}")
        conn.execute("INSERT OR REPLACE INTO tags(name, image) VALUES (?,?)", (ref.name, image_id))
        return ref.name

    def tag(self, image: Image, name: str) -> str:
        with self.meta.transaction() as conn:
            return self._tag(conn, image.id, name)

    def untag(self, name: str) -> str | None:
        """Remove one tag; returns the image it pointed at."""
        ref = reference.parse(name)
        with self.meta.transaction() as conn:
            row = conn.execute("SELECT image FROM tags WHERE name=?", (ref.name,)).fetchone()
            if row is None:
                return None
            conn.execute("DELETE FROM tags WHERE name=?", (ref.name,))
            return str(row[0])

    def has_children(self, image_id: str) -> bool:
        """Another image names this one as its parent (a build's intermediate image)."""
        return self.meta.one("SELECT 1 FROM images WHERE parent=? LIMIT 1", (image_id,)) is not None

    def users(self, image_id: str) -> list[str]:
        """Containers and child images that need this image."""
        rows = self.meta.query("SELECT id, name FROM containers WHERE image=?", (image_id,))
        return [f"container {r[0][:12]} ({r[1]})" for r in rows]

    def remove(self, text: str, force: bool = False) -> list[str]:
        """docker rmi: untag when more tags remain, else delete the image and every layer
        nothing else uses. Returns docker's ``Untagged:``/``Deleted:`` lines."""
        with self.store.gc_lock(exclusive=True):
            return self._remove(text, force)

    def _remove(self, text: str, force: bool) -> list[str]:
        image = self.resolve(text)
        out: list[str] = []
        by_name = not reference.looks_like_id(text) or self._tag_exists(text)
        if by_name and len(image.tags) > 1:
            name = reference.parse(text).name
            self.untag(name)
            return [f"Untagged: {reference.familiar(name)}"]
        if not by_name and len(image.tags) > 1 and not force:
            raise ImageInUse(
                f"image {image.short_id}",
                [reference.familiar(t) for t in image.tags],
                "it is referenced in multiple repositories; remove by name or use -f",
            )
        users = self.users(image.id)
        if users:
            raise ImageInUse(f"image {image.short_id}", users, "remove the containers first")
        with self.meta.transaction() as conn:
            for tag in image.tags:
                conn.execute("DELETE FROM tags WHERE name=?", (tag,))
                out.append(f"Untagged: {reference.familiar(tag)}")
            conn.execute("DELETE FROM images WHERE id=?", (image.id,))
            out.append(f"Deleted: {image.id}")
        out += self._collect_layers(image.top_layer)
        return out

    def collect_layers(self, top: str | None) -> list[str]:
        """Delete the layers from ``top`` down while nothing else references them."""
        with self.store.gc_lock(exclusive=True):
            return self._collect_layers(top)

    def _collect_layers(self, top: str | None) -> list[str]:
        out: list[str] = []
        layer_id = top
        while layer_id is not None:
            layer = self.store.layers.get(layer_id)
            if self.store.layers.users(layer_id):
                break
            self.store.layers.delete(layer_id)
            out.append(f"Deleted: {layer.chain_id}")
            layer_id = layer.parent
        return out
