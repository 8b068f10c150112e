"""A simulation's scratch ledger: the Ledger, with what `camp simulate` writes differently, kept out of the real one.

    ScratchLedger(url): a Ledger whose stopped decisions go apart (record_stopped), whose run summaries count them
    (status_counts), and whose snapshots hold only the recipients read back (add_recipients, fill_payloads)

runtime.sim_ledger opens it (`open_scratch`) on a scratch copy of the real ledger; nothing else writes one.

Stopped decisions (suppressed, budget exhausted) are kept apart, unkeyed: nothing reads them back one by one (caps
count only COUNTED statuses; no simulated batch is decided twice), only the report and the run summaries. Each
decision is written once (STOPPED_DECISIONS) and the users it stopped as (run, decision, user) (STOPPED_USERS); the
view STOPPED_TABLE joins them into STOPPED_COLS.

A first step's snapshot keeps only the recipients left pending or deferred, with their data: the ones a release or
a recovery reads back (`Ledger._pending` joins them). The others (stopped, or sent in the deciding transaction) are
never read from it, and writing them was most of a simulated month's snapshot rows; the occurrence's size is still
recorded (camp_snapshots), so seq numbers and reruns are as in the real ledger. A follow-up's parts keep every
recipient (without data), as the journey reads which users a part already took (`sent_untaken`).
"""

from __future__ import annotations

from runtime.ledger.rows import StatusCount
from runtime.ledger.store import RECIPIENT_COLS, Ledger, Occurrence

STOPPED_TABLE = "camp_sim_stopped"
STOPPED_USERS = "camp_sim_stopped_users"
STOPPED_DECISIONS = "camp_sim_stopped_decisions"
STOPPED_SCHEMA = [("run_id", "text NOT NULL"), ("campaign", "text NOT NULL"), ("step", "text NOT NULL"),
                  ("occurrence", "text NOT NULL"), ("user_id", "text NOT NULL"), ("arm", "text"), ("channel", "text"),
                  ("status", "text NOT NULL"), ("reason", "text"), ("cost", "decimal(18, 4) NOT NULL"),
                  ("due_at", "timestamptz NOT NULL")]  # the view's columns and types
STOPPED_COLS = [name for name, _ in STOPPED_SCHEMA]
_DECISION_SCHEMA = [("run_id", "text NOT NULL"), ("decision", "bigint NOT NULL")] + \
    [(c, t) for c, t in STOPPED_SCHEMA if c not in ("run_id", "user_id")] + [("users", "bigint NOT NULL")]
_STOPPED_DDL = [
    f"CREATE TABLE IF NOT EXISTS {STOPPED_DECISIONS} ({', '.join(f'{c} {t}' for c, t in _DECISION_SCHEMA)})",
    f"CREATE TABLE IF NOT EXISTS {STOPPED_USERS} (run_id text NOT NULL, decision bigint NOT NULL, "
    "user_id text NOT NULL)",
    f"CREATE OR REPLACE VIEW {STOPPED_TABLE} AS SELECT {', '.join(STOPPED_COLS)} FROM {STOPPED_USERS} "
    f"JOIN {STOPPED_DECISIONS} USING (run_id, decision)"]


class ScratchLedger(Ledger):
    """The ledger a simulation writes (see the module's text); `prepare` makes its tables."""

    def __init__(self, url: str):
        super().__init__(url)
        self._stopped_next = 0  # the next decision number record_stopped gives (with the run id, a decision's key)
        self._sparse: set[Occurrence] = set()  # snapshots holding only the recipients read back

    def prepare(self) -> None:
        """The stopped decisions' tables, and the snapshot table without its primary key."""
        for ddl in _STOPPED_DDL:
            self.execute(ddl)
        self._unkeyed_snapshot()

    def _unkeyed_snapshot(self) -> None:
        """The snapshot table without its primary key. Keeping that index was half the cost of writing a snapshot
        (a simulated month writes millions of recipients), and it guards nothing here: one process writes the
        scratch ledger, and the engine never writes a (campaign, step, occurrence, seq) twice, since it reads the
        snapshot's size inside the decision lock first (runtime.snapshot). Same columns, same rows, same order, the
        same NOT NULLs; nothing reads it by that key alone."""
        keyed = self.rows("SELECT count(*) FROM duckdb_constraints() WHERE table_name = 'camp_recipients' "
                          "AND constraint_type = 'PRIMARY KEY'")[0][0]
        if not keyed:
            return
        columns = ", ".join(f'"{name}" {kind}{"" if nullable == "YES" else " NOT NULL"}'
                            for name, kind, nullable in self.rows(
                                "SELECT column_name, data_type, is_nullable FROM information_schema.columns WHERE "
                                "table_name = 'camp_recipients' AND table_schema = 'main' ORDER BY ordinal_position"))
        with self.transaction():
            self.execute(f"CREATE TABLE camp_recipients_unkeyed ({columns})")
            self.execute("INSERT INTO camp_recipients_unkeyed SELECT * FROM camp_recipients ORDER BY campaign, step, "
                         "occurrence, seq")
            self.execute("DROP TABLE camp_recipients")
            self.execute("ALTER TABLE camp_recipients_unkeyed RENAME TO camp_recipients")

    # ------------------------------------------------------------ snapshots
    def add_recipients(self, occ: Occurrence, plan_hash: str, lo: int, users: list[str], held_out: list[bool],
                       data: list[str] | str, part: str | None) -> None:
        """As the Ledger's, but a first step's recipients are left for `fill_payloads` to write, those read back
        only; the snapshot's size is recorded all the same."""
        if part is not None:
            super().add_recipients(occ, plan_hash, lo, users, held_out, data, part)
            return
        self._sparse.add(occ)
        self._snapshot_taken(occ, plan_hash, lo, len(users), part)

    def fill_payloads(self, occ: Occurrence, rows: list[tuple[int, str, bool, str]]) -> None:
        """The snapshot rows of these (seq, user, held out, data) recipients, the ones read back: written now to a
        first step's snapshot, or their data to a follow-up part's rows written without it. Call it inside
        `decision()`."""
        if not rows:
            return
        if occ in self._sparse:
            self.insert_columns("camp_recipients", dict(zip(RECIPIENT_COLS, (
                *([v] * len(rows) for v in occ), *(list(c) for c in zip(*rows, strict=True))), strict=True)), len(rows))
            return
        self.backend.fresh_temp_table(self.db.conn, "camp_fill", "seq bigint, data text")
        self.bulk_insert("camp_fill", ["seq", "data"], [(seq, data) for seq, _, _, data in rows])
        self.execute("UPDATE camp_recipients SET data = f.data FROM camp_fill f WHERE camp_recipients.campaign = ? "
                     "AND camp_recipients.step = ? AND camp_recipients.occurrence = ? AND camp_recipients.seq = f.seq",
                     occ)

    # ------------------------------------------------------------ stopped decisions
    def record_stopped(self, run_id: str, occ: Occurrence, alike: list[tuple[tuple, list[str]]]) -> None:
        """A simulated batch's stopped decisions: each decision (arm, channel, status, reason, cost, due_at) once,
        and the users it stopped as (run, decision, user) (a batch has a few dozen decisions; a frame of whole rows
        was a tenth of a simulated week)."""
        if not alike:
            return
        import numpy as np
        import pandas as pd

        first = self._stopped_next
        self._stopped_next += len(alike)
        self.bulk_insert(STOPPED_DECISIONS, [c for c, _ in _DECISION_SCHEMA],
                         [(run_id, first + k, *occ, *decision, len(users))
                          for k, (decision, users) in enumerate(alike)])
        ids = np.repeat(np.arange(first, first + len(alike), dtype=np.int64), [len(users) for _, users in alike])
        self.bulk_insert(STOPPED_USERS, ["run_id", "decision", "user_id"], pd.DataFrame(
            {"run_id": run_id, "decision": ids, "user_id": [u for _, users in alike for u in users]}))

    def status_counts(self, occ: Occurrence) -> list[StatusCount]:
        """The occurrence's deliveries per (status, reason), a stopped decision counting its users."""
        return [StatusCount(*r) for r in self.rows(
            "SELECT status, reason, sum(n), sum(cost) FROM (SELECT status, reason, 1 AS n, cost FROM "
            "camp_deliveries WHERE campaign = ? AND step = ? AND occurrence = ? UNION ALL SELECT status, reason, "
            f"users, cost * users FROM {STOPPED_DECISIONS} WHERE campaign = ? AND step = ? AND occurrence = ?) "
            "GROUP BY status, reason ORDER BY status, reason", (*occ, *occ))]
