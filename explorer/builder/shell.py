"""BuildKit's word lexer: quote removal, escapes and ``$VAR`` expansion.

Dockerfile arguments are not run through a real shell; BuildKit applies its own small
lexer (``frontend/dockerfile/shell``) to ENV, ARG, COPY, WORKDIR … words with the variables
in effect at that step. Builds must expand words exactly as Docker does or the same
Dockerfile would produce different images, so this module follows that lexer's rules,
including its quirks (``$1`` is empty, ``${V:=x}`` is an error, ``\\`` at the end of a word
disappears). The conformance fixtures ``envVarTest`` and ``wordsTest`` pin the behaviour.

The lexer also reports which variables a word looked up, set or not: the build cache keys a
step on the ARGs it actually used.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from explorer.errors import StrataError

__all__ = [
    "ExpansionResult",
    "Lexer",
    "ShellExpansionError",
    "expand_with_matches",
    "expand_word",
    "expand_words",
    "go_isspace",
]

_EOF = ""
_SPECIAL_PARAMS = frozenset("@*#?-$!0")
_LATIN1_SPACES = frozenset("\t\n\v\f\r \x85\xa0")


class ShellExpansionError(StrataError):
    """A word could not be expanded: bad ``${…}`` syntax, an open quote, or ``${V?msg}``."""

    def __init__(self, word: str, reason: str) -> None:
        super().__init__(f"failed to process {_go_quote_simple(word)}: {reason}")
        self.word = word
        self.reason = reason


def _go_quote_simple(text: str) -> str:
    # Enough of Go's %q for error messages; exact quoting lives in parser.go_quote.
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def go_isspace(ch: str) -> bool:
    """Go's ``unicode.IsSpace``: Python's ``isspace`` also counts \\x1c-\\x1f, Go does not."""
    if ord(ch) < 0x100:
        return ch in _LATIN1_SPACES
    return ch.isspace()


def _is_letter(ch: str) -> bool:
    return ch.isalpha()


def _is_digit(ch: str) -> bool:
    # Go's unicode.IsDigit is the Nd category, which is what str.isdecimal tests.
    return ch.isdecimal()


@dataclass(frozen=True)
class ExpansionResult:
    """One expanded word, its split into words, and the variables it looked up."""

    value: str
    words: list[str]
    matched: frozenset[str]
    unmatched: frozenset[str]


class _LexError(Exception):
    """Internal: carries the reason up to ``Lexer.process``, which names the word."""


@dataclass
class _Words:
    """Collects the word split the same way BuildKit's ``wordsStruct`` does."""

    word: str = ""
    words: list[str] = field(default_factory=list)
    in_word: bool = False

    def add_char(self, ch: str) -> None:
        if go_isspace(ch):
            if self.in_word and self.word:
                self.words.append(self.word)
                self.word = ""
                self.in_word = False
        else:
            self.add_raw_char(ch)

    def add_raw_char(self, ch: str) -> None:
        self.word += ch
        self.in_word = True

    def add_string(self, text: str) -> None:
        for ch in text:
            self.add_char(ch)

    def add_raw_string(self, text: str) -> None:
        self.word += text
        self.in_word = True

    def finish(self) -> list[str]:
        if self.word:
            self.words.append(self.word)
            self.word = ""
            self.in_word = False
        return self.words


class _Scan:
    """A character cursor with Go ``text/scanner`` Peek/Next semantics (EOF is "")."""

    __slots__ = ("pos", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else _EOF

    def next(self) -> str:
        if self.pos >= len(self.text):
            return _EOF
        ch = self.text[self.pos]
        self.pos += 1
        return ch


class Lexer:
    """One configuration of the lexer; ``process`` is pure and may be called repeatedly.

    ``raw_quotes`` keeps quote characters in the output, ``raw_escapes`` keeps escape
    characters, ``skip_unset`` leaves references to unset variables untouched and
    ``skip_quotes`` treats quotes as ordinary characters. The parser needs the raw modes
    to find heredoc markers; builds use the defaults.
    """

    def __init__(
        self,
        escape: str = "\\",
        *,
        raw_quotes: bool = False,
        raw_escapes: bool = False,
        skip_unset: bool = False,
        skip_quotes: bool = False,
    ) -> None:
        if len(escape) != 1:
            raise ValueError(f"escape must be one character, not {escape!r}")
        self.escape = escape
        self.raw_quotes = raw_quotes
        self.raw_escapes = raw_escapes
        self.skip_unset = skip_unset
        self.skip_quotes = skip_quotes

    def process(self, word: str, env: Mapping[str, str]) -> ExpansionResult:
        run = _Run(self, word, env)
        try:
            value, words = run.stop_on(_EOF, self.raw_escapes)
        except _LexError as err:
            raise ShellExpansionError(word, str(err)) from None
        return ExpansionResult(value, words, frozenset(run.matched), frozenset(run.unmatched))


class _Run:
    """The state of one ``Lexer.process`` call."""

    def __init__(self, lexer: Lexer, word: str, env: Mapping[str, str]) -> None:
        self.lx = lexer
        self.scan = _Scan(word)
        self.env = env
        self.raw_escapes = lexer.raw_escapes
        self.matched: set[str] = set()
        self.unmatched: set[str] = set()

    def getenv(self, name: str) -> tuple[str, bool]:
        if name in self.env:
            self.matched.add(name)
            return self.env[name], True
        self.unmatched.add(name)
        return "", False

    def stop_on(self, stop: str, raw_escapes: bool) -> tuple[str, list[str]]:
        saved = self.raw_escapes
        self.raw_escapes = raw_escapes
        try:
            return self._stop_on(stop)
        finally:
            self.raw_escapes = saved

    def _stop_on(self, stop: str) -> tuple[str, list[str]]:
        scan = self.scan
        escape = self.lx.escape
        quotes = not self.lx.skip_quotes
        out: list[str] = []
        words = _Words()
        while scan.peek() != _EOF:
            ch = scan.peek()
            if stop != _EOF and ch == stop:
                scan.next()
                return "".join(out), words.finish()
            if ch == "$":
                tmp = self.dollar()
                out.append(tmp)
                words.add_string(tmp)
                continue
            if quotes and ch in "'\"":
                tmp = self.single_quote() if ch == "'" else self.double_quote()
                out.append(tmp)
                words.add_raw_string(tmp)
                continue
            ch = scan.next()
            if ch == escape:
                if self.raw_escapes:
                    words.add_raw_char(ch)
                    out.append(ch)
                ch = scan.next()
                if ch == _EOF:
                    break
                words.add_raw_char(ch)
            else:
                words.add_char(ch)
            out.append(ch)
        if stop != _EOF:
            raise _LexError(f"unexpected end of statement while looking for matching {stop}")
        return "".join(out), words.finish()

    def single_quote(self) -> str:
        # Nothing is special between single quotes, not even the escape character.
        scan = self.scan
        out: list[str] = []
        ch = scan.next()
        if self.lx.raw_quotes:
            out.append(ch)
        while True:
            ch = scan.next()
            if ch == _EOF:
                raise _LexError("unexpected end of statement while looking for matching single-quote")
            if ch == "'":
                if self.lx.raw_quotes:
                    out.append(ch)
                return "".join(out)
            out.append(ch)

    def double_quote(self) -> str:
        # Inside double quotes only $ expands, and the escape character only escapes
        # '"', '$' and itself; before anything else it stays literal.
        scan = self.scan
        escape = self.lx.escape
        out: list[str] = []
        ch = scan.next()
        if self.lx.raw_quotes:
            out.append(ch)
        while True:
            nxt = scan.peek()
            if nxt == _EOF:
                raise _LexError("unexpected end of statement while looking for matching double-quote")
            if nxt == '"':
                ch = scan.next()
                if self.lx.raw_quotes:
                    out.append(ch)
                return "".join(out)
            if nxt == "$":
                out.append(self.dollar())
                continue
            ch = scan.next()
            if ch == escape:
                if self.raw_escapes:
                    out.append(ch)
                following = scan.peek()
                if following == _EOF:
                    continue
                if following in ('"', "$", escape):
                    ch = scan.next()
            out.append(ch)

    def name(self) -> str:
        scan = self.scan
        chars: list[str] = []
        while scan.peek() != _EOF:
            ch = scan.peek()
            if not chars and _is_digit(ch):
                # Positional parameters: all the digits form the name (never set).
                while scan.peek() != _EOF and _is_digit(scan.peek()):
                    chars.append(scan.next())
                return "".join(chars)
            if not chars and ch in _SPECIAL_PARAMS:
                return scan.next()
            if not (_is_letter(ch) or _is_digit(ch) or ch == "_"):
                break
            chars.append(scan.next())
        return "".join(chars)

    def dollar(self) -> str:
        scan = self.scan
        scan.next()
        if scan.peek() != "{":
            name = self.name()
            if not name:
                return "$"
            value, found = self.getenv(name)
            if not found and self.lx.skip_unset:
                return "$" + name
            return value

        scan.next()
        nxt = scan.peek()
        if nxt == _EOF:
            raise _LexError("syntax error: missing '}'")
        if nxt in "{}:":
            raise _LexError("syntax error: bad substitution")
        name = self.name()
        ch = scan.next()
        modifier = ch
        null_is_unset = False

        if ch == "}":
            value, found = self.getenv(name)
            if not found and self.lx.skip_unset:
                return "${" + name + "}"
            return value

        via_colon = ch == ":"
        if via_colon:
            null_is_unset = True
            ch = scan.next()
            modifier += ch

        if via_colon or ch in ("+", "-", "?", "#", "%"):
            word = self._read_modifier_word(ch)
            value, found = self.getenv(name)
            if self.lx.skip_unset and not found:
                return "${" + name + modifier + word + "}"
            if ch not in ("+", "-", "?", "#", "%"):
                raise _LexError(f"unsupported modifier ({modifier}) in substitution")
            return self._apply_modifier(name, ch, word, value, found, null_is_unset)

        if ch == "/":
            return self._replace(name)

        raise _LexError(f"unsupported modifier ({modifier}) in substitution")

    def _read_modifier_word(self, ch: str) -> str:
        try:
            word, _ = self.stop_on("}", ch in ("#", "%"))
        except _LexError:
            if self.scan.peek() == _EOF:
                raise _LexError("syntax error: missing '}'") from None
            raise
        return word

    def _apply_modifier(self, name: str, ch: str, word: str, value: str, found: bool, null_is_unset: bool) -> str:
        empty = not found or (null_is_unset and value == "")
        if ch == "-":
            return word if empty else value
        if ch == "+":
            return "" if empty else word
        if ch == "?":
            if not found:
                raise _LexError(f"{name}: {word or 'is not allowed to be unset'}")
            if null_is_unset and value == "":
                raise _LexError(f"{name}: {word or 'is not allowed to be empty'}")
            return value
        greedy = False
        if word.startswith(ch):
            greedy = True
            word = word[1:]
        if ch == "%":
            return _trim_suffix(word, value, greedy)
        return _trim_prefix(word, value, greedy)

    def _replace(self, name: str) -> str:
        scan = self.scan
        replace_all = scan.peek() == "/"
        if replace_all:
            scan.next()
        try:
            pattern, _ = self.stop_on("/", True)
        except _LexError:
            if scan.peek() == _EOF:
                raise _LexError("syntax error: missing '/' in ${}") from None
            raise
        try:
            replacement, _ = self.stop_on("}", True)
        except _LexError:
            if scan.peek() == _EOF:
                raise _LexError("syntax error: missing '}'") from None
            raise
        value, found = self.getenv(name)
        if self.lx.skip_unset and not found:
            return "${" + name + "/" + pattern + "/" + replacement + "}"
        regex = _pattern_regex(pattern, greedy=True, anchored=False)
        if replace_all:
            return regex.sub(lambda _m: replacement, value)
        match = regex.search(value)
        if match is None:
            return value
        return value[: match.start()] + replacement + value[match.end() :]


def _pattern_regex(pattern: str, *, greedy: bool, anchored: bool) -> re.Pattern[str]:
    """Shell wildcard (``*``, ``?``, ``\\x``) to a regex, as BuildKit converts it."""
    parts: list[str] = ["^"] if anchored else []
    star = ".*" if greedy else ".*?"
    scan = _Scan(pattern)
    while True:
        tok = scan.next()
        if tok == _EOF:
            break
        if tok == "*":
            parts.append(star)
        elif tok == "?":
            parts.append(".")
        elif tok == "\\":
            if scan.peek() in ("}", "/"):
                # The escape protected a ${} delimiter; it is not part of the pattern.
                continue
            tok = scan.next()
            if tok not in ("*", "?", "\\"):
                raise _LexError(f"invalid pattern ({pattern}) in substitution: invalid escape '\\{tok}'")
            parts.append(re.escape(tok))
        else:
            parts.append(re.escape(tok))
    return re.compile("".join(parts))


def _reverse_pattern(pattern: str) -> str:
    # Reverse the pattern but keep each escape in front of the character it escapes.
    units: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern[i] == "\\" and i != len(pattern) - 1:
            units.append(pattern[i : i + 2])
            i += 2
        else:
            units.append(pattern[i])
            i += 1
    return "".join(reversed(units))


def _trim_prefix(pattern: str, value: str, greedy: bool) -> str:
    match = _pattern_regex(pattern, greedy=greedy, anchored=True).search(value)
    return value[match.end() :] if match else value


def _trim_suffix(pattern: str, value: str, greedy: bool) -> str:
    # Regexes find the leftmost match; reversing both sides turns "shortest suffix"
    # into "shortest prefix".
    return _trim_prefix(_reverse_pattern(pattern), value[::-1], greedy)[::-1]


_DEFAULT_LEXERS: dict[str, Lexer] = {}


def _lexer(escape: str) -> Lexer:
    lexer = _DEFAULT_LEXERS.get(escape)
    if lexer is None:
        lexer = _DEFAULT_LEXERS[escape] = Lexer(escape)
    return lexer


def expand_word(word: str, env: Mapping[str, str], escape: str = "\\") -> str:
    """Expand variables and remove quotes and escapes from one word."""
    return _lexer(escape).process(word, env).value


def expand_words(text: str, env: Mapping[str, str], escape: str = "\\") -> list[str]:
    """Expand ``text`` and split it into words; quoted spaces do not split."""
    return _lexer(escape).process(text, env).words


def expand_with_matches(word: str, env: Mapping[str, str], escape: str = "\\") -> ExpansionResult:
    """Expand one word and report which variable names were found or missing in ``env``."""
    return _lexer(escape).process(word, env)


def word_expander(env: Mapping[str, str], escape: str = "\\") -> Callable[[str], str]:
    """A one-argument expander bound to ``env``, the shape typed instructions take."""

    def expand(word: str) -> str:
        return expand_word(word, env, escape)

    return expand
