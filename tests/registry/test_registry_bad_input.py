"""What registries should never send, and authentication, against a scripted server:
each failure is one clear line and leaves nothing half-done in the store."""

from __future__ import annotations

import gzip
import http.server
import json
import os
import ssl
import stat
import subprocess
import threading
from pathlib import Path

import pytest

from explorer.api import Strata
from explorer.errors import (
    DigestMismatch,
    RegistryAuthError,
    RegistryProtocolError,
    StrataError,
    TransferInterrupted,
)
from explorer.registry.login import login
from explorer.registry.pull import pull
from explorer.registry.settings import RegistrySettings
from tests.capabilities import require_tool
from tests.fixtures import run_strata
from tests.registry.conftest import FakeHandler, FakeRegistry, layer_tar, leftovers, sha

ONE = layer_tar({"/one.txt": b"one\n" * 1000})
TWO = layer_tar({"/two.txt": b"two\n" * 1000})


def assert_untouched(app: Strata) -> None:
    assert app.store.layers.all() == []
    assert app.store.images.all() == []
    assert leftovers(app.store) == []


def one_line(err: BaseException) -> str:
    text = str(err)
    assert "\n" not in text and text
    return text


def test_a_registry_that_answers_html(app: Strata, fake_registry: FakeRegistry) -> None:
    page = b"<!DOCTYPE html><html><body>Welcome</body></html>"
    fake_registry.routes["/v2/"] = lambda h: h.send(200, page, {"Content-Type": "text/html"})
    with pytest.raises(RegistryProtocolError) as err:
        pull(app.store, f"{fake_registry.address}/some/image")
    assert "HTML page" in one_line(err.value)

    fake_registry.routes.clear()
    fake_registry.routes["/v2/some/image/manifests/latest"] = lambda h: h.send(200, page, {"Content-Type": "text/html"})
    with pytest.raises(RegistryProtocolError, match="HTML page instead of a manifest"):
        pull(app.store, f"{fake_registry.address}/some/image")
    assert_untouched(app)


def test_a_redirect_loop(app: Strata, fake_registry: FakeRegistry) -> None:
    fake_registry.add_image("r/loop", "1", [ONE])
    blob = sha(gzip.compress(ONE, mtime=0))
    fake_registry.routes[f"/v2/r/loop/blobs/{blob}"] = lambda h: h.send(302, b"", {"Location": "/elsewhere"})
    fake_registry.routes["/elsewhere"] = lambda h: h.send(307, b"", {"Location": f"/v2/r/loop/blobs/{blob}"})
    with pytest.raises(RegistryProtocolError) as err:
        pull(app.store, f"{fake_registry.address}/r/loop:1")
    assert "redirects in a loop" in one_line(err.value)
    assert_untouched(app)


def test_a_truncated_blob(app: Strata, fake_registry: FakeRegistry) -> None:
    fake_registry.add_image("r/cut", "1", [ONE])
    blob = gzip.compress(ONE, mtime=0)

    def half(h: FakeHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Length", str(len(blob)))
        h.end_headers()
        h.wfile.write(blob[: len(blob) // 2])
        h.wfile.flush()
        h.close_connection = True

    fake_registry.routes[f"/v2/r/cut/blobs/{sha(blob)}"] = half
    with pytest.raises(TransferInterrupted) as err:
        pull(app.store, f"{fake_registry.address}/r/cut:1")
    assert "cut short" in one_line(err.value) and "pull again" in str(err.value)
    assert_untouched(app)


def test_a_layer_that_does_not_match_its_digest_removes_what_the_pull_made(
    app: Strata, fake_registry: FakeRegistry
) -> None:
    good, bad = gzip.compress(ONE, mtime=0), gzip.compress(TWO, mtime=0)
    claimed = sha(bad[:-1] + bytes([bad[-1] ^ 1]))
    fake_registry.add_image("r/bad", "1", [ONE, TWO], layer_digests=[sha(good), claimed])
    fake_registry.blobs[claimed] = bad  # served under a digest it does not have
    with pytest.raises(DigestMismatch) as err:
        pull(app.store, f"{fake_registry.address}/r/bad:1", concurrency=1)
    assert f"expected {claimed}" in one_line(err.value)
    assert_untouched(app)  # the good first layer is gone again too


def test_a_layer_whose_content_differs_from_the_config(app: Strata, fake_registry: FakeRegistry) -> None:
    fake_registry.add_image("r/lie", "1", [ONE], diff_ids=[sha(TWO)])
    with pytest.raises(DigestMismatch, match="uncompressed"):
        pull(app.store, f"{fake_registry.address}/r/lie:1")
    assert_untouched(app)


def test_a_manifest_that_is_not_what_its_digest_names(app: Strata, fake_registry: FakeRegistry) -> None:
    real = fake_registry.add_image("r/swap", "1", [ONE])
    other = fake_registry.add_image("r/swap", "2", [TWO])
    fake_registry.manifests[f"r/swap:{real}"] = fake_registry.manifests[f"r/swap:{other}"]
    with pytest.raises(DigestMismatch, match="manifest"):
        pull(app.store, f"{fake_registry.address}/r/swap@{real}")
    assert_untouched(app)


def test_garbage_instead_of_a_manifest(app: Strata, fake_registry: FakeRegistry) -> None:
    fake_registry.manifests["r/junk:1"] = ("application/vnd.oci.image.manifest.v1+json", b"\x00\x01 not json")
    with pytest.raises(RegistryProtocolError, match="not a JSON manifest"):
        pull(app.store, f"{fake_registry.address}/r/junk:1")
    fake_registry.manifests["r/junk:1"] = (
        "application/vnd.docker.distribution.manifest.v1+prettyjws",
        json.dumps({"schemaVersion": 1}).encode(),
    )
    with pytest.raises(RegistryProtocolError, match="schema 1"):
        pull(app.store, f"{fake_registry.address}/r/junk:1")
    assert_untouched(app)


def test_anonymous_bearer_tokens_and_a_redirect_without_credentials(app: Strata, fake_registry: FakeRegistry) -> None:
    fake_registry.auth = "bearer"
    fake_registry.add_image("library/public", "1", [ONE])
    blob = sha(gzip.compress(ONE, mtime=0))
    fake_registry.routes[f"/v2/library/public/blobs/{blob}"] = lambda h: h.send(
        307, b"", {"Location": f"http://localhost:{fake_registry.port}/cdn/{blob}"}
    )

    def cdn(h: FakeHandler) -> None:
        assert "Authorization" not in h.headers, "credentials followed a redirect to another host"
        h.send(200, fake_registry.blobs[blob])

    fake_registry.routes[f"/cdn/{blob}"] = cdn
    result = pull(app.store, f"{fake_registry.address}/library/public:1")
    assert result.downloaded == 1
    token_requests = [p for m, p, _ in fake_registry.log if p.startswith("/token")]
    assert len(token_requests) == 1 and "scope=repository%3Alibrary%2Fpublic%3Apull" in token_requests[0]
    authorized = [h for m, p, h in fake_registry.log if p.startswith("/v2/library/")]
    assert authorized and all(h.get("Authorization") == "Bearer anon-token" for h in authorized)


def test_login_logout_and_private_images(app: Strata, fake_registry: FakeRegistry, tmp_path: Path) -> None:
    fake_registry.auth = "bearer"
    fake_registry.private = True
    fake_registry.users = {"alice": "wonderland"}
    fake_registry.add_image("team/private", "1", [ONE])
    name = f"{fake_registry.address}/team/private:1"
    with pytest.raises(RegistryAuthError, match="strata login"):
        pull(app.store, name)

    wrong = run_strata("login", "-u", "alice", "--password-stdin", fake_registry.address, input="nope\n", root=app.root)
    assert wrong.returncode == 1 and "incorrect username or password" in wrong.stderr
    assert not RegistrySettings.load().auth_file.exists()

    ok = run_strata(
        "login",
        "-u",
        "alice",
        "--password-stdin",
        fake_registry.address,
        input="wonderland\n",
        root=app.root,
        check=True,
    )
    assert ok.stdout.strip() == "Login Succeeded"
    auth_file = RegistrySettings.load().auth_file
    assert stat.S_IMODE(os.stat(auth_file).st_mode) == 0o600
    assert fake_registry.address in json.loads(auth_file.read_text())["auths"]

    assert pull(app.store, name).downloaded == 1

    out = run_strata("logout", fake_registry.address, root=app.root, check=True)
    assert out.stdout.strip() == f"Removing login credentials for {fake_registry.address}"
    assert fake_registry.address not in json.loads(auth_file.read_text())["auths"]
    assert run_strata("logout", fake_registry.address, root=app.root, check=True).stdout.startswith("Not logged in")


def test_basic_auth(app: Strata, fake_registry: FakeRegistry) -> None:
    fake_registry.auth = "basic"
    fake_registry.users = {"bob": "builder"}
    fake_registry.add_image("b/img", "1", [ONE])
    with pytest.raises(RegistryAuthError, match="requires a login"):
        pull(app.store, f"{fake_registry.address}/b/img:1")
    with pytest.raises(StrataError, match="incorrect username or password"):
        login(fake_registry.address, "bob", "wrong")
    assert login(fake_registry.address, "bob", "builder") == "Login Succeeded"
    assert pull(app.store, f"{fake_registry.address}/b/img:1").downloaded == 1


def test_a_loopback_registry_may_use_a_self_signed_certificate(app: Strata, tmp_path: Path) -> None:
    openssl = require_tool("openssl")
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
            "/CN=localhost",
        ],
        check=True,
        capture_output=True,
    )
    fake = FakeRegistry()
    fake.add_image("tls/img", "1", [ONE])
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), type("H", (FakeHandler,), {"fake": fake}))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    fake.port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        assert pull(app.store, f"{fake.address}/tls/img:1").downloaded == 1
    finally:
        server.shutdown()
        server.server_close()
    assert fake.log and fake.log[0][1] == "/v2/"  # spoken to over TLS: plain HTTP was never needed
