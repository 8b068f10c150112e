"""Literals that never occur in the data: `city = "Shanghai"` where the column holds 上海.

`camp audience` asks the warehouse, for each text a campaign's audience compares a user field with
(`=`, `in (...)`, through segments too), each tag it tests (`tagged "..."`) and each classification
label it names, whether any user has it. When none does, the campaign is probably aimed at nobody by
a spelling (or a language) the data does not use, so it says which values are common instead:

    campaign c: no user has city = "Shanghai"; most common: 上海 (120), 北京 (98), …

The queries are sqlglot trees: identifiers come from the schema, values are literals, never pasted text.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime

from sqlglot import exp

from compiler import ir as I
from compiler.program import Campaign, Program

TOP = 5


@dataclass(frozen=True)
class Probe:
    """One kind of value the audience tests: a user field's column, the tags, or a classification."""

    kind: str  # field tag label
    name: str  # the field, "tags", or the classification
    column: str = ""


def probes(program: Program, campaign: Campaign) -> dict[Probe, list[str]]:
    """What the campaign's WHO and `exclude`s test, with the literal values, in the order written."""
    out: dict[Probe, list[str]] = {}

    def add(probe: Probe, value: str) -> None:
        values = out.setdefault(probe, [])
        if value not in values and "\x00" not in value:
            values.append(value)

    for node in _nodes(program, [campaign.audience, *campaign.excludes]):
        if isinstance(node, I.Cmp) and node.op == "=":
            for subject, value in ((node.left, node.right), (node.right, node.left)):
                if isinstance(subject, I.UserAttr) and _text_field(subject) and isinstance(value, I.Const) \
                        and isinstance(value.value, str):
                    add(Probe("field", subject.field, subject.column), value.value)
        elif isinstance(node, I.InSet) and not node.negated and isinstance(node.subject, I.UserAttr) \
                and _text_field(node.subject):
            for v in node.values:
                if isinstance(v.value, str):
                    add(Probe("field", node.subject.field, node.subject.column), v.value)
        elif isinstance(node, I.HasTag):
            add(Probe("tag", "tags"), node.tag)
        elif isinstance(node, I.LabelIs):
            for label in node.labels:
                add(Probe("label", node.classification), label)
    return out


def _text_field(e: I.Expr) -> bool:
    return isinstance(e, I.UserAttr) and e.type.kind in ("text", "enum")


def _nodes(program: Program, roots: list[I.Expr | None]) -> Iterator:
    """Every IR node under the roots in the order written, each segment expanded where it is first used."""
    seen: set[str] = set()
    stack: list = [r for r in reversed(roots) if r is not None]
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, I.InSegment) and node.name not in seen and node.name in program.segments:
            seen.add(node.name)
            stack.append(program.segments[node.name].expr)
            continue
        stack.extend(reversed(I.children(node)))


def absent_literals(program: Program, campaign: Campaign, rows: Callable[[str], list[tuple]], dialect: str,
                    as_of: datetime, manual: dict[str, int] | None = None) -> list[str]:
    """A warning for each tested value that no user has. `rows` runs one SQL query on the warehouse; `manual`:
    the holders of each manual tag (`camp tag`, the ledger), which count as having it too."""
    warnings: list[str] = []
    manual = manual or {}
    for probe, values in probes(program, campaign).items():
        counts = _counts(program, probe, values, rows, dialect, as_of)
        if probe.kind == "tag":
            counts = {v: counts.get(v, 0) + manual.get(v, 0) for v in values}
        missing = [v for v in values if not counts.get(v)]
        if not missing:
            continue
        common = _common(program, probe, rows, dialect, as_of)
        if probe.kind == "tag":  # the schema's tags, then the manual ones, each with its own holders
            common = sorted(common + [(f"{t} (manual)", n) for t, n in manual.items() if n],
                            key=lambda x: (-x[1], x[0]))
        shown = ", ".join(f"{v} ({n:,})" for v, n in common[:TOP]) + (", …" if len(common) > TOP else "")
        for v in missing:
            what = {"field": f"no user has {probe.name} = {_quoted(v)}",
                    "tag": f"no user is tagged {_quoted(v)}",
                    "label": f"no user is {probe.name} = {v} as of {as_of.isoformat()}"}[probe.kind]
            common_what = {"field": "most common", "tag": "most common tags", "label": "labels"}[probe.kind]
            tail = f"{common_what}: {shown}" if common else f"no user has any {probe.name} yet"
            warnings.append(f"campaign {campaign.name}: {what}; {tail}")
    return warnings


def _quoted(v: str) -> str:
    return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _counts(program: Program, probe: Probe, values: list[str], rows, dialect: str, as_of: datetime) -> dict[str, int]:
    if probe.kind == "tag" and program.schema.tags is None:  # manual tags only
        return {}
    if probe.kind == "label":
        return {v: n for v, n in _label_counts(program, probe.name, values, rows, dialect, as_of)}
    query = _value_counts(program, probe, dialect).where(
        exp.In(this=_value_column(program, probe), expressions=[exp.Literal.string(v) for v in values]), copy=False)
    return {str(v): int(n) for v, n in rows(query.sql(dialect=dialect))}


def _common(program: Program, probe: Probe, rows, dialect: str, as_of: datetime) -> list[tuple[str, int]]:
    if probe.kind == "tag" and program.schema.tags is None:
        return []
    if probe.kind == "label":
        labels = program.classifications[probe.name].labels
        found = [(v, n) for v, n in _label_counts(program, probe.name, labels, rows, dialect, as_of) if n]
        return sorted(found, key=lambda x: (-x[1], labels.index(x[0])))
    n = exp.column("n", quoted=True)
    query = _value_counts(program, probe, dialect).order_by(exp.Ordered(this=n, desc=True), copy=False) \
        .order_by(_value_column(program, probe), append=True, copy=False).limit(TOP + 1, copy=False)
    return [(str(v), int(c)) for v, c in rows(query.sql(dialect=dialect))]


def _value_column(program: Program, probe: Probe) -> exp.Column:
    if probe.kind == "tag":
        assert program.schema.tags is not None
        return exp.column(program.schema.tags.value_column, quoted=True)
    return exp.column(probe.column, quoted=True)


def _value_counts(program: Program, probe: Probe, dialect: str) -> exp.Select:
    """value, number of users with it (non-NULL values only), grouped by value."""
    col = _value_column(program, probe)
    if probe.kind == "tag":
        assert program.schema.tags is not None
        table, users = program.schema.tags.table, exp.column(program.schema.tags.user_column, quoted=True)
        n: exp.Expr = exp.Count(this=exp.Distinct(expressions=[users]))
    else:
        assert program.schema.users is not None
        table, n = program.schema.users.table, exp.Count(this=exp.Star())
    return exp.select(col.copy(), exp.alias_(n, "n", quoted=True)).from_(_table(table)) \
        .where(exp.Not(this=exp.Is(this=col.copy(), expression=exp.Null()))).group_by(col.copy())


def _table(qualified: str) -> exp.Table:
    parts = qualified.split(".")
    if len(parts) == 2:
        return exp.Table(this=exp.to_identifier(parts[1], quoted=True), db=exp.to_identifier(parts[0], quoted=True))
    return exp.Table(this=exp.to_identifier(parts[0], quoted=True))


def _label_counts(program: Program, classification: str, labels: list[str], rows, dialect: str,
                  as_of: datetime) -> list[tuple[str, int]]:
    """Users per label, as of the run: labels are computed by the audience SQL, one count per label."""
    from compiler.sql import AudienceSQL

    out = []
    for label in labels:
        sql = AudienceSQL(program, as_of, dialect)
        users = sql.condition(I.LabelIs(classification, (label,))).subquery("u")
        query = exp.select(exp.Count(this=exp.Star())).from_(users)
        out.append((label, int(rows(query.sql(dialect=dialect))[0][0])))
    return out
