"""Docker's image reference grammar and normalisation.

``busybox`` is ``docker.io/library/busybox:latest``; ``localhost:5000/app`` keeps its
registry. The store keeps the fully normalised name; the CLI shows docker's familiar
short form. See distribution/reference for the grammar this follows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import InvalidArgument, InvalidReference

DEFAULT_DOMAIN = "docker.io"
LEGACY_DOMAINS = ("index.docker.io", "registry-1.docker.io")
OFFICIAL_PREFIX = "library/"
DEFAULT_TAG = "latest"
NAME_TOTAL_MAX = 255

_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?"
_TAG = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"  # ASCII only, as Docker: Python's \w is Unicode
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"

# \A…\Z, not ^…$: "$" also matches before a final newline ("x:1\n" is no tag).
PATH_COMPONENT_RE = re.compile(rf"\A{_PATH_COMPONENT}\Z")
DOMAIN_RE = re.compile(rf"\A{_DOMAIN}\Z")
TAG_RE = re.compile(rf"\A{_TAG}\Z")
DIGEST_RE = re.compile(rf"\A{_DIGEST}\Z")
IMAGE_ID_RE = re.compile(r"\A(?:sha256:)?[0-9a-f]{64}\Z")

# Not registry references: ``docker-daemon:NAME`` and ``podman:NAME`` name an image held by a
# local Docker or Podman, which registry/daemon.py copies out through its save command.
# Prefix → the program that holds the image.
DAEMON_TRANSPORTS: dict[str, str] = {"docker-daemon:": "docker", "podman:": "podman"}
DAEMON_FORMS = " or ".join(f"{prefix}NAME" for prefix in DAEMON_TRANSPORTS)


@dataclass(frozen=True, slots=True)
class Reference:
    """A parsed, normalised reference. ``tag`` is None only when a digest is given."""

    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    @property
    def repository(self) -> str:
        """``docker.io/library/busybox``: the key a registry and the tag table use."""
        return f"{self.domain}/{self.path}"

    @property
    def name(self) -> str:
        """Full name with tag or digest: what the tag table stores."""
        out = self.repository
        if self.tag is not None:
            out += f":{self.tag}"
        if self.digest is not None:
            out += f"@{self.digest}"
        return out

    @property
    def familiar_repository(self) -> str:
        return familiar(self.repository)

    @property
    def familiar(self) -> str:
        return familiar(self.name)

    def __str__(self) -> str:
        return self.name


def _split_domain(name: str) -> tuple[str, str]:
    first, sep, rest = name.partition("/")
    if not sep:
        return DEFAULT_DOMAIN, name
    if "." in first or ":" in first or first == "localhost" or first.lower() != first:
        domain = first
        if domain in LEGACY_DOMAINS:
            domain = DEFAULT_DOMAIN
        return domain, rest
    return DEFAULT_DOMAIN, name


def parse(text: str, *, default_tag: bool = True) -> Reference:
    """Parse and normalise ``text``; ``default_tag`` adds ``:latest`` when no tag or digest is given."""
    original = text
    if not text:
        raise InvalidReference(original, "empty reference")
    if text.strip() != text:
        raise InvalidReference(original, "surrounding whitespace")
    digest: str | None = None
    if "@" in text:
        text, digest = text.split("@", 1)
        if not DIGEST_RE.match(digest):
            raise InvalidReference(original, "invalid digest")
    tag: str | None = None
    last_slash = text.rfind("/")
    colon = text.rfind(":")
    if colon > last_slash:
        text, tag = text[:colon], text[colon + 1 :]
        if not TAG_RE.match(tag):
            raise InvalidReference(original, f"invalid tag {tag!r}")
    domain, path = _split_domain(text)
    if not DOMAIN_RE.match(domain):
        raise InvalidReference(original, f"invalid registry {domain!r}")
    if not path:
        raise InvalidReference(original, "missing repository name")
    for component in path.split("/"):
        if not PATH_COMPONENT_RE.match(component):
            if component.lower() != component and PATH_COMPONENT_RE.match(component.lower()):
                raise InvalidReference(original, "repository name must be lowercase")
            raise InvalidReference(
                original,
                f"invalid name component {component!r}: use lowercase letters, digits and . _ - separators",
            )
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = OFFICIAL_PREFIX + path
    if len(domain) + 1 + len(path) > NAME_TOTAL_MAX:
        raise InvalidReference(original, f"repository name longer than {NAME_TOTAL_MAX} characters")
    if tag is None and digest is None and default_tag:
        tag = DEFAULT_TAG
    return Reference(domain, path, tag, digest)


def familiar(name: str) -> str:
    """Docker's short display form: drop ``docker.io/`` and ``library/``."""
    prefix = DEFAULT_DOMAIN + "/"
    if name.startswith(prefix):
        name = name[len(prefix) :]
        if name.startswith(OFFICIAL_PREFIX) and "/" not in name[len(OFFICIAL_PREFIX) :].split(":")[0]:
            name = name[len(OFFICIAL_PREFIX) :]
    return name


def split_name(name: str) -> tuple[str, str]:
    """``docker.io/library/busybox:1`` → (``docker.io/library/busybox``, ``1``)."""
    colon = name.rfind(":")
    if colon > name.rfind("/"):
        return name[:colon], name[colon + 1 :]
    return name, ""


def looks_like_id(text: str) -> bool:
    t = text.removeprefix("sha256:")
    return 4 <= len(t) <= 64 and all(c in "0123456789abcdef" for c in t)


def is_daemon_reference(text: str) -> bool:
    """Whether ``text`` names an image in a local daemon rather than in a registry."""
    return text.startswith(tuple(DAEMON_TRANSPORTS))


def daemon_source(text: str) -> tuple[str, str] | None:
    """(``docker``|``podman``, image name) for a daemon reference, else None."""
    for prefix, tool in DAEMON_TRANSPORTS.items():
        if text.startswith(prefix):
            name = text[len(prefix) :]
            if not name:
                raise InvalidArgument(f"{text}: give an image name after {prefix}")
            return tool, name
    return None
