"""Registry settings, credentials files and challenge parsing: no network."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest

from explorer.errors import InvalidArgument, RegistryUnreachable
from explorer.registry.auth import parse_challenges
from explorer.registry.credentials import CredentialStore
from explorer.registry.settings import RegistrySettings, api_host, is_loopback, normalize_server
from explorer.registry.transport import Transport


def env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {"XDG_CONFIG_HOME": str(tmp_path / "config"), "HOME": str(tmp_path / "home"), **extra}


def test_plain_http_only_for_loopback_and_listed_registries(tmp_path: Path) -> None:
    settings = RegistrySettings.load(env(tmp_path))
    for host in ("localhost:5000", "127.0.0.1:5000", "127.8.9.10", "[::1]:5000", "localhost"):
        assert settings.plain_http_allowed(host), host
    for host in ("example.com:5000", "10.0.0.5:5000", "registry.local", "128.0.0.1:80"):
        assert not settings.plain_http_allowed(host), host

    (tmp_path / "config" / "strata").mkdir(parents=True)
    (tmp_path / "config" / "strata" / "registries.json").write_text(
        json.dumps({"insecure-registries": ["registry.local:5000", "10.1.0.0/16"]})
    )
    listed = RegistrySettings.load(env(tmp_path, STRATA_INSECURE_REGISTRIES="example.com:5000, other.test"))
    assert listed.plain_http_allowed("registry.local:5000")
    assert not listed.plain_http_allowed("registry.local:5001")
    assert listed.plain_http_allowed("10.1.2.3:443")
    assert not listed.plain_http_allowed("10.2.0.1")
    assert listed.plain_http_allowed("example.com:5000")
    assert listed.plain_http_allowed("other.test:8080")


def test_a_broken_registries_file_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "config" / "strata").mkdir(parents=True)
    path = tmp_path / "config" / "strata" / "registries.json"
    path.write_text("{not json")
    with pytest.raises(InvalidArgument, match=r"registries\.json"):
        RegistrySettings.load(env(tmp_path))
    path.write_text('{"insecure-registries": "one"}')
    with pytest.raises(InvalidArgument, match="must be a list"):
        RegistrySettings.load(env(tmp_path))


def test_plain_http_to_a_remote_registry_is_refused_before_connecting(tmp_path: Path) -> None:
    transport = Transport(RegistrySettings.load(env(tmp_path)))
    with pytest.raises(RegistryUnreachable, match="plain HTTP is only used for localhost"):
        transport.request("GET", "http://registry.example.invalid:5000/v2/")


def test_docker_hub_names() -> None:
    assert normalize_server(None) == "docker.io"
    assert normalize_server("https://index.docker.io/v1/") == "docker.io"
    assert normalize_server("registry-1.docker.io") == "docker.io"
    assert normalize_server("http://LocalHost:5000/") == "localhost:5000"
    assert api_host("docker.io") == "registry-1.docker.io"
    assert api_host("ghcr.io") == "ghcr.io"
    assert is_loopback("localhost:1") and not is_loopback("localhostx:1")


def test_credentials_are_saved_0600_and_docker_config_is_only_read(tmp_path: Path) -> None:
    docker_dir = tmp_path / "home" / ".docker"
    docker_dir.mkdir(parents=True)
    docker_config = docker_dir / "config.json"
    docker_config.write_text(
        json.dumps(
            {
                "auths": {
                    "https://index.docker.io/v1/": {"auth": base64.b64encode(b"hubuser:hubpass").decode()},
                    "quay.io": {"auth": base64.b64encode(b"q:w").decode()},
                }
            }
        )
    )
    before = docker_config.read_bytes()
    store = CredentialStore(RegistrySettings.load(env(tmp_path)))

    hub = store.get("docker.io")
    assert hub is not None and (hub.username, hub.password) == ("hubuser", "hubpass")
    assert store.get("localhost:5000") is None

    path = store.save("localhost:5000", "me", "s3cret:with:colons")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    saved = store.get("localhost:5000")
    assert saved is not None and (saved.username, saved.password) == ("me", "s3cret:with:colons")
    assert json.loads(path.read_text())["auths"]["localhost:5000"]["auth"]

    store.save("docker.io", "mine", "pw")  # ours wins over Docker's
    hub = store.get("index.docker.io")
    assert hub is not None and hub.username == "mine"
    assert store.remove("docker.io") and not store.remove("docker.io")
    hub = store.get("docker.io")
    assert hub is not None and hub.username == "hubuser"  # Docker's again, never removed
    assert docker_config.read_bytes() == before


def test_a_credential_helper_named_in_docker_config_is_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    helper = bin_dir / "docker-credential-fake"
    helper.write_text(
        '#!/bin/sh\nread server\n[ "$server" = "example.test" ] || exit 1\n'
        'echo \'{"ServerURL":"example.test","Username":"helped","Secret":"tok"}\'\n'
    )
    helper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    docker_dir = tmp_path / "home" / ".docker"
    docker_dir.mkdir(parents=True)
    (docker_dir / "config.json").write_text(json.dumps({"credHelpers": {"example.test": "fake"}}))
    store = CredentialStore(RegistrySettings.load(env(tmp_path)))
    creds = store.get("example.test")
    assert creds is not None and (creds.username, creds.password) == ("helped", "tok")
    assert store.get("other.test") is None


def test_challenges_parse_like_docker_hub_sends_them() -> None:
    [c] = parse_challenges(
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
        'scope="repository:library/alpine:pull,push"'
    )
    assert c.scheme == "bearer"
    assert c.params == {
        "realm": "https://auth.docker.io/token",
        "service": "registry.docker.io",
        "scope": "repository:library/alpine:pull,push",
    }
    basic, bearer = parse_challenges('Basic realm="Registry Realm", Bearer realm=x,error="invalid_token"')
    assert basic.scheme == "basic" and basic.params == {"realm": "Registry Realm"}
    assert bearer.params == {"realm": "x", "error": "invalid_token"}
    assert parse_challenges("") == []
