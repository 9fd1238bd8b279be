"""Where registry settings live and which registries may be spoken to over plain HTTP.

Plain HTTP is allowed for loopback (``localhost``, ``127.0.0.0/8``, ``::1``), as Docker
allows it, and for registries the user lists as insecure:

* ``$XDG_CONFIG_HOME/strata/registries.json``: ``{"insecure-registries": ["host:port", "10.0.0.0/8"]}``
  (the key Docker's daemon.json uses), and
* ``STRATA_INSECURE_REGISTRIES``: the same entries, comma separated.

An entry is a host, a host:port, or a CIDR range. For these registries (loopback ones
included, as in Docker) HTTPS is still tried first, without verifying the certificate;
HTTP is the fallback. Every other registry gets HTTPS with a verified certificate only.

A name is only a first guess: ``registry.localhost`` or even ``localhost`` may resolve to
another machine. Whether a connection really is loopback is decided by the address it
reached (``peers.py``), before anything is sent over it.

``STRATA_REGISTRY_TIMEOUT`` is how many seconds a registry may send nothing (while
connecting, before answering, in the middle of a blob) before the operation gives up; the
default suits a slow network, a test sets it small.
"""

from __future__ import annotations

import ipaddress
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InvalidArgument

INSECURE_ENV = "STRATA_INSECURE_REGISTRIES"
TIMEOUT_ENV = "STRATA_REGISTRY_TIMEOUT"
DEFAULT_TIMEOUT_S = 60.0
REGISTRIES_FILE = "registries.json"
AUTH_FILE = "auth.json"

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
# Names a credential file may use for Docker Hub; all mean docker.io.
DOCKER_HUB_ALIASES = ("docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com")


def config_dir(environ: Mapping[str, str] = os.environ) -> Path:
    base = environ.get("XDG_CONFIG_HOME") or os.path.join(environ.get("HOME") or os.path.expanduser("~"), ".config")
    return Path(base) / "strata"


def docker_config_file(environ: Mapping[str, str] = os.environ) -> Path:
    """Docker's client config: ``$DOCKER_CONFIG/config.json`` or ``~/.docker/config.json``."""
    base = environ.get("DOCKER_CONFIG") or os.path.join(environ.get("HOME") or os.path.expanduser("~"), ".docker")
    return Path(base) / "config.json"


def split_host_port(host: str) -> tuple[str, int | None]:
    """``[::1]:5000`` → (``::1``, 5000); ``example.com`` → (``example.com``, None)."""
    if host.startswith("["):
        end = host.find("]")
        name, rest = host[1:end], host[end + 1 :]
        return name, int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else None
    name, sep, port = host.rpartition(":")
    if sep and port.isdigit() and ":" not in name:
        return name, int(port)
    return host, None


def api_host(domain: str) -> str:
    """The host serving ``/v2/`` for a reference's domain (Docker Hub's differs from its name)."""
    return DOCKER_HUB_API if domain == DOCKER_HUB else domain


def normalize_server(server: str | None) -> str:
    """A registry name as the user typed it (URL, host, Docker Hub alias) → the reference domain."""
    text = (server or DOCKER_HUB).strip()
    for scheme in ("https://", "http://"):
        if text.startswith(scheme):
            text = text[len(scheme) :]
    text = text.split("/", 1)[0].lower()
    if not text:
        raise InvalidArgument(f"invalid registry address {server!r}")
    return DOCKER_HUB if text in DOCKER_HUB_ALIASES else text


def is_loopback(host: str) -> bool:
    """The name says loopback: worth trying plain HTTP with, to be confirmed by the address
    the connection reaches."""
    name, _ = split_host_port(host)
    if name.lower() == "localhost" or name.lower().endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _timeout(text: str | None) -> float:
    if text is None or not text.strip():
        return DEFAULT_TIMEOUT_S
    try:
        seconds = float(text)
    except ValueError:
        seconds = 0.0
    if not 0 < seconds < float("inf"):
        raise InvalidArgument(f"{TIMEOUT_ENV}={text!r}: give the seconds to wait for a registry, a number above 0")
    return seconds


@dataclass(frozen=True)
class RegistrySettings:
    """What the user configured about registries. Built once per operation by ``load``."""

    config_dir: Path
    docker_config: Path
    insecure: tuple[str, ...] = field(default=())
    timeout: float = DEFAULT_TIMEOUT_S  # seconds a registry may stay silent

    @classmethod
    def load(cls, environ: Mapping[str, str] = os.environ) -> RegistrySettings:
        directory = config_dir(environ)
        entries: list[str] = []
        path = directory / REGISTRIES_FILE
        if path.exists():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as e:
                raise InvalidArgument(f"{path}: cannot read registry settings ({e}); fix or remove the file") from None
            listed = data.get("insecure-registries", []) if isinstance(data, dict) else None
            if not isinstance(listed, list) or not all(isinstance(x, str) for x in listed):
                raise InvalidArgument(f'{path}: "insecure-registries" must be a list of host[:port] strings')
            entries += listed
        entries += [e for e in environ.get(INSECURE_ENV, "").split(",") if e.strip()]
        return cls(
            directory,
            docker_config_file(environ),
            tuple(e.strip().lower() for e in entries),
            _timeout(environ.get(TIMEOUT_ENV)),
        )

    @property
    def auth_file(self) -> Path:
        return self.config_dir / AUTH_FILE

    def is_insecure(self, host: str) -> bool:
        """Listed by the user: plain HTTP allowed and certificates not verified."""
        host = host.lower()
        name, _ = split_host_port(host)
        for entry in self.insecure:
            if "/" in entry and "://" not in entry:
                try:
                    if ipaddress.ip_address(name) in ipaddress.ip_network(entry, strict=False):
                        return True
                except ValueError:
                    pass
                continue
            if normalize_server(entry) in (host, name):
                return True
        return False

    def plain_http_allowed(self, host: str) -> bool:
        return is_loopback(host) or self.is_insecure(host)
