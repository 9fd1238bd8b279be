"""Dockerfile text → a list of instruction nodes with their source lines.

This follows BuildKit's grammar (``frontend/dockerfile/parser``) rule for rule: parser
directives, comments, line continuations with the escape character, builder flags, JSON
(exec) versus shell form, ``KEY value`` versus ``KEY=value`` for ENV/LABEL, and heredocs.
It is written out here rather than taken from the ``dockerfile`` package because the editor
and the error messages need what that wrapper drops: the ``=`` marker of ENV/LABEL pairs,
flags of ONBUILD triggers, heredoc attributes, parser warnings and the line of an error.
The conformance tests compare both parsers on every fixture, so the grammar cannot drift.

Nothing here expands variables or checks what instruction arguments mean; that is
``instructions.py`` and ``stages.py``. ``parse`` raises the first error as a ``DockerfileError``;
``diagnostics`` never raises and reports everything it can find for the editor.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Literal

from explorer.builder.shell import Lexer, ShellExpansionError, go_isspace
from explorer.errors import DockerfileError

__all__ = [
    "INSTRUCTIONS",
    "Diagnostic",
    "Heredoc",
    "Node",
    "ParsedDockerfile",
    "go_quote",
    "parse",
    "suggest",
    "syntax_diagnostics",
    "to_result_line",
]

#: Every instruction keyword BuildKit knows, lower case.
INSTRUCTIONS: tuple[str, ...] = (
    "add",
    "arg",
    "cmd",
    "copy",
    "entrypoint",
    "env",
    "expose",
    "from",
    "healthcheck",
    "label",
    "maintainer",
    "onbuild",
    "run",
    "shell",
    "stopsignal",
    "user",
    "volume",
    "workdir",
)

_HEREDOC_COMMANDS = frozenset({"add", "copy", "run"})
_VALID_DIRECTIVES = frozenset({"syntax", "escape", "check"})
_UTF8_BOM = "\ufeff"

# Go's regexp \s is ASCII-only, so spell the classes out instead of using Python's \s.
_RE_DIRECTIVE = re.compile(r"([a-zA-Z][a-zA-Z0-9]*)[\t\n\f\r ]*=[\t\n\f\r ]*(.+?)[\t\n\f\r ]*\Z")
_RE_WHITESPACE = re.compile(r"[\t\v\f\r ]+")
_RE_HEREDOC = re.compile(r"([0-9]*)<<(-?)([^<]*)\Z")

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Heredoc:
    """A here-document attached to RUN/COPY/ADD: ``<<EOF`` … ``EOF``.

    ``expand`` is false when any part of the marker was quoted (``<<"EOF"``), in which
    case the builder must not expand variables in ``content``. ``chomp`` (``<<-EOF``)
    means leading tabs are stripped from the content lines.
    """

    name: str
    content: str = ""
    expand: bool = True
    chomp: bool = False
    fd: int = 0

    def chomped_content(self) -> str:
        """The content as the builder uses it: leading tabs removed when ``chomp``."""
        if not self.chomp:
            return self.content
        return re.sub(r"(?m)^\t+", "", self.content)


@dataclass
class Node:
    """One instruction as written, before any meaning is given to its arguments.

    ``cmd`` is lower case; ``keyword`` is the instruction as the user spelt it. ``args``
    follows BuildKit's argument list: for ENV/LABEL it is ``key, value, key, value …``
    with ``kv_markers`` holding ``"="`` or ``""`` per pair; for ONBUILD it is the trigger
    keyword followed by the trigger's arguments, and ``sub`` is the trigger node.
    ``original`` is the logical line after joining continuations.
    """

    cmd: str
    keyword: str
    flags: list[str]
    args: list[str]
    json: bool
    start_line: int
    end_line: int
    original: str
    heredocs: list[Heredoc] = field(default_factory=list)
    sub: Node | None = None
    kv_markers: list[str] | None = None
    comments: list[str] = field(default_factory=list)

    @property
    def known(self) -> bool:
        """Whether BuildKit knows this instruction (unknown ones parse but cannot build)."""
        return self.cmd in INSTRUCTIONS


@dataclass(frozen=True)
class Diagnostic:
    """A problem at a place in the file, for the editor's margin and underline."""

    line: int
    end_line: int
    message: str
    severity: Severity = "error"


@dataclass
class ParsedDockerfile:
    """The parse tree of one Dockerfile plus the directives that shaped it."""

    nodes: list[Node]
    directives: dict[str, str]
    escape: str
    filename: str = "Dockerfile"
    warnings: list[Diagnostic] = field(default_factory=list)

    @property
    def syntax(self) -> str | None:
        return self.directives.get("syntax")


class _ParseError(Exception):
    """Internal: an error with its line range, turned into DockerfileError or Diagnostic."""

    def __init__(self, message: str, line: int, end_line: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.end_line = max(end_line, line)


# --- Go compatibility helpers -------------------------------------------------------


def go_quote(text: str) -> str:
    """Go's ``strconv.Quote``: the quoting the conformance ``result`` files use."""
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == " " or (ch.isprintable() and not 0xD800 <= code <= 0xDFFF):
            out.append(ch)
        elif ch in _GO_ESCAPES:
            out.append(_GO_ESCAPES[ch])
        elif code < 0x80:
            out.append(f"\\x{code:02x}")
        elif 0xD800 <= code <= 0xDFFF:
            out.append("\\ufffd")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


_GO_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}


def _trim_left_space(text: str) -> str:
    i = 0
    while i < len(text) and go_isspace(text[i]):
        i += 1
    return text[i:]


def _trim_space(text: str) -> str:
    text = _trim_left_space(text)
    j = len(text)
    while j > 0 and go_isspace(text[j - 1]):
        j -= 1
    return text[:j]


def _trim_newline(text: str) -> str:
    return text.rstrip("\r\n")


def _is_comment(line: str) -> bool:
    return _trim_left_space(line).startswith("#")


def _split_lines(text: str) -> list[str]:
    """Lines with their line endings kept, like BuildKit's scanner.

    Only "\n" ends a line: str.splitlines would also split on \r, \x0b, \x1c, \u2028 …
    """
    parts = text.split("\n")
    lines = [p + "\n" for p in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


def suggest(word: str, choices: list[str] | tuple[str, ...]) -> str | None:
    """The closest choice to a misspelt ``word`` (case-insensitive), if one is close."""
    import difflib

    lowered = {c.lower(): c for c in choices}
    close = difflib.get_close_matches(word.lower(), list(lowered), n=1, cutoff=0.75)
    return lowered[close[0]] if close else None


# --- directives ---------------------------------------------------------------------


class _Directives:
    """Parser directives (``# escape=``) are only honoured before anything else."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}
        self.done = False
        self.escape = "\\"
        self._continuation = self._continuation_regex("\\")

    @staticmethod
    def _continuation_regex(escape: str) -> re.Pattern[str]:
        # The escape character continues the line when it is last (spaces and tabs may
        # follow), unless it is itself escaped.
        e = re.escape(escape)
        return re.compile(rf"([^{e}]){e}[ \t]*\Z|\A{e}[ \t]*\Z")

    def check_line(self, line: str) -> bool:
        """Consume a directive if ``line`` is one; returns whether it was."""
        if self.done:
            return False
        if not line.startswith("#"):
            self.done = True
            return False
        match = _RE_DIRECTIVE.match(_trim_left_space(line[1:]))
        if match is None:
            self.done = True
            return False
        key = match.group(1).lower()
        if key not in _VALID_DIRECTIVES:
            self.done = True
            return False
        if key in self.values:
            raise ValueError(f"only one {key} parser directive can be used")
        value = match.group(2)
        if key == "escape":
            if value not in ("`", "\\"):
                raise ValueError(f"invalid escape token '{value}' does not match ` or \\")
            self.escape = value
            self._continuation = self._continuation_regex(value)
        self.values[key] = value
        return True

    def trim_continuation(self, line: str) -> tuple[str, bool]:
        """Strip a trailing continuation; returns the text and whether the line ends."""
        match = self._continuation.search(line)
        if match is None:
            return line, True
        return line[: match.start()] + (match.group(1) or ""), False


# --- splitting a logical line -------------------------------------------------------


def _extract_flags(line: str) -> tuple[str, list[str]]:
    """Leading ``--flag[=value]`` words; quotes and backslashes inside them are removed."""
    words: list[str] = []
    word: list[str] = []
    in_word = in_quote = False
    quote = ""
    blank_ok = False
    pos = 0
    n = len(line)
    while pos <= n:
        ch = line[pos] if pos < n else ""
        if not in_word and not in_quote:
            if pos == n:
                break
            if go_isspace(ch):
                pos += 1
                continue
            if ch != "-" or pos + 1 == n or line[pos + 1] != "-":
                return line[pos:], words
            in_word = True
        if pos == n:
            text = "".join(word)
            if text != "--" and (blank_ok or text):
                words.append(text)
            break
        if in_word and not in_quote:
            if go_isspace(ch):
                in_word = False
                text = "".join(word)
                if text == "--":
                    return line[pos:], words
                if blank_ok or text:
                    words.append(text)
                word = []
                blank_ok = False
                pos += 1
                continue
            if ch in "'\"":
                quote = ch
                blank_ok = True
                in_quote = True
                pos += 1
                continue
            if ch == "\\":
                if pos + 1 == n:
                    pos += 1
                    continue
                pos += 1
                ch = line[pos]
            word.append(ch)
            pos += 1
            continue
        # inside quotes
        if ch == quote:
            in_quote = False
            pos += 1
            continue
        if ch == "\\":
            if pos + 1 == n:
                in_quote = False
                pos += 1
                continue
            pos += 1
            ch = line[pos]
        word.append(ch)
        pos += 1
    return "", words


def _split_command(line: str) -> tuple[str, list[str], str]:
    parts = _RE_WHITESPACE.split(_trim_space(line), maxsplit=1)
    keyword = parts[0]
    flags: list[str] = []
    args = ""
    if len(parts) == 2:
        args, flags = _extract_flags(parts[1])
    return keyword, flags, _trim_space(args)


def _parse_words(rest: str, escape: str) -> list[str]:
    """Split on whitespace, keeping quotes and escapes in the words (for ENV/LABEL/ARG)."""
    words: list[str] = []
    word: list[str] = []
    in_spaces, in_word, in_quote = 0, 1, 2
    phase = in_spaces
    quote = ""
    blank_ok = False
    pos = 0
    n = len(rest)
    while pos <= n:
        ch = rest[pos] if pos < n else ""
        if phase == in_spaces:
            if pos == n:
                break
            if go_isspace(ch):
                pos += 1
                continue
            phase = in_word
        if pos == n:
            if blank_ok or word:
                words.append("".join(word))
            break
        if phase == in_word:
            if go_isspace(ch):
                phase = in_spaces
                if blank_ok or word:
                    words.append("".join(word))
                word = []
                blank_ok = False
                pos += 1
                continue
            if ch in "'\"":
                quote = ch
                blank_ok = True
                phase = in_quote
            if ch == escape:
                if pos + 1 == n:
                    pos += 1
                    continue
                word.append(ch)
                pos += 1
                ch = rest[pos]
            word.append(ch)
            pos += 1
            continue
        # in_quote
        if ch == quote:
            phase = in_word
        if ch == escape and quote != "'":
            if pos + 1 == n:
                phase = in_word
                pos += 1
                continue
            pos += 1
            word.append(ch)
            ch = rest[pos]
        word.append(ch)
        pos += 1
    return words


# --- argument parsers, one per instruction shape ---------------------------------------


@dataclass
class _Args:
    args: list[str] = field(default_factory=list)
    json: bool = False
    kv_markers: list[str] | None = None
    sub: Node | None = None


class _NotStringArray(Exception):
    pass


def _reject_constant(name: str) -> object:
    raise ValueError(f"invalid JSON constant {name}")


def _parse_json(rest: str) -> list[str] | None:
    """A JSON array of strings, or None when ``rest`` is not valid JSON (shell form)."""
    rest = _trim_left_space(rest)
    if not rest.startswith("["):
        return None
    try:
        value = json.loads(rest, parse_constant=_reject_constant)
    except ValueError:
        return None
    if not isinstance(value, list):
        return None
    out: list[str] = []
    for item in value:
        if not isinstance(item, str):
            raise _NotStringArray
        # Go replaces unpaired surrogate escapes with U+FFFD.
        out.append(re.sub("[\ud800-\udfff]", "\ufffd", item))
    return out


def _maybe_json(rest: str) -> _Args:
    if rest == "":
        return _Args()
    items = _parse_json(rest)
    if items is not None:
        return _Args(items, json=True)
    return _Args([rest])


def _maybe_json_to_list(rest: str) -> _Args:
    items = _parse_json(rest)
    if items is not None:
        return _Args(items, json=True)
    return _whitespace_delimited(rest)


def _whitespace_delimited(rest: str) -> _Args:
    if rest == "":
        return _Args()
    return _Args(_RE_WHITESPACE.split(rest))


def _string(rest: str) -> _Args:
    return _Args([rest] if rest else [])


def _name_val(rest: str, key: str, escape: str) -> _Args:
    # "KEY name value" (old form, one pair, the value is the rest of the line) versus
    # "KEY a=b c=d" (new form): decided by whether the first word has an "=".
    words = _parse_words(rest, escape)
    if not words:
        return _Args(kv_markers=[])
    if "=" not in words[0]:
        parts = _RE_WHITESPACE.split(rest, maxsplit=1)
        if len(parts) < 2:
            raise ValueError(f"{key} must have two arguments")
        return _Args([parts[0], parts[1]], kv_markers=[""])
    args: list[str] = []
    markers: list[str] = []
    for word in words:
        if "=" not in word:
            raise ValueError(f"Syntax error - can't find = in {go_quote(word)}. Must be of the form: name=value")
        name, _, value = word.partition("=")
        args += [name, value]
        markers.append("=")
    return _Args(args, kv_markers=markers)


def _name_or_name_val(rest: str, escape: str) -> _Args:
    return _Args(_parse_words(rest, escape))


def _health_config(rest: str) -> _Args:
    sep = 0
    while sep < len(rest) and not go_isspace(rest[sep]):
        sep += 1
    nxt = sep
    while nxt < len(rest) and go_isspace(rest[nxt]):
        nxt += 1
    if sep == 0:
        return _Args()
    cmd = _maybe_json(rest[nxt:])
    return _Args([rest[:sep], *cmd.args], json=cmd.json)


def _dispatch(cmd: str, rest: str, escape: str) -> _Args:
    if cmd in ("add", "copy", "volume"):
        return _maybe_json_to_list(rest)
    if cmd in ("cmd", "entrypoint", "run", "shell"):
        return _maybe_json(rest)
    if cmd in ("expose", "from"):
        return _whitespace_delimited(rest)
    if cmd in ("maintainer", "stopsignal", "user", "workdir"):
        return _string(rest)
    if cmd == "arg":
        return _name_or_name_val(rest, escape)
    if cmd in ("env", "label"):
        return _name_val(rest, cmd.upper(), escape)
    if cmd == "healthcheck":
        return _health_config(rest)
    if cmd == "onbuild":
        if rest == "":
            return _Args()
        sub = _node_from_line(rest, escape)
        return _Args([sub.keyword, *sub.args], json=False, sub=sub)
    return _Args()


def _node_from_line(line: str, escape: str) -> Node:
    keyword, flags, rest = _split_command(line)
    cmd = keyword.lower()
    try:
        parsed = _dispatch(cmd, rest, escape)
    except _NotStringArray:
        raise ValueError("when using JSON array syntax, arrays must be comprised of strings only") from None
    return Node(
        cmd=cmd,
        keyword=keyword,
        flags=flags,
        args=parsed.args,
        json=parsed.json,
        start_line=0,
        end_line=0,
        original=line,
        sub=parsed.sub,
        kv_markers=parsed.kv_markers,
    )


# --- heredocs -----------------------------------------------------------------------

_HEREDOC_LINE_LEXER = Lexer("\\", raw_quotes=True, raw_escapes=True, skip_unset=True)
_HEREDOC_WORD_LEXER = Lexer("\\", skip_unset=True)
_HEREDOC_WORD_LEXER_RAW = Lexer("\\", raw_quotes=True, skip_unset=True)


def parse_heredoc_marker(word: str) -> Heredoc | None:
    """The heredoc a word such as ``<<EOF``, ``<<-"EOT"`` or ``3<<X`` opens, if any."""
    match = _RE_HEREDOC.match(word)
    if match is None or not match.group(3):
        return None
    rest = match.group(3)
    try:
        words = _HEREDOC_WORD_LEXER.process(rest, {}).words
    except ShellExpansionError as err:
        raise ValueError(err.reason) from None
    if len(words) != 1:
        return None
    try:
        raw_words = _HEREDOC_WORD_LEXER_RAW.process(rest, {}).words
    except ShellExpansionError as err:
        raise ValueError(err.reason) from None
    if len(raw_words) != len(words):
        raise ValueError(f"internal lexing of heredoc produced inconsistent results: {rest}")
    name, raw = words[0], raw_words[0]
    # If quoting removed any quote characters, part of the marker was quoted.
    expand = name.count("'") + name.count('"') == raw.count("'") + raw.count('"')
    return Heredoc(name=name, expand=expand, chomp=match.group(2) == "-", fd=int(match.group(1) or 0))


def _heredocs_in_line(line: str) -> list[Heredoc]:
    try:
        words = _HEREDOC_LINE_LEXER.process(line, {}).words
    except ShellExpansionError:
        return []
    docs = []
    for word in words:
        doc = parse_heredoc_marker(word)
        if doc is not None:
            docs.append(doc)
    return docs


def _can_contain_heredoc(node: Node) -> bool:
    target = node.sub if node.cmd == "onbuild" and node.sub is not None else node
    return target.cmd in _HEREDOC_COMMANDS and not target.json


# --- the driver ---------------------------------------------------------------------


def _parse(text: str, filename: str, on_error: Callable[[_ParseError], None] | None) -> ParsedDockerfile:
    """The parse loop. With ``on_error`` errors are reported and parsing goes on."""

    def fail(message: str, line: int, end_line: int = 0) -> None:
        err = _ParseError(message, line, end_line)
        if on_error is None:
            raise err
        on_error(err)

    d = _Directives()
    lines = _split_lines(text)
    if lines and lines[0].startswith(_UTF8_BOM):
        lines[0] = lines[0][1:]
    nodes: list[Node] = []
    warnings: list[Diagnostic] = []
    comments: list[str] = []
    i = 0
    current = 0

    def process(raw: str, strip_left: bool) -> tuple[str, bool]:
        token = _trim_newline(raw)
        if strip_left:
            token = _trim_left_space(token)
        try:
            is_directive = d.check_line(token)
        except ValueError as err:
            fail(str(err), current + 1)
            is_directive = True
        return ("" if _is_comment(token) else token), is_directive

    while i < len(lines):
        raw = lines[i]
        i += 1
        if _is_comment(raw):
            # Comments directly above FROM and ARG describe them (BuildKit keeps them
            # for the same purpose); a bare "#" line starts a new description.
            comment = _trim_space(_trim_left_space(raw)[1:])
            comments = [*comments, comment] if comment else []
        token, is_directive = process(raw, True)
        if is_directive and comments:
            comments = comments[:-1]
        current += 1
        start = current
        token, ended = d.trim_continuation(token)
        if ended and token == "":
            continue

        buf = [token]
        empty_continuation = False
        while not ended and i < len(lines):
            raw = lines[i]
            i += 1
            token, _ = process(raw, False)
            current += 1
            if _is_comment(raw):
                continue
            if _trim_left_space(_trim_newline(token)) == "":
                empty_continuation = True
                continue
            token, ended = d.trim_continuation(token)
            buf.append(token)
        line = "".join(buf)

        if empty_continuation:
            warnings.append(
                Diagnostic(
                    start,
                    current,
                    "empty continuation line: empty continuation lines will become errors in a future release",
                    "warning",
                )
            )

        try:
            node = _node_from_line(line, d.escape)
        except ValueError as err:
            fail(str(err), start, current)
            comments = []
            continue

        if _can_contain_heredoc(node) and "<<" in line:
            try:
                docs = _heredocs_in_line(line)
            except ValueError as err:
                fail(str(err), start, current)
                docs = []
            for doc in docs:
                body: list[str] = []
                terminated = False
                while i < len(lines):
                    raw = lines[i]
                    i += 1
                    current += 1
                    candidate = _trim_newline(raw)
                    if doc.chomp:
                        candidate = candidate.lstrip("\t")
                    if candidate == doc.name:
                        terminated = True
                        break
                    body.append(raw)
                if not terminated:
                    fail(f"unterminated heredoc {doc.name}", start, current)
                node.heredocs.append(replace(doc, content="".join(body)))

        node.start_line, node.end_line = start, current
        if node.sub is not None:
            node.sub.start_line, node.sub.end_line = start, current
            node.sub.heredocs = node.heredocs
        node.comments = comments
        comments = []
        nodes.append(node)

    if not nodes:
        fail("file with no instructions (a Dockerfile starts with FROM <image>)", current)
    return ParsedDockerfile(
        nodes=nodes, directives=dict(d.values), escape=d.escape, filename=filename, warnings=warnings
    )


def parse(text: str, filename: str = "Dockerfile") -> ParsedDockerfile:
    """Parse Dockerfile text; the first problem raises ``DockerfileError`` with its line."""
    try:
        return _parse(text, filename, None)
    except _ParseError as err:
        raise DockerfileError(err.message, err.line, filename) from None


def parse_leniently(text: str, filename: str = "Dockerfile") -> ParsedDockerfile:
    """What the parser can read of ``text``, going on past each syntax error: the editor
    works on a file while it is being typed, so half a line must not hide the rest."""
    return _parse(text, filename, lambda _err: None)


def to_result_line(node: Node) -> str:
    """The node in BuildKit's dump format: ``(cmd ["--flag"] "arg" …)``."""
    return "(" + _dump(node) + ")"


def _dump(node: Node) -> str:
    parts = [node.cmd]
    if node.flags:
        parts.append("[" + " ".join(go_quote(f) for f in node.flags) + "]")
    if node.cmd == "onbuild":
        if node.sub is not None:
            parts.append("(" + _dump(node.sub) + ")")
    elif node.kv_markers is not None:
        for index, marker in enumerate(node.kv_markers):
            key, value = node.args[2 * index], node.args[2 * index + 1]
            parts += [go_quote(key), go_quote(value), go_quote(marker)]
    elif not node.known:
        parts.append(go_quote(""))
    else:
        parts += [go_quote(a) for a in node.args]
    return " ".join(parts)


def syntax_diagnostics(text: str, filename: str = "Dockerfile") -> tuple[ParsedDockerfile | None, list[Diagnostic]]:
    """The parse of ``text`` (None when the parser itself failed) and what it found:
    syntax errors (it keeps going after each one), its warnings, and unknown
    instructions with a spelling suggestion. ``stages.diagnostics`` adds the meaning."""
    found: list[Diagnostic] = []

    def collect(err: _ParseError) -> None:
        line = max(err.line, 1)
        found.append(Diagnostic(line, max(err.end_line, line), err.message, "error"))

    try:
        parsed = _parse(text, filename, collect)
    except Exception as err:  # the editor must survive any input
        return None, [Diagnostic(1, 1, f"internal parser error: {err}", "error")]
    found += parsed.warnings
    for node in parsed.nodes:
        target = node.sub if node.sub is not None else node
        if not target.known:
            hint = suggest(target.keyword, [c.upper() for c in INSTRUCTIONS])
            message = f"unknown instruction: {target.keyword}" + (f" (did you mean {hint}?)" if hint else "")
            found.append(Diagnostic(node.start_line, node.end_line, message, "warning"))
    return parsed, found
