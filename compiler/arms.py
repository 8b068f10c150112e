"""A step's actions + the template files -> its arms (ArmPlan: what each group of recipients is given and the
channel fallback chain, with each template's source read from the workspace) and the user fields those
templates and subjects read.

    step_arms(program, campaign, step, templates) -> ([ArmPlan], [user field])   (raises PlanError)
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Literal

from compiler.plan import ArmPlan, ChannelPlan, PlanError
from compiler.program import Campaign, ChannelRef, MoneyAmount, Program, Step
from compiler.templates import template_reads

ADDRESS_FIELDS = {"email": "email", "sms": "phone"}  # channel -> user field holding the address


def step_arms(program: Program, c: Campaign, s: Step, templates: Path) -> tuple[list[ArmPlan], list[str]]:
    """The step's arms (all / branches / variants) and the sorted user fields their templates read."""
    costs = {**program.policy.costs, **c.costs}
    names = s.arm_names()
    if s.variants:
        arms = [_arm("variant", n, acts, c, costs, templates, share=pct)
                for n, (_, pct, acts) in zip(names, s.variants, strict=True)]
    elif s.branches:
        arms = [_arm("branch", n, acts, c, costs, templates) for n, (_, acts) in zip(names, s.branches, strict=True)]
    else:
        arms = [_arm("all", "all", s.actions, c, costs, templates)]
    if not any(a.give or a.notify for a in arms):
        raise PlanError(f"step `{s.name}` gives nothing and notifies no one")
    users = program.schema.users
    known = set(users.fields) if users else set()
    reads: set[str] = set()
    for a in arms:
        for ch in a.notify:
            reads |= _user_fields_read(ch.template_source, known) | _user_fields_read(ch.subject, known)
    return arms, sorted(reads)


def _arm(kind: Literal["all", "branch", "variant"], name: str, actions, c: Campaign, costs: dict[str, MoneyAmount],
         templates: Path, share=None) -> ArmPlan:
    give: list[str] = []
    chains = []
    for act in actions:
        if act.give == "*":
            give += [n for n in c.resources if n not in give]
        elif act.give:
            give.append(act.give)
        if act.notify:
            chains.append(act.notify)
    if len(chains) > 1:
        raise PlanError(f"step arm `{name}` notifies twice; one message per user per step (use a fallback `else`)")
    notify = [_channel(ref, costs, templates) for ref in (chains[0] if chains else [])]
    return ArmPlan(kind=kind, name=name, share=share, give=give, notify=notify)


def _channel(ref: ChannelRef, costs: dict[str, MoneyAmount], templates: Path) -> ChannelPlan:
    source = (templates / ref.template).read_text(encoding="utf-8") if ref.template else None
    return ChannelPlan(channel=ref.channel, template=ref.template, template_source=source, subject=ref.subject,
                       cost=costs[ref.channel].amount if ref.channel in costs else Decimal(0),
                       address_field=ADDRESS_FIELDS.get(ref.channel))


def _user_fields_read(source: str | None, known: set[str]) -> set[str]:
    """The `user.X` a template reads; all fields when it reads `user` whole."""
    if not source:
        return set()
    reads = template_reads(source)
    if "user" in reads.whole:
        return set(known)
    return {attr for root, attr in reads.pairs if root == "user"} & known
