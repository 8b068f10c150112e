"""Can two conditions hold for the same user? A small, conservative satisfiability check.

Conditions become disjunctions of conjunctions of atoms `(subject, op, value)`;
two conditions are disjoint only when every pair of conjunctions contradicts on
some shared subject (e.g. `lifecycle = silent` vs `lifecycle = new`, or
`count(x) >= 5` vs `count(x) < 3`). Anything not understood is assumed to overlap:
the lints built on this warn only about overlaps, so "may overlap" is the safe answer.
NULL is a value a subject may take: a negated comparison holds for it.
Event counts know what follows from time: an event in a window is an event in every window around it
(`any(orders within 7d)` implies `any(orders within 30d)`), and `first(orders.time) within 30d` means an
order within 30d, so it cannot hold beside `none(orders within 30d)`.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal

from compiler import ir as I

MAX_TERMS = 64
_FLIP = {"=": "!=", "!=": "=", "<": ">=", ">=": "<", ">": "<=", "<=": ">", "in": "not in", "not in": "in",
         "null": "not null", "not null": "null", "true": "false", "false": "true"}
_MIRROR = {"<": ">", ">": "<", "<=": ">=", ">=": "<=", "=": "=", "!=": "!="}


class _TooComplex(Exception):
    pass


def may_overlap(a: I.Expr, b: I.Expr, segments: dict, labels: dict[str, list[str]]) -> bool:
    try:
        da, db = _dnf(a, False, segments), _dnf(b, False, segments)
    except _TooComplex:
        return True
    return any(_satisfiable(ca + cb, labels) for ca in da for cb in db)


def _atom(key, op, value=None):
    return [[(key, op, value)]]


def _dnf(e: I.Expr, neg: bool, segments: dict) -> list[list[tuple]]:
    if isinstance(e, I.Not):
        return _dnf(e.operand, not neg, segments)
    if isinstance(e, (I.And, I.Or)):
        parts = [_dnf(x, neg, segments) for x in e.items]
        conj = isinstance(e, I.And) != neg
        if not conj:
            return [c for p in parts for c in p]
        out = [[]]
        for p in parts:
            out = [a + b for a in out for b in p]
            if len(out) > MAX_TERMS:
                raise _TooComplex
        return out
    if isinstance(e, I.InSegment):
        seg = segments.get(e.name)
        if seg is None:
            raise _TooComplex
        return _dnf(seg.expr, neg, segments)
    atom = _to_atom(e)
    if atom is None:
        atom = (repr(e), "true", None)
    key, op, value = atom
    if neg:
        op = _FLIP[op]
        return _atom(key, op, value)
    return [[(key, op, value), *_implied(e)]]


def _key(e: I.Expr):
    """The subject of an atom. Event counts get a structured key, so that windows can be compared."""
    if isinstance(e, I.Agg) and e.func == "count" and e.field is None:
        return ("count", e.event, repr(e.where), e.window)
    return repr(e)


def _implied(e: I.Expr) -> list[tuple]:
    """Atoms that hold whenever e holds: `first(E.time where P) within W` (also last, min, max) finds an
    E with P inside W (and inside the aggregate's own window), so E-with-P counts there are at least 1."""
    if not (isinstance(e, I.InWindow) and isinstance(e.subject, I.Agg)):
        return []
    a = e.subject
    if a.func not in ("first", "last", "min", "max") or a.field is None or a.field.field != "time":
        return []
    windows = [e.window] + ([a.window] if a.window is not None and a.window != e.window else [])
    return [(("count", a.event, repr(a.where), w), ">=", Decimal(1)) for w in windows]


def _to_atom(e: I.Expr):
    if isinstance(e, I.Cmp):
        if isinstance(e.right, I.Const) and not isinstance(e.left, I.Const):
            return _key(e.left), e.op, e.right.value
        if isinstance(e.left, I.Const) and not isinstance(e.right, I.Const):
            return _key(e.right), _MIRROR[e.op], e.left.value
        return None
    if isinstance(e, I.InSet):
        return _key(e.subject), "not in" if e.negated else "in", frozenset(v.value for v in e.values)
    if isinstance(e, I.LabelIs):
        return ("label", e.classification), "in", frozenset(e.labels)
    if isinstance(e, I.IsNull):
        return repr(e.subject), "not null" if e.negated else "null", None
    if isinstance(e, I.Agg) and e.func in ("any", "none"):
        key = _key(I.Agg("count", e.event, None, e.where, e.window, e.type))
        return key, ">" if e.func == "any" else "=", Decimal(0)
    return None


def _satisfiable(conj: list[tuple], labels: dict[str, list[str]]) -> bool:
    by_key: dict = {}
    for key, op, value in conj:
        by_key.setdefault(key, []).append((op, value))
    _widen_counts(by_key)
    return all(_key_sat(key, cons, labels) for key, cons in by_key.items())


def _widen_counts(by_key: dict) -> None:
    """A count forced to be at least 1 makes every count of the same events over a wider window (and a
    weaker `where`) at least 1 too. A count cannot be 0 when its constraints refuse 0 (counts are never NULL)."""
    counts = [k for k in by_key if isinstance(k, tuple) and k[0] == "count"]
    forced = [k for k in counts if not all(_holds(op, Decimal(0), c) for op, c in by_key[k])]
    for narrow in forced:
        for wide in counts:
            if wide != narrow and wide[1] == narrow[1] and wide[2] in (narrow[2], repr(None)) \
                    and _inside(narrow[3], wide[3]):
                by_key[wide] = [*by_key[wide], (">=", Decimal(1))]


_EXACT_MINUTES = {"m": 1, "h": 60}
_EXACT_DAYS = {"d": 1, "w": 7}


def _dur_le(a: I.Dur, b: I.Dur) -> bool:
    """a <= b for certain (months and days are not compared: a month has 28 to 31 days; nor hours and days,
    which local time can make 23 or 25 hours long)."""
    for scale in (_EXACT_MINUTES, _EXACT_DAYS, {"mo": 1}):
        if a.unit in scale and b.unit in scale:
            return a.value * scale[a.unit] <= b.value * scale[b.unit]
    return False


def _inside(a: I.Win | None, b: I.Win | None) -> bool:
    """Is window a inside window b? (None: all events.) See I.Win for the bounds."""
    if a == b or b is None:
        return True
    if a is None or a.op not in ("within", "after", "between") or b.op not in ("within", "after"):
        return False
    if a.op == "after" and b.op == "within":  # after reaches past the as-of time
        return False
    return a.start is not None and b.start is not None and _dur_le(a.start, b.start)


def _holds(op: str, v, c) -> bool:
    """Does the constraint (op, c) hold for value v (None meaning NULL)?"""
    if op == "null":
        return v is None
    if op == "not null":
        return v is not None
    if op in ("true", "false"):
        return v == (op == "true")
    if v is None:
        return op in ("!=", "not in")  # a negated comparison holds for a missing value
    try:
        return {"=": lambda: v == c, "!=": lambda: v != c, "<": lambda: v < c, "<=": lambda: v <= c,
                ">": lambda: v > c, ">=": lambda: v >= c, "in": lambda: v in c, "not in": lambda: v not in c}[op]()
    except TypeError:
        return True


def _key_sat(key, cons: list[tuple], labels: dict[str, list[str]]) -> bool:
    if isinstance(key, tuple) and key[0] == "label":
        domain = [*labels.get(key[1], []), None]
        return any(all(_holds(op, v, c) for op, c in cons) for v in domain)
    if any(op in ("true", "false") for op, _ in cons):
        return any(all(_holds(op, v, c) for op, c in cons) for v in (True, False))
    return any(all(_holds(op, v, c) for op, c in cons) for v in _candidates(cons))


def _candidates(cons: list[tuple]) -> list:
    consts = []
    for _, c in cons:
        if isinstance(c, frozenset):
            consts.extend(c)
        elif c is not None:
            consts.append(c)
    out: list = [None]
    for c in consts:
        out.append(c)
        out.extend(_near(c))
    nums = sorted({c for c in consts if isinstance(c, (int, Decimal)) and not isinstance(c, bool)})
    out.extend((a + b) / 2 for a, b in zip(nums, nums[1:], strict=False))
    if all(isinstance(c, str) for c in consts) and consts:
        out.append("\uffff" * (max(len(c) for c in consts) + 1))
    return out


def _near(c) -> list:
    if isinstance(c, bool):
        return [not c]
    if isinstance(c, (int, Decimal)):
        return [c - Decimal("0.000001"), c + Decimal("0.000001"), c - 1, c + 1]
    if isinstance(c, datetime):
        return [c - timedelta(seconds=1), c + timedelta(seconds=1)]
    if isinstance(c, date):
        return [c - timedelta(days=1), c + timedelta(days=1)]
    if isinstance(c, str):
        return [c + "\x00", ""]
    return []
