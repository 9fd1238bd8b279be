"""HTTP for registries: keep-alive connections shared by threads, redirects under our
control, streaming both ways, and every failure as one line.

``http.client`` rather than ``urllib``: a blob must be streamed into the extractor while
it arrives, an upload streamed out while it is compressed (chunked PATCH, as Docker
does), redirects must not carry credentials to a CDN and must be stopped when they loop,
and a connection must be reused across the hundred small requests of a push.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import ssl
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from urllib.parse import urljoin, urlsplit

from .. import __version__
from ..errors import RegistryProtocolError, RegistryUnreachable
from .settings import RegistrySettings

TIMEOUT_S = 60.0
PROBE_TIMEOUT_S = 10.0
MAX_REDIRECTS = 10
IDLE_PER_HOST = 8
USER_AGENT = f"strata/{__version__}"
REDIRECTS = (301, 302, 303, 307, 308)
# Errors that mean a kept-alive connection was closed by the server while idle: the
# request never reached it and is safe to send again on a fresh connection.
_STALE = (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError, http.client.CannotSendRequest)

Release = Callable[[http.client.HTTPConnection, bool], None]


def describe_os_error(e: BaseException) -> str:
    """What went wrong with a connection, in words a user can act on."""
    if isinstance(e, socket.gaierror):
        return "the name does not resolve (check the registry address and your network)"
    if isinstance(e, ConnectionRefusedError):
        return "connection refused (is the registry running on that port?)"
    if isinstance(e, TimeoutError | socket.timeout):
        return f"no answer within {TIMEOUT_S:.0f} seconds"
    if isinstance(e, ssl.SSLCertVerificationError):
        return f"TLS certificate not trusted ({e.verify_message})"
    if isinstance(e, ssl.SSLError):
        return f"TLS handshake failed ({e.reason or e})"
    if isinstance(e, http.client.RemoteDisconnected | ConnectionResetError | BrokenPipeError):
        return "the connection was closed by the server"
    if isinstance(e, http.client.IncompleteRead):
        return "the connection was closed before the answer was complete"
    if isinstance(e, http.client.HTTPException):
        return f"malformed HTTP answer ({type(e).__name__})"
    if isinstance(e, OSError):
        return e.strerror or str(e)
    return str(e)


@dataclass
class Response:
    """One HTTP answer. Read it to the end (or ``close`` it) so its connection can be reused."""

    status: int
    reason: str
    headers: http.client.HTTPMessage
    url: str
    _raw: http.client.HTTPResponse = field(repr=False)
    _conn: http.client.HTTPConnection | None = field(repr=False)
    _release: Release = field(repr=False)

    def __post_init__(self) -> None:
        if self._raw.isclosed():
            self._finish(True)

    @property
    def host(self) -> str:
        return urlsplit(self.url).netloc

    def header(self, name: str) -> str:
        return self.headers.get(name, "") or ""

    @property
    def content_type(self) -> str:
        return self.header("Content-Type").split(";", 1)[0].strip().lower()

    @property
    def length(self) -> int | None:
        value = self.header("Content-Length")
        return int(value) if value.isdigit() else None

    def read(self, n: int = -1) -> bytes:
        """Up to ``n`` bytes of the body; b"" at its end. A broken connection raises
        RegistryUnreachable; a short body simply ends (callers compare sizes)."""
        if self._conn is None:
            return b""
        try:
            data = self._raw.read(n if n >= 0 else None)
        except (OSError, http.client.HTTPException) as e:
            self._finish(False)
            raise RegistryUnreachable(self.host, describe_os_error(e)) from None
        if not data:
            # A body that ended before its Content-Length leaves the socket useless.
            self._finish(self._raw.length in (None, 0))
        elif self._raw.isclosed():
            self._finish(True)
        return data

    def read_all(self, limit: int, what: str) -> bytes:
        """The whole body, refusing more than ``limit`` bytes (manifests, configs, errors)."""
        declared = self.length
        if declared is not None and declared > limit:
            self.close()
            raise RegistryProtocolError(f"{what} from {self.host} is implausibly large ({declared} bytes)")
        parts: list[bytes] = []
        total = 0
        while chunk := self.read(1 << 16):
            parts.append(chunk)
            total += len(chunk)
            if total > limit:
                self.close()
                raise RegistryProtocolError(f"{what} from {self.host} is implausibly large (over {limit} bytes)")
        return b"".join(parts)

    def drain(self, limit: int = 1 << 16) -> None:
        """Throw the body away, keeping the connection when the body is small."""
        with contextlib.suppress(RegistryProtocolError, RegistryUnreachable):
            self.read_all(limit, "answer")
        self.close()

    def _finish(self, reusable: bool) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            self._release(conn, reusable and not self._raw.will_close)

    def close(self) -> None:
        """Done with the answer. Its connection is kept when nothing of the body is left
        unread (a HEAD, an empty body), else closed: draining an unwanted blob costs more."""
        if self._conn is not None:
            complete = self._raw.length == 0
            self._raw.close()
            self._finish(complete)

    def __enter__(self) -> Response:
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


class ChunkedRequest:
    """A request whose body is written piece by piece (Transfer-Encoding: chunked), so an
    upload can be produced while it is sent, with no temporary file and no thread."""

    BUFFER = 1 << 18

    def __init__(self, transport: Transport, conn: http.client.HTTPConnection, url: str) -> None:
        self._transport = transport
        self._conn: http.client.HTTPConnection | None = conn
        self.url = url
        self._buffer = bytearray()

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self._buffer += data
        if len(self._buffer) >= self.BUFFER:
            self._flush()
        return len(data)

    def _flush(self) -> None:
        if not self._buffer or self._conn is None:
            return
        frame = b"%x\r\n" % len(self._buffer) + bytes(self._buffer) + b"\r\n"
        self._buffer.clear()
        self._send(frame)

    def _send(self, data: bytes) -> None:
        assert self._conn is not None
        try:
            self._conn.send(data)
        except OSError as e:
            self.abort()
            raise RegistryUnreachable(urlsplit(self.url).netloc, describe_os_error(e)) from None

    def finish(self) -> Response:
        self._flush()
        self._send(b"0\r\n\r\n")
        conn, self._conn = self._conn, None
        assert conn is not None
        return self._transport._response(conn, self.url)

    def abort(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


class Transport:
    """Connections to any number of hosts, kept alive and handed to one thread at a time."""

    def __init__(self, settings: RegistrySettings, timeout: float = TIMEOUT_S) -> None:
        self.settings = settings
        self.timeout = timeout
        self._idle: dict[tuple[str, str], list[http.client.HTTPConnection]] = {}
        self._lock = threading.Lock()
        self._verified = ssl.create_default_context()
        self._unverified = ssl._create_unverified_context()

    # --- connections ------------------------------------------------------------------

    def _new(self, scheme: str, netloc: str) -> http.client.HTTPConnection:
        if scheme == "https":
            # As Docker treats them: loopback and listed registries may use any certificate.
            context = self._unverified if self.settings.plain_http_allowed(netloc) else self._verified
            return http.client.HTTPSConnection(netloc, timeout=self.timeout, context=context)
        if not self.settings.plain_http_allowed(netloc):
            raise RegistryUnreachable(
                netloc, "plain HTTP is only used for localhost and registries listed as insecure "
                "(STRATA_INSECURE_REGISTRIES or registries.json)")
        return http.client.HTTPConnection(netloc, timeout=self.timeout)

    def _take(self, scheme: str, netloc: str) -> tuple[http.client.HTTPConnection, bool]:
        with self._lock:
            idle = self._idle.get((scheme, netloc))
            if idle:
                return idle.pop(), True
        return self._new(scheme, netloc), False

    def _give_back(self, key: tuple[str, str], conn: http.client.HTTPConnection, reusable: bool) -> None:
        if reusable and conn.sock is not None:
            with self._lock:
                idle = self._idle.setdefault(key, [])
                if len(idle) < IDLE_PER_HOST:
                    idle.append(conn)
                    return
        conn.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, {}
        for conns in idle.values():
            for conn in conns:
                conn.close()

    # --- requests ---------------------------------------------------------------------

    def _wrap(self, conn: http.client.HTTPConnection, url: str, raw: http.client.HTTPResponse) -> Response:
        parts = urlsplit(url)
        key = (parts.scheme, parts.netloc)
        return Response(raw.status, raw.reason, raw.headers, url, raw, conn,
                        lambda c, ok: self._give_back(key, c, ok))

    def _response(self, conn: http.client.HTTPConnection, url: str) -> Response:
        try:
            raw = conn.getresponse()
        except (OSError, http.client.HTTPException) as e:
            conn.close()
            raise RegistryUnreachable(urlsplit(url).netloc, describe_os_error(e)) from None
        return self._wrap(conn, url, raw)

    def _send_once(self, method: str, url: str, headers: Mapping[str, str], body: bytes | None,
                   timeout: float | None = None) -> Response:
        parts = urlsplit(url)
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        full = {"User-Agent": USER_AGENT, **headers}
        for attempt in (0, 1):
            conn, reused = self._take(parts.scheme, parts.netloc)
            try:
                _set_timeout(conn, timeout or self.timeout)
                conn.request(method, path, body=body, headers=full)
                raw = conn.getresponse()
                _set_timeout(conn, self.timeout)
            except _STALE as e:
                conn.close()
                if reused and attempt == 0:
                    continue
                raise RegistryUnreachable(parts.netloc, describe_os_error(e)) from None
            except (OSError, http.client.HTTPException) as e:
                conn.close()
                raise RegistryUnreachable(parts.netloc, describe_os_error(e)) from None
            return self._wrap(conn, url, raw)
        raise AssertionError("unreachable")

    def request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
        *,
        follow_redirects: bool = True,
        timeout: float | None = None,
    ) -> Response:
        """Send one request, following redirects for GET and HEAD. ``Authorization`` is
        dropped when a redirect leaves the host it was meant for. ``timeout`` bounds the
        wait for the answer's headers (a probe that should fail fast)."""
        headers = dict(headers or {})
        seen: list[str] = []
        origin = urlsplit(url).netloc
        while True:
            response = self._send_once(method, url, headers, body, timeout)
            if response.status not in REDIRECTS or not follow_redirects or method not in ("GET", "HEAD"):
                return response
            location = response.header("Location")
            response.drain()
            if not location:
                raise RegistryProtocolError(f"{response.host} answered {response.status} without a Location")
            seen.append(url)
            url = urljoin(url, location)
            target = urlsplit(url)
            if target.scheme not in ("http", "https"):
                raise RegistryProtocolError(f"{origin} redirected to an unsupported address {url!r}")
            if url in seen:
                raise RegistryProtocolError(f"{origin} redirects in a loop (back to {url})")
            if len(seen) > MAX_REDIRECTS:
                raise RegistryProtocolError(f"{origin} redirected more than {MAX_REDIRECTS} times; giving up")
            if target.netloc != origin:
                headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}

    def chunked(self, method: str, url: str, headers: Mapping[str, str]) -> ChunkedRequest:
        """Start a request with a streamed body; write to it, then ``finish()``."""
        parts = urlsplit(url)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        for attempt in (0, 1):
            conn, reused = self._take(parts.scheme, parts.netloc)
            try:
                conn.putrequest(method, path, skip_accept_encoding=True)
                for name, value in {"User-Agent": USER_AGENT, **headers, "Transfer-Encoding": "chunked"}.items():
                    conn.putheader(name, value)
                conn.endheaders()
            except _STALE as e:
                conn.close()
                if reused and attempt == 0:
                    continue
                raise RegistryUnreachable(parts.netloc, describe_os_error(e)) from None
            except (OSError, http.client.HTTPException) as e:
                conn.close()
                raise RegistryUnreachable(parts.netloc, describe_os_error(e)) from None
            return ChunkedRequest(self, conn, url)
        raise AssertionError("unreachable")


def _set_timeout(conn: http.client.HTTPConnection, timeout: float) -> None:
    conn.timeout = timeout
    if conn.sock is not None:
        conn.sock.settimeout(timeout)
