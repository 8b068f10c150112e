"""Benchmark: `camp check` over 1,000 campaign files, and `camp --help`. Median of 5 runs.

    python bench/check.py [--files 1000] [--runs 5]

Builds a workspace from the bundled one (schema, segments, policy, templates) plus
N campaign files made from the nine seed campaigns with fresh names, then times the
real command in a fresh process each run (start-up included), as CI would see it.
"""

from __future__ import annotations

import argparse
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
SHARED = {"schema.camp", "segments.camp", "policy.camp"}


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


def timed(cmd: list[str], runs: int) -> tuple[float, list[float], int]:
    times, rc = [], 0
    for _ in range(runs):
        t = time.perf_counter()
        r = subprocess.run(cmd, capture_output=True, text=True)
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
        subprocess.run([*camp, "check", str(ws)], capture_output=True)  # warm the grammar cache
        check_med, check_all, rc = timed([*camp, "check", str(ws)], args.runs)
        help_med, help_all, _ = timed([*camp, "--help"], args.runs)
    print("| command | files | median (s) | runs (s) | goal |")
    print("| --- | --- | --- | --- | --- |")
    print(f"| `camp check` | {files} | {check_med:.3f} | {', '.join(f'{t:.3f}' for t in check_all)} | <= 2 s |")
    print(f"| `camp --help` | - | {help_med:.3f} | {', '.join(f'{t:.3f}' for t in help_all)} | <= 0.3 s |")
    print(f"(camp check exit code {rc})")


if __name__ == "__main__":
    main()
