"""Small HTTP servers for the hostile-network tests (registries and ``ADD http://…``): a
scripted server on any local address, and this machine's own non-loopback address to stand
for "a host out there" without any traffic leaving the machine."""

from __future__ import annotations

import fcntl
import http.server
import ipaddress
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from tests.capabilities import missing

SIOCGIFADDR = 0x8915


def non_loopback_address() -> str:
    """An IPv4 address of one of this machine's interfaces that is not loopback: a server
    bound there is "another host" to the code under test, yet reached through the kernel's
    local routing only. Missing one stops the test (a failure in CI)."""
    for _, name in socket.if_nameindex():
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            try:
                answer = fcntl.ioctl(probe.fileno(), SIOCGIFADDR, struct.pack("256s", name.encode()[:15]))
            except OSError:
                continue
        address = socket.inet_ntoa(answer[20:24])
        if not ipaddress.ip_address(address).is_loopback:
            return address
    missing("no network interface with a non-loopback IPv4 address")


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]


Script = Callable[["ScriptedHandler"], None]


@dataclass
class Scripted:
    """What one server answers (``script`` gets every request) and what it was asked."""

    script: Script
    host: str = "127.0.0.1"
    port: int = 0
    seen: list[Seen] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)  # releases a stalled answer

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"


class ScriptedHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_side: Scripted

    def log_message(self, format: str, *args: object) -> None:
        pass

    def send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for k, v in {"Content-Length": str(len(body)), **(headers or {})}.items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def body(self) -> bytes:
        """The request's body, plain or chunked (a push streams its layers chunked)."""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def handle_any(self) -> None:
        self.server_side.seen.append(Seen(self.command, self.path, dict(self.headers)))
        self.server_side.script(self)

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = handle_any


@contextmanager
def serving(script: Script, host: str = "127.0.0.1") -> Iterator[Scripted]:
    side = Scripted(script, host)
    handler = type("Handler", (ScriptedHandler,), {"server_side": side})
    server = http.server.ThreadingHTTPServer((host, 0), handler)
    server.daemon_threads = True
    side.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield side
    finally:
        side.stop.set()
        server.shutdown()
        server.server_close()
