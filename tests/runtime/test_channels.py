"""Channels against real receivers: webhook (HTTP server with 5xx, timeouts, 4xx) and email (SMTP server)."""

from __future__ import annotations

import hashlib
from collections import Counter
from datetime import datetime
from zoneinfo import ZoneInfo

import duckdb
import pytest

from runtime.demo_data import make_shop
from tests.runtime.conftest import free_port, make_workspace
from tests.runtime.servers import start_hook, start_smtp
from tests.runtime.steps import run

AS_OF = datetime(2026, 12, 1, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
HOOK_CAMPAIGN = '''
campaign t_hook {
  who count(orders within 365d) >= 1
  when daily at 10:00 tz "Asia/Shanghai"
  where push template "t/push.j2" else sms template "t/sms.j2"
  how
    step touch: notify where
}
'''
MAIL_CAMPAIGN = '''
campaign t_mail {
  who count(orders within 365d) >= 1
  when daily at 10:00 tz "Asia/Shanghai"
  where email template "t/email.j2" subject "{{ user.name | default('会员') }}，您好" else sms template "t/sms.j2"
  how
    step touch: notify where
}
'''
TEMPLATES = {"t/push.j2": "hi {{ user.name | default('') }}", "t/sms.j2": "sms {{ user.id }}",
             "t/email.j2": "{{ campaign.name }} for {{ user.id }}"}


def _rows(root, sql, params=()):
    con = duckdb.connect(str(root / "ledger.duckdb"), read_only=True)
    try:
        return con.execute(sql, params).fetchall()
    finally:
        con.close()


def _consented(root, channel):
    """Users in the audience (an order in the last 365 days) who consented to `channel`."""
    con = duckdb.connect(str(root / "shop.duckdb"), read_only=True)
    try:
        return {str(u) for (u,) in con.execute(
            "SELECT user_id FROM consent WHERE channel = ? AND user_id IN (SELECT user_id FROM orders WHERE "
            "created_at >= TIMESTAMPTZ '2025-12-01 02:00:00+00' AND created_at < TIMESTAMPTZ '2026-12-01 02:00:00+00')",
            (channel,)).fetchall()}
    finally:
        con.close()


@pytest.fixture
def hook():
    h, server, url = start_hook()
    yield h, url
    server.shutdown()


def test_webhook_retries_5xx_and_timeouts_without_duplicates_and_falls_back_on_4xx(tmp_path, prefect_api, hook):
    h, url = hook
    toml = (f'[channels.push]\nkind = "webhook"\nsettings = {{ url = "{url}/push", retries = 3, backoff = 0.02, '
            f'timeout = 0.4 }}\n[channels.sms]\nkind = "webhook"\nsettings = {{ url = "{url}/sms", retries = 2, '
            f'backoff = 0.02, timeout = 0.4 }}\n')
    root = make_workspace(tmp_path / "ws", {"hook.camp": HOOK_CAMPAIGN}, toml=toml, templates=TEMPLATES)
    make_shop(f"duckdb:///{root / 'shop.duckdb'}", 150, seed=5)
    push, sms = _consented(root, "push"), _consented(root, "sms")
    dry = run(root, "t_hook", AS_OF, dry_run=True)
    assert dry["statuses"]["pending"] > 10
    both = sorted(push & sms, key=int)
    flaky, slow, dead, rejected = both[0], both[1], both[2], both[3]
    h.fail_times = {flaky: 2, dead: 100}
    h.slow_times = {slow: 1}
    h.slow_s = 0.8
    h.reject = {("/push", rejected)}
    summary = run(root, "t_hook", AS_OF, batch_size=40)
    ledger = {u: (s, ch, r, e, pid) for u, s, ch, r, e, pid in _rows(
        root, "SELECT user_id, status, channel, reason, error, provider_message_id FROM camp_deliveries")}
    sent = {u for u, v in ledger.items() if v[0] == "sent"}
    # exactly the sent deliveries were delivered, once each, on the channel the ledger says
    assert {d["user_id"] for d in h.delivered.values()} == sent
    assert len(h.delivered) == len(sent)
    assert all(h.delivered[f"t_hook/touch/2026-12-01T02:00Z/{u}"]["path"] == "/" + ledger[u][1] for u in sent)
    assert all(ledger[u][4].startswith("msg-") for u in sent)
    # 5xx twice, then accepted: three requests with one key, one delivery
    assert [r["key"] for r in h.raw].count(f"t_hook/touch/2026-12-01T02:00Z/{flaky}") == 3
    assert ledger[flaky][0] == "sent"
    # a timeout: the receiver got the first request late, the retry carried the same key: one delivery
    assert sum(1 for r in h.raw if r["user_id"] == slow) == 2 and ledger[slow][0] == "sent"
    # always 5xx: retried, then logged as failed, never delivered
    assert ledger[dead][:3] == ("failed", "push", "transient") and "503" in ledger[dead][3]
    assert sum(1 for r in h.raw if r["user_id"] == dead) == 4
    # 422 on push: permanent, so the sms fallback delivers it
    assert ledger[rejected][:2] == ("sent", "sms") and "422" in ledger[rejected][3]
    assert summary["statuses"]["failed"] == 1
    # a rerun of the finished occurrence sends nothing at all
    requests = len(h.raw)
    run(root, "t_hook", AS_OF)
    assert len(h.raw) == requests


def test_email_goes_through_a_real_smtp_server_with_a_stable_message_id(tmp_path, prefect_api):
    port = free_port()
    controller, messages = start_smtp(port)
    try:
        toml = f'[channels.email]\nkind = "smtp"\nsettings = {{ host = "127.0.0.1", port = {port} }}\n'
        root = make_workspace(tmp_path / "ws", {"mail.camp": MAIL_CAMPAIGN}, toml=toml, templates=TEMPLATES)
        make_shop(f"duckdb:///{root / 'shop.duckdb'}", 150, seed=6)
        email, sms = _consented(root, "email"), _consented(root, "sms")
        dry = run(root, "t_mail", AS_OF, dry_run=True)
        assert dry["statuses"]["pending"] > 5
        con = duckdb.connect(str(root / "shop.duckdb"))
        bounce = sorted(email & sms, key=int)[0]
        con.execute("UPDATE users SET email = 'nobody@bounce.invalid' WHERE user_id = ?", (int(bounce),))
        con.close()
        run(root, "t_mail", AS_OF)
        ledger = {u: (s, ch, e) for u, s, ch, e in _rows(
            root, "SELECT user_id, status, channel, error FROM camp_deliveries")}
        by_email = {u for u, v in ledger.items() if v[:2] == ("sent", "email")}
        assert by_email and len(messages) == len(by_email)
        got = {m["X-Camp-Idempotency-Key"].rsplit("/", 1)[1]: m for m in messages}
        assert set(got) == by_email
        user = sorted(by_email, key=int)[0]
        m = got[user]
        key = f"t_mail/touch/2026-12-01T02:00Z/{user}"
        assert m["Message-ID"] == f"<{hashlib.sha256(key.encode()).hexdigest()[:32]}@camp>"  # the same on a retry
        assert m.get_content().strip() == f"t_mail for {user}"
        assert m["Subject"].endswith("您好")
        # the bounced address is permanent: the SMS fallback went to the outbox instead
        assert ledger[bounce][:2] == ("sent", "sms") and "550" in ledger[bounce][2]
        outbox = {u for (u,) in _rows(root, "SELECT user_id FROM camp_outbox")}
        assert outbox == {u for u, v in ledger.items() if v[:2] == ("sent", "sms")}
    finally:
        controller.stop()


def test_a_provider_that_is_down_stops_the_run_and_the_rerun_delivers_everything_once(tmp_path, prefect_api, hook):
    from runtime.dispatch import ChannelDown

    h, url = hook
    toml = (f'[channels.push]\nkind = "webhook"\nsettings = {{ url = "{url}/push", retries = 1, backoff = 0.01 }}\n'
            f'[channels.sms]\nkind = "webhook"\nsettings = {{ url = "{url}/sms", retries = 1, backoff = 0.01 }}\n')
    root = make_workspace(tmp_path / "ws", {"hook.camp": HOOK_CAMPAIGN}, toml=toml, templates=TEMPLATES)
    make_shop(f"duckdb:///{root / 'shop.duckdb'}", 120, seed=8)
    expected = run(root, "t_hook", AS_OF, dry_run=True)["statuses"]["pending"]
    h.fail_times = {str(u): 1000 for u in range(1, 1000)}  # everyone: 503
    with pytest.raises(ChannelDown, match="5 messages in a row failed"):
        run(root, "t_hook", AS_OF, batch_size=50)
    statuses = dict(_rows(root, "SELECT status, count(*) FROM camp_deliveries GROUP BY 1"))
    assert "failed" not in statuses and statuses.get("sent", 0) == 0
    # the channels send concurrently, but a channel starts with one message in flight and widens only on answers:
    # the breaker's channel got five messages, two attempts each; the other (down too) never more
    per_path = Counter(r["path"] for r in h.raw)
    assert max(per_path.values()) == 5 * 2 and set(per_path) <= {"/push", "/sms"}, per_path
    h.fail_times = {}
    run(root, "t_hook", AS_OF, batch_size=50)
    sent = {u for (u,) in _rows(root, "SELECT user_id FROM camp_deliveries WHERE status = 'sent'")}
    assert len(sent) == expected == len(h.delivered)
    assert {d["user_id"] for d in h.delivered.values()} == sent


SOLO_HOOK = '''
campaign t_solo {
  who count(orders within 365d) >= 1
  when daily at 10:00 tz "Asia/Shanghai"
  where push template "t/solo.j2"
  how
    step touch: notify where
}
'''


def test_a_template_that_fails_on_the_last_webhook_channel_says_why(tmp_path, prefect_api, hook):
    """Webhooks are sent one by one: a message that cannot be rendered for one user, on a chain with no later
    channel, is failed with the template's reason (not `permanent`), and the others go out."""
    h, url = hook
    toml = f'[channels.push]\nkind = "webhook"\nsettings = {{ url = "{url}/push", retries = 1, backoff = 0.02 }}\n'
    solo = ("{% macro down(n) %}{{ down(n + 1) }}{% endmacro %}"
            "{% if user.id == '" + "{bad}" + "' %}{{ down(0) }}{% else %}hi {{ user.id }}{% endif %}")
    root = make_workspace(tmp_path / "ws", {"solo.camp": SOLO_HOOK}, toml=toml, templates={"t/solo.j2": "x"})
    make_shop(f"duckdb:///{root / 'shop.duckdb'}", 150, seed=5)
    bad = sorted(_consented(root, "push"), key=int)[0]
    (root / "templates" / "t" / "solo.j2").write_text(solo.replace("{bad}", bad), encoding="utf-8")
    run(root, "t_solo", AS_OF, batch_size=40)
    ledger = {u: (s, r) for u, s, r in _rows(root, "SELECT user_id, status, reason FROM camp_deliveries")}
    assert ledger[bad] == ("failed", "template: recursion limit")
    assert all(s == "sent" for u, (s, _) in ledger.items() if u != bad and s not in ("suppressed", "deferred"))
    assert bad not in {d["user_id"] for d in h.delivered.values()} and len(h.delivered) > 10


def test_a_run_that_fails_after_sending_says_what_it_delivered(tmp_path, prefect_api, hook):
    """`camp run` as a real process: the provider answers for the first users, then goes down. The run fails, and
    both its output and its record in the ledger (`camp runs --json`) say how many messages went out before."""
    import json

    from tests.runtime.conftest import camp

    h, url = hook
    toml = (f'[channels.push]\nkind = "webhook"\nsettings = {{ url = "{url}/push", retries = 1, backoff = 0.01 }}\n'
            f'[channels.sms]\nkind = "webhook"\nsettings = {{ url = "{url}/sms", retries = 1, backoff = 0.01 }}\n')
    root = make_workspace(tmp_path / "ws", {"hook.camp": HOOK_CAMPAIGN}, toml=toml, templates=TEMPLATES)
    make_shop(f"duckdb:///{root / 'shop.duckdb'}", 120, seed=8)
    con = duckdb.connect(str(root / "shop.duckdb"), read_only=True)
    users = sorted(u for (u,) in con.execute("SELECT DISTINCT user_id FROM consent").fetchall())
    con.close()
    h.fail_times = {str(u): 1000 for u in users[len(users) // 3:]}  # a third answered, then the provider is down
    r = camp("run", "hook.camp", "--as-of", AS_OF.isoformat(), "--no-progress", "--batch-size", "500", cwd=root,
             env=prefect_api)
    assert r.returncode == 1, r.stdout + r.stderr
    sent = {u for (u,) in _rows(root, "SELECT user_id FROM camp_deliveries WHERE status = 'sent'")}
    assert 0 < len(sent) == len(h.delivered)
    assert f"stopped after sending {len(sent):,} in this run" in r.stderr, r.stderr
    assert "sends the rest and nothing twice" in r.stderr and "Traceback" not in r.stderr
    runs = json.loads(camp("runs", "--json", cwd=root, env=prefect_api).stdout)
    (record,) = runs
    assert record["status"] == "failed" and record["summary"]["this_run"]["sent"] == len(sent)
    assert record["summary"]["error"].startswith("ChannelDown: channel push: 5 messages in a row failed")

