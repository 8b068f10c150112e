"""(Index, file, text, cursor) -> the Symbol under the cursor, resolved the way the checker resolves names:
`orders.amount` is a field of orders, `brand` inside `count(orders where brand = …)` a field of orders, a bare
name a users field, a segment or a classification, `churned` in `lifecycle = churned` a label of lifecycle,
the string after `template` a template file and the one after `tagged` a tag.

The AST gives the context when the file parses (a rule's label, the classification of `was` and `moved`);
the text alone answers when it does not.

    symbol_at(index, path, text, offset) -> Symbol | None
"""

from __future__ import annotations

import re
from pathlib import Path

from compiler.editor.context import around
from compiler.editor.index import Index, Symbol, template_symbol
from dsl import ast as A
from dsl.walk import children

_BEFORE_STRING = re.compile(r"\b(template|tagged)\s*$")
_LABEL_CONTEXT = (
    re.compile(r"\b(\w+)\s*!?=\s*$"),  # lifecycle = churned
    re.compile(r"\b(\w+)\s+(?:not\s+)?in\s*\([^()]*$"),  # lifecycle in (silent, churned)
    re.compile(r"\b(\w+)\s+was\s+$"),  # value_quadrant was hf_lv 90d ago
    re.compile(r"\bmoved\s+(\w+)\s+from\s+(?:\w+\s+to\s+)?$"),  # moved value_quadrant from hf_lv to lf_lv
)


def symbol_at(index: Index, path: Path, text: str, offset: int) -> Symbol | None:
    at = around(text, offset)
    if at.in_comment:
        return None
    if at.string is not None:
        value = at.text[at.string[0]:at.string[1]]
        m = _BEFORE_STRING.search(at.text, 0, at.string[0] - 1)
        if m is None:
            return None
        if m.group(1) == "template":
            return index.templates.get(value) or template_symbol(index, value)
        return index.tags.get(value)
    if not at.chain:
        return None
    found = _from_ast(index, index.modules.get(str(path)), at.word[0])
    if found is not None:
        return found
    word = at.chain[at.part]
    if at.part == 1 and len(at.chain) == 2 and at.chain[0] in index.event_fields:
        return index.event_fields[at.chain[0]].get(word)
    if at.part == 0 and len(at.chain) == 2 and at.chain[0] in index.events:
        return index.events[word]
    if at.event is not None and word in index.event_fields.get(at.event, {}):
        return index.event_fields[at.event][word]
    before = at.text[:at.word[0]]
    for pattern in _LABEL_CONTEXT:
        m = pattern.search(before, max(0, len(before) - 200))
        if m and m.group(1) in index.labels and word in index.labels[m.group(1)]:
            return index.labels[m.group(1)][word]
    for table in (index.fields, index.segments, index.classifications, index.events, index.campaigns):
        if word in table:
            return table[word]
    return index.label(word)


def _from_ast(index: Index, module: A.Module | None, offset: int) -> Symbol | None:
    """Names whose meaning the text around them does not give: the declared name of a rule's label, a tiered
    cap's labels, the names after `materialize`."""
    if module is None:
        return None
    path = _path_to(module, offset)
    if len(path) < 2 or not isinstance(path[-1], A.Ident):
        return None
    ident, parent = path[-1], path[-2]
    name = ident.name
    if isinstance(parent, A.ClassRule) and parent.label is ident and len(path) >= 3:
        decl = path[-3]
        return index.label(name, decl.name.name) if isinstance(decl, A.ClassifyDecl) else None
    if isinstance(parent, A.Tier) and len(path) >= 3 and isinstance(path[-3], A.TieredCap):
        return index.label(name, path[-3].by.name)
    if isinstance(parent, (A.LabelWas, A.LabelMoved)) and ident is not parent.classification:
        return index.label(name, parent.classification.name)
    if isinstance(parent, A.MaterializeDecl):
        return index.segments.get(name) or index.classifications.get(name)
    if isinstance(parent, A.FieldDecl) and len(path) >= 3:
        owner = path[-3]
        if isinstance(owner, A.UsersDecl):
            return index.fields.get(name)
        if isinstance(owner, A.EventsDecl):
            return index.event_fields.get(owner.name.name, {}).get(name)
    return None


def _path_to(module: A.Module, offset: int) -> list[A.Node]:
    """The nodes whose span holds `offset` (the start of the word under the cursor), outermost first."""
    path: list[A.Node] = []
    node: A.Node | None = next((d for d in module.decls if d.span.start <= offset < d.span.end), None)
    while node is not None:
        path.append(node)
        node = next((c for c in children(node) if c.span.start <= offset < c.span.end), None)
    return path
