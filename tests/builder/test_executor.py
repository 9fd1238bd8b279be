"""Builds end to end, in process: the cache, its reasons, and what lands in the image.

Steps without RUN need nothing but the store; tests with RUN need user namespaces
(``require_userns``) and the static busybox the test image is made of.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from explorer.api import Strata
from explorer.builder import checksum as checksum_module
from explorer.builder.events import BuildEvent
from explorer.errors import BuildError, Cancelled, DockerfileError
from tests.capabilities import require_userns
from tests.fixtures.images import BUSYBOX_TAG
from tests.fixtures.layers import exported_diff_id

FROM = f"FROM {BUSYBOX_TAG}\n"


@pytest.fixture(autouse=True)
def calm(monkeypatch: pytest.MonkeyPatch) -> None:
    """Files written by a test a moment ago may be trusted by the stat cache."""
    monkeypatch.setattr(checksum_module, "RACY_NS", 0)


@pytest.fixture
def app(tmp_path: Path, busybox_rootfs_tar: Path) -> Iterator[Strata]:
    strata = Strata(tmp_path / "store")
    strata.import_rootfs(str(busybox_rootfs_tar), BUSYBOX_TAG)
    yield strata
    strata.close()


@pytest.fixture
def ctx(tmp_path: Path) -> Path:
    path = tmp_path / "ctx"
    path.mkdir()
    (path / "a.txt").write_text("alpha\n")
    (path / "b.txt").write_text("beta\n")
    (path / "dir" / "sub").mkdir(parents=True)
    (path / "dir" / "one.txt").write_text("1\n")
    (path / "dir" / "sub" / "two.txt").write_text("2\n")
    return path


class Run:
    def __init__(self, events: list[BuildEvent], result: Any) -> None:
        self.events = events
        self.result = result

    def steps(self, status: str) -> list[int]:
        return [e.step for e in self.events if e.status == status and e.step]

    def reason(self, step: int) -> str:
        return next(e.reason or "" for e in self.events if e.step == step and e.status == "running")

    def output(self) -> list[str]:
        return [e.output or "" for e in self.events if e.status == "output"]


def build(app: Strata, ctx: Path, text: str | None = None, name: str = "Dockerfile", **kw: Any) -> Run:
    if text is not None:
        (ctx / name).write_text(text)
    events: list[BuildEvent] = []
    dockerfile = str(ctx / name) if name != "Dockerfile" else None
    result = app.build(str(ctx), dockerfile=dockerfile, on_event=events.append, **kw)
    return Run(events, result)


def listing(app: Strata, image: str, under: str = "/") -> dict[str, tuple[str, int, int, int]]:
    return {e.path: (e.type, e.mode, e.uid, e.gid) for e in app.ls(image, under, recursive=True)}


def cache_rows(app: Strata) -> int:
    row = app.store.meta.one("SELECT COUNT(*) FROM build_cache")
    return int(row[0]) if row else 0


# --- without containers ---------------------------------------------------------------------


def test_copy_steps_hit_after_touch_and_miss_after_edit(app: Strata, ctx: Path) -> None:
    text = FROM + "COPY a.txt /app/\nCOPY dir /app/dir\nLABEL x=y\n"
    first = build(app, ctx, text, tags=["t:1"])
    assert first.steps("cached") == [1] and first.steps("done") == [2, 3, 4]
    assert first.reason(2) == "first build of this step"
    again = build(app, ctx, tags=["t:1"])
    assert again.steps("cached") == [1, 2, 3, 4]
    assert again.result.image_id == first.result.image_id  # same config bytes: same image
    stamp = time.time() - 100
    os.utime(ctx / "a.txt", (stamp, stamp))
    assert build(app, ctx).steps("cached") == [1, 2, 3, 4]
    (ctx / "dir" / "sub" / "two.txt").write_text("zwei\n")
    edited = build(app, ctx)
    assert edited.steps("cached") == [1, 2]
    assert edited.reason(3) == "file changed: dir/sub/two.txt"
    assert edited.reason(4).startswith("parent changed")


def test_ignored_files_change_nothing(app: Strata, ctx: Path) -> None:
    (ctx / ".dockerignore").write_text("b.txt\n")
    build(app, ctx, FROM + "COPY . /ctx/\n")
    (ctx / "b.txt").write_text("edited, but ignored\n")
    assert build(app, ctx).steps("cached") == [1, 2]
    (ctx / "new.txt").write_text("new\n")
    run = build(app, ctx)
    assert run.steps("done") == [2] and run.reason(2) == "file changed: new.txt (new)"


def test_changed_arg_misses_at_its_first_use(app: Strata, ctx: Path) -> None:
    text = FROM + "ARG DIR=one\nENV KEEP=1\nCOPY a.txt /$DIR/\nLABEL after=1\n"
    build(app, ctx, text)
    run = build(app, ctx, build_args={"DIR": "two"})
    assert run.steps("cached") == [1, 2, 3]
    assert run.reason(4) == "ARG DIR changed"
    assert "/two/a.txt" in listing(app, run.result.image_id)


def test_copy_semantics_owners_modes_links(app: Strata, ctx: Path) -> None:
    os.chmod(ctx / "dir" / "sub", 0o750)
    os.link(ctx / "dir" / "one.txt", ctx / "dir" / "hard.txt")
    os.symlink("one.txt", ctx / "dir" / "link")
    text = FROM + (
        "COPY dir /copied/\n"
        "COPY --chown=app:app dir /owned\n"
        "COPY --chown=1000 a.txt /newparent/deep/\n"
        "COPY *.txt /multi/\n"
        "WORKDIR /made/here\n"
        "COPY a.txt rel.txt\n"
        "ARG D=/argdest\nENV SUB=env\nCOPY b.txt ${D}/$SUB/\n"
    )
    image = build(app, ctx, text).result.image_id
    files = listing(app, image)
    assert files["/copied"] == ("dir", 0o755, 0, 0)
    assert files["/copied/sub"] == ("dir", 0o750, 0, 0)
    assert files["/copied/hard.txt"][0] == "hardlink" or files["/copied/one.txt"][0] == "hardlink"
    assert files["/copied/link"][0] == "symlink"
    assert files["/owned"] == ("dir", 0o755, 1000, 1000)
    assert files["/owned/sub/two.txt"][2:] == (1000, 1000)
    assert files["/newparent"] == ("dir", 0o755, 1000, 1000)  # missing parents of a file: --chown owner
    assert set(p for p in files if p.startswith("/multi/")) == {"/multi/a.txt", "/multi/b.txt"}
    assert files["/made/here"] == ("dir", 0o755, 0, 0) and "/made/here/rel.txt" in files
    assert "/argdest/env/b.txt" in files
    config = app.image(image).config["config"]
    assert config["WorkingDir"] == "/made/here" and "SUB=env" in config["Env"]


def test_add_extracts_local_archives(app: Strata, ctx: Path) -> None:
    import tarfile

    with tarfile.open(ctx / "a.tar.gz", "w:gz") as tar:
        tar.add(ctx / "dir", arcname="inside")
        info = tarfile.TarInfo("owned.txt")
        info.uid, info.gid, info.mode, info.size = 42, 43, 0o640, 0
        tar.addfile(info)
    image = build(app, ctx, FROM + "ADD a.tar.gz /x/\nADD a.txt /y/\n").result.image_id
    files = listing(app, image)
    assert files["/x/inside/sub/two.txt"][0] == "file"
    assert files["/x/owned.txt"] == ("file", 0o640, 42, 43)
    assert files["/y/a.txt"][0] == "file"


def test_multi_stage_copy_from_and_target(app: Strata, ctx: Path) -> None:
    text = (
        f"FROM {BUSYBOX_TAG} AS base\nCOPY dir /src/\n"
        "FROM base AS broken\nCOPY missing-but-unneeded /x\n"
        f"FROM {BUSYBOX_TAG} AS final\nCOPY --from=base /src /app\nCOPY --from=0 /src/one.txt /single\n"
    )
    run = build(app, ctx, text)  # the broken stage is needed by nothing: not built, not checked
    assert {e.stage for e in run.events if e.step} == {"base", "final"}
    with pytest.raises(DockerfileError, match=r"Dockerfile:4: .*missing-but-unneeded"):
        build(app, ctx, target="broken")
    files = listing(app, run.result.image_id)
    assert files["/app/sub/two.txt"][0] == "file" and files["/single"][0] == "file"
    base = build(app, ctx, target="base")
    assert base.steps("cached") == [1, 2]


def test_bad_input_stops_before_the_store_is_touched(app: Strata, ctx: Path, tmp_path: Path) -> None:
    os.symlink("/etc/passwd", ctx / "escape")
    layers = len(app.store.layers.all())
    cases = {
        "FROM x\nFOO bar\n": "Dockerfile:2: unknown instruction: FOO",
        FROM + "COPY\n": "Dockerfile:2: COPY requires",
        FROM + "COPY --nope=1 a.txt /\n": "Dockerfile:2: unknown flag for COPY: --nope",
        FROM + "LABEL a=b\nCOPY --from=nowhere /x /y\n": "Dockerfile:3: COPY --from=nowhere: no stage or image",
        # As in BuildKit the context is a root: ../x is x, and /etc/passwd is the context's.
        FROM + "COPY ../x /\n": "Dockerfile:2: COPY failed: file not found in build context or excluded by "
        ".dockerignore: ../x",
        FROM + "RUN true\nCOPY escape /\n": "Dockerfile:3: COPY failed: file not found in build context or excluded "
        "by .dockerignore: escape",
        "FROM localhost:1/nosuch/image\n": "Dockerfile:1: FROM localhost:1/nosuch/image: cannot talk to registry",
        FROM + "COPY a.txt b.txt /no-slash\n": "Dockerfile:2: When using COPY with more than one source file",
    }
    for text, message in cases.items():
        with pytest.raises(DockerfileError) as err:
            build(app, ctx, text)
        assert str(err.value).startswith(message), (text, str(err.value))
    with pytest.raises(DockerfileError, match="target stage"):
        build(app, ctx, FROM, target="nope")
    assert len(app.store.layers.all()) == layers
    assert not list(app.store.tmp.iterdir())


def test_events_have_the_json_shape(app: Strata, ctx: Path) -> None:
    run = build(app, ctx, FROM + "COPY a.txt /\n", tags=["shape:1"])
    step = next(e for e in run.events if e.status == "done")
    payload = step.to_json()
    for key in ("step", "total", "stage", "instruction", "line", "status", "duration_s", "reason", "layer"):
        assert key in payload
    assert payload["instruction"] == "COPY a.txt /" and payload["line"] == 2 and payload["total"] == 2
    final = run.events[-1].to_json()
    assert final == {"status": "done", "image": run.result.image_id, "tags": ["shape:1"]}


def test_no_cache_and_prune(app: Strata, ctx: Path) -> None:
    build(app, ctx, FROM + "COPY a.txt /\n", tags=["p:1"])
    assert cache_rows(app) == 1
    (ctx / "a.txt").write_text("changed\n")
    build(app, ctx, tags=["p:2"])
    app.rmi(["p:1"])
    prune = app.builder_prune
    report = prune()
    assert report.entries == 1 and len(report.layers) == 1  # the layer only p:1's cache kept
    assert prune(all=True).entries == 1
    assert cache_rows(app) == 0
    assert build(app, ctx).steps("done") == [2]
    assert build(app, ctx, no_cache=True).steps("done") == [2]


# --- with RUN ------------------------------------------------------------------------------


@pytest.fixture
def runs(app: Strata) -> Strata:
    require_userns()
    return app


def test_two_dockerfiles_share_their_first_steps(runs: Strata, ctx: Path) -> None:
    shared = FROM + "RUN echo one > /one\nRUN echo two > /two\n"
    first = build(runs, ctx, shared + "COPY a.txt /app/\nRUN cat /app/*\n", name="A.Dockerfile", tags=["a:1"])
    assert first.output() == ["alpha"]
    second = build(runs, ctx, shared + "COPY b.txt /app/\nRUN cat /app/*\n", name="B.Dockerfile", tags=["b:1"])
    assert second.steps("cached") == [1, 2, 3]
    assert second.steps("done") == [4, 5]
    assert second.reason(4).startswith("instruction changed")
    assert second.reason(5).startswith("parent changed")
    assert second.output() == ["beta"]
    a, b = (runs.store.images.layers(runs.image(n)) for n in ("a:1", "b:1"))
    assert [layer.id for layer in a[:3]] == [layer.id for layer in b[:3]]  # one copy on disk
    assert a[3].id != b[3].id and a[3].parent == b[3].parent
    trunk = runs.layer_tree()
    assert len(trunk) == 1
    node = trunk[0]
    while len(node.children) == 1:
        node = node.children[0]
    assert len(node.children) == 2


def test_run_layers_hold_whiteouts_links_and_owners(runs: Strata, ctx: Path) -> None:
    text = FROM + (
        "RUN mkdir -p /data/gone /data/replaced && echo x > /data/lower.txt && echo y > /data/replaced/old\n"
        "RUN rm /data/lower.txt && rm -rf /data/gone /data/replaced && mkdir /data/replaced"
        " && echo new > /data/replaced/new\n"
        "RUN echo t > /t && ln /t /h && ln -s /t /s\n"
        "USER app\n"
        "RUN touch /tmp/by-app\n"
    )
    image = build(runs, ctx, text).result.image_id
    files = listing(runs, image)
    assert "/data/lower.txt" not in files and "/data/gone" not in files
    assert [p for p in files if p.startswith("/data/replaced")] == ["/data/replaced", "/data/replaced/new"]
    assert files["/h"][0] == "file" and files["/t"][0] == "hardlink" and files["/s"][0] == "symlink"
    if os.geteuid() == 0:  # rootless without subordinate ids runs USER app as root
        assert files["/tmp/by-app"][2:] == (1000, 1000)


def test_failing_run_stops_with_its_exit_code_and_leaves_no_layer(runs: Strata, ctx: Path) -> None:
    good = FROM + "COPY a.txt /\nRUN echo fine\n"
    build(runs, ctx, good)
    layers = {layer.id for layer in runs.store.layers.all()}
    with pytest.raises(BuildError) as err:
        build(runs, ctx, good + "RUN echo about to fail && echo on stderr >&2 && exit 3\n")
    assert err.value.exit_status == 3 and err.value.line == 4
    assert "exit code: 3" in str(err.value)
    assert {layer.id for layer in runs.store.layers.all()} == layers
    assert not [p for p in runs.store.tmp.iterdir() if p.name.startswith(("layer-", "stage-"))]
    fixed = build(runs, ctx, good + "RUN echo now fine\n")
    assert fixed.steps("cached") == [1, 2, 3]


def test_failing_run_reports_output_events(runs: Strata, ctx: Path) -> None:
    events: list[BuildEvent] = []
    (ctx / "Dockerfile").write_text(FROM + "RUN echo out && echo err >&2 && exit 5\n")
    with pytest.raises(BuildError):
        runs.build(str(ctx), on_event=events.append)
    assert [e.output for e in events if e.status == "output"] == ["out", "err"]
    assert events[-1].status == "error" and events[-1].exit_code == 5 and events[-1].line == 2


def test_arg_changes_the_next_run(runs: Strata, ctx: Path) -> None:
    text = FROM + "ARG V=1\nLABEL unrelated=1\nRUN echo $V > /v\n"
    build(runs, ctx, text)
    run = build(runs, ctx, build_args={"V": "2"})
    assert run.steps("cached") == [1, 2, 3] and run.reason(4) == "ARG V changed"
    assert build(runs, ctx, build_args={"V": "2", "HTTP_PROXY": "http://proxy:1"}).steps("cached") == [1, 2, 3, 4]


def test_heredocs_mounts_and_shell(runs: Strata, ctx: Path) -> None:
    text = FROM + (
        "RUN <<EOF\necho from heredoc > /h1\necho second line >> /h1\nEOF\n"
        "COPY <<EOT /etc/greeting\nhello $WHO\nEOT\n"
        "RUN --mount=type=bind,source=dir,target=/mnt cat /mnt/one.txt > /from-bind\n"
        "RUN --mount=type=cache,target=/cache echo x >> /cache/log && wc -l < /cache/log > /count\n"
        'SHELL ["/bin/sh", "-ec"]\n'
        "RUN test -f /h1\n"
    )
    run = build(runs, ctx, text, build_args={})
    files = listing(runs, run.result.image_id)
    assert {"/h1", "/etc/greeting", "/from-bind", "/count"} <= set(files)
    assert "/mnt" not in files and "/cache" not in files
    view = runs.image_view(run.result.image_id)
    assert view.open("/from-bind").read() == b"1\n"
    with view.open("/h1") as fh:
        assert fh.read() == b"from heredoc\nsecond line\n"
    again = build(runs, ctx, no_cache=True)
    with runs.image_view(again.result.image_id).open("/count") as fh:
        assert fh.read().strip() == b"2"  # the cache mount outlived the first build


def test_a_bind_mount_from_a_stage_sees_its_files_links_and_modes(runs: Strata, ctx: Path) -> None:
    """RUN --mount=type=bind,from=STAGE goes through the store's one export: contents, a
    symlink kept as a link (never followed on the host), modes as the stage has them."""
    text = f"FROM {BUSYBOX_TAG} AS made\n" + (
        "RUN mkdir -p /out/sub && echo data > /out/sub/file && chmod 4750 /out/sub/file"
        " && ln -s /etc/passwd /out/link && ln /out/sub/file /out/again\n"
        f"FROM {BUSYBOX_TAG}\n"
        "RUN --mount=type=bind,from=made,source=/out,target=/in"
        " cat /in/sub/file > /got && readlink /in/link > /link"
        " && stat -c %a /in/sub/file > /mode && cat /in/again > /again\n"
    )
    run = build(runs, ctx, text)
    view = runs.image_view(run.result.image_id)
    got = {name: view.open(name).read() for name in ("/got", "/link", "/mode", "/again")}
    assert got == {"/got": b"data\n", "/link": b"/etc/passwd\n", "/mode": b"4750\n", "/again": b"data\n"}
    assert "/in" not in listing(runs, run.result.image_id)


def test_cancel_kills_a_running_step(runs: Strata, ctx: Path) -> None:
    cancel = threading.Event()
    timer = threading.Timer(0.5, cancel.set)
    timer.start()
    (ctx / "Dockerfile").write_text(FROM + "RUN sleep 30\n")
    started = time.monotonic()
    with pytest.raises(Cancelled):
        runs.build(str(ctx), cancel=cancel)
    timer.cancel()
    assert time.monotonic() - started < 10


def test_copy_from_keeps_owners_unless_chown(runs: Strata, ctx: Path) -> None:
    """moby's testBuildPreserveOwnership, checked through the index."""
    text = FROM.replace("\n", " AS source\n") + (
        "RUN touch /file && chown 100:200 /file && mkdir -p /dir/subdir && touch /dir/subdir/nested"
        " && chown 100:200 /dir && chown 101:201 /dir/subdir && chown 102:202 /dir/subdir/nested\n"
        f"FROM {BUSYBOX_TAG} AS base\n"
        "RUN mkdir -p /existing/sub && chown 500:600 /existing && chown 501:601 /existing/sub\n"
        "FROM base AS kept\n"
        "COPY --from=source /file .\nCOPY --from=source /dir /dir\nCOPY --from=source /dir/. /existing\n"
        "FROM base AS chowned\n"
        "COPY --from=source --chown=300:400 /file .\nCOPY --from=source --chown=300:400 /dir /dir\n"
        "COPY --from=source --chown=300:400 /dir/. /existing\n"
    )
    kept = listing(runs, build(runs, ctx, text, target="kept").result.image_id)
    assert {
        p: kept[p][2:]
        for p in (
            "/file",
            "/dir",
            "/dir/subdir",
            "/dir/subdir/nested",
            "/existing",
            "/existing/sub",
            "/existing/subdir",
            "/existing/subdir/nested",
        )
    } == {
        "/file": (100, 200),
        "/dir": (0, 0),
        "/dir/subdir": (101, 201),
        "/dir/subdir/nested": (102, 202),
        "/existing": (500, 600),
        "/existing/sub": (501, 601),
        "/existing/subdir": (101, 201),
        "/existing/subdir/nested": (102, 202),
    }
    chowned = listing(runs, build(runs, ctx, target="chowned").result.image_id)
    assert {p: chowned[p][2:] for p in ("/file", "/dir", "/dir/subdir", "/existing", "/existing/subdir")} == {
        "/file": (300, 400),
        "/dir": (300, 400),
        "/dir/subdir": (300, 400),
        "/existing": (500, 600),
        "/existing/subdir": (300, 400),
    }


def test_config_instructions_shape_the_image_config(app: Strata, ctx: Path) -> None:
    text = FROM + (
        'ENV A=1 B="two words"\nLABEL version=1.0 "with space"=yes\nEXPOSE 80 53/udp\nVOLUME ["/data"]\n'
        "USER app:app\nWORKDIR /srv\nWORKDIR sub\nSTOPSIGNAL SIGTERM\n"
        "HEALTHCHECK --interval=30s --retries=3 CMD wget -q localhost\n"
        'SHELL ["/bin/sh", "-xc"]\nCMD echo hi\nENTRYPOINT ["/bin/sh"]\nONBUILD RUN echo triggered\n'
        "MAINTAINER someone\n"
    )
    image = app.image(build(app, ctx, text).result.image_id)
    c = image.config["config"]
    assert "A=1" in c["Env"] and "B=two words" in c["Env"]
    assert c["Labels"] == {"version": "1.0", "with space": "yes"}
    assert c["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}} and c["Volumes"] == {"/data": {}}
    assert c["User"] == "app:app" and c["WorkingDir"] == "/srv/sub" and c["StopSignal"] == "SIGTERM"
    assert c["Healthcheck"] == {"Test": ["CMD-SHELL", "wget -q localhost"], "Interval": 30_000_000_000, "Retries": 3}
    assert c["Shell"] == ["/bin/sh", "-xc"] and c["Cmd"] == ["/bin/sh", "-xc", "echo hi"]  # CMD set here stays
    assert c["Entrypoint"] == ["/bin/sh"] and c["OnBuild"] == ["RUN echo triggered"]
    assert image.config["author"] == "someone"
    history = image.config["history"]
    assert history[-1]["created_by"] == "MAINTAINER someone" and history[-1]["empty_layer"] is True
    assert len(image.diff_ids) == len(app.store.images.layers(image))


def test_add_of_a_url_fails_clearly_offline(app: Strata, ctx: Path) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(DockerfileError) as err:
        build(app, ctx, FROM + f"ADD http://127.0.0.1:{port}/file.tar /\n")
    assert str(err.value).startswith(f"Dockerfile:2: ADD http://127.0.0.1:{port}/file.tar: cannot download it")


def test_onbuild_triggers_run_in_the_child(runs: Strata, ctx: Path) -> None:
    build(runs, ctx, FROM + "ONBUILD COPY a.txt /from-trigger\nONBUILD RUN echo ran > /ran\n", tags=["parent:1"])
    run = build(runs, ctx, "FROM parent:1\nLABEL child=1\n", tags=["child:1"])
    assert [e.instruction for e in run.events if e.status == "done"] == [
        "ONBUILD COPY a.txt /from-trigger",
        "ONBUILD RUN echo ran > /ran",
        "LABEL child=1",
    ]
    files = listing(runs, "child:1")
    assert "/from-trigger" in files and "/ran" in files
    assert not runs.image("child:1").config["config"].get("OnBuild")


# --- a rebuild that shares most of its layer with the last one ----------------------------------


def copy_layer(app: Strata, image: str) -> str:
    """The id of the image's top COPY layer."""
    return app.store.layers.chain(app.image(image).top_layer)[-1].id


def test_no_cache_rebuild_indexes_real_digests(app: Strata, ctx: Path) -> None:
    """--no-cache with a remembered tree sum used to skip the digests: the index said every
    file was empty."""
    import xxhash

    (ctx / ".dockerignore").write_text("Dockerfile*\n")
    build(app, ctx, FROM + "COPY . /ctx/\n")
    # The same sources (a known tree sum) into a new layer:
    again = build(app, ctx, FROM + "COPY . /elsewhere/\n", name="Dockerfile.other", no_cache=True)
    entries = {e.path: e for e in app.store.layers.entries(copy_layer(app, again.result.image_id))}
    assert entries["/elsewhere/a.txt"].digest == xxhash.xxh3_128_hexdigest(b"alpha\n")


def test_one_changed_file_links_the_rest_and_hashes_only_the_tail(
    app: Strata, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:

    from explorer.store import layertar

    monkeypatch.setattr(layertar, "_MIN_SPACING", 4096)  # checkpoints in a small layer too
    ctx = tmp_path / "many"
    for i in range(60):
        (ctx / f"d{i % 3}").mkdir(parents=True, exist_ok=True)
        (ctx / f"d{i % 3}" / f"f{i:02d}").write_bytes(os.urandom(3000 + i))
    first = build(app, ctx, FROM + "COPY . /src\n")
    before = copy_layer(app, first.result.image_id)
    (ctx / "d2" / "f41").write_bytes(b"changed")
    payloads: list[str] = []
    real_payload = layertar._Stream.payload

    def counting(self: Any, rel: str, size: int) -> None:
        payloads.append(rel)
        real_payload(self, rel, size)

    monkeypatch.setattr(layertar._Stream, "payload", counting)
    second = build(app, ctx)
    after = copy_layer(app, second.result.image_id)
    assert second.reason(2) == "file changed: d2/f41"
    old_dir, new_dir = app.store.layers.diff_dir(before), app.store.layers.diff_dir(after)
    assert (new_dir / "src/d0/f00").stat().st_ino == (old_dir / "src/d0/f00").stat().st_ino
    assert (new_dir / "src/d2/f41").read_bytes() == b"changed"
    assert payloads and "src/d0/f00" not in payloads and len(payloads) < 30  # only the tail was read
    layer = app.store.layers.get(after)
    monkeypatch.setattr(layertar._Stream, "payload", real_payload)
    recomputed, size = layertar.write_layer_tar(str(new_dir), app.store.layers.entries(after), None)
    assert (recomputed, size) == (layer.diff_id, layer.size)
    assert exported_diff_id(app.store, after) == layer.diff_id


def test_a_directory_replaced_mid_copy_does_not_swallow_links(app: Strata, tmp_path: Path) -> None:
    """The writer links through cached directory fds; a directory removed and made again
    in the same ADD (an archive member replaces it, another makes it again: a plain copy
    may not change a path's type) still gets every file linked into it, not into the
    removed one."""
    import io
    import tarfile

    def archive(path: Path, kind: bytes) -> None:
        with tarfile.open(path, "w") as tar:
            info = tarfile.TarInfo("x")
            info.type = tarfile.DIRTYPE if kind == b"dir" else tarfile.REGTYPE
            info.mode, info.size = (0o755, 0) if kind == b"dir" else (0o644, 4)
            tar.addfile(info, io.BytesIO(kind) if kind != b"dir" else None)

    ctx = tmp_path / "swap"
    for part, rel in (("a", "x/f"), ("c", "x/g"), ("c", "other")):
        path = ctx / part / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(rel)
    archive(ctx / "file.tar", b"file")
    archive(ctx / "dir.tar", b"dir")
    build(app, ctx, FROM + "ADD a file.tar dir.tar c /dst/\n")
    (ctx / "c" / "other").write_text("changed, so the step runs again")
    image = build(app, ctx).result.image_id
    view = app.image_view(image)
    hit = view.lookup("/dst/x/g")
    assert hit is not None and hit.entry.type == "file"
    assert view.lookup("/dst/x/f") is None
    layer = app.store.layers.diff_dir(copy_layer(app, image))
    assert (layer / "dst/x/g").read_text() == "x/g"


def test_a_stored_base_image_needs_no_registry_code(app: Strata, ctx: Path) -> None:
    import subprocess
    import sys

    (ctx / "Dockerfile").write_text(FROM + "COPY a.txt /\n")
    code = (
        "import sys\n"
        "from explorer.api import Strata\n"
        f"Strata({str(app.root)!r}).build({str(ctx)!r})\n"
        "print(sorted(m for m in sys.modules if m.startswith('explorer.registry')))\n"
    )
    app.close()
    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(repo)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "[]"
