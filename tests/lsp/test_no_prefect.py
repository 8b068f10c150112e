"""`camp lsp` starts without Prefect (its own module: tests/conftest.py marks a module that names Prefect `prefect`,
and the inner loop leaves those out)."""

from __future__ import annotations

import subprocess
import sys


def test_the_server_never_imports_prefect():
    code = ("import sys, camp.cli, camp.lsp.server, camp.lsp.checking\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] == 'prefect')\nassert not bad, bad\nprint('ok')\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), r.stdout + r.stderr
