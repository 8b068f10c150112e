"""Deliveries about to go out after their decision -> moved to the first channel that passes the checks
of this moment, or suppressed: at `release` (after quiet hours; the whole chain of the arm) or at
`fallback` (the channels after the one that failed permanently).

A channel passes when the user consents to it and has an address NOW (the warehouse's reach query for
just these users), no cap is reached by the ledger's deliveries as they are now (the delivery's own row
left out; its window reaches back from its due time) and the budget has room for a costlier channel.
A suppressed delivery's coupon is voided and its spend given back.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from zoneinfo import ZoneInfo

from compiler.sql import REACH
from runtime.context import Pending, Run
from runtime.decide import Past, channel_block
from runtime.history import ledger_budget, past_deliveries
from runtime.warehouse import connect


def recheck(run: Run, items: Sequence[tuple[Pending, str | None]], moment: str) -> list[Pending]:
    """items: (delivery, error of the failed channel or None). The delivery moves to the first channel that
    passes (pending), or is suppressed with every reason and the moment. Returns the deliveries to
    dispatch."""
    if not items:
        return []
    ctx, n = run.ctx, run.counters
    lg, p = ctx.ledger, ctx.plan
    _current(run, [it for it, _ in items])
    zone = ZoneInfo(p.timezone)
    out: list[Pending] = []
    with lg.decision():
        keys = [it.key for it, _ in items]
        # at release, only rows still deferred: another run (a scheduled release beside the campaign's next
        # run) may have released them since they were read, and must not send them twice
        rows = lg.due_and_cost(keys, deferred_only=moment == "release")
        at = {k: min(ctx.as_of, due) for k, (due, _) in rows.items()}
        held: dict[str, dict[str, Past]] = {}
        for key, uid, d in past_deliveries(ctx, sorted({it.user_id for it, _ in items}),
                                           min(at.values(), default=ctx.as_of)):
            held.setdefault(uid, {})[key] = d
        budget = ledger_budget(ctx)
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
                    lg.add_spend(p.campaign, day, diff)
                mine[it.key] = Past(p.campaign, chosen.channel, due, p.exclusive)
                if chosen.channel != it.channel:
                    n.reasons[f"{moment}: {it.channel} -> {chosen.channel}"] += 1
                out.append(dataclasses.replace(it, channel=chosen.channel))
                continue
            lg.suppress(it.key, "; ".join(reasons), error)
            if cost:
                lg.add_spend(p.campaign, day, -cost)  # the reservation goes back to the budget
            mine.pop(it.key, None)
            n.counts[f"suppressed at {moment}"] += 1
            n.reasons[f"suppressed: {'; '.join(reasons)}"] += 1
        if stay:
            lg.release_pending(stay)
    return out


def _current(run: Run, items: list[Pending]) -> None:
    """Each item's address and consent as the warehouse holds them now: the plan's reach query for just
    these users (listed in a TEMP table of a read-only session). A plan stored before plans carried that
    query keeps the snapshot's values."""
    if not items or not run.ctx.plan.reach_sql:
        return
    wh = connect(run.ctx.data_url, read_only=True)
    try:
        wh.execute(f"CREATE TEMP TABLE {REACH} (user_id text)")
        wh.bulk_insert(REACH, ["user_id"], [(u,) for u in sorted({it.user_id for it in items})])
        cur = wh.execute(run.ctx.plan.reach_sql)
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
