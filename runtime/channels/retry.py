"""The retries of the real channels (webhook, SMTP): tenacity's jittered exponential backoff, at least as long as
the provider's `Retry-After`. Why a kept library rather than a loop: the jitter (full jitter: a random wait up to
`backoff × 2^attempt`, so workers that failed together do not retry together), the stop and the wait compose, and
tenacity is what the rest of the Python world retries with.

An attempt raises `Retry` for what may pass (5xx, 429, timeouts, dropped connections), carrying the provider's
`Retry-After` when it gave one; anything else passes through (a `PermanentFailure`, or a `TransientFailure` when the
provider asks for a longer pause than the channel's `max_retry_after`: waiting holds a worker for nothing, and the
breaker then stops the run so the next run of the occurrence sends the rest).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TypeVar

from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from runtime.channels import TransientFailure

T = TypeVar("T")


class Retry(Exception):
    """This attempt failed in a way another attempt may not; `after`: the provider's Retry-After in seconds."""

    def __init__(self, reason: str, after: float | None = None):
        super().__init__(reason)
        self.after = after


def retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """A `Retry-After` header -> seconds from now: delay-seconds ("120") or an HTTP-date ("Wed, 21 Oct 2026
    07:28:00 GMT"; a date past is 0). None when absent or neither."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # an HTTP-date is always GMT (RFC 9110 5.6.7)
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def with_retries(attempt: Callable[[], T], *, retries: int, backoff: float, max_backoff: float = 30.0,
                 max_retry_after: float = 60.0, before_retry: Callable[[], None] | None = None,
                 what: str = "request", sleep: Callable[[float], None] = time.sleep) -> T:
    """`attempt()` up to retries + 1 times; between attempts the longer of the jittered backoff and the provider's
    Retry-After. After the last: TransientFailure saying how many attempts and the last reason."""
    jitter = wait_random_exponential(multiplier=backoff, max=max_backoff)

    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        after = exc.after if isinstance(exc, Retry) else None
        return max(jitter(state), after or 0.0)

    def check(fn: Callable[[], T]) -> Callable[[], T]:
        def run() -> T:
            try:
                return fn()
            except Retry as exc:
                if exc.after is not None and exc.after > max_retry_after:
                    raise TransientFailure(f"{what}: the provider asks to wait {exc.after:g} s "
                                           f"(Retry-After), more than max_retry_after = {max_retry_after:g}") from None
                raise
        return run

    try:  # the first attempt outside tenacity: most requests succeed at once, and a Retrying costs ~30 µs
        return check(attempt)()
    except Retry as exc:
        replay = [exc]

    def one() -> T:
        if replay:  # tenacity's first attempt is the one that just failed: its wait follows as before
            raise replay.pop()
        if before_retry is not None:
            before_retry()  # a retry is a request too: it waits for the channel's rate limit
        return check(attempt)()

    retrying = Retrying(stop=stop_after_attempt(retries + 1), wait=wait, retry=retry_if_exception_type(Retry),
                        reraise=True, sleep=sleep)
    try:
        return retrying(one)
    except Retry as exc:
        raise TransientFailure(f"{what} failed after {retries + 1} attempts: {exc}") from None
