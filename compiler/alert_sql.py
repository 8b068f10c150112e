"""An alert -> its queries: how many users meet its condition (minus its excludes) as of a time, how many users
there are in all (the share's denominator), and a sample of those users (the first by user id).

    alert_sql(program, alert, as_of, sample, dialect) -> AlertSQL(count, population, sample)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlglot import exp

from compiler import ir as I
from compiler.program import Alert, Program
from compiler.sql import AudienceSQL, CompileError


@dataclass(frozen=True)
class AlertSQL:
    count: str  # one row, one column: the users the alert counts
    population: str  # one row, one column: every user of the users table
    sample: str  # user_id of up to `sample` of them, by user id


def alert_sql(program: Program, alert: Alert, as_of: datetime, dialect: str = "duckdb") -> AlertSQL:
    users = program.schema.users
    if alert.audience is None or users is None:
        raise CompileError(f"alert {alert.name} has no condition over users")
    cond: I.Expr = alert.audience
    if alert.excludes:
        cond = I.And(tuple([cond, *[I.Not(e) for e in alert.excludes]]))
    compiler = AudienceSQL(program, as_of, dialect)
    matched = compiler.condition(cond).subquery("m")
    count = exp.select(exp.Count(this=exp.Star())).from_(matched)
    sample = exp.select(exp.column("user_id", table="m", quoted=True)).from_(matched.copy()).order_by(
        exp.column("user_id", table="m", quoted=True)).limit(alert.sample)
    population = exp.select(exp.Count(this=exp.Star())).from_(exp.to_table(users.table))
    return AlertSQL(count=count.sql(dialect=dialect), population=population.sql(dialect=dialect),
                    sample=sample.sql(dialect=dialect))
