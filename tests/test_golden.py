"""Golden files per stage from one input: AST JSON per bundled file, and the rendered
diagnostics of a file full of mistakes. Refresh with `pytest --update-golden` (or
CAMP_UPDATE_GOLDEN=1) and review the diff.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from compiler.check import check_workspace
from compiler.workspace import load_workspace
from dsl.diagnostics import render_json, render_text
from dsl.parse import parse_file
from tests.conftest import CAMPAIGNS, CODES_DIR

GOLDEN = Path(__file__).resolve().parent / "golden"


def _compare(path: Path, actual: str, update: bool) -> None:
    if update or not path.exists():
        path.write_text(actual, encoding="utf-8")
        if not update:
            pytest.fail(f"created {path.name}; review it and run again")
    assert actual == path.read_text(encoding="utf-8"), f"{path.name} differs; run pytest --update-golden and review"


@pytest.mark.parametrize("name", sorted(p.stem for p in CAMPAIGNS.glob("*.camp")))
def test_ast(name, update_golden):
    module, diags, _ = parse_file(CAMPAIGNS / f"{name}.camp", f"{name}.camp")
    assert diags == []
    data = json.loads(module.model_dump_json())
    _compare(GOLDEN / "ast" / f"{name}.json", json.dumps(data, ensure_ascii=False, indent=1) + "\n", update_golden)


def test_diagnostics_of_a_file_full_of_mistakes(tmp_path, update_golden, monkeypatch):
    ws_dir = tmp_path / "ws"
    shutil.copytree(CODES_DIR / "base", ws_dir)
    shutil.copy(GOLDEN / "many_errors.camp", ws_dir / "many_errors.camp")
    monkeypatch.chdir(ws_dir)
    ws = load_workspace(Path("."))
    result = check_workspace(ws)
    _compare(GOLDEN / "diagnostics" / "many_errors.txt", render_text(result.diagnostics, ws.sources) + "\n",
             update_golden)
    _compare(GOLDEN / "diagnostics" / "many_errors.json", render_json(result.diagnostics) + "\n", update_golden)
