"""The tag pool (`camp tags`): every tag, segment and classification label ops can aim an audience at -> how
many users each holds now, counted by SQL on the warehouse.

- tags: every tag of the schema's tags table and every manual tag (the ledger), with the users `tagged "x"`
  selects (either source), those of the schema's table and those tagged by hand; only users of the users table
  count. Tags have no time: they are counted as they are now, whatever the as-of time.
- segments and classification labels: the users each holds for at the as-of time, computed by the audience SQL
  itself (one pass over the users for all of them), so a size is what an audience naming it would select.

- the change since the last materialisation: for a segment or classification that a `materialize` declaration
  keeps, its users at the latest as-of time materialised (the ledger's label history), beside the size now.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlglot import exp

from compiler import ir as I
from compiler.program import Program
from compiler.sql import MANUAL_TAGS, AudienceSQL, table_ref
from runtime.ledger import Ledger
from runtime.ledger_facts import load_manual_tags
from runtime.warehouse import Warehouse


@dataclass(frozen=True)
class TagSize:
    tag: str
    users: int  # `tagged "tag"`: in the schema's tags table or tagged by hand
    schema: int  # in the schema's tags table
    manual: int  # tagged by hand (`camp tag`)


@dataclass(frozen=True)
class LabelSize:
    label: str
    users: int
    last: int | None = None  # users at the last materialisation; None: not materialised


@dataclass(frozen=True)
class Last:
    """The latest materialisation of a segment or classification: when, and its users per label then."""

    as_of: datetime
    counts: dict[str, int]


@dataclass
class Pool:
    as_of: datetime
    users: int  # every user of the users table
    tags: list[TagSize] = field(default_factory=list)
    segments: dict[str, int] = field(default_factory=dict)
    classifications: dict[str, list[LabelSize]] = field(default_factory=dict)  # labels in declared order
    last: dict[str, Last] = field(default_factory=dict)  # name -> its latest materialisation (segments: "yes")


def tag_pool(program: Program, wh: Warehouse, lg: Ledger | None, as_of: datetime) -> Pool:
    load_manual_tags(wh, lg, None)  # every manual tag
    schema_counts = _schema_tag_counts(program, wh)
    manual_counts = _manual_tag_counts(program, wh)
    tags = sorted(set(schema_counts) | set(manual_counts))
    conditions: list[tuple[str, I.Expr]] = []
    conditions += [(f"t{i}", I.HasTag(t)) for i, t in enumerate(tags)]
    segments = sorted(program.segments)
    conditions += [(f"s{i}", I.InSegment(s)) for i, s in enumerate(segments)]
    labels = [(c, label) for c in sorted(program.classifications) for label in program.classifications[c].labels]
    conditions += [(f"l{i}", I.LabelIs(c, (label,))) for i, (c, label) in enumerate(labels)]
    compiler = AudienceSQL(program, as_of, wh.dialect, manual_tags=True)
    query = compiler.sizes(conditions)
    row = dict(zip(["users", *[alias for alias, _ in conditions]], wh.rows(compiler.sql(query, pretty=False))[0],
                   strict=True))

    def n(alias: str) -> int:
        return int(row[alias] or 0)  # SUM over no users is NULL

    pool = Pool(as_of=as_of, users=n("users"))
    pool.tags = [TagSize(t, n(f"t{i}"), schema_counts.get(t, 0), manual_counts.get(t, 0)) for i, t in enumerate(tags)]
    pool.segments = {s: n(f"s{i}") for i, s in enumerate(segments)}
    pool.last = _last(program, lg)
    for i, (c, label) in enumerate(labels):
        last = pool.last[c].counts.get(label, 0) if c in pool.last else None
        pool.classifications.setdefault(c, []).append(LabelSize(label, n(f"l{i}"), last))
    return pool


def _last(program: Program, lg: Ledger | None) -> dict[str, Last]:
    """The latest materialisation of each materialised name, from the ledger's history (none without a ledger)."""
    out: dict[str, Last] = {}
    for name in sorted(program.materialized) if lg is not None else []:
        assert lg is not None
        at = lg.latest_materialization(name)
        if at is not None:
            out[name] = Last(at, lg.label_counts(name, at))
    return out


def _exists_user(program: Program, user: exp.Expr, as_text: bool) -> exp.Exists:
    users = program.schema.users
    assert users is not None  # a checked program with segments or tags has users
    key: exp.Expr = exp.column(users.key, table="u", quoted=True)
    return exp.Exists(this=exp.select(exp.Literal.number(1)).from_(
        exp.alias_(table_ref(users.table), "u", quoted=True)).where(
        exp.EQ(this=exp.cast(key, "text") if as_text else key, expression=user)))


def _schema_tag_counts(program: Program, wh: Warehouse) -> dict[str, int]:
    link = program.schema.tags
    if link is None:
        return {}
    tag, user = exp.column(link.value_column, table="t", quoted=True), exp.column(link.user_column, table="t", quoted=True)
    query = exp.select(tag, exp.Count(this=exp.Distinct(expressions=[user.copy()]))).from_(
        exp.alias_(table_ref(link.table), "t", quoted=True)).where(
        exp.and_(exp.not_(exp.Is(this=tag.copy(), expression=exp.Null())),
                 _exists_user(program, user.copy(), as_text=False))).group_by(tag.copy())
    return {str(t): int(c) for t, c in wh.rows(query.sql(dialect=wh.dialect))}


def _manual_tag_counts(program: Program, wh: Warehouse) -> dict[str, int]:
    """Holders of each manual tag who are users (the MANUAL_TAGS table this session holds)."""
    tag, user = exp.column("tag", table="m", quoted=True), exp.column("user_id", table="m", quoted=True)
    query = exp.select(tag, exp.Count(this=exp.Distinct(expressions=[user.copy()]))).from_(
        exp.alias_(exp.to_identifier(MANUAL_TAGS), "m", quoted=True)).where(
        _exists_user(program, user.copy(), as_text=True)).group_by(tag.copy())
    return {str(t): int(c) for t, c in wh.rows(query.sql(dialect=wh.dialect))}
