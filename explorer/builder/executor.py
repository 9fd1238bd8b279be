"""Running a build: Dockerfile → stages → steps → cached or executed layers → an image.

A build has two passes. The first (``_prepare``) reads the Dockerfile, works out every
step of every stage the target needs (ARGs, ENV, WORKDIR and all expansions are known
before anything runs) and checks everything that can be checked: unknown instructions,
bad flags, undefined stages and images, COPY sources that are missing or lead outside the
context. It writes nothing, so bad input stops the build before the store is touched.

The second pass walks the steps. Each step gets a cache key (see ``cache``); a hit reuses
the layer and image config recorded for that key, a miss runs the step and records it
with the reason it missed. RUN runs in a temporary rootless container (``runstep``);
COPY/ADD write straight into a staging directory (``copystep``); WORKDIR may add a
directory; every other instruction only changes the image config. Progress is reported
as ``BuildEvent`` objects through a callback: the build never prints.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import os
import posixpath
import secrets
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import BuildError, Cancelled, DockerfileError, ImageNotFound, InvalidArgument, StrataError
from ..fsutil import rmtree
from ..holds import hold
from ..store.images import Image, canonical_json, host_architecture, new_config, now_rfc3339
from ..store.index import DIR, normalize
from ..store.reference import is_daemon_reference
from ..store.union import UnionView
from .cache import BuildCache, CacheEntry, base_key, step_key
from .checksum import StatCache, fingerprints
from .configenv import env_dict, set_env, shell_form
from .context import BuildContext, SourceMatch
from .copystep import URL_PREFIXES, CopySteps
from .dockerignore import load_dockerignore
from .events import CACHED, DONE, ERROR, FINISHED, RUNNING, BuildEvent, BuildResult
from .instructions import (
    AUTOMATIC_PLATFORM_ARGS,
    PREDEFINED_ARGS,
    Add,
    Arg,
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
    StopSignal,
    User,
    Volume,
    Workdir,
    exposed_port_keys,
    parse_instruction,
)
from .parser import go_quote as _q
from .parser import parse
from .runstep import RunSteps
from .stages import BuildPlan, Stage, parse_stages

if TYPE_CHECKING:
    from ..store.store import Store
    from .copyitems import Owner

EventSink = Callable[[BuildEvent], None]

#: The steps that make (or, WORKDIR, may make) a layer: BuildKit's file-system operations.
_LAYER_STEPS = (Run, Copy, Add, Workdir)
_COMMENT = "strata.dockerfile.v0"


@dataclass
class _Missed:
    """Whether a stage has missed the cache so far: at any step, and at a layer step."""

    any: bool = False
    layers: bool = False


# --- the one place a base image is found ---------------------------------------------------


def find_base_image(
    store: Store, reference: str, line: int = 0, filename: str = "Dockerfile", pull: bool = False
) -> Image:
    """The image ``FROM reference`` builds on: from the store, pulled from its registry
    when missing (or always with ``--pull``)."""
    if not pull and not is_daemon_reference(reference):
        # The common case needs no registry code (its imports cost a tenth of a second).
        try:
            return store.images.resolve(reference)
        except StrataError:
            pass
    from ..registry.ensure import ensure_image

    try:
        return ensure_image(store, reference, pull)
    except ImageNotFound:
        raise DockerfileError(
            f"image {reference} not found locally and it names no registry to pull from", line, filename
        ) from None
    except StrataError as err:
        raise DockerfileError(f"FROM {reference}: {err}", line, filename) from None


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
    state: _StageState | None = None  # the ARGs in effect at its end (a stage built on it inherits them)


@dataclass
class Snapshot:
    """The image as of one step: its cache keys, full config and top layer.

    There are two keys because BuildKit's cache follows the file system, not the config:
    ``key`` is that of the last step that makes or may make a layer (RUN, COPY, ADD,
    WORKDIR), and the next such step is keyed on it, so a LABEL, EXPOSE, CMD … between them
    does not miss the steps after it. ``meta_key`` is the last step's of any kind, the parent
    of a config-only step. The config a cache hit stands for is rebuilt from the plan, never
    taken from the row, so a hit after a changed LABEL still carries the new label.
    """

    key: str
    config: dict[str, Any]
    top_layer: str | None
    base_image: str | None = None
    meta_key: str | None = None

    @property
    def chain_key(self) -> str:
        return self.meta_key or self.key

    def raw(self) -> bytes:
        return canonical_json(self.config)


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


def _apply_config(c: dict[str, Any], ins: Instruction, state: _StageState) -> None:
    """What a config-changing instruction does to the container config ``c``."""
    if isinstance(ins, Env):
        env = list(c.get("Env") or [])
        for key, value in ins.pairs:
            env = set_env(env, key, value)
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
        for p in ins.ports:  # already port keys: see _normalize
            ports[p] = {}
        c["ExposedPorts"] = ports
    elif isinstance(ins, Volume):
        volumes = dict(c.get("Volumes") or {})
        for p in ins.paths:
            volumes[p] = {}
        c["Volumes"] = volumes
    elif isinstance(ins, Cmd):
        # CMD [] clears the command: BuildKit stores null, as ENTRYPOINT [] does.
        c["Cmd"] = shell_form(c, ins.command, ins.json) if ins.command or not ins.json else None
        state.cmd_set = True
    elif isinstance(ins, Entrypoint):
        c["Entrypoint"] = shell_form(c, ins.command, ins.json) if ins.command is not None else None
        if not state.cmd_set:
            c["Cmd"] = None
    elif isinstance(ins, Shell):
        c["Shell"] = list(ins.shell)
    elif isinstance(ins, StopSignal):
        c["StopSignal"] = ins.signal
    elif isinstance(ins, Healthcheck):
        hc: dict[str, Any] = {"Test": list(ins.test)}
        durations: list[tuple[str, float | None]] = [
            ("Interval", ins.interval),
            ("Timeout", ins.timeout),
            ("StartPeriod", ins.start_period),
            ("StartInterval", ins.start_interval),
        ]
        for name, seconds in durations:
            if seconds is not None:
                hc[name] = int(seconds * 1e9)
        if ins.retries is not None:
            hc["Retries"] = ins.retries
        c["Healthcheck"] = hc
    elif isinstance(ins, Onbuild):
        c["OnBuild"] = [*(c.get("OnBuild") or []), ins.expression]


@dataclass
class _StageState:
    """ARGs and flags that evolve through a stage while it is planned.

    BuildKit keeps one environment for the build: ENV and an ARG with a value both set a
    variable in it, in the order they come, so an ARG declared after an ENV of the same name
    wins in RUN and in expansions from its line on, while the image's Env keeps the ENV value
    (``arg_wins`` names those ARGs). See the choices table in the package docstring.
    """

    args: dict[str, str] = field(default_factory=dict)  # declared ARGs with a value
    predefined: dict[str, str] = field(default_factory=dict)  # proxy args given, not declared
    arg_wins: set[str] = field(default_factory=set)  # ARGs set after any ENV of their name
    cmd_set: bool = False

    def build_env(self, image_env: Mapping[str, str]) -> dict[str, str]:
        """The variables an instruction is expanded with."""
        env = {**self.predefined, **self.args, **image_env}
        env.update((name, self.args[name]) for name in self.arg_wins if name in self.args)
        return env

    def visible_args(self, image_env: Mapping[str, str]) -> dict[str, str]:
        """The declared ARGs a RUN gets on top of the image's Env (and whose values key it)."""
        return {k: v for k, v in self.args.items() if k not in image_env or k in self.arg_wins}

    def inherited(self) -> _StageState:
        """The state a stage built on this one starts with: its ARGs, not its CMD flag."""
        return _StageState(dict(self.args), {}, set(self.arg_wins))


# --- the builder -------------------------------------------------------------------------------------


class Builder(CopySteps, RunSteps):
    """One build. ``run`` does both passes and returns the image it made. Running COPY/ADD
    and RUN steps is in the mixins (``copystep``, ``runstep``); the rest is here."""

    def __init__(
        self,
        store: Store,
        options: BuildOptions,
        on_event: EventSink | None = None,
        cancel: threading.Event | None = None,
        driver: Callable[[], str] | None = None,
    ) -> None:
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
        self._head_start = None  # a COPY begun early: see CopySteps._begin_early
        self._automatic: dict[str, str] = {}

    # --- entry point ---

    def run(self) -> BuildResult:
        try:
            self._prepare()
            return self._execute()
        except BaseException as err:
            if isinstance(err, StrataError) and not self._failed_step:
                line = err.line if isinstance(err, (DockerfileError, BuildError)) else 0
                self.emit(
                    BuildEvent(
                        ERROR,
                        line=line,
                        message=str(err),
                        exit_code=err.exit_status if isinstance(err, BuildError) else None,
                    )
                )
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
        # BuildKit's TARGETSTAGE: the stage being built, "default" for an unnamed last one.
        automatic["TARGETSTAGE"] = required[-1].name or "default"
        self._automatic = automatic
        meta = plan.meta_env(args, automatic)
        planned: dict[int, StagePlan] = {}
        for stage in required:
            planned[stage.index] = self._plan_stage(stage, plan, meta, args, planned)
        self.stage_plans = [planned[s.index] for s in required]

    def _plan_stage(
        self,
        stage: Stage,
        plan: BuildPlan,
        meta: Mapping[str, str],
        build_args: Mapping[str, str],
        planned: Mapping[int, StagePlan],
    ) -> StagePlan:
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
        if not isinstance(base, Stage):
            _ensure_path(config)
            # Docker shows an image that sets neither as WorkingDir "" and User ""; BuildKit's
            # empty image (scratch) has WorkingDir / (dockerfile2llb emptyImage).
            config.setdefault("WorkingDir", "/" if base == "scratch" else "")
            config.setdefault("User", "")
        instructions: list[Instruction] = []
        triggers = list(config.get("OnBuild") or [])
        for expression in triggers:
            instructions.append(self._trigger(expression, stage.line))
        config["OnBuild"] = None if triggers else config.get("OnBuild")
        instructions += stage.instructions
        total = len(instructions) + 1
        from_ins = stage.from_
        inherited = planned[base.index].state if isinstance(base, Stage) else None
        state = inherited.inherited() if inherited is not None else _StageState()
        state.predefined = {k: v for k, v in build_args.items() if k in PREDEFINED_ARGS and k not in state.args}
        shown = (base.name or str(base.index)) if isinstance(base, Stage) else base
        from_step = Step(
            stage,
            1,
            total,
            from_ins,
            from_ins,
            f"FROM {shown}",
            from_ins.line,
            {},
            {},
            list(config.get("Env") or []),
            config,
            copy.deepcopy(config),
            from_ref=base_ref,
        )
        steps = [from_step]
        automatic = self._automatic
        for number, ins in enumerate(instructions, start=2):
            before = steps[-1].config_after
            env_list = list(before.get("Env") or [])
            image_env = env_dict(env_list)
            visible = state.visible_args(image_env)
            expanded, used = ins.expanded_with(state.build_env(image_env), plan.escape, self.filename)
            expanded = self._normalize(expanded)
            used_args = {n: visible[n] for n in used if n in visible}
            run_args = {}
            if isinstance(ins, Run) or (isinstance(ins, (Copy, Add)) and ins.contents):
                # A RUN sees every declared ARG, and so does a heredoc COPY/ADD's expansion.
                run_args = dict(visible)
                used_args = dict(visible)
            after = copy.deepcopy(before)
            if isinstance(expanded, Arg):
                for item in expanded.args:
                    value = _arg_value(item.name, item.default, build_args, meta, automatic)
                    if value is not None:  # an ARG with no value leaves the environment alone
                        state.args[item.name] = value
                        state.arg_wins.add(item.name)
                    state.predefined.pop(item.name, None)
            elif isinstance(expanded, Maintainer):
                pass
            else:
                if isinstance(expanded, Env):
                    state.arg_wins.difference_update(key for key, _ in expanded.pairs)
                _apply_config(after, expanded, state)
            text = ins.source if ins.line != stage.line or number == 1 else f"ONBUILD {ins.source}"
            step = Step(
                stage, number, total, ins, expanded, text, ins.line, used_args, run_args, env_list, before, after
            )
            self._check_step(step, plan, planned)
            steps.append(step)
        return StagePlan(stage, base_ref, steps, state)

    def _normalize(self, ins: Instruction) -> Instruction:
        """Checks that need the expanded words: EXPOSE specs become their port keys (sorted,
        so ``EXPOSE 80 2375`` and ``EXPOSE 2375 80`` are one step for the cache, as in both of
        Docker's builders), and a VOLUME must not expand to nothing."""
        if isinstance(ins, Expose):
            keys: set[str] = set()
            for spec in ins.ports:
                try:
                    keys.update(exposed_port_keys(spec))
                except ValueError as err:
                    raise DockerfileError(f"EXPOSE: {err}", ins.line, self.filename) from None
            return dataclasses.replace(ins, ports=tuple(sorted(keys, key=_port_order)))
        if isinstance(ins, Volume) and any(not p.strip() for p in ins.paths):
            raise DockerfileError("VOLUME specified can not be an empty string", ins.line, self.filename)
        return ins

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
                raise DockerfileError(
                    f"cannot copy from stage {_q(ref)}, it needs to be defined before current stage "
                    f"{_q(step.stage.ref)}",
                    step.line,
                    self.filename,
                )
            return stage
        try:
            return self.store.images.resolve(ref)
        except (ImageNotFound, StrataError):
            raise DockerfileError(
                f"{step.instruction.keyword} --from={ref}: no stage or image named {ref} "
                f"(stages: {', '.join(s.name for s in plan.stages if s.name) or 'none named'})",
                step.line,
                self.filename,
            ) from None

    def _check_step(self, step: Step, plan: BuildPlan, planned: Mapping[int, StagePlan]) -> None:
        ins = step.expanded
        assert self.ctx is not None
        if isinstance(ins, (Copy, Add)):
            keyword = ins.keyword
            if isinstance(ins, Copy) and ins.from_:
                step.from_ref = self._resolve_ref(ins.from_, step, plan, planned)
            else:
                for src in ins.sources:
                    if src.startswith(URL_PREFIXES):
                        if isinstance(ins, Copy):
                            raise DockerfileError(
                                f"COPY: source can't be a URL: {src} (use ADD)", step.line, self.filename
                            )
                        continue
                    step.sources += self.ctx.sources(src, step.line, keyword)
            # Several sources need a directory destination: checked when the step runs, against
            # the image (copy.check_several), since an existing directory needs no "/".
            if ins.chmod:
                from .chmod import parse_chmod

                parse_chmod(ins.chmod, step.line, self.filename, keyword)
        elif isinstance(ins, Run):
            from .shell import expand_word

            env = {**step.run_args, **env_dict(step.env)}
            try:
                mounts = ins.mounts(lambda w: expand_word(w, env, plan.escape))
            except DockerfileError as err:
                raise DockerfileError(err.detail, step.line, self.filename) from None
            for mount in mounts:
                if mount.from_:
                    step.mount_refs[mount.from_] = self._resolve_ref(mount.from_, step, plan, planned)
                elif mount.type == "bind":
                    self.ctx.resolve(
                        self.ctx.clean_source(mount.source or ".", step.line, "RUN --mount"), step.line, "RUN --mount"
                    )
                if mount.type in ("secret", "ssh") and mount.required:
                    raise DockerfileError(
                        f"RUN --mount=type={mount.type}: not supported by strata build", step.line, self.filename
                    )

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
        image = self.store.images.create(
            result.config, result.top_layer, parent=base_image, tags=list(self.options.tags)
        )
        self.emit(BuildEvent(FINISHED, image=image.id, tags=image.familiar_tags))
        return BuildResult(image.id, image.familiar_tags, self.steps_run + self.steps_cached, self.steps_cached)

    def _check_cancel(self) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise Cancelled("build")

    def _event(self, step: Step, status: str, **extra: Any) -> BuildEvent:
        return BuildEvent(
            status,  # type: ignore[arg-type]
            step=step.number,
            total=step.total,
            stage=step.stage_label,
            instruction=step.text,
            line=step.line,
            vertex=self.vertex,
            **extra,
        )

    def _run_stage(self, sp: StagePlan) -> Snapshot:
        first = sp.steps[0]
        self.vertex += 1
        self._check_cancel()
        snap = self._from_snapshot(sp)
        self.emit(self._event(first, CACHED, layer=snap.top_layer))
        self.steps_cached += 1
        missed = _Missed()
        for step in sp.steps[1:]:
            self._check_cancel()
            self.vertex += 1
            snap = self._run_step(step, snap, missed)
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
            config = new_config(
                [], [], copy.deepcopy(config_after), architecture=host_architecture(), created=now_rfc3339()
            )
            return Snapshot(base_key("scratch"), config, None, None)
        config = copy.deepcopy(base.config)
        config["config"] = copy.deepcopy(config_after)
        for drop in ("container", "container_config", "docker_version", "id", "parent"):
            config.pop(drop, None)
        config.setdefault("history", [])
        return Snapshot(base_key(base.id), config, base.top_layer, base.id)

    def _run_step(self, step: Step, snap: Snapshot, missed: _Missed) -> Snapshot:
        ins = step.expanded
        started = time.monotonic()
        sources_sum: str | None = None
        lines: Callable[[], list[str]] | None = None
        prepared: Any = None
        if isinstance(ins, (Copy, Add)):
            sources_sum, lines, prepared = self._copy_sources(step, snap)
        canonical = _canonical(ins)
        layer_step = isinstance(ins, _LAYER_STEPS)
        parent = snap.key if layer_step else snap.chain_key
        rebuilt = missed.layers if layer_step else missed.any
        context = self._op_context(step) if layer_step else {}
        # A COPY/ADD does not read the environment: only its expanded words (in `canonical`).
        env = step.env if not isinstance(ins, (Copy, Add)) else []
        key = step_key(parent, json.dumps([canonical, context], sort_keys=True), step.used_args, env, sources_sum)
        detail = {
            "instruction": step.instruction.source,
            "expanded": canonical,
            "context": context,
            "args": step.used_args,
            "env": env,
            "sources": sources_sum,
            "stage": step.stage_label,
            "line": step.line,
            "keyword": ins.keyword,
        }
        if isinstance(prepared, dict) and "shape" in prepared:
            detail["shape"] = prepared["shape"]
        hit = None if self.options.no_cache else self.cache.get(key)
        if hit is not None:
            self._drop_head_start()
            self._touched.append(key)
            self.steps_cached += 1
            created = str(json.loads(hit.config).get("created") or now_rfc3339())
            config = self._image_config(step, snap, hit.layer, created)
            self.emit(self._event(step, CACHED, layer=hit.layer))
            return self._after(snap, key, layer_step, config, hit.layer or snap.top_layer)
        missed.any = True
        missed.layers = missed.layers or layer_step
        files = fingerprints(lines()) if lines is not None and not self.options.no_cache else None
        reason = "--no-cache" if self.options.no_cache else self.cache.explain(parent, rebuilt, detail, files)
        self.emit(self._event(step, RUNNING, reason=reason))
        hold(f"build.step{step.number}.running")
        try:
            new_layer, empty = self._execute_step(step, snap, key, prepared)
        except BuildError as err:
            self._failed_step = True
            self.emit(
                self._event(
                    step,
                    ERROR,
                    reason=reason,
                    message=str(err),
                    exit_code=err.exit_status,
                    duration_s=time.monotonic() - started,
                )
            )
            raise
        except StrataError as err:
            self._failed_step = True
            self.emit(self._event(step, ERROR, reason=reason, message=str(err), duration_s=time.monotonic() - started))
            raise
        hold(f"build.step{step.number}.executed")  # its layer made, the cache not told
        config = self._image_config(step, snap, None if empty else new_layer, now_rfc3339())
        top = new_layer if not empty else snap.top_layer
        entry = CacheEntry(
            key, parent, None if empty else new_layer, canonical_json(config), step.instruction.source, detail
        )
        self.cache.put(entry)
        if lines is not None and sources_sum is not None:
            self.cache.save_sources(sources_sum, files if files is not None else fingerprints(lines()))
        hold(f"build.step{step.number}.recorded")  # cached, not yet reported done
        self.steps_run += 1
        self.emit(
            self._event(
                step, DONE, reason=reason, layer=None if empty else new_layer, duration_s=time.monotonic() - started
            )
        )
        return self._after(snap, key, layer_step, config, top)

    @staticmethod
    def _after(snap: Snapshot, key: str, layer_step: bool, config: dict[str, Any], top: str | None) -> Snapshot:
        """The snapshot after a step keyed `key`: a layer step moves both keys."""
        return Snapshot(key if layer_step else snap.key, config, top, snap.base_image, meta_key=key)

    def _op_context(self, step: Step) -> dict[str, Any]:
        """What a layer step reads from the config besides its own words, as BuildKit's
        operation does: a RUN its shell, directory, user and the sources of its mounts; a
        COPY/ADD the directory its relative paths start at; a WORKDIR the path it makes and
        the user who owns it. ENV and ARG reach a RUN's key through its environment."""
        before = step.config_before
        ins = step.expanded
        if isinstance(ins, Run):
            mounts = {
                name: self.snapshots[ref.index].key if isinstance(ref, Stage) else ref.id
                for name, ref in sorted(step.mount_refs.items())
            }
            return {
                "shell": shell_form(before, [], False),
                "workdir": before.get("WorkingDir") or "/",
                "user": before.get("User") or "",
                "mounts": mounts,
            }
        if isinstance(ins, Workdir):
            return {"path": step.config_after.get("WorkingDir") or "/", "user": before.get("User") or ""}
        return {"workdir": before.get("WorkingDir") or "/"}

    def _image_config(self, step: Step, snap: Snapshot, layer_id: str | None, created: str) -> dict[str, Any]:
        """The image config after `step`: the snapshot's, with the step's container config,
        its history entry and its layer. A cache hit passes the time the step was first made,
        so an unchanged rebuild gives the same image."""
        config = copy.deepcopy(snap.config)
        config["config"] = copy.deepcopy(step.config_after)
        if isinstance(step.expanded, Maintainer):
            config["author"] = step.expanded.name
        config["created"] = created
        history: dict[str, Any] = {"created": created, "created_by": self._created_by(step), "comment": _COMMENT}
        if layer_id is None:
            history["empty_layer"] = True
        else:
            layer = self.store.layers.get(layer_id)
            rootfs = config.setdefault("rootfs", {"type": "layers", "diff_ids": []})
            rootfs["diff_ids"] = [*rootfs.get("diff_ids", []), layer.diff_id]
        config["history"] = [*(config.get("history") or []), history]
        return config

    def _created_by(self, step: Step) -> str:
        ins = step.expanded
        if isinstance(ins, Run):
            argv = shell_form(step.config_before, ins.command, ins.json)
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
        from .layerwriter import LayerWriter

        path = step.config_after.get("WorkingDir") or "/"
        view = self._view(snap)
        real = view.resolve_path(path)
        hit = view.lookup(real)
        if hit is not None:
            if hit.entry.type != DIR:
                raise DockerfileError(f"WORKDIR {path}: {real} exists and is not a directory", step.line, self.filename)
            return None, True
        owner = _user_owner(view, step.config_before.get("User") or "")
        with self.store.layers.staging() as st:
            writer = LayerWriter(str(st.diff), view, self.filename, step.line, "WORKDIR")
            writer.ensure_dir(real, owner, time.time())
            return self.store.layers.add_dir(st, writer.finish(), snap.top_layer, self._created_by(step)).id, False

    def _new_scratch(self, what: str) -> Path:
        path = self.store.tmp / f"stage-{what}-{secrets.token_hex(8)}"
        path.mkdir(mode=0o700)
        (path / "owner").write_text(f"{os.getpid()}\n")
        self._scratch.append(path)
        return path


def build(
    store: Store,
    options: BuildOptions,
    on_event: EventSink | None = None,
    cancel: threading.Event | None = None,
    driver: Callable[[], str] | None = None,
) -> BuildResult:
    """Build ``options`` in ``store``; see ``Builder``."""
    return Builder(store, options, on_event, cancel, driver).run()


__all__ = ["BuildOptions", "Builder", "Step", "build", "find_base_image"]


def _user_owner(view: UnionView, user: str) -> Owner:
    """Who owns a directory WORKDIR makes: the USER in effect, found as BuildKit's file
    operations find it (solver/llbsolver/ops/user_linux.go): a name through the image's
    /etc/passwd (uid and primary gid; 0:0 when it is not there), a number as uid and gid,
    a ``:group`` through /etc/group or as a number."""
    from .copyitems import Owner

    if not user:
        return Owner()
    name, _, group = user.partition(":")

    def rows(path: str) -> list[list[str]]:
        try:
            with view.open(path) as fh:
                text = fh.read(16 << 20).decode("utf-8", "replace")
        except (OSError, StrataError):
            return []
        return [line.split(":") for line in text.splitlines() if line and not line.startswith("#")]

    uid = gid = 0
    if name.isdigit():
        uid = gid = int(name)
    else:
        for row in rows("/etc/passwd"):
            if len(row) >= 4 and row[0] == name and row[2].isdigit() and row[3].isdigit():
                uid, gid = int(row[2]), int(row[3])
                break
    if group.isdigit():
        gid = int(group)
    elif group:
        for row in rows("/etc/group"):
            if len(row) >= 3 and row[0] == group and row[2].isdigit():
                gid = int(row[2])
                break
    return Owner(uid, gid)


def _arg_value(
    name: str,
    default: str | None,
    build_args: Mapping[str, str],
    meta: Mapping[str, str],
    automatic: Mapping[str, str],
) -> str | None:
    """The value ``ARG name[=default]`` gives: --build-arg, else the default, else the global
    ARG or automatic one of that name, else none."""
    if name in build_args:
        return build_args[name]
    if default is not None:
        return default
    if name in meta:
        return meta[name]
    return automatic.get(name)


def _port_order(key: str) -> tuple[int, str]:
    number, _, proto = key.partition("/")
    return int(number), proto


def _ensure_path(config: dict[str, Any]) -> None:
    """A stage whose base sets no PATH gets the default one in its Env, as BuildKit
    writes it, so ``ENV PATH=/x:$PATH`` expands as it does under Docker."""
    env = list(config.get("Env") or [])
    if not any(e.startswith("PATH=") for e in env):
        from ..runtime.command import DEFAULT_PATH

        config["Env"] = [*env, f"PATH={DEFAULT_PATH}"]
