"""Registry credentials: Strata's own file, read and written; Docker's, only read.

``$XDG_CONFIG_HOME/strata/auth.json`` has the shape Docker's and Podman's files share
(``{"auths": {"host": {"auth": base64("user:password")}}}``) so a user can copy entries
between them; it is written atomically with mode 0600 in a 0700 directory, because it
holds passwords. ``~/.docker/config.json`` (or ``$DOCKER_CONFIG``) is consulted after
ours, including its credential helpers, and never written: ``docker login`` owns it.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InvalidArgument, RegistryError
from ..fsutil import atomic_write
from .settings import DOCKER_HUB, RegistrySettings, normalize_server

# Docker keeps Docker Hub's entry under this legacy URL.
DOCKER_HUB_KEY = "https://index.docker.io/v1/"
HELPER_TIMEOUT_S = 30.0
IDENTITY_TOKEN_USER = "<token>"


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str
    identity_token: str = ""  # an OAuth refresh token from `docker login` to Docker Hub
    origin: str = ""  # which file or helper they came from, for messages

    def basic(self) -> str:
        return base64.b64encode(f"{self.username}:{self.password}".encode()).decode()


def _read_json(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as e:
        raise RegistryError(f"cannot read credentials file {path}: {e.strerror}") from None
    if not text.strip():
        return {}
    try:
        data = json.loads(text)
    except ValueError as e:
        raise RegistryError(f"credentials file {path} is not valid JSON ({e}); fix or remove it") from None
    if not isinstance(data, dict):
        raise RegistryError(f"credentials file {path} is not a JSON object; fix or remove it")
    return data


def _entry_for(auths: dict[str, Any], server: str) -> tuple[str, dict[str, Any]] | None:
    """The entry of ``auths`` whose key, normalised, names ``server``."""
    for key, value in auths.items():
        if isinstance(value, dict):
            try:
                if normalize_server(key) == server:
                    return key, value
            except InvalidArgument:
                continue
    return None


def _decode(entry: dict[str, Any], origin: str) -> Credentials | None:
    token = str(entry.get("identitytoken") or "")
    if entry.get("auth"):
        try:
            raw = base64.b64decode(str(entry["auth"]), validate=False).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise RegistryError(f"{origin}: the stored credentials are not valid base64") from None
        user, sep, password = raw.partition(":")
        if not sep:
            raise RegistryError(f"{origin}: the stored credentials lack a ':' between user and password")
        return Credentials(user, password, token, origin)
    if entry.get("username") or token:
        return Credentials(str(entry.get("username") or ""), str(entry.get("password") or ""), token, origin)
    return None


class CredentialStore:
    """Look up, save and forget the credentials for one registry name (``docker.io``,
    ``localhost:5000``)."""

    def __init__(self, settings: RegistrySettings) -> None:
        self.settings = settings

    @property
    def path(self) -> Path:
        return self.settings.auth_file

    def get(self, server: str) -> Credentials | None:
        server = normalize_server(server)
        ours = self._auths(self.path)
        found = _entry_for(ours, server)
        if found is not None:
            creds = _decode(found[1], str(self.path))
            if creds is not None:
                return creds
        return self._from_docker(server)

    def _auths(self, path: Path) -> dict[str, Any]:
        auths = _read_json(path).get("auths") or {}
        if not isinstance(auths, dict):
            raise RegistryError(f'credentials file {path}: "auths" is not an object')
        return auths

    def _from_docker(self, server: str) -> Credentials | None:
        path = self.settings.docker_config
        config = _read_json(path)
        helpers = config.get("credHelpers") or {}
        helper = None
        if isinstance(helpers, dict):
            match = _entry_for({k: {"helper": v} for k, v in helpers.items()}, server)
            helper = str(match[1]["helper"]) if match else None
        if helper is None and config.get("credsStore"):
            helper = str(config["credsStore"])
        if helper:
            creds = _from_helper(helper, DOCKER_HUB_KEY if server == DOCKER_HUB else server)
            if creds is not None:
                return creds
        auths = config.get("auths") or {}
        found = _entry_for(auths, server) if isinstance(auths, dict) else None
        return _decode(found[1], str(path)) if found is not None else None

    def save(self, server: str, username: str, password: str) -> Path:
        server = normalize_server(server)
        if ":" in username:
            raise InvalidArgument("a username cannot contain ':'")
        data = _read_json(self.path)
        auths = data.get("auths")
        if not isinstance(auths, dict):
            auths = {}
        found = _entry_for(auths, server)
        if found is not None:
            del auths[found[0]]
        auths[server] = {"auth": base64.b64encode(f"{username}:{password}".encode()).decode()}
        data["auths"] = auths
        self._write(data)
        return self.path

    def remove(self, server: str) -> bool:
        """Forget ``server`` in our file; True when there was something to forget."""
        server = normalize_server(server)
        data = _read_json(self.path)
        auths = data.get("auths")
        found = _entry_for(auths, server) if isinstance(auths, dict) else None
        if found is None or not isinstance(auths, dict):
            return False
        del auths[found[0]]
        self._write(data)
        return True

    def _write(self, data: dict[str, Any]) -> None:
        directory = self.path.parent
        try:
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            atomic_write(self.path, (json.dumps(data, indent=2) + "\n").encode(), mode=0o600)
            os.chmod(self.path, 0o600)  # atomic_write's mode is filtered by the umask; ours must not be
        except OSError as e:
            raise RegistryError(f"cannot write credentials file {self.path}: {e.strerror}") from None


def _from_helper(helper: str, server_url: str) -> Credentials | None:
    """Ask ``docker-credential-<helper> get``; a missing helper or a miss is no credentials."""
    program = shutil.which(f"docker-credential-{helper}")
    if program is None:
        return None
    try:
        proc = subprocess.run(
            [program, "get"], input=server_url, capture_output=True, text=True, timeout=HELPER_TIMEOUT_S
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if proc.returncode != 0:
        return None
    try:
        answer = json.loads(proc.stdout)
        user, secret = str(answer.get("Username") or ""), str(answer.get("Secret") or "")
    except (ValueError, AttributeError):
        raise RegistryError(f"docker-credential-{helper} answered something other than JSON") from None
    origin = f"docker-credential-{helper}"
    if user == IDENTITY_TOKEN_USER:
        return Credentials("", "", secret, origin)
    return Credentials(user, secret, "", origin) if user or secret else None
