"""Parse nodes → typed instructions, grouped into build stages.

Each instruction keeps its raw words: variables are expanded by the builder at build
time with the ARGs and ENV in effect at that step (``expanded(expand)``), because the same
word can mean different things in different stages and the cache key needs the value that
was used. What can be checked without a build is checked here, with the line, so a typo
fails in the editor instead of halfway through a build: argument counts, flags and their
values, stage names, mount options, durations.

``parse_stages`` gives a ``BuildPlan``; ``BuildPlan.required_stages`` tells the builder which
stages a target needs (FROM <stage>, COPY --from, RUN --mount from=), so the others are
not built.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import ClassVar, Self, TypedDict

from explorer.build.parser import (
    INSTRUCTIONS,
    Diagnostic,
    Heredoc,
    Node,
    ParsedDockerfile,
    parse_heredoc_marker,
    suggest,
)
from explorer.build.parser import go_quote as _q
from explorer.build.shell import ShellExpansionError, expand_with_matches, expand_word
from explorer.errors import DockerfileError

__all__ = [
    "AUTOMATIC_PLATFORM_ARGS",
    "PREDEFINED_ARGS",
    "Add",
    "Arg",
    "ArgDef",
    "BuildPlan",
    "Cmd",
    "Copy",
    "Entrypoint",
    "Env",
    "Expander",
    "Expose",
    "From",
    "Healthcheck",
    "Instruction",
    "Label",
    "Maintainer",
    "Mount",
    "Onbuild",
    "Run",
    "Shell",
    "SourceContent",
    "Stage",
    "StopSignal",
    "User",
    "Volume",
    "Workdir",
    "check_instructions",
    "parse_instruction",
    "parse_mount",
    "parse_stages",
]

Expander = Callable[[str], str]

#: ARGs every build may set without declaring them; Docker keeps them out of the image
#: history and the cache key so a proxy change does not invalidate a build.
PREDEFINED_ARGS: frozenset[str] = frozenset(
    {
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "FTP_PROXY",
        "ftp_proxy",
        "NO_PROXY",
        "no_proxy",
        "ALL_PROXY",
        "all_proxy",
    }
)

#: ARGs BuildKit defines itself in the global scope (values come from the platforms).
AUTOMATIC_PLATFORM_ARGS: tuple[str, ...] = (
    "BUILDPLATFORM",
    "BUILDOS",
    "BUILDARCH",
    "BUILDVARIANT",
    "TARGETPLATFORM",
    "TARGETOS",
    "TARGETARCH",
    "TARGETVARIANT",
)

_STAGE_NAME = re.compile(r"[a-z][a-z0-9\-_.]*\Z")


class _InstructionError(Exception):
    """Internal: a problem with the instruction being parsed; the caller adds the line."""


# --- flags --------------------------------------------------------------------------


@dataclass
class _FlagSpec:
    kind: str  # "bool", "string" or "strings"
    value: str | bool | None = None
    values: list[str] = field(default_factory=list)
    used: bool = False


class _Flags:
    """The builder flags one instruction accepts, checked like BuildKit's BFlags."""

    def __init__(self, keyword: str, raw: list[str], **kinds: str) -> None:
        self.keyword = keyword
        self.raw = raw
        # Python names: from_ is --from, keep_git_dir is --keep-git-dir.
        self.specs = {name.rstrip("_").replace("_", "-"): _FlagSpec(kind) for name, kind in kinds.items()}

    def parse(self) -> _Flags:
        for arg in self.raw:
            if not arg.startswith("--"):
                raise _InstructionError(f"{self.keyword}: flag should start with --: {arg}")
            if arg == "--":
                break
            name, has_value, value = arg[2:].partition("=")
            spec = self.specs.get(name)
            if spec is None:
                raise _InstructionError(self._unknown(name))
            if spec.used and spec.kind != "strings":
                raise _InstructionError(f"{self.keyword}: duplicate flag --{name}")
            spec.used = True
            if spec.kind == "bool":
                if has_value and value == "":
                    raise _InstructionError(f"{self.keyword}: missing a value on flag --{name}")
                lowered = value.lower()
                if lowered not in ("", "true", "false"):
                    raise _InstructionError(
                        f"{self.keyword}: expecting a boolean value for flag --{name}, not: {value}"
                    )
                spec.value = lowered != "false"
            else:
                if not has_value:
                    raise _InstructionError(
                        f"{self.keyword}: missing a value on flag --{name} (write --{name}=<value>)"
                    )
                if spec.kind == "strings":
                    spec.values.append(value)
                else:
                    spec.value = value
        return self

    def _unknown(self, name: str) -> str:
        if not self.specs:
            return f"{self.keyword} does not take flags: --{name}"
        hint = suggest(name, list(self.specs))
        known = ", ".join(f"--{n}" for n in sorted(self.specs))
        tail = f" (did you mean --{hint}?)" if hint else f" (known flags: {known})"
        return f"unknown flag for {self.keyword}: --{name}{tail}"

    def string(self, name: str) -> str | None:
        value = self.specs[name].value
        return value if isinstance(value, str) else None

    def flag(self, name: str) -> bool:
        return self.specs[name].value is True

    def strings(self, name: str) -> tuple[str, ...]:
        return tuple(self.specs[name].values)


# --- records ------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Instruction:
    """Base of every typed instruction: where it is and what it said."""

    keyword: ClassVar[str] = ""
    line: int
    end_line: int
    source: str

    def expanded(self, expand: Expander) -> Self:
        """A copy with variables expanded; instructions whose words stay raw return self."""
        return self

    def expanded_with(
        self, env: Mapping[str, str], escape: str = "\\", filename: str = "Dockerfile"
    ) -> tuple[Self, frozenset[str]]:
        """Expand with ``env``; also returns the names looked up that ``env`` had.

        The names are what the build cache keys the step on ("which ARG did this use").
        A bad ``${…}`` becomes a ``DockerfileError`` at this instruction's line.
        """
        used: set[str] = set()

        def expand(word: str) -> str:
            result = expand_with_matches(word, env, escape)
            used.update(result.matched)
            return result.value

        try:
            return self.expanded(expand), frozenset(used)
        except ShellExpansionError as err:
            raise DockerfileError(err.message, self.line, filename) from None


@dataclass(frozen=True)
class ArgDef:
    name: str
    default: str | None = None


@dataclass(frozen=True)
class SourceContent:
    """A COPY/ADD source given inline as a heredoc."""

    path: str
    data: str
    expand: bool


@dataclass(frozen=True)
class Mount:
    """One ``RUN --mount=…`` after parsing (values expanded when an expander was given)."""

    type: str = "bind"
    target: str = ""
    source: str = ""
    from_: str = ""
    readonly: bool = True
    id: str = ""
    sharing: str = ""
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None
    required: bool = False
    size: int | None = None


@dataclass(frozen=True, kw_only=True)
class From(Instruction):
    keyword: ClassVar[str] = "FROM"
    base: str
    stage_name: str | None = None
    platform: str | None = None

    def expanded(self, expand: Expander) -> Self:
        platform = expand(self.platform) if self.platform is not None else None
        return replace(self, base=expand(self.base), platform=platform)


@dataclass(frozen=True, kw_only=True)
class Run(Instruction):
    """RUN in shell form (``json`` false: run through SHELL) or exec form.

    The command itself is never expanded by the builder: the shell in the container does
    that. Mount options are, hence ``mounts(expand)``.
    """

    keyword: ClassVar[str] = "RUN"
    command: tuple[str, ...]
    json: bool = False
    heredocs: tuple[Heredoc, ...] = ()
    mount_specs: tuple[str, ...] = ()
    network: str | None = None
    security: str | None = None

    @property
    def prepend_shell(self) -> bool:
        return not self.json

    def mounts(self, expand: Expander | None = None) -> list[Mount]:
        """The parsed mounts; pass the build's expander to resolve ``$VAR`` in values."""
        return [parse_mount(spec, expand) for spec in self.mount_specs]

    def mount_sources(self) -> list[str]:
        """The ``from=`` of each mount that names one (a stage or an image)."""
        found = []
        for spec in self.mount_specs:
            for key, value in _mount_fields(spec):
                if key == "from" and value:
                    found.append(value)
        return found


@dataclass(frozen=True, kw_only=True)
class _Transfer(Instruction):
    sources: tuple[str, ...]
    dest: str
    contents: tuple[SourceContent, ...] = ()
    chown: str | None = None
    chmod: str | None = None
    link: bool = False

    def expanded(self, expand: Expander) -> Self:
        return replace(
            self,
            sources=tuple(expand(s) for s in self.sources),
            dest=expand(self.dest),
            chown=expand(self.chown) if self.chown is not None else None,
            chmod=expand(self.chmod) if self.chmod is not None else None,
        )


@dataclass(frozen=True, kw_only=True)
class Copy(_Transfer):
    keyword: ClassVar[str] = "COPY"
    from_: str | None = None

    def expanded(self, expand: Expander) -> Self:
        done = super().expanded(expand)
        return replace(done, from_=expand(self.from_)) if self.from_ is not None else done


@dataclass(frozen=True, kw_only=True)
class Add(_Transfer):
    keyword: ClassVar[str] = "ADD"
    keep_git_dir: bool = False
    checksum: str | None = None

    def expanded(self, expand: Expander) -> Self:
        done = super().expanded(expand)
        return replace(done, checksum=expand(self.checksum)) if self.checksum is not None else done


@dataclass(frozen=True, kw_only=True)
class Env(Instruction):
    keyword: ClassVar[str] = "ENV"
    pairs: tuple[tuple[str, str], ...]

    def expanded(self, expand: Expander) -> Self:
        return replace(self, pairs=tuple((expand(k), expand(v)) for k, v in self.pairs))


@dataclass(frozen=True, kw_only=True)
class Label(Instruction):
    keyword: ClassVar[str] = "LABEL"
    pairs: tuple[tuple[str, str], ...]

    def expanded(self, expand: Expander) -> Self:
        return replace(self, pairs=tuple((expand(k), expand(v)) for k, v in self.pairs))


@dataclass(frozen=True, kw_only=True)
class Arg(Instruction):
    keyword: ClassVar[str] = "ARG"
    args: tuple[ArgDef, ...]

    def expanded(self, expand: Expander) -> Self:
        return replace(
            self,
            args=tuple(ArgDef(expand(a.name), None if a.default is None else expand(a.default)) for a in self.args),
        )


@dataclass(frozen=True, kw_only=True)
class Workdir(Instruction):
    keyword: ClassVar[str] = "WORKDIR"
    path: str

    def expanded(self, expand: Expander) -> Self:
        return replace(self, path=expand(self.path))


@dataclass(frozen=True, kw_only=True)
class User(Instruction):
    keyword: ClassVar[str] = "USER"
    user: str

    def expanded(self, expand: Expander) -> Self:
        return replace(self, user=expand(self.user))


@dataclass(frozen=True, kw_only=True)
class Expose(Instruction):
    keyword: ClassVar[str] = "EXPOSE"
    ports: tuple[str, ...]

    def expanded(self, expand: Expander) -> Self:
        # A variable may hold several ports ("EXPOSE $PORTS").
        return replace(self, ports=tuple(p for raw in self.ports for p in expand(raw).split()))


@dataclass(frozen=True, kw_only=True)
class Volume(Instruction):
    keyword: ClassVar[str] = "VOLUME"
    paths: tuple[str, ...]

    def expanded(self, expand: Expander) -> Self:
        return replace(self, paths=tuple(expand(p) for p in self.paths))


@dataclass(frozen=True, kw_only=True)
class Cmd(Instruction):
    keyword: ClassVar[str] = "CMD"
    command: tuple[str, ...]
    json: bool = False

    @property
    def prepend_shell(self) -> bool:
        return not self.json


@dataclass(frozen=True, kw_only=True)
class Entrypoint(Instruction):
    """``command`` is None for ``ENTRYPOINT []``, which clears the inherited entrypoint."""

    keyword: ClassVar[str] = "ENTRYPOINT"
    command: tuple[str, ...] | None
    json: bool = False

    @property
    def prepend_shell(self) -> bool:
        return not self.json


@dataclass(frozen=True, kw_only=True)
class Shell(Instruction):
    keyword: ClassVar[str] = "SHELL"
    shell: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class StopSignal(Instruction):
    keyword: ClassVar[str] = "STOPSIGNAL"
    signal: str

    def expanded(self, expand: Expander) -> Self:
        return replace(self, signal=expand(self.signal))


@dataclass(frozen=True, kw_only=True)
class Healthcheck(Instruction):
    """``test`` is the image-config form: ``("NONE",)``, ``("CMD", …)`` or ``("CMD-SHELL", cmd)``.

    Durations are seconds; None means "not given" (the runtime default applies).
    """

    keyword: ClassVar[str] = "HEALTHCHECK"
    test: tuple[str, ...]
    interval: float | None = None
    timeout: float | None = None
    start_period: float | None = None
    start_interval: float | None = None
    retries: int | None = None


@dataclass(frozen=True, kw_only=True)
class Onbuild(Instruction):
    """``expression`` is the trigger's text as stored in the image; ``trigger`` its parse."""

    keyword: ClassVar[str] = "ONBUILD"
    expression: str
    trigger: Instruction


@dataclass(frozen=True, kw_only=True)
class Maintainer(Instruction):
    keyword: ClassVar[str] = "MAINTAINER"
    name: str


# --- node → instruction -------------------------------------------------------------


def _need_at_least_one(node: Node, args: list[str]) -> None:
    if not args:
        raise _InstructionError(f"{node.cmd.upper()} requires at least one argument")


def _need_exactly_one(node: Node, args: list[str]) -> None:
    if len(args) != 1:
        raise _InstructionError(f"{node.cmd.upper()} requires exactly one argument")


class _Where(TypedDict):
    line: int
    end_line: int
    source: str


def _common(node: Node) -> _Where:
    return {"line": node.start_line, "end_line": node.end_line, "source": node.original.strip()}


def _no_flags(node: Node) -> None:
    _Flags(node.cmd.upper(), node.flags).parse()


def _pairs(node: Node) -> tuple[tuple[str, str], ...]:
    name = node.cmd.upper()
    _need_at_least_one(node, node.args)
    pairs = []
    for index in range(0, len(node.args) - 1, 2):
        key, value = node.args[index], node.args[index + 1]
        if key == "":
            raise _InstructionError(f"{name} names can not be blank")
        pairs.append((key, value))
    return tuple(pairs)


def _parse_from(node: Node) -> From:
    args = node.args
    stage: str | None = None
    if len(args) == 3 and args[1].lower() == "as":
        stage = args[2].lower()
        if not _STAGE_NAME.match(stage):
            raise _InstructionError(
                f"invalid name for build stage: {_q(args[2])}, name can't start with a number or contain symbols"
            )
    elif len(args) != 1:
        if not args:
            raise _InstructionError("FROM requires an image name (FROM <image> [AS <name>])")
        raise _InstructionError("FROM requires either one or three arguments (FROM <image> [AS <name>])")
    flags = _Flags("FROM", node.flags, platform="string").parse()
    return From(**_common(node), base=args[0], stage_name=stage, platform=flags.string("platform"))


def _sources_and_dest(node: Node) -> tuple[tuple[str, ...], str, tuple[SourceContent, ...]]:
    name = node.cmd.upper()
    if len(node.args) < 2:
        raise _InstructionError(
            f"{name} requires at least two arguments, but only one was provided. Destination could not be determined"
            if node.args
            else f"{name} requires at least two arguments: {name} <source>... <destination>"
        )
    *sources, dest = node.args
    try:
        if parse_heredoc_marker(dest) is not None:
            raise _InstructionError(f"{name} cannot accept a heredoc as a destination")
        docs = {doc.name: doc for doc in node.heredocs}
        paths: list[str] = []
        contents: list[SourceContent] = []
        for src in sources:
            marker = parse_heredoc_marker(src) if not node.json else None
            if marker is None:
                paths.append(src)
                continue
            doc = docs.get(marker.name, marker)
            contents.append(SourceContent(path=marker.name, data=doc.chomped_content(), expand=marker.expand))
    except ValueError as err:
        raise _InstructionError(str(err)) from None
    return tuple(paths), dest, tuple(contents)


def _parse_copy(node: Node) -> Copy:
    sources, dest, contents = _sources_and_dest(node)
    flags = _Flags("COPY", node.flags, from_="string", chown="string", chmod="string", link="bool").parse()
    return Copy(
        **_common(node),
        sources=sources,
        dest=dest,
        contents=contents,
        from_=flags.string("from"),
        chown=flags.string("chown"),
        chmod=flags.string("chmod"),
        link=flags.flag("link"),
    )


def _parse_add(node: Node) -> Add:
    sources, dest, contents = _sources_and_dest(node)
    flags = _Flags(
        "ADD",
        node.flags,
        chown="string",
        chmod="string",
        link="bool",
        keep_git_dir="bool",
        checksum="string",
    ).parse()
    return Add(
        **_common(node),
        sources=sources,
        dest=dest,
        contents=contents,
        chown=flags.string("chown"),
        chmod=flags.string("chmod"),
        link=flags.flag("link"),
        keep_git_dir=flags.flag("keep-git-dir"),
        checksum=flags.string("checksum"),
    )


_NETWORK_MODES = ("default", "none", "host")
_SECURITY_MODES = ("sandbox", "insecure")


def _parse_run(node: Node) -> Run:
    flags = _Flags("RUN", node.flags, mount="strings", network="string", security="string").parse()
    if not node.args and not node.heredocs:
        raise _InstructionError("RUN requires at least one argument")
    network = flags.string("network")
    if network is not None and "$" not in network and network not in _NETWORK_MODES:
        raise _InstructionError(f"RUN: unsupported network mode {_q(network)} (use one of {', '.join(_NETWORK_MODES)})")
    security = flags.string("security")
    if security is not None and "$" not in security and security not in _SECURITY_MODES:
        raise _InstructionError(
            f"RUN: unsupported security mode {_q(security)} (use one of {', '.join(_SECURITY_MODES)})"
        )
    specs = flags.strings("mount")
    for spec in specs:
        _check_mount_spec(spec)
    command = tuple(node.args) if node.json else (" ".join(node.args),) if node.args else ()
    return Run(
        **_common(node),
        command=command,
        json=node.json,
        heredocs=tuple(node.heredocs),
        mount_specs=specs,
        network=network,
        security=security,
    )


def _shell_command(node: Node) -> tuple[str, ...]:
    if node.json:
        return tuple(node.args)
    return (" ".join(node.args),) if node.args else ()


def _parse_cmd(node: Node) -> Cmd:
    _no_flags(node)
    return Cmd(**_common(node), command=_shell_command(node), json=node.json)


def _parse_entrypoint(node: Node) -> Entrypoint:
    _no_flags(node)
    command = _shell_command(node)
    return Entrypoint(**_common(node), command=command or None, json=node.json)


def _parse_shell(node: Node) -> Shell:
    _no_flags(node)
    if not node.args:
        raise _InstructionError("SHELL requires at least one argument")
    if not node.json:
        raise _InstructionError('SHELL requires the arguments to be in JSON form: SHELL ["executable", "param"]')
    return Shell(**_common(node), shell=tuple(node.args))


_DURATION_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_DURATION_PART = re.compile(r"([0-9]*(?:\.[0-9]*)?)(ns|us|µs|μs|ms|s|m|h)")


def parse_duration(text: str) -> float:
    """Go's ``time.ParseDuration`` (``1m30s``, ``1.5h``, ``300ms``) in seconds."""
    body = text
    sign = 1.0
    if body[:1] in ("+", "-"):
        sign = -1.0 if body[0] == "-" else 1.0
        body = body[1:]
    if body == "0":
        return 0.0
    if not body:
        raise ValueError(f"invalid duration {_q(text)}")
    total = 0.0
    pos = 0
    while pos < len(body):
        match = _DURATION_PART.match(body, pos)
        if match is None or match.group(1) in ("", "."):
            raise ValueError(f"invalid duration {_q(text)}")
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos = match.end()
    return sign * total


def _interval(name: str, value: str | None) -> float | None:
    if not value:
        return None
    try:
        seconds = parse_duration(value)
    except ValueError as err:
        raise _InstructionError(f"HEALTHCHECK --{name}: {err}") from None
    if seconds == 0:
        return 0.0
    if seconds < 0.001:
        raise _InstructionError(f"HEALTHCHECK --{name} cannot be less than 1ms")
    return seconds


def _parse_healthcheck(node: Node) -> Healthcheck:
    _need_at_least_one(node, node.args)
    kind = node.args[0].upper()
    rest = node.args[1:]
    if kind == "NONE":
        _no_flags(node)
        if rest:
            raise _InstructionError("HEALTHCHECK NONE takes no arguments")
        return Healthcheck(**_common(node), test=("NONE",))
    flags = _Flags(
        "HEALTHCHECK",
        node.flags,
        interval="string",
        timeout="string",
        start_period="string",
        start_interval="string",
        retries="string",
    ).parse()
    if kind != "CMD":
        raise _InstructionError(f"Unknown type {_q(node.args[0])} in HEALTHCHECK (try CMD)")
    command = rest if node.json else ([" ".join(rest)] if rest else [])
    if not command:
        raise _InstructionError("Missing command after HEALTHCHECK CMD")
    test = ("CMD", *command) if node.json else ("CMD-SHELL", *command)
    retries: int | None = None
    raw_retries = flags.string("retries")
    if raw_retries:
        try:
            retries = int(raw_retries, 10)
        except ValueError:
            raise _InstructionError(f"HEALTHCHECK --retries must be a whole number, not {_q(raw_retries)}") from None
        if retries < 0:
            raise _InstructionError(f"HEALTHCHECK --retries cannot be negative ({retries})")
    return Healthcheck(
        **_common(node),
        test=test,
        interval=_interval("interval", flags.string("interval")),
        timeout=_interval("timeout", flags.string("timeout")),
        start_period=_interval("start-period", flags.string("start-period")),
        start_interval=_interval("start-interval", flags.string("start-interval")),
        retries=retries,
    )


def _parse_onbuild(node: Node) -> Onbuild:
    _no_flags(node)
    if node.sub is None:
        raise _InstructionError("ONBUILD requires at least one argument")
    trigger = node.sub.keyword.upper()
    if trigger == "ONBUILD":
        raise _InstructionError("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
    if trigger in ("MAINTAINER", "FROM"):
        raise _InstructionError(f"{trigger} isn't allowed as an ONBUILD trigger")
    expression = re.sub(r"(?i)^\s*ONBUILD\s*", "", node.original)
    for doc in node.heredocs:
        expression += "\n" + doc.content + doc.name
    return Onbuild(**_common(node), expression=expression, trigger=_to_instruction(node.sub))


def _parse_arg(node: Node) -> Arg:
    _no_flags(node)
    _need_at_least_one(node, node.args)
    defs = []
    for word in node.args:
        if "=" in word:
            name, _, value = word.partition("=")
            if not name:
                raise _InstructionError("ARG names can not be blank")
            defs.append(ArgDef(name, value))
        else:
            defs.append(ArgDef(word))
    return Arg(**_common(node), args=tuple(defs))


def _parse_simple(node: Node) -> Instruction:
    cmd = node.cmd
    _no_flags(node)
    common = _common(node)
    if cmd == "env":
        return Env(**common, pairs=_pairs(node))
    if cmd == "label":
        return Label(**common, pairs=_pairs(node))
    if cmd == "maintainer":
        _need_exactly_one(node, node.args)
        return Maintainer(**common, name=node.args[0])
    if cmd == "workdir":
        _need_exactly_one(node, node.args)
        return Workdir(**common, path=node.args[0])
    if cmd == "user":
        _need_exactly_one(node, node.args)
        return User(**common, user=node.args[0])
    if cmd == "stopsignal":
        _need_exactly_one(node, node.args)
        return StopSignal(**common, signal=node.args[0])
    if cmd == "expose":
        _need_at_least_one(node, node.args)
        return Expose(**common, ports=tuple(node.args))
    if cmd == "volume":
        _need_at_least_one(node, node.args)
        paths = tuple(p.strip() for p in node.args)
        if any(p == "" for p in paths):
            raise _InstructionError("VOLUME specified can not be an empty string")
        return Volume(**common, paths=paths)
    raise AssertionError(cmd)


_PARSERS: dict[str, Callable[[Node], Instruction]] = {
    "from": _parse_from,
    "copy": _parse_copy,
    "add": _parse_add,
    "run": _parse_run,
    "cmd": _parse_cmd,
    "entrypoint": _parse_entrypoint,
    "shell": _parse_shell,
    "healthcheck": _parse_healthcheck,
    "onbuild": _parse_onbuild,
    "arg": _parse_arg,
}


def _to_instruction(node: Node) -> Instruction:
    if not node.known:
        hint = suggest(node.keyword, [c.upper() for c in INSTRUCTIONS])
        raise _InstructionError(f"unknown instruction: {node.keyword}" + (f" (did you mean {hint}?)" if hint else ""))
    return _PARSERS.get(node.cmd, _parse_simple)(node)


def parse_instruction(node: Node, filename: str = "Dockerfile") -> Instruction:
    """One node as a typed instruction; problems raise ``DockerfileError`` at its line."""
    try:
        return _to_instruction(node)
    except _InstructionError as err:
        raise DockerfileError(str(err), node.start_line, filename) from None


# --- mounts -------------------------------------------------------------------------

_MOUNT_TYPES = ("bind", "cache", "tmpfs", "secret", "ssh")
_SHARING_MODES = ("shared", "private", "locked")
_MOUNT_KEYS = (
    "type",
    "from",
    "source",
    "src",
    "target",
    "dst",
    "destination",
    "readonly",
    "ro",
    "readwrite",
    "rw",
    "id",
    "sharing",
    "required",
    "mode",
    "uid",
    "gid",
    "size",
)


def _mount_fields(spec: str) -> list[tuple[str, str | None]]:
    try:
        rows = list(csv.reader([spec], strict=True))
    except csv.Error as err:
        raise _InstructionError(f"RUN --mount: failed to parse csv mounts: {err}") from None
    fields = rows[0] if rows else []
    out: list[tuple[str, str | None]] = []
    for item in fields:
        key, has_value, value = item.partition("=")
        out.append((key.lower(), value if has_value else None))
    return out


def _parse_bool(key: str, value: str) -> bool:
    lowered = value.lower()
    if lowered in ("1", "t", "true"):
        return True
    if lowered in ("0", "f", "false"):
        return False
    raise _InstructionError(f"RUN --mount: invalid value for {key}: {value}")


def _parse_size(value: str) -> int:
    match = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)\s*([kmgtp]?)i?b?", value.strip().lower())
    if match is None:
        raise _InstructionError(f"RUN --mount: invalid value for size: {value}")
    power = "kmgtp".find(match.group(2)) + 1 if match.group(2) else 0
    return int(float(match.group(1)) * 1024**power)


def _parse_uint(key: str, value: str, base: int) -> int:
    try:
        number = int(value, base)
    except ValueError:
        raise _InstructionError(f"RUN --mount: invalid value {value} for {key}") from None
    if not 0 <= number < 2**32:
        raise _InstructionError(f"RUN --mount: invalid value {value} for {key}")
    return number


def _require_secret_or_ssh(mount_type: str) -> None:
    if mount_type not in ("secret", "ssh"):
        raise _InstructionError(f"RUN --mount: unexpected key 'required' for mount type '{mount_type}'")


def _build_mount(spec: str, expand: Expander | None) -> Mount:
    values: dict[str, object] = {}
    mount_type = "bind"
    ro_auto = True
    for key, raw in _mount_fields(spec):
        if raw is None:
            if key in ("readonly", "ro"):
                values["readonly"], ro_auto = True, False
            elif key in ("readwrite", "rw"):
                values["readonly"], ro_auto = False, False
            elif key == "required":
                _require_secret_or_ssh(mount_type)
                values["required"] = True
            else:
                raise _InstructionError(f"RUN --mount: invalid field '{key}' must be a key=value pair")
            continue
        value = expand(raw) if expand is not None else raw
        if key == "type":
            mount_type = value.lower()
            if mount_type not in _MOUNT_TYPES:
                raise _InstructionError(
                    f"RUN --mount: unsupported mount type {_q(value)} (use one of {', '.join(_MOUNT_TYPES)})"
                )
            values["type"] = mount_type
        elif key == "from":
            values["from_"] = value
        elif key in ("source", "src"):
            values["source"] = value
        elif key in ("target", "dst", "destination"):
            values["target"] = value
        elif key in ("readonly", "ro"):
            values["readonly"], ro_auto = _parse_bool(key, value), False
        elif key in ("readwrite", "rw"):
            values["readonly"], ro_auto = not _parse_bool(key, value), False
        elif key == "required":
            _require_secret_or_ssh(mount_type)
            values["required"] = _parse_bool(key, value)
        elif key == "size":
            if mount_type != "tmpfs":
                raise _InstructionError(f"RUN --mount: unexpected key 'size' for mount type '{mount_type}'")
            values["size"] = _parse_size(value)
        elif key == "id":
            values["id"] = value
        elif key == "sharing":
            if value.lower() not in _SHARING_MODES:
                raise _InstructionError(
                    f"RUN --mount: unsupported sharing value {_q(value)} (use one of {', '.join(_SHARING_MODES)})"
                )
            values["sharing"] = value.lower()
        elif key == "mode":
            values["mode"] = _parse_uint(key, value, 8)
        elif key in ("uid", "gid"):
            values[key] = _parse_uint(key, value, 10)
        else:
            hint = suggest(key, _MOUNT_KEYS)
            raise _InstructionError(
                f"RUN --mount: unexpected key '{key}'" + (f" (did you mean '{hint}'?)" if hint else "")
            )
    if ro_auto:
        values["readonly"] = mount_type not in ("cache", "tmpfs")
    mount = Mount(**values)  # type: ignore[arg-type]
    _validate_mount(mount)
    return mount


def _validate_mount(mount: Mount) -> None:
    kind = mount.type
    if kind not in ("secret", "ssh", "cache"):
        for name in ("mode", "uid", "gid"):
            if getattr(mount, name) is not None:
                raise _InstructionError(f"RUN --mount: {name} not allowed for {_q(kind)} type mounts")
    if kind == "secret":
        if mount.from_:
            raise _InstructionError("RUN --mount: secret mount should not have a from")
        if mount.sharing:
            raise _InstructionError("RUN --mount: secret mount should not define sharing")
        if not (mount.source or mount.target or mount.id):
            raise _InstructionError("RUN --mount: invalid secret mount. one of source, target required")
        if mount.source and mount.id:
            raise _InstructionError("RUN --mount: both source and id can't be set")
    if mount.sharing and kind != "cache":
        raise _InstructionError(f"RUN --mount: invalid cache sharing set for {kind} mount")
    if kind in ("bind", "cache", "tmpfs") and not mount.target:
        raise _InstructionError(f"RUN --mount: type={kind} needs a target (target=<path in the container>)")


def _check_mount_spec(spec: str) -> None:
    """What can be checked before the build: everything, unless values hold variables."""
    for key, value in _mount_fields(spec):
        if key == "from" and value is not None and re.search(r"\$.", value):
            raise _InstructionError(
                "RUN --mount: 'from' doesn't support variable expansion, define alias stage instead"
            )
    if "$" not in spec:
        _build_mount(spec, None)


def parse_mount(spec: str, expand: Expander | None = None) -> Mount:
    """One ``--mount`` value; with ``expand``, variable references in values are resolved."""
    try:
        return _build_mount(spec, expand)
    except _InstructionError as err:
        raise DockerfileError(str(err)) from None


# --- stages -------------------------------------------------------------------------


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
        """How messages name the stage: its name, or its index."""
        return self.name if self.name is not None else str(self.index)


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
        if resolve_args or "$" not in stage.base:
            base = self.base_of(stage, args)
            if isinstance(base, Stage):
                found[base.index] = base
        meta = self.meta_env(args) if resolve_args else {}
        for position, instruction in enumerate(stage.instructions):
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
        on_error(DockerfileError("the Dockerfile has no FROM: nothing to build", line, parsed.filename))
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
