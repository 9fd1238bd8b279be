"""The parser against BuildKit's own parser fixtures, and against the ``dockerfile`` package.

The fixtures live outside the repository (``../shared/conformance/buildkit``); see its
README for the format. Without them the tests skip locally and fail under CI.
"""

from __future__ import annotations

from pathlib import Path

import dockerfile
import pytest

from explorer.builder.parser import (
    Diagnostic,
    Node,
    go_quote,
    parse,
    to_result_line,
)
from explorer.builder.stages import diagnostics
from explorer.errors import DockerfileError
from tests.capabilities import missing

CONFORMANCE = Path(__file__).resolve().parents[2].parent / "shared" / "conformance" / "buildkit"
PARSER_DATA = CONFORMANCE / "frontend" / "dockerfile" / "parser"
MISSING = "<conformance data missing>"


def require_conformance() -> None:
    if PARSER_DATA.is_dir():
        return
    missing(f"BuildKit conformance data not found at {CONFORMANCE}")


def cases(kind: str) -> list[str]:
    folder = PARSER_DATA / kind
    if not folder.is_dir():
        return [MISSING]
    return sorted(p.name for p in folder.iterdir() if (p / "Dockerfile").is_file())


def read(path: Path) -> str:
    return path.read_bytes().decode("utf-8")


@pytest.mark.parametrize("case", cases("testfiles"))
def test_result_reproduced(case: str) -> None:
    require_conformance()
    folder = PARSER_DATA / "testfiles" / case
    parsed = parse(read(folder / "Dockerfile"))
    dumped = "".join(to_result_line(node) + "\n" for node in parsed.nodes)
    assert dumped == read(folder / "result")


@pytest.mark.parametrize("case", cases("testfiles-negative"))
def test_negative_case_rejected(case: str) -> None:
    require_conformance()
    with pytest.raises(DockerfileError) as info:
        parse(read(PARSER_DATA / "testfiles-negative" / case / "Dockerfile"))
    assert str(info.value).startswith("Dockerfile")


def test_negative_messages_name_the_line() -> None:
    require_conformance()
    negative = PARSER_DATA / "testfiles-negative"
    expected = {
        "empty_dockerfile": "Dockerfile: file with no instructions (a Dockerfile starts with FROM <image>)",
        "only_comments": "Dockerfile:3: file with no instructions (a Dockerfile starts with FROM <image>)",
        "env_no_value": "Dockerfile:3: ENV must have two arguments",
        "shykes-nested-json": ("Dockerfile:1: when using JSON array syntax, arrays must be comprised of strings only"),
    }
    for case, message in expected.items():
        with pytest.raises(DockerfileError) as info:
            parse(read(negative / case / "Dockerfile"))
        assert str(info.value) == message


def test_line_numbers_survive_comments_and_continuations() -> None:
    require_conformance()
    parsed = parse(read(PARSER_DATA / "testfile-line" / "Dockerfile"))
    assert [(n.start_line, n.end_line) for n in parsed.nodes] == [(5, 5), (11, 12), (17, 31)]
    assert parsed.directives == {"escape": "\\"}


# --- the official Go parser (wrapped by the `dockerfile` package) agrees -------------------

EXTRA_SAMPLES = [
    'FROM alpine\nRUN <<EOF bash\necho hi\n  EOF\nEOF\nCOPY <<-"EOT" <<B /dst/\n\tone\n\tEOT\ntwo\nB\n',
    "# escape=`\nFROM windows\nRUN dir `\n  c:\\ `\n  /w\nENV A=b` c\n",
    "FROM a\nONBUILD RUN echo hi\nONBUILD\nUNKNOWN thing\nHEALTHCHECK NONE\nENV a b c\n",
    "\ufeffFROM a AS b\nRUN --mount=type=cache,target=/x --network=none \\\n  # comment\n\n  make\n",
    'FROM a\nCMD ["\\u00e9", "\\ud83d\\ude00"]\nLABEL "a b"=c d=\'e f\'\nCMD [NaN]\n',
    "FROM a\r\nRUN a \\\r\n b\r\nCOPY  --chown=1:1   x   y\r\n",
]


def _c_string(values: list[str]) -> tuple[str, ...]:
    # The wrapper hands strings through C, which cuts them at the first NUL.
    return tuple(v.split("\x00")[0] for v in values)


def _compare(text: str) -> None:
    ours = parse(text).nodes
    theirs = dockerfile.parse_string(text)
    assert len(ours) == len(theirs)
    for node, command in zip(ours, theirs, strict=True):
        assert node.keyword.upper() == command.cmd.upper()
        assert (node.start_line, node.end_line) == (command.start_line, command.end_line)
        if node.cmd == "onbuild":
            if node.sub is not None:
                assert node.sub.keyword.upper() == (command.sub_cmd or "").upper()
                assert tuple(node.sub.args) == command.value
                assert node.sub.json == command.json
            continue
        assert node.json == command.json
        assert tuple(node.flags) == command.flags
        assert _c_string(node.args or ([""] if not node.known else [])) == command.value
        assert [(h.name, h.content) for h in node.heredocs] == [(h.name, h.content) for h in command.heredocs]
        if not node.heredocs:
            assert node.original == command.original


@pytest.mark.parametrize("case", cases("testfiles"))
def test_agrees_with_go_parser_on_fixture(case: str) -> None:
    require_conformance()
    _compare(read(PARSER_DATA / "testfiles" / case / "Dockerfile"))


@pytest.mark.parametrize("index", range(len(EXTRA_SAMPLES)))
def test_agrees_with_go_parser_on_samples(index: int) -> None:
    _compare(EXTRA_SAMPLES[index])


# --- behaviour the fixtures do not pin ----------------------------------------------


def only(text: str) -> Node:
    nodes = parse(text).nodes
    assert len(nodes) == 1
    return nodes[0]


def test_json_with_trailing_text_is_shell_form() -> None:
    # Current BuildKit decodes with json.Unmarshal, so anything after the array makes it
    # invalid JSON and the line is shell form. (The Go code inside the `dockerfile`
    # package is older and ignores trailing text; it is not compared here.)
    node = only('CMD ["a", 1] x\n')
    assert (node.json, node.args) == (False, ['["a", 1] x'])
    with pytest.raises(DockerfileError):
        parse('CMD ["a", 1]\n')


def test_go_quote_matches_strconv_quote() -> None:
    assert go_quote('a"b\\c') == '"a\\"b\\\\c"'
    assert go_quote("\x00\x7f\t\u00a0é😀\u200b") == '"\\x00\\x7f\\t\\u00a0é😀\\u200b"'


def test_directives_are_recorded() -> None:
    parsed = parse("# syntax=docker/dockerfile:1.7\n#escape=`\nFROM a\n")
    assert parsed.directives == {"syntax": "docker/dockerfile:1.7", "escape": "`"}
    assert parsed.syntax == "docker/dockerfile:1.7"
    assert parsed.escape == "`"


def test_directive_after_instruction_is_a_comment() -> None:
    parsed = parse("FROM a\n# escape=`\nRUN a \\\n b\n")
    assert parsed.escape == "\\"
    assert parsed.nodes[1].args == ["a  b"]


def test_blank_line_ends_directives() -> None:
    assert parse("\n# escape=`\nFROM a\n").escape == "\\"


def test_bad_escape_directive() -> None:
    with pytest.raises(DockerfileError) as info:
        parse("# escape=x\nFROM a\n")
    assert str(info.value) == "Dockerfile:1: invalid escape token 'x' does not match ` or \\"


def test_repeated_directive() -> None:
    with pytest.raises(DockerfileError) as info:
        parse("# syntax=a\n# syntax=b\nFROM a\n", filename="app.Dockerfile")
    assert str(info.value) == "app.Dockerfile:2: only one syntax parser directive can be used"


def test_heredoc_attributes() -> None:
    node = only("RUN <<-'EOF' 3<<X cat\n\techo $A\n\tEOF\nx\nX\n")
    first, second = node.heredocs
    assert (first.name, first.expand, first.chomp, first.content) == ("EOF", False, True, "\techo $A\n")
    assert first.chomped_content() == "echo $A\n"
    assert (second.name, second.fd, second.expand, second.content) == ("X", 3, True, "x\n")
    assert (node.start_line, node.end_line) == (1, 5)


def test_heredoc_not_in_exec_form_or_other_instructions() -> None:
    nodes = parse('RUN ["cat", "<<EOF"]\nENV A=<<EOF\nEOF\n').nodes
    assert [n.heredocs for n in nodes[:2]] == [[], []]
    assert nodes[2].keyword == "EOF"


def test_unterminated_heredoc() -> None:
    with pytest.raises(DockerfileError) as info:
        parse("FROM a\nRUN <<EOF\necho\n")
    assert str(info.value) == "Dockerfile:2: unterminated heredoc EOF"


def test_onbuild_keeps_trigger_flags_and_heredocs() -> None:
    node = only("ONBUILD COPY --from=base <<EOF /x\nhello\nEOF\n")
    assert node.sub is not None
    assert node.sub.flags == ["--from=base"]
    assert node.heredocs[0].content == "hello\n"
    assert to_result_line(node) == '(onbuild (copy ["--from=base"] "<<EOF" "/x"))'


def test_kv_markers() -> None:
    node = only('LABEL a=1 b="two words"\n')
    assert node.args == ["a", "1", "b", '"two words"']
    assert node.kv_markers == ["=", "="]
    old = only("ENV KEY some value\n")
    assert (old.args, old.kv_markers) == (["KEY", "some value"], [""])


def test_env_without_equals_in_new_form() -> None:
    with pytest.raises(DockerfileError) as info:
        parse("FROM a\nENV a=b c\n")
    assert str(info.value) == ('Dockerfile:2: Syntax error - can\'t find = in "c". Must be of the form: name=value')


def test_error_line_is_the_start_of_a_continued_instruction() -> None:
    with pytest.raises(DockerfileError) as info:
        parse("FROM a\n\nENV \\\n  PATH\n")
    assert info.value.line == 3


def test_empty_continuation_lines_warn() -> None:
    text = (
        "FROM alpine:3.6\nRUN valid \\\n    continuation\nRUN something \\\n\n    following \\\n\n"
        "    more\nRUN another \\\n\n    thing\nRUN non-indented \\\n# comment\n   after\n"
    )
    warnings = parse(text).warnings
    assert [(w.line, w.severity) for w in warnings] == [(4, "warning"), (9, "warning")]


def test_comments_describe_the_next_instruction() -> None:
    nodes = parse("# syntax=x\n# the base\nFROM a\n#\n# the version\nARG V=1\n").nodes
    assert nodes[0].comments == ["the base"]
    assert nodes[1].comments == ["the version"]


def test_diagnostics_collect_everything_without_raising() -> None:
    text = "FROM alpine\nRUNN echo\nENV PATH\nCOPY --frm=x a b\nWORKDIR\nRUN <<EOF\n"
    found = diagnostics(text)
    assert found == [
        Diagnostic(2, 2, "unknown instruction: RUNN (did you mean RUN?)", "warning"),
        Diagnostic(3, 3, "ENV must have two arguments", "error"),
        Diagnostic(4, 4, "unknown flag for COPY: --frm (did you mean --from?)", "error"),
        Diagnostic(5, 5, "WORKDIR requires exactly one argument", "error"),
        Diagnostic(6, 6, "unterminated heredoc EOF", "error"),
    ]


def test_diagnostics_of_empty_text() -> None:
    assert diagnostics("") == [
        Diagnostic(1, 1, "file with no instructions (a Dockerfile starts with FROM <image>)", "error")
    ]
    assert diagnostics("FROM a\nRUN true\n") == []
