"""Registries that try to get credentials, trust or time out of us (issue 13, "Credentials
and the network"): an upload ``Location`` on another host, redirects that leave or enter
this machine, names under ``.localhost`` that resolve elsewhere, a blob that stops
arriving, and Ctrl-C in the middle of a pull. Through the real ``strata`` command where the
trick needs no in-process name resolution."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from explorer.api import Strata
from explorer.errors import Cancelled, RegistryError
from explorer.registry.login import login
from explorer.registry.pull import pull
from tests.capabilities import require_tool
from tests.fixtures import REPO_ROOT, run_strata
from tests.registry.conftest import FakeHandler, FakeRegistry, add_layer, layer_tar, leftovers, sha
from tests.registry.hostile_servers import ScriptedHandler, non_loopback_address, serving

ANOTHER_LOOPBACK_HOST = "127.0.0.2"
EVIL_NAME = "evil.localhost"
SHORT_WAIT_S = 30  # generous: every answer below comes from this machine within milliseconds


def deterministic(n: int) -> bytes:
    """``n`` bytes that do not compress, the same on every run."""
    out = bytearray()
    i = 0
    while len(out) < n:
        out += hashlib.sha256(i.to_bytes(8, "big")).digest()
        i += 1
    return bytes(out[:n])


LAYER = layer_tar({"/big.bin": deterministic(256 << 10)})
BLOB = gzip.compress(LAYER, mtime=0)
DIGEST = sha(BLOB)
SHORT = DIGEST[7:19]


def blob_path(repo: str) -> str:
    return f"/v2/{repo}/blobs/{DIGEST}"


def serve_blob(handler: ScriptedHandler | FakeHandler) -> None:
    handler.send(200, BLOB, {"Content-Type": "application/octet-stream"})


def redirect_to(url: str) -> Callable[[FakeHandler], None]:
    def answer(handler: FakeHandler) -> None:
        handler.send(307, headers={"Location": url})

    return answer


def stderr_lines(proc: subprocess.CompletedProcess[str]) -> list[str]:
    """What the command said on stderr, without the rootless set-up advice some machines add."""
    return [line for line in proc.stderr.splitlines() if not line.startswith("strata: warning:")]


def assert_store_clean(root: Path) -> None:
    check = run_strata("system", "check", root=root)
    assert (check.returncode, check.stdout) == (0, "The store is consistent: no problems found.\n"), check.stdout


@contextmanager
def fake_registry_on(host: str) -> Iterator[FakeRegistry]:
    """The conftest's scripted registry, bound to ``host`` instead of 127.0.0.1."""
    fake = FakeRegistry()
    server = http.server.ThreadingHTTPServer((host, 0), type("Handler", (FakeHandler,), {"fake": fake}))
    server.daemon_threads = True
    fake.port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()


def resolve_name_to(monkeypatch: pytest.MonkeyPatch, name: str, address: str) -> None:
    """Make ``name`` resolve to ``address`` in this process, as a hostile DNS answer would."""
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        return real(address if host == name else host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


# --- credentials go only to the registry ----------------------------------------------------


def upload_service(handler: ScriptedHandler) -> None:
    """Another host that accepts whatever upload it is handed (what a hostile Location names)."""
    handler.body()
    if handler.command == "PATCH":
        handler.send(202, headers={"Location": handler.path, "Range": "0-0"})
    elif handler.command == "PUT":
        digest = handler.path.partition("digest=")[2].replace("%3A", ":")
        handler.send(201, headers={"Docker-Content-Digest": digest})
    else:
        handler.send(204)


@pytest.mark.parametrize("scheme", ["basic", "bearer"])
def test_a_push_sends_credentials_only_to_the_registry(app: Strata, fake_registry: FakeRegistry, scheme: str) -> None:
    """Uploads (POST, PATCH, PUT) and the DELETE of an unwanted one, each to a Location on
    another host: that host never sees the registry's password or token."""
    fake_registry.auth = scheme
    fake_registry.users = {"bob": "builder"}
    assert login(fake_registry.address, "bob", "builder") == "Login Succeeded"
    name = f"{fake_registry.address}/hostile/app:1"
    image = add_layer(app.store, None, name, {"/app/a.txt": b"a\n"})
    # A blob this store saw in another repository of the registry: the push first asks to mount it.
    app.store.layers.record_blob(
        image.top_layer,
        sha(b"elsewhere"),
        "application/vnd.oci.image.layer.v1.tar+gzip",
        9,
        f"{fake_registry.address}/hostile/base",
    )
    with serving(upload_service, ANOTHER_LOOPBACK_HOST) as elsewhere:

        def open_upload(handler: FakeHandler) -> None:
            if handler._authorized():
                upload = "mounting" if "mount=" in handler.path else "1"
                handler.send(202, headers={"Location": f"{elsewhere.url}/upload/{upload}"})

        def store_manifest(handler: FakeHandler) -> None:
            if handler._authorized():
                handler.send(201)

        fake_registry.routes["/v2/hostile/app/blobs/uploads/"] = open_upload
        fake_registry.routes["/v2/hostile/app/manifests/1"] = store_manifest
        proc = run_strata("push", name, root=app.root)
    assert proc.returncode == 0, proc.stderr
    assert [(s.method, s.path.split("?")[0]) for s in elsewhere.seen] == [
        ("DELETE", "/upload/mounting"),
        ("PATCH", "/upload/1"),
        ("PUT", "/upload/1"),
        ("PUT", "/upload/1"),
    ]
    assert [s.headers.get("Authorization") for s in elsewhere.seen] == [None] * 4
    sent = {m: h.get("Authorization") for m, p, h in fake_registry.log if p == "/v2/hostile/app/manifests/1"}
    assert sent == {"PUT": "Basic Ym9iOmJ1aWxkZXI=" if scheme == "basic" else "Bearer user-token"}


def test_a_blob_redirected_to_another_loopback_host_arrives_without_credentials(
    app: Strata, other: Strata, fake_registry: FakeRegistry
) -> None:
    """What works keeps working: a loopback registry may send a pull to another loopback
    host over plain HTTP; only the credentials stay behind."""
    fake_registry.auth = "basic"
    fake_registry.users = {"bob": "builder"}
    login(fake_registry.address, "bob", "builder")
    fake_registry.add_image("hostile/img", "1", [LAYER])
    with serving(serve_blob, ANOTHER_LOOPBACK_HOST) as cdn:
        fake_registry.routes[blob_path("hostile/img")] = redirect_to(f"{cdn.url}/blob")
        proc = run_strata("pull", f"{fake_registry.address}/hostile/img:1", root=other.root)
    assert proc.returncode == 0, proc.stderr
    assert [(s.method, s.path, s.headers.get("Authorization")) for s in cdn.seen] == [("GET", "/blob", None)]


# --- loopback is the address connected to, not the name -------------------------------------


def test_a_redirect_to_plain_http_off_this_machine_is_one_error(app: Strata, fake_registry: FakeRegistry) -> None:
    outside = non_loopback_address()
    fake_registry.add_image("hostile/img", "1", [LAYER])
    with serving(serve_blob, outside) as cdn:
        fake_registry.routes[blob_path("hostile/img")] = redirect_to(f"{cdn.url}/blob")
        proc = run_strata("pull", f"{fake_registry.address}/hostile/img:1", root=app.root)
    assert proc.returncode == 1
    assert stderr_lines(proc) == [
        f"Error: {fake_registry.address} redirected to http://{cdn.address}/blob: plain HTTP is only used for "
        f"localhost ({cdn.address} is not localhost or a loopback address) and registries listed as insecure "
        "(STRATA_INSECURE_REGISTRIES or registries.json); not following it"
    ]
    assert cdn.seen == []
    assert_store_clean(app.root)


def test_a_localhost_name_resolving_elsewhere_is_not_followed_over_plain_http(
    app: Strata, fake_registry: FakeRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``*.localhost`` names the machine only when it resolves to it."""
    outside = non_loopback_address()
    resolve_name_to(monkeypatch, EVIL_NAME, outside)
    fake_registry.add_image("hostile/img", "1", [LAYER])
    with serving(serve_blob, outside) as cdn:
        target = f"http://{EVIL_NAME}:{cdn.port}/blob"
        fake_registry.routes[blob_path("hostile/img")] = redirect_to(target)
        with pytest.raises(RegistryError) as err:
            pull(app.store, f"{fake_registry.address}/hostile/img:1")
    assert str(err.value) == (
        f"{fake_registry.address} redirected to {target}: plain HTTP is only used for localhost "
        f"({EVIL_NAME}:{cdn.port} resolved to {outside}, which is not a loopback address) and registries "
        "listed as insecure (STRATA_INSECURE_REGISTRIES or registries.json); not following it"
    )
    assert [s.method for s in cdn.seen] == []
    assert app.store.images.all() == [] and leftovers(app.store) == []


def test_a_localhost_registry_resolving_elsewhere_gets_no_plain_http(
    app: Strata, monkeypatch: pytest.MonkeyPatch
) -> None:
    outside = non_loopback_address()
    resolve_name_to(monkeypatch, EVIL_NAME, outside)
    with fake_registry_on(outside) as fake:
        fake.add_image("hostile/img", "1", [LAYER])
        with pytest.raises(RegistryError) as err:
            pull(app.store, f"{EVIL_NAME}:{fake.port}/hostile/img:1")
    assert str(err.value) == (
        f"cannot talk to registry {EVIL_NAME}:{fake.port}: plain HTTP is only used for localhost "
        f"({EVIL_NAME}:{fake.port} resolved to {outside}, which is not a loopback address) and registries "
        "listed as insecure (STRATA_INSECURE_REGISTRIES or registries.json)"
    )
    assert fake.log == []  # refused after the TCP connect, before a byte of a request
    assert app.store.images.all() == []


def test_a_localhost_name_resolving_elsewhere_gets_its_certificate_checked(
    app: Strata, fake_registry: FakeRegistry, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Loopback may use any certificate (as with Docker); a host that only calls itself
    ``something.localhost`` may not."""
    openssl = require_tool("openssl")
    outside = non_loopback_address()
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            f"/CN={EVIL_NAME}",
        ],
        check=True,
        capture_output=True,
    )
    resolve_name_to(monkeypatch, EVIL_NAME, outside)
    fake_registry.add_image("hostile/img", "1", [LAYER])
    with serving(serve_blob, outside) as cdn:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        tls = http.server.ThreadingHTTPServer((outside, 0), type("H", (ScriptedHandler,), {"server_side": cdn}))
        tls.socket = context.wrap_socket(tls.socket, server_side=True)
        threading.Thread(target=tls.serve_forever, daemon=True).start()
        try:
            fake_registry.routes[blob_path("hostile/img")] = redirect_to(
                f"https://{EVIL_NAME}:{tls.server_address[1]}/blob"
            )
            with pytest.raises(RegistryError) as err:
                pull(app.store, f"{fake_registry.address}/hostile/img:1")
        finally:
            tls.shutdown()
            tls.server_close()
    assert str(err.value).startswith(
        f"cannot talk to registry {EVIL_NAME}:{tls.server_address[1]}: TLS certificate not trusted ("
    )
    assert cdn.seen == []
    assert app.store.images.all() == []


def test_a_remote_registry_may_not_redirect_into_this_machine(app: Strata) -> None:
    """A registry out there cannot make Strata fetch from this machine's own services."""
    outside = non_loopback_address()
    with fake_registry_on(outside) as fake, serving(serve_blob, "127.0.0.1") as local:
        fake.add_image("hostile/img", "1", [LAYER])
        fake.routes[blob_path("hostile/img")] = redirect_to(f"{local.url}/blob")
        env = {**os.environ, "STRATA_INSECURE_REGISTRIES": f"{outside}:{fake.port}"}
        proc = run_strata("pull", f"{outside}:{fake.port}/hostile/img:1", root=app.root, env=env)
    assert proc.returncode == 1
    assert stderr_lines(proc) == [
        f"Error: {outside}:{fake.port} redirected to {local.url}/blob, an address on this machine "
        f"(127.0.0.1) that a host elsewhere may not send Strata to; not following it"
    ]
    assert local.seen == []
    assert_store_clean(app.root)


# --- a slow registry -----------------------------------------------------------------------


def stall_halfway(reached: threading.Event, release: threading.Event) -> Callable[[FakeHandler], None]:
    """Send the headers and half the blob, then nothing until ``release``."""

    def answer(handler: FakeHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(BLOB)))
        handler.send_header("Content-Type", "application/octet-stream")
        handler.end_headers()
        handler.wfile.write(BLOB[: len(BLOB) // 2])
        handler.wfile.flush()
        reached.set()
        release.wait(SHORT_WAIT_S * 4)

    return answer


def test_a_blob_that_stops_arriving_is_one_error_naming_it(app: Strata, fake_registry: FakeRegistry) -> None:
    fake_registry.add_image("slow/img", "1", [LAYER])
    reached, release = threading.Event(), threading.Event()
    fake_registry.routes[blob_path("slow/img")] = stall_halfway(reached, release)
    env = {**os.environ, "STRATA_REGISTRY_TIMEOUT": "1"}
    try:
        proc = run_strata("pull", f"{fake_registry.address}/slow/img:1", root=app.root, env=env, timeout=SHORT_WAIT_S)
    finally:
        release.set()
    assert reached.is_set()
    assert proc.returncode == 1
    assert stderr_lines(proc) == [
        f"Error: layer {SHORT} from {fake_registry.address}: no data for 1 second; pull again to resume "
        "(STRATA_REGISTRY_TIMEOUT sets how many seconds to wait)"
    ]
    assert_store_clean(app.root)
    del fake_registry.routes[blob_path("slow/img")]
    again = run_strata("pull", f"{fake_registry.address}/slow/img:1", root=app.root, env=env)
    assert again.returncode == 0, again.stderr


def test_a_bad_timeout_setting_is_one_error(app: Strata) -> None:
    env = {**os.environ, "STRATA_REGISTRY_TIMEOUT": "soon"}
    proc = run_strata("pull", "127.0.0.1:1/x:1", root=app.root, env=env)
    assert proc.returncode == 1
    assert stderr_lines(proc) == [
        "Error: STRATA_REGISTRY_TIMEOUT='soon': give the seconds to wait for a registry, a number above 0"
    ]


def test_the_first_ctrl_c_stops_a_stalled_pull(app: Strata, fake_registry: FakeRegistry) -> None:
    """A long wait is configured, so only the interrupt can end the pull in time."""
    fake_registry.add_image("slow/img", "1", [LAYER])
    reached, release = threading.Event(), threading.Event()
    fake_registry.routes[blob_path("slow/img")] = stall_halfway(reached, release)
    env = {
        **os.environ,
        "STRATA_REGISTRY_TIMEOUT": "600",
        "PYTHONPATH": os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p),
    }
    # SIGINT raises KeyboardInterrupt even where the test runner was started with it ignored.
    start = (
        "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
        "from explorer.__main__ import main; sys.exit(main())"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", start, "--root", str(app.root), "pull", f"{fake_registry.address}/slow/img:1"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert reached.wait(SHORT_WAIT_S), "the pull never asked for the layer"
        proc.send_signal(signal.SIGINT)
        try:
            out, err = proc.communicate(timeout=SHORT_WAIT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            pytest.fail(f"strata pull was still running {SHORT_WAIT_S} s after Ctrl-C")
    finally:
        release.set()
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    done = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    assert proc.returncode == 130
    assert stderr_lines(done) == ["Error: interrupted"]
    assert_store_clean(app.root)


def test_a_cancel_stops_a_stalled_pull(app: Strata, fake_registry: FakeRegistry) -> None:
    """The GUI's cancel button, like Ctrl-C, does not wait for the registry to send more."""
    fake_registry.add_image("slow/img", "1", [LAYER])
    reached, release = threading.Event(), threading.Event()
    fake_registry.routes[blob_path("slow/img")] = stall_halfway(reached, release)
    cancel = threading.Event()
    outcome: list[BaseException | None] = []

    def pulling() -> None:
        try:
            pull(app.store, f"{fake_registry.address}/slow/img:1", cancel=cancel)
            outcome.append(None)
        except BaseException as e:
            outcome.append(e)

    worker = threading.Thread(target=pulling, daemon=True)
    worker.start()
    try:
        assert reached.wait(SHORT_WAIT_S), "the pull never asked for the layer"
        cancel.set()
        worker.join(SHORT_WAIT_S)
    finally:
        release.set()
    assert not worker.is_alive(), f"the pull was still running {SHORT_WAIT_S} s after the cancel"
    assert len(outcome) == 1 and isinstance(outcome[0], Cancelled) and str(outcome[0]) == "pull cancelled"
    assert app.store.images.all() == [] and app.store.layers.all() == [] and leftovers(app.store) == []
