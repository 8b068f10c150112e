"""Layering: dsl <- compiler <- runtime <- camp (cli), checked by import-linter's contracts in pyproject.toml."""

import ast
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

FORBIDDEN = {"dsl": {"compiler", "runtime", "camp", "prefect", "pygls", "lsprotocol"},
             "compiler": {"runtime", "camp", "prefect", "pygls", "lsprotocol"}}


def test_import_linter_contracts_hold():
    exe = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))
    r = subprocess.run([exe], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Contracts: 3 kept, 0 broken" in r.stdout


def test_no_upward_imports_even_lazy_ones():
    """import-linter sees imports inside functions too; this double-checks with the AST, without the tool."""
    for package, banned in FORBIDDEN.items():
        for path in (ROOT / package).rglob("*.py"):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                names = []
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    names = [node.module]
                for n in names:
                    assert n.split(".")[0] not in banned, f"{path.relative_to(ROOT)} imports {n}"
