"""``ADD http://…`` and redirects (issue 13): followed between hosts on the same side of
this machine's edge, refused across it, judged by the addresses connected to. A server
bound to this machine's non-loopback address stands for "a host elsewhere"; no traffic
leaves the machine. Through the real ``strata build``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from explorer.api import Strata
from tests.fixtures import run_strata
from tests.registry.hostile_servers import ScriptedHandler, non_loopback_address, serving

PAYLOAD = b"fetched over http\n"


def serve_file(handler: ScriptedHandler) -> None:
    handler.send(200, PAYLOAD, {"Content-Type": "application/octet-stream"})


def redirect_to(url: str) -> Callable[[ScriptedHandler], None]:
    def answer(handler: ScriptedHandler) -> None:
        handler.send(302, headers={"Location": url})

    return answer


@pytest.fixture
def ctx(tmp_path: Path) -> Path:
    path = tmp_path / "ctx"
    path.mkdir()
    return path


def build(ctx: Path, url: str) -> tuple[int, list[str]]:
    """``ADD url /fetched`` on scratch; the exit status and the error lines."""
    (ctx / "Dockerfile").write_text(f"FROM scratch\nADD {url} /fetched\n")
    proc = run_strata("build", "-q", "-t", "fetched:1", ctx)
    return proc.returncode, [line for line in proc.stderr.splitlines() if not line.startswith("strata: warning:")]


def fetched(root: Path) -> list[tuple[str, int]]:
    app = Strata(root)
    try:
        return [(h.entry.path, h.entry.size) for h in app.image_view("fetched:1").walk() if h.entry.path == "/fetched"]
    finally:
        app.close()


def test_a_redirect_to_another_loopback_host_is_followed(strata_root: Path, ctx: Path) -> None:
    with serving(serve_file, "127.0.0.2") as mirror, serving(redirect_to(f"http://{mirror.address}/file")) as first:
        status, errors = build(ctx, f"{first.url}/file")
    assert (status, errors) == (0, [])
    assert [s.path for s in mirror.seen] == ["/file"]
    assert fetched(strata_root) == [("/fetched", len(PAYLOAD))]


def test_a_file_elsewhere_is_fetched_as_before(strata_root: Path, ctx: Path) -> None:
    with serving(serve_file, non_loopback_address()) as elsewhere:
        status, errors = build(ctx, f"{elsewhere.url}/file")
    assert (status, errors) == (0, [])
    assert fetched(strata_root) == [("/fetched", len(PAYLOAD))]


def test_a_redirect_from_this_machine_to_plain_http_elsewhere_is_one_error(strata_root: Path, ctx: Path) -> None:
    outside = non_loopback_address()
    with serving(serve_file, outside) as elsewhere, serving(redirect_to(f"{elsewhere.url}/file")) as local:
        status, errors = build(ctx, f"{local.url}/file")
    assert status == 1
    assert errors == [
        f"Error: Dockerfile:2: ADD {local.url}/file: {local.address} redirected to {elsewhere.url}/file, plain HTTP "
        f"to {outside}, which is not this machine; not following it; if you trust it, download the file into the "
        "build context and ADD it from there"
    ]
    assert elsewhere.seen == []


def test_a_redirect_from_elsewhere_into_this_machine_is_one_error(strata_root: Path, ctx: Path) -> None:
    """A server out there must not make a build read this machine's own services."""
    with (
        serving(serve_file, "127.0.0.1") as local,
        serving(redirect_to(f"{local.url}/secret"), non_loopback_address()) as elsewhere,
    ):
        status, errors = build(ctx, f"{elsewhere.url}/file")
    assert status == 1
    assert errors == [
        f"Error: Dockerfile:2: ADD {elsewhere.url}/file: {elsewhere.address} redirected to {local.url}/secret, an "
        "address on this machine (127.0.0.1) that a host elsewhere may not send Strata to; not following it; if "
        "you trust it, download the file into the build context and ADD it from there"
    ]
    assert local.seen == []
