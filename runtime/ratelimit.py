"""A channel's `rate` (camp.toml `[channels.NAME] rate = "500/s"`) -> permits its worker threads wait for.

Why a token bucket with reservations (as Go's x/time/rate): each reservation takes tokens at once, the balance may
go negative, and the caller waits until the refill pays the debt back. Concurrent senders then need one atomic
step each, never a retry loop, and the bucket never grants more than `burst + refill × window` in any window.

The promise is a ceiling: at most N requests in ANY window of the unit (a sliding window, as a provider counts),
not N on average. So the bucket holds `burst = N/50` tokens (20 ms of sending at the full rate) and refills at
`0.8·N − burst` per window: at most 0.8·N permits in any window, leaving 20% (200 ms of sending at the full rate)
for the jitter between the moment a permit is granted and the moment the request reaches the provider (thread
scheduling, a busy host, the network; 10% was not enough on a loaded 2-core CI machine: a receiver saw 41 in a
second under a limit of 40). The average is then about 78% of N.

Where the bucket lives decides who shares it:
    a PostgreSQL ledger: one row per channel in `camp_rate_limits` (migration 9), reserved by one UPDATE on the
        database's clock, so every run, worker and host sending through that ledger shares the limit;
    a DuckDB ledger: in this process (one process writes a DuckDB ledger at a time), shared by its runs.
A process reserves `chunk` permits per trip to PostgreSQL (half the burst) and hands them to its threads.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Protocol

from compiler.config import parse_rate

HEADROOM = 0.2  # of the limit, left for the jitter between a permit and its request's arrival
LATE = 0.05  # seconds after its time a permit is still used (Limiter.acquire)


@dataclass(frozen=True)
class Rate:
    """The ceiling (`limit` requests per `window` seconds) and the bucket that keeps under it."""

    limit: int
    window: int

    @property
    def burst(self) -> int:
        return max(1, self.limit // 50)

    @property
    def per_second(self) -> float:
        """The refill: 0.8·N − burst per window (at least half of N, for tiny limits)."""
        return max((1 - HEADROOM) * self.limit - self.burst, self.limit / 2) / self.window


class Bucket(Protocol):
    def reserve(self, n: int, rate: Rate) -> float:
        """Take n tokens now; the seconds to wait before using them (0 when the bucket had them)."""
        ...

    def close(self) -> None: ...


class LocalBucket:
    """The bucket in this process (a DuckDB ledger, or no ledger at all)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens: float | None = None
        self._at = 0.0

    def reserve(self, n: int, rate: Rate) -> float:
        with self._lock:
            now = time.monotonic()
            tokens = rate.burst if self._tokens is None else self._tokens
            tokens = min(rate.burst, tokens + rate.per_second * (now - self._at)) - n
            self._tokens, self._at = tokens, now
            return max(0.0, -tokens / rate.per_second)

    def close(self) -> None:
        return None


class LedgerBucket:
    """The bucket in the PostgreSQL ledger: one row per channel, reserved by one statement on the database's clock
    (the hosts' clocks never meet). Its own connection, in autocommit: the reservation is not part of any run's
    transaction, and a killed process leaves at most the tokens it reserved unused."""

    def __init__(self, ledger_url: str, channel: str):
        from runtime.ledger.connection import Connection

        self.channel = channel
        self._db = Connection(ledger_url)
        self._lock = threading.Lock()

    def reserve(self, n: int, rate: Rate) -> float:
        with self._lock:
            self._db.execute("INSERT INTO camp_rate_limits (channel, tokens, at) VALUES (?, ?, clock_timestamp()) "
                             "ON CONFLICT (channel) DO NOTHING", (self.channel, float(rate.burst)))
            tokens = self._db.one(
                "UPDATE camp_rate_limits AS b SET tokens = LEAST(?, b.tokens + ? * EXTRACT(EPOCH FROM now_.t - b.at)) "
                "- ?, at = now_.t FROM (SELECT clock_timestamp() AS t) AS now_ WHERE b.channel = ? RETURNING b.tokens",
                (float(rate.burst), rate.per_second, n, self.channel))
        return max(0.0, -float(tokens) / rate.per_second)

    def close(self) -> None:
        self._db.close()


class Limiter:
    """Permits for one channel's senders: `acquire` blocks until this request may go."""

    def __init__(self, rate: Rate, bucket: Bucket, chunk: int = 1):
        self.rate = rate
        self._bucket = bucket
        self._chunk = max(1, min(chunk, rate.burst))
        self._lock = threading.Lock()
        self._left = 0
        self._ready_at = 0.0

    def acquire(self) -> None:
        """A permit that is still fresh when this thread runs: on a busy host a thread may wake long after its
        permit's time, and requests held back that way would reach the provider together with timely ones. A
        permit woken up more than LATE seconds after its time is dropped (spent) and another taken."""
        while True:
            with self._lock:
                if self._left == 0:
                    self._ready_at = time.monotonic() + self._bucket.reserve(self._chunk, self.rate)
                    self._left = self._chunk
                self._left -= 1
                ready_at = self._ready_at
            wait = ready_at - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            if time.monotonic() - ready_at <= LATE:
                return

    def close(self) -> None:
        self._bucket.close()


_shared: dict[tuple[str, str, Rate], Limiter] = {}
_shared_lock = threading.Lock()


def limiter(channel: str, rate_text: str | None, ledger_url: str | None) -> Limiter | None:
    """The process's limiter of a channel under a ledger (None without a `rate`): the runs of this process share
    it; on a PostgreSQL ledger it reserves from the ledger's row of the channel, shared with every process."""
    parsed = parse_rate(rate_text) if rate_text else None
    if parsed is None:
        return None
    rate = Rate(*parsed)
    postgres = bool(ledger_url) and str(ledger_url).startswith(("postgresql:", "postgres:"))
    key = (str(ledger_url) if postgres else "", channel, rate)
    with _shared_lock:
        if key not in _shared:
            if postgres:
                assert ledger_url is not None
                _shared[key] = Limiter(rate, LedgerBucket(ledger_url, channel), chunk=rate.burst // 2)
            else:
                _shared[key] = Limiter(rate, LocalBucket())
        return _shared[key]
