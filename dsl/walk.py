"""Generic, iterative traversal of AST nodes (no recursion: deep input cannot overflow the stack)."""

from __future__ import annotations

import types
import typing
from collections.abc import Iterator

from dsl.ast import Node


def children(node: Node) -> Iterator[Node]:
    return iter(_children(node))


def _children(node: Node) -> list[Node]:
    """The nodes directly under `node`, in field order (a node's `span` is not a Node)."""
    out: list[Node] = []
    values = node.__dict__
    for name in _node_fields(node.__class__):
        value = values[name]
        if isinstance(value, Node):
            out.append(value)
        elif value.__class__ is list:
            out.extend(item for item in value if isinstance(item, Node))
    return out


def walk(node: Node) -> Iterator[Node]:
    """Every node under `node` (itself included), parents before children."""
    stack = [node]
    pop, extend = stack.pop, stack.extend
    while stack:
        n = pop()
        yield n
        kids = _children(n)
        if kids:
            kids.reverse()
            extend(kids)


def max_depth(node: Node) -> tuple[int, Node]:
    """The depth of the deepest node and that node."""
    best, deepest = 0, node
    stack = [(node, 1)]
    while stack:
        n, d = stack.pop()
        if d > best:
            best, deepest = d, n
        stack.extend((c, d + 1) for c in children(n))
    return best, deepest


_FIELDS: dict[type, tuple[str, ...]] = {}


def _node_fields(cls: type[Node]) -> tuple[str, ...]:
    """The fields of `cls` whose declared type can hold a node, in field order: a walk looks at no other
    (spans, names, numbers, texts are most of a node's fields)."""
    names = _FIELDS.get(cls)
    if names is None:
        names = _FIELDS[cls] = tuple(name for name, f in cls.model_fields.items() if _may_hold_node(f.annotation))
    return names


def _may_hold_node(annotation: object) -> bool:
    if typing.get_origin(annotation) is typing.Literal:
        return False
    if annotation is typing.Any or isinstance(annotation, (str, typing.ForwardRef)):
        return True  # not resolved: look at the values
    if isinstance(annotation, type) and not isinstance(annotation, types.GenericAlias):
        return issubclass(annotation, Node)
    return any(_may_hold_node(arg) for arg in typing.get_args(annotation))
