"""Lark's parse errors -> messages for people who write campaigns, not parsers.

"expected a duration like `7d` after `within`, found `7`" instead of a token dump.
"""

from __future__ import annotations

import re

from lark.exceptions import UnexpectedCharacters, UnexpectedToken

_PHRASES = {
    "DURATION": "a duration like `7d`",
    "NUMBER": "a number",
    "STRING": 'a quoted text like "vip"',
    "NAME": "a name",
    "PERCENT": "a percentage like `10%`",
    "DATE": "a date like `2026-12-01`",
    "DATETIME": "a date and time like `2026-11-11 00:00`",
    "TIME": "a time of day like `10:00`",
    "CURRENCY": "a currency code like `CNY`",
    "COMP_OP": "a comparison like `>=`",
    "EQ": "`=`",
    "HOW_MUCH": "`how much`",
    "TYPE_NAME": "a type (text, number, bool, date, timestamp, money(CNY), enum(...))",
    "$END": "the end of the file",
    "LPAR": "`(`", "RPAR": "`)`", "LBRACE": "`{`", "RBRACE": "`}`", "COMMA": "`,`", "COLON": "`:`",
    "DOT": "`.`", "MINUS": "`-`", "PLUS": "`+`", "MUL_OP": "`*` or `/`",
}
_ORDER = ["DURATION", "PERCENT", "DATE", "DATETIME", "TIME", "STRING", "NUMBER", "CURRENCY", "TYPE_NAME", "NAME"]
_UNIT_HINT = "add a unit: `30m` minutes, `12h` hours, `7d` days, `2w` weeks, `3mo` months"


def _phrase(name: str) -> str:
    if name in _PHRASES:
        return _PHRASES[name]
    if name.isupper() and name.isalpha():
        return f"`{name.lower()}`"
    return f"`{name}`"


def _expected(names: set[str]) -> str:
    names = {n for n in names if n not in ("COMMENT",)}
    if {"NAME", "NUMBER", "STRING", "LPAR"} <= names:
        words = ["a condition or value" if "NOT" in names else "a value"]
        words += [_phrase(n) for n in sorted(names & {"RPAR", "RBRACE", "COLON", "COMMA"})]
    else:
        ordered = [n for n in _ORDER if n in names] + sorted(n for n in names if n not in _ORDER)
        words = [_phrase(n) for n in ordered]
        if len(words) > 7:
            words = words[:6] + ["…"]
    if len(words) == 1:
        return words[0]
    return ", ".join(words[:-1]) + " or " + words[-1]


def _previous_word(text: str, offset: int) -> str | None:
    before = re.sub(r"#[^\n]*", "", text[:offset]).rstrip()
    m = re.search(r"(\w+|[^\w\s])$", before)
    return m.group(1) if m else None


def _found(text: str, offset: int, token) -> str:
    if token is not None and token.type == "$END":
        return "the end of the file"
    word = re.match(r"\w+|\S", text[offset:])
    return f"`{word.group(0)}`" if word else "the end of the file"


def describe_unexpected(error: Exception, text: str, offset: int) -> tuple[str, list[str]]:
    hints: list[str] = []
    prev = _previous_word(text, offset)
    after = f" after `{prev}`" if prev else ""
    line = text[text.rfind("\n", 0, offset) + 1: (text.find("\n", offset) + 1 or len(text) + 1) - 1]
    if isinstance(error, UnexpectedCharacters):
        ch = text[offset] if offset < len(text) else ""
        if ch == '"':
            return "this text has no closing quote", ['close it on the same line: "like this"']
        if ch in "&|!":
            word = {"&": "and", "|": "or", "!": "not"}[ch]
            return f"unexpected `{ch}`", [f"write `{word}`" + (" (`!=` compares)" if ch == "!" else "")]
        if ch == "'":
            hints.append('texts are written in double quotes: "vip"')
        allowed = getattr(error, "allowed", None) or set()
        msg = f"unexpected character `{ch}`" + after
        if allowed:
            msg += f"; expected {_expected(set(allowed))}"
        return msg, hints
    token = getattr(error, "token", None)
    expected = set(getattr(error, "expected", None) or getattr(error, "accepts", None) or ())
    found = _found(text, offset, token)
    msg = f"expected {_expected(expected)}{after}, found {found}" if expected else f"unexpected {found}{after}"
    if isinstance(error, UnexpectedToken) and token is not None:
        if "DURATION" in expected and token.type == "NUMBER":
            hints.append(_UNIT_HINT)
        if str(token) == "=" and text[offset - 1: offset] == "=":
            hints.append("compare with a single `=`")
        if prev == "where" and re.search(r"\bwhen\s+on\b", line) or (
                token.type in ("EQ", "COMP_OP") and re.search(r"^\s*where\b", line)
                and re.search(r"\bwhen\s+on\s+\w+[^\n]*$", text[:text.rfind("\n", 0, offset)].rstrip())):
            hints.append('an event trigger is filtered with `if`: `when on visits if source = "app"`')
        if "CURRENCY" in expected and token.type == "NAME":
            hints.append("currency codes are three capital letters: `CNY`, `USD`, `EUR`")
        if token.type == "RBRACE" and "TIME" in expected:
            hints.append("times of day are written `10:00`")
    return msg, hints
