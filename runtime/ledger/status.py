"""The statuses the ledger stores, one enum each: a delivery's, a run's, a coupon's, a points credit's, a share's.

They are `StrEnum`s, so a member *is* its text: it compares equal to what the database returns, goes into
SQL parameters and JSON as that text, and `f"{Status.SENT}"` is `sent`. The migrations build their CHECK
constraints from these members (see `check_list`); a new member needs a new migration, and
`tests/runtime/test_ledger.py` fails until the latest CHECK allows every member.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum


class Status(StrEnum):
    """Where a delivery (one user, one step, one occurrence) stands."""

    PENDING = "pending"  # decided, to send
    DISPATCHING = "dispatching"  # handed to a channel; a crash here is recovered, never sent twice
    DEFERRED = "deferred"  # decided, held until not_before (quiet hours, `tz user`)
    SENT = "sent"
    FAILED = "failed"
    HOLDOUT = "holdout"  # the control group: decided, never sent
    SUPPRESSED = "suppressed"  # consent, address, caps, exclusive groups
    BUDGET_EXHAUSTED = "budget_exhausted"
    SKIPPED = "skipped"  # a journey's follow-up skipped the user (migration 2)



COUNTED = (Status.PENDING, Status.DISPATCHING, Status.DEFERRED, Status.SENT)  # count against caps and budgets

class RunStatus(StrEnum):
    """A `camp_runs` row's status."""

    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    INTERRUPTED = "interrupted"  # its process died; a later run of the occurrence took over


RUN_OVER = (RunStatus.FINISHED, RunStatus.FAILED, RunStatus.INTERRUPTED)  # a run that will write no more


class CouponState(StrEnum):
    RESERVED = "reserved"  # decided with its delivery, not yet sent
    ISSUED = "issued"  # its message went out
    REDEEMED = "redeemed"  # an order of the shop used it (`camp sync`: runtime.coupon_sync)
    VOID = "void"  # its message never will
    EXPIRED = "expired"  # unused when its validity and the late-data allowance were over (migration 3)


class PointsState(StrEnum):
    """A points credit's (camp_points, migration 4)."""

    PENDING = "pending"  # decided with its delivery; to issue (a crash here is recovered, same key)
    ISSUED = "issued"  # the outbox row is written, or the points system took it
    VOID = "void"  # its issuer refused it for good


class ShareState(StrEnum):
    """A red packet share's payout (camp_red_packet_shares, migration 4)."""

    PAID = "paid"
    REFUSED = "refused"  # no packet to pay for, or the budget would be exceeded


class AlertState(StrEnum):
    """One alert's evaluation in one occurrence of its schedule (camp_alerts, migration 6)."""

    BELOW = "below"  # the threshold was not crossed: nothing sent
    PENDING = "pending"  # crossed; the message is being sent (a crash leaves it here: the next run sends it)
    SENT = "sent"  # the team's channel took it: never again in this occurrence
    FAILED = "failed"  # the channel refused it; the next run of the occurrence tries again


class BatchState(StrEnum):
    """One batch of a run's recipients spread over parallel workers (camp_batches, migration 10)."""

    OPEN = "open"  # listed, nobody has claimed it yet
    CLAIMED = "claimed"  # a worker decides and sends it until its lease ends; after that any worker may take it
    DONE = "done"  # decided and sent (what was due now); the worker's counts are kept with it


class TagAction(StrEnum):
    """What a `camp tag` change asked for a user (camp_tag_audit, migration 7)."""

    ADD = "add"
    REMOVE = "remove"


class TagEffect(StrEnum):
    """What a `camp tag` change did to a user (camp_tag_audit, migration 7)."""

    ADDED = "added"
    ALREADY = "already"  # an add for a user who already had the tag: nothing written but this audit row
    REMOVED = "removed"
    ABSENT = "absent"  # a remove for a user who did not have the tag


def check_list(members: Iterable[StrEnum], sep: str = ",") -> str:
    """The SQL list a CHECK (x IN ...) takes: `('a','b')`. The text of an applied migration must never
    change, so each migration names its members explicitly and `sep` keeps its original spacing."""
    return "(" + sep.join(f"'{m.value}'" for m in members) + ")"
