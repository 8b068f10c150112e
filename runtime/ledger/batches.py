"""The batches of one run spread over parallel workers (camp_batches, migration 10): listed once after the
audience is resolved, claimed one at a time with a lease, marked done with the claiming worker's counts.

    list_batches(lg, run_id, lo, hi, size)      the run's batches [lo, hi) in steps of size, open
    claim(lg, run_id, worker, lease_s)          the next open batch, or one whose lease has ended -> Claim | None
    finish_batch(lg, run_id, lo, counts)        done, the worker's counts merged into the row's
    batch_states(lg, run_id)                    state -> how many batches; results(lg, run_id): the counts
    unsent_in(lg, occ, lo, hi)                  what a killed claimant left pending or dispatching in [lo, hi)

Claims are `UPDATE ... WHERE lo = (SELECT ... FOR UPDATE SKIP LOCKED) RETURNING`: two workers never take the same
row in the same instant, and a worker never waits for another's claim. A lease that ended is not enough to take a
batch over from a worker that is alive but slow: the claimant also holds a PostgreSQL session lock on the batch
(`hold_batch`), which the server drops when its process dies, and a batch is taken over only when that lock is
free. Only PostgreSQL ledgers have parallel workers (a DuckDB file has one writer process).
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, NamedTuple

from runtime.ledger.rows import PendingRow
from runtime.ledger.status import BatchState, Status

if TYPE_CHECKING:
    from runtime.ledger.store import Ledger, Occurrence

_BATCH_LOCK = 7_262_004  # pg_advisory_lock(_BATCH_LOCK, batch key): held by the worker deciding that batch


class Claim(NamedTuple):
    lo: int
    hi: int
    attempts: int  # 1: first claim; more: taken over from a worker whose lease ended (it may have left work)


def list_batches(lg: Ledger, run_id: str, lo: int, hi: int, size: int) -> int:
    """The run's recipients [lo, hi) as open batches of `size`; how many. Listing twice changes nothing."""
    rows = [(run_id, a, min(a + size, hi), BatchState.OPEN, None, None, 0, None, None) for a in range(lo, hi, size)]
    with lg.transaction():
        if lg.one("SELECT count(*) FROM camp_batches WHERE run_id = ?", (run_id,)) == 0 and rows:
            lg.bulk_insert("camp_batches", ["run_id", "lo", "hi", "state", "worker", "lease_until", "attempts",
                                            "done_at", "counts"], rows)
    return len(rows)


def _key(run_id: str, lo: int) -> int:
    return int.from_bytes(hashlib.sha256(f"{run_id}:{lo}".encode()).digest()[:4], "big", signed=True)


def claim(lg: Ledger, run_id: str, worker: str, lease_s: float) -> Claim | None:
    """The next batch for `worker`, held by it (its session lock taken) until `release_batch`; None when every
    batch is done or claimed by a live worker."""
    skipped: list[int] = []
    while True:
        now = datetime.now(UTC)
        with lg.transaction():
            row = lg.rows(
                f"UPDATE camp_batches SET state = '{BatchState.CLAIMED}', worker = ?, lease_until = ?, "
                "attempts = attempts + 1 WHERE run_id = ? AND lo = (SELECT lo FROM camp_batches WHERE run_id = ? "
                f"AND (state = '{BatchState.OPEN}' OR (state = '{BatchState.CLAIMED}' AND lease_until < ?)) "
                f"AND NOT ({lg.in_list('lo')}) ORDER BY lo LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING lo, hi, attempts",
                (worker, now + timedelta(seconds=lease_s), run_id, run_id, now, skipped or [-1]))
        if not row:
            return None
        c = Claim(int(row[0][0]), int(row[0][1]), int(row[0][2]))
        if lg.one("SELECT pg_try_advisory_lock(?, ?)", (_BATCH_LOCK, _key(run_id, c.lo))):
            return c
        skipped.append(c.lo)  # its first claimant is alive, only slow: it keeps the batch (a fresh lease)


def release_batch(lg: Ledger, run_id: str, lo: int) -> None:
    lg.execute("SELECT pg_advisory_unlock(?, ?)", (_BATCH_LOCK, _key(run_id, lo)))


def finish_batch(lg: Ledger, run_id: str, lo: int, counts: dict) -> None:
    """The batch done; `counts` (what this worker decided of it) merged with those of earlier claimants."""
    with lg.transaction():
        old = lg.one("SELECT counts FROM camp_batches WHERE run_id = ? AND lo = ? FOR UPDATE", (run_id, lo))
        merged = merge_counts(json.loads(old) if old else {}, counts)
        lg.execute(f"UPDATE camp_batches SET state = '{BatchState.DONE}', done_at = ?, counts = ? "
                   "WHERE run_id = ? AND lo = ?", (datetime.now(UTC), json.dumps(merged), run_id, lo))


def merge_counts(a: dict, b: dict) -> dict:
    """Two workers' counts added up: {"counts": {status: n}, "reasons": {..}, "cost": "Decimal text",
    "left_out": [first users left out by the budget], "unknown_zones": n}."""
    from decimal import Decimal

    out: dict = {"counts": dict(a.get("counts", {})), "reasons": dict(a.get("reasons", {}))}
    for part in ("counts", "reasons"):
        for k, v in b.get(part, {}).items():
            out[part][k] = out[part].get(k, 0) + v
    out["cost"] = str(Decimal(a.get("cost", "0")) + Decimal(b.get("cost", "0")))
    out["left_out"] = (a.get("left_out", []) + b.get("left_out", []))[:20]
    out["unknown_zones"] = a.get("unknown_zones", 0) + b.get("unknown_zones", 0)
    return out


def batch_states(lg: Ledger, run_id: str) -> dict[str, int]:
    return {s: int(n) for s, n in lg.rows("SELECT state, count(*) FROM camp_batches WHERE run_id = ? GROUP BY state",
                                          (run_id,))}


def batch_rows(lg: Ledger, run_id: str) -> list[tuple[int, int, str, str | None, int]]:
    """(lo, hi, state, worker, attempts) of each batch, in order."""
    return [(int(a), int(b), s, w, int(n)) for a, b, s, w, n in lg.rows(
        "SELECT lo, hi, state, worker, attempts FROM camp_batches WHERE run_id = ? ORDER BY lo", (run_id,))]


def results(lg: Ledger, run_id: str) -> list[dict]:
    return [json.loads(c) for (c,) in lg.rows("SELECT counts FROM camp_batches WHERE run_id = ? AND counts IS NOT "
                                              "NULL ORDER BY lo", (run_id,))]


def unsent_in(lg: Ledger, occ: Occurrence, lo: int, hi: int) -> list[PendingRow]:
    """Deliveries of the occurrence's users seq lo..hi-1 left pending or dispatching (by a killed claimant)."""
    return [PendingRow(*r) for r in lg.rows(
        "SELECT d.idempotency_key, d.user_id, d.arm, d.channel, d.coupon_id, r.seq, r.held_out, r.data "
        "FROM camp_recipients r JOIN camp_deliveries d ON r.campaign = d.campaign AND r.step = d.step "
        "AND r.occurrence = d.occurrence AND r.user_id = d.user_id WHERE r.campaign = ? AND r.step = ? "
        f"AND r.occurrence = ? AND r.seq >= ? AND r.seq < ? AND d.status IN ('{Status.PENDING}', "
        f"'{Status.DISPATCHING}')", (*occ, lo, hi))]
