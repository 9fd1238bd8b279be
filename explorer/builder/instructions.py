"""Parse nodes → typed instructions.

Each instruction keeps its raw words: variables are expanded by the builder at build
time with the ARGs and ENV in effect at that step (``expanded(expand)``), because the same
word can mean different things in different stages and the cache key needs the value that
was used. What can be checked without a build is checked here, with the line, so a typo
fails in the editor instead of halfway through a build: argument counts, flags and their
values, stage names, mount options (``mounts.py``), durations.

Grouping instructions into stages, and checking across them, is ``stages.py``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, ClassVar, Self, TypedDict

from explorer.builder.parser import INSTRUCTIONS, Heredoc, Node, parse_heredoc_marker, suggest
from explorer.builder.parser import go_quote as _q
from explorer.builder.shell import ShellExpansionError, expand_with_matches
from explorer.errors import DockerfileError

# ``explorer.builder.mounts`` is imported inside the functions that use it, so importing the
# builder does not pay for csv and the ``Mount`` record until a RUN has a --mount.
if TYPE_CHECKING:
    from explorer.builder.mounts import Mount

__all__ = [
    "AUTOMATIC_PLATFORM_ARGS",
    "PREDEFINED_ARGS",
    "Add",
    "Arg",
    "ArgDef",
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
    "Onbuild",
    "Run",
    "Shell",
    "SourceContent",
    "StopSignal",
    "User",
    "Volume",
    "Workdir",
    "exposed_port_keys",
    "parse_instruction",
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

    def flag_or_none(self, name: str) -> bool | None:
        """A boolean flag's value, or None when the instruction does not give it."""
        spec = self.specs[name]
        return spec.value is True if spec.used else None


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
        from explorer.builder.mounts import parse_mount

        return [parse_mount(spec, expand) for spec in self.mount_specs]

    def mount_sources(self) -> list[str]:
        """The ``from=`` of each mount that names one (a stage or an image)."""
        from explorer.builder.mounts import mount_fields

        found = []
        for spec in self.mount_specs:
            for key, value in mount_fields(spec):
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
    exclude: tuple[str, ...] = ()  # --exclude patterns (Dockerfile 1.19)

    def expanded(self, expand: Expander) -> Self:
        return replace(
            self,
            sources=tuple(expand(s) for s in self.sources),
            dest=expand(self.dest),
            chown=expand(self.chown) if self.chown is not None else None,
            chmod=expand(self.chmod) if self.chmod is not None else None,
            exclude=tuple(expand(p) for p in self.exclude),
        )


@dataclass(frozen=True, kw_only=True)
class Copy(_Transfer):
    keyword: ClassVar[str] = "COPY"
    from_: str | None = None
    parents: bool = False  # --parents (Dockerfile 1.20)

    def expanded(self, expand: Expander) -> Self:
        done = super().expanded(expand)
        return replace(done, from_=expand(self.from_)) if self.from_ is not None else done


@dataclass(frozen=True, kw_only=True)
class Add(_Transfer):
    keyword: ClassVar[str] = "ADD"
    keep_git_dir: bool = False
    checksum: str | None = None
    unpack: bool | None = None  # --unpack (Dockerfile 1.17): None extracts local archives only

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


# --- EXPOSE port specs --------------------------------------------------------------

_PROTOCOLS = ("tcp", "udp", "sctp")


def _port_number(text: str) -> int:
    if not text.isascii() or not text.isdigit():
        raise ValueError(text)
    port = int(text, 10)
    if port > 65535:
        raise ValueError(text)
    return port


def _port_range(text: str) -> tuple[int, int]:
    start, dash, end = text.partition("-")
    first = _port_number(start)
    if not dash or start == end:
        return first, first
    last = _port_number(end)
    if last < first:
        raise ValueError(text)
    return first, last


def exposed_port_keys(spec: str) -> list[str]:
    """The ``ExposedPorts`` keys one EXPOSE word stands for, as current BuildKit reads it
    (dockerfile2llb/convert_expose.go): ``[ip:][hostport:]port[-port][/proto]``, the protocol
    lower-cased (``5678/UDP`` is ``5678/udp``), a range one key per port. A bad spec raises
    ``ValueError`` with BuildKit's words."""
    parts = spec.split(":")
    container = parts[-1]
    host = parts[-2] if len(parts) >= 2 else ""
    port, _, proto = container.partition("/")
    if not port:
        raise ValueError(f"invalid port: {_q(spec)}: no port specified")
    proto = proto.lower() or "tcp"
    if proto not in _PROTOCOLS:
        raise ValueError(f"invalid port: {_q(spec)}: invalid proto: {container.partition('/')[2]}")
    try:
        first, last = _port_range(port)
    except ValueError:
        raise ValueError(f"invalid containerPort: {port}") from None
    if host:
        try:
            host_first, host_last = _port_range(host)
        except ValueError:
            raise ValueError(f"invalid hostPort: {host}") from None
        if last - first != host_last - host_first and first != last:
            raise ValueError(f"invalid ranges specified for container and host Ports: {port} and {host}")
    return [f"{number}/{proto}" for number in range(first, last + 1)]


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
    flags = _Flags(
        "COPY",
        node.flags,
        from_="string",
        chown="string",
        chmod="string",
        link="bool",
        parents="bool",
        exclude="strings",
    ).parse()
    return Copy(
        **_common(node),
        sources=sources,
        dest=dest,
        contents=contents,
        from_=flags.string("from"),
        chown=flags.string("chown"),
        chmod=flags.string("chmod"),
        link=flags.flag("link"),
        parents=flags.flag("parents"),
        exclude=flags.strings("exclude"),
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
        exclude="strings",
        unpack="bool",
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
        exclude=flags.strings("exclude"),
        unpack=flags.flag_or_none("unpack"),
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
    if specs:
        from explorer.builder.mounts import MountSpecError, check_mount_spec

        for spec in specs:
            try:
                check_mount_spec(spec)
            except MountSpecError as err:
                raise _InstructionError(str(err)) from None
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
        for spec in node.args:
            if "$" not in spec:  # one with a variable is checked once it is expanded
                try:
                    exposed_port_keys(spec)
                except ValueError as err:
                    raise _InstructionError(f"EXPOSE: {err}") from None
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
