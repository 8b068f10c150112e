"""`camp audience` and `camp run` count the same users for the same occurrence (issue 12): matched minus excluded,
holdout and final, at a later as-of time of the same occurrence, for a campaign in one zone and a `tz user` one,
and both read the warehouse $CAMP_DATA_URL names (a second shop, whose numbers differ from the first's)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

from runtime.demo_data import make_shop
from tests.conftest import CAMPAIGNS
from tests.runtime.conftest import BIN


def _audience(ws, file: str, as_of: str, env: dict) -> dict[str, int]:
    r = subprocess.run([str(BIN / "camp"), "audience", file, "--as-of", as_of, "--count"], cwd=ws, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    got = {k: int(v.replace(",", "")) for k, v in re.findall(r"^  (matched|excluded|holdout|final)\s+([\d,]+)",
                                                                r.stdout, re.M)}
    return {"audience": got["matched"] - got["excluded"], "holdout": got["holdout"], "final": got["final"]}


def _run(ws, file: str, as_of: str, env: dict) -> dict[str, int]:
    r = subprocess.run([str(BIN / "camp"), "run", file, "--as-of", as_of, "--dry-run", "--no-progress"], cwd=ws,
                       env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    return {k: int(v.replace(",", "")) for k, v in re.findall(r"^  (audience|holdout|final)\s+([\d,]+)", r.stdout,
                                                               re.M)}


def test_audience_and_run_count_the_same_users_and_read_the_same_warehouse(tmp_path):
    ws = tmp_path / "ws"
    shutil.copytree(CAMPAIGNS, ws, ignore=shutil.ignore_patterns("*.duckdb*"))
    make_shop(f"duckdb:///{ws / 'shop.duckdb'}", 3000, seed=3)
    other = tmp_path / "other.duckdb"
    make_shop(f"duckdb:///{other}", 1500, seed=4)
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect"), "CAMP_LEDGER_URL": f"duckdb:///{tmp_path}/l.db"}
    env.pop("CAMP_DATA_URL", None)
    seen = {}
    # 15:00 in Shanghai is still the 10:00 occurrence of winback; for the tz user birthday it is the occurrence of
    # local date 2 December (fired at 19:00 UTC on the 1st)
    for file, as_of in (("winback.camp", "2026-12-01T15:00:00+08:00"), ("birthday.camp", "2026-12-02T05:00:00+08:00")):
        for name, extra in (("shop", {}), ("other", {"CAMP_DATA_URL": f"duckdb:///{other}"})):
            a = _audience(ws, file, as_of, {**env, **extra})
            r = _run(ws, file, as_of, {**env, **extra})
            assert a == r, (file, name, a, r)
            assert a["final"] > 0, (file, name)
            seen[(file, name)] = a
        assert seen[(file, "shop")] != seen[(file, "other")]  # both commands read the other warehouse
