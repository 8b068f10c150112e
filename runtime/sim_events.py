"""The shop's event history in a period -> the event-triggered runs `camp simulate` replays (one per event, as
`camp serve` starts one per `camp emit`).

    replayed_events(program, campaign, data_url, start, end) -> [EventRun] in time order

The warehouse's events carry no id: each replayed event gets a stable one from (event, user, time), so a
simulation is repeatable. A period the warehouse holds no events for (the future, or past the data's end)
replays none: the event-triggered campaigns send nothing in it, and the report says how many events it found.

`on E first` is replayed only for each user's first E (no earlier E in the warehouse): a later E's run would find
`count(E) > 1` and decide nothing, so skipping it changes no delivery and saves a run per repeat order.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from sqlglot import exp

from compiler.trigger import EventRun
from runtime.warehouse import connect, dialect_of


def replayed_events(program, campaign, data_url: str, start: datetime, end: datetime) -> list[EventRun]:
    """The campaign's trigger events that happened in [start, end), oldest first (ties by user)."""
    s = campaign.schedule
    assert s is not None and s.event is not None  # called only for an event-triggered campaign
    ev = program.schema.events[s.event]
    dialect = dialect_of(data_url)
    user, time = exp.column(ev.user_column, quoted=True), exp.column(ev.time_column, quoted=True)
    query = (exp.select(user, time).from_(exp.to_table(ev.table))
             .where(exp.and_(time >= _instant(start), time < _instant(end)))
             .order_by(time, user))
    if s.first:  # `on E first`: only a user's first E can trigger it (a later one's run finds count(E) > 1)
        rank = exp.Window(this=exp.RowNumber(), partition_by=[user.copy()], order=exp.Order(expressions=[
            exp.Ordered(this=time.copy())]))
        inner = (exp.select(user.copy(), time.copy(), exp.alias_(rank, "camp_nth", quoted=True))
                 .from_(exp.to_table(ev.table)).where(time.copy() < _instant(end)))
        query = (exp.select(user.copy(), time.copy()).from_(inner.subquery("e"))
                 .where(exp.and_(exp.column("camp_nth", quoted=True).eq(1), time.copy() >= _instant(start)))
                 .order_by(time.copy(), user.copy()))
    sql = query.sql(dialect=dialect)
    wh = connect(data_url, read_only=True)
    try:
        rows = wh.execute(sql).fetchall()
    finally:
        wh.close()
    out = []
    for uid, at in rows:
        when = at if at.tzinfo else at.replace(tzinfo=UTC)
        key = f"{s.event}|{uid}|{when.astimezone(UTC).isoformat()}"
        out.append(EventRun("sim-" + hashlib.sha256(key.encode()).hexdigest()[:16], str(uid), when))
    return out


def _instant(t: datetime) -> exp.Expr:
    return exp.cast(exp.Literal.string(t.astimezone(UTC).isoformat()), exp.DataType.build("timestamptz"))
