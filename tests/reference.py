"""A reference evaluator for audiences: plain Python over in-memory rows, written to be
obviously right rather than fast. The differential tests compare the SQL of every engine
with it. It shares no code with compiler/sql.py on purpose.

Rows are dicts keyed by *column* names; timestamps are aware datetimes.
"""

from __future__ import annotations

import calendar
import hashlib
import math
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from compiler import ir as I
from compiler.program import Program

LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)  # when a manual tag given without a time began (tests' shorthand)


def manual_since(m: tuple) -> datetime:
    """When the holding of a manual tag (user, tag[, since]) began."""
    return m[2] if len(m) > 2 and m[2] is not None else LONG_AGO


@dataclass
class Data:
    users: list[dict]
    events: dict[str, list[dict]] = field(default_factory=dict)
    tags: list[tuple] = field(default_factory=list)  # (user_id, tag)
    since: dict[str, dict] = field(default_factory=dict)  # step -> user id -> when that step was sent to them
    redeemed: list[tuple] = field(default_factory=list)  # (user_id, code): coupons of the campaign the user redeemed
    # by the as-of time (in a follow-up: issued in this journey), as the runtime lists them from the ledger
    t0: dict = field(default_factory=dict)  # user id -> the exposure's t0 (outcomes: `from` windows)
    manual: list[tuple] = field(default_factory=list)  # (user id as text, tag[, since]): the ledger's manual tags
    # (`camp tag`) and when each holding began (manual_since),
    # as the runtime lists them for a query that reads them; empty for one that does not
    # the label history of materialised classifications, as the ledger keeps it: (name, user_id, label, valid_from,
    # valid_to), valid_to None while current; each interval is [valid_from, valid_to)
    history: list[tuple] = field(default_factory=list)


class Reference:
    def __init__(self, program: Program, data: Data, as_of: datetime):
        self.p = program
        self.data = data
        self.as_of = as_of.astimezone(UTC)
        self.ws_tz = ZoneInfo(program.timezone)
        users = program.schema.users
        self.key = users.key
        self.tz_column = users.tz_field.column if users.tz_field else None

    # ------------------------------------------------------------ the audience
    def users_where(self, e: I.Expr, cohort: set | None = None) -> set:
        """Users for whom e holds; with a cohort (a journey's follow-up), only its members."""
        return {u[self.key] for u in self.data.users if (cohort is None or u[self.key] in cohort)
                and self.holds(e, u)}

    def campaign(self, c) -> dict[str, set]:
        matched = self.users_where(c.audience)
        excluded = {u for u in matched if any(self.holds(x, self._user(u)) for x in c.excludes)}
        held = {u for u in matched if self.bucket(c.name, u) < int(c.holdout * 10000)}
        return {"matched": matched, "excluded": excluded, "held_out": held,
                "final": matched - excluded - held}

    @staticmethod
    def bucket(campaign: str, user_id) -> int:
        return int(hashlib.md5(f"{campaign}:{user_id}".encode()).hexdigest()[:8], 16) % 10000

    def _user(self, uid) -> dict:
        return next(u for u in self.data.users if u[self.key] == uid)

    # ------------------------------------------------------------ time
    def ago(self, d: I.Dur) -> datetime:
        """Minutes and hours back on the UTC line; days, weeks and months back on the workspace's calendar:
        the same wall-clock time that many local days (or months, clamped to the month's end) earlier."""
        if d.unit in ("m", "h"):
            return self.as_of - timedelta(minutes=d.value * (60 if d.unit == "h" else 1))
        local = self.as_of.astimezone(self.ws_tz)
        if d.unit == "mo":
            months = local.year * 12 + (local.month - 1) - d.value
            year, month = divmod(months, 12)
            day = min(local.day, calendar.monthrange(year, month + 1)[1])
            wall_day = date(year, month + 1, day)
        else:
            wall_day = local.date() - timedelta(days=d.value * (7 if d.unit == "w" else 1))
        wall = datetime.combine(wall_day, local.time().replace(tzinfo=None))
        return wall.replace(tzinfo=self.ws_tz).astimezone(UTC)

    def later(self, t0: datetime, d: I.Dur) -> datetime:
        """Minutes and hours on the UTC line; days, weeks and months forward on the workspace's calendar (the
        same wall-clock time, a month's end clamped); a wall time the clocks skip or repeat takes the offset
        before the change (its first occurrence)."""
        if d.unit in ("m", "h"):
            return t0 + timedelta(minutes=d.value * (60 if d.unit == "h" else 1))
        local = t0.astimezone(self.ws_tz)
        if d.unit == "mo":
            months = local.year * 12 + (local.month - 1) + d.value
            year, month = divmod(months, 12)
            wall_day = date(year, month + 1, min(local.day, calendar.monthrange(year, month + 1)[1]))
        else:
            wall_day = local.date() + timedelta(days=d.value * (7 if d.unit == "w" else 1))
        wall = datetime.combine(wall_day, local.time().replace(tzinfo=None))
        return wall.replace(tzinfo=self.ws_tz, fold=0).astimezone(UTC)

    def instant(self, v):
        """Dates are the moment their day starts in the workspace time zone."""
        if isinstance(v, datetime):
            return v
        return datetime(v.year, v.month, v.day, tzinfo=self.ws_tz)

    def in_window(self, v, w: I.Win, user: dict) -> bool:
        t = self.instant(v)
        if w.op == "since":
            sent = self.data.since.get(w.step, {}).get(user[self.key])
            return sent is not None and sent <= t < self.as_of
        if w.op == "from":
            t0 = self.data.t0.get(user[self.key])
            return t0 is not None and t0 <= t < self.as_of and (w.start is None or t < self.later(t0, w.start))
        if w.op == "within":
            return self.ago(w.start) <= t < self.as_of
        if w.op == "after":
            return self.ago(w.start) <= t
        if w.op == "before":
            return t < self.ago(w.start)
        if w.op == "between":
            return self.ago(w.start) <= t < self.ago(w.end)
        raise ValueError(w.op)

    def zone(self, user: dict) -> ZoneInfo:
        name = user.get(self.tz_column) if self.tz_column else None
        return ZoneInfo(name) if name else self.ws_tz

    # ------------------------------------------------------------ conditions
    def holds(self, e: I.Expr, user: dict, event: dict | None = None) -> bool:
        if isinstance(e, I.And):
            return all(self.holds(x, user, event) for x in e.items)
        if isinstance(e, I.Or):
            return any(self.holds(x, user, event) for x in e.items)
        if isinstance(e, I.Not):
            return not self.holds(e.operand, user, event)
        if isinstance(e, I.Cmp):
            a, b = self.value(e.left, user, event), self.value(e.right, user, event)
            if a is None or b is None:
                return False
            return {"=": a == b, "!=": a != b, "<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[e.op]
        if isinstance(e, I.InSet):
            v = self.value(e.subject, user, event)
            if v is None:
                return False
            inside = v in [c.value for c in e.values]
            return not inside if e.negated else inside
        if isinstance(e, I.Between):
            v, lo, hi = (self.value(x, user, event) for x in (e.subject, e.low, e.high))
            return None not in (v, lo, hi) and lo <= v <= hi
        if isinstance(e, I.IsNull):
            missing = self.value(e.subject, user, event) is None
            return not missing if e.negated else missing
        if isinstance(e, I.TextMatch):
            v = self.value(e.subject, user, event)
            if v is None:
                return False
            return e.pattern in v if e.op == "contains" else v.startswith(e.pattern)
        if isinstance(e, I.IsToday):
            return self.is_today(e, user, event)
        if isinstance(e, I.InWindow):
            v = self.value(e.subject, user, event)
            return v is not None and self.in_window(v, e.window, user)
        if isinstance(e, I.HasTag) and e.held is not None:  # tagged by hand since at least `held` before as-of
            bound, uid = self.ago(e.held), str(user[self.key])
            return any(m[0] == uid and m[1] == e.tag and manual_since(m) <= bound for m in self.data.manual)
        if isinstance(e, I.HasTag):  # in the schema's tags table (only when declared) or tagged by hand
            listed = self.p.schema.tags is not None and (user[self.key], e.tag) in self.__dict__.setdefault(
                "_tags", set(self.data.tags))
            return listed or (str(user[self.key]), e.tag) in self.__dict__.setdefault(
                "_manual", {(m[0], m[1]) for m in self.data.manual})
        if isinstance(e, I.Redeemed):
            return (user[self.key], e.code) in set(self.data.redeemed)
        if isinstance(e, I.InSegment):
            return self.holds(self.p.segments[e.name].expr, user)
        if isinstance(e, I.LabelIs):
            return self.label(e.classification, user) in e.labels
        if isinstance(e, I.LabelWas):
            return self.was(e.classification, e.label, user, self.ago(e.ago), self.ago(e.ago), inclusive=True)
        if isinstance(e, I.LabelMoved):
            return self.was(e.classification, e.source, user, self.ago(e.within), self.as_of, inclusive=False) \
                and self.label(e.classification, user) == e.target
        if isinstance(e, I.Agg) and e.func in ("any", "none"):
            n = len(self.matching_events(e, user))
            return n > 0 if e.func == "any" else n == 0
        if isinstance(e, I.Const):
            return bool(e.value)
        if isinstance(e, (I.UserAttr, I.EventField)):
            return self.value(e, user, event) is True
        raise TypeError(type(e))

    def is_today(self, e: I.IsToday, user: dict, event) -> bool:
        v = self.value(e.subject, user, event)
        if v is None:
            return False
        zone = self.zone(user)
        today = self.as_of.astimezone(zone).date()
        if isinstance(v, datetime):
            local = v.astimezone(zone).date()
            if not e.anniversary:
                return local == today
            v = local
        same = (v.month, v.day) == (today.month, today.day)
        feb29 = (v.month, v.day) == (2, 29) and (today.month, today.day) == (2, 28) and \
            (today + timedelta(days=1)).month == 3
        ok = same or feb29
        if e.anniversary:
            ok = ok and v.year < today.year
        return ok

    def was(self, name: str, label: str, user: dict, lo: datetime, hi: datetime, inclusive: bool) -> bool:
        """The definition of history: some interval of the user's `label` of classification `name` holds an
        instant t with lo <= t <= hi (`was`: lo = hi, the one instant) or lo <= t < hi (`moved`: the window).
        An interval [valid_from, valid_to) holds t when valid_from <= t and (valid_to is None or t < valid_to).
        No interval at all (no history then): false."""
        uid = str(user[self.key])
        for n, u, lab, start, end in self.data.history:
            if n != name or str(u) != uid or lab != label:
                continue
            first = max(start, lo)  # the earliest instant of the interval inside [lo, hi]
            inside = first <= hi if inclusive else first < hi
            if inside and (end is None or first < end):
                return True
        return False

    def label(self, name: str, user: dict):
        for label, cond in self.p.classifications[name].rules:
            if cond is None or self.holds(cond, user):
                return label
        return None

    # ------------------------------------------------------------ values
    def _rows_of(self, event: str, uid) -> list[dict]:
        """The user's events (indexed once, so big data sets stay usable)."""
        index = self.__dict__.setdefault("_index", {})
        if event not in index:
            col = self.p.schema.events[event].user_column
            by_user: dict = {}
            for row in self.data.events.get(event, []):
                by_user.setdefault(row[col], []).append(row)
            index[event] = by_user
        return index[event].get(uid, [])

    def matching_events(self, a: I.Agg, user: dict) -> list[dict]:
        ev = self.p.schema.events[a.event]
        out = []
        for row in self._rows_of(a.event, user[self.key]):
            t = row[ev.time_column]
            if t is None or not t < self.as_of:
                continue
            if a.window is not None and not self.in_window(t, a.window, user):
                continue
            if a.where is not None and not self.holds(a.where, user, row):
                continue
            out.append(row)
        return out

    def value(self, e: I.Expr, user: dict, event: dict | None = None):
        if isinstance(e, I.Const):
            return e.value
        if isinstance(e, I.UserAttr):
            return user.get(e.column)
        if isinstance(e, I.EventField):
            return event.get(e.column)
        if isinstance(e, I.Agg):
            rows = self.matching_events(e, user)
            ev = self.p.schema.events[e.event]
            if e.func == "count":
                return Decimal(len(rows))
            col = e.field.column if e.field else None
            values = [r[col] for r in rows if r[col] is not None] if col else []
            if e.func == "count_distinct":
                return Decimal(len(set(values)))
            if e.func == "sum":
                return sum(values, Decimal(0))
            if not values:
                return None
            if e.func == "avg":
                return sum(values, Decimal(0)) / len(values)
            if e.func == "min":
                return min(values)
            if e.func == "max":
                return max(values)
            if e.field.field == "time":
                return min(values) if e.func == "first" else max(values)
            ordered = sorted(rows, key=lambda r: (r[ev.time_column], r[col] is None, r[col] or ""))
            if e.func == "last":
                ordered = sorted(rows, key=lambda r: (-r[ev.time_column].timestamp(), r[col] is None, r[col] or ""))
            return ordered[0][col]
        if isinstance(e, I.Arith):
            a, b = self.value(e.left, user, event), self.value(e.right, user, event)
            if a is None or b is None:
                return None
            if e.op == "/":
                return None if b == 0 else Decimal(a) / Decimal(b)
            return {"+": a + b, "-": a - b, "*": a * b}[e.op]
        if isinstance(e, I.Neg):
            v = self.value(e.operand, user, event)
            return None if v is None else -v
        if isinstance(e, I.Label):
            return self.label(e.classification, user)
        if isinstance(e, I.PopStat):
            return self.population_stat(e, user)
        return self.holds(e, user, event)

    # ------------------------------------------------------------ ranks and percentiles
    def population(self, s: I.PopStat) -> list[tuple]:
        """(value, user key) of every user of the data whose value is present and for whom `among` holds,
        least value first, ties by the key read as text (as every engine orders them in ntile)."""
        cache = self.__dict__.setdefault("_populations", {})
        key = repr((s.value, s.among))
        if key not in cache:
            members = []
            for user in self.data.users:
                if s.among is not None and not self.holds(s.among, user):
                    continue
                v = self.value(s.value, user)
                if v is not None:
                    members.append((v, user[self.key]))
            cache[key] = sorted(members, key=lambda m: (m[0], str(m[1])))
        return cache[key]

    def population_stat(self, s: I.PopStat, user: dict):
        """percent_rank: (rank - 1) / (n - 1) with rank 1 + the number of members with a smaller value (ties
        share it), 0 when n = 1; ntile: SQL's NTILE, the first n mod N buckets one member larger; percentile:
        percentile_cont, v[floor h] + (h - floor h) (v[ceil h] - v[floor h]) with h = (n - 1) p. A user outside
        the population has no rank and no bucket."""
        members = self.population(s)
        n = len(members)
        if s.func == "percentile":
            if not members:
                return None
            h = (n - 1) * s.param
            low, high = math.floor(h), math.ceil(h)
            v_low, v_high = members[low][0], members[high][0]
            return v_low + (h - low) * (v_high - v_low)
        uid = user[self.key]
        position = next((i for i, (_, k) in enumerate(members) if k == uid), None)
        if position is None:
            return None
        mine = members[position][0]
        if s.func == "percent_rank":
            rank = 1 + sum(1 for v, _ in members if v < mine)
            return Decimal(0) if n == 1 else Decimal(rank - 1) / Decimal(n - 1)
        buckets = int(s.param)
        small, extra = divmod(n, buckets)  # `extra` buckets of small + 1 members, then buckets of `small`
        if position < extra * (small + 1):
            return Decimal(position // (small + 1) + 1)
        return Decimal(extra + (position - extra * (small + 1)) // small + 1)
