"""Which warnings `camp check` reports: `[lint] select / ignore` in camp.toml, inline `# camp: ignore[CODE]`
(same line, or alone on the line(s) above), W107 for suppressions that do nothing; `camp check --fix` applies
only certain fixes; `camp fmt --diff` shows and writes nothing. Real `camp` processes on copies of a workspace."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.runtime.conftest import camp

HERE = Path(__file__).resolve().parents[1] / "codes"
OVERLAP = (HERE / "W105.bad.camp").read_text(encoding="utf-8")  # W105 on line 20 (`exclusive "coupon_push"`)


def _ws(tmp_path: Path, text: str, toml: str = "") -> Path:
    root = tmp_path / "ws"
    shutil.copytree(HERE / "base", root)
    (root / "ex.camp").write_text(text, encoding="utf-8")
    if toml:
        (root / "camp.toml").write_text((root / "camp.toml").read_text(encoding="utf-8") + toml, encoding="utf-8")
    return root


def _codes(root: Path) -> list[tuple[str, int]]:
    out = camp("check", ".", "--format", "json", cwd=root)
    return [(d["code"], d["line"]) for d in json.loads(out.stdout)]


def test_the_overlap_warns_without_suppression(tmp_path):
    assert _codes(_ws(tmp_path, OVERLAP)) == [("W105", 20)]


@pytest.mark.parametrize("edit", [
    lambda lines: lines.__setitem__(19, lines[19] + "  # camp: ignore[W105]"),
    lambda lines: lines.__setitem__(19, lines[19] + "  # camp: ignore[W101, W105] meant to overlap"),
    lambda lines: lines.__setitem__(19, lines[19] + "  # camp: ignore"),
    lambda lines: lines.insert(19, "    # camp: ignore[W105] both are for the same users on purpose"),
    lambda lines: lines.__setitem__(slice(19, 19), ["    # camp: ignore[W105]", "", "    # (a note between)"]),
])
def test_an_inline_suppression_on_the_line_or_above_it_silences_that_warning(tmp_path, edit):
    lines = OVERLAP.split("\n")
    edit(lines)
    assert _codes(_ws(tmp_path, "\n".join(lines))) == []


def test_suppressions_that_do_nothing_are_w107(tmp_path):
    lines = OVERLAP.split("\n")
    lines[19] += "  # camp: ignore[W101]"  # the wrong code: W105 stays and the suppression is unused
    lines.insert(0, 'segment s = city = "x"  # camp: ignore[E201]')
    assert _codes(_ws(tmp_path, "\n".join(lines))) == [("W107", 1), ("W105", 21), ("W107", 21)]


def test_lint_select_and_ignore_in_camp_toml(tmp_path):
    assert _codes(_ws(tmp_path / "a", OVERLAP, '\n[lint]\nignore = ["W105"]\n')) == []
    assert _codes(_ws(tmp_path / "b", OVERLAP, '\n[lint]\nignore = ["W1"]\n')) == []
    assert _codes(_ws(tmp_path / "c", OVERLAP, '\n[lint]\nselect = ["W101", "W102"]\n')) == []
    assert _codes(_ws(tmp_path / "d", OVERLAP, '\n[lint]\nselect = ["W10"]\nignore = ["W101"]\n')) == [("W105", 20)]
    bad = _ws(tmp_path / "e", OVERLAP, '\n[lint]\nignore = ["E201"]\n')
    out = camp("check", ".", cwd=bad)
    assert out.returncode == 1 and "E002" in out.stdout + out.stderr and "errors cannot be ignored" in out.stdout
    strict = camp("check", ".", "--strict", cwd=_ws(tmp_path / "f", OVERLAP, '\n[lint]\nignore = ["W105"]\n'))
    assert strict.returncode == 0  # --strict fails on the warnings that are reported, not on ignored ones


def test_check_fix_applies_only_certain_fixes(tmp_path):
    text = ('segment a = lifecycle = churnd\n'  # one candidate: fixed
            'segment b = sum(orders.amout within 30d) > 10 CNY\n'  # one candidate after the dot: fixed
            'segment c = city = "x" and zzzz > 1\n')  # no candidate: left for a person
    root = _ws(tmp_path, text)
    out = camp("check", ".", "--fix", cwd=root)
    assert "fixed `churnd` -> `churned`" in out.stderr and "fixed `amout` -> `amount`" in out.stderr
    assert out.returncode == 1 and "zzzz" in out.stdout
    fixed = (root / "ex.camp").read_text(encoding="utf-8")
    assert fixed == text.replace("churnd", "churned").replace("amout", "amount")
    again = camp("check", ".", "--fix", cwd=root)
    assert "fixed 0" in again.stderr and (root / "ex.camp").read_text(encoding="utf-8") == fixed


def test_fmt_diff_prints_the_change_and_writes_nothing(tmp_path):
    text = "segment   a =   lifecycle = silent\n"
    root = _ws(tmp_path, text)
    out = camp("fmt", "ex.camp", "--diff", cwd=root)
    assert out.returncode == 1
    assert "-segment   a =   lifecycle = silent" in out.stdout and "+segment a = lifecycle = silent" in out.stdout
    assert (root / "ex.camp").read_text(encoding="utf-8") == text
    camp("fmt", "ex.camp", cwd=root)
    clean = camp("fmt", "ex.camp", "--diff", cwd=root)
    assert clean.returncode == 0 and clean.stdout == ""
