"""Benchmark: `camp check` over 1,000 campaign files (cold, warm and without the parse cache), and `camp --help`.

    python bench/check.py [--files 1000] [--runs 5]

Builds a workspace from the bundled one (schema, segments, policy, templates) plus
N campaign files made from the nine seed campaigns with fresh names, then times the
real command in a fresh process each run (start-up included), as CI would see it.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CAMPAIGNS = ROOT / "campaigns"
SHARED = {"schema.camp", "segments.camp", "policy.camp", "alerts.camp"}  # workspace-wide: kept once


def build(dest: Path, n: int) -> None:
    shutil.copytree(CAMPAIGNS, dest)
    seeds = [p for p in sorted(dest.glob("*.camp")) if p.name not in SHARED]
    texts = [p.read_text(encoding="utf-8") for p in seeds]
    for p in seeds:
        p.unlink()
    out = dest / "generated"
    out.mkdir()
    for i in range(n):
        text = texts[i % len(texts)]
        text = re.sub(r"^campaign (\w+)", lambda m, i=i: f"campaign {m.group(1)}_{i:04d}", text, flags=re.M)
        (out / f"c{i:04d}.camp").write_text(text, encoding="utf-8")


def timed(cmd: list[str], runs: int, env: dict[str, str] | None = None,
          empty: Path | None = None) -> tuple[float, list[float], int]:
    """Median wall time of `runs` runs, with `env` added to the environment; `empty`: a folder removed before
    each run (the parse cache of a first check, or of one after the parser changed)."""
    times, rc = [], 0
    for _ in range(runs):
        if empty is not None:
            shutil.rmtree(empty, ignore_errors=True)
        t = time.perf_counter()
        r = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **(env or {})})
        times.append(time.perf_counter() - t)
        rc = r.returncode
    return statistics.median(times), times, rc


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    camp = [sys.executable, "-m", "camp"]
    with tempfile.TemporaryDirectory() as tmp:
        ws = Path(tmp) / "ws"
        build(ws, args.files)
        files = len(list(ws.rglob("*.camp")))
        cache = Path(tmp) / "cache"
        check = [*camp, "check", str(ws)]
        first = subprocess.run(check, capture_output=True, text=True, env={**os.environ, "CAMP_CACHE": "off"})
        if first.returncode != 0:  # (also fills the grammar cache) errors stop checking early: not the work measured
            sys.exit(f"the generated workspace does not check clean: {first.stderr.strip().splitlines()[-1:]}")
        in_cache = {"CAMP_CACHE_DIR": str(cache)}
        rows = [("`camp check`, cold (empty parse cache)", timed(check, args.runs, in_cache, empty=cache)),
                ("`camp check`, warm (files unchanged)", timed(check, args.runs, in_cache)),  # the last cold run filled it
                ("`camp check`, parse cache off", timed(check, args.runs, {"CAMP_CACHE": "off"}))]
        help_med, help_all, _ = timed([*camp, "--help"], args.runs)
    print("| command | files | median (s) | runs (s) | goal |")
    print("| --- | --- | --- | --- | --- |")
    for label, (med, all_, _rc) in rows:
        print(f"| {label} | {files} | {med:.3f} | {', '.join(f'{t:.3f}' for t in all_)} | <= 2 s |")
    print(f"| `camp --help` | - | {help_med:.3f} | {', '.join(f'{t:.3f}' for t in help_all)} | <= 0.3 s |")
    print(f"(camp check exit codes {[rc for _, (_, _, rc) in rows]}; 0: no errors, as the bench requires)")


if __name__ == "__main__":
    main()
