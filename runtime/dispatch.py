"""Pending deliveries -> messages handed to their channels, with fallback and a breaker. No database and
no Prefect here: what dispatch records goes to a `DispatchSink` (the ledger in production,
runtime.ledger_sink), the channel adapters come from the run's caches.

    transactional channels (the outbox) and grants without a message: one sink call for the batch
    other channels: marked dispatching first (a crash leaves them to be resent, same key), then sent
        concurrently: each channel's pool of `concurrency` threads (the run's Channels), each message after a
        permit of the channel's rate limit; in flight at once: a window that starts at 1, grows by one per
        answer up to `concurrency` and halves on a transient failure (TCP's slow start: a provider that is down
        sees BREAKER messages, not `concurrency` of them, and one that answers 429 gets fewer requests); the answers are recorded from this thread as they come, the sent ones
        FLUSH at a time or once FLUSH_S has passed (a crash before a flush leaves them dispatching: resent with the
        same key, which the provider drops)
    a permanent failure (or a message that could not be rendered): the next channel of the arm's chain,
        through the sink's re-check (`fall_back`); on the chain's last channel: failed
    a transient failure (after the adapter's own retries): failed `transient`
    BREAKER transient failures in a row on one channel (in the order the answers come): the provider is down
        (ChannelDown); no message is started after that, the answers in flight are recorded, and those failures
        and the messages never started stay pending for the next run of the occurrence

Why threads rather than asyncio: a channel adapter is a plain `send(message) -> id` (the interface SMS and push
providers plug into, docs/runtime.md), smtplib is blocking, and a request's time is spent waiting on the
network, which releases the GIL; a bounded pool runs any adapter concurrently unchanged.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from concurrent.futures import Future
from datetime import UTC, datetime
from queue import SimpleQueue
from typing import Protocol

from runtime.channels import Channel, Message, PermanentFailure, TransientFailure
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

    def sent(self, rows: list[tuple[str, datetime, str | None]]) -> None:
        """Deliveries their channel took: (key, when, provider id) each."""
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
FLUSH = 1000  # sent deliveries recorded in one ledger transaction (a transaction costs ~15 ms, whatever its size)
FLUSH_S = 1.0  # and at least once a second, so a slow channel's progress reaches the ledger as it goes

_Item = tuple[Pending, Message | None, str | None]


def dispatch(items: list[Pending], caches: RunCaches, plan_hash: str, counters: Counters,
             sink: DispatchSink) -> None:
    """Send pending deliveries decided under caches.plan: outbox rows in one sink transaction, other
    channels concurrently with the rows marked dispatching first."""
    if not items:
        return
    coupons = sink.coupons(items)
    by_kind: dict[bool, list[_Item]] = {True: [], False: []}
    for it in items:
        msg, error = message(caches.plan, plan_hash, caches, it, coupons.get(it.key))
        transactional = it.channel is None or caches.channels.get(it.channel).transactional
        by_kind[transactional].append((it, msg, error))
    _send_transactional(by_kind[True], caches, plan_hash, counters, sink)
    _send_concurrently(by_kind[False], caches, plan_hash, counters, sink)


def _send_transactional(batch: list[_Item], caches: RunCaches, plan_hash: str, counters: Counters,
                        sink: DispatchSink) -> None:
    ok = [(it, m) for it, m, err in batch if err is None]
    keys = [it.key for it, _ in ok]
    sink.outbox([m for _, m in ok if m is not None], keys, datetime.now(UTC))
    counters.counts[Status.SENT] += len(keys)
    _fallback_many([(it, err) for it, _, err in batch if err is not None], caches, plan_hash, counters, sink)


def _send_concurrently(batch: list[_Item], caches: RunCaches, plan_hash: str, counters: Counters,
                       sink: DispatchSink) -> None:
    keys = [it.key for it, _, _ in batch]
    if not keys:
        return
    sink.dispatching(keys)
    permanent = [(it, err) for it, _, err in batch if err is not None]  # moved to a fallback together, at the end
    todo: deque[tuple[Pending, Message]] = deque((it, m) for it, m, err in batch if err is None and m is not None)
    flight: dict[Future, Pending] = {}
    busy: Counter[str] = Counter()
    streak: dict[str, list[tuple[Pending, str]]] = {}
    sent: list[tuple[str, datetime, str | None]] = []
    down: tuple[str, str] | None = None  # (channel, last error) once the breaker trips
    answers: SimpleQueue[Future] = SimpleQueue()
    flushed = time.monotonic()
    while (todo and down is None) or flight:
        while todo and down is None:  # start messages while their channel has a free thread
            it, msg = todo[0]
            assert it.channel is not None  # a rendered message is for a channel
            channel = caches.channels.get(it.channel)
            if busy[it.channel] >= min(channel.concurrency, caches.channels.window[it.channel]):
                break
            todo.popleft()
            fut = caches.channels.pool(it.channel).submit(_send, channel, msg)
            flight[fut] = it
            fut.add_done_callback(answers.put)
            busy[it.channel] += 1
        done = [answers.get()]  # a queue of finished futures: no waiter set on every future in flight per answer
        while not answers.empty():
            done.append(answers.get_nowait())
        for fut in done:
            it = flight.pop(fut)
            assert it.channel is not None
            busy[it.channel] -= 1
            try:
                provider_id = fut.result()
            except PermanentFailure as exc:
                if down is None:
                    streak.pop(it.channel, None)
                permanent.append((it, str(exc)))
                continue
            except TransientFailure as exc:
                caches.channels.window[it.channel] = max(1, caches.channels.window[it.channel] // 2)
                failing = streak.setdefault(it.channel, [])
                failing.append((it, str(exc)))
                if len(failing) >= BREAKER and down is None:  # the provider, not these users
                    down = (it.channel, str(exc))
                continue
            caches.channels.window[it.channel] += 1  # one more in flight per answer: doubles each round trip
            if down is None:
                for f, error in streak.pop(it.channel, []):  # the provider answers: those were real failures
                    _transient(f, error, counters, sink)
            sent.append((it.key, datetime.now(UTC), provider_id))
            counters.counts[Status.SENT] += 1
        if len(sent) >= FLUSH or (sent and time.monotonic() - flushed >= FLUSH_S):
            sink.sent(sent)
            sent, flushed = [], time.monotonic()
    if sent:
        sink.sent(sent)
    if down is not None:
        channel_name, error = down
        # failed while a provider was down (or before any later answer on their channel said it was up), or never
        # started: the next run's
        left = [f.key for failing in streak.values() for f, _ in failing] + [it.key for it, _ in todo]
        sink.pending_again(left, error)
        _fallback_many(permanent, caches, plan_hash, counters, sink)
        raise ChannelDown(f"channel {channel_name}: {BREAKER} messages in a row failed ({error}); "
                          "the rest stay pending for the next run of this occurrence")
    for failing in streak.values():
        for f, error in failing:
            _transient(f, error, counters, sink)
    _fallback_many(permanent, caches, plan_hash, counters, sink)


def _send(channel: Channel, msg: Message) -> str:
    """In a thread of the channel's pool: a permit of its rate limit, then the adapter (with its own retries)."""
    channel.pace()
    return channel.send(msg)


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
