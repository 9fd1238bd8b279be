"""The mounts of a container, with docker's rules: named and anonymous volumes, bind
mounts and tmpfs.

- ``-v NAME:/path`` creates the named volume when missing; ``-v /path`` and every
  ``VOLUME`` of the image get a fresh anonymous volume unless a mount covers them.
- A new, empty volume mounted over a directory the image has is first filled with the
  image's content there (``nocopy`` turns that off); a bind mount never is.

``Mounts`` is the planner ``Containers`` is given: it turns the flags into a
``MountPlan`` at create, fills the new volumes once the container exists, and gives
the runtime its mount list at every start.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .. import runtime
from ..errors import InvalidArgument
from ..store.export import VOLUME_FILL, export_view
from ..store.images import Image
from ..store.index import normalize
from ..store.volumes import check_name
from .context import StoreContext

if TYPE_CHECKING:
    from ..store.containers import ContainerRecord
    from ..store.store import Store


@dataclass
class MountPlan:
    volumes: list[tuple[str, str, bool]] = field(default_factory=list)  # (volume, target, readonly)
    binds: list[dict[str, Any]] = field(default_factory=list)  # bind and tmpfs mounts, docker-inspect shaped
    fill: list[tuple[str, str]] = field(default_factory=list)  # (volume, target): copy image content if empty


def _target(path: str, spec: str) -> str:
    if not path.startswith("/"):
        raise InvalidArgument(f"invalid mount {spec!r}: the container path must be absolute")
    target = normalize(path)
    if target == "/":
        raise InvalidArgument(f"invalid mount {spec!r}: cannot mount over /")
    return target


def parse_volume_flag(spec: str) -> dict[str, Any]:
    """``-v`` syntax: ``/path``, ``NAME:/path[:opts]``, ``/host:/path[:opts]``."""
    parts = spec.split(":")
    if len(parts) == 1:
        return {"type": "volume", "source": None, "target": _target(parts[0], spec), "readonly": False, "nocopy": False}
    if len(parts) > 3:
        raise InvalidArgument(f"invalid volume specification {spec!r}: use SOURCE:TARGET[:ro]")
    source, target = parts[0], parts[1]
    options = parts[2].split(",") if len(parts) == 3 else []
    unknown = [o for o in options if o not in ("ro", "rw", "nocopy", "z", "Z", "")]
    if unknown:
        raise InvalidArgument(f"invalid volume specification {spec!r}: unknown option {unknown[0]!r}")
    if not source:
        raise InvalidArgument(f"invalid volume specification {spec!r}: empty source")
    kind = "bind" if source.startswith(("/", ".")) else "volume"
    return {
        "type": kind,
        "source": source,
        "target": _target(target, spec),
        "readonly": "ro" in options,
        "nocopy": "nocopy" in options,
    }


def parse_mount_flag(spec: str) -> dict[str, Any]:
    """``--mount type=…,source=…,target=…[,readonly][,volume-nocopy][,tmpfs-size=…]``."""
    fields: dict[str, str] = {}
    for item in spec.split(","):
        if not item:
            continue
        key, sep, value = item.partition("=")
        fields[key.strip().lower()] = value.strip() if sep else "true"
    kind = fields.pop("type", "volume")
    if kind not in ("volume", "bind", "tmpfs"):
        raise InvalidArgument(f"invalid mount {spec!r}: type must be volume, bind or tmpfs")
    source = fields.pop("source", None) or fields.pop("src", None)
    target = fields.pop("target", None) or fields.pop("destination", None) or fields.pop("dst", None)
    if not target:
        raise InvalidArgument(f"invalid mount {spec!r}: target is required")
    readonly = fields.pop("readonly", fields.pop("ro", "false")).lower() in ("true", "1", "")
    nocopy = fields.pop("volume-nocopy", "false").lower() in ("true", "1", "")
    size = fields.pop("tmpfs-size", "")
    mode = fields.pop("tmpfs-mode", "")
    for ignored in ("bind-propagation", "consistency", "volume-driver", "bind-recursive"):
        fields.pop(ignored, None)
    labels = {k[len("volume-label=") :]: v for k, v in fields.items() if k.startswith("volume-label")}
    leftovers = [k for k in fields if not k.startswith("volume-label")]
    if leftovers:
        raise InvalidArgument(f"invalid mount {spec!r}: unknown field {leftovers[0]!r}")
    if kind == "bind" and not source:
        raise InvalidArgument(f"invalid mount {spec!r}: a bind mount needs source=")
    if kind == "tmpfs" and source:
        raise InvalidArgument(f"invalid mount {spec!r}: tmpfs takes no source")
    return {
        "type": kind,
        "source": source,
        "target": _target(target, spec),
        "readonly": readonly,
        "nocopy": nocopy,
        "size": size,
        "mode": mode,
        "labels": labels,
    }


class Mounts:
    """Plans, prepares and lists a container's mounts; needs only the store."""

    def __init__(self, context: StoreContext) -> None:
        self._context = context

    @property
    def store(self) -> Store:
        return self._context.store

    def plan(self, image: Image, volumes: Sequence[str], mounts: Sequence[str]) -> MountPlan:
        """What ``-v`` (``volumes``), ``--mount`` (``mounts``) and the image's VOLUMEs ask for;
        the volumes it names are created here (named ones only when missing)."""
        specs = [parse_volume_flag(s) for s in volumes] + [parse_mount_flag(s) for s in mounts]
        seen: set[str] = set()
        for spec in specs:
            if spec["target"] in seen:
                raise InvalidArgument(f"duplicate mount point: {spec['target']}")
            seen.add(spec["target"])
        image_volumes = (image.config.get("config") or {}).get("Volumes") or {}
        for path in image_volumes:
            target = normalize(path)
            if target not in seen and target != "/":
                specs.append({"type": "volume", "source": None, "target": target, "readonly": False, "nocopy": False})
                seen.add(target)
        plan = MountPlan()
        for spec in specs:
            if spec["type"] == "bind":
                source = os.path.abspath(spec["source"])
                if not os.path.exists(source):
                    raise InvalidArgument(
                        f"bind source path does not exist: {source}; create it first (strata never creates it)"
                    )
                plan.binds.append(
                    {"Type": "bind", "Source": source, "Destination": spec["target"], "RW": not spec["readonly"]}
                )
            elif spec["type"] == "tmpfs":
                tmpfs_options = [
                    o
                    for o in (
                        f"size={spec['size']}" if spec.get("size") else "",
                        f"mode={spec['mode']}" if spec.get("mode") else "",
                    )
                    if o
                ]
                plan.binds.append(
                    {
                        "Type": "tmpfs",
                        "Source": "",
                        "Destination": spec["target"],
                        "RW": not spec["readonly"],
                        "Options": tmpfs_options,
                    }
                )
            else:
                name = spec["source"]
                if name is not None:
                    check_name(name)
                    volume = self.store.volumes.create(name, spec.get("labels") or None)
                else:
                    volume = self.store.volumes.create(None, anonymous=True)
                plan.volumes.append((volume.name, spec["target"], spec["readonly"]))
                if not spec["nocopy"]:
                    plan.fill.append((volume.name, spec["target"]))
        return plan

    def prepare(self, container_id: str, image: Image, plan: MountPlan) -> None:
        """Copy-on-first-mount: an empty volume over a non-empty image directory gets
        that directory's content."""
        if not plan.fill:
            return
        from ..store.union import UnionView

        view = UnionView.of_layers(self.store, self.store.images.layers(image))
        for name, target in plan.fill:
            data = self.store.volumes.data_dir(name)
            if any(data.iterdir()):
                continue
            found = view.lookup(view.resolve_path(target))
            if found is None or found.entry.type != "dir":
                continue
            export_view(view, found.path, data, VOLUME_FILL, into=True)

    def for_runtime(self, rec: ContainerRecord) -> list[runtime.Mount]:
        """The mounts a start (or a helper entering the stopped container) makes."""
        mounts = [
            runtime.Mount(str(self.store.volumes.data_dir(v)), target, "bind", readonly)
            for v, target, readonly in rec.volumes
        ]
        for b in rec.config.get("Binds") or []:
            if b["Type"] == "tmpfs":
                mounts.append(
                    runtime.Mount("tmpfs", b["Destination"], "tmpfs", not b["RW"], list(b.get("Options") or []))
                )
            else:
                if not os.path.exists(b["Source"]):
                    raise InvalidArgument(f"bind source path does not exist: {b['Source']}")
                mounts.append(runtime.Mount(b["Source"], b["Destination"], "bind", not b["RW"]))
        return mounts
