"""(Index, text, cursor) -> what may be typed there, by context:

- after `orders.`: the fields of orders (with `time`); after `users.`-less names nothing is guessed;
- inside the string after `template`: the files of the template folder; after `tagged`: the workspace's tags;
  after an enum field and `=`: its values;
- after `segment` (not at the start of a declaration): segments; after `moved`: classifications;
- after `lifecycle =`, `lifecycle in (`, `lifecycle was`, `moved lifecycle from`, in a tiered cap's
  `by lifecycle { … }`: lifecycle's labels;
- elsewhere: inside an event query its fields first, then users fields, events, segments, classifications and
  the language's keywords (read from dsl/grammar.lark, so the list cannot fall behind the grammar).

    complete_at(index, text, offset) -> list[Symbol]
"""

from __future__ import annotations

import re
from functools import lru_cache

from compiler.editor.context import around
from compiler.editor.index import Index, Symbol
from dsl.parse import GRAMMAR

_IN_STRING = re.compile(r"\b(template|tagged|(\w+)\s*!?=|(\w+)\s+(?:not\s+)?in\s*\([^()]*)\s*$")
_DOT = re.compile(r"\b(\w+)\.\w*$")
_SEGMENT = re.compile(r"\bsegment\s+\w*$")
_MOVED = re.compile(r"\bmoved\s+\w*$")
_NAMING = re.compile(r"^(?:segment|classify|campaign|alert|events)\s+\w*$")  # a new name is being written
_LABELS = (
    re.compile(r"\b(\w+)\s*!?=\s*\w*$"),
    re.compile(r"\b(\w+)\s+(?:not\s+)?in\s*\([^()]*$"),
    re.compile(r"\b(\w+)\s+was\s+\w*$"),
    re.compile(r"\bmoved\s+(\w+)\s+from\s+(?:\w+\s+to\s+)?\w*$"),
    re.compile(r"\bby\s+(\w+)\s*\{(?:\s*\w+\s+\d+)*\s+\w*$"),  # a tiered cap: `by engagement { highly_engaged 2 `
)


@lru_cache(maxsize=1)
def keywords() -> tuple[str, ...]:
    """Every word the grammar spells out (`"within"`), and `much` of `how much`."""
    grammar = re.sub(r"//[^\n]*", "", GRAMMAR.read_text(encoding="utf-8"))
    return tuple(sorted(set(re.findall(r'"([a-z_]+)"', grammar)) | {"much"}))


def complete_at(index: Index, text: str, offset: int) -> list[Symbol]:
    at = around(text, offset)
    if at.in_comment:
        return []
    if at.string is not None:
        quote = at.string[0] - 1
        return _in_string(index, at.text[max(0, quote - 300):quote])
    before = at.before
    if _NAMING.match(before):
        return []
    m = _DOT.search(before)
    if m:
        return list(index.event_fields.get(m.group(1), {}).values())
    for pattern in _LABELS:
        m = pattern.search(before)
        if m and m.group(1) in index.labels:
            return list(index.labels[m.group(1)].values())
    m = _SEGMENT.search(before)
    if m and m.start() > 0:  # in column 1 it declares one
        return list(index.segments.values())
    if _MOVED.search(before):
        return list(index.classifications.values())
    out: list[Symbol] = []
    if at.event is not None:
        out += index.event_fields.get(at.event, {}).values()
    for table in (index.fields, index.events, index.segments, index.classifications):
        out += table.values()
    out += [Symbol("keyword", k, "keyword", "") for k in keywords()]
    return out


def _in_string(index: Index, before: str) -> list[Symbol]:
    m = _IN_STRING.search(before)
    if m is None:
        return []
    if m.group(1) == "template":
        return list(index.templates.values())
    if m.group(1) == "tagged":
        return list(index.tags.values())
    field = index.fields.get(m.group(2) or m.group(3) or "")
    if field is None or not field.detail.startswith("enum("):
        return []
    values = re.findall(r'"((?:[^"\\]|\\.)*)"', field.detail)
    return [Symbol("value", v, f"value of {field.name}", f"a value of `{field.name}` ({field.detail})") for v in values]
