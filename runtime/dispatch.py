"""Pending deliveries -> messages handed to their channels, with fallback and a breaker. No database and
no Prefect here: what dispatch records goes to a `DispatchSink` (the ledger in production,
runtime.ledger_sink), the channel adapters come from the run's caches.

    transactional channels (the outbox) and grants without a message: one sink call for the batch
    other channels: marked dispatching first (a crash leaves them to be resent, same key), then one by one
    a permanent failure (or a message that could not be rendered): the next channel of the arm's chain,
        through the sink's re-check (`fall_back`); on the chain's last channel: failed
    a transient failure (after the adapter's own retries): failed `transient`
    BREAKER transient failures in a row on one channel: the provider is down (ChannelDown); those stay
        pending for the next run of the occurrence
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol

from runtime.channels import Message, PermanentFailure, TransientFailure
from runtime.context import Counters, Pending, RunCaches
from runtime.ledger.status import Status
from runtime.message import message


class DispatchSink(Protocol):
    """What dispatch reads (coupons for the messages) and records."""

    def coupons(self, items: list[Pending]) -> dict[str, dict]:
        """key -> the coupon the delivery's message speaks of (its own, or an earlier journey step's)."""
        ...

    def outbox(self, messages: list[Message], keys: list[str], at: datetime) -> None:
        """These messages written to the outbox and these deliveries sent, in one transaction."""
        ...

    def dispatching(self, keys: list[str]) -> None:
        """These deliveries handed to their channel now."""
        ...

    def sent(self, key: str, at: datetime, provider_id: str | None) -> None:
        """A delivery its channel took."""
        ...

    def failed(self, failures: list[tuple[str, str, str]]) -> None:
        """Deliveries failed for good: (key, reason, error)."""
        ...

    def pending_again(self, keys: list[str], error: str) -> None:
        """Deliveries left for the next run of the occurrence (their channel is down)."""
        ...

    def fall_back(self, moving: list[tuple[Pending, str]]) -> list[Pending]:
        """Deliveries whose channel failed permanently (with the error), re-checked for the later channels of
        their chain: those moved to one (returned, to send), the others suppressed."""
        ...


class ChannelDown(Exception):
    """Several messages in a row failed transiently: the provider is down. The run stops; the
    deliveries not sent stay pending and the next run of the occurrence sends them."""


BREAKER = 5  # consecutive transient failures on one channel that stop the run

_Item = tuple[Pending, Message | None, str | None]


def dispatch(items: list[Pending], caches: RunCaches, plan_hash: str, counters: Counters,
             sink: DispatchSink) -> None:
    """Send pending deliveries decided under caches.plan: outbox rows in one sink transaction, other
    channels one by one with the rows marked dispatching first."""
    if not items:
        return
    coupons = sink.coupons(items)
    by_kind: dict[bool, list[_Item]] = {True: [], False: []}
    for it in items:
        msg, error = message(caches.plan, plan_hash, caches, it, coupons.get(it.key))
        transactional = it.channel is None or caches.channels.get(it.channel).transactional
        by_kind[transactional].append((it, msg, error))
    _send_transactional(by_kind[True], caches, plan_hash, counters, sink)
    _send_one_by_one(by_kind[False], caches, plan_hash, counters, sink)


def _send_transactional(batch: list[_Item], caches: RunCaches, plan_hash: str, counters: Counters,
                        sink: DispatchSink) -> None:
    ok = [(it, m) for it, m, err in batch if err is None]
    keys = [it.key for it, _ in ok]
    sink.outbox([m for _, m in ok if m is not None], keys, datetime.now(UTC))
    counters.counts[Status.SENT] += len(keys)
    _fallback_many([(it, err) for it, _, err in batch if err is not None], caches, plan_hash, counters, sink)


def _send_one_by_one(batch: list[_Item], caches: RunCaches, plan_hash: str, counters: Counters,
                     sink: DispatchSink) -> None:
    keys = [it.key for it, _, _ in batch]
    if not keys:
        return
    sink.dispatching(keys)
    streak: dict[str, list[tuple[Pending, str]]] = {}
    permanent: list[tuple[Pending, str]] = []  # moved to a fallback channel (or not) together, after the batch
    for it, msg, err in batch:
        if err is not None:
            permanent.append((it, err))
            continue
        assert it.channel is not None and msg is not None  # a message without an error was rendered for a channel
        try:
            provider_id = caches.channels.get(it.channel).send(msg)
        except PermanentFailure as exc:
            streak.pop(it.channel, None)
            permanent.append((it, str(exc)))
            continue
        except TransientFailure as exc:
            failing = streak.setdefault(it.channel, [])
            failing.append((it, str(exc)))
            if len(failing) >= BREAKER:  # the provider, not these users: leave them for the next run
                sink.pending_again([f.key for f, _ in failing], str(exc))
                _fallback_many(permanent, caches, plan_hash, counters, sink)
                raise ChannelDown(f"channel {it.channel}: {BREAKER} messages in a row failed ({exc}); "
                                  "the rest stay pending for the next run of this occurrence") from None
            continue
        for f, error in streak.pop(it.channel, []):  # the provider answers: those were real failures
            _transient(f, error, counters, sink)
        sink.sent(it.key, datetime.now(UTC), provider_id)
        counters.counts[Status.SENT] += 1
    for failing in streak.values():
        for f, error in failing:
            _transient(f, error, counters, sink)
    _fallback_many(permanent, caches, plan_hash, counters, sink)


def _transient(it: Pending, error: str, counters: Counters, sink: DispatchSink) -> None:
    """A transient failure, after the channel's own retries: the delivery failed."""
    sink.failed([(it.key, "transient", f"{it.channel}: {error}")])
    counters.fail("transient")


def _fallback_many(failures: list[tuple[Pending, str]], caches: RunCaches, plan_hash: str, counters: Counters,
                   sink: DispatchSink) -> None:
    """Deliveries whose channel failed permanently: each goes to the first later channel of its arm's
    chain that passes the checks of this moment (the sink's `fall_back`), or is suppressed when later
    channels exist but none passes, or failed (`permanent`) when the chain has no later channel."""
    if not failures:
        return
    last, moving = [], []
    for it, error in failures:
        chain = [c.channel for c in next(a for a in caches.plan.arms if a.name == it.arm).notify]
        if it.channel in chain and chain.index(it.channel) + 1 < len(chain):
            moving.append((it, f"{it.channel}: {error}"))
        else:  # a template failure says which limit (`template: time limit`), a provider's refusal `permanent`
            last.append((it, getattr(error, "reason", None) or "permanent", f"{it.channel}: {error}"))
    if last:
        sink.failed([(it.key, reason, error) for it, reason, error in last])
        counters.counts[Status.FAILED] += len(last)
        counters.reasons.update(f"failed: {reason}" for _, reason, _ in last)
    dispatch(sink.fall_back(moving), caches, plan_hash, counters, sink)
