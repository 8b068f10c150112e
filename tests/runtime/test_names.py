"""Any campaign and step name the language accepts runs: Chinese names, long names, names that differ only
in characters Prefect does not allow in artifact keys."""

from __future__ import annotations

import json
import re

from runtime.demo_data import make_shop
from tests.runtime.conftest import camp, make_workspace

CHINESE = '''
campaign 双十一预热 "双十一预热" {
  who count(orders within 365d) >= 1
  when daily at 10:00 tz "Asia/Shanghai"
  where push template "t/push.j2"
  how
    step 触达: notify where
}
'''


def test_artifact_keys_are_prefect_safe_and_distinct():
    from runtime.flows import artifact_key

    names = [("双十一预热", "触达"), ("春节预热", "触达"), ("winback_high_value", "touch"), ("a" * 200, "b"),
             ("a" * 200, "c"), ("Promo", "touch"), ("promo", "touch")]
    keys = [artifact_key(c, s) for c, s in names]
    for k in keys:
        assert re.fullmatch(r"[a-z0-9-]+", k) and len(k) <= 80, k
    assert keys[2] == "camp-winback-high-value-touch"  # plain ASCII names keep their readable key
    assert len(set(keys[:2] + keys[3:5])) == 4


def test_campaign_and_step_named_in_chinese_run_to_finished(tmp_path, prefect_env):
    ws = make_workspace(tmp_path / "ws", {"promo.camp": CHINESE}, templates={"t/push.j2": "双十一预热：{{ user.city | default(\"朋友\") }}，你好"})
    make_shop(f"duckdb:///{ws / 'shop.duckdb'}", 200, seed=3)
    r = camp("run", "promo.camp", "--as-of", "2026-12-01T10:00+08:00", "--no-progress", cwd=ws, env=prefect_env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "failed" not in r.stdout.lower() and "Traceback" not in r.stderr
    runs = json.loads(camp("runs", "--json", cwd=ws, env=prefect_env).stdout)
    assert [(x["campaign"], x["step"], x["status"]) for x in runs] == [("双十一预热", "触达", "finished")]
    sent = json.loads(camp("ledger", "--json", "--status", "sent", "--limit", "100000", cwd=ws, env=prefect_env).stdout)
    assert sent and {x["campaign"] for x in sent} == {"双十一预热"}
