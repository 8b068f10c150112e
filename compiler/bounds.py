"""AST module -> diagnostics for values outside what Python and every engine camp targets can hold.

A file that `camp check` passes must compile and run, so every literal is held to the narrowest
type it meets later (docs/language.md, "Limits"):

    numbers     |x| < 10^18, at most 10 decimals   DECIMAL(28,10); Python's 28-digit decimal context
    money       |x| < 10^14, at most 4 decimals    the ledger's DECIMAL(18,4) (cost, spend)
    counts      0 .. 2,147,483,647                 a 32-bit integer, the smallest any engine uses
    durations   at most 100 years (36,525 days)    as-of minus the duration stays in the date range
    dates       1900-01-01 .. 2999-12-31           every engine's DATE and Python's datetime hold them
    text        no NUL character                   PostgreSQL cannot store one, no SQL text can carry one

Context-dependent limits (per-send amounts, coupon values) are checked where the value is used
(compiler.campaign, compiler.limits) with the constants below.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from compiler.report import Report
from dsl import ast as A
from dsl.span import Span
from dsl.walk import walk

MAX_NUMBER = Decimal(10) ** 18
NUMBER_DECIMALS = 10
MAX_MONEY = Decimal(10) ** 14
MONEY_DECIMALS = 4
MAX_PER_SEND = Decimal(1_000_000)  # a cost or resource value per recipient: 10^8 sends a day still fit the ledger
COUPON_DECIMALS = 2  # coupons and red packets are issued into DECIMAL(18,2) columns
MAX_COUNT = 2**31 - 1
MAX_DAYS = 36525
MAX_MINUTES = {"m": MAX_DAYS * 1440, "h": MAX_DAYS * 24, "d": MAX_DAYS, "w": MAX_DAYS // 7, "mo": 1200}
FIRST_DATE = date(1900, 1, 1)
LAST_DATE = date(2999, 12, 31)
UNIT_WORDS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks", "mo": "months"}


def check_bounds(module: A.Module, report: Report, source: str | None = None) -> None:
    """Report every literal of `module` outside the limits above (report.file is the module's).
    `source`: the module's text, when known; a NUL reaches a literal only through a `\\u0000` escape
    (a raw NUL byte makes the file binary, E102), so without one the texts need no look."""
    nul = source is None or "\\u0000" in source.lower()
    for node in walk(module):
        if nul:
            _nul(node, report)
        check = _CHECKS.get(type(node))
        if check is not None:
            check(node, report)


_CHECKS = {
    A.Duration: lambda n, r: check_duration(n, r),
    A.Money: lambda n, r: check_money(n.amount, n.currency, n.span, r),
    A.MoneyLit: lambda n, r: check_money(n.amount, n.currency, n.span, r),
    A.NumberLit: lambda n, r: check_number(n.value, n.span, r),
    A.PercentLit: lambda n, r: check_number(n.value / 100, n.span, r, shown=f"{n.value}%"),
    A.DateLit: lambda n, r: check_date_text(n.text, n.span, r),
    A.DateTimeLit: lambda n, r: check_date_text(n.text[:10], n.span, r),
    A.Once: lambda n, r: check_date_text(n.at[:10], n.span, r),
    A.Cap: lambda n, r: check_count(n.count, "a cap", n.span, r),
    A.Tier: lambda n, r: check_count(n.count, "a cap", n.span, r),
    A.Priority: lambda n, r: check_count(n.value, "a priority", n.span, r),
    A.Points: lambda n, r: check_number(n.amount, n.span, r),
    A.ShareDecay: lambda n, r: check_count(n.after, "a share count", n.span, r),
}


def _nul(node: A.Node, report: Report) -> None:
    for value in node.__dict__.values():
        texts = value if isinstance(value, list) else [value]
        if any(isinstance(t, str) and "\x00" in t for t in texts):
            report("E410", "the text contains a NUL character (\\u0000)", node.span,
                   ["no database column can hold one; remove it"])
            return


def _digits(value: Decimal) -> int:
    """Decimal places as written (1.50 has 2)."""
    exponent = value.as_tuple().exponent
    return -exponent if isinstance(exponent, int) and exponent < 0 else 0


def check_number(value: Decimal, span: Span, report: Report, shown: str | None = None) -> bool:
    shown = shown or format(value, "f")
    if not value.is_finite() or abs(value) >= MAX_NUMBER:
        report("E411", f"{_short(shown)} is too large: numbers stay below 10^18", span,
               ["every engine camp targets holds numbers up to 18 digits before the point"])
        return False
    if _digits(value) > NUMBER_DECIMALS:
        report("E411", f"{_short(shown)} has more than {NUMBER_DECIMALS} decimals", span,
               [f"round it to {NUMBER_DECIMALS} decimals"])
        return False
    return True


def check_money(amount: Decimal, currency: str, span: Span, report: Report, limit: Decimal = MAX_MONEY,
                decimals: int = MONEY_DECIMALS, what: str = "an amount of money") -> bool:
    if not amount.is_finite() or abs(amount) >= limit:
        report("E412", f"{_short(format(amount, 'f'))} {currency} is too large for {what}: the limit is "
                       f"{limit:,} {currency}", span,
               ["the ledger stores money as DECIMAL(18,4)" if limit == MAX_MONEY else
                "a cost or value per recipient is at most 1,000,000; a day's spend must fit the ledger"])
        return False
    if _digits(amount) > decimals:
        report("E412", f"{format(amount, 'f')} {currency} has more than {decimals} decimals, more than {what} "
                       "can hold", span, [f"round it to {decimals} decimals"])
        return False
    return True


def check_per_send(m: A.Money, what: str, report: Report, decimals: int = MONEY_DECIMALS) -> bool:
    """A cost or resource value per recipient (the amount itself is held to MAX_MONEY by check_bounds)."""
    if not m.amount.is_finite() or abs(m.amount) >= MAX_MONEY or _digits(m.amount) > MONEY_DECIMALS:
        return False  # reported by check_bounds
    return check_money(m.amount, m.currency, m.span, report, MAX_PER_SEND, decimals, what)


def check_count(value: int, what: str, span: Span, report: Report) -> bool:
    if value > MAX_COUNT:
        report("E411", f"{_short(str(value))} is too large for {what}: the limit is {MAX_COUNT:,}", span,
               ["counts are 32-bit integers on every engine"])
        return False
    return True


def check_duration(d: A.Duration, report: Report) -> bool:
    if d.value > MAX_MINUTES[d.unit]:
        report("E413", f"{_short(str(d.value))}{d.unit} is longer than 100 years ({MAX_MINUTES[d.unit]:,} "
                       f"{UNIT_WORDS[d.unit]})", d.span,
               ["windows, delays and intervals reach back or ahead at most 100 years, so every date they give "
                "stays between 1900 and 2999"])
        return False
    return True


def check_date(d: date, span: Span, report: Report) -> bool:
    if not FIRST_DATE <= d <= LAST_DATE:
        report("E414", f"{d.isoformat()} is outside the dates camp supports ({FIRST_DATE} .. {LAST_DATE})", span,
               ["every engine camp targets holds these dates; use one in that range"])
        return False
    return True


def check_date_text(text: str, span: Span, report: Report) -> bool:
    try:
        d = date.fromisoformat(text)
    except ValueError:
        return True  # not a date that exists: the checker reports E401 where it reads it
    return check_date(d, span, report)


def _short(text: str) -> str:
    return text if len(text) <= 24 else f"{text[:10]}…({len(text)} digits)"
