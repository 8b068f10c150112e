"""Provider limits (issue 16): `Retry-After` on 429/503 (seconds and HTTP-date) against a real HTTP receiver, a
channel's `rate` honoured across batches and across two `camp run` processes sharing a PostgreSQL ledger (the
receiver's arrival times, every sliding one-second window), and SMTP connections reused per worker thread and
opened anew after the server drops one (a real aiosmtpd server)."""

from __future__ import annotations

import bisect
import os
import subprocess
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from zoneinfo import ZoneInfo

import pytest

from runtime.channels import Message, TransientFailure
from runtime.channels.retry import retry_after
from runtime.channels.webhook import Webhook
from runtime.demo_data import make_shop
from runtime.ratelimit import LocalBucket, Rate
from tests.conftest import PG_URL, require_postgres
from tests.runtime.conftest import BIN, free_port, make_workspace
from tests.runtime.servers import start_hook, start_smtp
from tests.runtime.steps import run
from tests.runtime.test_channels import HOOK_CAMPAIGN, MAIL_CAMPAIGN, TEMPLATES

AS_OF = datetime(2026, 12, 1, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))


def most_in_a_window(times: list[float], window: float = 1.0) -> int:
    """The most arrivals in any window [t, t + window) starting at an arrival (a sliding window)."""
    times = sorted(times)
    return max((bisect.bisect_left(times, t + window) - i for i, t in enumerate(times)), default=0)


def message(user: str) -> Message:
    return Message(key=f"c/s/o/{user}", campaign="c", step="s", occurrence="o", user_id=user, channel="push",
                   address=None, subject=None, body="hi", plan_hash="h")


def test_retry_after_reads_seconds_and_http_dates():
    now = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
    assert retry_after("3", now) == 3.0
    assert retry_after(format_datetime(now + timedelta(seconds=90), usegmt=True), now) == 90.0
    assert retry_after("Tue, 01 Dec 2026 01:00:00 GMT", now) == 0.0  # a date past: at once
    assert retry_after(None) is None and retry_after("soon") is None and retry_after(" ") is None


def test_a_bucket_never_grants_more_than_the_limit_in_any_window():
    """The bucket alone, on the real clock: 1,000/s, 3,000 permits asked as fast as possible by one caller."""
    rate, bucket = Rate(1000, 1), LocalBucket()
    start, grants = time.monotonic(), []
    for _ in range(3000):
        grants.append(time.monotonic() + bucket.reserve(1, rate) - start)
    assert most_in_a_window(grants) <= 800  # the ceiling less the headroom left for the network's jitter
    assert 3.6 < grants[-1] < 4.1  # and it does go at about the rate (78% of it: 3,000 permits in about 3.8 s)


def test_webhook_waits_as_long_as_retry_after_says_in_seconds_and_as_an_http_date():
    hook, server, url = start_hook()
    try:
        channel = Webhook("push", {"url": f"{url}/push", "retries": 2, "backoff": 0.001})
        hook.throttle = {"1": ["1"]}
        assert channel.send(message("1")).startswith("msg-")
        first, second = hook.arrivals[0], hook.arrivals[1]
        assert 1.0 <= second - first < 2.0  # Retry-After: 1, though the backoff alone was about a millisecond
        hook.throttle = {"2": [format_datetime(datetime.now(UTC) + timedelta(seconds=3), usegmt=True)]}
        assert channel.send(message("2")).startswith("msg-")
        assert hook.arrivals[3] - hook.arrivals[2] >= 1.8  # an HTTP-date 3 s ahead (whole seconds): waited for it
        assert [r["user_id"] for r in hook.raw] == ["1", "1", "2", "2"]
        assert set(hook.delivered) == {"c/s/o/1", "c/s/o/2"}
        # a pause longer than max_retry_after: no waiting, a transient failure at once
        hook.throttle = {"3": ["120"]}
        with pytest.raises(TransientFailure, match=r"wait 120 s \(Retry-After\), more than max_retry_after = 60"):
            channel.send(message("3"))
        assert [r["user_id"] for r in hook.raw].count("3") == 1
        channel.close()
    finally:
        server.shutdown()


def test_a_channel_rate_holds_across_batches_and_two_runs_sharing_a_postgres_ledger(tmp_path, prefect_api):
    """Two occurrences run at once, each its own `camp run` process, on one PostgreSQL ledger: together they stay
    under each channel's rate in every sliding second, and both were sending during the same seconds."""
    pg = require_postgres()
    schema = f"camp_rate_{os.getpid()}"
    pg.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    pg.execute(f"CREATE SCHEMA {schema}")
    ledger = f"{PG_URL}?options=-csearch_path%3D{schema}"
    hook, server, url = start_hook()
    hook.latency_s = 0.01
    limit = 40
    try:
        toml = "".join(f'[channels.{ch}]\nkind = "webhook"\nrate = "{limit}/s"\nconcurrency = 16\n'
                       f'settings = {{ url = "{url}/{ch}" }}\n' for ch in ("push", "sms"))
        root = make_workspace(tmp_path / "ws", {"hook.camp": HOOK_CAMPAIGN}, toml=toml, templates=TEMPLATES)
        make_shop(f"duckdb:///{root / 'shop.duckdb'}", 500, seed=21)
        procs = [subprocess.Popen([str(BIN / "camp"), "run", "hook.camp", "--as-of", as_of, "--ledger", ledger,
                                   "--batch-size", "25", "--no-progress"], cwd=root, env=prefect_api,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for as_of in ("2026-12-01T10:00+08:00", "2026-12-02T10:00+08:00")]
        for p in procs:
            _, err = p.communicate(timeout=300)
            assert p.returncode == 0, err[-3000:]
        for path in ("/push", "/sms"):
            arrivals = [t for t, r in zip(hook.arrivals, hook.raw, strict=True) if r["path"] == path]
            assert most_in_a_window(arrivals) <= limit, path
            if path == "/push":  # most users' first channel: enough messages to fill several windows
                assert len(arrivals) > 3 * limit, len(arrivals)
        spans = {}
        for t, r in zip(hook.arrivals, hook.raw, strict=True):
            first, last = spans.get(r["occurrence"], (t, t))
            spans[r["occurrence"]] = (min(first, t), max(last, t))
        (a0, a1), (b0, b1) = spans.values()
        assert min(a1, b1) - max(a0, b0) > 1.0, spans  # both runs sent for more than a second at once: shared
        assert len(hook.delivered) == len({r["key"] for r in hook.raw})
    finally:
        server.shutdown()
        pg.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def test_smtp_reuses_one_connection_per_thread_and_reconnects_after_the_server_drops_one(tmp_path, prefect_api):
    port = free_port()
    toml = f'[channels.email]\nkind = "smtp"\nconcurrency = 3\nsettings = {{ host = "127.0.0.1", port = {port} }}\n'
    root = make_workspace(tmp_path / "ws", {"mail.camp": MAIL_CAMPAIGN}, toml=toml, templates=TEMPLATES)
    make_shop(f"duckdb:///{root / 'shop.duckdb'}", 300, seed=6)
    import duckdb

    con = duckdb.connect(str(root / "shop.duckdb"), read_only=True)
    addresses = [a for (a,) in con.execute("SELECT email FROM users WHERE email IS NOT NULL ORDER BY user_id").fetchall()]
    con.close()
    controller, messages = start_smtp(port, defer_once=set(addresses[:2]))
    try:
        summary = run(root, "t_mail", AS_OF, batch_size=20)
        sent_by_email = summary["statuses"]["sent"] - len(_outbox(root))
        assert sent_by_email > 40 and len(messages) == sent_by_email
        keys = [m["X-Camp-Idempotency-Key"] for m in messages]
        assert len(keys) == len(set(keys))
        # three threads, each one connection for the whole run (all its batches), plus one new connection after
        # each 421 that closed one (when those two addresses were in the audience)
        assert 3 <= messages.sessions <= 3 + 2, messages.sessions
    finally:
        controller.stop()


def _outbox(root) -> list:
    import duckdb

    con = duckdb.connect(str(root / "ledger.duckdb"), read_only=True)
    try:
        return con.execute("SELECT user_id FROM camp_outbox").fetchall()
    finally:
        con.close()
