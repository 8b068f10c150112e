"""`camp deploy`'s fingerprints are the campaign plan's hashes: no reference date, no fake occurrence; a
template change marks only its step as changed. Pure: no Prefect server."""

from __future__ import annotations

import shutil
from pathlib import Path

from compiler.campaign_plan import campaign_plan
from compiler.check import check_workspace
from compiler.workspace import load_workspace
from runtime.deploy import DeploymentSpec, diff, specs
from tests.conftest import CAMPAIGNS


def _specs(root: Path) -> dict[str, DeploymentSpec]:
    ws = load_workspace(root)
    program = check_workspace(ws).program
    assert program is not None
    return {s.campaign: s for s in specs(root, program, "demo-shop", ws.template_dir)}


def test_fingerprints_are_the_campaign_plans_hashes():
    ws = load_workspace(CAMPAIGNS)
    program = check_workspace(ws).program
    assert program is not None
    wanted = _specs(CAMPAIGNS)
    for name, c in program.campaigns.items():
        plan = campaign_plan(program, c, "duckdb", ws.template_dir, "demo-shop")
        assert wanted[name].fingerprint == plan.hash
        assert wanted[name].steps == {s.name: plan.step_hash(s.name) for s in c.steps}
        assert all(len(h) == 64 for h in wanted[name].steps.values())  # every step fingerprinted, follow-ups too


def test_a_template_change_updates_its_campaign_and_names_its_step(tmp_path):
    before = _specs(CAMPAIGNS)
    shutil.copytree(CAMPAIGNS, tmp_path / "ws")
    push = tmp_path / "ws" / "templates" / "winback" / "push.j2"
    push.write_text(push.read_text(encoding="utf-8") + " ", encoding="utf-8")
    after = _specs(tmp_path / "ws")
    deployed = [{"id": n, "name": s.name, "description": s.description, "schedules": s.schedules}
                for n, s in before.items()]
    changes = {ch.name: ch for ch in diff(list(after.values()), deployed)}
    assert changes["winback_high_value"].action == "update"
    assert changes["winback_high_value"].changed_steps == ["touch"]
    assert {n for n, ch in changes.items() if ch.action == "unchanged"} == set(before) - {"winback_high_value"}


def test_two_workspaces_never_share_a_deployment():
    """Every campaign runs the one `camp-campaign` flow and Prefect names deployments per flow: the workspace is
    part of the name, so staging beside production on one server never takes over the other's deployment."""
    ws = load_workspace(CAMPAIGNS)
    program = check_workspace(ws).program
    assert program is not None
    prod = {s.campaign: s.name for s in specs(CAMPAIGNS, program, "shop", ws.template_dir)}
    staging = {s.campaign: s.name for s in specs(CAMPAIGNS, program, "shop/staging", ws.template_dir)}
    assert prod["winback_high_value"] == "winback_high_value@shop"
    assert staging["winback_high_value"] == "winback_high_value@shop_staging"  # Prefect refuses '/' in a name
    assert not set(prod.values()) & set(staging.values())
