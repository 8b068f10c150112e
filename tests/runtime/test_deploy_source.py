"""Deployments that carry the workspace through code storage (camp.toml [deploy]), against a real Prefect server
and a real git repository: the flow parameter is the workspace's folder relative to the source, the pull steps
clone the deployed commit (or change into the shared folder), and running those pull steps in an empty folder, as
a worker on another host does, gives a workspace the flow loads and checks."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import CAMPAIGNS
from tests.runtime.conftest import BIN, camp
from tests.runtime.test_deploy import _deployments


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args], cwd=cwd,
                          check=True, capture_output=True, text=True).stdout.strip()


def _workspace(root: Path, name: str, deploy: str) -> Path:
    shutil.copytree(CAMPAIGNS, root)
    toml = (root / "camp.toml").read_text().replace('name = "demo-shop"', f'name = "{name}"')
    (root / "camp.toml").write_text(toml + "\n[deploy]\n" + deploy)
    return root


@pytest.fixture
def pool(prefect_env, tmp_path) -> str:
    name = f"camp-pool-{tmp_path.name}"[:60]
    subprocess.run([str(BIN / "prefect"), "work-pool", "create", name, "--type", "process"], env=prefect_env,
                   check=True, capture_output=True)
    return name


def test_a_git_source_deploys_the_commit_and_a_relative_workspace(tmp_path, prefect_env, pool, monkeypatch):
    origin = tmp_path / "origin.git"
    _git(tmp_path, "init", "--bare", "-q", str(origin))
    repo = tmp_path / "repo"
    ws = _workspace(repo / "shop", f"git-{tmp_path.name}", 'source = "git"\n')
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "campaigns")
    _git(repo, "remote", "add", "origin", str(origin))
    _git(repo, "push", "-q", "origin", "HEAD:refs/heads/main")
    head = _git(repo, "rev-parse", "HEAD")
    out = camp("deploy", "shop", "--work-pool", pool, "--yes", cwd=repo, env=prefect_env)
    assert out.returncode == 0, out.stderr
    assert f"from git {origin}" in out.stdout
    deployed = _deployments(prefect_env, f"git-{tmp_path.name}")
    assert len(deployed) == 11
    for d in deployed.values():
        assert d.parameters["workspace"] == "shop"  # relative to the repository: no path of this host
        assert d.path is None and d.work_pool_name == pool
        [step] = d.pull_steps
        clone = step["prefect.deployments.steps.git_clone"]
        assert clone["repository"] == str(origin) and clone["commit_sha"] == head
    # what a worker on another host does: run the pull steps in an empty folder, then the flow's workspace
    elsewhere = tmp_path / "worker-host"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    from prefect.deployments.steps.core import run_steps

    output = asyncio.run(run_steps(deployed["winback_high_value"].pull_steps))
    clone_dir = (elsewhere / output["directory"]).resolve()  # the worker then changes into it (Prefect's flows.py)
    assert clone_dir.is_relative_to(elsewhere.resolve())
    assert _git(clone_dir, "rev-parse", "HEAD") == head
    monkeypatch.chdir(clone_dir)
    from runtime.flows import _checked

    loaded, program = _checked("shop")
    assert "winback_high_value" in program.campaigns and loaded.root.resolve() == (clone_dir / "shop").resolve()
    # a new commit is a new deployment source: the next deploy updates every deployment
    (ws / "README.txt").write_text("x")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "more")
    shown = camp("deploy", "shop", "--work-pool", pool, cwd=repo, env=prefect_env)
    assert shown.returncode == 0 and shown.stdout.count("~ update") == 11, shown.stdout


def test_a_shared_path_source_changes_into_the_folder(tmp_path, prefect_env, pool):
    shared = tmp_path / "shared"
    _workspace(shared / "teams" / "crm", f"path-{tmp_path.name}", f'path = "{shared}"\n')
    out = camp("deploy", "teams/crm", "--work-pool", pool, "--yes", cwd=shared, env=prefect_env)
    assert out.returncode == 0, out.stderr
    for d in _deployments(prefect_env, f"path-{tmp_path.name}").values():
        assert d.parameters["workspace"] == "teams/crm"
        assert d.pull_steps == [{"prefect.deployments.steps.set_working_directory": {"directory": str(shared)}}]


def test_without_a_source_the_deployment_names_this_hosts_path(tmp_path, prefect_env, pool):
    ws = tmp_path / "shop"
    shutil.copytree(CAMPAIGNS, ws)
    (ws / "camp.toml").write_text((ws / "camp.toml").read_text().replace('name = "demo-shop"',
                                                                         f'name = "host-{tmp_path.name}"'))
    out = camp("deploy", str(ws), "--work-pool", pool, "--yes", cwd=ws, env=prefect_env)
    assert out.returncode == 0, out.stderr
    assert "on this host only" in out.stdout
    for d in _deployments(prefect_env, f"host-{tmp_path.name}").values():
        assert d.parameters["workspace"] == str(ws.resolve()) and not d.pull_steps
