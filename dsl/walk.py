"""Generic, iterative traversal of AST nodes (no recursion: deep input cannot overflow the stack)."""

from __future__ import annotations

from collections.abc import Iterator

from dsl.ast import Node


def children(node: Node) -> Iterator[Node]:
    return iter(_children(node))


def _children(node: Node) -> list[Node]:
    """The nodes directly under `node`, in field order (a node's `span` is not a Node)."""
    out: list[Node] = []
    for value in node.__dict__.values():
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
