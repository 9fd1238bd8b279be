"""Running a build: Dockerfile → stages → steps → cached or executed layers → an image.

A build has two passes. The first (``_prepare``) reads the Dockerfile, works out every
step of every stage the target needs (ARGs, ENV, WORKDIR and all expansions are known
before anything runs) and checks everything that can be checked: unknown instructions,
bad flags, undefined stages and images, COPY sources that are missing or lead outside the
context. It writes nothing, so bad input stops the build before the store is touched.

The second pass walks the steps. Each step gets a cache key (see ``cache``); a hit reuses
the layer and image config recorded for that key, a miss runs the step and records it
with the reason it missed. RUN runs in a temporary rootless container whose overlay
upperdir is the new layer's staging directory; COPY/ADD write straight into a staging
directory (``copy``); every other instruction only changes the image config. Progress is
reported as ``BuildEvent`` objects through a callback: this module never prints.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import os
import posixpath
import secrets
import select
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..bulk import collector_paused
from ..errors import (
    BuildError,
    Cancelled,
    CloneFailed,
    DockerfileError,
    ImageNotFound,
    InvalidArgument,
    StoreFull,
    StrataError,
)
from ..fsutil import rmtree
from ..store.images import Image, canonical_json, host_architecture, new_config, now_rfc3339
from ..store.index import DIR, FILE, FileEntry, normalize
from ..store.layers import Predecessor
from ..store.union import UnionView
from .cache import BuildCache, CacheEntry, base_key, mounts_dir, step_key
from .checksum import StatCache, checksum, context_records, fingerprints, index_records, record, stat_snapshot
from .context import BuildContext, ContextEntry, SourceMatch
from .dockerignore import load_dockerignore
from .events import CACHED, DONE, ERROR, FINISHED, OUTPUT, RUNNING, BuildEvent, BuildResult
from .instructions import (
    AUTOMATIC_PLATFORM_ARGS,
    PREDEFINED_ARGS,
    Add,
    Arg,
    BuildPlan,
    Cmd,
    Copy,
    Entrypoint,
    Env,
    Expose,
    Healthcheck,
    Instruction,
    Label,
    Maintainer,
    Onbuild,
    Run,
    Shell,
    Stage,
    StopSignal,
    User,
    Volume,
    Workdir,
    parse_instruction,
    parse_stages,
)
from .parser import parse

if TYPE_CHECKING:
    from ..store.layers import Staging
    from ..store.linkclone import LinkClone
    from ..store.store import Store
    from .copy import CopyPlan, LayerWriter, Owner

EventSink = Callable[[BuildEvent], None]
DEFAULT_SHELL = ["/bin/sh", "-c"]
HEREDOC_SCRIPT = "/.strata-heredoc"
_URL_PREFIXES = ("http://", "https://")
# A COPY whose earlier result has at least this many paths starts from a hard-link clone
# of it (store.linkclone); smaller ones are written directly, linking unchanged files.
_CLONE_AT_LEAST = 256
# References ensure_image fetches from a local daemon (registry.daemon.TRANSPORTS).
DAEMON_PREFIXES = ("docker-daemon:", "podman:")


# --- the one place a base image is found ---------------------------------------------------


def find_base_image(store: Store, reference: str, line: int = 0, filename: str = "Dockerfile",
                    pull: bool = False) -> Image:
    """The image ``FROM reference`` builds on: from the store, pulled from its registry
    when missing (or always with ``--pull``)."""
    if not pull and not reference.startswith(DAEMON_PREFIXES):
        # The common case needs no registry code (its imports cost a tenth of a second).
        try:
            return store.images.resolve(reference)
        except StrataError:
            pass
    from ..registry.ensure import ensure_image

    try:
        return ensure_image(store, reference, pull)
    except ImageNotFound:
        raise DockerfileError(f"image {reference} not found locally and it names no registry to pull from",
                              line, filename) from None
    except StrataError as err:
        raise DockerfileError(f"FROM {reference}: {err}", line, filename) from None


def _raise_if_store_full(root: os.PathLike[str] | str, what: str) -> None:
    """A RUN that failed because the store's filesystem filled up is a full store, not a
    failing command: say so, as every other write into the store does."""
    try:
        fs = os.statvfs(root)
    except OSError:
        return
    if fs.f_bavail * fs.f_frsize < 64 * 1024:
        raise StoreFull(f"no space left on device for the store at {root} while running {what}; "
                        "free space and build again")


# --- options and plans ---------------------------------------------------------------------------


@dataclass
class BuildOptions:
    context_dir: str
    dockerfile: str | None = None  # path; default <context>/Dockerfile
    dockerfile_text: str | None = None  # given directly (``-f -``)
    tags: Sequence[str] = ()
    build_args: Mapping[str, str] = field(default_factory=dict)
    target: str | None = None
    no_cache: bool = False
    pull: bool = False
    network: str = "host"


@dataclass
class Step:
    """One instruction of one stage, with everything known before the build runs."""

    stage: Stage
    number: int  # 1-based within the stage; FROM is 1
    total: int
    instruction: Instruction  # as written
    expanded: Instruction  # variables expanded with the state before the step
    text: str  # as shown: the source line
    line: int
    used_args: dict[str, str]  # the build args this step's key depends on
    run_args: dict[str, str]  # build args a RUN sees in its environment
    env: list[str]  # image Env before the step
    config_before: dict[str, Any]
    config_after: dict[str, Any]
    sources: list[SourceMatch] = field(default_factory=list)  # context COPY/ADD sources
    from_ref: Stage | Image | None = None  # COPY --from
    mount_refs: dict[str, Stage | Image] = field(default_factory=dict)

    @property
    def stage_label(self) -> str:
        return self.stage.name or ""


@dataclass
class StagePlan:
    stage: Stage
    base: Stage | Image | None  # None for scratch
    steps: list[Step]


@dataclass
class Snapshot:
    """The image as of one step: its cache key, full config and top layer."""

    key: str
    config: dict[str, Any]
    top_layer: str | None
    base_image: str | None = None

    def raw(self) -> bytes:
        return canonical_json(self.config)


def _env_dict(env: Iterable[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in env:
        key, _, value = item.partition("=")
        out[key] = value
    return out


def _set_env(env: list[str], key: str, value: str) -> list[str]:
    out = [e for e in env if e.partition("=")[0] != key]
    out.append(f"{key}={value}")
    return out


def _canonical(instruction: Instruction) -> str:
    """The instruction's meaning as text: every field but where it was written."""

    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k not in ("line", "end_line", "source")}
        if isinstance(value, (list, tuple)):
            return [strip(v) for v in value]
        return value

    body = strip(dataclasses.asdict(instruction))
    return json.dumps([instruction.keyword, body], sort_keys=True, ensure_ascii=False)


def _automatic_args() -> dict[str, str]:
    arch = host_architecture()
    platform = f"linux/{arch}"
    values = {"PLATFORM": platform, "OS": "linux", "ARCH": arch, "VARIANT": ""}
    return {name: values[name.removeprefix("BUILD").removeprefix("TARGET")] for name in AUTOMATIC_PLATFORM_ARGS}


def _shell_form(config: Mapping[str, Any], command: Sequence[str], json_form: bool) -> list[str]:
    if json_form:
        return list(command)
    shell = list(config.get("Shell") or DEFAULT_SHELL)
    return [*shell, *command]


def _port(spec: str) -> str:
    return spec if "/" in spec else f"{spec}/tcp"


def _apply_config(c: dict[str, Any], ins: Instruction, state: _StageState) -> None:
    """What a config-changing instruction does to the container config ``c``."""
    if isinstance(ins, Env):
        env = list(c.get("Env") or [])
        for key, value in ins.pairs:
            env = _set_env(env, key, value)
        c["Env"] = env
    elif isinstance(ins, Label):
        labels = dict(c.get("Labels") or {})
        labels.update(dict(ins.pairs))
        c["Labels"] = labels
    elif isinstance(ins, Workdir):
        current = c.get("WorkingDir") or "/"
        c["WorkingDir"] = normalize(posixpath.join(current, ins.path))
    elif isinstance(ins, User):
        c["User"] = ins.user
    elif isinstance(ins, Expose):
        ports = dict(c.get("ExposedPorts") or {})
        for p in ins.ports:
            ports[_port(p)] = {}
        c["ExposedPorts"] = ports
    elif isinstance(ins, Volume):
        volumes = dict(c.get("Volumes") or {})
        for p in ins.paths:
            volumes[p] = {}
        c["Volumes"] = volumes
    elif isinstance(ins, Cmd):
        c["Cmd"] = _shell_form(c, ins.command, ins.json)
        state.cmd_set = True
    elif isinstance(ins, Entrypoint):
        c["Entrypoint"] = _shell_form(c, ins.command, ins.json) if ins.command is not None else None
        if not state.cmd_set:
            c["Cmd"] = None
    elif isinstance(ins, Shell):
        c["Shell"] = list(ins.shell)
    elif isinstance(ins, StopSignal):
        c["StopSignal"] = ins.signal
    elif isinstance(ins, Healthcheck):
        hc: dict[str, Any] = {"Test": list(ins.test)}
        durations: list[tuple[str, float | None]] = [
            ("Interval", ins.interval), ("Timeout", ins.timeout), ("StartPeriod", ins.start_period),
            ("StartInterval", ins.start_interval)]
        for name, seconds in durations:
            if seconds is not None:
                hc[name] = int(seconds * 1e9)
        if ins.retries is not None:
            hc["Retries"] = ins.retries
        c["Healthcheck"] = hc
    elif isinstance(ins, Onbuild):
        c["OnBuild"] = [*(c.get("OnBuild") or []), ins.expression]


@dataclass
class _HeadStart:
    """A COPY layer begun before its cache lookup (see ``Builder._begin_early``): a staging
    directory becoming a clone of the step's earlier layer. ``exits`` removes both."""

    step: Step
    exits: contextlib.ExitStack
    staging: Staging
    clone: LinkClone
    earlier: str
    base: dict[str, FileEntry]


@dataclass
class _StageState:
    """ARGs and flags that evolve through a stage while it is planned."""

    args: dict[str, str] = field(default_factory=dict)  # declared ARGs with a value
    predefined: dict[str, str] = field(default_factory=dict)  # proxy args given, not declared
    cmd_set: bool = False


# --- the builder -------------------------------------------------------------------------------------


class Builder:
    """One build. ``run`` does both passes and returns the image it made."""

    def __init__(self, store: Store, options: BuildOptions, on_event: EventSink | None = None,
                 cancel: threading.Event | None = None, driver: Callable[[], str] | None = None) -> None:
        self.store = store
        self.options = options
        self.emit: EventSink = on_event or (lambda _e: None)
        self.cancel = cancel
        self._driver_fn = driver
        self._driver: str | None = None
        self.filename = "Dockerfile"
        self.ctx: BuildContext | None = None
        self.plan: BuildPlan | None = None
        self.stage_plans: list[StagePlan] = []
        self.snapshots: dict[int, Snapshot] = {}
        self.vertex = 0
        self.steps_run = 0
        self.steps_cached = 0
        self._touched: list[str] = []
        self._stat_cache: StatCache | None = None
        self._digests: dict[str, str] = {}
        self._failed_step = False  # an error event naming the step was already sent
        self._cache: BuildCache | None = None
        self._scratch: list[Path] = []
        self._head_start: _HeadStart | None = None

    # --- entry point ---

    def run(self) -> BuildResult:
        try:
            self._prepare()
            return self._execute()
        except BaseException as err:
            if isinstance(err, StrataError) and not self._failed_step:
                line = err.line if isinstance(err, (DockerfileError, BuildError)) else 0
                self.emit(BuildEvent(ERROR, line=line, message=str(err),
                                     exit_code=err.exit_status if isinstance(err, BuildError) else None))
            raise
        finally:
            self._drop_head_start()
            for path in self._scratch:
                rmtree(path)
            if self._cache is not None:
                with contextlib.suppress(StrataError):
                    self._cache.touch(self._touched)
            if self._stat_cache is not None and self.ctx is not None:
                with contextlib.suppress(StrataError):
                    self._stat_cache.save(self.ctx.entries().keys() if self.ctx.fully_walked else None)

    # --- pass 1: read, plan, check ---

    def _read_dockerfile(self) -> str:
        opts = self.options
        if not os.path.isdir(opts.context_dir):
            raise InvalidArgument(f"build context {opts.context_dir}: no such directory")
        if opts.dockerfile_text is not None:
            return opts.dockerfile_text
        path = Path(opts.dockerfile) if opts.dockerfile else Path(opts.context_dir) / "Dockerfile"
        self.filename = path.name
        try:
            return path.read_text(encoding="utf-8", errors="surrogateescape")
        except FileNotFoundError:
            raise InvalidArgument(f"{path}: no such file; give the Dockerfile with -f") from None
        except IsADirectoryError:
            raise InvalidArgument(f"{path} is a directory, not a Dockerfile") from None
        except OSError as e:
            raise InvalidArgument(f"cannot read {path}: {e.strerror}") from None

    def _prepare(self) -> None:
        from ..store import reference

        for tag in self.options.tags:
            reference.parse(tag)
        text = self._read_dockerfile()
        parsed = parse(text, self.filename)
        plan = parse_stages(parsed)
        plan.filename = self.filename
        self.plan = plan
        args = dict(self.options.build_args)
        required = plan.required_stages(self.options.target, args)
        dockerfile_path = None
        if self.options.dockerfile and self.options.dockerfile_text is None:
            dockerfile_path = self.options.dockerfile
        ignore = load_dockerignore(self.options.context_dir, dockerfile_path)
        self.ctx = BuildContext(self.options.context_dir, ignore, self.filename)
        automatic = _automatic_args()
        meta = plan.meta_env(args, automatic)
        planned: dict[int, StagePlan] = {}
        for stage in required:
            planned[stage.index] = self._plan_stage(stage, plan, meta, args, planned)
        self.stage_plans = [planned[s.index] for s in required]

    def _plan_stage(self, stage: Stage, plan: BuildPlan, meta: Mapping[str, str], build_args: Mapping[str, str],
                    planned: Mapping[int, StagePlan]) -> StagePlan:
        base = plan.base_of(stage, build_args)
        base_ref: Stage | Image | None
        if isinstance(base, Stage):
            base_ref = base
            config = copy.deepcopy(planned[base.index].steps[-1].config_after)
        elif base == "scratch":
            base_ref = None
            config = {}
        else:
            image = find_base_image(self.store, base, stage.line, self.filename, self.options.pull)
            base_ref = image
            config = copy.deepcopy(image.config.get("config") or {})
        instructions: list[Instruction] = []
        triggers = list(config.get("OnBuild") or [])
        for expression in triggers:
            instructions.append(self._trigger(expression, stage.line))
        config["OnBuild"] = None if triggers else config.get("OnBuild")
        instructions += stage.instructions
        total = len(instructions) + 1
        from_ins = stage.from_
        state = _StageState()
        state.predefined = {k: v for k, v in build_args.items() if k in PREDEFINED_ARGS}
        shown = (base.name or str(base.index)) if isinstance(base, Stage) else base
        from_step = Step(stage, 1, total, from_ins, from_ins, f"FROM {shown}", from_ins.line, {}, {},
                         list(config.get("Env") or []), config, copy.deepcopy(config), from_ref=base_ref)
        steps = [from_step]
        automatic = _automatic_args()
        for number, ins in enumerate(instructions, start=2):
            before = steps[-1].config_after
            env_list = list(before.get("Env") or [])
            env = {**state.predefined, **state.args, **_env_dict(env_list)}
            expanded, used = ins.expanded_with(env, plan.escape, self.filename)
            used_args = {n: state.args[n] for n in used if n in state.args and n not in _env_dict(env_list)}
            run_args = {}
            if isinstance(ins, Run):
                declared = {k: v for k, v in state.args.items() if k not in _env_dict(env_list)}
                run_args = declared
                used_args = dict(declared)
            after = copy.deepcopy(before)
            if isinstance(expanded, Arg):
                for item in expanded.args:
                    if item.name in build_args:
                        state.args[item.name] = build_args[item.name]
                    elif item.default is not None:
                        state.args[item.name] = item.default
                    elif item.name in meta:
                        state.args[item.name] = meta[item.name]
                    elif item.name in automatic:
                        state.args[item.name] = automatic[item.name]
                    state.predefined.pop(item.name, None)
            elif isinstance(expanded, Maintainer):
                pass
            else:
                _apply_config(after, expanded, state)
            text = ins.source if ins.line != stage.line or number == 1 else f"ONBUILD {ins.source}"
            step = Step(stage, number, total, ins, expanded, text, ins.line, used_args, run_args,
                        env_list, before, after)
            self._check_step(step, plan, planned)
            steps.append(step)
        return StagePlan(stage, base_ref, steps)

    def _trigger(self, expression: str, line: int) -> Instruction:
        try:
            nodes = parse(expression, self.filename).nodes
            if len(nodes) != 1:
                raise DockerfileError(f"ONBUILD trigger {expression!r} is not one instruction", line, self.filename)
            node = nodes[0]
            node.start_line = node.end_line = line
            return parse_instruction(node, self.filename)
        except DockerfileError as err:
            raise DockerfileError(f"base image ONBUILD trigger: {err.detail}", line, self.filename) from None

    def _resolve_ref(self, ref: str, step: Step, plan: BuildPlan, planned: Mapping[int, StagePlan]) -> Stage | Image:
        stage = plan.find_stage(ref)
        if stage is not None:
            if stage.index >= step.stage.index:
                raise DockerfileError(f"stage {ref} is not defined before this stage", step.line, self.filename)
            return stage
        try:
            return self.store.images.resolve(ref)
        except (ImageNotFound, StrataError):
            raise DockerfileError(
                f"{step.instruction.keyword} --from={ref}: no stage or image named {ref} "
                f"(stages: {', '.join(s.name for s in plan.stages if s.name) or 'none named'})",
                step.line, self.filename) from None

    def _check_step(self, step: Step, plan: BuildPlan, planned: Mapping[int, StagePlan]) -> None:
        ins = step.expanded
        assert self.ctx is not None
        if isinstance(ins, (Copy, Add)):
            keyword = ins.keyword
            if isinstance(ins, Copy) and ins.from_:
                step.from_ref = self._resolve_ref(ins.from_, step, plan, planned)
            else:
                for src in ins.sources:
                    if src.startswith(_URL_PREFIXES):
                        if isinstance(ins, Copy):
                            raise DockerfileError(f"COPY: source can't be a URL: {src} (use ADD)", step.line,
                                                  self.filename)
                        continue
                    step.sources += self.ctx.sources(src, step.line, keyword)
            count = len(step.sources) + len(ins.contents) + sum(s.startswith(_URL_PREFIXES) for s in ins.sources)
            if isinstance(ins, Copy) and ins.from_:
                count = len(ins.sources) + (1 if any(c in "".join(ins.sources) for c in "*?[") else 0)
            if count > 1 and not ins.dest.endswith("/"):
                raise DockerfileError(
                    f"When using {keyword} with more than one source file, the destination must be a directory "
                    f"and end with a /", step.line, self.filename)
            if ins.chmod:
                from .copy import parse_chmod

                parse_chmod(ins.chmod, step.line, self.filename, keyword)
        elif isinstance(ins, Run):
            env = {**step.run_args, **_env_dict(step.env)}
            try:
                mounts = ins.mounts(lambda w: _expand(w, env, plan.escape))
            except DockerfileError as err:
                raise DockerfileError(err.detail, step.line, self.filename) from None
            for mount in mounts:
                if mount.from_:
                    step.mount_refs[mount.from_] = self._resolve_ref(mount.from_, step, plan, planned)
                elif mount.type == "bind":
                    self.ctx.resolve(self.ctx.clean_source(mount.source or ".", step.line, "RUN --mount"),
                                     step.line, "RUN --mount")
                if mount.type in ("secret", "ssh") and mount.required:
                    raise DockerfileError(f"RUN --mount=type={mount.type}: not supported by strata build",
                                          step.line, self.filename)

    # --- pass 2: execute ---

    @property
    def cache(self) -> BuildCache:
        if self._cache is None:
            self._cache = BuildCache(self.store)
        return self._cache

    def _execute(self) -> BuildResult:
        result: Snapshot | None = None
        for stage_plan in self.stage_plans:
            result = self._run_stage(stage_plan)
            self.snapshots[stage_plan.stage.index] = result
        assert result is not None
        base_image = result.base_image
        self._check_cancel()
        image = self.store.images.create(result.config, result.top_layer, parent=base_image,
                                         tags=list(self.options.tags))
        self.emit(BuildEvent(FINISHED, image=image.id, tags=image.familiar_tags))
        return BuildResult(image.id, image.familiar_tags, self.steps_run + self.steps_cached, self.steps_cached)

    def _check_cancel(self) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise Cancelled("build")

    def _event(self, step: Step, status: str, **extra: Any) -> BuildEvent:
        return BuildEvent(status, step=step.number, total=step.total, stage=step.stage_label,  # type: ignore[arg-type]
                          instruction=step.text, line=step.line, vertex=self.vertex, **extra)

    def _run_stage(self, sp: StagePlan) -> Snapshot:
        first = sp.steps[0]
        self.vertex += 1
        self._check_cancel()
        snap = self._from_snapshot(sp)
        self.emit(self._event(first, CACHED, layer=snap.top_layer))
        self.steps_cached += 1
        rebuilt = False
        for step in sp.steps[1:]:
            self._check_cancel()
            self.vertex += 1
            snap, rebuilt = self._run_step(step, snap, rebuilt)
        return snap

    def _from_snapshot(self, sp: StagePlan) -> Snapshot:
        base = sp.base
        config_after = sp.steps[0].config_after
        if isinstance(base, Stage):
            prev = self.snapshots[base.index]
            config = copy.deepcopy(prev.config)
            config["config"] = copy.deepcopy(config_after)
            return Snapshot(prev.key, config, prev.top_layer, prev.base_image)
        if base is None:
            config = new_config([], [], copy.deepcopy(config_after), architecture=host_architecture(),
                                created=now_rfc3339())
            return Snapshot(base_key("scratch"), config, None, None)
        config = copy.deepcopy(base.config)
        config["config"] = copy.deepcopy(config_after)
        for drop in ("container", "container_config", "docker_version", "id", "parent"):
            config.pop(drop, None)
        config.setdefault("history", [])
        return Snapshot(base_key(base.id), config, base.top_layer, base.id)

    def _run_step(self, step: Step, snap: Snapshot, rebuilt: bool) -> tuple[Snapshot, bool]:
        ins = step.expanded
        started = time.monotonic()
        sources_sum: str | None = None
        lines: Callable[[], list[str]] | None = None
        prepared: Any = None
        if isinstance(ins, (Copy, Add)):
            sources_sum, lines, prepared = self._copy_sources(step, snap)
        canonical = _canonical(ins)
        key = step_key(snap.key, canonical, step.used_args, step.env, sources_sum)
        detail = {"instruction": step.instruction.source, "expanded": canonical, "args": step.used_args,
                  "env": step.env, "sources": sources_sum, "stage": step.stage_label, "line": step.line,
                  "keyword": ins.keyword}
        if isinstance(prepared, dict) and "shape" in prepared:
            detail["shape"] = prepared["shape"]
        hit = None if self.options.no_cache else self.cache.get(key)
        if hit is not None:
            self._drop_head_start()
            self._touched.append(key)
            self.steps_cached += 1
            config = json.loads(hit.config)
            self.emit(self._event(step, CACHED, layer=hit.layer))
            return Snapshot(key, config, hit.layer or snap.top_layer, snap.base_image), rebuilt
        files = fingerprints(lines()) if lines is not None and not self.options.no_cache else None
        reason = "--no-cache" if self.options.no_cache else self.cache.explain(snap.key, rebuilt, detail, files)
        self.emit(self._event(step, RUNNING, reason=reason))
        try:
            new_layer, empty = self._execute_step(step, snap, key, prepared)
        except BuildError as err:
            self._failed_step = True
            self.emit(self._event(step, ERROR, reason=reason, message=str(err), exit_code=err.exit_status,
                                  duration_s=time.monotonic() - started))
            raise
        except StrataError as err:
            self._failed_step = True
            self.emit(self._event(step, ERROR, reason=reason, message=str(err),
                                  duration_s=time.monotonic() - started))
            raise
        config = copy.deepcopy(snap.config)
        config["config"] = copy.deepcopy(step.config_after)
        if isinstance(ins, Maintainer):
            config["author"] = ins.name
        now = now_rfc3339()
        config["created"] = now
        history: dict[str, Any] = {"created": now, "created_by": self._created_by(step),
                                   "comment": "strata.dockerfile.v0"}
        if empty:
            history["empty_layer"] = True
        else:
            assert new_layer is not None
            layer = self.store.layers.get(new_layer)
            rootfs = config.setdefault("rootfs", {"type": "layers", "diff_ids": []})
            rootfs["diff_ids"] = [*rootfs.get("diff_ids", []), layer.diff_id]
        config["history"] = [*(config.get("history") or []), history]
        top = new_layer if not empty else snap.top_layer
        entry = CacheEntry(key, snap.key, None if empty else new_layer, canonical_json(config),
                           step.instruction.source, detail)
        self.cache.put(entry)
        if lines is not None and sources_sum is not None:
            self.cache.save_sources(sources_sum, files if files is not None else fingerprints(lines()))
        self.steps_run += 1
        self.emit(self._event(step, DONE, reason=reason, layer=None if empty else new_layer,
                              duration_s=time.monotonic() - started))
        return Snapshot(key, config, top, snap.base_image), True

    def _created_by(self, step: Step) -> str:
        ins = step.expanded
        if isinstance(ins, Run):
            argv = _shell_form(step.config_before, ins.command, ins.json)
            args = "".join(f"{k}={v} " for k, v in sorted(step.run_args.items()))
            prefix = f"|{len(step.run_args)} {args}" if step.run_args else ""
            return f"RUN {prefix}{' '.join(argv)} # buildkit"
        if isinstance(ins, (Copy, Add)):
            return f"{step.instruction.source} # buildkit"
        return step.instruction.source

    # --- steps that make layers ---

    def _execute_step(self, step: Step, snap: Snapshot, key: str, prepared: Any) -> tuple[str | None, bool]:
        ins = step.expanded
        if isinstance(ins, Run):
            return self._run(step, snap), False
        if isinstance(ins, (Copy, Add)):
            return self._copy(step, snap, prepared), False
        if isinstance(ins, Workdir):
            return self._workdir(step, snap)
        return None, True

    def _view(self, snap: Snapshot) -> UnionView:
        return UnionView.of_layers(self.store, self.store.layers.chain(snap.top_layer))

    def _workdir(self, step: Step, snap: Snapshot) -> tuple[str | None, bool]:
        from .copy import ROOT, LayerWriter

        path = step.config_after.get("WorkingDir") or "/"
        view = self._view(snap)
        real = view.resolve_path(path)
        hit = view.lookup(real)
        if hit is not None:
            if hit.entry.type != DIR:
                raise DockerfileError(f"WORKDIR {path}: {real} exists and is not a directory", step.line,
                                      self.filename)
            return None, True
        with self.store.layers.staging() as st:
            writer = LayerWriter(str(st.diff), view, self.filename, step.line, "WORKDIR")
            writer.ensure_dir(real, ROOT, time.time())
            return self.store.layers.add_dir(st, writer.finish(), snap.top_layer, self._created_by(step)).id, False

    # --- COPY / ADD ---

    def _copy_sources(self, step: Step, snap: Snapshot) -> tuple[str, Callable[[], list[str]], Any]:
        """The checksum of everything a COPY/ADD reads, its record lines (for miss
        reasons) and what ``_copy`` needs to place the files."""
        ins = step.expanded
        assert isinstance(ins, (Copy, Add)) and self.ctx is not None
        records: list[str] = []
        prepared: dict[str, Any] = {}
        if isinstance(ins, Copy) and ins.from_:
            from .copy import plan_image_copy

            prepared = self._destination(step, snap)
            view, dest, dest_as_dir = prepared["view"], prepared["dest"], prepared["dest_as_dir"]
            owner, chmod, keyword = prepared["owner"], prepared["chmod"], ins.keyword
            ref = step.from_ref
            if isinstance(ref, Stage):
                src_snap = self.snapshots[ref.index]
                src_view = self._view(src_snap)
            else:
                assert isinstance(ref, Image)
                src_view = UnionView.of_layers(self.store, self.store.images.layers(ref))
            plan, seen = plan_image_copy(src_view, list(ins.sources), dest, dest_as_dir, view,
                                         owner if ins.chown else None, chmod, step.line, self.filename, keyword)
            prepared["plan"] = plan
            records += index_records(seen)
        else:
            entries: list[ContextEntry] = []
            for match in step.sources:
                entries += self.ctx.under(match.real) if match.is_dir else [match.entry]
            context_lines: Callable[[], list[str]] = list
            if entries:
                prepared["shape"] = f"{len(entries)} {sum(e.size for e in entries)}"
                self._begin_early(step, snap, prepared["shape"])
                summary, context_lines = self._context_checksum(entries)
                records.append(f"\0context\0{summary}")

            def digests() -> dict[str, str]:
                context_lines()  # fills self._digests (a remembered tree sum may have skipped it)
                return self._digests

            prepared["digests"] = digests
            urls = [s for s in ins.sources if s.startswith(_URL_PREFIXES)]
            for url in urls:
                path = self._download(url, step)
                size = os.path.getsize(path)
                from .checksum import hash_file

                digest = hash_file(path, size)
                if isinstance(ins, Add) and ins.checksum:
                    self._verify_checksum(url, path, ins.checksum, step)
                records.append(record(url, FILE, 0o600, 0, 0, size, "", digest))
                prepared.setdefault("urls", []).append((url, path, size, digest))
            inline: list[tuple[str, bytes]] = []
            env = {**step.run_args, **step.used_args, **_env_dict(step.env)}
            assert self.plan is not None
            for content in ins.contents:
                data = content.data
                if content.expand:
                    data = _expand_heredoc(data, env, self.plan.escape)
                raw = data.encode("utf-8", "surrogateescape")
                inline.append((content.path, raw))
                import xxhash

                records.append(record("<<" + content.path, FILE, 0, 0, 0, len(raw), "",
                                      xxhash.xxh3_128_hexdigest(raw)))
            prepared["inline"] = inline
            records.sort()
            own = [r for r in records if not r.startswith("\0context\0")]
            return checksum(records), lambda: sorted(own + context_lines()), prepared
        records.sort()
        return checksum(records), lambda: records, prepared

    def _context_checksum(self, entries: list[ContextEntry]) -> tuple[str, Callable[[], list[str]]]:
        """The checksum of context entries, and (lazily) their record lines.

        When every entry's stat fields are what they were when this checksum was last
        computed, the checksum is taken from ``build_tree_sums`` without reading the stat
        cache at all: that is the whole cost of an unchanged context, one stat walk.
        """
        assert self.ctx is not None
        if self._stat_cache is None:
            self.cache  # noqa: B018 - creates the tables the stat cache lives in
            self._stat_cache = StatCache(self.store.meta, self.ctx.root)
        stat_cache = self._stat_cache
        snapshot, racy = stat_snapshot(self.ctx.root, entries, stat_cache.started_ns)
        done: list[list[str]] = []

        def lines() -> list[str]:
            if not done:
                assert self.ctx is not None
                done.append(sorted(context_records(self.ctx, stat_cache, entries, self._digests)))
            return done[0]

        known = self.cache.tree_sum(snapshot)
        if known is not None:
            return known, lines
        summary = checksum(lines())
        if not racy:
            self.cache.put_tree_sum(snapshot, summary)
        return summary, lines

    def _download(self, url: str, step: Step) -> str:
        import urllib.error
        import urllib.parse
        import urllib.request

        scratch = self._new_scratch("download")
        name = posixpath.basename(urllib.parse.urlparse(url).path) or "index.html"
        target = scratch / name
        try:
            with urllib.request.urlopen(url, timeout=30) as response, open(target, "wb") as out:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
        except (urllib.error.URLError, OSError, ValueError) as err:
            why = getattr(err, "reason", None) or err
            raise DockerfileError(
                f"ADD {url}: cannot download it ({why}); check the network, or download the file into the "
                f"build context and ADD it from there", step.line, self.filename) from None
        return str(target)

    def _verify_checksum(self, url: str, path: str, expected: str, step: Step) -> None:
        """ADD --checksum=sha256:…: the download must be exactly that content."""
        import hashlib

        algorithm, _, want = expected.partition(":")
        if algorithm not in ("sha256", "sha384", "sha512") or not want:
            raise DockerfileError(f"ADD --checksum={expected}: use sha256:<hex> (or sha384, sha512)",
                                  step.line, self.filename)
        h = hashlib.new(algorithm)
        with open(path, "rb") as fh:
            while chunk := fh.read(1 << 20):
                h.update(chunk)
        if h.hexdigest() != want.lower():
            raise DockerfileError(f"ADD {url}: checksum mismatch: expected {expected}, got {algorithm}:{h.hexdigest()}",
                                  step.line, self.filename)

    def _new_scratch(self, what: str) -> Path:
        path = self.store.tmp / f"stage-{what}-{secrets.token_hex(8)}"
        path.mkdir(mode=0o700)
        (path / "owner").write_text(f"{os.getpid()}\n")
        self._scratch.append(path)
        return path

    def _earlier_layer(self, step: Step, snap: Snapshot) -> str | None:
        """The layer this step made the last time on this parent: the new layer is most
        likely that one with a few files changed."""
        for sibling in self.cache.siblings(snap.key, limit=10):
            if sibling.layer and sibling.detail.get("instruction") == step.instruction.source:
                return sibling.layer
        return None

    def _index(self, layer_id: str | None) -> dict[str, FileEntry]:
        if layer_id is None:
            return {}
        with collector_paused():
            return {e.path: e for e in self.store.layers.entries(layer_id)}

    def _worth_cloning(self, layer_id: str | None) -> bool:
        from ..errors import LayerNotFound

        if layer_id is None:
            return False
        try:
            return self.store.layers.get(layer_id).entries >= _CLONE_AT_LEAST
        except LayerNotFound:
            return False

    def _destination(self, step: Step, snap: Snapshot) -> dict[str, Any]:
        """Where a COPY/ADD writes and as whom: only needed when the step runs."""
        from .copy import absolute_dest, parse_chmod, resolve_owner

        ins = step.expanded
        assert isinstance(ins, (Copy, Add))
        view = self._view(snap)
        dest, dest_as_dir = absolute_dest(ins.dest, step.config_before.get("WorkingDir") or "/")
        owner = resolve_owner(view, ins.chown, step.line, self.filename, ins.keyword)
        chmod = parse_chmod(ins.chmod, step.line, self.filename, ins.keyword)
        return {"view": view, "dest": dest, "dest_as_dir": dest_as_dir, "owner": owner, "chmod": chmod}

    def _begin_early(self, step: Step, snap: Snapshot, shape: str) -> None:
        """Start cloning this step's earlier layer before the cache lookup when the step will
        surely run: its sources' count or bytes differ from that run's (``shape``). The
        clone (``store.linkclone``) then proceeds alongside checksumming and planning."""
        if self.options.no_cache or not _CLONE_AT_LEAST:
            return
        self._drop_head_start()
        for sibling in self.cache.siblings(snap.key, limit=10):
            if sibling.layer and sibling.detail.get("instruction") == step.instruction.source:
                if sibling.detail.get("shape") in (None, shape):
                    return  # the same shape: maybe only touched, and then a cache hit
                earlier = sibling.layer
                break
        else:
            return
        if not self._worth_cloning(earlier):
            return
        from ..store.linkclone import LinkClone

        exits = contextlib.ExitStack()
        try:
            st = exits.enter_context(self.store.layers.staging())
            clone = LinkClone(str(self.store.layers.diff_dir(earlier)), str(st.diff))
            exits.callback(clone.cancel)  # runs before the staging directory goes
            base = self._index(earlier)  # read while cp works
        except BaseException:
            exits.close()
            raise
        self._head_start = _HeadStart(step, exits, st, clone, earlier, base)

    def _drop_head_start(self) -> None:
        head, self._head_start = self._head_start, None
        if head is not None:
            head.exits.close()

    def _copy(self, step: Step, snap: Snapshot, prepared: dict[str, Any]) -> str:
        if "view" not in prepared:
            prepared.update(self._destination(step, snap))
        head, self._head_start = self._head_start, None
        if head is not None and head.step is not step:
            head.exits.close()
            head = None
        earlier: str | None
        if head is not None:
            earlier, base = head.earlier, head.base
            with head.exits:
                try:
                    return self._write_copy(step, snap, prepared, earlier, base, head.staging, head.clone)
                except CloneFailed:
                    pass  # written the ordinary way below, in a fresh staging directory
        else:
            # --no-cache trusts nothing earlier, not even its files: everything is written afresh.
            earlier = self._earlier_layer(step, snap) if not self.options.no_cache else None
            base = {}
            if earlier is not None and self._worth_cloning(earlier):
                from ..store.linkclone import LinkClone

                with self.store.layers.staging() as st:
                    clone = LinkClone(str(self.store.layers.diff_dir(earlier)), str(st.diff))
                    try:
                        base = self._index(earlier)  # read while cp works
                        return self._write_copy(step, snap, prepared, earlier, base, st, clone)
                    except CloneFailed:
                        pass
                    finally:
                        clone.cancel()  # before the staging directory goes
            else:
                base = self._index(earlier)
        with self.store.layers.staging() as st:
            return self._write_copy(step, snap, prepared, earlier, base, st, None)

    def _write_copy(self, step: Step, snap: Snapshot, prepared: dict[str, Any], earlier: str | None,
                    base: dict[str, FileEntry], st: Staging, cloning: LinkClone | None) -> str:
        """Write the COPY/ADD layer into ``st``. With ``cloning`` the staging directory is
        becoming a hard-link clone of ``earlier`` (``cp -lR``, while the items are worked
        out) and only what differs is written; without, unchanged files are still
        hard-linked from ``earlier``."""
        from .copy import CopyError, LayerWriter, place_all

        ins = step.expanded
        assert isinstance(ins, (Copy, Add)) and self.ctx is not None
        view: UnionView = prepared["view"]
        keyword = ins.keyword
        layers = self.store.layers
        earlier_dir = str(layers.diff_dir(earlier)) if earlier is not None else ""
        reuse = {} if cloning else {
            path: (earlier_dir + path, e.digest) for path, e in base.items() if e.type == FILE}
        side_dir = None
        if cloning is not None:
            side_dir = str(st.path / "incoming")
            os.mkdir(side_dir, 0o700)
        writer = LayerWriter(str(st.diff), view, self.filename, step.line, keyword, reuse=reuse,
                             base=base if cloning else None, base_ready=cloning.wait if cloning else None,
                             side_dir=side_dir)

        def failed(e: OSError) -> DockerfileError:
            return DockerfileError(f"{keyword} failed: {e.strerror or e}: {e.filename or ''}".rstrip(": "),
                                   step.line, self.filename)

        def settle() -> None:
            try:
                writer.settle()
            except OSError as e:
                raise failed(e) from None

        try:
            try:
                if "plan" in prepared:
                    place_all(writer, prepared["plan"])
                else:
                    self._place_context(writer, step, prepared, prepared["dest"], prepared["dest_as_dir"],
                                        prepared["owner"], prepared["chmod"])
                # With a clone, the tree is completed (settle) after its tar is hashed.
                entries = writer.finish(settle=cloning is None)
            except (CopyError, CloneFailed):
                raise
            except OSError as e:
                raise failed(e) from None
            same = frozenset(path[1:] for path in writer.same if path in writer.entries)
            predecessor = Predecessor(earlier, base, same) if earlier is not None else None
            return layers.add_dir(st, entries, snap.top_layer, self._created_by(step), predecessor,
                                  elsewhere=writer.elsewhere if cloning else None,
                                  settle=settle if cloning else None).id
        finally:
            writer.close()
            if cloning is not None:
                cloning.cancel()

    def _place_context(self, writer: LayerWriter, step: Step, prepared: dict[str, Any], dest: str,
                       dest_as_dir: bool, owner: Owner, chmod: int | None) -> None:
        from .copy import ROOT, archive_items, inline_items, opened_archive, place_all

        ins = step.expanded
        assert isinstance(ins, (Copy, Add)) and self.ctx is not None
        view: UnionView = prepared["view"]
        keyword = ins.keyword
        plain: list[SourceMatch] = []
        for match in step.sources:
            if isinstance(ins, Add) and not match.is_dir:
                with opened_archive(self.ctx.abspath(match.real)) as tar:
                    if tar is not None:
                        self._place_plain(writer, plain, prepared, dest, dest_as_dir, owner, chmod, step)
                        plain = []
                        target = view.resolve_path(dest)
                        writer.ensure_dir(target, ROOT, time.time())
                        for item in archive_items(tar, target, step.line, self.filename):
                            writer.place(item, ROOT)
                        continue
            plain.append(match)
        self._place_plain(writer, plain, prepared, dest, dest_as_dir, owner, chmod, step)
        for url, path, size, digest in prepared.get("urls", []):
            name = posixpath.basename(url.split("?", 1)[0].rstrip("/")) or "index.html"
            from .copy import CopyItem, _file_target

            target = _file_target(view, dest, dest_as_dir, name)
            item = CopyItem(target, FILE, chmod if chmod is not None else 0o600, owner, time.time_ns(), size,
                            digest, source=path)
            writer.place(item, owner)
        if prepared.get("inline"):
            plan = inline_items(prepared["inline"], dest, dest_as_dir, view, owner, chmod, time.time_ns())
            place_all(writer, plan)
        del keyword

    def _place_plain(self, writer: LayerWriter, matches: list[SourceMatch], prepared: dict[str, Any], dest: str,
                     dest_as_dir: bool, owner: Owner, chmod: int | None, step: Step) -> None:
        from .copy import place_all, plan_context_copy

        if not matches:
            return
        assert self.ctx is not None
        plan: CopyPlan = plan_context_copy(self.ctx, matches, prepared["digests"](), dest, dest_as_dir,
                                           prepared["view"], owner, chmod, step.line, step.expanded.keyword)
        place_all(writer, plan)

    # --- RUN ---

    def _driver_name(self) -> str:
        if self._driver is None:
            if self._driver_fn is not None:
                self._driver = self._driver_fn()
            else:
                from .. import runtime

                self._driver = runtime.detect_driver(str(self.store.tmp))
        return self._driver

    def _run(self, step: Step, snap: Snapshot) -> str:
        from .. import runtime

        ins = step.expanded
        assert isinstance(ins, Run)
        c = step.config_before
        argv, script = self._run_argv(step, ins)
        env = list(c.get("Env") or [])
        env_keys = {e.partition("=")[0] for e in env}
        env += [f"{k}={v}" for k, v in sorted({**self._predefined(step), **step.run_args}.items())
                if k not in env_keys]
        process = runtime.Process(args=argv, env=env, cwd=c.get("WorkingDir") or "/", user=c.get("User") or "")
        chain = self.store.layers.chain(snap.top_layer)
        lowerdirs = [str(self.store.layers.diff_dir(layer.id)) for layer in reversed(chain)]
        network = "none" if ins.network == "none" else self.options.network
        scratch = self._new_scratch("run")
        mounts = self._mounts(step, ins, scratch)
        if script is not None:
            mounts.append(runtime.Mount(script, HEREDOC_SCRIPT, "bind", readonly=True))
        driver = self._driver_name()
        with self.store.layers.staging() as st:
            if driver == "vfs":
                rootdir = scratch / "rootfs"
                runtime.vfs_materialize(lowerdirs, str(rootdir))
                rootfs = runtime.RootFS("vfs", rootdir=str(rootdir))
            else:
                (scratch / "work").mkdir()
                rootfs = runtime.RootFS("overlay", lowerdirs=lowerdirs, upperdir=str(st.diff),
                                        workdir=str(scratch / "work"))
            config = runtime.ContainerConfig(rootfs=rootfs, process=process, runtime_dir=str(scratch / "run"),
                                             hostname=secrets.token_hex(6), mounts=mounts,
                                             network=network)  # type: ignore[arg-type]
            code = self._run_container(config, step)
            if code != 0:
                _raise_if_store_full(self.store.root, step.text)
                shown = " ".join(argv)
                raise BuildError(
                    f"{self.filename}:{step.line}: {step.text}: process \"{shown}\" did not complete "
                    f"successfully: exit code: {code}", step.line, code)
            if driver == "vfs":
                runtime.vfs_diff(lowerdirs, str(scratch / "rootfs"), str(st.diff),
                                 runtime_dir=str(scratch / "run"))
            rmtree(scratch / "work")
            entries = self._scan(str(st.diff), chain)
            return self.store.layers.add_dir(st, entries, snap.top_layer, self._created_by(step)).id

    def _predefined(self, step: Step) -> dict[str, str]:
        return {k: v for k, v in self.options.build_args.items() if k in PREDEFINED_ARGS}

    def _run_argv(self, step: Step, ins: Run) -> tuple[list[str], str | None]:
        """The RUN's argv, and a script to bind at ``HEREDOC_SCRIPT`` for ``RUN <<EOF`` with a
        ``#!`` line (BuildKit runs such a heredoc as a script, not through the shell)."""
        if ins.json:
            return list(ins.command), None
        command = ins.command[0] if ins.command else ""
        if ins.heredocs:
            docs = list(ins.heredocs)
            only = command.strip().lstrip("0123456789")
            name = docs[0].name
            if len(docs) == 1 and only in (f"<<{name}", f"<<-{name}", f'<<"{name}"', f"<<'{name}'",
                                           f'<<-"{name}"', f"<<-'{name}'"):
                body = docs[0].chomped_content()
                if body.startswith("#!"):
                    script = self._new_scratch("script") / "script"
                    script.write_text(body, encoding="utf-8", errors="surrogateescape")
                    os.chmod(script, 0o755)
                    return [HEREDOC_SCRIPT], str(script)
                return _shell_form(step.config_before, [body], False), None
            text = command
            for doc in docs:
                text += "\n" + doc.content + doc.name
            command = text
        return _shell_form(step.config_before, [command], False), None

    def _mounts(self, step: Step, ins: Run, scratch: Path) -> list[Any]:
        from .. import runtime
        from .copy import export_subtree

        assert self.ctx is not None and self.plan is not None
        env = {**step.run_args, **_env_dict(step.env)}
        escape = self.plan.escape
        out: list[runtime.Mount] = []
        for index, mount in enumerate(ins.mounts(lambda w: _expand(w, env, escape))):
            target = normalize(posixpath.join(step.config_before.get("WorkingDir") or "/", mount.target))
            if mount.type == "cache":
                import hashlib

                ident = mount.id or target
                where = mounts_dir(self.store) / hashlib.sha256(ident.encode()).hexdigest()[:24]
                if not where.exists():
                    where.mkdir(mode=mount.mode if mount.mode is not None else 0o755)
                    if os.geteuid() == 0:
                        os.chown(where, mount.uid or 0, mount.gid or 0)
                out.append(runtime.Mount(str(where), target, "bind", readonly=False))
            elif mount.type == "tmpfs":
                options = [f"size={mount.size}"] if mount.size else []
                out.append(runtime.Mount("tmpfs", target, "tmpfs", options=options))
            elif mount.type == "bind":
                ref = step.mount_refs.get(mount.from_) if mount.from_ else None
                if ref is None:
                    rel = self.ctx.resolve(self.ctx.clean_source(mount.source or ".", step.line, "RUN --mount"),
                                           step.line, "RUN --mount")
                    source = self.ctx.abspath(rel)
                    if not os.path.exists(source):
                        raise DockerfileError(f"RUN --mount: {mount.source} not found in the build context",
                                              step.line, self.filename)
                    if not mount.readonly:
                        copy_to = scratch / f"mount-{index}"
                        _copy_host_tree(source, str(copy_to))
                        source = str(copy_to)
                else:
                    if isinstance(ref, Stage):
                        src_view = self._view(self.snapshots[ref.index])
                    else:
                        src_view = UnionView.of_layers(self.store, self.store.images.layers(ref))
                    copy_to = scratch / f"mount-{index}"
                    try:
                        export_subtree(src_view, mount.source or "/", str(copy_to))
                    except FileNotFoundError:
                        raise DockerfileError(f"RUN --mount: {mount.source} not found in {mount.from_}",
                                              step.line, self.filename) from None
                    source = str(copy_to)
                out.append(runtime.Mount(source, target, "bind", readonly=mount.readonly))
        return out

    def _run_container(self, config: Any, step: Step) -> int:
        from .. import runtime

        read_fd, write_fd = os.pipe()
        try:
            # Processes in a container start with umask 022, as Docker's do, whatever the
            # caller's is: the files a RUN makes must not depend on who ran the build.
            saved = os.umask(0o022)
            try:
                running = runtime.start(config, stdout=write_fd, stderr=write_fd)
            except (StrataError, OSError) as err:
                code = getattr(err, "exit_code", 125)
                raise BuildError(f"{self.filename}:{step.line}: {step.text}: {err}", step.line,
                                 code if code in (126, 127) else 125) from None
            finally:
                os.umask(saved)
                os.close(write_fd)
                write_fd = -1
            pending = b""
            killed = False
            while True:
                ready, _w, _x = select.select([read_fd], [], [], 0.25)
                if self.cancel is not None and self.cancel.is_set() and not killed:
                    running.kill()
                    killed = True
                if not ready:
                    continue
                data = os.read(read_fd, 65536)
                if not data:
                    break
                pending += data
                *lines, pending = pending.split(b"\n")
                for raw in lines:
                    self.emit(self._event(step, OUTPUT, output=raw.decode("utf-8", "replace")))
            if pending:
                self.emit(self._event(step, OUTPUT, output=pending.decode("utf-8", "replace")))
            code = running.wait()
            if killed:
                raise Cancelled("build")
            return code if code is not None else 125
        finally:
            os.close(read_fd)
            if write_fd >= 0:
                os.close(write_fd)

    def _scan(self, diff: str, chain: Sequence[Any]) -> list[FileEntry]:
        """Index what the RUN left in its upperdir, keeping what the layers below knew
        about paths the disk cannot describe (owners, when rootless)."""
        from ..store.scan import scan_dir

        paths: list[str] = []
        for root, dirs, files in os.walk(diff):
            rel = root[len(diff):]
            paths += [f"{rel}/{name}" for name in dirs + files]
        if not paths:
            return []
        view = UnionView.of_layers(self.store, list(chain))
        base = {p: hit.entry for p, hit in view.lookup_many(paths).items()}
        entries = scan_dir(diff, base=base)
        if os.geteuid() == 0:
            return entries
        return _to_container_ids(entries, base)


def _expand(word: str, env: Mapping[str, str], escape: str) -> str:
    from .shell import expand_word

    return expand_word(word, env, escape)


def _expand_heredoc(data: str, env: Mapping[str, str], escape: str) -> str:
    from .shell import Lexer

    return Lexer(escape, raw_quotes=True, raw_escapes=True).process(data, env).value


def _copy_host_tree(source: str, dest: str) -> None:
    import shutil

    if os.path.isdir(source):
        shutil.copytree(source, dest, symlinks=True)
    else:
        shutil.copy2(source, dest)


def _to_container_ids(entries: list[FileEntry], base: Mapping[str, FileEntry]) -> list[FileEntry]:
    """Rootless: files the RUN made belong to host ids; give them the ids the container saw.
    Entries whose owner came from the layers below (see ``scan_dir``) are left alone."""
    from ..runtime import idmap

    maps = idmap.plan()

    def inside(ranges: tuple[tuple[int, int, int], ...], host: int) -> int:
        for start, outside, count in ranges:
            if outside <= host < outside + count:
                return start + host - outside
        return 65534

    out = []
    for e in entries:
        old = base.get(e.path)
        if old is not None and (old.uid, old.gid) == (e.uid, e.gid):
            out.append(e)
            continue
        uid, gid = inside(maps.uid.ranges, e.uid), inside(maps.gid.ranges, e.gid)
        out.append(e if (uid, gid) == (e.uid, e.gid) else dataclasses.replace(e, uid=uid, gid=gid))
    return out


def build(store: Store, options: BuildOptions, on_event: EventSink | None = None,
          cancel: threading.Event | None = None, driver: Callable[[], str] | None = None) -> BuildResult:
    """Build ``options`` in ``store``; see ``Builder``."""
    return Builder(store, options, on_event, cancel, driver).run()


__all__ = ["BuildOptions", "Builder", "Step", "build", "find_base_image"]
