"""A manual tag change (`camp tag add|remove`): the user ids it names -> checked against the warehouse's users
table -> one ledger transaction (runtime.ledger.tags), or nothing written when any id is unknown.

Ids are compared as text with the users' key cast to text (`42` names the user whose key is 42; ` 42` and
`042` name nobody). The ids go into a TEMP table of the warehouse session, so a read-only warehouse works and
a million ids take one join, not a million probes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlglot import exp

from compiler.schema import Schema
from compiler.sql import table_ref
from runtime.ledger import Ledger
from runtime.ledger.tags import TagChange
from runtime.warehouse import Warehouse

IDS = "camp_tag_ids"  # (user_id text): the ids a change names, in this warehouse session only


class UnknownUsers(Exception):
    """Ids no user of the users table has: the change wrote nothing."""

    def __init__(self, unknown: list[str], named: int):
        self.unknown, self.named = unknown, named
        super().__init__(f"{len(unknown)} of {named} user ids are not in the users table")


@dataclass(frozen=True)
class Change:
    """One change as the command asked for it."""

    tag: str
    action: str  # add | remove
    users: list[str] | None  # None: remove from everyone who holds it
    actor: str
    at: datetime
    reason: str | None
    source: str


def known_users(wh: Warehouse, schema: Schema, ids: list[str]) -> set[str]:
    """The ids of `ids` some user of the users table has as key (as text)."""
    users = schema.users
    if users is None:
        raise ValueError("the workspace declares no users table")
    wh.backend.fresh_temp_table(wh.conn, IDS, "user_id text")
    if not ids:
        return set()
    wh.bulk_insert(IDS, ["user_id"], [(i,) for i in dict.fromkeys(ids)])
    key = exp.cast(exp.column(users.key, table="u", quoted=True), "text")
    query = exp.select(exp.column("user_id", table="i", quoted=True)).from_(
        exp.alias_(exp.to_identifier(IDS), "i", quoted=True)).where(exp.Exists(this=exp.select(
            exp.Literal.number(1)).from_(exp.alias_(table_ref(users.table), "u", quoted=True)).where(
            exp.EQ(this=key, expression=exp.column("user_id", table="i", quoted=True)))))
    return {str(u) for (u,) in wh.rows(query.sql(dialect=wh.dialect))}


def apply_change(wh: Warehouse, lg: Ledger, schema: Schema, change: Change) -> TagChange:
    """Check every named id against the users table, then write the change and its audit rows in one ledger
    transaction. Raises UnknownUsers (nothing written) when an id names no user (for a removal: neither a user
    nor a holder of the tag, so a user deleted from the shop can still lose it)."""
    if change.action == "add":
        assert change.users is not None  # an add always names its users
        known = known_users(wh, schema, change.users)
        unknown = [u for u in change.users if u not in known]
        if unknown:
            raise UnknownUsers(unknown, len(change.users))
        return lg.add_tag(change.tag, change.users, change.actor, change.at, change.reason, change.source)
    if change.users is not None:  # an id that names neither a user nor a holder of the tag is a typo
        known = known_users(wh, schema, change.users) | {h.user_id for h in lg.tag_holders(change.tag)}
        unknown = [u for u in change.users if u not in known]
        if unknown:
            raise UnknownUsers(unknown, len(change.users))
    return lg.remove_tag(change.tag, change.users, change.actor, change.at, change.reason, change.source)
