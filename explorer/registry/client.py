"""The endpoints of the OCI distribution API (``/v2/``) that pull and push need, with
authentication, scheme choice and error answers handled once, here.

A registry is first pinged (``GET /v2/``) like Docker does: the answer says whether it
speaks HTTPS and which challenge it wants, so the first real request already carries a
token. Plain HTTP is tried only where ``settings`` allows it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from urllib.parse import quote, urlencode, urljoin

from ..digest import sha256_bytes
from ..errors import (
    DigestMismatch,
    ManifestUnknown,
    RegistryAuthError,
    RegistryError,
    RegistryProtocolError,
    RegistryUnreachable,
    SizeMismatch,
)
from .auth import Authenticator
from .credentials import Credentials, CredentialStore
from .manifests import ACCEPT, MAX_MANIFEST, Descriptor, ImageIndex, ImageManifest, parse
from .settings import RegistrySettings, api_host
from .transport import PROBE_TIMEOUT_S, ChunkedRequest, Response, Stalled, Transport, origin

MAX_ERROR_BODY = 1 << 16
MAX_CONFIG = 32 << 20


def pull_scope(repo: str) -> str:
    return f"repository:{repo}:pull"


def push_scope(repo: str) -> str:
    return f"repository:{repo}:pull,push"


def _with_query(url: str, **params: str) -> str:
    return url + ("&" if "?" in url else "?") + urlencode(params)


class RegistryClient:
    """One registry (``docker.io``, ``localhost:5000``) and the credentials we hold for it."""

    def __init__(
        self,
        domain: str,
        settings: RegistrySettings,
        *,
        transport: Transport | None = None,
        credentials: Credentials | None = None,
    ) -> None:
        self.domain = domain
        self.host = api_host(domain)
        self.settings = settings
        self._own_transport = transport is None
        self.transport = transport or Transport(settings)
        creds = credentials if credentials is not None else CredentialStore(settings).get(domain)
        self.auth = Authenticator(self.transport, self.host, creds)
        self._base: str | None = None

    def close(self) -> None:
        if self._own_transport:
            self.transport.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the endpoint and its challenge -----------------------------------------------------

    @property
    def base(self) -> str:
        """``https://host/v2/`` or, where allowed and HTTPS fails, ``http://host/v2/``."""
        if self._base is None:
            self.ping()
        assert self._base is not None
        return self._base

    def ping(self) -> int:
        """GET /v2/: learns the scheme and the challenge; returns the status (200 or 401)."""
        schemes = ["https", "http"] if self.settings.plain_http_allowed(self.host) else ["https"]
        failure: RegistryUnreachable | None = None
        for scheme in schemes:
            url = f"{scheme}://{self.host}/v2/"
            # A plain-HTTP server may never answer a TLS hello; do not wait a minute to find out.
            probe = min(PROBE_TIMEOUT_S, self.transport.timeout) if scheme == "https" and len(schemes) > 1 else None
            try:
                response = self.transport.request("GET", url, timeout=probe)
            except RegistryUnreachable as e:
                failure = e
                continue
            with response:
                if response.status == 401:
                    self.auth.learn(response)
                elif response.content_type == "text/html":
                    response.drain()
                    raise RegistryProtocolError(
                        f"{self.host} answered /v2/ with an HTML page; is this address a registry?"
                    )
                elif response.status != 200:
                    response.drain()
                    raise RegistryProtocolError(
                        f"{self.host} does not serve the registry API (/v2/ answered {response.status} "
                        f"{response.reason})"
                    )
                response.drain()
            self._base = url
            return response.status
        assert failure is not None
        if len(schemes) == 1 and "TLS" in failure.why:
            raise RegistryUnreachable(
                self.host,
                f"{failure.why}; if you trust this registry, list it as insecure in "
                "STRATA_INSECURE_REGISTRIES or registries.json",
            )
        raise failure

    def check_login(self) -> None:
        """Prove the client's credentials to the registry (``strata login``)."""
        self.ping()
        challenge = self.auth.challenge
        if challenge is None:
            return  # the registry asks nobody for credentials
        if challenge.scheme == "bearer":
            self.auth.headers([])  # the token service checks the password
            return
        response = self.transport.request("GET", self.base, self.auth.headers([]))
        with response:
            status = response.status
            response.drain()
        if status != 200:
            raise RegistryAuthError(self.host, f"{self.host}: unauthorized: incorrect username or password")

    # --- requests -------------------------------------------------------------------------

    def _owns(self, url: str) -> bool:
        """``url`` is on the registry itself (scheme, host and port), where its credentials go.
        An upload ``Location`` may name any host; that host gets no password and no token."""
        return origin(url) == origin(self.base)

    def _auth(self, url: str, scopes: list[str]) -> dict[str, str]:
        return self.auth.headers(scopes) if self._owns(url) else {}

    def _request(
        self,
        method: str,
        url: str,
        scopes: Iterable[str],
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
        follow_redirects: bool = True,
    ) -> Response:
        scopes = list(scopes)
        owned = self._owns(url)
        for attempt in (0, 1):
            auth = self.auth.headers(scopes) if owned else {}
            response = self.transport.request(
                method, url, {**auth, **(headers or {})}, body, follow_redirects=follow_redirects
            )
            # Only the registry's own challenge is learnt: another host must not choose where
            # (or whether) the registry's credentials are sent.
            if (
                response.status == 401
                and attempt == 0
                and owned
                and origin(response.url) == origin(url)
                and self.auth.learn(response)
            ):
                response.drain()
                continue
            return response
        raise AssertionError("unreachable")

    def _url(self, repo: str, *parts: str) -> str:
        return self.base + repo + "/" + "/".join(quote(p, safe=":@") for p in parts)

    def fail(self, response: Response, what: str, reference: str = "") -> RegistryError:
        """The one-line error for an unexpected answer; consumes the response."""
        code, message = "", ""
        if response.content_type == "text/html":
            response.drain()
            return RegistryProtocolError(
                f"{what}: {self.host} answered {response.status} with an HTML page; is this address a registry?"
            )
        try:
            body = response.read_all(MAX_ERROR_BODY, "error answer")
        except RegistryError:
            body = b""
        response.close()
        try:
            first = (json.loads(body).get("errors") or [{}])[0]
            code, message = str(first.get("code") or ""), str(first.get("message") or "")
        except (ValueError, AttributeError, IndexError, TypeError):
            pass
        detail = (
            f"{code.lower().replace('_', ' ')}: {message}"
            if code and message
            else (message or code.lower() or f"{response.status} {response.reason}")
        )
        status = response.status
        if reference and (status == 404 or code in ("MANIFEST_UNKNOWN", "NAME_UNKNOWN")):
            return ManifestUnknown(reference, detail)
        if status in (401, 403) or code in ("UNAUTHORIZED", "DENIED"):
            hint = (
                "log in with `strata login " + self.domain + "`"
                if self.auth.credentials is None
                else "check the permissions of the account you are logged in with"
            )
            return RegistryAuthError(self.host, f"{what}: access denied by {self.host} ({detail}); {hint}")
        if status == 429:
            return RegistryError(f"{what}: {self.host} is rate limiting requests ({detail}); try again later")
        return RegistryError(f"{what}: {self.host} answered {detail}")

    # --- manifests ------------------------------------------------------------------------

    def get_manifest(self, repo: str, ref: str, reference: str) -> ImageManifest | ImageIndex:
        """The manifest or index that ``ref`` (tag or digest) names, checked against its digest."""
        response = self._request("GET", self._url(repo, "manifests", ref), [pull_scope(repo)], {"Accept": ACCEPT})
        with response:
            if response.status != 200:
                if response.status in (401, 403):
                    raise RegistryAuthError(
                        self.host,
                        f"pull access denied for {reference}: the repository does not exist or "
                        f"needs `strata login {self.domain}`",
                    )
                raise self.fail(response, f"manifest for {reference}", reference)
            raw = response.read_all(MAX_MANIFEST, f"manifest for {reference}")
            content_type = response.content_type
            announced = response.header("Docker-Content-Digest")
        manifest = parse(raw, content_type, f"{self.host} (manifest for {reference})")
        if ref.startswith("sha256:") and manifest.digest != ref:
            raise DigestMismatch(f"manifest for {reference}", ref, manifest.digest)
        if announced.startswith("sha256:") and announced != manifest.digest:
            raise DigestMismatch(f"manifest for {reference} (Docker-Content-Digest)", announced, manifest.digest)
        return manifest

    def put_manifest(self, repo: str, ref: str, raw: bytes, media_type: str) -> str:
        url = self._url(repo, "manifests", ref)
        response = self._request("PUT", url, [push_scope(repo)], {"Content-Type": media_type}, raw)
        with response:
            if response.status not in (200, 201, 202):
                raise self.fail(response, f"pushing the manifest of {self.domain}/{repo}:{ref}")
            announced = response.header("Docker-Content-Digest")
            response.drain()
        digest = sha256_bytes(raw)
        if announced.startswith("sha256:") and announced != digest:
            raise DigestMismatch(f"manifest pushed to {self.domain}/{repo}", digest, announced)
        return digest

    # --- blobs ------------------------------------------------------------------------------

    @contextmanager
    def open_blob(self, repo: str, desc: Descriptor, what: str) -> Iterator[Response]:
        """A blob's body as it arrives; the caller verifies size and digest while reading."""
        try:
            response = self._request("GET", self._url(repo, "blobs", desc.digest), [pull_scope(repo)])
        except Stalled as e:
            raise e.about(what) from None
        with response:
            if response.status != 200:
                raise self.fail(response, what)
            if response.content_type == "text/html":
                response.close()
                raise RegistryProtocolError(f"{what}: {response.host} answered with an HTML page instead of the blob")
            yield response

    def get_blob_bytes(self, repo: str, desc: Descriptor, what: str, limit: int = MAX_CONFIG) -> bytes:
        """A small blob (a config), whole and verified."""
        if desc.size > limit:
            raise RegistryProtocolError(f"{what} is implausibly large ({desc.size} bytes)")
        with self.open_blob(repo, desc, what) as response:
            data = response.read_all(limit, what)
        if len(data) != desc.size:
            raise SizeMismatch(what, desc.size, len(data))
        got = sha256_bytes(data)
        if got != desc.digest:
            raise DigestMismatch(what, desc.digest, got)
        return data

    def blob_exists(self, repo: str, digest: str, what: str = "") -> bool:
        response = self._request("HEAD", self._url(repo, "blobs", digest), [push_scope(repo)])
        with response:
            if response.status == 200:
                return True
            if response.status == 404:
                return False
            raise self.fail(response, what or f"checking blob {digest[7:19]}")

    def mount_blob(self, repo: str, digest: str, source_repo: str) -> bool:
        """Ask the registry to link a blob it holds in ``source_repo`` into ``repo``."""
        url = _with_query(self.base + repo + "/blobs/uploads/", mount=digest, **{"from": source_repo})
        response = self._request("POST", url, [push_scope(repo), pull_scope(source_repo)])
        with response:
            if response.status == 201:
                response.drain()
                return True
            if response.status == 202:  # not mountable; it opened an upload instead
                location = response.header("Location")
                response.drain()
                if location:
                    self.cancel_upload(repo, urljoin(self.base, location))
                return False
            if response.status in (401, 403, 404):
                response.drain()
                return False
            raise self.fail(response, f"mounting blob {digest[7:19]} from {source_repo}")

    def start_upload(self, repo: str) -> str:
        response = self._request("POST", self.base + repo + "/blobs/uploads/", [push_scope(repo)])
        with response:
            if response.status != 202:
                raise self.fail(response, f"starting an upload to {self.domain}/{repo}")
            location = response.header("Location")
            response.drain()
        if not location:
            raise RegistryProtocolError(f"{self.host} opened an upload without a Location")
        return urljoin(self.base, location)

    def stream_upload(self, repo: str, location: str) -> ChunkedRequest:
        """A chunked PATCH of the blob's bytes; ``finish_stream`` then completes the upload."""
        headers = {**self._auth(location, [push_scope(repo)]), "Content-Type": "application/octet-stream"}
        return self.transport.chunked("PATCH", location, headers)

    def finish_stream(self, repo: str, request: ChunkedRequest, digest: str, what: str) -> None:
        response = request.finish()
        with response:
            if response.status not in (202, 204):
                raise self.fail(response, what)
            location = response.header("Location")
            response.drain()
        self._complete(repo, urljoin(request.url, location) if location else request.url, digest, None, what)

    def upload_bytes(self, repo: str, data: bytes, what: str) -> str:
        """A small blob in one request (configs)."""
        digest = sha256_bytes(data)
        location = self.start_upload(repo)
        self._complete(repo, location, digest, data, what)
        return digest

    def _complete(self, repo: str, location: str, digest: str, body: bytes | None, what: str) -> None:
        headers = {"Content-Type": "application/octet-stream"}
        response = self._request(
            "PUT",
            _with_query(location, digest=digest),
            [push_scope(repo)],
            headers,
            body if body is not None else b"",
            follow_redirects=False,
        )
        with response:
            if response.status not in (201, 204):
                raise self.fail(response, what)
            announced = response.header("Docker-Content-Digest")
            response.drain()
        if announced.startswith("sha256:") and announced != digest:
            raise DigestMismatch(f"{what} (as the registry stored it)", digest, announced)

    def cancel_upload(self, repo: str, location: str) -> None:
        """Best effort: a registry forgets abandoned uploads by itself eventually."""
        try:
            response = self._request("DELETE", location, [push_scope(repo)], follow_redirects=False)
            response.drain()
        except RegistryError:
            pass
