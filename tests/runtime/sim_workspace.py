"""A small workspace for the simulation proofs: two daily push campaigns of one exclusive group at the same minute
(collisions decided by priority), a journey's follow-up two hours later, a daily budget that runs out, and policy
caps that bind within the week; plus an event-triggered campaign on first orders."""

from __future__ import annotations

from pathlib import Path

from tests.runtime.conftest import make_workspace

POLICY = '''
policy {
  cap 3 messages per user per 7d
  cap 1 sms per user per 7d
  exclusive group "g"
  cost sms 0.05 CNY, push 0.02 CNY
}
'''
A = '''
campaign promo_a "上新 A" {
  why retention
    goal any(orders) within 3d
  who member_level in ("normal", "silver", "gold")
    holdout 10%
  what message
  when daily at 10:00 from 2026-11-24 to 2026-11-28 tz "Asia/Shanghai"
  where push template "sim/push.j2" else sms template "sim/sms.j2"
  how
    step touch: notify where
    step nudge after 2h unless any(orders since touch): notify sms template "sim/sms.j2"
  how much
    budget 1.2 CNY per day
    priority 10
    exclusive "g"
}
'''
B = '''
campaign promo_b "上新 B" {
  why retention
    goal any(orders) within 3d
  who member_level in ("silver", "gold")
  what message
  when daily at 10:00 from 2026-11-24 to 2026-11-28 tz "Asia/Shanghai"
  where push template "sim/push.j2"
  how
    step touch: notify where
  how much
    priority 5
    exclusive "g"
}
'''
WELCOME = '''
campaign welcome "首单欢迎" {
  why activation
    goal any(orders) within 7d
  who registered before 1d ago
  what message
  when on orders first
  where push template "sim/push.j2"
  how
    step hello: notify where
}
'''
TEMPLATES = {"sim/push.j2": "{{ campaign.title }}", "sim/sms.j2": "{{ campaign.title }} 短信"}
DAYS = [f"2026-11-{d}" for d in range(24, 29)]


def sim_workspace(root: Path, events: bool = False) -> Path:
    files = {"a.camp": A, "b.camp": B}
    if events:
        files["welcome.camp"] = WELCOME
    return make_workspace(root, files, policy=POLICY, templates=TEMPLATES)
