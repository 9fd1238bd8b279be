"""Typed instructions grouped into build stages, and what a target needs.

``parse_stages`` gives a ``BuildPlan``: the ARGs declared before the first FROM, then one
``Stage`` per FROM. ``BuildPlan.required_stages`` tells the builder which stages a target
needs (FROM <stage>, COPY --from, RUN --mount from=), so the others are not built.

``check_instructions`` is the editor's view of the same work: it collects every problem
(bad instructions, duplicate stage names, a missing FROM, stage cycles) instead of raising
the first, and checks only what does not depend on build args.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from explorer.builder.instructions import Arg, Copy, Env, From, Instruction, Onbuild, Run, parse_instruction
from explorer.builder.parser import (
    Diagnostic,
    Node,
    ParsedDockerfile,
    parse_leniently,
    suggest,
    syntax_diagnostics,
)
from explorer.builder.parser import go_quote as _q
from explorer.builder.shell import ShellExpansionError, expand_word
from explorer.errors import DockerfileError

__all__ = [
    "BuildPlan",
    "Stage",
    "check_instructions",
    "parse_stages",
    "stage_names",
]


@dataclass
class Stage:
    """One FROM and the instructions up to the next FROM."""

    name: str | None
    index: int
    base: str
    platform: str | None
    instructions: list[Instruction]
    from_: From

    @property
    def line(self) -> int:
        return self.from_.line

    @property
    def ref(self) -> str:
        """How messages name the stage: its name, or ``stage-<index>`` as BuildKit calls an
        unnamed one."""
        return self.name if self.name is not None else f"stage-{self.index}"


@dataclass
class BuildPlan:
    """All stages of a Dockerfile and the ARGs declared before the first FROM."""

    meta_args: list[Arg]
    stages: list[Stage]
    filename: str = "Dockerfile"
    escape: str = "\\"

    def find_stage(self, ref: str) -> Stage | None:
        """A stage by name (case-insensitive) or by index; None if it is not a stage."""
        lowered = ref.lower()
        for stage in self.stages:
            if stage.name == lowered:
                return stage
        if ref.isdigit():
            index = int(ref)
            if index < len(self.stages):
                return self.stages[index]
        return None

    def target(self, name: str | None = None) -> Stage:
        """The stage ``--target`` names, or the last stage."""
        if name is None or name == "":
            return self.stages[-1]
        lowered = name.lower()
        for stage in self.stages:
            if stage.name == lowered:
                return stage
        names = [s.name for s in self.stages if s.name]
        hint = suggest(name, names) if names else None
        known = ", ".join(names) if names else "none (name stages with FROM <image> AS <name>)"
        tail = f" (did you mean {hint}?)" if hint else f"; stages: {known}"
        raise DockerfileError(f"target stage {_q(name)} could not be found{tail}", 0, self.filename)

    def meta_env(
        self, build_args: Mapping[str, str] | None = None, automatic: Mapping[str, str] | None = None
    ) -> dict[str, str]:
        """The global scope FROM lines are expanded with: declared ARGs with their values."""
        args = build_args or {}
        env: dict[str, str] = dict(automatic or {})
        for arg in self.meta_args:
            for item in arg.args:
                if item.name in args:
                    env[item.name] = args[item.name]
                elif item.default is not None:
                    env[item.name] = self._expand(item.default, env, arg.line)
        return env

    def _expand(self, word: str, env: Mapping[str, str], line: int) -> str:
        try:
            return expand_word(word, env, self.escape)
        except ShellExpansionError as err:
            raise DockerfileError(err.message, line, self.filename) from None

    def base_of(self, stage: Stage, build_args: Mapping[str, str] | None = None) -> Stage | str:
        """The earlier stage ``stage`` builds on, or the image reference (ARGs expanded)."""
        base = self._expand(stage.base, self.meta_env(build_args), stage.line)
        if not base:
            raise DockerfileError(f"base name ({stage.base}) should not be blank", stage.line, self.filename)
        lowered = base.lower()
        for earlier in self.stages[: stage.index]:
            if earlier.name == lowered:
                return earlier
        return base

    def _stage_env(
        self, stage: Stage, upto: int, meta: Mapping[str, str], build_args: Mapping[str, str]
    ) -> dict[str, str]:
        # ARG and ENV as the builder would have them just before instruction ``upto``;
        # enough to resolve COPY --from=$X, which is all it is used for.
        env: dict[str, str] = {}
        for instruction in stage.instructions[:upto]:
            if isinstance(instruction, Arg):
                for item in instruction.args:
                    if item.name in build_args:
                        env[item.name] = build_args[item.name]
                    elif item.default is not None:
                        env[item.name] = self._expand(item.default, env, instruction.line)
                    elif item.name in meta:
                        env[item.name] = meta[item.name]
            elif isinstance(instruction, Env):
                for key, value in instruction.pairs:
                    env[self._expand(key, env, instruction.line)] = self._expand(value, env, instruction.line)
        return env

    def dependencies(
        self, stage: Stage, build_args: Mapping[str, str] | None = None, *, resolve_args: bool = True
    ) -> list[Stage]:
        """Stages ``stage`` reads from: its base and every COPY --from / RUN --mount from=.

        With ``resolve_args`` false, references that use variables are skipped: the editor
        checks what it can without knowing the build args.
        """
        args = dict(build_args or {})
        found: dict[int, Stage] = {}
        # A base stage's ONBUILD triggers run first in this stage, so what they copy or mount
        # from is needed too (BuildKit testOnBuildInheritedStageWithFrom).
        triggers: list[Instruction] = []
        if resolve_args or "$" not in stage.base:
            base = self.base_of(stage, args)
            if isinstance(base, Stage):
                found[base.index] = base
                triggers = [i.trigger for i in base.instructions if isinstance(i, Onbuild)]
        meta = self.meta_env(args) if resolve_args else {}
        for position, instruction in [(0, t) for t in triggers] + list(enumerate(stage.instructions)):
            refs: list[str] = []
            if isinstance(instruction, Copy) and instruction.from_:
                ref = instruction.from_
                if "$" in ref:
                    if not resolve_args:
                        continue
                    ref = self._expand(ref, self._stage_env(stage, position, meta, args), instruction.line)
                refs.append(ref)
            elif isinstance(instruction, Run):
                refs += instruction.mount_sources()
            for ref in refs:
                other = self.find_stage(ref)
                if other is None:
                    if ref.isdigit():
                        raise DockerfileError(
                            f"invalid stage index {ref}: there are {len(self.stages)} stages",
                            instruction.line,
                            self.filename,
                        )
                    continue  # an image reference: the builder pulls or finds it
                if other is stage:
                    raise DockerfileError(
                        f"circular dependency detected on stage: {stage.ref}", instruction.line, self.filename
                    )
                found[other.index] = other
        return [found[i] for i in sorted(found)]

    def required_stages(self, target: str | None = None, build_args: Mapping[str, str] | None = None) -> list[Stage]:
        """The stages needed to build ``target`` (default: the last), dependencies first."""
        return self._required(self.target(target), build_args, resolve_args=True)

    def _required(self, goal: Stage, build_args: Mapping[str, str] | None, *, resolve_args: bool) -> list[Stage]:
        order: list[Stage] = []
        state: dict[int, str] = {}

        def visit(stage: Stage) -> None:
            mark = state.get(stage.index)
            if mark == "done":
                return
            if mark == "active":
                raise DockerfileError(f"circular dependency detected on stage: {stage.ref}", stage.line, self.filename)
            state[stage.index] = "active"
            for dep in self.dependencies(stage, build_args, resolve_args=resolve_args):
                visit(dep)
            state[stage.index] = "done"
            order.append(stage)

        visit(goal)
        return order


def _instructions_and_errors(
    parsed: ParsedDockerfile,
) -> tuple[list[tuple[Node, Instruction]], list[DockerfileError]]:
    done: list[tuple[Node, Instruction]] = []
    errors: list[DockerfileError] = []
    for node in parsed.nodes:
        try:
            done.append((node, parse_instruction(node, parsed.filename)))
        except DockerfileError as err:
            errors.append(err)
    return done, errors


def _group(
    parsed: ParsedDockerfile,
    typed: Iterable[tuple[Node, Instruction]],
    on_error: Callable[[DockerfileError], None],
) -> BuildPlan:
    plan = BuildPlan(meta_args=[], stages=[], filename=parsed.filename, escape=parsed.escape)
    names: dict[str, Stage] = {}
    for _node, instruction in typed:
        if isinstance(instruction, From):
            stage = Stage(
                name=instruction.stage_name,
                index=len(plan.stages),
                base=instruction.base,
                platform=instruction.platform,
                instructions=[],
                from_=instruction,
            )
            if stage.name is not None:
                if stage.name in names:
                    on_error(
                        DockerfileError(
                            f"duplicate stage name {_q(stage.name)} (first defined on line {names[stage.name].line})",
                            instruction.line,
                            parsed.filename,
                        )
                    )
                else:
                    names[stage.name] = stage
            plan.stages.append(stage)
        elif not plan.stages:
            if isinstance(instruction, Arg):
                plan.meta_args.append(instruction)
            else:
                on_error(
                    DockerfileError(
                        f"{instruction.keyword} cannot come before the first FROM (only ARG can)",
                        instruction.line,
                        parsed.filename,
                    )
                )
        else:
            plan.stages[-1].instructions.append(instruction)
    if not plan.stages:
        line = plan.meta_args[-1].line if plan.meta_args else 0
        on_error(DockerfileError("dockerfile contains no stages to build (it has no FROM)", line, parsed.filename))
    return plan


def parse_stages(parsed: ParsedDockerfile) -> BuildPlan:
    """Typed instructions grouped into stages; the first problem raises ``DockerfileError``."""
    typed, errors = _instructions_and_errors(parsed)
    if errors:
        raise errors[0]

    def fail(err: DockerfileError) -> None:
        raise err

    return _group(parsed, typed, fail)


def check_instructions(parsed: ParsedDockerfile) -> list[Diagnostic]:
    """Every instruction-level and stage-level problem, for the editor; never raises."""
    found: list[Diagnostic] = []
    ends = {node.start_line: node.end_line for node in parsed.nodes}

    def add(err: DockerfileError) -> None:
        line = max(err.line, 1)
        found.append(Diagnostic(line, max(ends.get(err.line, line), line), err.detail, "error"))

    typed, errors = _instructions_and_errors(parsed)
    for err in errors:
        if not err.detail.startswith("unknown instruction:"):  # the parser reports those
            add(err)
    try:
        plan = _group(parsed, typed, add)
        for stage in plan.stages:
            plan._required(stage, None, resolve_args=False)
    except DockerfileError as err:
        add(err)
    except Exception as err:  # the editor must survive any input
        found.append(Diagnostic(1, 1, f"internal error while checking: {err}", "error"))
    return found


def stage_names(text: str) -> list[str]:
    """The stage names a ``--target`` can pick in ``text``, in order, read as the build reads
    them (continuations joined, the escape directive honoured, names folded to lower case,
    invalid names left out); never raises, since the editor calls it on every edit."""
    try:
        parsed = parse_leniently(text)
    except Exception:  # the editor must survive any input
        return []
    names: list[str] = []
    for node in parsed.nodes:
        if node.cmd != "from":
            continue
        try:
            instruction = parse_instruction(node, parsed.filename)
        except DockerfileError:
            continue
        if isinstance(instruction, From) and instruction.stage_name and instruction.stage_name not in names:
            names.append(instruction.stage_name)
    return names


def diagnostics(text: str, filename: str = "Dockerfile") -> list[Diagnostic]:
    """Every problem the editor can show for ``text``, sorted by line; never raises.

    Syntax errors come from the parser (which keeps going after each one); the meaning of
    each instruction (arguments, flags, stages) is checked by ``instructions.py`` and here.
    Unknown instructions are warnings with a spelling suggestion.
    """
    parsed, found = syntax_diagnostics(text, filename)
    if parsed is not None and parsed.nodes:
        found += check_instructions(parsed)
    found.sort(key=lambda d: (d.line, d.severity != "error"))
    return found
