"""Typed instructions, their checks and messages, stages and what a target needs."""

from __future__ import annotations

import pytest

from explorer.builder.instructions import (
    PREDEFINED_ARGS,
    Add,
    Arg,
    ArgDef,
    Cmd,
    Copy,
    Entrypoint,
    Env,
    Expose,
    From,
    Healthcheck,
    Instruction,
    Label,
    Maintainer,
    Onbuild,
    Run,
    Shell,
    SourceContent,
    StopSignal,
    User,
    Volume,
    Workdir,
    parse_duration,
)
from explorer.builder.mounts import Mount, parse_mount
from explorer.builder.parser import parse
from explorer.builder.shell import expand_word
from explorer.builder.stages import BuildPlan, parse_stages, stage_names
from explorer.errors import DockerfileError


def plan_of(text: str, filename: str = "Dockerfile") -> BuildPlan:
    return parse_stages(parse(text, filename))


def one(text: str) -> Instruction:
    """The single instruction after ``FROM scratch``."""
    plan = plan_of("FROM scratch\n" + text)
    assert len(plan.stages[0].instructions) == 1
    return plan.stages[0].instructions[0]


def error_of(text: str, filename: str = "Dockerfile") -> str:
    with pytest.raises(DockerfileError) as info:
        plan_of(text, filename)
    return str(info.value)


# --- every instruction --------------------------------------------------------------


def test_from_forms() -> None:
    plan = plan_of("FROM --platform=linux/arm64 alpine:3.19 AS Build\nFROM scratch\nFROM build as again\n")
    first, second, third = plan.stages
    assert (first.name, first.base, first.platform, first.index, first.line) == (
        "build",
        "alpine:3.19",
        "linux/arm64",
        0,
        1,
    )
    assert (second.name, second.base, second.ref) == (None, "scratch", "stage-1")
    assert plan.base_of(second) == "scratch"
    assert plan.base_of(third) is first
    assert isinstance(first.from_, From)


def test_run_shell_exec_and_heredoc() -> None:
    plan = plan_of('FROM scratch\nRUN echo $HOME && ls\nRUN ["/bin/ls", "-l"]\nRUN <<EOF\nset -e\necho hi\nEOF\n')
    shell, exec_form, heredoc = plan.stages[0].instructions
    assert isinstance(shell, Run) and isinstance(exec_form, Run) and isinstance(heredoc, Run)
    assert (shell.command, shell.prepend_shell) == (("echo $HOME && ls",), True)
    assert (exec_form.command, exec_form.json) == (("/bin/ls", "-l"), True)
    assert heredoc.heredocs[0].content == "set -e\necho hi\n"
    assert (heredoc.line, heredoc.end_line) == (4, 7)


def test_run_mounts_and_network() -> None:
    run = one(
        "RUN --mount=type=cache,target=/root/.cache,id=go,sharing=locked "
        "--mount=type=bind,from=build,source=/out,target=/in --network=none make\n"
    )
    assert isinstance(run, Run)
    assert run.network == "none"
    cache, bind = run.mounts()
    assert cache == Mount(type="cache", target="/root/.cache", id="go", sharing="locked", readonly=False)
    assert bind == Mount(type="bind", from_="build", source="/out", target="/in", readonly=True)
    assert run.mount_sources() == ["build"]


def test_run_mount_values_expand_at_build_time() -> None:
    run = one("RUN --mount=type=cache,target=$CACHE,uid=$UID true\n")
    assert isinstance(run, Run)
    mount = run.mounts(lambda word: expand_word(word, {"CACHE": "/c", "UID": "1000"}))[0]
    assert (mount.target, mount.uid) == ("/c", 1000)


def test_copy_flags_wildcards_and_sources() -> None:
    copy = one("COPY --from=build --chown=app:app --chmod=0755 --link src/*.go go.mod go.sum /app/\n")
    assert copy == Copy(
        line=2,
        end_line=2,
        source="COPY --from=build --chown=app:app --chmod=0755 --link src/*.go go.mod go.sum /app/",
        sources=("src/*.go", "go.mod", "go.sum"),
        dest="/app/",
        from_="build",
        chown="app:app",
        chmod="0755",
        link=True,
    )


def test_copy_json_and_heredoc_sources() -> None:
    plan = plan_of('FROM scratch\nCOPY ["a b", "/x/"]\nCOPY <<-"EOT" f /etc/motd\n\thello $X\n\tEOT\n')
    json_form, heredoc = plan.stages[0].instructions
    assert isinstance(json_form, Copy) and isinstance(heredoc, Copy)
    assert (json_form.sources, json_form.dest) == (("a b",), "/x/")
    assert heredoc.sources == ("f",)
    assert heredoc.contents == (SourceContent(path="EOT", data="hello $X\n", expand=False),)


def test_add_flags() -> None:
    add = one("ADD --chown=1:1 --link --keep-git-dir=true --checksum=sha256:abc https://x/y.tgz /y\n")
    assert isinstance(add, Add)
    assert (add.chown, add.link, add.keep_git_dir, add.checksum) == ("1:1", True, True, "sha256:abc")
    assert add.sources == ("https://x/y.tgz",)


def test_key_value_instructions() -> None:
    plan = plan_of('FROM scratch\nENV A=1 B="two words"\nENV C three words\nLABEL "com.x"=y z=\'w\'\n')
    env, old, label = plan.stages[0].instructions
    assert isinstance(env, Env) and isinstance(old, Env) and isinstance(label, Label)
    assert env.pairs == (("A", "1"), ("B", '"two words"'))
    assert old.pairs == (("C", "three words"),)
    assert label.pairs == (('"com.x"', "y"), ("z", "'w'"))
    assert label.expanded(lambda w: expand_word(w, {})).pairs == (("com.x", "y"), ("z", "w"))


def test_args_before_and_after_from() -> None:
    plan = plan_of("ARG BASE=alpine\nARG TAG\nFROM ${BASE}:${TAG:-3}\nARG TAG\nARG X=1 Y\n")
    assert [a.args for a in plan.meta_args] == [(ArgDef("BASE", "alpine"),), (ArgDef("TAG"),)]
    stage = plan.stages[0]
    assert stage.instructions == [
        Arg(line=4, end_line=4, source="ARG TAG", args=(ArgDef("TAG"),)),
        Arg(line=5, end_line=5, source="ARG X=1 Y", args=(ArgDef("X", "1"), ArgDef("Y"))),
    ]
    assert plan.meta_env() == {"BASE": "alpine"}
    assert plan.base_of(stage) == "alpine:3"
    assert plan.base_of(stage, {"TAG": "edge", "UNDECLARED": "x"}) == "alpine:edge"
    assert {"HTTP_PROXY", "no_proxy"} <= PREDEFINED_ARGS


def test_simple_instructions() -> None:
    plan = plan_of(
        "FROM scratch\nWORKDIR /app\nUSER 1000:1000\nEXPOSE 80/tcp 53/udp\nVOLUME /a /b\n"
        'VOLUME ["/c"]\nSTOPSIGNAL SIGQUIT\nMAINTAINER me <me@x>\nSHELL ["/bin/bash", "-c"]\n'
        'CMD ["/app"]\nCMD run it\nENTRYPOINT ["/init"]\nENTRYPOINT []\n'
    )
    got = plan.stages[0].instructions
    assert [type(i) for i in got] == [
        Workdir,
        User,
        Expose,
        Volume,
        Volume,
        StopSignal,
        Maintainer,
        Shell,
        Cmd,
        Cmd,
        Entrypoint,
        Entrypoint,
    ]
    workdir, user, expose, volume, volume_json, signal, maintainer, shell, cmd, cmd_shell, ep, ep_empty = got
    assert isinstance(workdir, Workdir) and workdir.path == "/app"
    assert isinstance(user, User) and user.user == "1000:1000"
    assert isinstance(expose, Expose) and expose.ports == ("80/tcp", "53/udp")
    assert isinstance(volume, Volume) and volume.paths == ("/a", "/b")
    assert isinstance(volume_json, Volume) and volume_json.paths == ("/c",)
    assert isinstance(signal, StopSignal) and signal.signal == "SIGQUIT"
    assert isinstance(maintainer, Maintainer) and maintainer.name == "me <me@x>"
    assert isinstance(shell, Shell) and shell.shell == ("/bin/bash", "-c")
    assert isinstance(cmd, Cmd) and (cmd.command, cmd.json) == (("/app",), True)
    assert isinstance(cmd_shell, Cmd) and (cmd_shell.command, cmd_shell.prepend_shell) == (("run it",), True)
    assert isinstance(ep, Entrypoint) and ep.command == ("/init",)
    assert isinstance(ep_empty, Entrypoint) and ep_empty.command is None


def test_healthcheck() -> None:
    plan = plan_of(
        "FROM scratch\nHEALTHCHECK NONE\n"
        "HEALTHCHECK --interval=1m30s --timeout=500ms --start-period=0s --retries=3 CMD curl -f x\n"
        'HEALTHCHECK CMD ["/check", "--quiet"]\n'
    )
    none, shell, exec_form = plan.stages[0].instructions
    assert isinstance(none, Healthcheck) and none.test == ("NONE",)
    assert shell == Healthcheck(
        line=3,
        end_line=3,
        source="HEALTHCHECK --interval=1m30s --timeout=500ms --start-period=0s --retries=3 CMD curl -f x",
        test=("CMD-SHELL", "curl -f x"),
        interval=90.0,
        timeout=0.5,
        start_period=0.0,
        retries=3,
    )
    assert isinstance(exec_form, Healthcheck) and exec_form.test == ("CMD", "/check", "--quiet")


def test_onbuild() -> None:
    onbuild = one("ONBUILD RUN --mount=type=cache,target=/c make\n")
    assert isinstance(onbuild, Onbuild)
    assert onbuild.expression == "RUN --mount=type=cache,target=/c make"
    assert isinstance(onbuild.trigger, Run) and onbuild.trigger.mount_specs == ("type=cache,target=/c",)


def test_parse_duration() -> None:
    assert parse_duration("1h2m3.5s") == pytest.approx(3723.5)
    assert parse_duration("250us") == pytest.approx(0.00025)
    assert parse_duration("0") == 0
    for bad in ("", "5", "1x", "s", "1.s2"):
        with pytest.raises(ValueError):
            parse_duration(bad)


# --- expansion ------------------------------------------------------------------------


def test_expanded_with_reports_used_names() -> None:
    copy = one("COPY --chown=$USER:$GROUP ${SRC:-src}/*.py $DEST\n")
    done, used = copy.expanded_with({"USER": "app", "GROUP": "app", "DEST": "/srv/", "OTHER": "x"})
    assert isinstance(done, Copy)
    assert (done.chown, done.sources, done.dest) == ("app:app", ("src/*.py",), "/srv/")
    assert used == {"USER", "GROUP", "DEST"}


def test_expansion_error_names_the_line() -> None:
    workdir = plan_of("FROM scratch\n\nWORKDIR ${DIR:?set DIR}\n").stages[0].instructions[0]
    with pytest.raises(DockerfileError) as info:
        workdir.expanded_with({}, filename="app.Dockerfile")
    assert str(info.value) == 'app.Dockerfile:3: failed to process "${DIR:?set DIR}": DIR: set DIR'


def test_expose_variable_may_hold_several_ports() -> None:
    expose = one("EXPOSE $PORTS 22\n")
    done, _ = expose.expanded_with({"PORTS": "80 443"})
    assert isinstance(done, Expose) and done.ports == ("80", "443", "22")


def test_run_and_cmd_words_are_not_expanded() -> None:
    run = one("RUN echo $HOME\n")
    assert run.expanded_with({"HOME": "/x"})[0] is run


# --- errors: exact messages with lines -------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("FROM a\nRUNN x\n", "Dockerfile:2: unknown instruction: RUNN (did you mean RUN?)"),
        ("FROM a\nFROBNICATE x\n", "Dockerfile:2: unknown instruction: FROBNICATE"),
        ("FROM\n", "Dockerfile:1: FROM requires an image name (FROM <image> [AS <name>])"),
        (
            "FROM a b\n",
            "Dockerfile:1: FROM requires either one or three arguments (FROM <image> [AS <name>])",
        ),
        (
            "FROM a AS 1st\n",
            'Dockerfile:1: invalid name for build stage: "1st", name can\'t start with a number or contain symbols',
        ),
        (
            "FROM a\nCOPY only\n",
            "Dockerfile:2: COPY requires at least two arguments, but only one was "
            "provided. Destination could not be determined",
        ),
        ("FROM a\nADD\n", "Dockerfile:2: ADD requires at least two arguments: ADD <source>... <destination>"),
        ("FROM a\nCOPY x <<EOF\nEOF\n", "Dockerfile:2: COPY cannot accept a heredoc as a destination"),
        ("FROM a\nRUN\n", "Dockerfile:2: RUN requires at least one argument"),
        ("FROM a\nENV\n", "Dockerfile:2: ENV requires at least one argument"),
        ("FROM a\nENV =x\n", "Dockerfile:2: ENV names can not be blank"),
        ("FROM a\nARG =x\n", "Dockerfile:2: ARG names can not be blank"),
        ("FROM a\nWORKDIR\n", "Dockerfile:2: WORKDIR requires exactly one argument"),
        ("FROM a\nUSER\n", "Dockerfile:2: USER requires exactly one argument"),
        ("FROM a\nEXPOSE\n", "Dockerfile:2: EXPOSE requires at least one argument"),
        ('FROM a\nVOLUME [""]\n', "Dockerfile:2: VOLUME specified can not be an empty string"),
        ("FROM a\nSTOPSIGNAL\n", "Dockerfile:2: STOPSIGNAL requires exactly one argument"),
        (
            "FROM a\nSHELL /bin/sh -c\n",
            'Dockerfile:2: SHELL requires the arguments to be in JSON form: SHELL ["executable", "param"]',
        ),
        ("FROM a\nONBUILD\n", "Dockerfile:2: ONBUILD requires at least one argument"),
        (
            "FROM a\nONBUILD ONBUILD RUN x\n",
            "Dockerfile:2: Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed",
        ),
        ("FROM a\nONBUILD FROM b\n", "Dockerfile:2: FROM isn't allowed as an ONBUILD trigger"),
        (
            "FROM a\nONBUILD COPY --frm=x a b\n",
            "Dockerfile:2: unknown flag for COPY: --frm (did you mean --from?)",
        ),
        ("FROM a\nHEALTHCHECK\n", "Dockerfile:2: HEALTHCHECK requires at least one argument"),
        ("FROM a\nHEALTHCHECK CMD\n", "Dockerfile:2: Missing command after HEALTHCHECK CMD"),
        ("FROM a\nHEALTHCHECK PING x\n", 'Dockerfile:2: Unknown type "PING" in HEALTHCHECK (try CMD)'),
        ("FROM a\nHEALTHCHECK NONE x\n", "Dockerfile:2: HEALTHCHECK NONE takes no arguments"),
        (
            "FROM a\nHEALTHCHECK --interval=1us CMD x\n",
            "Dockerfile:2: HEALTHCHECK --interval cannot be less than 1ms",
        ),
        (
            "FROM a\nHEALTHCHECK --timeout=soon CMD x\n",
            'Dockerfile:2: HEALTHCHECK --timeout: invalid duration "soon"',
        ),
        (
            "FROM a\nHEALTHCHECK --retries=-1 CMD x\n",
            "Dockerfile:2: HEALTHCHECK --retries cannot be negative (-1)",
        ),
    ],
)
def test_bad_instructions(text: str, message: str) -> None:
    assert error_of(text) == message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("COPY --frm=a x y\n", "unknown flag for COPY: --frm (did you mean --from?)"),
        (
            "COPY --bogus x y\n",
            "unknown flag for COPY: --bogus (known flags: --chmod, --chown, --exclude, --from, --link, --parents)",
        ),
        ("COPY --from=a --from=b x y\n", "COPY: duplicate flag --from"),
        ("COPY --from x y\n", "COPY: missing a value on flag --from (write --from=<value>)"),
        ("COPY --link=maybe x y\n", "COPY: expecting a boolean value for flag --link, not: maybe"),
        ("COPY --link= x y\n", "COPY: missing a value on flag --link"),
        ("ENV --x=1 A=b\n", "ENV does not take flags: --x"),
        (
            "RUN --network=bridge x\n",
            'RUN: unsupported network mode "bridge" (use one of default, none, host)',
        ),
        (
            "RUN --mount=type=cache x\n",
            "RUN --mount: type=cache needs a target (target=<path in the container>)",
        ),
        (
            "RUN --mount=type=nfs,target=/x x\n",
            'RUN --mount: unsupported mount type "nfs" (use one of bind, cache, tmpfs, secret, ssh)',
        ),
        (
            "RUN --mount=type=cache,target=/x,sharing=all x\n",
            'RUN --mount: unsupported sharing value "all" (use one of shared, private, locked)',
        ),
        ("RUN --mount=type=bind,target=/x,uid=1 x\n", 'RUN --mount: uid not allowed for "bind" type mounts'),
        (
            "RUN --mount=type=bind,tagret=/x x\n",
            "RUN --mount: unexpected key 'tagret' (did you mean 'target'?)",
        ),
        (
            "RUN --mount=type=bind,from=$S,target=/x x\n",
            "RUN --mount: 'from' doesn't support variable expansion, define alias stage instead",
        ),
        ("RUN --mount=target=/x,ro=perhaps x\n", "RUN --mount: invalid value for ro: perhaps"),
        ("RUN --mount=type=secret x\n", "RUN --mount: invalid secret mount. one of source, target required"),
    ],
)
def test_bad_flags(text: str, message: str) -> None:
    assert error_of("FROM a\n\n" + text, filename="ctx/Dockerfile.dev") == f"ctx/Dockerfile.dev:3: {message}"


def test_flags_after_double_dash_are_arguments() -> None:
    copy = one("COPY --link -- --weird /dst\n")
    assert isinstance(copy, Copy) and (copy.link, copy.sources) == (True, ("--weird",))


def test_parse_mount_error_has_no_line() -> None:
    with pytest.raises(DockerfileError) as info:
        parse_mount("type=cache,target=$X", lambda word: expand_word(word, {}))
    assert str(info.value) == "Dockerfile: RUN --mount: type=cache needs a target (target=<path in the container>)"


# --- stages --------------------------------------------------------------------------


def test_instruction_before_from() -> None:
    assert error_of("ARG A\nENV B=1\nFROM a\n") == "Dockerfile:2: ENV cannot come before the first FROM (only ARG can)"


def test_no_from() -> None:
    assert error_of("ARG A\n") == "Dockerfile:1: dockerfile contains no stages to build (it has no FROM)"


def test_duplicate_stage_name() -> None:
    text = "FROM a AS x\nFROM b AS X\n"
    assert error_of(text) == 'Dockerfile:2: duplicate stage name "x" (first defined on line 1)'


MULTI = """\
ARG GO=1.22
FROM golang:${GO} AS build
RUN go build -o /out/app .
FROM alpine AS certs
RUN apk add ca-certificates
FROM build AS test
RUN go test ./...
FROM node AS assets
RUN --mount=type=bind,from=certs,source=/etc/ssl,target=/ssl npm run build
FROM scratch AS final
COPY --from=build /out/app /app
COPY --from=assets /dist /static
COPY --from=nginx:latest /etc/nginx/mime.types /etc/
FROM final AS debug
ARG TOOLS=build
COPY --from=${TOOLS} /usr/local/go /go
"""


def test_required_stages_skip_unneeded() -> None:
    plan = plan_of(MULTI)
    assert [s.ref for s in plan.required_stages()] == ["build", "certs", "assets", "final", "debug"]
    assert [s.ref for s in plan.required_stages("final")] == ["build", "certs", "assets", "final"]
    assert [s.ref for s in plan.required_stages("TEST")] == ["build", "test"]
    with_test = plan.required_stages("debug", {"TOOLS": "test"})
    assert [s.ref for s in with_test] == ["build", "test", "certs", "assets", "final", "debug"]


def test_copy_from_index() -> None:
    plan = plan_of("FROM a\nRUN x\nFROM b\nRUN y\nFROM c\nCOPY --from=1 / /\n")
    assert [s.index for s in plan.required_stages()] == [1, 2]
    assert plan.find_stage("1") is plan.stages[1]


def test_unknown_target() -> None:
    plan = plan_of(MULTI)
    with pytest.raises(DockerfileError) as info:
        plan.required_stages("finall")
    assert str(info.value) == 'Dockerfile: target stage "finall" could not be found (did you mean final?)'
    with pytest.raises(DockerfileError) as info:
        plan.target("zzz")
    assert str(info.value) == (
        'Dockerfile: target stage "zzz" could not be found; stages: build, certs, test, assets, final, debug'
    )


def test_bad_stage_references() -> None:
    plan = plan_of("FROM a AS one\nCOPY --from=5 x y\n")
    with pytest.raises(DockerfileError) as info:
        plan.required_stages()
    assert str(info.value) == "Dockerfile:2: invalid stage index 5: there are 1 stages"

    plan = plan_of("FROM a AS one\nCOPY --from=one x y\n")
    with pytest.raises(DockerfileError) as info:
        plan.required_stages()
    assert str(info.value) == "Dockerfile:2: circular dependency detected on stage: one"

    plan = plan_of("FROM a AS one\nCOPY --from=two x y\nFROM b AS two\nCOPY --from=one x y\n")
    with pytest.raises(DockerfileError) as info:
        plan.required_stages("two")
    assert "circular dependency detected on stage" in str(info.value)


def test_blank_base_after_expansion() -> None:
    plan = plan_of("ARG BASE\nFROM $BASE\n")
    with pytest.raises(DockerfileError) as info:
        plan.required_stages()
    assert str(info.value) == "Dockerfile:2: base name ($BASE) should not be blank"
    assert plan.base_of(plan.stages[0], {"BASE": "debian"}) == "debian"


def test_stage_names_are_the_ones_target_accepts() -> None:
    """The editor's target list: what the build itself reads as stage names, so a name on a
    continued line counts, case folds as --target does, and an invalid or repeated name or a
    FROM inside a heredoc adds nothing."""
    text = (
        "FROM alpine AS Base\n"
        "FROM --platform=linux/amd64 \\\n  base \\\n  AS build\n"
        "RUN <<EOF\nFROM x AS not_a_stage\nEOF\n"
        "FROM build AS 1bad\n"
        "FROM build AS base\n"
        "FROM build AS final\n"
    )
    assert stage_names(text) == ["base", "build", "final"]
    valid = text.replace("FROM build AS 1bad\n", "").replace("FROM build AS base\n", "")
    assert [stage.name for stage in plan_of(valid).stages] == stage_names(valid)
    assert stage_names("# escape=`\nFROM a `\n  AS tick\n") == ["tick"]
    assert stage_names("") == []


def test_stage_names_go_on_past_a_syntax_error() -> None:
    text = "FROM a AS one\nRUN <<EOF\nFROM b AS two\n"
    assert stage_names(text) == ["one"]
    assert stage_names("FROM a AS one\nENV a\nFROM a AS two\n") == ["one", "two"]  # parse() raises here
