"""JSON that arrives from outside (archives, registries), parsed with a nesting limit.

Python's parser recurses once per array or object, so a document of 100000 ``[`` ends in
a RecursionError; and one that parses at the top of the stack can fail later when the
same text is parsed again deeper in it (the store re-reads a config it was given). A
limit well below the recursion limit makes both impossible. Go's encoding/json, which
Docker uses, stops at 10000 levels; no manifest or image config comes near either.
"""

from __future__ import annotations

import json
import re
from typing import Any

MAX_DEPTH = 512

# A string (escapes included, or unterminated to the end) or one bracket.
_TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*"?|[\[\]{}]', re.DOTALL)


class TooDeep(ValueError):
    """Raised like json.JSONDecodeError, so callers that handle bad JSON handle this too."""

    def __init__(self, pos: int) -> None:
        super().__init__(f"arrays and objects nested deeper than {MAX_DEPTH} levels (at byte {pos})")
        self.pos = pos


def _check_depth(raw: bytes) -> None:
    if raw.count(b"[") + raw.count(b"{") <= MAX_DEPTH:
        return  # too few brackets to nest that deep: the common case costs two counts
    depth = 0
    for token in _TOKEN.finditer(raw):
        c = raw[token.start()]
        if c in b"[{":
            depth += 1
            if depth > MAX_DEPTH:
                raise TooDeep(token.start())
        elif c in b"]}":
            depth -= 1


def loads(raw: bytes | str) -> Any:
    """``json.loads`` for untrusted text; raises ValueError (``TooDeep`` for nesting) on bad input."""
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    _check_depth(data)
    return json.loads(raw)
