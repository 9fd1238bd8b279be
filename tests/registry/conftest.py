"""Helpers for the registry tests: layered images made in-process (no containers
needed), a scriptable fake registry for the answers a real one never gives (HTML,
redirect loops, truncated blobs, auth challenges), and the real registry's log."""

from __future__ import annotations

import base64
import gzip
import hashlib
import http.server
import io
import json
import tarfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from explorer.api import Strata
from explorer.registry.settings import RegistrySettings
from explorer.store.images import Image
from explorer.store.store import Store
from tests.fixtures.services import Registry

BASE = "test/busybox:1"


def layer_tar(files: dict[str, bytes], deletes: tuple[str, ...] = ()) -> bytes:
    """A small layer tar: the given files (with parent directories) and whiteouts."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        dirs: set[str] = set()
        for path in sorted(files):
            parts = path.strip("/").split("/")
            for i in range(1, len(parts)):
                d = "/".join(parts[:i])
                if d not in dirs:
                    info = tarfile.TarInfo(d)
                    info.type = tarfile.DIRTYPE
                    info.mode = 0o755
                    info.mtime = 1_700_000_000
                    tar.addfile(info)
                    dirs.add(d)
            info = tarfile.TarInfo(path.strip("/"))
            info.size = len(files[path])
            info.mode = 0o644
            info.mtime = 1_700_000_000
            tar.addfile(info, io.BytesIO(files[path]))
        for path in deletes:
            head, _, name = path.strip("/").rpartition("/")
            info = tarfile.TarInfo(f"{head}/.wh.{name}" if head else f".wh.{name}")
            info.mtime = 1_700_000_000
            tar.addfile(info)
    return buf.getvalue()


def add_layer(
    store: Store, base: Image | None, name: str, files: dict[str, bytes], deletes: tuple[str, ...] = ()
) -> Image:
    """``base`` plus one layer, tagged ``name``: what a RUN or COPY would make."""
    data = layer_tar(files, deletes)
    parent = base.top_layer if base else None
    layer, _, _ = store.layers.add_tar(io.BytesIO(data), parent, created_by=f"COPY {sorted(files)}")
    empty = {"architecture": "amd64", "os": "linux", "config": {}, "rootfs": {"type": "layers", "diff_ids": []}}
    config: dict[str, Any] = json.loads(base.raw_config) if base else empty
    config["rootfs"]["diff_ids"].append(layer.diff_id)
    config.setdefault("history", []).append({"created_by": f"COPY {name}"})
    config["config"] = {**config.get("config", {}), "Cmd": ["/bin/sh"]}
    return store.images.create(config, layer.id, tags=[name])


def derived(app: Strata, busybox_rootfs_tar: Path) -> tuple[Image, Image]:
    """The busybox base and an image two layers above it (one adds, one deletes)."""
    base = app.import_rootfs(str(busybox_rootfs_tar), BASE)
    files = {"/app/hello.txt": b"hello\n", "/app/data.bin": bytes(range(256)) * 64}
    mid = add_layer(app.store, base, "test/mid:1", files)
    top = add_layer(app.store, mid, "test/app:1", {"/app/more.txt": b"more\n"}, deletes=("/app/data.bin",))
    return base, top


def listing(app: Strata, name: str) -> list[tuple[object, ...]]:
    """Everything visible in an image, content digests included."""
    view = app.image_view(name)
    return sorted(
        (h.entry.path, h.entry.type, h.entry.mode, h.entry.uid, h.entry.gid, h.entry.size, h.entry.link, h.entry.digest)
        for h in view.walk()
    )


def blob_gets(registry: Registry, since: int = 0) -> list[str]:
    return [r.path for r in registry.requests()[since:] if r.method == "GET" and "/blobs/" in r.path]


def leftovers(store: Store) -> list[str]:
    """Staging a failed operation left behind (there must be none)."""
    return sorted(p.name for p in store.tmp.iterdir())


@pytest.fixture(autouse=True)
def _own_config_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Credentials one test saves must not be found by the next."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("STRATA_INSECURE_REGISTRIES", raising=False)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker-config"))


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Strata]:
    strata = Strata(tmp_path / "store")
    yield strata
    strata.close()


@pytest.fixture
def other(tmp_path: Path) -> Iterator[Strata]:
    """A second, empty store: where pulled images land."""
    strata = Strata(tmp_path / "other")
    yield strata
    strata.close()


@pytest.fixture
def settings() -> RegistrySettings:
    return RegistrySettings.load()


# --- a fake registry -----------------------------------------------------------------------


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


Handler = Callable[["FakeHandler"], None]


@dataclass
class FakeRegistry:
    """A registry we script: blobs and manifests served from dicts, ``routes`` to override
    any path, ``auth`` to demand credentials. ``log`` records (method, path, headers)."""

    blobs: dict[str, bytes] = field(default_factory=dict)
    manifests: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    routes: dict[str, Handler] = field(default_factory=dict)
    auth: str = ""  # "", "basic" or "bearer"
    users: dict[str, str] = field(default_factory=dict)
    private: bool = False  # bearer: anonymous tokens may not read
    log: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    port: int = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def add_image(
        self,
        repo: str,
        tag: str,
        layers: list[bytes],
        *,
        diff_ids: list[str] | None = None,
        media_type: str = "application/vnd.oci.image.layer.v1.tar+gzip",
        layer_digests: list[str] | None = None,
        arch: str = "amd64",
    ) -> str:
        """Publish an image of gzip'd ``layers``; returns the manifest digest."""
        compressed = [gzip.compress(data, mtime=0) for data in layers]
        config = json.dumps(
            {
                "architecture": arch,
                "os": "linux",
                "config": {},
                "rootfs": {"type": "layers", "diff_ids": diff_ids or [sha(d) for d in layers]},
                "history": [{"created_by": f"layer {i}"} for i in range(len(layers))],
            }
        ).encode()
        self.blobs[sha(config)] = config
        descs = []
        for i, blob in enumerate(compressed):
            self.blobs[sha(blob)] = blob
            digest = layer_digests[i] if layer_digests else sha(blob)
            descs.append({"mediaType": media_type, "digest": digest, "size": len(blob)})
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {
                    "mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": sha(config),
                    "size": len(config),
                },
                "layers": descs,
            }
        ).encode()
        mt = "application/vnd.oci.image.manifest.v1+json"
        self.manifests[f"{repo}:{tag}"] = (mt, manifest)
        self.manifests[f"{repo}:{sha(manifest)}"] = (mt, manifest)
        return sha(manifest)


class FakeHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    fake: FakeRegistry

    def log_message(self, format: str, *args: object) -> None:
        pass

    def send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        headers = {"Content-Length": str(len(body)), **(headers or {})}
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _authorized(self) -> bool:
        fake = self.fake
        got = self.headers.get("Authorization", "")
        if fake.auth == "basic":
            if got.startswith("Basic "):
                user, _, password = base64.b64decode(got[6:]).decode().partition(":")
                if fake.users.get(user) == password:
                    return True
            self.send(
                401,
                b'{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}',
                {"WWW-Authenticate": 'Basic realm="fake"', "Content-Type": "application/json"},
            )
            return False
        if fake.auth == "bearer":
            if got == "Bearer user-token" or (got == "Bearer anon-token" and not fake.private):
                return True
            self.send(
                401,
                b'{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}',
                {
                    "WWW-Authenticate": f'Bearer realm="http://{fake.address}/token",service="fake",'
                    'scope="repository:x:pull"',
                    "Content-Type": "application/json",
                },
            )
            return False
        return True

    def _token(self) -> None:
        got = self.headers.get("Authorization", "")
        if got.startswith("Basic "):
            user, _, password = base64.b64decode(got[6:]).decode().partition(":")
            if self.fake.users.get(user) != password:
                self.send(401, b'{"details":"incorrect username or password"}', {"Content-Type": "application/json"})
                return
            self.send(
                200,
                json.dumps({"token": "user-token", "expires_in": 300}).encode(),
                {"Content-Type": "application/json"},
            )
            return
        self.send(200, json.dumps({"token": "anon-token"}).encode(), {"Content-Type": "application/json"})

    def handle_any(self) -> None:
        fake = self.fake
        path = self.path.split("?", 1)[0]
        fake.log.append((self.command, self.path, dict(self.headers)))
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        if path in fake.routes:
            fake.routes[path](self)
            return
        if path == "/token":
            self._token()
            return
        if not self._authorized():
            return
        if path == "/v2/":
            self.send(200, b"{}", {"Content-Type": "application/json"})
            return
        parts = path[len("/v2/") :].split("/")
        if len(parts) >= 3 and parts[-2] == "manifests":
            found = fake.manifests.get("/".join(parts[:-2]) + ":" + parts[-1])
            if found is None:
                self.send(
                    404,
                    b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}',
                    {"Content-Type": "application/json"},
                )
                return
            self.send(200, found[1], {"Content-Type": found[0], "Docker-Content-Digest": sha(found[1])})
            return
        if len(parts) >= 3 and parts[-2] == "blobs" and parts[-1] in fake.blobs:
            self.send(200, fake.blobs[parts[-1]], {"Content-Type": "application/octet-stream"})
            return
        self.send(
            404, b'{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown"}]}', {"Content-Type": "application/json"}
        )

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = handle_any


@pytest.fixture
def fake_registry() -> Iterator[FakeRegistry]:
    fake = FakeRegistry()
    handler = type("Handler", (FakeHandler,), {"fake": fake})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    fake.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield fake
    server.shutdown()
    server.server_close()
