"""Generic, iterative traversal of AST nodes (no recursion: deep input cannot overflow the stack)."""

from __future__ import annotations

from collections.abc import Iterator

from dsl.ast import Node


def children(node: Node) -> Iterator[Node]:
    for key, value in node.__dict__.items():
        if key == "span":
            continue
        if isinstance(value, Node):
            yield value
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, Node):
                    yield item


def walk(node: Node) -> Iterator[Node]:
    """Every node under `node` (itself included), parents before children."""
    stack = [node]
    while stack:
        n = stack.pop()
        yield n
        stack.extend(reversed(list(children(n))))


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
