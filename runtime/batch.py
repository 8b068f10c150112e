"""Users seq lo..hi-1 of the snapshot -> their decisions, recorded in one locked ledger transaction (caps,
coupons, exclusive group, budget, points credits and red packet grants); returns the deliveries to send now.

Messages for transactional channels (the outbox) are rendered here and written in the same transaction;
a user whose own row cannot be decided fails alone, the batch goes on.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import islice
from zoneinfo import ZoneInfo

from compiler.clock import plus
from compiler.plan import StepPlan
from runtime.context import Pending, Run, RunContext
from runtime.decide import GOING, Budget, HeldCoupon, Seen
from runtime.decision_classes import RecipientView, RowView, Stopped, View, decide_rows
from runtime.history import journey_coupons, ledger_budget, seen_counts
from runtime.ledger.scratch import ScratchLedger
from runtime.ledger.status import PointsState, Status
from runtime.message import message, outbox_row
from runtime.recipients import from_json, payloads
from runtime.render import coupon_context


def decide_batch(run: Run, lo: int, hi: int) -> list[Pending]:
    """Decide users seq lo..hi-1 in one locked transaction; returns those to send now."""
    with run.counters.timing("decide"):
        return _decide_batch(run, lo, hi)


def _decide_batch(run: Run, lo: int, hi: int) -> list[Pending]:
    rows, users, view = _rows(run, lo, hi)
    if not rows:
        return []
    ctx, n, caches = run.ctx, run.counters, run.caches
    lg, p = ctx.ledger, ctx.plan
    with lg.decision():
        done: set[str] = set()
        unseen = not ctx.dry_run and _unseen(run, lo)
        if not ctx.dry_run and not unseen:
            done = lg.decided_users(ctx.occ, ctx.key_prefix, users)
        past, coupons = _history(run, users)
        given = journey_coupons(ctx, users)
        budget = _budget(run)
        out, deliveries, coupon_rows, outbox = [], [], [], []
        grants: tuple[list[tuple], list[tuple]] = ([], [])  # points credits, red packet grants
        prefix, occ = ctx.key_prefix, ctx.occ
        render_s = 0.0
        now = datetime.now(UTC)
        # each stopped Decision (one per class of alike users, or per budget answer) -> it, its rows, whether their
        # zone is bad: nothing given, sent or held, so counted and written once per decision, not per user
        stopped: Stopped = {}
        later: list[int] = []  # users left pending or deferred, of a snapshot written without its data
        for i, user, d, bad in decide_rows(p, rows, view, past, coupons, budget, ctx.as_of, done, users, stopped):
            if bad:
                n.unknown_zones += 1
            if isinstance(d, Exception):  # one user's bad row fails that user's delivery, not the batch
                reason = f"data: {type(d).__name__}"
                n.fail(reason)
                deliveries.append(_failed_row(ctx, prefix + user, user, reason, str(d), now))
                continue
            key = prefix + user
            n.counts[d.status] += 1
            if d.reason:
                n.reasons[f"{d.status}: {d.reason}"] += 1
            n.cost += d.cost
            coupon_id, mine = None, []
            status, provider, sent_at, reason, error = d.status, None, None, d.reason, None
            try:
                for name in d.give:
                    if p.resources[name].kind == "coupon":
                        assert d.due_at is not None  # a decision that gives something says when it is due
                        mine.append(_coupon_row(p, key, user, name, d.due_at))
                        coupon_id = mine[-1][0]
                if status == Status.PENDING:
                    r = view.recipient(i, rows[i])
                    it = Pending(key, user, d.arm, d.channel, coupon_id, r)
                    if not ctx.dry_run and (d.channel is None or caches.channels.get(d.channel).transactional):
                        # the outbox (or a grant without a message) is written in this same transaction
                        t0 = time.perf_counter()
                        msg, err = message(p, ctx.plan_hash, caches, it, _coupon_of_row(p, mine[-1]) if coupon_id
                                           else given.get(user))
                        render_s += time.perf_counter() - t0
                        if err is None:
                            status, sent_at = Status.SENT, now
                            if msg is not None:
                                provider = "outbox:" + key
                                outbox.append(outbox_row(msg, now))
                            if coupon_id:
                                mine[-1] = _issued(mine[-1])
                            n.counts[Status.SENT] += 1
                        elif _last_channel(p, d.arm, d.channel):  # no fallback to try: this delivery failed
                            status, reason, error = Status.FAILED, err.reason, f"{d.channel}: {err}"
                            mine = [_void(c) for c in mine]
                            n.fail(reason)
                        else:
                            out.append(it)
                    else:
                        out.append(it)
            except Exception as exc:  # noqa: BLE001 (as above: this user only)
                status, reason, error, provider, sent_at = Status.FAILED, f"data: {type(exc).__name__}", str(exc), None, None
                mine = [_void(c) for c in mine]
                n.fail(reason)
                out = [o for o in out if o.key != key]
                outbox = [o for o in outbox if o[0] != key]
            coupon_rows.extend(mine)
            if status in GOING and run.snapshot.payload_later:
                later.append(i)  # read back with its data (a release, a recovery)
            if status in (Status.PENDING, Status.DEFERRED, Status.SENT) and not ctx.dry_run:
                _grants(run, key, user, d.give, d.due_at or now, now, status == Status.SENT, grants)
            deliveries.append((key, *occ, user, d.arm, d.channel, status, reason, d.cost, p.currency,
                               coupon_id, provider, ctx.plan_hash, ctx.run_id,
                               p.exclusive, d.due_at,  # only going decisions reach here: they hold the group
                               d.not_before, now, sent_at, 1 if sent_at else 0, error))
        # a simulation's suppressed and exhausted users: kept apart, unkeyed, where no check of decided users reads
        # them (ScratchLedger); any other stopped user gets its delivery row
        apart = isinstance(lg, ScratchLedger) and unseen
        alike: list[tuple[tuple, list[str]]] = []
        for d, idx, bad in stopped.values():
            who = [users[i] for i in idx]
            if bad:
                n.unknown_zones += len(idx)
            if apart and d.status in _APART:
                alike.append(((d.arm, d.channel, d.status, d.reason, d.cost, d.due_at), who))
                continue
            deliveries.extend((prefix + u, *occ, u, d.arm, d.channel, d.status, d.reason, d.cost, p.currency, None,
                               None, ctx.plan_hash, ctx.run_id, None, d.due_at, d.not_before, now, None, 0, None)
                              for u in who)
        _left_out(n.left_out, users, [idx for d, idx, _ in stopped.values() if d.status == Status.BUDGET_EXHAUSTED])
        if not ctx.dry_run:
            lg.record_decisions(deliveries, coupon_rows, outbox)
            if isinstance(lg, ScratchLedger):  # a simulation: stopped users apart, snapshot rows of those read back
                lg.record_stopped(ctx.run_id, occ, alike)
                if later:
                    names = sorted(run.snapshot.names, key=run.snapshot.names.__getitem__)
                    held = run.snapshot.names["held_out"]
                    mine = [rows[i] for i in later]
                    lg.fill_payloads(occ, [(lo + i, str(r[0]), bool(r[held]), data) for i, r, data in
                                           zip(later, mine, payloads(names, mine), strict=True)])
            lg.record_grants(*grants)
            for day, amount in budget.spent.items():
                if amount:
                    lg.add_spend(p.campaign, day, amount)
    for d, idx, _ in stopped.values():
        n.counts[d.status] += len(idx)
        if d.reason:
            n.reasons[f"{d.status}: {d.reason}"] += len(idx)
    n.timings["render"] += render_s  # rendered here for the outbox; reported apart from deciding
    n.timings["decide"] -= render_s
    return out


_APART = (Status.SUPPRESSED, Status.BUDGET_EXHAUSTED)  # what a scratch ledger keeps apart (ScratchLedger)


def _left_out(left_out: list[str], users: list[str], exhausted: list[list[int]]) -> None:
    """The run's first 20 users the budget left out (for its summary), in the batch's order: the rows of each
    exhausted decision are in order, so merged, not sorted."""
    need = 20 - len(left_out)
    if need > 0 and exhausted:
        left_out.extend(users[i] for i in islice(heapq.merge(*exhausted), need))


def _unseen(run: Run, lo: int) -> bool:
    """No user of the batch starting at seq `lo` can have a delivery of the occurrence yet: this run wrote them to
    the snapshot, each user once, where this process is the ledger's one writer, and has not decided this batch
    before (the ledger's check of decided users, 1.4 s at 1M recipients, is then skipped)."""
    cache = run.snapshot
    if not cache.unseen(run.ctx.ledger.backend.one_writer) or lo in cache.decided:
        return False
    cache.decided.add(lo)
    return True


def _rows(run: Run, lo: int, hi: int) -> tuple[list, list[str], View]:
    """Users seq lo..hi-1 (their rows, their ids) and how to read them: the rows this process fetched, else
    Recipients from the ledger's snapshot."""
    cache, p = run.snapshot, run.ctx.plan
    if cache.rows is not None:
        a, b = lo - cache.lo, hi - cache.lo
        return cache.rows[a:b], cache.users[a:b], RowView(p, cache.names, lo)
    rows = [from_json(p, *r) for r in run.ctx.ledger.recipient_rows(run.ctx.occ, lo, hi)]
    return rows, [r.user_id for r in rows], RecipientView(p)


def _history(run: Run, users: list[str]) -> tuple[dict[str, Seen], dict[str, list[HeldCoupon]]]:
    """What the caps and hold see of these users' past, and their coupons. Where one process writes the ledger
    (DuckDB) nobody else adds deliveries while this run decides, and this run's own rows are of other users: the
    counts of every user are read once, in the first batch, with one aggregate over the longest window. Where
    several processes meet (PostgreSQL), each batch reads its users' counts inside its decision lock (an index
    on (user_id, due_at) keeps that proportional to the batch), so a concurrent run's deliveries are seen."""
    ctx = run.ctx
    lg, p = ctx.ledger, ctx.plan
    if lg.backend.one_writer:
        if run.caches.seen is None:
            if run.snapshot.rows is not None:  # the users this process fetched: only theirs leave the database, and
                # the snapshot table (whose scan grows with the ledger's age) is not read
                run.caches.seen = seen_counts(ctx, run.snapshot.users, ctx.as_of)
            else:  # read back: the run's recipients are in the ledger's snapshot
                run.caches.seen = seen_counts(ctx, None, ctx.as_of, snapshot=not ctx.dry_run)
        past = run.caches.seen
    else:
        past = seen_counts(ctx, users, ctx.as_of)
    coupons: dict[str, list[HeldCoupon]] = {}
    if any(p.resources[g].kind == "coupon" for a in p.arms for g in a.give):
        for c in lg.held_coupons(users):
            coupons.setdefault(c.user_id, []).append(HeldCoupon(c.code, c.campaign, c.reserved_at, c.usable_to,
                                                                     bool(c.unused)))
    return past, coupons


def _budget(run: Run) -> Budget:
    """The budget this batch reserves from: the ledger's spend; a dry run keeps reserving from one Budget."""
    p = run.ctx.plan
    if p.budget_total is None and p.budget_daily is None:
        return Budget(None, None)
    if run.ctx.dry_run:
        if run.caches.dry_budget is None:
            run.caches.dry_budget = ledger_budget(run.ctx)
        return run.caches.dry_budget
    return ledger_budget(run.ctx)


def _coupon_row(plan: StepPlan, key: str, user: str, name: str, due: datetime) -> tuple:
    r, tz = plan.resources[name], ZoneInfo(plan.timezone)
    if r.usable_for is not None:
        start, end = due, plus(due, r.usable_for.dur(), tz)
    else:
        start = datetime.combine(r.usable_from, datetime.min.time(), tzinfo=tz) if r.usable_from else due
        end = datetime.combine(r.usable_to + timedelta(days=1), datetime.min.time(), tzinfo=tz) \
            if r.usable_to else due + timedelta(days=3650)
    cid = "C" + hashlib.sha256(f"{key}/{name}".encode()).hexdigest()[:20]
    return (cid, key, plan.campaign, r.code, user, r.value, r.currency or plan.currency, r.min_spend,
            json.dumps(r.scope, ensure_ascii=False, default=str), "reserved", due, None,
            start.astimezone(UTC), end.astimezone(UTC), None)


def _grants(run: Run, key: str, user: str, give: list[str], due: datetime, now: datetime, sent: bool,
            out: tuple[list[tuple], list[tuple]]) -> None:
    """A counted delivery's points credit (issued at once when the delivery is sent in this transaction and the
    issuer is the outbox; else pending, runtime.points) and red packet grant (its payout rule and the forecast it
    reserved), appended to `out` (POINTS_COLS, PACKET_COLS)."""
    ctx = run.ctx
    p = ctx.plan
    for name in give:
        res = p.resources[name]
        if res.kind == "points":
            issuer = res.issuer or "outbox"
            at_once = sent and run.caches.channels.get(issuer).transactional
            out[0].append((key, *ctx.occ, user, int(res.value or 0), res.forecast_cost, p.currency, issuer,
                           PointsState.ISSUED if at_once else PointsState.PENDING, now, now if at_once else None,
                           f"outbox:{key}" if at_once else None, None))
        elif res.kind == "red_packet":
            out[1].append((key, p.campaign, res.code or name, user, res.value or Decimal(0),
                           res.currency or p.currency, res.decay, res.floor, res.fixed_after, res.forecast_cost, due))


def _failed_row(ctx: RunContext, key: str, user: str, reason: str, error: str, now: datetime) -> tuple:
    """The ledger row of a recipient whose own data could not be decided on (the others go on)."""
    return (key, *ctx.occ, user, None, None, Status.FAILED, reason, Decimal(0), ctx.plan.currency, None, None,
            ctx.plan_hash, ctx.run_id, None, ctx.as_of, None, now, None, 0, error[:2000])


def _last_channel(plan: StepPlan, arm: str | None, channel: str | None) -> bool:
    """No channel follows this one in the arm's fallback chain."""
    chain = [c.channel for a in plan.arms if a.name == arm for c in a.notify]
    return channel not in chain or chain.index(channel) == len(chain) - 1


def _void(row: tuple) -> tuple:
    """A reserved coupon row whose message failed."""
    return (*row[:9], "void", *row[10:])


def _issued(row: tuple) -> tuple:
    """A reserved coupon row, issued (its message went out in the same transaction)."""
    return (*row[:9], "issued", row[10], row[10], *row[12:])


def _coupon_of_row(plan: StepPlan, row: tuple) -> dict:
    name = next(n for n, r in plan.resources.items() if r.kind == "coupon" and r.code == row[3])
    return coupon_context({"name": name, "coupon_id": row[0], "issued_at": row[10], "usable_from": row[12],
                           "usable_to": row[13]}, plan)
