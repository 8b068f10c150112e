"""Executes one StepPlan against the warehouse and the ledger, batch by batch (no Prefect here:
`runtime.flows` wraps these functions in tasks).

    snapshot  : recipients SQL in the warehouse -> camp_recipients (once per occurrence; a rerun reuses it)
    recover   : deliveries a killed run left pending/dispatching -> dispatched again, same idempotency key
    release   : deferred deliveries whose quiet hours are over -> dispatched
    batch     : decide (one locked transaction: caps, coupons, exclusive group, budget) -> dispatch
    summarize : counts by status and reason, cost, budget left

Idempotency: one ledger row per (campaign, step, occurrence, user), keyed by a unique text key;
a user with a row is never decided again, and only pending/dispatching rows are ever sent.
"""

from __future__ import annotations

import dataclasses
import gc
import hashlib
import json
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from compiler.clock import ceil_minute, minus, plus
from compiler.plan import StepPlan
from compiler.sql import REACH
from runtime import journey
from runtime.channels import Channel, Message, PermanentFailure, TransientFailure, make_channel
from runtime.decide import (
    COUNTED,
    Budget,
    HeldCoupon,
    Past,
    Recipient,
    bad_zone,
    channel_block,
    decide,
    quiet_until,
    user_zone,
)
from runtime.ledger import Ledger
from runtime.ledger.rows import PendingRow
from runtime.ledger.status import RunStatus, Status
from runtime.render import Renderer, RenderError, coupon_context
from runtime.warehouse import connect


@dataclass
class Run:
    plan: StepPlan
    ledger: Ledger
    data_url: str
    as_of: datetime
    dry_run: bool = False
    channel_config: dict = field(default_factory=dict)
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:16])
    plan_hash: str = ""
    counts: Counter = field(default_factory=Counter)  # status -> users, this run (dry runs: what would happen)
    reasons: Counter = field(default_factory=Counter)
    cost: Decimal = Decimal(0)
    left_out: list[str] = field(default_factory=list)  # first users left out by the budget
    _channels: dict[str, Channel] = field(default_factory=dict)
    _renderer: Renderer | None = None
    _dry_budget: Budget | None = None
    _chains: dict = field(default_factory=dict)
    _raw: list | None = None  # the snapshot as fetched, when this process made it: no read back, no decoding
    _raw_lo: int = 0  # seq of _raw[0] (a follow-up's part starts after the earlier parts)
    _names: dict = field(default_factory=dict)  # snapshot column -> index in _raw rows
    timings: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))  # stage -> seconds in camp's code
    unknown_zones: int = 0  # users decided by this run whose time zone is not a zone (the workspace's was used)
    touched: dict = field(default_factory=dict)  # (step, occurrence) sent to by this run -> the plan's next step

    def __post_init__(self):
        self.plan_hash = self.plan_hash or self.plan.hash
        self.touched[(self.plan.step, self.plan.occurrence)] = self.plan.next
        self.key_prefix = f"{self.plan.campaign}/{self.plan.step}/{self.plan.occurrence}/"

    @property
    def occ(self) -> tuple[str, str, str]:
        return self.plan.campaign, self.plan.step, self.plan.occurrence

    def channel(self, name: str) -> Channel:
        if name not in self._channels:
            self._channels[name] = make_channel(name, self.channel_config)
        return self._channels[name]

    def channel_plan(self, arm: str | None, channel: str):
        if not self._chains:
            self._chains = {(a.name, c.channel): c for a in self.plan.arms for c in a.notify}
        return self._chains[(arm, channel)]

    def renderer(self) -> Renderer:
        if self._renderer is None:
            self._renderer = Renderer(self.plan)
        return self._renderer

    def close(self) -> None:
        for ch in self._channels.values():
            ch.close()
        self._raw = None
        gc.unfreeze()


# ---------------------------------------------------------------- run records
def start(run: Run, flow_run_id: str | None = None) -> None:
    """Record the run as `running`; its ledger session holds the run's liveness lock (Ledger.start_run)."""
    if run.dry_run:
        return
    run.ledger.start_run(run.run_id, run.plan, run.plan_hash, run.as_of, flow_run_id)


def finish(run: Run, summary: dict, status: str = RunStatus.FINISHED) -> None:
    if run.dry_run:
        return
    run.ledger.finish_run(run.run_id, status, summary)


def _interrupt_dead(run: Run) -> list[str]:
    """Mark `interrupted` the earlier runs of this occurrence still recorded `running` whose process is
    gone: this run takes over their work (Ledger.interrupt_dead_runs)."""
    return run.ledger.interrupt_dead_runs(run.occ, run.run_id)


# ---------------------------------------------------------------- snapshot
def _encode(v):
    if isinstance(v, datetime | date):
        return v.isoformat()
    if isinstance(v, Decimal):
        return str(v)
    return v


def _decode(kind: str, v):
    if v is None:
        return None
    if kind == "date":
        return date.fromisoformat(v)
    if kind == "timestamp":
        return datetime.fromisoformat(v)
    if kind in ("money", "number"):
        return Decimal(v)
    return v


def _timed(stage: str):
    def wrap(fn):
        def inner(run: Run, *args, **kw):
            t0 = time.perf_counter()
            try:
                return fn(run, *args, **kw)
            finally:
                run.timings[stage] += time.perf_counter() - t0
        inner.__doc__, inner.__name__ = fn.__doc__, fn.__name__
        return inner
    return wrap


def _fetch(run: Run, cohort) -> tuple[list[str], list]:
    wh = connect(run.data_url, read_only=True)
    try:
        if cohort is not None:
            journey.load_cohort(wh, run.plan, cohort)
        cur = wh.execute(run.plan.recipients_sql)
        return [d[0] for d in cur.description], cur.fetchall()
    finally:
        wh.close()


@_timed("audience")
def snapshot(run: Run) -> tuple[int, int]:
    """The recipients of this run, as the range [lo, hi) of their seq in the occurrence's snapshot.

    A first step's recipients are computed once per occurrence: a rerun (after a crash, or a later
    retry) reads the same list even if the warehouse changed since. A follow-up's arrive in parts:
    each as-of time takes the cohort users due by then (runtime.journey), once."""
    lg, p = run.ledger, run.plan
    part = run.as_of.astimezone(UTC).isoformat() if p.journey else None
    if not run.dry_run:
        done = _part(lg, run, part)
        if done is not None:
            return done
    cohort = journey.cohort(lg, p, run.as_of) if p.journey else None
    if cohort is not None and len(cohort) == 0:
        n = 0 if run.dry_run else lg.snapshot_size(run.occ) or 0
        return n, n
    names, data = _fetch(run, cohort)
    gc.freeze()  # the snapshot lives as long as the run: keep the collector from rescanning a million rows
    idx = {n: i for i, n in enumerate(names)}
    extra = [n for n in names if n not in ("user_id", "held_out")]
    payloads = [json.dumps({n: _encode(row[idx[n]]) for n in extra}, ensure_ascii=False, separators=(",", ":"))
                for row in data]
    if run.dry_run:
        run._raw, run._names = data, idx
        return 0, len(data)
    with lg.decision():  # one writer of the occurrence's snapshot at a time
        done = _part(lg, run, part)
        if done is not None:
            return done
        lo = lg.snapshot_size(run.occ) or 0
        rows = [(*run.occ, lo + i, str(row[0]), bool(row[idx["held_out"]]), payloads[i]) for i, row in enumerate(data)]
        run._raw, run._raw_lo, run._names = data, lo, idx
        lg.add_recipients(run.occ, run.plan_hash, lo, rows, part)
    return lo, lo + len(rows)


def _part(lg: Ledger, run: Run, part: str | None) -> tuple[int, int] | None:
    """The range an earlier attempt at the same snapshot (or part) already took, if any."""
    if part is None:
        n = lg.snapshot_size(run.occ)
        return (0, n) if n is not None else None
    return lg.snapshot_part(run.occ, part)


def _make(plan: StepPlan, seq: int, user_id: str, held_out: bool, get) -> Recipient:
    """A recipient from its snapshot columns; `get(column)` reads one (None when absent)."""
    return Recipient(seq=seq, user_id=user_id, held_out=held_out,
                     fields={f: get(f"u_{f}") for f in plan.user_fields},
                     labels={c: get(f"class_{c}") for c in plan.labels},
                     consent={ch: bool(get(f"consent_{ch}")) for ch in (plan.consent_channels or [])},
                     branch=get("branch"), skip=get("skip"))


def _recipient(plan: StepPlan, seq: int, user_id: str, held_out: bool, data: str) -> Recipient:
    """From the snapshot's JSON in the ledger (a rerun, a release): values decoded to their schema types."""
    d = json.loads(data)
    kinds = {f"u_{f}": k for f, k in plan.user_fields.items()}
    return _make(plan, seq, user_id, held_out, lambda col: _decode(kinds[col], d.get(col)) if col in kinds
                 else d.get(col))


def _from_raw(run: Run, seq: int, row: tuple) -> Recipient:
    """From the rows this process fetched (already typed)."""
    ix = run._names
    return _make(run.plan, seq, str(row[0]), bool(row[ix["held_out"]]),
                 lambda col: row[ix[col]] if col in ix else None)


def recipients(run: Run, lo: int, hi: int) -> list[Recipient]:
    if run._raw is not None:
        base = run._raw_lo
        return [_from_raw(run, lo + i, row) for i, row in enumerate(run._raw[lo - base:hi - base])]
    return [_recipient(run.plan, *r) for r in run.ledger.recipient_rows(run.occ, lo, hi)]


# ---------------------------------------------------------------- decide
def _past(run: Run, users: list[str], at: datetime) -> list[tuple[str, str, Past]]:
    """(key, user, delivery) of every counted delivery of these users that a cap or exclusive hold of
    the plan can see at `at` (any campaign)."""
    lg, p = run.ledger, run.plan
    windows = [minus(at, c.per.dur(), p.timezone) for c in p.caps if c.per and not c.unused]
    if p.exclusive:
        windows.append(minus(at, p.exclusive_hold.dur(), p.timezone))
    if not windows and not any(c.unit != "coupon" and not c.per and not c.unused for c in p.caps):
        return []
    since = min(windows) if windows else datetime(1970, 1, 1, tzinfo=UTC)
    return [(r.idempotency_key, r.user_id, Past(r.campaign, r.channel, r.due_at, r.exclusive_group))
            for r in lg.counted_deliveries(users, COUNTED, since)]


def _history(run: Run, users: list[str]) -> tuple[dict[str, list[Past]], dict[str, list[HeldCoupon]]]:
    lg, p = run.ledger, run.plan
    past: dict[str, list[Past]] = {}
    for _, uid, d in _past(run, users, run.as_of):
        past.setdefault(uid, []).append(d)
    coupons: dict[str, list[HeldCoupon]] = {}
    if any(p.resources[g].kind == "coupon" for a in p.arms for g in a.give):
        for c in lg.held_coupons(users):
            coupons.setdefault(c.user_id, []).append(HeldCoupon(c.code, c.campaign, c.reserved_at, c.usable_to))
    return past, coupons


def _budget(run: Run) -> Budget:
    p = run.plan
    if p.budget_total is None and p.budget_daily is None:
        return Budget(None, None)
    if run.dry_run:
        if run._dry_budget is None:
            run._dry_budget = _budget_from_ledger(run)
        return run._dry_budget
    return _budget_from_ledger(run)


def _budget_from_ledger(run: Run) -> Budget:
    spent = run.ledger.spend(run.plan.campaign)
    return Budget(run.plan.budget_total, run.plan.budget_daily, before=spent)


def _coupon_row(run: Run, key: str, user: str, name: str, due: datetime) -> tuple:
    r, tz = run.plan.resources[name], ZoneInfo(run.plan.timezone)
    if r.usable_for is not None:
        start, end = due, plus(due, r.usable_for.dur(), tz)
    else:
        start = datetime.combine(r.usable_from, datetime.min.time(), tzinfo=tz) if r.usable_from else due
        end = datetime.combine(r.usable_to + timedelta(days=1), datetime.min.time(), tzinfo=tz) \
            if r.usable_to else due + timedelta(days=3650)
    cid = "C" + hashlib.sha256(f"{key}/{name}".encode()).hexdigest()[:20]
    return (cid, key, run.plan.campaign, r.code, user, r.value, r.currency or run.plan.currency, r.min_spend,
            json.dumps(r.scope, ensure_ascii=False, default=str), "reserved", due, None,
            start.astimezone(UTC), end.astimezone(UTC), None)


@dataclass
class Pending:
    key: str
    user_id: str
    arm: str | None
    channel: str | None
    coupon_id: str | None
    recipient: Recipient
    cost: Decimal = Decimal(0)


@_timed("decide")
def decide_batch(run: Run, lo: int, hi: int) -> list[Pending]:
    """Decide users seq lo..hi-1 in one locked transaction; returns those to send now."""
    batch = recipients(run, lo, hi)
    if not batch:
        return []
    lg, p = run.ledger, run.plan
    users = [r.user_id for r in batch]
    with lg.decision():
        done: set[str] = set()
        if not run.dry_run:
            done = lg.decided_users(run.occ, run.key_prefix, users)
        past, coupons = _history(run, users)
        given = _journey_coupons(run, users)
        budget = _budget(run)
        out, deliveries, coupon_rows, outbox = [], [], [], []
        render_s = 0.0
        now = datetime.now(UTC)
        for r in batch:
            if r.user_id in done:
                continue
            key = run.key_prefix + r.user_id
            if bad_zone(p, r):
                run.unknown_zones += 1
            try:
                d = decide(p, r, past.get(r.user_id, []), coupons.get(r.user_id, []), budget, run.as_of)
            except Exception as exc:  # noqa: BLE001 (one user's bad row fails that user's delivery, not the batch)
                deliveries.append(_failed_row(run, key, r, None, None, f"data: {type(exc).__name__}", str(exc), now))
                continue
            run.counts[d.status] += 1
            if d.reason:
                run.reasons[f"{d.status}: {d.reason}"] += 1
            if d.status == Status.BUDGET_EXHAUSTED and len(run.left_out) < 20:
                run.left_out.append(r.user_id)
            if d.status in (Status.PENDING, Status.DEFERRED):
                run.cost += d.cost
            coupon_id, mine = None, []
            status, provider, sent_at, reason, error = d.status, None, None, d.reason, None
            try:
                for name in d.give:
                    if p.resources[name].kind == "coupon":
                        assert d.due_at is not None  # a decision that gives something says when it is due
                        mine.append(_coupon_row(run, key, r.user_id, name, d.due_at))
                        coupon_id = mine[-1][0]
                if status == Status.PENDING:
                    it = Pending(key, r.user_id, d.arm, d.channel, coupon_id, r)
                    if not run.dry_run and (d.channel is None or run.channel(d.channel).transactional):
                        # the outbox (or a grant without a message) is written in this same transaction
                        t0 = time.perf_counter()
                        msg, err = _message(run, it, _coupon_of_row(p, mine[-1]) if coupon_id
                                            else given.get(r.user_id))
                        render_s += time.perf_counter() - t0
                        if err is None:
                            status, sent_at = Status.SENT, now
                            if msg is not None:
                                provider = "outbox:" + key
                                outbox.append(_outbox_row(msg, now))
                            if coupon_id:
                                mine[-1] = _issued(mine[-1])
                            run.counts[Status.SENT] += 1
                        elif _last_channel(p, d.arm, d.channel):  # no fallback to try: this delivery failed
                            status, reason, error = Status.FAILED, err.reason, f"{d.channel}: {err}"
                            mine = [_void(c) for c in mine]
                            run.counts[Status.FAILED] += 1
                            run.reasons[f"failed: {reason}"] += 1
                        else:
                            out.append(it)
                    else:
                        out.append(it)
            except Exception as exc:  # noqa: BLE001 (as above: this user only)
                status, reason, error, provider, sent_at = Status.FAILED, f"data: {type(exc).__name__}", str(exc), None, None
                mine = [_void(c) for c in mine]
                run.counts[Status.FAILED] += 1
                run.reasons[f"failed: {reason}"] += 1
                out = [o for o in out if o.key != key]
                outbox = [o for o in outbox if o[0] != key]
            coupon_rows.extend(mine)
            deliveries.append((key, *run.occ, r.user_id, d.arm, d.channel, status, reason, d.cost, p.currency,
                               coupon_id, provider, run.plan_hash, run.run_id,
                               p.exclusive if d.status in (Status.PENDING, Status.DEFERRED) else None, d.due_at,
                               d.not_before, now, sent_at, 1 if sent_at else 0, error))
        if not run.dry_run:
            lg.record_decisions(deliveries, coupon_rows, outbox)
            for day, amount in budget.spent.items():
                if amount:
                    _add_spend(lg, p.campaign, day, amount)
    run.timings["render"] += render_s  # rendered here for the outbox; reported apart from deciding
    run.timings["decide"] -= render_s
    return out


def _failed_row(run: Run, key: str, r: Recipient, arm: str | None, channel: str | None, reason: str, error: str,
                now: datetime) -> tuple:
    """The ledger row of a recipient whose own data could not be decided on (the others go on)."""
    run.counts[Status.FAILED] += 1
    run.reasons[f"failed: {reason}"] += 1
    return (key, *run.occ, r.user_id, arm, channel, Status.FAILED, reason, Decimal(0), run.plan.currency, None, None,
            run.plan_hash, run.run_id, None, run.as_of, None, now, None, 0, error[:2000])


def _last_channel(plan: StepPlan, arm: str | None, channel: str | None) -> bool:
    """No channel follows this one in the arm's fallback chain."""
    chain = [c.channel for a in plan.arms if a.name == arm for c in a.notify]
    return channel not in chain or chain.index(channel) == len(chain) - 1


def _void(row: tuple) -> tuple:
    """A reserved coupon row whose message failed."""
    return (*row[:9], "void", *row[10:])


def _outbox_row(m: Message, now: datetime) -> tuple:
    return (m.key, m.campaign, m.step, m.occurrence, m.user_id, m.channel, m.address, m.subject, m.body, m.plan_hash,
            now)


def _coupon_of_row(plan: StepPlan, row: tuple) -> dict:
    name = next(n for n, r in plan.resources.items() if r.kind == "coupon" and r.code == row[3])
    return coupon_context({"name": name, "coupon_id": row[0], "issued_at": row[10], "usable_from": row[12],
                           "usable_to": row[13]}, plan)


def _issued(row: tuple) -> tuple:
    """A reserved coupon row, issued (its message went out in the same transaction)."""
    return (*row[:9], "issued", row[10], row[10], *row[12:])


def _add_spend(lg: Ledger, campaign: str, day: date, amount: Decimal) -> None:
    lg.add_spend(campaign, day, amount)


# ---------------------------------------------------------------- dispatch
def dispatch(run: Run, items: list[Pending]) -> None:
    """Send pending deliveries: outbox rows in the ledger transaction, other channels one by one with
    the row marked dispatching first (a crash leaves it to be resent with the same key)."""
    if run.dry_run or not items:
        return
    coupons = _coupons_of(run, [it.key for it in items if it.coupon_id])
    given = _journey_coupons(run, [it.user_id for it in items if not it.coupon_id])
    coupons.update({it.key: given[it.user_id] for it in items if not it.coupon_id and it.user_id in given})
    by_kind: dict[bool, list[tuple[Pending, Message | None, str | None]]] = {True: [], False: []}
    for it in items:
        msg, error = _message(run, it, coupons.get(it.key))
        transactional = it.channel is None or run.channel(it.channel).transactional
        by_kind[transactional].append((it, msg, error))
    _send_transactional(run, by_kind[True])
    _send_one_by_one(run, by_kind[False])


def _coupons_of(run: Run, keys: list[str]) -> dict[str, dict]:
    if not keys:
        return {}
    out = {}
    names = {r.code: n for n, r in run.plan.resources.items() if r.kind == "coupon"}
    for c in run.ledger.coupons_by_key(keys):
        out[c.idempotency_key] = coupon_context({"name": names.get(c.code), "coupon_id": c.coupon_id,
                                                 "issued_at": c.issued_at or c.reserved_at,
                                                 "usable_from": c.usable_from, "usable_to": c.usable_to}, run.plan)
    return out


def _journey_coupons(run: Run, users: list[str]) -> dict[str, dict]:
    """user -> the coupon an earlier step of this journey gave them, for a follow-up that speaks of it
    ("your coupon expires on ..."); the latest step's when several did."""
    p = run.plan
    if p.journey is None or not users or not any(r.kind == "coupon" for r in p.resources.values()):
        return {}
    keys = {s: [f"{p.campaign}/{s}/{p.occurrence}/{u}" for u in users] for s in p.journey.earlier}
    found = _coupons_of(run, [k for ks in keys.values() for k in ks])
    out = {}
    for s in p.journey.earlier:
        for u, k in zip(users, keys[s], strict=True):
            if k in found:
                out[u] = found[k]
    return out


class Failure(str):
    """Why a message could not be made (the ledger's `error`), with the short `reason`."""

    reason: str

    def __new__(cls, text: str, reason: str) -> Failure:
        self = super().__new__(cls, text)
        self.reason = reason
        return self


def _message(run: Run, it: Pending, coupon: dict | None) -> tuple[Message | None, Failure | None]:
    """One user's message; a template or a value of theirs that fails gives a Failure, never an exception."""
    if it.channel is None:
        return None, None
    ch = run.channel_plan(it.arm, it.channel)
    rd = run.renderer()
    try:
        subject, body = rd.render(ch, rd.context(it.user_id, it.recipient.fields, it.arm, coupon))
        address = it.recipient.fields.get(ch.address_field) if ch.address_field else None
        address = None if address is None else str(address)
    except RenderError as exc:
        return None, Failure(str(exc), exc.reason)
    except Exception as exc:  # noqa: BLE001 (this user's values: their message fails, not the batch)
        return None, Failure(f"{type(exc).__name__}: {exc}", f"data: {type(exc).__name__}")
    return Message(it.key, *run.occ, it.user_id, it.channel, address, subject,
                   body, run.plan_hash, {"arm": it.arm, "coupon_id": it.coupon_id}), None


def _send_transactional(run: Run, batch: list[tuple[Pending, Message | None, str | None]]) -> None:
    lg = run.ledger
    ok = [(it, m) for it, m, err in batch if err is None]
    now = datetime.now(UTC)
    keys = [it.key for it, _ in ok]
    lg.sent_to_outbox([_outbox_row(m, now) for _, m in ok if m is not None], keys, now)
    run.counts[Status.SENT] += len(keys)
    _fallback_many(run, [(it, err) for it, _, err in batch if err is not None])


class ChannelDown(Exception):
    """Several messages in a row failed transiently: the provider is down. The run stops; the
    deliveries not sent stay pending and the next run of the occurrence sends them."""


BREAKER = 5  # consecutive transient failures on one channel that stop the run


def _send_one_by_one(run: Run, batch: list[tuple[Pending, Message | None, str | None]]) -> None:
    lg = run.ledger
    keys = [it.key for it, _, _ in batch]
    if not keys:
        return
    lg.mark_dispatching(keys)
    streak: dict[str, list[tuple[Pending, str]]] = {}
    permanent: list[tuple[Pending, str]] = []  # moved to a fallback channel (or not) together, after the batch
    for it, msg, err in batch:
        if err is not None:
            permanent.append((it, err))
            continue
        assert it.channel is not None and msg is not None  # a message without an error was rendered for a channel
        try:
            provider_id = run.channel(it.channel).send(msg)
        except PermanentFailure as exc:
            streak.pop(it.channel, None)
            permanent.append((it, str(exc)))
            continue
        except TransientFailure as exc:
            failing = streak.setdefault(it.channel, [])
            failing.append((it, str(exc)))
            if len(failing) >= BREAKER:  # the provider, not these users: leave them for the next run
                lg.back_to_pending([f.key for f, _ in failing], str(exc))
                _fallback_many(run, permanent)
                raise ChannelDown(f"channel {it.channel}: {BREAKER} messages in a row failed ({exc}); "
                                  "the rest stay pending for the next run of this occurrence") from None
            continue
        for f, error in streak.pop(it.channel, []):  # the provider answers: those were real failures
            _fallback_or_fail(run, f, error, permanent=False)
        lg.mark_sent(it.key, datetime.now(UTC), provider_id)
        run.counts[Status.SENT] += 1
    for failing in streak.values():
        for f, error in failing:
            _fallback_or_fail(run, f, error, permanent=False)
    _fallback_many(run, permanent)


def _fallback_or_fail(run: Run, it: Pending, error: str, permanent: bool) -> None:
    """A permanent failure moves the delivery to the next channel of the arm's chain that the user may be
    reached on now (`_fallback_many`); a transient one, after the channel's own retries, failed it."""
    if permanent:
        _fallback_many(run, [(it, error)])
        return
    run.ledger.mark_failed([(it.key, "transient", f"{it.channel}: {error}")])
    run.counts[Status.FAILED] += 1
    run.reasons["failed: transient"] += 1


def _fallback_many(run: Run, failures: list[tuple[Pending, str]]) -> None:
    """Deliveries whose channel failed permanently: each goes to the first later channel of its arm's
    chain that passes the checks of this moment (`_recheck`), or is suppressed when later channels exist
    but none passes, or failed (`permanent`) when the chain has no later channel."""
    if not failures:
        return
    lg, p = run.ledger, run.plan
    last, moving = [], []
    for it, error in failures:
        chain = [c.channel for c in next(a for a in p.arms if a.name == it.arm).notify]
        if it.channel in chain and chain.index(it.channel) + 1 < len(chain):
            moving.append((it, f"{it.channel}: {error}"))
        else:  # a template failure says which limit (`template: time limit`), a provider's refusal `permanent`
            last.append((it, getattr(error, "reason", None) or "permanent", f"{it.channel}: {error}"))
    if last:
        lg.mark_failed([(it.key, reason, error) for it, reason, error in last])
        run.counts[Status.FAILED] += len(last)
        run.reasons.update(f"failed: {reason}" for _, reason, _ in last)
    dispatch(run, _recheck(run, moving, "fallback"))


# ---------------------------------------------------------------- re-checks at release and fallback
def _current(run: Run, items: list[Pending]) -> None:
    """Each item's address and consent as the warehouse holds them now: the plan's reach query for just
    these users (listed in a TEMP table of a read-only session). A plan stored before plans carried that
    query keeps the snapshot's values."""
    if not items or not run.plan.reach_sql:
        return
    wh = connect(run.data_url, read_only=True)
    try:
        wh.execute(f"CREATE TEMP TABLE {REACH} (user_id text)")
        wh.bulk_insert(REACH, ["user_id"], [(u,) for u in sorted({it.user_id for it in items})])
        cur = wh.execute(run.plan.reach_sql)
        names = [d[0] for d in cur.description]
        now = {str(row[0]): dict(zip(names, row, strict=True)) for row in cur.fetchall()}
    finally:
        wh.close()
    for it in items:
        row = now.get(it.user_id, {})
        r = it.recipient
        fields = {**r.fields, **{n[2:]: row.get(n) for n in names if n.startswith("u_")}}
        consent = {ch: bool(row.get(f"consent_{ch}")) for ch in r.consent}
        it.recipient = dataclasses.replace(r, fields=fields, consent=consent)


def _recheck(run: Run, items: list[tuple[Pending, str | None]], moment: str) -> list[Pending]:
    """The checks of the moment a message goes out after its decision: at `release` (after quiet hours;
    the whole chain of the arm) or at `fallback` (the channels after the failed one). A channel passes
    when the user consents to it and has an address NOW (`_current`), no cap is reached by the ledger's
    deliveries as they are now (the delivery's own row left out; its window reaches back from its due
    time) and the budget has room for a costlier channel. The delivery moves to the first channel that
    passes (pending), or is suppressed with every reason and the moment; a suppressed delivery's coupon
    is voided and its spend given back. items: (delivery, error of the failed channel or None).
    Returns the deliveries to dispatch."""
    if not items:
        return []
    lg, p = run.ledger, run.plan
    _current(run, [it for it, _ in items])
    zone = ZoneInfo(p.timezone)
    out: list[Pending] = []
    with lg.decision():
        keys = [it.key for it, _ in items]
        # at release, only rows still deferred: another run (a scheduled release beside the campaign's next
        # run) may have released them since they were read, and must not send them twice
        rows = lg.due_and_cost(keys, deferred_only=moment == "release")
        at = {k: min(run.as_of, due) for k, (due, _) in rows.items()}
        held: dict[str, dict[str, Past]] = {}
        for key, uid, d in _past(run, sorted({it.user_id for it, _ in items}), min(at.values(), default=run.as_of)):
            held.setdefault(uid, {})[key] = d
        budget = _budget_from_ledger(run)
        stay: list[str] = []
        for it, error in items:
            if it.key not in rows:
                continue
            due, cost = rows[it.key]
            if it.channel is None:  # a grant without a message (a local-time gift): nothing to re-check
                stay.append(it.key)
                out.append(it)
                continue
            arm = next(a for a in p.arms if a.name == it.arm)
            chain = [c.channel for c in arm.notify]
            now = arm.notify[chain.index(it.channel)]
            later = arm.notify if moment == "release" else arm.notify[chain.index(it.channel) + 1:]
            mine = held.setdefault(it.user_id, {})
            past = [d for k, d in mine.items() if k != it.key]
            day = due.astimezone(zone).date()
            why, reasons, chosen = None, [], None
            for ch in later:
                why = channel_block(ch, p, it.recipient, past, at[it.key])
                if why is None and ch.cost > now.cost:
                    why = budget.reserve(day, ch.cost - now.cost)
                if why is None:
                    chosen = ch
                    break
                reasons.append(f"{why} at {moment}")
            if chosen is not None:
                diff = chosen.cost - now.cost
                if chosen.channel == it.channel and error is None:
                    stay.append(it.key)  # the usual release: one statement for all of them below
                else:
                    lg.move_channel(it.key, chosen.channel, diff, due, error)
                if diff:
                    _add_spend(lg, p.campaign, day, diff)
                mine[it.key] = Past(p.campaign, chosen.channel, due, p.exclusive)
                if chosen.channel != it.channel:
                    run.reasons[f"{moment}: {it.channel} -> {chosen.channel}"] += 1
                out.append(dataclasses.replace(it, channel=chosen.channel))
                continue
            lg.suppress(it.key, "; ".join(reasons), error)
            if cost:
                _add_spend(lg, p.campaign, day, -cost)  # the reservation goes back to the budget
            mine.pop(it.key, None)
            run.counts[f"suppressed at {moment}"] += 1
            run.reasons[f"suppressed: {'; '.join(reasons)}"] += 1
        if stay:
            lg.release_pending(stay)
    return out


def send_batch(run: Run, lo: int, hi: int) -> None:
    pending = decide_batch(run, lo, hi)
    t0 = time.perf_counter()
    dispatch(run, pending)
    run.timings["dispatch"] += time.perf_counter() - t0


# ---------------------------------------------------------------- recover and release
def _load_pending(run: Run, rows: list[PendingRow]) -> list[Pending]:
    return [Pending(r.idempotency_key, r.user_id, r.arm, r.channel, r.coupon_id,
                    _recipient(run.plan, r.seq, r.user_id, r.held_out, r.data)) for r in rows]


def recover(run: Run) -> int:
    """Deliveries an earlier, killed attempt left pending or dispatching: sent again, same key."""
    if run.dry_run:
        return 0
    _interrupt_dead(run)
    items = _load_pending(run, run.ledger.unsent(run.occ))
    dispatch(run, items)
    return len(items)


def release(run: Run) -> int:
    """Deferred deliveries of this campaign (any step or occurrence) whose quiet hours are over at the
    as-of time: rendered with the plan they were decided under, then sent. A user whose zone is quiet
    again at this time keeps waiting, with a new not_before."""
    if run.dry_run:
        return 0
    lg = run.ledger
    hashes = lg.deferred_plan_hashes(run.plan.campaign, run.as_of)
    released = 0
    for h in hashes:
        text = lg.plan_text(h)
        plan = StepPlan.model_validate_json(text)
        sub = Run(plan, lg, run.data_url, run.as_of, channel_config=run.channel_config, run_id=run.run_id,
                  plan_hash=h)  # the hash the deliveries were decided under, whatever this version computes
        sub._channels = run._channels
        items = _load_pending(sub, lg.deferred_due_of_plan(h, run.as_of))
        ready = []
        for it in items:
            later = quiet_until(plan.quiet, run.as_of, user_zone(plan, it.recipient)) if it.channel else None
            if later is not None:
                lg.defer(it.key, later)
            else:
                ready.append(it)
        go = _recheck(sub, [(it, None) for it in ready], "release")
        dispatch(sub, go)
        run.touched.update(sub.touched)
        for k, n in sub.counts.items():
            run.counts[k] += n
        run.counts["released"] += len(go)
        run.reasons.update(sub.reasons)
        released += len(go)
    return released


def releases(lg: Ledger, campaign: str, after: datetime) -> list[datetime]:
    """When this campaign's deferred deliveries (quiet hours, local-time sends) fall due after `after`: one
    time per distinct minute (rounded up: runs are scheduled to the minute), for release runs."""
    return sorted({max(ceil_minute(t), after.astimezone(UTC)) for t in lg.deferred_times(campaign)})


def release_run(lg: Ledger, campaign: str, data_url: str, as_of: datetime, channels: dict) -> Run | None:
    """A run that only releases this campaign's deferred deliveries due at `as_of` (a scheduled release, or
    `camp run --release`): nothing is decided anew. Its record in camp_runs carries the step of the plan
    the first of them was decided under and the occurrence `release@<as-of minute>`. None: nothing is due."""
    h = lg.first_deferred_plan_hash(campaign, as_of)
    if h is None:
        return None
    plan = StepPlan.model_validate_json(lg.plan_text(h))
    label = plan.model_copy(update={"occurrence": f"release@{as_of.astimezone(UTC):%Y-%m-%dT%H:%MZ}", "next": None})
    return Run(label, lg, data_url, as_of, channel_config=channels, plan_hash=h)


def release_summary(run: Run) -> dict:
    """What a release-only run did: counts of this run, the follow-ups and further releases it made due."""
    p = run.plan
    return {"campaign": p.campaign, "step": p.step, "occurrence": p.occurrence, "release": True,
            "run_id": run.run_id, "dry_run": False, "audience": 0, "statuses": {}, "reasons": dict(run.reasons),
            "cost": "0", "this_run": dict(run.counts), "currency": p.currency, "timezone": p.timezone,
            "follow_ups": [{"step": s, "occurrence": o, "at": t.isoformat()} for s, o, t in
                           journey.follow_ups(run.ledger, p.campaign, run.touched, p.timezone)],
            "releases": [t.isoformat() for t in releases(run.ledger, p.campaign, run.as_of)]}


def run_through(run: Run, batch: int) -> dict:
    """The flow's stages for one Run in this process, without Prefect (tests, benchmarks): record the run,
    snapshot, recover, release, decide and send batch by batch, summarize, finish. Returns the summary."""
    start(run)
    lo, hi = snapshot(run)
    recover(run)
    release(run)
    for a in range(lo, hi, batch):
        send_batch(run, a, min(a + batch, hi))
    summary = summarize(run, hi - lo)
    finish(run, summary)
    return summary


# ---------------------------------------------------------------- summary
@_timed("summary")
def summarize(run: Run, audience: int) -> dict:
    p = run.plan
    out: dict = {"campaign": p.campaign, "step": p.step, "occurrence": p.occurrence, "plan_hash": run.plan_hash,
                 "run_id": run.run_id, "audience": audience, "dry_run": run.dry_run}
    if run.dry_run:
        out["statuses"] = dict(run.counts)
        out["reasons"] = dict(run.reasons)
        out["cost"] = str(run.cost)
    else:
        rows = run.ledger.status_counts(run.occ)
        statuses: Counter = Counter()
        reasons: Counter = Counter()
        cost = Decimal(0)
        for status, reason, n, c in rows:
            statuses[status] += n
            if reason:
                reasons[f"{status}: {reason}"] += n
            if status in COUNTED:
                cost += Decimal(c or 0)
        out["statuses"] = dict(statuses)
        out["reasons"] = dict(reasons)
        out["cost"] = str(cost)
        out["this_run"] = dict(run.counts)
    if p.budget_total is not None or p.budget_daily is not None:
        b = _budget_from_ledger(run) if not run.dry_run else (run._dry_budget or _budget_from_ledger(run))
        day = run.as_of.astimezone(ZoneInfo(p.timezone)).date()
        out["budget_left"] = {"total": str(b.total_left()) if b.total_left() is not None else None,
                              "today": str(b.daily_left(day)) if b.daily_left(day) is not None else None}
    if run.left_out:
        out["left_out_by_budget"] = {"first_users": run.left_out,
                                     "rule": "recipients are served in user id order; those after the budget "
                                             "ran out get budget_exhausted"}
    if not run.dry_run:
        out["follow_ups"] = [{"step": s, "occurrence": o, "at": t.isoformat()}
                             for s, o, t in journey.follow_ups(run.ledger, p.campaign, run.touched, p.timezone)]
        out["releases"] = [t.isoformat() for t in releases(run.ledger, p.campaign, run.as_of)]
    if run.unknown_zones:
        out["unknown_time_zones"] = run.unknown_zones
    out["currency"] = p.currency
    out["timezone"] = p.timezone
    out["forecast"] = forecast_basis(p)
    out["timings"] = {k: round(v, 3) for k, v in run.timings.items()}
    return out


def forecast_basis(p: StepPlan) -> dict[str, str]:
    """What the cost is made of: a forecast until redemptions are known. resource -> expected redemption
    (the fraction of issued value counted: the campaign's `expect redemption`, else all of it)."""
    return {name: str((r.forecast_cost / r.value).quantize(Decimal("0.0001")))
            for name, r in sorted(p.resources.items()) if r.kind in ("coupon", "red_packet") and r.value}
