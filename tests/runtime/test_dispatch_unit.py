"""runtime.dispatch alone: fake channels, an in-memory sink, a plan made by hand. No database, no ledger,
no warehouse, no Prefect (the last test runs the others in a fresh interpreter and checks that Prefect
was never imported)."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from compiler.plan import ArmPlan, ChannelPlan, StepPlan
from runtime.channels import Channel, Message, PermanentFailure, TransientFailure
from runtime.context import Channels, Counters, Pending, RunCaches
from runtime.decide import Recipient
from runtime.dispatch import BREAKER, ChannelDown, dispatch

ROOT = Path(__file__).resolve().parents[2]


def plan(*chain: str, template: str = "{{ user.id }}") -> StepPlan:
    """One arm whose fallback chain is `chain`; every channel's template is `template` (after its name)."""
    notify = [ChannelPlan(channel=c, template_source=f"{c} {template}", address_field="phone") for c in chain]
    return StepPlan(workspace="w", timezone="Asia/Shanghai", currency="CNY", campaign="c", step="s", occurrence="o",
                    audience_as_of=datetime(2026, 12, 1, tzinfo=UTC), dialect="duckdb", recipients_sql="",
                    user_fields={"phone": "text", "city": "text"}, tz_field=None, labels=[], consent_channels=None,
                    holdout=Decimal(0), arms=[ArmPlan(kind="all", name="all", notify=notify)], resources={}, caps=[],
                    quiet=[], priority=0)


class Fake(Channel):
    """A channel that answers from a script: user -> the exception to raise (else it takes the message)."""

    def __init__(self, name: str, fail: dict[str, Exception] | None = None, transactional: bool = False):
        super().__init__(name, {})
        self.fail = fail or {}
        self.transactional = transactional
        self.tried: list[str] = []

    def send(self, message: Message) -> str:
        self.tried.append(message.user_id)
        if message.user_id in self.fail:
            raise self.fail[message.user_id]
        return f"{self.name}-id-{message.user_id}"


class Sink:
    """What dispatch records, in lists; a fallback goes to the next channel of the chain (the ledger's sink
    re-checks consent, caps and budget there first: runtime.recheck, tested against real ledgers)."""

    def __init__(self, p: StepPlan):
        self.chain = [c.channel for c in p.arms[0].notify]
        self.outboxed: list[tuple[str, str]] = []  # (key, body)
        self.outbox_keys: list[str] = []
        self.dispatching_keys: list[str] = []
        self.sent_to: list[tuple[str, str | None]] = []  # (key, provider id)
        self.failures: list[tuple[str, str, str]] = []
        self.left_pending: list[str] = []
        self.moved: list[tuple[str, str | None, str]] = []  # (key, to channel, error)

    def coupons(self, items: list[Pending]) -> dict[str, dict]:
        return {}

    def outbox(self, messages: list[Message], keys: list[str], at: datetime) -> None:
        self.outboxed += [(m.key, m.body) for m in messages]
        self.outbox_keys += keys

    def dispatching(self, keys: list[str]) -> None:
        self.dispatching_keys += keys

    def sent(self, rows: list[tuple[str, datetime, str | None]]) -> None:
        self.sent_to += [(key, provider_id) for key, _, provider_id in rows]

    def failed(self, failures: list[tuple[str, str, str]]) -> None:
        self.failures += failures

    def pending_again(self, keys: list[str], error: str) -> None:
        self.left_pending += keys

    def fall_back(self, moving: list[tuple[Pending, str]]) -> list[Pending]:
        out = []
        for it, error in moving:
            to = self.chain[self.chain.index(it.channel) + 1]
            self.moved.append((it.key, to, error))
            out.append(Pending(it.key, it.user_id, it.arm, to, it.coupon_id, it.recipient))
        return out


def item(user: str, channel: str | None, **fields) -> Pending:
    r = Recipient(seq=0, user_id=user, held_out=False, fields={"phone": f"+86{user}", **fields}, labels={},
                  consent={})
    return Pending(f"c/s/o/{user}", user, "all", channel, None, r)


def run(p: StepPlan, items: list[Pending], *fakes: Fake, sink: Sink | None = None) -> tuple[Sink, Counters]:
    """Dispatch `items`; the counters' `+counts` below leaves out the zero `sent` the outbox call adds."""
    sink, counters = sink or Sink(p), Counters()
    dispatch(items, RunCaches(p, Channels({}, {f.name: f for f in fakes})), "HASH", counters, sink)
    return sink, counters


def test_the_outbox_is_written_in_one_call_and_other_channels_are_sent_one_by_one():
    p = plan("push", "sms")
    sms, push = Fake("sms", transactional=True), Fake("push")
    sink, n = run(p, [item("1", "sms"), item("2", "push"), item("3", None), item("4", "push")], sms, push)
    assert sink.outboxed == [("c/s/o/1", "sms 1")] and sink.outbox_keys == ["c/s/o/1", "c/s/o/3"]  # 3: no message
    assert sms.tried == []  # a transactional channel is never called one by one
    assert sink.dispatching_keys == ["c/s/o/2", "c/s/o/4"]  # marked before the first send
    assert push.tried == ["2", "4"]
    assert sink.sent_to == [("c/s/o/2", "push-id-2"), ("c/s/o/4", "push-id-4")]
    assert +n.counts == {"sent": 4} and not sink.failures and not sink.moved


def test_a_permanent_failure_falls_back_to_the_next_channel():
    p = plan("push", "sms", "email")
    push, sms, email = Fake("push", {"1": PermanentFailure("400 no such device")}), Fake("sms"), Fake("email")
    sink, n = run(p, [item("1", "push"), item("2", "push")], push, sms, email)
    assert sink.moved == [("c/s/o/1", "sms", "push: 400 no such device")]
    assert sms.tried == ["1"] and email.tried == []
    assert sink.sent_to == [("c/s/o/2", "push-id-2"), ("c/s/o/1", "sms-id-1")]
    assert +n.counts == {"sent": 2} and not sink.failures


def test_a_permanent_failure_on_every_channel_fails_on_the_last_with_its_reason():
    p = plan("push", "sms")
    push, sms = Fake("push", {"1": PermanentFailure("400 gone")}), Fake("sms", {"1": PermanentFailure("550 no number")})
    sink, n = run(p, [item("1", "push")], push, sms)
    assert sink.moved == [("c/s/o/1", "sms", "push: 400 gone")]
    assert sink.failures == [("c/s/o/1", "permanent", "sms: 550 no number")]
    assert +n.counts == {"failed": 1} and n.reasons == {"failed: permanent": 1} and not sink.sent_to


def test_a_transient_failure_fails_the_delivery_without_falling_back():
    """After the adapter's own retries a transient failure is `failed: transient` (docs/runtime.md), whether the
    channel answers the next message (the streak is cut) or not (the batch ends)."""
    p = plan("push", "sms")
    push = Fake("push", {"1": TransientFailure("503"), "3": TransientFailure("timeout")})
    sms = Fake("sms")
    sink, n = run(p, [item("1", "push"), item("2", "push"), item("3", "push")], push, sms)
    assert sink.failures == [("c/s/o/1", "transient", "push: 503"), ("c/s/o/3", "transient", "push: timeout")]
    assert sink.sent_to == [("c/s/o/2", "push-id-2")]
    assert not sink.moved and sms.tried == [] and not sink.left_pending
    assert +n.counts == {"sent": 1, "failed": 2} and n.reasons == {"failed: transient": 2}


def test_the_breaker_stops_after_transient_failures_in_a_row_and_leaves_them_pending():
    p = plan("push", "sms")
    users = [str(u) for u in range(1, BREAKER + 5)]
    push = Fake("push", {u: TransientFailure("503") for u in users if u != "1"} | {"1": PermanentFailure("400")})
    sms, sink = Fake("sms"), Sink(p)
    with pytest.raises(ChannelDown, match=f"{BREAKER} messages in a row failed"):
        run(p, [item(u, "push") for u in users], push, sms, sink=sink)
    down = users[1:BREAKER + 1]
    assert push.tried == users[:BREAKER + 1]  # no message after the breaker tripped
    # for the next run of the occurrence: those that failed, then those never started (never handed to the channel)
    assert sink.left_pending == [f"c/s/o/{u}" for u in down + users[BREAKER + 1:]]
    # all of them before the first send; 1 again on its fallback channel
    assert sink.dispatching_keys == [f"c/s/o/{u}" for u in users] + ["c/s/o/1"]
    assert sink.moved == [("c/s/o/1", "sms", "push: 400")] and sms.tried == ["1"]  # earlier fallbacks go out
    assert not sink.failures


def test_the_breaker_counts_failures_in_a_row_on_one_channel():
    p = plan("push", "sms")
    users = [str(u) for u in range(1, 2 * BREAKER)]
    flaky = {u: TransientFailure("503") for u in users if u != str(BREAKER)}  # one answer in the middle
    push, sms = Fake("push", flaky), Fake("sms", {u: TransientFailure("503") for u in users})
    sink, n = run(p, [item(u, "push" if int(u) % 4 else "sms") for u in users], push, sms)
    assert len(push.tried) + len(sms.tried) == len(users) and not sink.left_pending
    assert +n.counts == {"sent": 1, "failed": len(users) - 1}


def test_a_message_that_cannot_be_rendered_falls_back_then_fails_with_the_template_reason():
    p = plan("push", "sms", template="{{ user.city }}")
    push, sms = Fake("push"), Fake("sms")
    sink, n = run(p, [item("1", "push"), item("2", "push", city="上海")], push, sms)
    assert push.tried == ["2"] and sms.tried == []  # never handed to a channel
    assert [m[:2] for m in sink.moved] == [("c/s/o/1", "sms")] and "missing value" in sink.moved[0][2]
    assert [f[:2] for f in sink.failures] == [("c/s/o/1", "template: missing value")]
    assert sink.failures[0][2].startswith("sms: ")
    assert +n.counts == {"sent": 1, "failed": 1} and n.reasons == {"failed: template: missing value": 1}


def test_a_message_that_cannot_be_rendered_for_the_outbox_fails_alone():
    p = plan("sms", template="{{ 1 // user.city }}")
    sms = Fake("sms", transactional=True)
    sink, n = run(p, [item("1", "sms", city=0), item("2", "sms", city=1)], sms)
    assert sink.outbox_keys == ["c/s/o/2"] and sink.outboxed == [("c/s/o/2", "sms 1")]
    assert [f[:2] for f in sink.failures] == [("c/s/o/1", "template: error")]
    assert +n.counts == {"sent": 1, "failed": 1}


def test_dispatch_runs_without_prefect():
    """The tests above in a fresh interpreter: none of them imports Prefect."""
    code = ("import sys\n"
            "import tests.runtime.test_dispatch_unit as t\n"
            "for name, fn in vars(t).items():\n"
            "    if name.startswith('test_') and name != 'test_dispatch_runs_without_prefect':\n"
            "        fn()\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'prefect'))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
