"""The application context: one store root and the operations on it."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, BinaryIO

from ..errors import InvalidArgument
from ..store import reference
from ..store.images import Image
from ..store.store import Store, default_root
from .build import BuildOps
from .containers import ContainerOps
from .copy import CopyOps
from .registry import RegistryOps
from .system import SystemOps
from .volumes import VolumeOps

if TYPE_CHECKING:
    from ..store.union import UnionView
    from .analysis import Change, ImageAnalysis
    from .model import HistoryRow, ImageSummary, LsEntry, TreeNode

Progress = Callable[[str], None]


def _noop(_: str) -> None:
    pass


class Strata(ContainerOps, VolumeOps, SystemOps, CopyOps, RegistryOps, BuildOps):
    """Everything a user can do with one store. Cheap to create; opens the store lazily."""

    def __init__(self, root: str | os.PathLike[str] | None = None, storage_driver: str | None = None) -> None:
        self.root = Path(root) if root else default_root()
        self.storage_driver = storage_driver
        self._store: Store | None = None

    @property
    def store(self) -> Store:  # type: ignore[override]
        if self._store is None:
            if os.geteuid() != 0:
                # Rootless content is only readable inside the store's user namespace: a
                # program using the API gets there as the CLI and the window do.
                from ..runtime.storens import enter

                enter()
            self._store = Store(self.root)
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    # --- images --------------------------------------------------------------------

    def image(self, name: str) -> Image:
        return self.store.images.resolve(name)

    def images(self, all_images: bool = True) -> list[ImageSummary]:
        from .model import ImageSummary

        out: list[ImageSummary] = []
        for image in self.store.images.all():
            layers = self.store.images.layers(image)
            size = sum(layer.content_size for layer in layers)
            names = image.tags or [""]
            for name in names:
                if name:
                    repo, tag = reference.split_name(name)
                    repo = reference.familiar(repo)
                else:
                    repo, tag = "<none>", "<none>"
                out.append(ImageSummary(image.id, repo, tag, image.created, size, len(layers)))
        return out

    def history(self, name: str) -> list[HistoryRow]:
        """docker history, newest first: each config history entry with its layer."""
        from .model import HistoryRow

        image = self.image(name)
        layers = self.store.images.layers(image)
        rows: list[HistoryRow] = []
        layer_iter = iter(layers)
        history = image.config.get("history") or []
        if not history:
            history = [{"created_by": layer.created_by} for layer in layers]
        for h in history:
            empty = bool(h.get("empty_layer"))
            layer = None if empty else next(layer_iter, None)
            rows.append(
                HistoryRow(
                    layer.id if layer else None,
                    str(h.get("created", "")),
                    str(h.get("created_by", "")),
                    layer.content_size if layer else 0,
                    str(h.get("comment", "")),
                    empty,
                )
            )
        rows.reverse()
        return rows

    def inspect_image(self, name: str) -> dict[str, Any]:
        """docker image inspect's shape, as far as it applies."""
        image = self.image(name)
        config = image.config
        layers = self.store.images.layers(image)
        repo_digests: list[str] = []
        return {
            "Id": image.id,
            "RepoTags": image.familiar_tags,
            "RepoDigests": repo_digests,
            "Parent": image.parent or "",
            "Comment": next((h.get("comment", "") for h in reversed(config.get("history") or [])), ""),
            "Created": config.get("created", ""),
            "Author": config.get("author", ""),
            "Config": config.get("config") or {},
            "Architecture": config.get("architecture", ""),
            "Variant": config.get("variant", ""),
            "Os": config.get("os", ""),
            "Size": sum(layer.content_size for layer in layers),
            "RootFS": {"Type": "layers", "Layers": [layer.diff_id for layer in layers]},
            "Metadata": {"LastTagTime": ""},
            "GraphDriver": {
                "Name": "overlay",
                "Data": {
                    "UpperDir": str(self.store.layers.diff_dir(layers[-1].id)) if layers else "",
                    "LowerDir": ":".join(str(self.store.layers.diff_dir(layer.id)) for layer in reversed(layers[:-1])),
                },
            },
            "History": config.get("history") or [],
        }

    def tag(self, source: str, target: str) -> None:
        image = self.image(source)
        self.store.images.tag(image, target)

    def rmi(self, names: list[str], force: bool = False) -> list[str]:
        out: list[str] = []
        for name in names:
            out += self.store.images.remove(name, force=force)
        return out

    # --- the layer tree ------------------------------------------------------------

    def layer_tree(self) -> list[TreeNode]:
        """All layers as a forest: images sharing steps share a trunk."""
        from .model import TreeNode

        nodes: dict[str, TreeNode] = {}
        for layer in self.store.layers.all():
            nodes[layer.id] = TreeNode(
                layer.id,
                layer.chain_id,
                layer.diff_id,
                layer.created_by,
                layer.content_size,
                layer.added,
                layer.modified,
                layer.deleted,
            )
        for image in self.store.images.all():
            if image.top_layer in nodes:
                node = nodes[image.top_layer]
                node.images.append(image.id)
                node.tags += image.familiar_tags or [f"<none>@{image.short_id}"]
        roots: list[TreeNode] = []
        for layer in self.store.layers.all():
            node = nodes[layer.id]
            if layer.parent and layer.parent in nodes:
                nodes[layer.parent].children.append(node)
            else:
                roots.append(node)
        self._fill_created_by(nodes)
        return roots

    def _fill_created_by(self, nodes: dict[str, TreeNode]) -> None:
        """Layers loaded without history get their instruction from any image that has one."""
        for image in self.store.images.all():
            history = [h for h in image.config.get("history") or [] if not h.get("empty_layer")]
            for layer, h in zip(self.store.images.layers(image), history, strict=False):
                node = nodes.get(layer.id)
                if node is not None and not node.created_by:
                    node.created_by = str(h.get("created_by") or h.get("comment") or "")

    def layer_changes(self, layer_id: str) -> list[Change]:
        from . import analysis

        return analysis.layer_changes(self.store, self.store.layers.find(layer_id))

    def layer_view(self, layer_id: str) -> UnionView:
        """The filesystem as of one layer: it and everything below it."""
        from ..store.union import UnionView

        return UnionView.of_layers(self.store, self.store.layers.chain(self.store.layers.find(layer_id).id))

    def analyze(self, name: str) -> ImageAnalysis:
        from . import analysis

        image = self.image(name)
        return analysis.analyze(self.store, self.store.images.layers(image))

    # --- files ---------------------------------------------------------------------

    def image_view(self, name: str, at_layer: int | None = None) -> UnionView:
        from ..store.union import UnionView

        image = self.image(name)
        layers = self.store.images.layers(image)
        if at_layer is not None:
            if not 0 <= at_layer < len(layers):
                raise InvalidArgument(f"{name} has {len(layers)} layers; --layer must be 0..{len(layers) - 1}")
            layers = layers[: at_layer + 1]
        return UnionView.of_layers(self.store, layers)

    def view_of(self, target: str) -> UnionView:
        """A container's merged view when ``target`` names a container, else an image's."""
        from ..errors import ContainerNotFound

        try:
            return self.container_view(target)
        except ContainerNotFound:
            return self.image_view(target)

    def ls(self, target: str, path: str = "/", recursive: bool = False) -> list[LsEntry]:
        view = self.view_of(target)
        try:
            return self._ls(view, path, recursive)
        finally:
            scratch = getattr(view, "scratch", None)
            if scratch is not None:
                from ..fsutil import rmtree

                rmtree(scratch)

    def _ls(self, view: UnionView, path: str, recursive: bool) -> list[LsEntry]:
        from .model import LsEntry

        if recursive:
            start = view.resolve_path(path)
            if start == "/":
                hits = view.walk()
            else:
                hits = [h for h in view.walk() if h.path == start or h.path.startswith(start + "/")]
        else:
            hits = view.list_dir(path)
        return [
            LsEntry(
                h.entry.path,
                h.entry.type,
                h.entry.mode,
                h.entry.uid,
                h.entry.gid,
                size,
                h.entry.link,
                "container" if view.layers[h.layer].kind == "container" else h.layer,
                h.status,
                h.entry.mtime,
                view.layers[h.layer].label,
            )
            for h, size in zip(hits, view.sizes(hits), strict=True)
        ]

    # --- archives ------------------------------------------------------------------

    def import_rootfs(
        self,
        source: str,
        name: str | None,
        message: str = "",
        changes: dict[str, Any] | None = None,
        stdin: BinaryIO | None = None,
    ) -> Image:
        from ..store import archive

        with self.store.gc_lock():
            return self._import_rootfs(archive, source, name, message, changes, stdin)

    def _import_rootfs(
        self,
        archive: ModuleType,
        source: str,
        name: str | None,
        message: str,
        changes: dict[str, Any] | None,
        stdin: BinaryIO | None,
    ) -> Image:
        if source == "-":
            if stdin is None:
                raise InvalidArgument("import from - needs standard input")
            image: Image = archive.import_rootfs(self.store, stdin, name, "-", changes, message)
            return image
        path = Path(source)
        if not path.is_file():
            raise InvalidArgument(f"{source}: no such file; give a root filesystem tarball")
        _check_readable(source)
        with open(path, "rb") as f:
            image = archive.import_rootfs(self.store, f, name, source, changes, message)
            return image

    def load(self, path: str, progress: Progress = _noop) -> list[str]:
        from ..store import archive

        if path != "-":
            _check_readable(path)
        with self.store.gc_lock():
            return archive.load(self.store, path, progress)

    def save(self, names: list[str], output: str, fmt: str = "docker", progress: Progress = _noop) -> None:
        from ..store import archive

        with self.store.gc_lock():
            archive.save(self.store, names, output, fmt, progress)


def _check_readable(path: str) -> None:
    """An archive this user may not read is bad input, named as such (not a crash)."""
    if os.path.isdir(path):  # an OCI layout
        if not os.access(path, os.R_OK | os.X_OK):
            raise InvalidArgument(f"{path}: cannot read this directory; check its permissions")
        return
    try:
        with open(path, "rb"):
            pass
    except FileNotFoundError:
        raise InvalidArgument(f"{path}: no such file") from None
    except OSError as e:
        raise InvalidArgument(f"{path}: cannot read it: {e.strerror}; check its permissions") from None


def dumps(value: Any) -> str:
    return json.dumps(value, indent=4, ensure_ascii=False)
