"""The data dictionary (`camp describe`): one schema field (`users.city`, `orders.amount`, `orders.time`) -> what
the warehouse holds in it, by SQL: rows, null share, distinct values, the most common values with their counts
and share, and for numbers, money, dates and times the smallest and largest value.

A user field is described over the users table (one row per user), an event field over its event table (one
row per event, every event ever recorded). The share of a value is of the rows that hold a value (NULLs left
out, as pandas' `value_counts(normalize=True)`); the null share is of all rows. Values with equal counts are
listed in their order (numbers as numbers, texts by code point), sorted in Python so that no engine's collation
decides it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlglot import exp

from compiler.report import did_you_mean
from compiler.schema import Field, Schema
from compiler.sql import table_ref
from runtime.warehouse import Warehouse


class UnknownField(Exception):
    """FIELD names no field of the schema; the message says which there are, or what was meant."""


@dataclass(frozen=True)
class Target:
    name: str  # users.city
    table: str
    field: Field


@dataclass
class Profile:
    name: str  # users.city
    type: str
    table: str
    rows: int
    nulls: int
    distinct: int
    top: list[tuple[Any, int]] = field(default_factory=list)  # (value, rows), most common first
    min: Any = None
    max: Any = None

    @property
    def null_share(self) -> float:
        return self.nulls / self.rows if self.rows else 0.0

    def share(self, n: int) -> float:
        present = self.rows - self.nulls
        return n / present if present else 0.0


def target_of(schema: Schema, name: str) -> Target:
    """`users.city` or `orders.amount` (an event's `time` too) -> its table and field."""
    owners: dict[str, tuple[str, dict[str, Field]]] = {}
    if schema.users is not None:
        owners["users"] = (schema.users.table, schema.users.fields)
    for ev in schema.events.values():
        time = ev.field("time")
        assert time is not None  # every event has its time
        owners[ev.name] = (ev.table, {**ev.fields, "time": time})
    every = [f"{o}.{f}" for o, (_, fields) in owners.items() for f in fields]
    owner, dot, fname = name.partition(".")
    if not dot or owner not in owners or fname not in owners[owner][1]:
        close = did_you_mean(name, every)
        if not close and owner in owners:
            close = did_you_mean(fname, owners[owner][1], fmt=f"`{owner}.{{}}`")
        listed = ", ".join(every[:20]) + (", …" if len(every) > 20 else "")
        raise UnknownField(f"the schema has no field `{name}`" + (f"; {close}" if close else f"; fields: {listed}"))
    table, fields = owners[owner]
    return Target(name, table, fields[fname])


def describe(wh: Warehouse, target: Target, top: int = 10) -> Profile:
    col = exp.column(target.field.column, table="t", quoted=True)
    source = exp.alias_(table_ref(target.table), "t", quoted=True)
    kind = target.field.type.kind
    ranged = kind in ("number", "percent", "money", "date", "timestamp")
    stats = [exp.Count(this=exp.Star()), exp.Count(this=col.copy()),
             exp.Count(this=exp.Distinct(expressions=[col.copy()]))]
    if ranged:
        stats += [exp.func("MIN", col.copy()), exp.func("MAX", col.copy())]
    row = wh.rows(exp.select(*stats).from_(source.copy()).sql(dialect=wh.dialect))[0]
    profile = Profile(name=target.name, type=str(target.field.type), table=target.table, rows=int(row[0]),
                      nulls=int(row[0]) - int(row[1]), distinct=int(row[2]),
                      min=row[3] if ranged else None, max=row[4] if ranged else None)
    if top <= 0 or not profile.distinct:
        return profile
    n = exp.Count(this=exp.Star())
    counts = exp.select(col.copy(), exp.alias_(n, "n", quoted=True)).from_(source.copy()).where(
        exp.not_(exp.Is(this=col.copy(), expression=exp.Null()))).group_by(col.copy())
    firsts = counts.copy().order_by(exp.Ordered(this=exp.column("n", quoted=True), desc=True)).limit(top)
    least = min(int(c) for _, c in wh.rows(firsts.sql(dialect=wh.dialect)))  # the top's smallest count
    tied = counts.having(exp.GTE(this=n.copy(), expression=exp.Literal.number(least)))
    found = [(v, int(c)) for v, c in wh.rows(tied.sql(dialect=wh.dialect))]
    try:  # ties by value (numbers as numbers, texts by code point), in Python: no engine's collation decides
        profile.top = sorted(found, key=lambda x: (-x[1], x[0]))[:top]
    except TypeError:  # values of mixed types
        profile.top = sorted(found, key=lambda x: (-x[1], str(x[0])))[:top]
    return profile
