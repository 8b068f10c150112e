"""The typed intermediate representation: what SQL generation and planning read.

Every name is resolved (to a schema column, a segment, a classification), every
expression has a type, every literal is a Python value (Decimal, date, datetime,
str, bool): no stage after the checker looks at source text again. Percentages are
fractions (`50%` -> Decimal("0.5")). Durations are `Dur(value, unit)`.

Every expression node (and window) carries the `span` of the text it was checked from, for
diagnostics only: spans take no part in equality, hashing or repr, so two conditions written in
different places are the same condition (SQL generation and lint keys read `repr`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Union

from compiler.types import Type
from dsl.span import Span


@dataclass(frozen=True)
class Dur:
    value: int
    unit: str  # m h d w mo

    def __str__(self) -> str:
        return f"{self.value}{self.unit}"

    def minutes(self) -> int:
        """Length in minutes; a month counts as 30 days (used only for lint arithmetic, never for SQL)."""
        return self.value * {"m": 1, "h": 60, "d": 1440, "w": 10080, "mo": 43200}[self.unit]


@dataclass(frozen=True)
class Win:
    """A half-open time window, relative to the as-of time or a step's send time.

    op within: [asof - start, asof); after: [asof - start, +inf); before: (-inf, asof - start);
    between: [asof - start, asof - end); since: [sent_at(step), asof);
    from: [t0, t0 + start) and before asof, t0 an exposure's (outcome measurement: a user's first send in one
    occurrence; no start: until asof).
    """

    op: str
    start: Dur | None = None
    end: Dur | None = None
    step: str | None = None
    span: Span | None = dataclasses.field(default=None, compare=False, repr=False, hash=False)


@dataclass(frozen=True)
class Const:
    value: Union[str, Decimal, bool, date, datetime, None]
    type: Type
    span: Span | None = dataclasses.field(default=None, compare=False, repr=False, hash=False)


@dataclass(frozen=True)
class UserAttr:
    field: str
    column: str
    type: Type
    span: Span | None = dataclasses.field(default=None, compare=False, repr=False, hash=False)


@dataclass(frozen=True)
class EventField:
    event: str
    field: str  # "time" is the event's time column
    column: str
    type: Type
    span: Span | None = dataclasses.field(default=None, compare=False, repr=False, hash=False)


@dataclass(frozen=True)
class Agg:
    func: str  # count count_distinct sum avg min max first last any none
    event: str
    field: EventField | None
    where: Expr | None
    window: Win | None
    type: Type
    span: Span | None = dataclasses.field(default=None, compare=False, repr=False, hash=False)


@dataclass(frozen=True)
class Cmp:
    op: str
    left: Expr
    right: Expr
    type: Type | None = field(default=None)  # type of the compared values
    span: Span | None = dataclasses.field(default=None, compare=False, repr=False, hash=False)


@dataclass(frozen=True)
class InSet:
    subject: Expr
    values: tuple[Const, ...]
    negated: bool = False
    span: Span | None = dataclasses.field(default=None, compare=False, repr=False, hash=False)


@dataclass(frozen=True)
class Between:
    subject: Expr
    low: Expr
    high: Expr
    span: Span | None = dataclasses.field(default=None, compare=False, repr=False, hash=False)


@dataclass(frozen=True)
class IsNull:
    subject: Expr
    negated: bool = False
    span: Span | None = dataclasses.field(default=None, compare=False, repr=False, hash=False)


@dataclass(frozen=True)
class TextMatch:
    op: str  # contains starts_with
    subject: Expr
    pattern: str
    span: Span | None = dataclasses.field(default=None, compare=False, repr=False, hash=False)


@dataclass(frozen=True)
class IsToday:
    subject: Expr
    anniversary: bool
    span: Span | None = dataclasses.field(default=None, compare=False, repr=False, hash=False)


@dataclass(frozen=True)
class InWindow:
    subject: Expr
    window: Win
    span: Span | None = dataclasses.field(default=None, compare=False, repr=False, hash=False)


@dataclass(frozen=True)
class Arith:
    op: str
    left: Expr
    right: Expr
    type: Type
    span: Span | None = dataclasses.field(default=None, compare=False, repr=False, hash=False)


@dataclass(frozen=True)
class Neg:
    operand: Expr
    type: Type
    span: Span | None = dataclasses.field(default=None, compare=False, repr=False, hash=False)


@dataclass(frozen=True)
class And:
    items: tuple[Expr, ...]
    span: Span | None = dataclasses.field(default=None, compare=False, repr=False, hash=False)


@dataclass(frozen=True)
class Or:
    items: tuple[Expr, ...]
    span: Span | None = dataclasses.field(default=None, compare=False, repr=False, hash=False)


@dataclass(frozen=True)
class Not:
    operand: Expr
    span: Span | None = dataclasses.field(default=None, compare=False, repr=False, hash=False)


@dataclass(frozen=True)
class HasTag:
    tag: str
    held: Dur | None = None  # `tagged "x" for 30d`: tagged by hand at least that long before the as-of time
    span: Span | None = dataclasses.field(default=None, compare=False, repr=False, hash=False)


@dataclass(frozen=True)
class InSegment:
    name: str
    span: Span | None = dataclasses.field(default=None, compare=False, repr=False, hash=False)


@dataclass(frozen=True)
class Redeemed:
    """`redeemed(CODE)`: the user redeemed a coupon of that code issued by this campaign (in a follow-up: in
    this journey) by the as-of time. The runtime lists those (user, code) pairs in a TEMP table
    (compiler.sql.REDEEMED) from the ledger."""

    code: str
    span: Span | None = dataclasses.field(default=None, compare=False, repr=False, hash=False)


@dataclass(frozen=True)
class LabelIs:
    """`lifecycle = silent`, `lifecycle in (silent, churned)`: the user's first-matching label is one of these."""

    classification: str
    labels: tuple[str, ...]
    span: Span | None = dataclasses.field(default=None, compare=False, repr=False, hash=False)


@dataclass(frozen=True)
class Label:
    """The label value itself, for `lifecycle = other_classification` style comparisons (rare)."""

    classification: str
    type: Type
    span: Span | None = dataclasses.field(default=None, compare=False, repr=False, hash=False)


@dataclass(frozen=True)
class LabelWas:
    """`C was X 90d ago`: the user's materialised label of classification C at the as-of time minus `ago` (the
    history interval [valid_from, valid_to) holding that instant) is X. No history at that time: false."""

    classification: str
    label: str
    ago: Dur
    span: Span | None = dataclasses.field(default=None, compare=False, repr=False, hash=False)


@dataclass(frozen=True)
class LabelMoved:
    """`moved C from X to Y within 30d`: some history interval of label X of C overlaps [as-of - within, as-of),
    and the user's label of C at the as-of time (computed live, as `C = Y`) is Y."""

    classification: str
    source: str
    target: str
    within: Dur
    span: Span | None = dataclasses.field(default=None, compare=False, repr=False, hash=False)


@dataclass(frozen=True)
class PopStat:
    """A statistic of `value` over a population of users at the as-of time (docs/language.md, "Ranks and
    percentiles"): every user of the users table for whom `among` holds (all without it) and `value` is not
    missing. func percent_rank: the user's (rank - 1) / (n - 1), 0 when n = 1 (type percent); ntile: the
    user's bucket 1..param (number); percentile: the value at fraction `param` of the population, interpolated
    as SQL's percentile_cont (the value's type), the same for every user. Never the audience's own rows: a
    journey's cohort, an outcome's exposures and the audience's filters do not change the population."""

    func: str  # percent_rank ntile percentile
    value: Expr
    among: Expr | None
    param: Decimal | None  # ntile: the number of buckets; percentile: a fraction in (0, 1]
    type: Type
    span: Span | None = dataclasses.field(default=None, compare=False, repr=False, hash=False)


Expr = Union[Const, UserAttr, EventField, Agg, Cmp, InSet, Between, IsNull, TextMatch, IsToday, InWindow,
             Arith, Neg, And, Or, Not, HasTag, InSegment, Redeemed, LabelIs, Label,
             LabelWas, LabelMoved,
             PopStat]


def children(n) -> list:
    """The IR nodes directly under n, in the order written."""
    out: list = []
    if dataclasses.is_dataclass(n) and not isinstance(n, type):
        for f in dataclasses.fields(n):
            v = getattr(n, f.name)
            if isinstance(v, tuple):
                out.extend(x for x in v if dataclasses.is_dataclass(x))
            elif dataclasses.is_dataclass(v) and not isinstance(v, type):
                out.append(v)
    return out


def walk(e) -> Iterator:
    """Every IR node under e (itself included), iteratively."""
    stack = [e]
    while stack:
        n = stack.pop()
        if n is None:
            continue
        yield n
        stack.extend(children(n))


def with_window(e: Any, window: Win) -> Any:
    """e with `window` given to every aggregate that has no window of its own (the others keep theirs): a goal
    counted since a journey's entry step, or over an outcome's attribution window from each user's t0."""
    if isinstance(e, Agg):
        return dataclasses.replace(e, window=window) if e.window is None else e
    if isinstance(e, PopStat):  # the population is every user at the as-of time, not this user's window
        return e
    if not dataclasses.is_dataclass(e) or isinstance(e, (type, Win, Const, Type)):
        return e
    changes = {}
    for f in dataclasses.fields(e):
        v = getattr(e, f.name)
        if isinstance(v, tuple):
            changes[f.name] = tuple(with_window(x, window) for x in v)
        elif dataclasses.is_dataclass(v):
            changes[f.name] = with_window(v, window)
    return dataclasses.replace(e, **changes)


def type_of(e: Expr) -> Type:
    from compiler import types as T

    if isinstance(e, (Const, UserAttr, EventField, Agg, Arith, Neg, Label, PopStat)):
        return e.type
    return T.BOOL
