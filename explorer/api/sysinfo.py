"""``strata system info``: what this Strata runs on, in the shape of ``docker info``.

The parts a rootless user needs when something does not work are here: the storage
driver and whether overlay mounts with ``userxattr``, the id mapping of the store's
user namespace (and what is missing for a full one), the store path and the file
system under it.
"""

from __future__ import annotations

import os
import platform
from dataclasses import asdict, dataclass, field
from typing import Any

from ..store.store import Store


@dataclass
class SystemInfo:
    version: str
    root: str
    filesystem: str
    driver: str
    userxattr: bool
    rootless: bool
    id_mapping: str  # "root", "subids" or "single"
    uid_map: list[tuple[int, int, int]]
    gid_map: list[tuple[int, int, int]]
    advice: str | None
    containers: int
    running: int
    stopped: int
    images: int
    volumes: int
    build_cache: int
    kernel: str
    operating_system: str
    architecture: str
    cpus: int
    memory: int
    warnings: list[str] = field(default_factory=list)
    security_options: list[str] = field(default_factory=list)  # docker info's SecurityOptions

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def _ranges(text: str) -> list[tuple[int, int, int]]:
    nums = [int(n) for n in text.split()]
    return [(nums[i], nums[i + 1], nums[i + 2]) for i in range(0, len(nums) - 2, 3)]


def filesystem_of(path: str) -> str:
    """The file system type of the mount holding ``path`` (from /proc/self/mountinfo)."""
    real = os.path.realpath(path)
    best, kind = "", "unknown"
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return kind
    for line in lines:
        left, _sep, right = line.partition(" - ")
        fields = left.split()
        if len(fields) < 5 or not right:
            continue
        point = fields[4].replace("\\040", " ")
        inside = real == point or real.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, kind = point, right.split()[0]
    return kind


def _os_name() -> str:
    try:
        with open("/etc/os-release", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return platform.system()


def _memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return 0


def gather(store: Store, driver: str, version: str) -> SystemInfo:
    from ..runtime import seccomp, storens

    mapping = storens.current()
    rootless = mapping.mode != "root"
    records = store.containers.all()
    running = sum(1 for c in records if c.state == "running")
    row = store.meta.one("SELECT COUNT(*) FROM build_cache")
    cache = row[0] if row else 0
    advice = storens.single_id_advice()
    warnings = [advice] if advice else []
    security = ["name=userns", "name=seccomp,profile=default" if seccomp.available() else "name=seccomp,unavailable"]
    if rootless:
        security.append("name=rootless")
    if not seccomp.available():
        warnings.append("libseccomp is missing: containers need it for their seccomp filter (install libseccomp2)")
    if driver == "vfs":
        warnings.append("the vfs driver copies every image into each container: overlay did not mount here")
    return SystemInfo(
        version=version,
        root=str(store.root),
        filesystem=filesystem_of(str(store.root)),
        driver=driver,
        userxattr=driver == "overlay" and rootless,
        rootless=rootless,
        id_mapping="root" if not rootless else mapping.mode,
        uid_map=_ranges(mapping.uid_map),
        gid_map=_ranges(mapping.gid_map),
        advice=advice,
        containers=len(records),
        running=running,
        stopped=len(records) - running,
        images=len(store.images.all()),
        volumes=len(store.volumes.all()),
        build_cache=int(cache),
        kernel=platform.release(),
        operating_system=_os_name(),
        architecture=platform.machine(),
        cpus=os.cpu_count() or 1,
        memory=_memory(),
        warnings=warnings,
        security_options=security,
    )
