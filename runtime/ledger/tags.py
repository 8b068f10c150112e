"""Manual tags in the ledger (migration 7): who holds each tag now (`camp_manual_tags`) and every change with
who made it, when, why and from where (`camp_tag_audit`, one row per user the change named).

A change is one transaction: the users who get (or lose) the tag and its audit rows are written together or
not at all. On PostgreSQL it holds an advisory lock, so two changes at once (two ops tagging the same user) run
one after the other and the second finds the first's rows; a DuckDB file has one writing process. Adding a tag a user already holds writes no second row, only an audit row saying it was already
there; removing one a user does not hold, an audit row saying it was not there.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from runtime.ledger.connection import Connection
from runtime.ledger.status import TagAction, TagEffect

_TAG_LOCK = 7_262_003  # pg_advisory lock id of tag changes: two at once see each other's rows (connection.py has 1, 2)
AUDIT_COLS = ["change_id", "seq", "tag", "user_id", "action", "effect", "actor", "changed_at", "reason", "source"]


@dataclass(frozen=True)
class TagChange:
    """What one `camp tag add|remove` did: its id, and the users it changed or found as they were."""

    change_id: str
    changed: list[str]  # added (add) or removed (remove)
    unchanged: list[str]  # already there (add) or not there (remove)


@dataclass(frozen=True)
class TagHolder:
    user_id: str
    added_at: datetime
    added_by: str


@dataclass(frozen=True)
class TagEvent:
    """One audit row."""

    change_id: str
    user_id: str
    action: str
    effect: str
    actor: str
    at: datetime
    reason: str | None
    source: str


class TagLedger(Connection):
    def add_tag(self, tag: str, users: list[str], actor: str, at: datetime, reason: str | None,
                source: str) -> TagChange:
        """Give the tag to `users` (distinct, in the order given) in one transaction."""
        change = str(uuid.uuid4())
        with self.transaction():
            self.backend.lock_transaction(self, _TAG_LOCK)
            held = self._holders(tag)
            new = [u for u in users if u not in held]
            self.bulk_insert("camp_manual_tags", ["tag", "user_id", "added_at", "added_by", "change_id"],
                             [(tag, u, at, actor, change) for u in new])
            self._audit(change, tag, TagAction.ADD, [(u, TagEffect.ALREADY if u in held else TagEffect.ADDED)
                                                     for u in users], actor, at, reason, source)
        return TagChange(change, new, [u for u in users if u in held])

    def remove_tag(self, tag: str, users: list[str] | None, actor: str, at: datetime, reason: str | None,
                   source: str) -> TagChange:
        """Take the tag from `users` (None: from everyone who holds it) in one transaction."""
        change = str(uuid.uuid4())
        with self.transaction():
            self.backend.lock_transaction(self, _TAG_LOCK)
            held = self._holders(tag)
            named = sorted(held) if users is None else users
            gone = [u for u in named if u in held]
            if users is None:
                self.execute("DELETE FROM camp_manual_tags WHERE tag = ?", (tag,))
            elif gone:
                self.execute(f"DELETE FROM camp_manual_tags WHERE tag = ? AND {self.in_list('user_id')}", (tag, gone))
            self._audit(change, tag, TagAction.REMOVE, [(u, TagEffect.REMOVED if u in held else TagEffect.ABSENT)
                                                        for u in named], actor, at, reason, source)
        return TagChange(change, gone, [u for u in named if u not in held])

    def _holders(self, tag: str) -> set[str]:
        return {u for (u,) in self.rows("SELECT user_id FROM camp_manual_tags WHERE tag = ?", (tag,))}

    def _audit(self, change: str, tag: str, action: TagAction, effects: list[tuple[str, TagEffect]], actor: str,
               at: datetime, reason: str | None, source: str) -> None:
        self.bulk_insert("camp_tag_audit", AUDIT_COLS, [(change, i, tag, u, str(action), str(effect), actor, at,
                                                         reason, source) for i, (u, effect) in enumerate(effects)])

    def tag_holders(self, tag: str) -> list[TagHolder]:
        """Who holds the manual tag now, by user id."""
        return [TagHolder(u, a, b) for u, a, b in self.rows(
            "SELECT user_id, added_at, added_by FROM camp_manual_tags WHERE tag = ? ORDER BY user_id", (tag,))]

    def tag_history(self, tag: str) -> list[TagEvent]:
        """The tag's audit trail, oldest change first."""
        return [TagEvent(*row) for row in self.rows(
            "SELECT change_id, user_id, action, effect, actor, changed_at, reason, source FROM camp_tag_audit WHERE tag = ? "
            "ORDER BY changed_at, change_id, seq", (tag,))]

    def manual_tag_pairs(self, tags: list[str] | None) -> list[tuple[str, str, datetime]]:
        """(user_id, tag, since: when the holding began) of every holder of these manual tags (None: of every
        manual tag): what the MANUAL_TAGS table of an audience query holds."""
        if tags is None:
            return [(u, t, a) for u, t, a in self.rows(
                "SELECT user_id, tag, added_at FROM camp_manual_tags ORDER BY tag, user_id")]
        if not tags:
            return []
        return [(u, t, a) for u, t, a in self.rows(
            f"SELECT user_id, tag, added_at FROM camp_manual_tags WHERE {self.in_list('tag')} ORDER BY tag, user_id",
            (tags,))]

    def manual_tag_counts(self) -> dict[str, int]:
        """Every manual tag someone holds now, with how many hold it."""
        return {t: int(n) for t, n in self.rows("SELECT tag, count(*) FROM camp_manual_tags GROUP BY tag ORDER BY tag")}
