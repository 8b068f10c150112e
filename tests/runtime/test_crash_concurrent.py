"""SIGKILL a real `camp run` process while it sends concurrently, at many points, rerun it, and account for every
delivery (issue 16).

The receiver answers after 20 ms, like a provider's round trip, so the channel's threads hold many requests at
once (the receiver counts them: more than one in flight proves the run was concurrent). It kills the run just
after it has received the N-th request, for N spread over the run, while up to `concurrency` requests are in
flight and up to FLUSH answered deliveries are not yet recorded as sent. After the last, uninterrupted run: each
delivery is in the ledger once, sent, nothing in flight; the receiver accepted each idempotency key once, and
accepted exactly the ledger's sent deliveries; a request repeated after a kill carried its first key.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from collections import Counter
from datetime import datetime
from zoneinfo import ZoneInfo

import duckdb

from runtime.demo_data import make_shop
from tests.runtime.conftest import BIN, make_workspace
from tests.runtime.servers import start_hook
from tests.runtime.steps import run
from tests.runtime.test_channels import HOOK_CAMPAIGN, TEMPLATES

AS_OF = datetime(2026, 12, 1, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
CONCURRENCY = 16
# kill just after the receiver has this many requests (counted from the start of each attempt)
KILL_AFTER = [3, 17, 40, 8, 65, 25, 90, 12, 50, 33, 5, 70]


def test_sigkill_during_concurrent_dispatch_at_many_points_delivers_each_message_once(tmp_path, prefect_api):
    hook, server, url = start_hook()
    hook.latency_s = 0.02
    try:
        toml = "".join(f'[channels.{ch}]\nkind = "webhook"\nconcurrency = {CONCURRENCY}\n'
                       f'settings = {{ url = "{url}/{ch}", retries = 2, backoff = 0.01 }}\n' for ch in ("push", "sms"))
        root = make_workspace(tmp_path / "ws", {"hook.camp": HOOK_CAMPAIGN}, toml=toml, templates=TEMPLATES)
        make_shop(f"duckdb:///{root / 'shop.duckdb'}", 1500, seed=12)
        expected = run(root, "t_hook", AS_OF, dry_run=True)["statuses"]["pending"]
        assert expected > 400
        killed, outcomes = 0, []
        for n in KILL_AFTER:
            proc = _start(root, prefect_api, tmp_path / "err.txt")
            _kill_after(hook, proc, n)
            rc = proc.wait(timeout=240)
            hook.on_request = None
            outcomes.append((n, rc, len(hook.raw)))
            if rc == -signal.SIGKILL:
                killed += 1
            else:  # finished before the kill point: it must have finished cleanly
                assert rc == 0, (tmp_path / "err.txt").read_text()
        assert killed >= 10, outcomes
        assert hook.max_in_flight > 4, hook.max_in_flight  # the runs sent concurrently
        final = _start(root, prefect_api, tmp_path / "err.txt")
        assert final.wait(timeout=240) == 0, (tmp_path / "err.txt").read_text()
        con = duckdb.connect(str(root / "ledger.duckdb"), read_only=True)
        rows = con.execute("SELECT idempotency_key, status FROM camp_deliveries").fetchall()
        con.close()
        keys = [k for k, _ in rows]
        assert len(keys) == len(set(keys))  # each delivery once in the ledger
        assert not {s for _, s in rows} & {"pending", "dispatching"}
        sent = {k for k, s in rows if s == "sent"}
        assert len(sent) == expected  # nothing lost
        assert set(hook.delivered) == sent  # the receiver accepted exactly the ledger's deliveries, one key each
        repeated = Counter(r["key"] for r in hook.raw)
        assert set(repeated) == sent  # every request the receiver saw was for a delivery the ledger has as sent
        resent = sum(c - 1 for c in repeated.values())
        assert 0 < resent  # kills landed with requests in flight or answers not yet recorded: those went again
    finally:
        server.shutdown()


def _start(root, env, err) -> subprocess.Popen:
    """`camp run` in its own process; its stderr to a file (a pipe nobody reads could fill and stall it)."""
    with open(err, "w") as stderr:
        return subprocess.Popen([str(BIN / "camp"), "run", "hook.camp", "--as-of", AS_OF.isoformat(), "--batch-size",
                                 "120", "--no-progress"], cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=stderr)


def _kill_after(hook, proc: subprocess.Popen, n: int) -> None:
    start = len(hook.raw)
    done = threading.Event()

    def on_request(count: int, body: dict) -> None:
        if count - start >= n and not done.is_set():
            done.set()
            try:
                os.kill(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    hook.on_request = on_request
