"""A run's state, split by who may change it: the immutable context (what the run is: plan, ledger, as-of
time, ids), the counters (what the summary reads), the snapshot cache (the rows this process fetched) and
the per-run caches (channel adapters, renderer, budget of a dry run). `Run` bundles the four; the stage
modules (snapshot, batch, recheck, recover, release, summary) take it. `Pending` is a decided delivery on
its way to a channel.
"""

from __future__ import annotations

import gc
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from compiler.plan import ChannelPlan, StepPlan
from runtime.channels import Channel, make_channel
from runtime.decide import Budget, Recipient, Seen
from runtime.ledger import Ledger
from runtime.ledger.status import Status
from runtime.ratelimit import limiter
from runtime.render import Renderer


@dataclass(frozen=True)
class RunContext:
    """What the run is; set once."""

    plan: StepPlan
    ledger: Ledger
    data_url: str
    as_of: datetime
    dry_run: bool
    run_id: str
    plan_hash: str  # the hash the deliveries are decided (or were, for a release) under

    @property
    def occ(self) -> tuple[str, str, str]:
        return self.plan.campaign, self.plan.step, self.plan.occurrence

    @property
    def key_prefix(self) -> str:
        return f"{self.plan.campaign}/{self.plan.step}/{self.plan.occurrence}/"


@dataclass
class Pending:
    """A decided delivery to send (or a grant without a message: channel None)."""

    key: str
    user_id: str
    arm: str | None
    channel: str | None
    coupon_id: str | None
    recipient: Recipient
    cost: Decimal = Decimal(0)


@dataclass
class Counters:
    """What this run did, as the summary reports it (dry runs: what would happen)."""

    counts: Counter = field(default_factory=Counter)  # status -> users
    reasons: Counter = field(default_factory=Counter)
    cost: Decimal = Decimal(0)
    left_out: list[str] = field(default_factory=list)  # first users left out by the budget
    timings: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))  # stage -> seconds in camp's code
    unknown_zones: int = 0  # users decided by this run whose time zone is not a zone (the workspace's was used)
    touched: dict = field(default_factory=dict)  # (step, occurrence) sent to by this run -> the plan's next step

    def fail(self, reason: str, n: int = 1) -> None:
        """n deliveries failed for this reason."""
        self.counts[Status.FAILED] += n
        self.reasons[f"failed: {reason}"] += n

    @contextmanager
    def timing(self, stage: str) -> Iterator[None]:
        """Adds the time spent inside to the stage's seconds."""
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.timings[stage] += time.perf_counter() - t0


@dataclass
class SnapshotCache:
    """The snapshot as fetched, when this process made it: no read back from the ledger, no decoding."""

    rows: list | None = None
    users: list[str] = field(default_factory=list)  # rows' user ids as text, made once (every stage reads them)
    lo: int = 0  # seq of rows[0] (a follow-up's part starts after the earlier parts)
    names: dict[str, int] = field(default_factory=dict)  # snapshot column -> index in rows
    # this run wrote these rows to the snapshot, each user once: none of them can have a delivery of the occurrence
    # yet where this process is the ledger's one writer (a rerun reads the snapshot back and finds rows = None)
    fresh: bool = False
    decided: set[int] = field(default_factory=set)  # the batches (by first seq) this run decided
    payload_later: bool = False  # rows written without their data: the batch writes it for users read back later

    def unseen(self, one_writer: bool) -> bool:
        """No user of these rows can have a delivery of the occurrence yet: this run wrote them to the snapshot,
        each user once, and this process is the ledger's one writer (`one_writer`)."""
        return self.fresh and one_writer


class Channels:
    """The run's channel adapters, made on first use from camp.toml's channel table (shared by the plans a
    release sends under), each with its rate limiter (runtime.ratelimit: shared through a PostgreSQL ledger) and
    its pool of `concurrency` sending threads, kept for the run so threads and their connections are reused
    across batches."""

    def __init__(self, config: dict, made: dict[str, Channel] | None = None, ledger_url: str | None = None):
        self.config = config
        self.ledger_url = ledger_url
        self.made: dict[str, Channel] = made if made is not None else {}
        self._pools: dict[str, ThreadPoolExecutor] = {}
        self.window: defaultdict[str, int] = defaultdict(lambda: 1)  # messages in flight at once (runtime.dispatch)

    def get(self, name: str) -> Channel:
        if name not in self.made:
            channel = make_channel(name, self.config)
            channel.limiter = limiter(name, (self.config.get(name) or {}).get("rate"), self.ledger_url)
            self.made[name] = channel
        return self.made[name]

    def pool(self, name: str) -> ThreadPoolExecutor:
        if name not in self._pools:
            self._pools[name] = ThreadPoolExecutor(self.get(name).concurrency, thread_name_prefix=f"camp-{name}")
        return self._pools[name]

    def close(self) -> None:
        for pool in self._pools.values():
            pool.shutdown(wait=True, cancel_futures=True)
        self._pools.clear()
        for ch in self.made.values():
            ch.close()


class RunCaches:
    """Per-run objects made once: the channel adapters, the plan's renderer and channel chains, the budget a
    dry run reserves from (nothing is written, so it is kept here), the caps' counts read once per run."""

    def __init__(self, plan: StepPlan, channels: Channels):
        self.plan = plan
        self.channels = channels
        self.dry_budget: Budget | None = None
        # caps and hold counts of every user, read once per run where one process writes the ledger (runtime.batch)
        self.seen: dict[str, Seen] | None = None
        self._renderer: Renderer | None = None
        self._chains: dict[tuple[str | None, str], ChannelPlan] = {}

    def channel_plan(self, arm: str | None, channel: str) -> ChannelPlan:
        if not self._chains:
            self._chains = {(a.name, c.channel): c for a in self.plan.arms for c in a.notify}
        return self._chains[(arm, channel)]

    def renderer(self) -> Renderer:
        if self._renderer is None:
            self._renderer = Renderer(self.plan)
        return self._renderer


class Run:
    """One run: context (read-only here), counters, snapshot cache and caches."""

    def __init__(self, plan: StepPlan, ledger: Ledger, data_url: str, as_of: datetime, dry_run: bool = False,
                 channel_config: dict | None = None, *, run_id: str | None = None, plan_hash: str = "",
                 channels: Channels | None = None):
        self.ctx = RunContext(plan, ledger, data_url, as_of, dry_run, run_id or uuid.uuid4().hex[:16],
                              plan_hash or plan.hash)
        self.counters = Counters(touched={(plan.step, plan.occurrence): plan.next})
        self.snapshot = SnapshotCache()
        self.caches = RunCaches(plan, channels or Channels(channel_config or {}, ledger_url=ledger.url))

    @property
    def plan(self) -> StepPlan:
        return self.ctx.plan

    @property
    def ledger(self) -> Ledger:
        return self.ctx.ledger

    @property
    def run_id(self) -> str:
        return self.ctx.run_id

    def close(self) -> None:
        self.caches.channels.close()
        self.snapshot.rows, self.snapshot.users = None, []
        gc.unfreeze()
