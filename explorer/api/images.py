"""Images and their layers as the user names them: list, history, inspect, tag, rmi, the
layer tree shared across images, and read-only views of an image's files."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import ImageInUse, ImageNotFound, InvalidArgument, InvalidReference
from ..store import reference
from ..store.images import Image
from .context import StoreContext

if TYPE_CHECKING:
    from ..store.store import Store
    from ..store.union import UnionView
    from .analysis import Change, ImageAnalysis
    from .model import HistoryRow, ImageSummary, TreeNode


class Images:
    """Everything about images; needs only the store."""

    def __init__(self, context: StoreContext) -> None:
        self._context = context

    @property
    def store(self) -> Store:
        return self._context.store

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

    # --- rmi -------------------------------------------------------------------------

    def rmi(self, names: list[str], force: bool = False) -> list[str]:
        """docker rmi, with its two rules beyond the store's removal of one image:

        - ``force`` untags an image containers use and keeps it (untagged) while they do;
          Docker drops the image record and keeps its layers for the container, but here a
          container's layers are its image's, so the image stays until the last container
          using it goes (then ``image prune`` takes it).
        - deleting an image also deletes its untagged parents that no other image, child
          or container needs (Docker's default; its ``--no-prune`` has no use here)."""
        out: list[str] = []
        for name in names:
            with self.store.gc_lock(exclusive=True):
                out += self._rmi(name, force)
        return out

    def _rmi(self, name: str, force: bool) -> list[str]:
        images = self.store.images
        image = images.resolve(name)
        if force and images.users(image.id):
            return self._untag_in_use(name, image)
        out = images.remove(name, force=force)
        if f"Deleted: {image.id}" in out:
            out += self._remove_unused_parents(image.parent)
        return out

    def _untag_in_use(self, name: str, image: Image) -> list[str]:
        """``rmi -f`` of an image containers use: by name the name goes, by id every tag;
        an untagged one named by id has nothing left to take (as Docker refuses an image
        a running container uses, even forced)."""
        tag = _tag_named(name, image)
        tags = [tag] if tag is not None else list(image.tags)
        if not tags:
            raise ImageInUse(
                f"image {image.short_id}", self.store.images.users(image.id), "remove the containers first"
            )
        out: list[str] = []
        for t in tags:
            if self.store.images.untag(t) is not None:
                out.append(f"Untagged: {reference.familiar(t)}")
        return out

    def _remove_unused_parents(self, parent_id: str | None) -> list[str]:
        out: list[str] = []
        images = self.store.images
        while parent_id is not None:
            try:
                parent = images.get(parent_id)
            except ImageNotFound:
                break
            if parent.tags or images.has_children(parent.id) or images.users(parent.id):
                break
            out += images.remove(parent.id)
            parent_id = parent.parent
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

    def image_view(self, name: str, at_layer: int | None = None) -> UnionView:
        from ..store.union import UnionView

        image = self.image(name)
        layers = self.store.images.layers(image)
        if at_layer is not None:
            if not 0 <= at_layer < len(layers):
                raise InvalidArgument(f"{name} has {len(layers)} layers; --layer must be 0..{len(layers) - 1}")
            layers = layers[: at_layer + 1]
        return UnionView.of_layers(self.store, layers)


def _tag_named(name: str, image: Image) -> str | None:
    """The tag of ``image`` that ``name`` spells, None when ``name`` is its id."""
    try:
        ref = reference.parse(name)
    except (InvalidReference, InvalidArgument):
        return None
    return ref.name if ref.name in image.tags else None
