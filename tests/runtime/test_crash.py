"""SIGKILL a real `camp run` process at many points, rerun it, and account for every delivery.

The receiving HTTP server kills the process itself at chosen moments: while it holds a request it
has accepted but not yet answered (the classic lost-acknowledgement window), just after answering,
and at timed moments during start-up, the audience snapshot and the decisions. After the last,
uninterrupted run: every recipient has exactly one ledger row, nothing is left in flight, the
server accepted each delivery exactly once (retries after a kill carry the same Idempotency-Key),
and the ledger's sent rows are exactly the server's deliveries.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from datetime import datetime
from zoneinfo import ZoneInfo

import duckdb

from runtime.channels.webhook import Webhook
from runtime.demo_data import make_shop
from runtime.dispatch import FLUSH
from tests.runtime.conftest import BIN, make_workspace
from tests.runtime.servers import start_hook
from tests.runtime.steps import run
from tests.runtime.test_channels import HOOK_CAMPAIGN, TEMPLATES

AS_OF = datetime(2026, 12, 1, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
# (how, when): "hold" kills while the k-th request of the attempt is accepted but unanswered,
# "after" just after answering it, "timer" after that many seconds from the process start.
KILLS = [("hold", 1), ("timer", 1.0), ("hold", 9), ("after", 4), ("timer", 2.5), ("hold", 27), ("after", 18),
         ("hold", 2), ("timer", 3.5), ("after", 30), ("hold", 45), ("after", 1)]


def test_sigkill_at_many_points_loses_nothing_and_delivers_each_message_once(tmp_path, prefect_api):
    prefect_env = prefect_api
    hook, server, url = start_hook()
    try:
        toml = (f'[channels.push]\nkind = "webhook"\nsettings = {{ url = "{url}/push", retries = 2, backoff = 0.01 }}\n'
                f'[channels.sms]\nkind = "webhook"\nsettings = {{ url = "{url}/sms", retries = 2, backoff = 0.01 }}\n')
        root = make_workspace(tmp_path / "ws", {"hook.camp": HOOK_CAMPAIGN}, toml=toml, templates=TEMPLATES)
        make_shop(f"duckdb:///{root / 'shop.duckdb'}", 800, seed=11)
        expected = run(root, "t_hook", AS_OF, dry_run=True)["statuses"]["pending"]
        assert expected > 100
        killed, outcomes = 0, []
        for how, when in KILLS:
            proc = _start(root, prefect_env)
            _arm(hook, proc, how, when)
            rc = proc.wait(timeout=180)
            hook.on_request = None
            outcomes.append((how, when, rc, len(hook.raw)))
            if rc == -signal.SIGKILL:
                killed += 1
            else:  # the run finished before the kill point: fine, but it must have finished cleanly
                assert rc == 0, proc.stderr.read()
        assert killed >= 10, outcomes
        final = _start(root, prefect_env)
        out, err = final.communicate(timeout=180)
        assert final.returncode == 0, err
        con = duckdb.connect(str(root / "ledger.duckdb"), read_only=True)
        rows = con.execute("SELECT idempotency_key, status, user_id FROM camp_deliveries").fetchall()
        runs = con.execute("SELECT status, count(*) FROM camp_runs GROUP BY 1").fetchall()
        con.close()
        keys = [k for k, _, _ in rows]
        assert len(keys) == len(set(keys))
        statuses = {s for _, s, _ in rows}
        assert "pending" not in statuses and "dispatching" not in statuses
        sent = {k for k, s, _ in rows if s == "sent"}
        assert len(sent) == expected  # nothing lost
        assert set(hook.delivered) == sent  # the server accepted exactly the ledger's deliveries, once each
        raw_keys = [r["key"] for r in hook.raw]
        assert set(raw_keys) == sent
        resent = len(raw_keys) - len(set(raw_keys))
        # the channels send concurrently: per kill, at most the requests in flight and the answers not yet recorded
        # as sent were repeated, each with its same key
        assert resent <= killed * (Webhook.default_concurrency + FLUSH)
        # a killed run's record is marked interrupted by the run that takes over its occurrence; none stays running
        assert dict(runs)["finished"] >= 1 and "running" not in dict(runs)
        assert 1 <= dict(runs).get("interrupted", 0) <= killed
    finally:
        server.shutdown()


def _start(root, env) -> subprocess.Popen:
    return subprocess.Popen([str(BIN / "camp"), "run", "hook.camp", "--as-of", AS_OF.isoformat(), "--batch-size",
                             "30", "--no-progress"], cwd=root, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _arm(hook, proc: subprocess.Popen, how: str, when) -> None:
    def kill() -> None:
        try:
            os.kill(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    if how == "timer":
        threading.Timer(when, kill).start()
        return
    start = len(hook.raw)

    def on_request(n: int, body: dict) -> None:
        if n - start == when:
            if how == "hold":
                kill()
                proc.wait()  # the client is dead before this request is answered
            else:
                threading.Timer(0.005, kill).start()

    hook.on_request = on_request
