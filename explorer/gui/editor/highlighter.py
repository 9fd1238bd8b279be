"""Syntax colours: Dockerfiles (instructions, flags, strings, variables, comments,
heredocs) and a small generic scheme for the files the browser shows.

Dockerfile state crosses lines in two ways: a line ending in the escape character
continues the instruction, and a heredoc (``RUN <<EOF``) makes the following lines its
body up to the terminator. The block state carries both, so editing one line re-colours
exactly the lines whose meaning changed. Colours come from the palette, so a dark desktop
gets a dark scheme.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass

from PySide6.QtGui import (
    QColor,
    QFont,
    QGuiApplication,
    QPalette,
    QSyntaxHighlighter,
    QTextCharFormat,
    QTextDocument,
)

from ...api.dockerfile import KEYWORDS

INSTRUCTIONS = KEYWORDS

_INSTRUCTION = re.compile(r"^(\s*)([A-Za-z]+)\b")
_FLAG = re.compile(r"(?<!\S)--[A-Za-z][\w-]*(=(\"[^\"]*\"|'[^']*'|\S*))?")
_STRING = re.compile(r"\"(?:\\.|[^\"\\])*\"?|'[^']*'?")
_VARIABLE = re.compile(r"\$(\{[^}]*\}?|[A-Za-z_][A-Za-z0-9_]*)")
_HEREDOC = re.compile(r"<<(-?)(['\"]?)([A-Za-z_][A-Za-z0-9_]*)\2")
_DIRECTIVE = re.compile(r"^#\s*(syntax|escape|check)\s*=\s*(\S+)", re.IGNORECASE)
_AS = re.compile(r"(?i)\s(AS)\s+(\S+)\s*$")

NORMAL = 0
CONTINUED = 1
_HEREDOC_BASE = 2


def is_dark(palette: QPalette | None = None) -> bool:
    pal = palette or QGuiApplication.palette()
    return pal.color(QPalette.ColorRole.Base).lightness() < 128


@dataclass
class Scheme:
    instruction: QTextCharFormat
    flag: QTextCharFormat
    string: QTextCharFormat
    variable: QTextCharFormat
    comment: QTextCharFormat
    directive: QTextCharFormat
    heredoc: QTextCharFormat
    heredoc_marker: QTextCharFormat
    number: QTextCharFormat
    keyword: QTextCharFormat
    stage: QTextCharFormat


def _fmt(color: str, bold: bool = False, italic: bool = False) -> QTextCharFormat:
    f = QTextCharFormat()
    f.setForeground(QColor(color))
    if bold:
        f.setFontWeight(QFont.Weight.Bold)
    if italic:
        f.setFontItalic(True)
    return f


def scheme(dark: bool) -> Scheme:
    if dark:
        return Scheme(
            _fmt("#79c0ff", bold=True),
            _fmt("#d2a8ff"),
            _fmt("#a5d6ff"),
            _fmt("#ffa657"),
            _fmt("#8b949e", italic=True),
            _fmt("#8b949e", bold=True),
            _fmt("#7ee787"),
            _fmt("#ff7b72", bold=True),
            _fmt("#79c0ff"),
            _fmt("#ff7b72"),
            _fmt("#f2cc60", bold=True),
        )
    return Scheme(
        _fmt("#0550ae", bold=True),
        _fmt("#8250df"),
        _fmt("#0a3069"),
        _fmt("#953800"),
        _fmt("#6e7781", italic=True),
        _fmt("#6e7781", bold=True),
        _fmt("#116329"),
        _fmt("#cf222e", bold=True),
        _fmt("#0550ae"),
        _fmt("#cf222e"),
        _fmt("#7d4e00", bold=True),
    )


class DockerfileHighlighter(QSyntaxHighlighter):
    def __init__(self, document: QTextDocument) -> None:
        super().__init__(document)
        self.scheme = scheme(is_dark())
        self._heredocs: dict[int, tuple[tuple[str, bool], ...]] = {}

    def set_dark(self, dark: bool) -> None:
        self.scheme = scheme(dark)
        self.rehighlight()

    def _escape(self) -> str:
        """The escape character from a ``# escape=`` directive at the top, else backslash."""
        block = self.document().firstBlock()
        while block.isValid():
            text = block.text().strip()
            if not text.startswith("#"):
                break
            m = _DIRECTIVE.match(text)
            if m is None:
                break
            if m.group(1).lower() == "escape" and m.group(2) in ("`", "\\"):
                return m.group(2)
            block = block.next()
        return "\\"

    def _state_for(self, pending: tuple[tuple[str, bool], ...]) -> int:
        key = "|".join(f"{n}:{int(s)}" for n, s in pending)
        state = _HEREDOC_BASE + (zlib.crc32(key.encode()) & 0x3FFFFFFF)
        self._heredocs[state] = pending
        return state

    def highlightBlock(self, text: str) -> None:
        s = self.scheme
        previous = self.previousBlockState()
        if previous >= _HEREDOC_BASE and previous in self._heredocs:
            pending = self._heredocs[previous]
            name, strip_tabs = pending[0]
            line = text.lstrip("\t") if strip_tabs else text
            if line == name:
                self.setFormat(0, len(text), s.heredoc_marker)
                rest = pending[1:]
                self.setCurrentBlockState(self._state_for(rest) if rest else NORMAL)
            else:
                self.setFormat(0, len(text), s.heredoc)
                self._variables(text, 0)
                self.setCurrentBlockState(previous)
            return
        stripped = text.lstrip()
        if stripped.startswith("#"):
            m = _DIRECTIVE.match(stripped)
            self.setFormat(0, len(text), s.directive if m and self.currentBlock().blockNumber() < 8 else s.comment)
            # a comment line inside a continued instruction keeps the instruction going
            self.setCurrentBlockState(CONTINUED if previous == CONTINUED else NORMAL)
            return
        start = 0
        if previous != CONTINUED:
            m = _INSTRUCTION.match(text)
            if m is not None and m.group(2).upper() in INSTRUCTIONS:
                self.setFormat(m.start(2), len(m.group(2)), s.instruction)
                start = m.end(2)
                if m.group(2).upper() == "FROM":
                    stage = _AS.search(text)
                    if stage is not None:
                        self.setFormat(stage.start(1), 2, s.keyword)
                        self.setFormat(stage.start(2), len(stage.group(2)), s.stage)
        for m in _FLAG.finditer(text, start):
            self.setFormat(m.start(), m.end() - m.start(), s.flag)
        for m in _STRING.finditer(text, start):
            self.setFormat(m.start(), m.end() - m.start(), s.string)
        self._variables(text, start)
        heredocs = [(m.group(3), m.group(1) == "-") for m in _HEREDOC.finditer(text, start)]
        for m in _HEREDOC.finditer(text, start):
            self.setFormat(m.start(), m.end() - m.start(), s.heredoc_marker)
        escape = self._escape()
        continued = text.rstrip().endswith(escape) and bool(text.strip())
        if heredocs:
            self.setCurrentBlockState(self._state_for(tuple(heredocs)))
        elif continued:
            self.setCurrentBlockState(CONTINUED)
        else:
            self.setCurrentBlockState(NORMAL)

    def _variables(self, text: str, start: int) -> None:
        for m in _VARIABLE.finditer(text, start):
            if m.start() > 0 and text[m.start() - 1] == "\\":
                continue
            self.setFormat(m.start(), m.end() - m.start(), self.scheme.variable)


# --- everything else ---------------------------------------------------------------------

_WORD = re.compile(
    r"\b(if|then|else|elif|fi|for|while|do|done|case|esac|function|return|in|export|"
    r"def|class|import|from|as|with|try|except|finally|raise|lambda|yield|pass|"
    r"true|false|null|None|True|False|const|let|var|local)\b"
)
_NUMBER = re.compile(r"\b\d+(\.\d+)?\b")
_HASH_COMMENT = re.compile(r"(^|\s)#.*$")
_SLASH_COMMENT = re.compile(r"(^|\s)//.*$")
_INI_SECTION = re.compile(r"^\s*\[[^\]]+\]\s*$")
_KEY = re.compile(r"^\s*([\w.\-]+)\s*[:=]")


class GenericHighlighter(QSyntaxHighlighter):
    """Comments, strings, numbers, keys and common keywords: enough to read config files,
    scripts and JSON in the file viewer without a grammar per language."""

    def __init__(self, document: QTextDocument, language: str = "text") -> None:
        super().__init__(document)
        self.language = language
        self.scheme = scheme(is_dark())

    def highlightBlock(self, text: str) -> None:
        if self.language == "text":
            return
        s = self.scheme
        if self.language in ("ini", "yaml", "json", "conf"):
            if _INI_SECTION.match(text):
                self.setFormat(0, len(text), s.instruction)
                return
            m = _KEY.match(text)
            if m is not None:
                self.setFormat(m.start(1), len(m.group(1)), s.flag)
        for m in _NUMBER.finditer(text):
            self.setFormat(m.start(), m.end() - m.start(), s.number)
        if self.language in ("shell", "python", "code"):
            for m in _WORD.finditer(text):
                self.setFormat(m.start(), m.end() - m.start(), s.keyword)
            for m in _VARIABLE.finditer(text):
                self.setFormat(m.start(), m.end() - m.start(), s.variable)
        for m in _STRING.finditer(text):
            self.setFormat(m.start(), m.end() - m.start(), s.string)
        comment = _SLASH_COMMENT if self.language == "code" else _HASH_COMMENT
        if self.language != "json":
            m = comment.search(text)
            if m is not None:
                self.setFormat(m.start(), len(text) - m.start(), s.comment)


_EXTENSIONS = {
    ".sh": "shell",
    ".bash": "shell",
    ".py": "python",
    ".json": "json",
    ".ini": "ini",
    ".cfg": "ini",
    ".conf": "conf",
    ".toml": "ini",
    ".yaml": "yaml",
    ".yml": "yaml",
    ".c": "code",
    ".h": "code",
    ".js": "code",
    ".ts": "code",
    ".go": "code",
    ".rs": "code",
    ".java": "code",
    ".cpp": "code",
}


def language_for(path: str, head: bytes = b"") -> str:
    name = path.rsplit("/", 1)[-1]
    lower = name.lower()
    if lower == "dockerfile" or lower.endswith(".dockerfile") or lower.startswith("dockerfile."):
        return "dockerfile"
    for ext, lang in _EXTENSIONS.items():
        if lower.endswith(ext):
            return lang
    if head.startswith(b"#!"):
        first = head.split(b"\n", 1)[0]
        return "python" if b"python" in first else "shell"
    if path.startswith("/etc/") or lower.endswith("rc"):
        return "conf"
    return "text"
