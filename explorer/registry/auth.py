"""Answering a registry's ``WWW-Authenticate`` challenge the way Docker does.

A registry that wants credentials answers 401 with a challenge. ``Basic`` asks for the
user's password on every request. ``Bearer`` names a token service (``realm``) and the
``service``; we ask it for a token covering the scopes we need
(``repository:library/alpine:pull``), anonymously when we have no credentials, which is
how Docker Hub serves public images. Tokens are cached per scope set until shortly
before they expire, so a pull asks once, not once per blob.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urlencode, urlsplit

from ..errors import RegistryAuthError, RegistryProtocolError
from .credentials import Credentials
from .transport import Response, Transport

MAX_TOKEN_ANSWER = 1 << 20
DEFAULT_TOKEN_LIFETIME_S = 60
EXPIRY_MARGIN_S = 10
CLIENT_ID = "strata"


@dataclass(frozen=True)
class Challenge:
    scheme: str  # lower case: "bearer", "basic"
    params: dict[str, str] = field(default_factory=dict)


def parse_challenges(header: str) -> list[Challenge]:
    """RFC 7235 challenges: ``Scheme k=v, k="quoted, with commas"``, possibly several."""
    out: list[Challenge] = []
    i, n = 0, len(header)

    def skip(chars: str) -> None:
        nonlocal i
        while i < n and header[i] in chars:
            i += 1

    def token() -> str:
        nonlocal i
        start = i
        while i < n and header[i] not in ' \t,="':
            i += 1
        return header[start:i]

    while i < n:
        skip(" \t,")
        scheme = token()
        if not scheme:
            break
        current = Challenge(scheme.lower(), {})
        out.append(current)
        while True:
            skip(" \t")
            save = i
            key = token()
            skip(" \t")
            if not key or i >= n or header[i] != "=":
                i = save
                break
            i += 1
            skip(" \t")
            if i < n and header[i] == '"':
                i += 1
                value = []
                while i < n and header[i] != '"':
                    if header[i] == "\\" and i + 1 < n:
                        i += 1
                    value.append(header[i])
                    i += 1
                i += 1
                current.params[key.lower()] = "".join(value)
            else:
                current.params[key.lower()] = token()
            skip(" \t")
            if i < n and header[i] == ",":
                i += 1
    return out


@dataclass
class _Token:
    value: str
    scopes: frozenset[str]
    expires: float


class Authenticator:
    """The credentials and tokens for one registry host, shared by the threads of a pull."""

    def __init__(self, transport: Transport, host: str, credentials: Credentials | None) -> None:
        self.transport = transport
        self.host = host
        self.credentials = credentials
        self.challenge: Challenge | None = None
        self._tokens: list[_Token] = []
        self._extra_scopes: frozenset[str] = frozenset()  # what the last challenge asked for
        self._lock = threading.Lock()

    def headers(self, scopes: Iterable[str]) -> dict[str, str]:
        """Authorization for a request needing ``scopes``, fetching a token when the
        registry has said it wants bearer tokens."""
        wanted = frozenset(scopes)
        challenge = self.challenge
        if challenge is None:
            return {}
        if challenge.scheme == "basic":
            return self._basic()
        if challenge.scheme == "bearer":
            return {"Authorization": f"Bearer {self._token(challenge, wanted)}"}
        return {}

    def _basic(self) -> dict[str, str]:
        if self.credentials is None or not self.credentials.username:
            raise RegistryAuthError(self.host, f"{self.host} requires a login; run `strata login {self.host}`")
        return {"Authorization": f"Basic {self.credentials.basic()}"}

    def learn(self, response: Response) -> bool:
        """Take the challenge of a 401; True when one retry may succeed (a new or wider
        token, or credentials we have not sent yet)."""
        challenges = parse_challenges(response.header("WWW-Authenticate"))
        chosen = next((c for c in challenges if c.scheme == "bearer"), None) or next(
            (c for c in challenges if c.scheme == "basic"), None
        )
        if chosen is None:
            raise RegistryAuthError(
                self.host, f"{self.host} refused the request (401) without a challenge Strata understands"
            )
        with self._lock:
            changed = chosen != self.challenge
            self.challenge = chosen
            if chosen.scheme != "bearer":
                return changed
            scope = chosen.params.get("scope", "")
            self._extra_scopes = frozenset(scope.split(" ")) if scope else frozenset()
            self._tokens.clear()
            return True

    def _token(self, challenge: Challenge, scopes: frozenset[str]) -> str:
        scopes = scopes | self._extra_scopes
        now = time.monotonic()
        with self._lock:
            for t in self._tokens:
                if scopes <= t.scopes and t.expires > now:
                    return t.value
        token = self._fetch_token(challenge, scopes)
        with self._lock:
            self._tokens.append(token)
        return token.value

    def _fetch_token(self, challenge: Challenge, scopes: frozenset[str]) -> _Token:
        realm = challenge.params.get("realm", "")
        if urlsplit(realm).scheme not in ("http", "https"):
            raise RegistryProtocolError(f"{self.host} names an unusable token service {realm!r}")
        service = challenge.params.get("service", "")
        creds = self.credentials
        started = time.monotonic()
        if creds is not None and creds.identity_token:
            form = {
                "grant_type": "refresh_token",
                "refresh_token": creds.identity_token,
                "client_id": CLIENT_ID,
                "service": service,
                "scope": " ".join(sorted(scopes)),
            }
            response = self.transport.request(
                "POST", realm, {"Content-Type": "application/x-www-form-urlencoded"}, urlencode(form).encode()
            )
        else:
            query = [("service", service)] if service else []
            query += [("scope", s) for s in sorted(scopes)]
            if creds is not None and creds.username:
                query.append(("account", creds.username))
            headers = {"Authorization": f"Basic {creds.basic()}"} if creds is not None and creds.username else {}
            url = realm + ("&" if "?" in realm else "?") + urlencode(query) if query else realm
            response = self.transport.request("GET", url, headers)
        with response:
            if response.status in (401, 403):
                response.drain()
                if creds is not None and (creds.username or creds.identity_token):
                    stored = f" (stored in {creds.origin}; run `strata login {self.host}`)" if creds.origin else ""
                    raise RegistryAuthError(
                        self.host, f"{self.host}: unauthorized: incorrect username or password{stored}"
                    )
                raise RegistryAuthError(self.host, f"{self.host} requires a login; run `strata login {self.host}`")
            if response.status != 200:
                response.drain()
                raise RegistryAuthError(
                    self.host, f"the token service of {self.host} answered {response.status} {response.reason}"
                )
            if response.content_type == "text/html":
                response.drain()
                raise RegistryProtocolError(f"the token service of {self.host} answered with an HTML page")
            raw = response.read_all(MAX_TOKEN_ANSWER, "token answer")
        try:
            data = json.loads(raw)
            value = str(data.get("token") or data.get("access_token") or "")
            lifetime = int(data.get("expires_in") or DEFAULT_TOKEN_LIFETIME_S)
        except (ValueError, AttributeError, TypeError):
            raise RegistryProtocolError(
                f"the token service of {self.host} answered something other than JSON"
            ) from None
        if not value:
            raise RegistryProtocolError(f"the token service of {self.host} gave no token")
        return _Token(value, scopes, started + max(lifetime - EXPIRY_MARGIN_S, 1))
