"""Text -> what surrounds the cursor: inside a comment or a string, the word there, the event query it sits in.

Read from the text, not the AST, because the file being typed rarely parses. Full-width punctuation is read as
ASCII first (dsl.punct), as the parser reads it; offsets are unchanged by that.

    around(text, offset) -> Around
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from dsl.punct import ascii_punctuation

AGGREGATES = ("count", "sum", "avg", "min", "max", "first", "last", "any", "none", "distinct")
_WORD = re.compile(r"\w")
_DECL = re.compile(r"^(?:users|events|tags|consent|segment|classify|policy|campaign|alert|materialize)\b", re.M)
_AGG_OPEN = re.compile(r"\b(" + "|".join(AGGREGATES) + r")\s*$")
_EVENT_HEAD = re.compile(r"\s*(\w+)")


@dataclass(frozen=True)
class Around:
    text: str  # the whole text, punctuation read as ASCII
    before: str  # the current line up to the cursor
    in_comment: bool
    string: tuple[int, int] | None  # (start, end) offsets of the string's content when the cursor is in one
    word: tuple[int, int]  # (start, end) of the name under or just before the cursor; start == end: none
    chain: list[str]  # the dotted name the word belongs to: ["orders", "amount"]
    part: int  # which part of the chain the cursor is on
    event: str | None  # inside an event query (`count(orders where …)`), its event


def around(text: str, offset: int) -> Around:
    text = ascii_punctuation(text)
    offset = max(0, min(offset, len(text)))
    line_start = text.rfind("\n", 0, offset) + 1
    line_end = text.find("\n", offset)
    line = text[line_start:line_end if line_end >= 0 else len(text)]
    col = offset - line_start
    in_comment, string = _scan(line, col)
    if string is not None:
        string = (line_start + string[0], line_start + string[1])
    start = offset
    while start > 0 and _WORD.match(text[start - 1]):
        start -= 1
    end = offset
    while end < len(text) and _WORD.match(text[end]):
        end += 1
    chain_start, chain_end = start, end
    while chain_start > 1 and text[chain_start - 1] == "." and _WORD.match(text[chain_start - 2]):
        chain_start -= 1
        while chain_start > 0 and _WORD.match(text[chain_start - 1]):
            chain_start -= 1
    while chain_end + 1 < len(text) and text[chain_end] == "." and _WORD.match(text[chain_end + 1]):
        chain_end += 1
        while chain_end < len(text) and _WORD.match(text[chain_end]):
            chain_end += 1
    chain = text[chain_start:chain_end].split(".") if chain_end > chain_start else []
    part = text[chain_start:start].count(".")
    return Around(text, line[:col], in_comment, string, (start, end), chain, part, _event(text, offset))


def _scan(line: str, col: int) -> tuple[bool, tuple[int, int] | None]:
    """(in a comment, the string's content span in the line) at column `col` (0-based)."""
    i, opened = 0, -1
    while i < len(line):
        c = line[i]
        if opened >= 0:
            if c == "\\":
                i += 2
                continue
            if c == '"':
                if opened <= col <= i:
                    return False, (opened, i)
                opened = -1
        elif c == '"':
            if i >= col:
                break
            opened = i + 1
        elif c == "#":
            return i < col, None
        i += 1
    if opened >= 0 and opened <= col:
        return False, (opened, len(line))
    return False, None


def _event(text: str, offset: int) -> str | None:
    """The event of the innermost unclosed `count(EVENT …`, `any(EVENT where …` before the cursor, within the
    current declaration; None outside any event query."""
    decl_start = max((m.start() for m in _DECL.finditer(text, 0, offset)), default=0)
    depth = 0
    i = offset - 1
    while i >= decl_start:
        c = text[i]
        if c == ")":
            depth += 1
        elif c == "(":
            if depth == 0:
                if _AGG_OPEN.search(text, decl_start, i):
                    m = _EVENT_HEAD.match(text, i + 1)
                    if m and m.end() <= offset:
                        return m.group(1)
                    return None
            else:
                depth -= 1
        i -= 1
    return None
