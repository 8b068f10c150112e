"""Two versions of a workspace's campaign plans -> what a change does to each campaign: added, removed, changed
(which parts: audience, schedule, budget, resources, limits, steps) or unchanged, and the steps whose part of
the plan changed, in the base's order (`camp plan --base`).

    compare_plans(base, head) -> [PlanChange]
"""

from __future__ import annotations

from dataclasses import dataclass, field

from compiler.plan import CampaignPlan

# the parts of a campaign plan a reviewer asks about, and the fields of CampaignPlan each is made of
PARTS: dict[str, tuple[str, ...]] = {
    "audience": ("audience", "holdout"),
    "schedule": ("schedule",),
    "budget": ("budget_total", "budget_daily"),
    "resources": ("resources",),
    "limits": ("caps", "quiet", "priority", "exclusive"),
    "steps": ("steps",),
    "about": ("title", "owner"),
}


@dataclass
class PlanChange:
    campaign: str
    change: str  # added | removed | changed | unchanged
    parts: list[str] = field(default_factory=list)  # of PARTS, for a change
    steps: list[str] = field(default_factory=list)  # steps added, removed or changed
    base_order: list[str] = field(default_factory=list)  # the base's steps, in order (users mid-way on them)


def compare_plans(base: dict[str, CampaignPlan], head: dict[str, CampaignPlan]) -> list[PlanChange]:
    out = []
    for name in sorted(set(base) | set(head)):
        old, new = base.get(name), head.get(name)
        if old is None:
            assert new is not None
            out.append(PlanChange(name, "added", steps=[s.name for s in new.steps]))
            continue
        order = [s.name for s in old.steps]
        if new is None:
            out.append(PlanChange(name, "removed", steps=order, base_order=order))
            continue
        if old.hash == new.hash and old.title == new.title and old.owner == new.owner:
            out.append(PlanChange(name, "unchanged", base_order=order))
            continue
        a, b = old.model_dump(mode="json"), new.model_dump(mode="json")
        parts = [p for p, keys in PARTS.items() if any(a.get(k) != b.get(k) for k in keys)]
        olds, news = ({s.name: s.model_dump(mode="json") for s in p.steps} for p in (old, new))
        steps = [s for s in dict.fromkeys([*olds, *news]) if olds.get(s) != news.get(s)]  # a step's own part
        out.append(PlanChange(name, "changed", parts=parts, steps=steps, base_order=order))
    return out
