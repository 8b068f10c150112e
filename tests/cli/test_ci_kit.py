"""The CI kit: the composite action's scripts (action.yml) and the pre-commit hooks (.pre-commit-hooks.yaml) run
for real against a temporary git repository of campaigns, the way GitHub and pre-commit run them."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from pathlib import Path

import yaml

from tests.conftest import CAMPAIGNS

ROOT = Path(__file__).resolve().parents[2]


def _repo(tmp_path: Path) -> Path:
    repo = tmp_path / "shop"
    shutil.copytree(CAMPAIGNS, repo / "campaigns", ignore=shutil.ignore_patterns("*.duckdb"))
    for args in (["init", "-q"], ["add", "-A"], ["-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-qm",
                                                  "base"]):
        subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)
    return repo


def _env(**extra: str) -> dict[str, str]:
    import sys

    env = {**os.environ, **extra}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"  # the venv's camp, as pip installs it
    return env


def _step(name: str) -> dict:
    action = yaml.safe_load((ROOT / "action.yml").read_text(encoding="utf-8"))
    assert action["runs"]["using"] == "composite"
    return next(s for s in action["runs"]["steps"] if s.get("name") == name)


def test_the_action_checks_with_annotations_and_writes_the_plan_to_the_summary(tmp_path):
    repo = _repo(tmp_path)
    winback = repo / "campaigns" / "winback.camp"
    winback.write_text(winback.read_text(encoding="utf-8").replace(">= 2000 CNY", ">= 1000 CNY"), encoding="utf-8")
    check = _step("camp check")
    ok = subprocess.run(["bash", "-c", check["run"]], cwd=repo, env=_env(CAMP_PATH="campaigns"), capture_output=True,
                        text=True)
    assert ok.returncode == 0, ok.stderr
    broken = repo / "campaigns" / "broken.camp"
    broken.write_text('segment s = citty = "上海"\n', encoding="utf-8")
    bad = subprocess.run(["bash", "-c", check["run"]], cwd=repo, env=_env(CAMP_PATH="campaigns"), capture_output=True,
                         text=True)
    assert bad.returncode == 1 and "::error file=campaigns/broken.camp,line=1" in bad.stdout and "E204" in bad.stdout
    broken.unlink()
    plan = _step("camp plan")
    summary = tmp_path / "summary.md"
    done = subprocess.run(["bash", "-c", plan["run"]], cwd=repo, capture_output=True, text=True, env=_env(
        CAMP_PATH="campaigns", CAMP_BASE="", PR_BASE="HEAD", CAMP_DATA_URL="", GITHUB_STEP_SUMMARY=str(summary)))
    assert done.returncode == 0, done.stderr
    text = summary.read_text(encoding="utf-8")
    assert "### camp plan: `HEAD` → this change" in text and "| `winback_high_value` | changed | audience |" in text
    assert (repo / "camp-plan.md").read_text(encoding="utf-8") == text  # the comment's body
    assert "gh pr comment" in _step("Comment the plan")["run"]


def test_the_pre_commit_hooks_run_camp(tmp_path):
    hooks = {h["id"]: h for h in yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text(encoding="utf-8"))}
    assert set(hooks) == {"camp-check", "camp-fmt"} and all(h["language"] == "python" for h in hooks.values())
    repo = _repo(tmp_path)
    ws = repo / "campaigns"
    check = subprocess.run(shlex.split(hooks["camp-check"]["entry"]), cwd=ws, env=_env(), capture_output=True,
                           text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    messy = ws / "messy.camp"
    messy.write_text("segment   m =   lifecycle = silent\n", encoding="utf-8")
    fmt = subprocess.run([*shlex.split(hooks["camp-fmt"]["entry"]), str(messy)], cwd=ws, env=_env(),
                         capture_output=True, text=True)
    assert fmt.returncode == 0 and messy.read_text(encoding="utf-8") == "segment m = lifecycle = silent\n"
    assert not __import__("re").search(hooks["camp-fmt"]["files"], "camp.toml")
