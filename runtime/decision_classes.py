"""A batch's recipients -> their decisions, judged once per class of users alike.

`runtime.decide.judge` reads few things of a recipient: why a follow-up skips them, the holdout, the arm (branch,
or variant by the hash of the user id), the zone field, consent and the presence of an address on the plan's
channels, the labels tiered caps are by, and the user's counted past (`Seen`) and coupons. Users equal in all of
those are judged alike, so each class is judged once and its answer reused (a digest to 77,000 users has a few
dozen classes). The budget is then settled user by user in snapshot order, as `decide` does: a reservation that
failed fails again until another one succeeds (room only shrinks while a batch decides), so the answer is kept
until then.

    decide_rows(plan, rows, view, seen, coupons, budget, as_of, leave, users, stopped)
        -> [(i, user, Decision | Exception, bad_zone)] of the users not stopped, when `stopped` collects the others

`view` says how to read a row: `RowView` for the typed rows this process fetched (`runtime.recipients.row_reader`),
`RecipientView` for Recipients already built (read back from the ledger). Equal to `decide` user by user:
tests/runtime/test_decision_classes.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from decimal import Decimal
from operator import itemgetter
from typing import Any, Protocol

from compiler.plan import StepPlan
from runtime.decide import (
    GOING,
    NOTHING_SEEN,
    Ask,
    Budget,
    Decision,
    HeldCoupon,
    Recipient,
    Seen,
    bad_zone,
    judge,
    settle,
    variant_of,
)
from runtime.recipients import row_reader


class View(Protocol):
    def user(self, row: Any) -> str: ...

    def key(self, row: Any, /) -> tuple: ...

    def recipient(self, i: int, row: Any) -> Recipient: ...  # the i-th row of the batch


def _reads(plan: StepPlan) -> tuple[str | None, list[str], list[str], list[str]]:
    """What judge reads beyond skip, holdout and arm: the zone field, the address fields whose presence counts,
    the consent channels, the labels of tiered caps."""
    addresses = sorted({ch.address_field for a in plan.arms for ch in a.notify if ch.address_field})
    labels = sorted({c.by for c in plan.caps if c.by})
    return plan.tz_field, addresses, list(plan.consent_channels or []), labels


class RecipientView:
    """Recipients already built."""

    def __init__(self, plan: StepPlan):
        self.plan = plan
        self.zone, self.addresses, self.consent, self.labels = _reads(plan)

    def user(self, row: Recipient) -> str:
        return row.user_id

    def recipient(self, i: int, row: Recipient) -> Recipient:
        return row

    def key(self, row: Recipient) -> tuple:
        p, r = self.plan, row
        kind = p.arms[0].kind
        arm = variant_of(p, r.user_id).name if kind == "variant" else (r.branch if kind == "branch" else None)
        return (r.skip, r.held_out, arm, r.fields.get(self.zone) if self.zone else None,
                tuple(bool(r.fields.get(a)) for a in self.addresses), tuple(bool(r.consent.get(c)) for c in self.consent),
                tuple(r.labels.get(lb) for lb in self.labels))


class RowView:
    """Typed rows this process fetched (`names`: column -> index, the first row being seq `lo`), read as
    `runtime.recipients.row_reader` reads them; a Recipient is built only to judge a new class and for the users a
    message goes to."""

    def __init__(self, plan: StepPlan, names: dict[str, int], lo: int):
        self.lo = lo
        zone, addresses, consent, labels = _reads(plan)
        # the columns judge reads, raw (a finer split than judge's reading of them, so still alike): one C call
        read = [names["held_out"], names.get("skip"), names.get(f"u_{zone}") if zone else None]
        read += [names.get("branch")] if plan.arms[0].kind == "branch" else []
        read += [names.get(f"consent_{c}") for c in consent] + [names.get(f"class_{lb}") for lb in labels]
        self._recipient = row_reader(plan, names)
        self.key = _row_key(plan, itemgetter(*[i for i in read if i is not None]),
                            [i for i in (names.get(f"u_{a}") for a in addresses) if i is not None])

    def user(self, row: tuple) -> str:
        return str(row[0])

    def recipient(self, i: int, row: tuple) -> Recipient:
        return self._recipient(self.lo + i, row)


def _row_key(plan: StepPlan, read: Callable[[tuple], Any], addresses: list[int]) -> Callable[[tuple], tuple]:
    """A row's class key: the raw columns `read` takes, whether each address column is present, and the variant
    (by the user id's hash). Spelled for the common shapes apart, as it runs once per recipient."""
    if plan.arms[0].kind == "variant":
        return lambda row: (read(row), tuple([bool(row[i]) for i in addresses]), variant_of(plan, str(row[0])).name)
    if not addresses:
        return lambda row: (read(row),)
    if len(addresses) == 1:
        a = addresses[0]
        return lambda row: (read(row), not row[a])
    return lambda row: (read(row), tuple([bool(row[i]) for i in addresses]))


class _Settled:
    """The budget's answers: only a reservation changes the budget, so a refused ask is refused again, for the
    same reason, until one succeeds; without a limit, every ask is granted with the same decision. Asks are told
    apart by identity (`decide_rows` keeps one per class for the batch): hashing a seven-field dataclass per user
    was a fifth of the loop, and two equal asks of two classes only get the same answer twice."""

    def __init__(self, budget: Budget):
        self.budget = budget
        self.exhausted: dict[int, Decision] = {}
        # no limit: every ask is granted, the same decision each time; only the day's spend grows
        self.granted: dict[int, Decision] | None = {} if budget.total_limit is None and budget.daily_limit is None \
            else None

    def __call__(self, ask: Ask) -> Decision:
        if self.granted is not None:
            d = self.granted.get(id(ask))
            if d is None:
                d = self.granted[id(ask)] = settle(ask, self.budget)
            else:
                spent = self.budget.spent
                spent[ask.day] = spent.get(ask.day, Decimal(0)) + ask.cost
            return d
        d = self.exhausted.get(id(ask))
        if d is not None:
            return d
        d = settle(ask, self.budget)
        if d.reason:  # exhausted: room only shrinks, so it is again for this ask until something is reserved
            self.exhausted[id(ask)] = d
        else:
            self.exhausted.clear()
        return d


Stopped = dict[int, tuple[Decision, list[int], bool]]  # id of a stopped Decision -> it, its rows, their zone is bad


def decide_rows(plan: StepPlan, rows: list, view: View, seen: dict[str, Seen], coupons: dict[str, list[HeldCoupon]],
                budget: Budget, as_of: datetime, leave: set[str] | frozenset[str] = frozenset(),
                users: list[str] | None = None, stopped: Stopped | None = None,
                ) -> Iterator[tuple[int, str, Decision | Exception, bool]]:
    """In order, each row's index, user, decision (or the exception judging its class raised) and whether its
    zone value is not a zone; users in `leave` (already decided) are left out. `users`: the rows' user ids, when
    the caller has them already. With `stopped`, a decision that stops its users (suppressed, budget exhausted,
    holdout, skipped: not pending or deferred) is not yielded: the row's index is added to it there, each stopped
    Decision holding one class's users (most of a large audience is stopped; a row each through the generator
    and the caller's loop was most of deciding them)."""
    memo: dict[tuple, tuple[Decision | Ask | Exception, bool, list[int] | None]] = {}
    settled = _Settled(budget)
    # the loop runs once per recipient (a month's simulation: millions): its lookups bound once, here. A user's
    # Seen is keyed by identity: `seen` gives users alike one object (runtime.history.seen_counts) and holds them
    # all while this runs; two equal ones would only make two classes with one answer
    key, seen_get, coupons_get, nothing = view.key, seen.get, coupons.get, NOTHING_SEEN
    for i, (row, u) in enumerate(zip(rows, users if users is not None else [view.user(r) for r in rows], strict=True)):
        if leave and u in leave:
            continue
        past = seen_get(u, nothing)
        held = coupons_get(u) if coupons else None
        k = (key(row), id(past), tuple(held) if held else ())
        hit = memo.get(k)
        if hit is None:
            r = view.recipient(i, row)
            try:
                j: Decision | Ask | Exception = judge(plan, r, past, held or [], as_of)
            except Exception as exc:  # noqa: BLE001 (the caller fails this class's users one by one)
                j = exc
            bad = bad_zone(plan, r)
            into = None
            if stopped is not None and isinstance(j, Decision) and j.status not in GOING:
                into = _stopped_rows(stopped, j, bad)
            hit = memo[k] = (j, bad, into)
        j, bad, into = hit
        if into is not None:
            into.append(i)
        elif isinstance(j, Ask):
            d = settled(j)
            if stopped is not None and d.status not in GOING:
                _stopped_rows(stopped, d, bad).append(i)
            else:
                yield i, u, d, bad
        else:
            yield i, u, j, bad


def _stopped_rows(stopped: Stopped, d: Decision, bad: bool) -> list[int]:
    """The rows list of stopped Decision `d` (added on first use)."""
    entry = stopped.get(id(d))
    if entry is None:
        entry = stopped[id(d)] = (d, [], bad)
    return entry[1]
