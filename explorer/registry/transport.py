"""HTTP for registries: keep-alive connections shared by threads, redirects under our
control, streaming both ways, and every failure as one line.

``http.client`` rather than ``urllib``: a blob must be streamed into the extractor while
it arrives, an upload streamed out while it is compressed (chunked PATCH, as Docker
does), redirects must not carry credentials to a CDN and must be stopped when they loop,
and a connection must be reused across the hundred small requests of a push.

Credentials belong to an origin (scheme, host, port): a header carrying them is sent to
that origin only, whatever the method, however the address was reached (a redirect, an
upload's ``Location``). Plain HTTP and unchecked certificates are for this machine, as the
address a connection reached shows (``peers.py``), and for registries listed as insecure.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import ssl
import threading
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from urllib.parse import urljoin, urlsplit

from .. import __version__
from ..errors import RegistryError, RegistryProtocolError, RegistryUnreachable
from .peers import Connection, PeerConnection, PeerTLSConnection, is_loopback_address, redirect_refusal
from .settings import DEFAULT_TIMEOUT_S, TIMEOUT_ENV, RegistrySettings

TIMEOUT_S = DEFAULT_TIMEOUT_S
PROBE_TIMEOUT_S = 10.0
MAX_REDIRECTS = 10
IDLE_PER_HOST = 8
USER_AGENT = f"strata/{__version__}"
REDIRECTS = (301, 302, 303, 307, 308)
# Errors that mean a kept-alive connection was closed by the server while idle: the
# request never reached it and is safe to send again on a fresh connection.
_STALE = (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError, http.client.CannotSendRequest)

Release = Callable[[Connection, bool], None]
Origin = tuple[str, str, int]
INSECURE_HINT = "registries listed as insecure (STRATA_INSECURE_REGISTRIES or registries.json)"


def origin(url: str) -> Origin:
    """Scheme, host and port of ``url``: what credentials belong to."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    default = 443 if parts.scheme == "https" else 80
    return parts.scheme, (parts.hostname or "").lower(), port or default


def _seconds(n: float) -> str:
    return f"{n:g} second{'' if n == 1 else 's'}"


class Stalled(RegistryUnreachable):
    """Nothing arrived from a registry for ``seconds`` (the idle timeout)."""

    def __init__(self, host: str, seconds: float, what: str = "", advice: str = "try again") -> None:
        subject = f"{what} from {host}" if what else f"cannot talk to registry {host}"
        RegistryError.__init__(
            self, f"{subject}: no data for {_seconds(seconds)}; {advice} ({TIMEOUT_ENV} sets how many seconds to wait)"
        )
        self.host = host
        self.why = f"no data for {_seconds(seconds)}"
        self.seconds = seconds

    def about(self, what: str, advice: str = "try again") -> Stalled:
        """The same stall, naming what was being read."""
        return Stalled(self.host, self.seconds, what, advice)


class PlainHttpRefused(RegistryUnreachable):
    """Plain HTTP to a host that is neither this machine nor listed as insecure."""

    def __init__(self, host: str, peer: str = "") -> None:
        where = (
            f"{host} resolved to {peer}, which is not a loopback address"
            if peer
            else f"{host} is not localhost or a loopback address"
        )
        self.refusal = f"plain HTTP is only used for localhost ({where}) and {INSECURE_HINT}"
        super().__init__(host, self.refusal)
        self.peer = peer


def _unreachable(netloc: str, e: BaseException, timeout: float) -> RegistryUnreachable:
    if isinstance(e, TimeoutError | socket.timeout):
        return Stalled(netloc, timeout)
    return RegistryUnreachable(netloc, describe_os_error(e))


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
    peer: str  # the address the answer came from
    timeout: float
    _raw: http.client.HTTPResponse = field(repr=False)
    _conn: Connection | None = field(repr=False)
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
            raise _unreachable(self.host, e, self.timeout) from None
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

    def __init__(self, transport: Transport, conn: Connection, url: str) -> None:
        self._transport = transport
        self._conn: Connection | None = conn
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

    def __init__(self, settings: RegistrySettings, timeout: float | None = None) -> None:
        self.settings = settings
        self.timeout = timeout if timeout is not None else settings.timeout
        self._idle: dict[tuple[str, str], list[Connection]] = {}
        self._busy: weakref.WeakSet[Connection] = weakref.WeakSet()  # handed out, not given back
        self._interrupted = False
        self._lock = threading.Lock()
        self._verified = ssl.create_default_context()
        self._unverified = ssl._create_unverified_context()

    # --- connections ------------------------------------------------------------------

    def _new(self, scheme: str, netloc: str) -> Connection:
        listed = self.settings.is_insecure(netloc)
        if scheme == "https":
            # As Docker treats them: loopback and listed registries may use any certificate.
            def choose(peer: str) -> ssl.SSLContext:
                return self._unverified if listed or is_loopback_address(peer) else self._verified

            return PeerTLSConnection(netloc, self.timeout, self._verified, choose)
        if not self.settings.plain_http_allowed(netloc):
            raise PlainHttpRefused(netloc)

        def admit(peer: str) -> None:
            if not listed and not is_loopback_address(peer):
                raise PlainHttpRefused(netloc, peer)

        return PeerConnection(netloc, self.timeout, admit)

    def _take(self, scheme: str, netloc: str) -> tuple[Connection, bool]:
        with self._lock:
            self._check_interrupted(netloc)
            idle = self._idle.get((scheme, netloc))
            if idle:
                conn = idle.pop()
                self._busy.add(conn)
                return conn, True
        conn = self._new(scheme, netloc)
        with self._lock:
            self._busy.add(conn)
        return conn, False

    def _check_interrupted(self, netloc: str) -> None:
        if self._interrupted:
            raise RegistryUnreachable(netloc, "interrupted")

    def _give_back(self, key: tuple[str, str], conn: Connection, reusable: bool) -> None:
        with self._lock:
            self._busy.discard(conn)
        if reusable and conn.sock is not None and not self._interrupted:
            with self._lock:
                idle = self._idle.setdefault(key, [])
                if len(idle) < IDLE_PER_HOST:
                    idle.append(conn)
                    return
        conn.close()

    def interrupt(self) -> None:
        """From any thread: every request in progress fails now, however slow its server,
        and no new one starts (a cancelled pull). Sockets are shut down, not closed, so a
        descriptor cannot be reused under a thread still reading it."""
        with self._lock:
            self._interrupted = True
            busy = list(self._busy)
        for conn in busy:
            sock = conn.sock
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, {}
        for conns in idle.values():
            for conn in conns:
                conn.close()

    # --- requests ---------------------------------------------------------------------

    def _wrap(self, conn: Connection, url: str, raw: http.client.HTTPResponse) -> Response:
        parts = urlsplit(url)
        key = (parts.scheme, parts.netloc)
        return Response(
            raw.status,
            raw.reason,
            raw.headers,
            url,
            conn.peer,
            self.timeout,
            raw,
            conn,
            lambda c, ok: self._give_back(key, c, ok),
        )

    def _response(self, conn: Connection, url: str) -> Response:
        try:
            raw = conn.getresponse()
        except (OSError, http.client.HTTPException) as e:
            conn.close()
            raise _unreachable(urlsplit(url).netloc, e, self.timeout) from None
        return self._wrap(conn, url, raw)

    def _send_once(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes | None,
        timeout: float | None = None,
        guard: Callable[[str], None] | None = None,
    ) -> Response:
        """One request; ``guard(peer)`` may refuse the connection's peer before anything is sent."""
        parts = urlsplit(url)
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        full = {"User-Agent": USER_AGENT, **headers}
        wait = timeout or self.timeout
        for attempt in (0, 1):
            conn, reused = self._take(parts.scheme, parts.netloc)
            try:
                _set_timeout(conn, wait)
                if conn.sock is None:
                    conn.connect()
                self._check_interrupted(parts.netloc)
                if guard is not None:
                    guard(conn.peer)
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
                raise _unreachable(parts.netloc, e, wait) from None
            except BaseException:
                conn.close()
                raise
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
        """Send one request, following redirects for GET and HEAD. ``Authorization``
        belongs to the origin of ``url`` and is dropped when a redirect leaves it. A
        redirect may not lead from a host elsewhere into this machine, nor to plain HTTP
        off it (unless listed as insecure). ``timeout`` bounds the wait for the answer's
        headers (a probe that should fail fast)."""
        headers = dict(headers or {})
        seen: list[str] = []
        owner = origin(url)
        start = urlsplit(url).netloc
        guard: Callable[[str], None] | None = None
        while True:
            try:
                response = self._send_once(method, url, headers, body, timeout, guard)
            except PlainHttpRefused as e:
                if not seen:
                    raise
                raise RegistryProtocolError(
                    f"{urlsplit(seen[-1]).netloc} redirected to {url}: {e.refusal}; not following it"
                ) from None
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
                raise RegistryProtocolError(f"{start} redirected to an unsupported address {url!r}")
            if url in seen:
                raise RegistryProtocolError(f"{start} redirects in a loop (back to {url})")
            if len(seen) > MAX_REDIRECTS:
                raise RegistryProtocolError(f"{start} redirected more than {MAX_REDIRECTS} times; giving up")
            if origin(url) != owner:
                headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
            guard = _redirect_guard(response, url)

    def chunked(self, method: str, url: str, headers: Mapping[str, str]) -> ChunkedRequest:
        """Start a request with a streamed body; write to it, then ``finish()``."""
        parts = urlsplit(url)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        for attempt in (0, 1):
            conn, reused = self._take(parts.scheme, parts.netloc)
            try:
                _set_timeout(conn, self.timeout)
                if conn.sock is None:
                    conn.connect()
                self._check_interrupted(parts.netloc)
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
                raise _unreachable(parts.netloc, e, self.timeout) from None
            except BaseException:
                conn.close()
                raise
            return ChunkedRequest(self, conn, url)
        raise AssertionError("unreachable")


def _redirect_guard(response: Response, url: str) -> Callable[[str], None]:
    """Refuses the next hop's peer when the redirect in ``response`` leads from elsewhere
    into this machine (plain HTTP off it is refused when connecting, by ``admit``)."""

    def guard(peer: str) -> None:
        why = redirect_refusal(response.peer, urlsplit(url).scheme, peer, plain_http_elsewhere=True)
        if why:
            raise RegistryProtocolError(f"{response.host} redirected to {url}, {why}; not following it")

    return guard


def _set_timeout(conn: Connection, timeout: float) -> None:
    conn.timeout = timeout
    if conn.sock is not None:
        conn.sock.settimeout(timeout)
