"""``Strata``: the porcelain over the operation groups, for the CLI, the window and tests.

Each group is an object built here with the collaborators it needs and nothing else
(see the package docstring); ``Strata`` owns them and forwards each public operation to
the one group that does it, so callers keep one typed object with the names they know.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from ..store.store import default_root
from .archives import Progress, no_progress
from .context import StoreContext

if TYPE_CHECKING:
    import threading

    from .. import runtime
    from ..builder.cache import CacheEntry, PruneReport
    from ..builder.events import BuildEvent, BuildResult
    from ..registry.events import Progress as TransferProgress
    from ..registry.pull import PullResult
    from ..registry.push import PushResult
    from ..store.check import Problem
    from ..store.containers import ContainerRecord
    from ..store.images import Image
    from ..store.store import Store
    from ..store.union import UnionView
    from .analysis import Change, ImageAnalysis
    from .archives import Archives
    from .build import Builds
    from .containers import ContainerInfo, Containers, RunOptions
    from .copy import ContainerFiles, CopyReport
    from .images import Images
    from .model import HistoryRow, ImageSummary, LsEntry, TreeNode
    from .mounts import MountPlan, Mounts
    from .registry import Registries
    from .scratch import ContainerView
    from .sysinfo import SystemInfo
    from .system import System
    from .usage import DiskUsage
    from .volumes import VolumeInfo, Volumes


class Strata:
    """Everything a user can do with one store. Cheap to create; opens the store lazily."""

    def __init__(self, root: str | os.PathLike[str] | None = None, storage_driver: str | None = None) -> None:
        self.context = StoreContext(Path(root) if root else default_root(), storage_driver)

    # Each group is built, and its module imported, when first used: a command pays only
    # for the groups its verb reaches (a build never loads the container runtime's API or
    # the registry client; tests/cli/test_import_budget.py holds each verb to its list).

    @cached_property
    def image_ops(self) -> Images:
        from .images import Images

        return Images(self.context)

    @cached_property
    def archive_ops(self) -> Archives:
        from .archives import Archives

        return Archives(self.context)

    @cached_property
    def volume_ops(self) -> Volumes:
        from .volumes import Volumes

        return Volumes(self.context)

    @cached_property
    def mount_ops(self) -> Mounts:
        from .mounts import Mounts

        return Mounts(self.context)

    @cached_property
    def container_ops(self) -> Containers:
        from .containers import Containers

        return Containers(self.context, self.volume_ops, self.mount_ops)

    @cached_property
    def file_ops(self) -> ContainerFiles:
        from .copy import ContainerFiles

        return ContainerFiles(self.context, self.container_ops, self.mount_ops)

    @cached_property
    def registry_ops(self) -> Registries:
        from .registry import Registries

        return Registries(self.context)

    @cached_property
    def build_ops(self) -> Builds:
        from .build import Builds

        return Builds(self.context)

    @cached_property
    def system_ops(self) -> System:
        from .system import System

        return System(self.context, self.container_ops)

    @property
    def root(self) -> Path:
        return self.context.root

    @property
    def storage_driver(self) -> str | None:
        return self.context.storage_driver

    @property
    def store(self) -> Store:
        return self.context.store

    def close(self) -> None:
        self.context.close()

    def driver(self) -> str:
        return self.context.driver()

    # --- images (Images) -----------------------------------------------------------

    def image(self, name: str) -> Image:
        return self.image_ops.image(name)

    def images(self, all_images: bool = True) -> list[ImageSummary]:
        return self.image_ops.images(all_images)

    def history(self, name: str) -> list[HistoryRow]:
        return self.image_ops.history(name)

    def inspect_image(self, name: str) -> dict[str, Any]:
        return self.image_ops.inspect_image(name)

    def tag(self, source: str, target: str) -> None:
        self.image_ops.tag(source, target)

    def rmi(self, names: list[str], force: bool = False) -> list[str]:
        return self.image_ops.rmi(names, force)

    def layer_tree(self) -> list[TreeNode]:
        return self.image_ops.layer_tree()

    def layer_changes(self, layer_id: str) -> list[Change]:
        return self.image_ops.layer_changes(layer_id)

    def layer_view(self, layer_id: str) -> UnionView:
        return self.image_ops.layer_view(layer_id)

    def analyze(self, name: str) -> ImageAnalysis:
        return self.image_ops.analyze(name)

    def image_view(self, name: str, at_layer: int | None = None) -> UnionView:
        return self.image_ops.image_view(name, at_layer)

    # --- files of an image or a container --------------------------------------------

    def view_of(self, target: str) -> UnionView:
        """A container's merged view when ``target`` names a container, else an image's."""
        from ..errors import ContainerNotFound

        try:
            return self.container_ops.container_view(target)
        except ContainerNotFound:
            return self.image_ops.image_view(target)

    def ls(self, target: str, path: str = "/", recursive: bool = False) -> list[LsEntry]:
        from ..errors import ContainerNotFound

        try:
            view = self.container_ops.container_view(target)
        except ContainerNotFound:
            return _ls(self.image_ops.image_view(target), path, recursive)
        with view:
            return _ls(view, path, recursive)

    # --- archives (Archives) ---------------------------------------------------------

    def import_rootfs(
        self,
        source: str,
        name: str | None,
        message: str = "",
        changes: dict[str, Any] | None = None,
        stdin: BinaryIO | None = None,
    ) -> Image:
        return self.archive_ops.import_rootfs(source, name, message, changes, stdin)

    def load(self, path: str, progress: Progress = no_progress) -> list[str]:
        return self.archive_ops.load(path, progress)

    def save(self, names: list[str], output: str, fmt: str = "docker", progress: Progress = no_progress) -> None:
        self.archive_ops.save(names, output, fmt, progress)

    # --- containers (Containers) -----------------------------------------------------

    def containers(self, all: bool = True) -> list[ContainerInfo]:
        return self.container_ops.containers(all)

    def container(self, name: str) -> ContainerInfo:
        return self.container_ops.container(name)

    def inspect_container(self, name: str) -> dict[str, Any]:
        return self.container_ops.inspect_container(name)

    def reconcile(self) -> list[str]:
        return self.container_ops.reconcile()

    def create(
        self, image_name: str, options: RunOptions | None = None, name: str | None = None, hold: bool = False
    ) -> ContainerInfo:
        return self.container_ops.create(image_name, options, name, hold)

    def start(self, name: str) -> ContainerInfo:
        return self.container_ops.start(name)

    def start_attached(self, name: str, stdin: int | None, stdout: int, stderr: int) -> int:
        return self.container_ops.start_attached(name, stdin, stdout, stderr)

    def stop(self, name: str, timeout: float = 10.0) -> str:
        return self.container_ops.stop(name, timeout)

    def kill(self, name: str, sig: str = "SIGKILL") -> str:
        return self.container_ops.kill(name, sig)

    def wait(self, name: str) -> int:
        return self.container_ops.wait(name)

    def rm(self, name: str, force: bool = False, volumes: bool = False) -> str:
        return self.container_ops.rm(name, force, volumes)

    def logs(self, name: str) -> tuple[bytes, bytes]:
        return self.container_ops.logs(name)

    def follow_logs(self, name: str, stdout: int, stderr: int, poll: float = 0.1) -> None:
        self.container_ops.follow_logs(name, stdout, stderr, poll)

    def exec(
        self,
        name: str,
        cmd: list[str],
        *,
        env: list[str] | None = None,
        user: str | None = None,
        workdir: str | None = None,
        tty: bool = False,
        stdin: bool = False,
        stdio: tuple[int | None, int | None, int | None] = (None, None, None),
        detach: bool = False,
    ) -> int:
        return self.container_ops.exec(
            name, cmd, env=env, user=user, workdir=workdir, tty=tty, stdin=stdin, stdio=stdio, detach=detach
        )

    def container_view(self, name: str) -> ContainerView:
        return self.container_ops.container_view(name)

    def container_diff_dir(self, name: str) -> Path:
        return self.container_ops.container_diff_dir(name)

    def diff(self, name: str) -> list[Change]:
        return self.container_ops.diff(name)

    def commit(
        self,
        name: str,
        reference_name: str | None = None,
        message: str = "",
        author: str = "",
        changes: dict[str, Any] | None = None,
    ) -> Image:
        return self.container_ops.commit(name, reference_name, message, author, changes)

    # --- a container's mounts (Mounts) -----------------------------------------------

    def plan_mounts(self, image: Image, options: RunOptions) -> MountPlan:
        return self.mount_ops.plan(image, options.volumes, options.mounts)

    def prepare_mounts(self, container_id: str, image: Image, plan: MountPlan) -> None:
        self.mount_ops.prepare(container_id, image, plan)

    def runtime_mounts(self, rec: ContainerRecord) -> list[runtime.Mount]:
        return self.mount_ops.for_runtime(rec)

    # --- files in and out of containers and volumes (ContainerFiles) -----------------

    def container_write(self, name: str, path: str, data: bytes) -> None:
        self.file_ops.container_write(name, path, data)

    def container_delete(self, name: str, path: str) -> None:
        self.file_ops.container_delete(name, path)

    def container_mkdir(self, name: str, path: str) -> None:
        self.file_ops.container_mkdir(name, path)

    def cp_in(
        self,
        name: str,
        host_path: str,
        container_path: str,
        *,
        archive: bool = False,
        follow_link: bool = False,
        stdin: BinaryIO | None = None,
        cancel: threading.Event | None = None,
    ) -> CopyReport:
        return self.file_ops.cp_in(
            name, host_path, container_path, archive=archive, follow_link=follow_link, stdin=stdin, cancel=cancel
        )

    def cp_in_volume(
        self,
        name: str,
        host_path: str,
        path: str,
        *,
        archive: bool = False,
        follow_link: bool = False,
        stdin: BinaryIO | None = None,
        cancel: threading.Event | None = None,
    ) -> CopyReport:
        return self.file_ops.cp_in_volume(
            name, host_path, path, archive=archive, follow_link=follow_link, stdin=stdin, cancel=cancel
        )

    def cp_out(
        self,
        name: str,
        container_path: str,
        host_path: str,
        *,
        archive: bool = False,
        follow_link: bool = False,
        stdout: BinaryIO | None = None,
        cancel: threading.Event | None = None,
    ) -> CopyReport:
        return self.file_ops.cp_out(
            name, container_path, host_path, archive=archive, follow_link=follow_link, stdout=stdout, cancel=cancel
        )

    # --- volumes (Volumes) -----------------------------------------------------------

    def volumes(self, dangling: bool | None = None, labels: list[str] | None = None) -> list[VolumeInfo]:
        return self.volume_ops.volumes(dangling, labels)

    def volume(self, name: str) -> VolumeInfo:
        return self.volume_ops.volume(name)

    def volume_create(self, name: str | None = None, labels: dict[str, str] | None = None) -> VolumeInfo:
        return self.volume_ops.volume_create(name, labels)

    def volume_rm(self, names: list[str], force: bool = False) -> list[str]:
        return self.volume_ops.volume_rm(names, force)

    def volume_prune(self, all: bool = False) -> tuple[list[str], int]:
        return self.volume_ops.volume_prune(all)

    def volume_size(self, name: str) -> int:
        return self.volume_ops.volume_size(name)

    def volume_view(self, name: str) -> UnionView:
        return self.volume_ops.volume_view(name)

    def volume_listing(self, name: str) -> tuple[UnionView, int]:
        return self.volume_ops.volume_listing(name)

    def bind_view(self, source: str) -> UnionView:
        return self.volume_ops.bind_view(source)

    def inspect_volume(self, name: str) -> dict[str, Any]:
        return self.volume_ops.inspect_volume(name)

    # --- registries (Registries) -----------------------------------------------------

    def pull(
        self,
        name: str,
        *,
        platform: str | None = None,
        progress: TransferProgress | None = None,
        cancel: threading.Event | None = None,
    ) -> PullResult:
        return self.registry_ops.pull(name, platform=platform, progress=progress, cancel=cancel)

    def push(
        self,
        name: str,
        *,
        compression: str = "gzip",
        fmt: str | None = None,
        progress: TransferProgress | None = None,
        cancel: threading.Event | None = None,
    ) -> PushResult:
        return self.registry_ops.push(name, compression=compression, fmt=fmt, progress=progress, cancel=cancel)

    def login(self, server: str | None, username: str, password: str) -> str:
        return self.registry_ops.login(server, username, password)

    def logout(self, server: str | None) -> str:
        return self.registry_ops.logout(server)

    def ensure_image(
        self,
        name: str,
        pull: bool = False,
        *,
        progress: TransferProgress | None = None,
        cancel: threading.Event | None = None,
    ) -> Image:
        return self.registry_ops.ensure_image(name, pull, progress=progress, cancel=cancel)

    # --- builds (Builds) -------------------------------------------------------------

    def build(
        self,
        context_dir: str,
        dockerfile: str | None = None,
        tags: Sequence[str] = (),
        build_args: Mapping[str, str] | None = None,
        target: str | None = None,
        no_cache: bool = False,
        on_event: Callable[[BuildEvent], None] | None = None,
        cancel: threading.Event | None = None,
        *,
        dockerfile_text: str | None = None,
        network: str = "host",
        pull: bool = False,
    ) -> BuildResult:
        return self.build_ops.build(
            context_dir,
            dockerfile,
            tags,
            build_args,
            target,
            no_cache,
            on_event,
            cancel,
            dockerfile_text=dockerfile_text,
            network=network,
            pull=pull,
        )

    def builder_prune(self, all: bool = False) -> PruneReport:
        return self.build_ops.builder_prune(all)

    def build_cache(self) -> list[CacheEntry]:
        return self.build_ops.build_cache()

    # --- the whole store (System) ----------------------------------------------------

    def info(self) -> SystemInfo:
        return self.system_ops.info()

    def df(self) -> DiskUsage:
        return self.system_ops.df()

    def quarantine_prune(self) -> tuple[list[str], int]:
        return self.system_ops.quarantine_prune()

    def container_prune(self) -> tuple[list[str], int]:
        return self.system_ops.container_prune()

    def image_prune(self, all: bool = False) -> tuple[list[str], int]:
        return self.system_ops.image_prune(all)

    def cache_prune(self, keep_storage: int = 0, all: bool = True) -> tuple[int, int]:
        return self.system_ops.cache_prune(keep_storage, all)

    def check(self, repair: bool = False, verify_content: bool = True) -> list[Problem]:
        return self.system_ops.check(repair, verify_content)


def _ls(view: UnionView, path: str, recursive: bool) -> list[LsEntry]:
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
