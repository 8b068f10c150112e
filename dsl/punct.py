"""Full-width punctuation and curly quotes -> ASCII, outside string literals and comments.

A Chinese input method types `：，（）“”` where the language has `: , ( ) "`. The parser reads the
text this function returns, so a campaign typed that way checks, compiles and runs like the ASCII
one, and `camp fmt` writes ASCII (the AST keeps no trace of the form). Every replacement is one
character for one, so lines, columns and offsets (spans) are the same in both texts.

What is written between quotes stays exactly as written: a string opened with `"` closes only at
`"` (curly quotes inside it are text); one opened with `“`, `”` or `＂` closes at the next of
`" “ ” ＂`; one opened with `‘` or `’` at the next `‘` or `’`. Full-width digits and letters are
not mapped (digits are ASCII only; letters are name characters).
"""

from __future__ import annotations

import re

PUNCTUATION = {
    "：": ":", "，": ",", "、": ",", "（": "(", "）": ")", "＝": "=", "＜": "<", "＞": ">", "！": "!",
    "％": "%", "｛": "{", "｝": "}", "＋": "+", "－": "-", "＊": "*", "／": "/", "．": ".", "\u3000": " ",
}
_DOUBLE = "\"“”＂"
_SINGLE = "‘’"
OPENERS = {q: _DOUBLE for q in "“”＂"} | {q: _SINGLE for q in _SINGLE}


_SPECIAL = re.compile("[" + re.escape("".join(PUNCTUATION) + "".join(OPENERS)) + "]")


def ascii_punctuation(text: str) -> str:
    """`text` with full-width punctuation and curly string delimiters read as ASCII (same length)."""
    if text.isascii() or _SPECIAL.search(text) is None:  # nothing to map: Chinese titles alone change nothing
        return text
    out = list(text)
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "#":  # a comment runs to the end of the line
            nl = text.find("\n", i)
            i = n if nl < 0 else nl
            continue
        if ch == '"' or ch in OPENERS:
            closers = '"' if ch == '"' else OPENERS[ch]
            j = _string_end(text, i + 1, closers)
            out[i] = '"'
            if j < n and text[j] in closers:
                out[j] = '"'
            i = j + 1
            continue
        mapped = PUNCTUATION.get(ch)
        if mapped is not None:
            out[i] = mapped
        i += 1
    return "".join(out)


def _string_end(text: str, i: int, closers: str) -> int:
    """The index of the closing quote, or of the newline / end of text where an unclosed string stops
    (strings never span lines: the lexer then reports the unclosed quote)."""
    n = len(text)
    while i < n:
        ch = text[i]
        if ch in closers or ch == "\n":
            return i
        if ch == "\\" and i + 1 < n and text[i + 1] != "\n":
            i += 2
            continue
        i += 1
    return n
