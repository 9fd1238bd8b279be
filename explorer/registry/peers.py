"""HTTP connections that know which address they reached, so that trust is decided by it.

Plain HTTP, and TLS with any certificate, are for this machine (and for what the user
lists as insecure). A name cannot tell: ``registry.localhost``, even ``localhost``, may
resolve to another host. So the decision is taken on the socket's peer address right after
the TCP connect, before a byte of the request or of the TLS hello is sent. The registry
transport and the build's ``ADD http://…`` (``open_url``) both connect through these classes.

Redirects are judged by the same addresses (``redirect_refusal``): one may not lead from
a host elsewhere into this machine (a registry or a download out there cannot make us
fetch from local services), nor from this machine to plain HTTP elsewhere.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from ..errors import StrataError
from .settings import split_host_port

# Raise to refuse a peer; for TLS, return the context to speak to it with.
Admit = Callable[[str], None]
ChooseContext = Callable[[str], ssl.SSLContext]


def is_loopback_address(address: str) -> bool:
    """``127.0.0.0/8``, ``::1`` and IPv4-mapped loopback; names are not addresses."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped.is_loopback
    return ip.is_loopback


def peer_of(sock: socket.socket) -> str:
    return str(sock.getpeername()[0])


def redirect_refusal(
    origin_peer: str, target_scheme: str, target_peer: str, *, plain_http_elsewhere: bool = False
) -> str | None:
    """Why a redirect from a host at ``origin_peer`` to ``target_peer`` must not be
    followed, as the end of a sentence, or None when it may be. ``plain_http_elsewhere``:
    the caller judges plain HTTP off this machine itself (a registry listed as insecure)."""
    origin_local = is_loopback_address(origin_peer)
    target_local = is_loopback_address(target_peer)
    if target_local and not origin_local:
        return f"an address on this machine ({target_peer}) that a host elsewhere may not send Strata to"
    if origin_local and not target_local and target_scheme == "http" and not plain_http_elsewhere:
        return f"plain HTTP to {target_peer}, which is not this machine"
    return None


class PeerConnection(http.client.HTTPConnection):
    """Plain HTTP; ``admit(peer)`` runs after each TCP connect and raises to refuse it."""

    def __init__(self, netloc: str, timeout: float, admit: Admit) -> None:
        super().__init__(netloc, timeout=timeout)
        self.peer = ""
        self._admit = admit

    def connect(self) -> None:
        super().connect()
        try:
            self.peer = peer_of(self.sock)
            self._admit(self.peer)
        except BaseException:
            self.close()
            raise


class PeerTLSConnection(http.client.HTTPSConnection):
    """TLS whose context is chosen after the TCP connect from the peer address:
    ``choose(peer)`` returns it (or raises to refuse the peer)."""

    def __init__(self, netloc: str, timeout: float, default: ssl.SSLContext, choose: ChooseContext) -> None:
        super().__init__(netloc, timeout=timeout, context=default)
        self.peer = ""
        self._choose = choose
        self._tls_name = ""  # the host behind a proxy's tunnel, whose certificate counts

    def set_tunnel(self, host: str, port: int | None = None, headers: Mapping[str, str] | None = None) -> None:
        super().set_tunnel(host, port, headers)
        self._tls_name = split_host_port(host)[0]

    def connect(self) -> None:
        # HTTPSConnection.connect would wrap the socket with the context fixed at creation;
        # the TCP part (and a proxy tunnel, if any) is HTTPConnection's.
        http.client.HTTPConnection.connect(self)
        try:
            self.peer = peer_of(self.sock)
            context = self._choose(self.peer)
            self.sock = context.wrap_socket(self.sock, server_hostname=self._tls_name or self.host)
        except BaseException:
            self.close()
            raise


Connection = PeerConnection | PeerTLSConnection


class RedirectRefused(StrataError):
    """A download was redirected across the edge of this machine (``redirect_refusal``)."""

    def __init__(self, origin: str, target: str, why: str) -> None:
        super().__init__(f"{origin} redirected to {target}, {why}; not following it")
        self.origin = origin
        self.target = target
        self.why = why


class _Hops:
    """The addresses one download went through, checked hop by hop as each connects."""

    def __init__(self) -> None:
        self.previous: tuple[str, str] | None = None  # (netloc, peer) of the last hop

    def admit(self, url: str, peer: str) -> None:
        parts = urlsplit(url)
        if self.previous is not None:
            netloc, previous_peer = self.previous
            why = redirect_refusal(previous_peer, parts.scheme, peer)
            if why:
                raise RedirectRefused(netloc, url, why)
        self.previous = (parts.netloc, peer)


class _PeerHTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, hops: _Hops) -> None:
        super().__init__()
        self._hops = hops

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        url = req.full_url

        def connection(host: str, /, *, timeout: float = 30.0, **_: Any) -> http.client.HTTPConnection:
            return PeerConnection(host, timeout, lambda peer: self._hops.admit(url, peer))

        return self.do_open(connection, req)


class _PeerHTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, hops: _Hops) -> None:
        super().__init__()
        self._hops = hops
        self._verified = ssl.create_default_context()

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        url = req.full_url

        def choose(peer: str) -> ssl.SSLContext:
            self._hops.admit(url, peer)
            return self._verified

        def connection(host: str, /, *, timeout: float = 30.0, **_: Any) -> http.client.HTTPConnection:
            return PeerTLSConnection(host, timeout, self._verified, choose)

        return self.do_open(connection, req)


def open_url(url: str, timeout: float) -> http.client.HTTPResponse:
    """GET ``url`` as ``urllib`` does (proxies from the environment, its redirect limits,
    verified certificates), except that a redirect across the edge of this machine raises
    ``RedirectRefused`` before anything is sent to its target."""
    hops = _Hops()
    opener = urllib.request.build_opener(_PeerHTTPHandler(hops), _PeerHTTPSHandler(hops))
    response: http.client.HTTPResponse = opener.open(url, timeout=timeout)
    return response
