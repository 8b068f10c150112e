"""An event-triggered run -> the IR conditions the warehouse checks for it: `on E first` (this is the user's
only E) and `on E if C` (the event itself satisfies C).

    trigger_conditions(program, campaign, EventRun) -> [IR condition]
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from compiler import ir as I
from compiler import types as T
from compiler.program import Campaign, Program


@dataclass(frozen=True)
class EventRun:
    """The event an event-triggered run is for: its id (the occurrence), the user, when it happened."""

    event_id: str
    user_id: str
    occurred: datetime


def trigger_conditions(program: Program, c: Campaign, event: EventRun) -> list[I.Expr]:
    """`on E first`: the user's only E up to the run is this one; `on E if C`: the event (the user's E
    within a second of the reported time) satisfies C. Both are checked in the warehouse at run time."""
    s = c.schedule
    assert s is not None and s.event is not None  # called only for a campaign triggered by an event
    ev = program.schema.events[s.event]
    time = I.EventField(s.event, "time", ev.time_column, T.TIMESTAMP)
    out: list[I.Expr] = []
    if s.first:
        out.append(I.Cmp("=", I.Agg("count", s.event, None, None, None, T.NUMBER), I.Const(Decimal(1), T.NUMBER),
                         T.NUMBER))
    near = I.And((I.Cmp(">=", time, I.Const(event.occurred - timedelta(seconds=1), T.TIMESTAMP), T.TIMESTAMP),
                  I.Cmp("<=", time, I.Const(event.occurred + timedelta(seconds=1), T.TIMESTAMP), T.TIMESTAMP)))
    where = I.And((s.condition, near)) if s.condition is not None else near
    out.append(I.Agg("any", s.event, None, where, None, T.BOOL))
    return out
