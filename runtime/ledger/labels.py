"""Materialised labels in the ledger: the history intervals per user and label (`camp_label_history`) and the
materialisations made (`camp_materializations`).

A materialisation of one name at one as-of time is one transaction: the labels of that time are staged in a
TEMP table of the ledger session; every open interval whose user no longer has that label is closed
(valid_to = the as-of time); every staged label the user had no open interval of opens one. A label that does
not change keeps its one open row, however many days are materialised. The history only grows forward: an
as-of time at or before the name's latest materialisation changes nothing (`record_labels` says which).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from runtime.ledger.connection import Connection

if TYPE_CHECKING:
    import pandas as pd

_LABELS_LOCK = 7_262_005  # pg_advisory_xact_lock: one materialisation writes the history at a time (not a run's lock)
STAGED = "camp_labels_now"  # a TEMP table of the ledger session: (user_id, label) at the as-of time
HISTORY_COLS = ["name", "user_id", "label", "valid_from", "valid_to"]


@dataclass(frozen=True)
class Recorded:
    """What one materialisation of one name did. `state`: "recorded"; "done" (this as-of time was materialised
    already: nothing changed); "later" (a later one was: the history does not go back, nothing changed)."""

    name: str
    as_of: datetime
    state: str
    users: int = 0
    opened: int = 0
    closed: int = 0


class LabelLedger(Connection):
    def latest_materialization(self, name: str) -> datetime | None:
        return self.one("SELECT max(as_of) FROM camp_materializations WHERE name = ?", (name,))

    def history_reach(self, names: list[str]) -> dict[str, datetime]:
        """The earliest as-of time materialised per name (names never materialised are missing)."""
        return {str(n): t for n, t in self.rows(
            f"SELECT name, min(as_of) FROM camp_materializations WHERE {self.in_list('name')} GROUP BY name",
            (names,))}

    def record_labels(self, name: str, as_of: datetime, labels: pd.DataFrame) -> Recorded:
        """`labels`: user_id, label (no NULL labels) of every labelled user at `as_of`; one transaction."""
        with self.transaction():
            self.backend.lock_transaction(self, _LABELS_LOCK)  # two materialisations meeting: one waits, then sees
            latest = self.latest_materialization(name)
            if latest is not None and as_of <= latest:
                return Recorded(name, as_of, "done" if as_of == latest else "later")
            self.backend.fresh_temp_table(self.db.conn, STAGED, "user_id text, label text")
            self.bulk_insert(STAGED, ["user_id", "label"], labels)
            changed = (f"name = ? AND valid_to IS NULL AND NOT EXISTS (SELECT 1 FROM {STAGED} s WHERE "
                       "s.user_id = camp_label_history.user_id AND s.label = camp_label_history.label)")
            closed = self.backend.changed(self.execute(f"UPDATE camp_label_history SET valid_to = ? WHERE {changed}",
                                                       (as_of, name)))
            opened = self.backend.changed(self.execute(
                "INSERT INTO camp_label_history (name, user_id, label, valid_from, valid_to) "
                f"SELECT ?, s.user_id, s.label, ?, NULL FROM {STAGED} s WHERE NOT EXISTS (SELECT 1 FROM "
                "camp_label_history h WHERE h.name = ? AND h.valid_to IS NULL AND h.user_id = s.user_id AND "
                "h.label = s.label)", (name, as_of, name)))
            self.execute("INSERT INTO camp_materializations VALUES (?, ?, ?, ?, ?, ?)",
                         (name, as_of, len(labels), opened, closed, datetime.now(UTC)))
            self.execute(f"DELETE FROM {STAGED}")
        return Recorded(name, as_of, "recorded", len(labels), opened, closed)

    def history_frame(self, since: dict[str, datetime], until: datetime) -> pd.DataFrame:
        """HISTORY_COLS of the intervals of these names that overlap [since[name], until]: what an audience
        query at `until` reading back to `since` can see."""
        parts = " OR ".join("(name = ? AND valid_from <= ? AND (valid_to IS NULL OR valid_to > ?))" for _ in since)
        params = [x for name, t in since.items() for x in (name, until, t)]
        return self.frame(f"SELECT {', '.join(HISTORY_COLS)} FROM camp_label_history WHERE {parts}", params)

    def label_counts(self, name: str, at: datetime) -> dict[str, int]:
        """Users per label of `name` as materialised at `at`."""
        return {str(lab): int(n) for lab, n in self.rows(
            "SELECT label, count(*) FROM camp_label_history WHERE name = ? AND valid_from <= ? AND "
            "(valid_to IS NULL OR valid_to > ?) GROUP BY label", (name, at, at))}
