"""`camp plan --base REF` on a temporary git repository: the changed, added and removed campaigns, exactly; the
audience before and after equal to a pandas count on the raw tables; sends per week and cost per day from the
schedule and the costs; users mid-way from the ledger; markdown and JSON; a bad ref is a usage error."""

from __future__ import annotations

import json
import subprocess
from decimal import Decimal

import duckdb
import pandas as pd

from runtime.demo_data import make_shop
from tests.runtime.conftest import camp, make_workspace

POLICY = "policy {\n  cost sms 0.05 CNY, push 0 CNY\n}\n"
SHANGHAI = """campaign sh_buyers {{
  who city = "上海" and count(orders within 30d) >= {n}
  when daily at 10:00
  where sms template "t.j2"
  how
    step touch: notify where
}}
"""
STAY = """campaign steady {
  who city = "北京"
  when every monday at 10:00
  where push template "t.j2"
  how
    step touch: notify where
}
"""
NEW = """campaign newcomer {
  who count(orders within 30d) = 0
  when every monday, thursday at 10:00
  where sms template "t.j2"
  how
    step touch: notify where
}
"""
AS_OF = "2026-12-06T10:00:00+08:00"  # an occurrence of the daily campaigns: audiences are counted as of it


def _git(root, *args):
    subprocess.run(["git", "-C", str(root), "-c", "user.email=t@example.com", "-c", "user.name=t", *args],
                   check=True, capture_output=True)


def _buyers(root, n: int) -> int:
    """Shanghai users with at least n orders in the 30 days before AS_OF (Shanghai wall clock), by pandas."""
    con = duckdb.connect(str(root / "shop.duckdb"), read_only=True)
    try:
        users = con.execute("SELECT user_id, city FROM users").df()
        orders = con.execute("SELECT user_id, created_at FROM orders").df()
    finally:
        con.close()
    at = pd.Timestamp(AS_OF)
    recent = orders[(orders["created_at"] >= at - pd.DateOffset(days=30)) & (orders["created_at"] < at)]
    counts = recent.groupby("user_id").size()
    sh = users[users["city"] == "上海"]["user_id"]
    return int(sum(counts.get(u, 0) >= n for u in sh))


def test_plan_names_the_changes_and_their_audience_and_cost_deltas_exactly(tmp_path):
    root = make_workspace(tmp_path / "repo", {"sh.camp": SHANGHAI.format(n=2), "steady.camp": STAY,
                                              "gone.camp": STAY.replace("steady", "gone")},
                          policy=POLICY, templates={"t.j2": "hi"})
    (root / ".gitignore").write_text("*.duckdb\n")
    _git(root, "init", "-q")
    _git(root, "add", "-A")
    _git(root, "commit", "-qm", "base")
    make_shop(f"duckdb:///{root / 'shop.duckdb'}", 4000, seed=3)
    (root / "sh.camp").write_text(SHANGHAI.format(n=1), encoding="utf-8")
    (root / "new.camp").write_text(NEW, encoding="utf-8")
    (root / "gone.camp").unlink()
    out = camp("plan", ".", "--base", "HEAD", "--as-of", AS_OF, "--format", "json", cwd=root)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    rows = {r["campaign"]: r for r in doc["campaigns"]}
    assert {n: r["change"] for n, r in rows.items()} == {"sh_buyers": "changed", "newcomer": "added",
                                                          "gone": "removed"}
    assert doc["unchanged"] == ["steady"]
    sh = rows["sh_buyers"]
    assert sh["parts"] == ["audience"] and sh["steps"] == [] and sh["midway"] == 0
    before, after = _buyers(root, 2), _buyers(root, 1)
    assert before < after
    assert (sh["base"]["audience"], sh["head"]["audience"]) == (before, after)
    assert (sh["base"]["sends_per_week"], sh["head"]["sends_per_week"]) == (7 * before, 7 * after)  # daily
    assert sh["head"]["cost_per_day"] == str((Decimal(7 * after) / 7 * Decimal("0.05")).quantize(Decimal("0.01")))
    new = rows["newcomer"]
    assert new["base"] == {"audience": None, "sends_per_week": None, "cost_per_day": None}
    assert new["head"]["sends_per_week"] == 2 * new["head"]["audience"]  # monday and thursday in the 7 days
    assert rows["gone"]["head"]["audience"] is None and rows["gone"]["base"]["cost_per_day"] == "0.00"  # push: free
    md = camp("plan", ".", "--base", "HEAD", "--as-of", AS_OF, cwd=root)
    assert md.returncode == 0
    assert f"| `sh_buyers` | changed | audience | {before:,} → {after:,} |" in md.stdout
    assert "Unchanged: `steady`." in md.stdout
    bad = camp("plan", ".", "--base", "no-such-branch", cwd=root)
    assert bad.returncode == 2 and "git knows no commit `no-such-branch`" in bad.stderr and "Traceback" not in bad.stderr


def test_plan_counts_users_mid_way_on_a_changed_step(tmp_path):
    journey = """campaign two_steps {{
  who city = "上海"
  when daily at 10:00
  where push template "t.j2"
  how
    step touch: notify where
    step again after 3d: notify push template "{t}"
}}
"""
    root = make_workspace(tmp_path / "repo", {"j.camp": journey.format(t="t.j2")}, policy=POLICY,
                          templates={"t.j2": "hi", "u.j2": "hello"})
    (root / ".gitignore").write_text("*.duckdb\n")
    _git(root, "init", "-q")
    _git(root, "add", "-A")
    _git(root, "commit", "-qm", "base")
    make_shop(f"duckdb:///{root / 'shop.duckdb'}", 2000, seed=5)
    ran = camp("run", "j.camp", "--as-of", "2026-12-06T10:00:00+08:00", cwd=root)
    assert ran.returncode == 0, ran.stderr
    sent = int(duckdb.connect(str(root / "ledger.duckdb"), read_only=True).execute(
        "SELECT count(*) FROM camp_deliveries WHERE step = 'touch' AND status = 'sent'").fetchone()[0])
    (root / "j.camp").write_text(journey.format(t="u.j2"), encoding="utf-8")
    out = camp("plan", ".", "--base", "HEAD", "--as-of", "2026-12-07T09:00:00+08:00", "--format", "json", cwd=root)
    assert out.returncode == 0, out.stderr
    [row] = json.loads(out.stdout)["campaigns"]
    assert (row["change"], row["parts"], row["steps"]) == ("changed", ["steps"], ["again"])
    assert sent > 0 and row["midway"] == sent
