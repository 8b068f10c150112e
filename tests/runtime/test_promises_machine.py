"""A hypothesis state machine over one small workspace, on DuckDB and on PostgreSQL (warehouse and
ledger both): campaigns run at moving clock times (quiet hours defer some users), users withdraw and
grant consent and lose their phone number, the push provider starts rejecting a user (a permanent
failure: the fallback to SMS), the journey's follow-up runs, a second campaign shares the policy's SMS
cap. After every step, counted by the test itself from the receivers and the ledger's raw rows:

- no message went to a user who did not consent to its channel at the moment it went out, or (SMS)
  who had no phone number then, or whose local time was inside quiet hours;
- no cap was exceeded: any `n + 1` counted deliveries a cap `n per D` covers span more than D;
- spend equals the deliveries' costs and stays within the budget.

The engine's functions are called directly (no Prefect, no subprocess), the way runtime.flows calls
them. CI budget: about a minute per engine; `CAMP_FUZZ=long` runs many more examples.
"""

from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from compiler.step_plan import build_plan
from runtime.context import Run
from runtime.demo_data import make_shop
from runtime.journey import due_occurrences
from runtime.ledger import open_ledger
from runtime.ledger.status import COUNTED
from runtime.warehouse import connect
from tests.conftest import PG_URL, require_postgres
from tests.profiles import examples
from tests.runtime.conftest import make_workspace
from tests.runtime.servers import start_hook
from tests.runtime.steps import program_of, run_engine

SH = ZoneInfo("Asia/Shanghai")
LONG = os.environ.get("CAMP_FUZZ") == "long"
USERS = 40
TOUCH = '''
campaign m_touch {
  who count(orders within 365d) >= 1
  what coupon M1 { value 1 CNY  usable 1d after issue }
  when daily at 10:00 tz "Asia/Shanghai"
  where push template "m/push.j2" else sms template "m/sms.j2"
  how
    step touch: give what, notify where
    step reminder after 1d: notify sms template "m/again.j2"
  how much
    budget 30 CNY total
    expect redemption 50%
}
'''
OTHER = '''
campaign m_other {
  who count(orders within 365d) >= 2
  when daily at 12:00 tz "Asia/Shanghai"
  where sms template "m/sms.j2"
  how
    step touch: notify where
}
'''
POLICY = '''policy {
  cap 1 sms per user per 7d
  cap 3 messages per user per 3d
  quiet 22:00-08:00
  cost sms 0.05 CNY, push 0.01 CNY
}
'''
CAPS = [("sms", 1, timedelta(days=7)), (None, 3, timedelta(days=3))]  # (channel or any message, n, window)
BUDGETS = {"m_touch": Decimal(30)}
TEMPLATES = {"m/push.j2": "push {{ user.id }}", "m/sms.j2": "sms {{ user.id }}", "m/again.j2": "again {{ user.id }}"}
QUIET = (time(22, 0), time(8, 0))


@dataclass
class Env:
    kind: str
    root: Path
    program: object
    ws: object
    hook: object
    url: str
    template: str  # DuckDB: the shop file to copy; PostgreSQL: the schema to copy from


@pytest.fixture(scope="module")
def hook():
    h, server, url = start_hook()
    yield h, url
    server.shutdown()


def _env(kind: str, tmp: Path, hook) -> Env:
    h, url = hook
    toml = f'[channels.push]\nkind = "webhook"\nsettings = {{ url = "{url}/push", retries = 0, backoff = 0.01 }}\n'
    root = make_workspace(tmp / kind, {"touch.camp": TOUCH, "other.camp": OTHER}, toml=toml, policy=POLICY,
                          templates=TEMPLATES)
    ws, program = program_of(root)
    if kind == "duckdb":
        shop = root / "template.duckdb"
        make_shop(f"duckdb:///{shop}", USERS, seed=41)
        return Env(kind, root, program, ws, h, url, str(shop))
    pg = require_postgres()
    schema = f"camp_machine_tmpl_{os.getpid()}"
    pg.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    pg.execute(f"CREATE SCHEMA {schema}")
    pg.close()
    make_shop(f"{PG_URL}?options=-csearch_path%3D{schema}", USERS, seed=41)
    return Env(kind, root, program, ws, h, url, schema)


class Promises(RuleBasedStateMachine):
    env: Env  # set by the test

    @initialize()
    def fresh(self):
        env = self.env
        self.schema = None
        if env.kind == "duckdb":
            name = uuid.uuid4().hex[:8]
            shop = env.root / f"shop-{name}.duckdb"
            shutil.copy(env.template, shop)
            self.data_url, self.ledger_url = f"duckdb:///{shop}", f"duckdb:///{env.root / f'ledger-{name}.duckdb'}"
            self.files = [shop, env.root / f"ledger-{name}.duckdb"]
        else:
            self.schema = f"camp_machine_{uuid.uuid4().hex[:10]}"
            pg = connect(PG_URL)
            pg.execute(f"CREATE SCHEMA {self.schema}")
            for table in ("users", "orders", "visits", "user_tags", "consent"):
                pg.execute(f'CREATE TABLE {self.schema}."{table}" AS SELECT * FROM {env.template}."{table}"')
            pg.close()
            self.data_url = self.ledger_url = f"{PG_URL}?options=-csearch_path%3D{self.schema}"
            self.files = []
        env.hook.delivered.clear()
        env.hook.raw.clear()
        env.hook.reject = set()
        self.clock = datetime(2026, 12, 1, 23, 0, tzinfo=SH)  # Shanghai is quiet, London not
        rows = self._data("SELECT user_id, channel FROM consent")
        self.consent = {(str(u), ch) for u, ch in rows}
        self.phone = {str(u) for (u,) in self._data("SELECT user_id FROM users WHERE phone IS NOT NULL")}
        self.zone = {str(u): ZoneInfo(z or "Asia/Shanghai") for u, z in self._data("SELECT user_id, timezone FROM users")}
        self.seen: set[str] = set()
        self.lg = open_ledger(self.ledger_url)  # one ledger session per example, as one process would have
        # every example starts with messages waiting for the morning in Shanghai, and with the other
        # campaign's SMS sent the next day (a fallback to SMS of a waiting push meets the SMS cap)
        self._run("m_touch")
        self.messages_went_only_where_allowed_at_that_moment()
        self.clock = datetime(2026, 12, 2, 12, 30, tzinfo=SH)
        self._run("m_other")

    def teardown(self):
        if getattr(self, "lg", None) is not None:
            self.lg.close()
        if self.schema:
            pg = connect(PG_URL)
            pg.execute(f"DROP SCHEMA IF EXISTS {self.schema} CASCADE")
            pg.close()
        for f in getattr(self, "files", []):
            f.unlink(missing_ok=True)

    # ------------------------------------------------------------ the world
    def _data(self, sql: str, params=None):
        wh = connect(self.data_url)
        try:
            if wh.dialect == "postgres":
                sql = sql.replace("?", "%s")
            return wh.execute(sql, params).fetchall() if sql.lstrip().upper().startswith("SELECT") else \
                wh.execute(sql, params)
        finally:
            wh.close()

    def _ledger(self, sql: str, params=()):
        return self.lg.rows(sql, params)

    def _run(self, campaign: str, step: str | None = None, occurrence: str | None = None) -> None:
        """One step of one campaign at the clock, as runtime.flows.run_step does it."""
        c = self.env.program.campaigns[campaign]
        plan = build_plan(self.env.program, c, self.clock, "duckdb" if self.env.kind == "duckdb" else "postgres",
                          self.env.ws.template_dir, step, "machine", occurrence=occurrence)
        run = Run(plan, self.lg, self.data_url, self.clock, channel_config={
            n: s.model_dump() for n, s in self.env.ws.config.channels.items()})
        run_engine(run, 16)

    users = st.integers(1, USERS).map(str)
    channels = st.sampled_from(["push", "sms"])

    @rule(hours=st.sampled_from([1, 2, 5, 9, 14, 23, 30, 49]))
    def advance(self, hours):
        self.clock += timedelta(hours=hours)

    @rule()
    def next_morning(self):
        """08:30 in Shanghai, the next day: quiet hours are over for most users."""
        day = self.clock.astimezone(SH).date() + timedelta(days=1)
        self.clock = datetime.combine(day, time(8, 30), tzinfo=SH)

    @rule()
    def run_touch(self):
        self._run("m_touch")

    @rule()
    def run_other(self):
        self._run("m_other")

    @rule()
    def run_reminder(self):
        c = self.env.program.campaigns["m_touch"]
        from compiler.journey import journey_plan

        due = due_occurrences(self.lg, "m_touch", "reminder", journey_plan(c, c.steps[1]), self.clock,
                              self.env.program.timezone)
        for occurrence in due:
            self._run("m_touch", "reminder", occurrence)

    def _some(self, data, sql: str):
        """A user drawn from those the ledger names (waiting, reached ...), else from everyone."""
        found = sorted({u for (u,) in self._ledger(sql)}, key=int)
        return data.draw(st.sampled_from(found) if found else self.users, label="user")

    def _withdraw(self, user, channel):
        self._data("DELETE FROM consent WHERE user_id = ? AND channel = ?", (int(user), channel))
        self.consent.discard((user, channel))

    @rule(user=users, channel=channels)
    def withdraw(self, user, channel):
        self._withdraw(user, channel)

    @rule(data=st.data())
    def withdraw_while_waiting(self, data):
        """A user whose message waits for quiet hours to end withdraws consent to its channel."""
        waiting = sorted(self._ledger("SELECT user_id, channel FROM camp_deliveries WHERE status = 'deferred'"))
        if waiting:
            self._withdraw(*data.draw(st.sampled_from(waiting), label="waiting"))

    @rule(data=st.data())
    def withdraw_before_the_follow_up(self, data):
        """A user the journey's first step reached withdraws SMS consent before the reminder."""
        self._withdraw(self._some(data, "SELECT user_id FROM camp_deliveries WHERE step = 'touch' AND "
                                        "status = 'sent'"), "sms")

    @rule(user=users, channel=channels)
    def grant(self, user, channel):
        if (user, channel) not in self.consent:
            self._data("INSERT INTO consent VALUES (?, ?)", (int(user), channel))
            self.consent.add((user, channel))

    @rule(user=users)
    def lose_phone(self, user):
        self._data("UPDATE users SET phone = NULL WHERE user_id = ?", (int(user),))
        self.phone.discard(user)

    @rule(user=users)
    def push_rejects(self, user):
        self.env.hook.reject.add(("/push", user))

    @rule(data=st.data())
    def push_rejects_someone_who_had_sms(self, data):
        """The fallback to SMS of this user would be their second SMS this week."""
        user = self._some(data, "SELECT user_id FROM camp_deliveries WHERE channel = 'sms' AND status = 'sent'")
        self.env.hook.reject.add(("/push", user))

    # ------------------------------------------------------------ what must always hold
    @invariant()
    def messages_went_only_where_allowed_at_that_moment(self):
        """Since the last step: every message that went out (webhook deliveries, outbox rows) was to a
        user who consented to that channel, had an address for it, and was outside quiet hours."""
        out = [(k, d["user_id"], d["path"].strip("/"), d.get("address")) for k, d in
               list(self.env.hook.delivered.items())]
        out += [(k, u, ch, a) for k, u, ch, a in self._ledger(
            "SELECT idempotency_key, user_id, channel, address FROM camp_outbox")]
        for key, user, channel, address in out:
            if key in self.seen:
                continue
            self.seen.add(key)
            assert (user, channel) in self.consent, f"{key}: {channel} to {user}, who does not consent"
            if channel == "sms":
                assert user in self.phone and address, f"{key}: sms to {user}, who has no phone"
            local = self.clock.astimezone(self.zone[user]).time()
            assert QUIET[1] <= local < QUIET[0], f"{key}: sent to {user} at {local}, in quiet hours"

    @invariant()
    def no_cap_is_exceeded(self):
        rows = self._ledger("SELECT user_id, channel, status, due_at FROM camp_deliveries WHERE channel IS NOT NULL")
        statuses = ", ".join(COUNTED)
        for channel, n, window in CAPS:
            per_user: dict[str, list[datetime]] = {}
            for user, ch, status, due in rows:
                if status in COUNTED and (channel is None or ch == channel):
                    per_user.setdefault(user, []).append(due)
            for user, dues in per_user.items():
                dues.sort()
                for i in range(len(dues) - n):
                    assert dues[i + n] - dues[i] > window, (
                        f"user {user}: {n + 1} {channel or 'messages'} ({statuses}) within {window}: {dues}")

    @invariant()
    def spend_is_what_deliveries_cost_within_budget(self):
        spend = dict(self._ledger("SELECT campaign, sum(amount) FROM camp_spend GROUP BY campaign"))
        cost = dict(self._ledger("SELECT campaign, sum(cost) FROM camp_deliveries GROUP BY campaign"))
        for campaign, amount in spend.items():
            assert amount == cost.get(campaign, 0), (campaign, amount, cost.get(campaign))
            if campaign in BUDGETS:
                assert amount <= BUDGETS[campaign]


SETTINGS = settings(max_examples=examples(80 if LONG else 12), stateful_step_count=30 if LONG else 14, deadline=None,
                    suppress_health_check=list(HealthCheck), derandomize=not LONG, print_blob=True)


@pytest.mark.parametrize("kind", ["duckdb", "postgres"])
def test_consent_caps_and_budget_hold_at_every_moment(kind, tmp_path, hook):
    env = _env(kind, tmp_path, hook)
    machine = type(f"Promises_{kind}", (Promises,), {"env": env})
    try:
        run_state_machine_as_test(machine, settings=SETTINGS)
    finally:
        if kind == "postgres":
            pg = connect(PG_URL)
            pg.execute(f"DROP SCHEMA IF EXISTS {env.template} CASCADE")
            pg.close()
