"""compiler.editor without an editor: names resolved the way the checker resolves them, completion by context,
and the server's workspace loading (open files from memory, nothing kept frozen, `camp check` free of it)."""

from __future__ import annotations

import gc
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from camp.lsp.checking import check_root, real
from compiler.editor.complete import complete_at
from compiler.editor.index import Index, Symbol
from compiler.editor.locate import symbol_at
from tests.conftest import CAMPAIGNS


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("lookups") / "campaigns"
    shutil.copytree(CAMPAIGNS, root, ignore=shutil.ignore_patterns("*.duckdb*"))
    return real(root)


@pytest.fixture(scope="module")
def index(ws: Path) -> Index:
    checked = check_root(ws, {})
    assert not isinstance(checked, type(None)) and not hasattr(checked, "code"), checked
    return checked.index  # pyright: ignore[reportAttributeAccessIssue]


def at(index: Index, ws: Path, name: str, needle: str, delta: int, text: str | None = None) -> Symbol | None:
    text = (ws / name).read_text(encoding="utf-8") if text is None else text
    return symbol_at(index, ws / name, text, text.index(needle) + delta)


def test_names_resolve_by_their_context(index: Index, ws: Path):
    s = at(index, ws, "policy.camp", "highly_engaged 2", 2)  # a tiered cap's label: of its `by` classification
    assert s is not None and (s.kind, s.name, s.detail) == ("label", "highly_engaged", "label of engagement")
    s = at(index, ws, "alerts.camp", "from hf_lv", 6)  # `moved value_quadrant from hf_lv`
    assert s is not None and (s.kind, s.detail) == ("label", "label of value_quadrant")
    s = at(index, ws, "alerts.camp", "moved value_quadrant", 8)
    assert s is not None and s.kind == "classification" and s.name == "value_quadrant"
    s = at(index, ws, "schema.camp", "member_level enum", 3)  # a field where it is declared
    assert s is not None and s.detail == 'enum("normal", "silver", "gold")'
    assert s.place is not None and s.place.path == ws / "schema.camp" and s.place.span.line > 1
    assert at(index, ws, "segments.camp", "# seed 000", 4) is None  # in a comment
    assert at(index, ws, "winback.camp", "满200减20", 1) is None  # a title is no name


def test_broken_and_full_width_text_still_resolves(index: Index, ws: Path):
    text = "segment s = lifecycle ＝ churned and rfm_recency in （r4， r5） and count(orders where brand"
    for needle, kind, detail in [("churned", "label", "label of lifecycle"), ("r5", "label", "label of rfm_recency"),
                                 ("brand", "event_field", "text"), ("orders", "event", "events from table orders")]:
        s = at(index, ws, "scratch.camp", needle, 1, text)
        assert s is not None and (s.kind, s.detail) == (kind, detail), needle


def test_completion_contexts(index: Index):
    def names(text: str) -> list[str]:
        return [s.name for s in complete_at(index, text, len(text))]

    assert names("segment s = rfm_recency in (r4, ") == list(index.labels["rfm_recency"]) and "r1" in index.labels["rfm_recency"]
    assert names("segment s = value_quadrant was ") == ["hf_hv", "hf_lv", "lf_hv", "lf_lv"]
    assert "value_quadrant" in names("segment s = moved ")
    assert names("  cap email per user per 1d by engagement { highly_engaged 2 ") == list(index.labels["engagement"])
    assert names('segment s = gender = "') == ["f", "m", "unknown"]
    assert names("segment s = count(orders) # count(orders where ") == []  # in a comment
    assert names("segment s = sum(visits.") == ["source", "seconds", "time"]
    assert names("segment s = sum(nothing.") == []
    assert "sticky" not in names("segment ")  # declaring one: nothing to offer from the segments


def test_open_files_come_from_memory_and_new_ones_count(ws: Path):
    broken = (ws / "vip.camp").read_text(encoding="utf-8").replace("segment important_value", "segment importent")
    checked = check_root(ws, {ws / "vip.camp": broken, ws / "new.camp": "segment n = cty = 1\n",
                              ws / ".hidden" / "x.camp": "segment ("})
    assert not isinstance(checked, type(None)) and hasattr(checked, "by_file")
    codes = {p.name: [d.code for d in ds] for p, ds in checked.by_file.items()}  # pyright: ignore[reportAttributeAccessIssue]
    assert codes.get("vip.camp") == ["E203"] and codes.get("new.camp") == ["E204"]
    assert "x.camp" not in codes  # camp check walks no hidden folder; neither does the server
    assert gc.get_freeze_count() == 0  # a long-running server lets old workspaces be collected


def test_camp_check_never_imports_the_server():
    code = ("import sys\nfrom pathlib import Path\nfrom camp.commands import run_check\n"
            f"assert run_check((Path({str(CAMPAIGNS)!r}),), 'json', False) == 0\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('pygls', 'lsprotocol', 'pytest_lsp')"
            " or m.startswith(('camp.lsp', 'compiler.editor')))\nassert not bad, bad\nprint('ok')\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), r.stdout + r.stderr


def test_unchanged_files_are_not_parsed_again(tmp_path: Path):
    root = real(tmp_path / "campaigns")
    shutil.copytree(CAMPAIGNS, root, ignore=shutil.ignore_patterns("*.duckdb*"))
    parsed: dict = {}
    memo: dict = {}
    first = check_root(root, {}, parsed, memo)
    again = check_root(root, {}, parsed, memo)
    assert hasattr(first, "workspace") and hasattr(again, "workspace")
    tags = first.index.tags  # pyright: ignore[reportAttributeAccessIssue]
    assert again.index.tags == tags and "complained" in tags  # pyright: ignore[reportAttributeAccessIssue]
    before = {m.path: m for m in first.workspace.modules}  # pyright: ignore[reportAttributeAccessIssue]
    after = {m.path: m for m in again.workspace.modules}  # pyright: ignore[reportAttributeAccessIssue]
    assert all(after[p] is before[p] for p in before)  # the same parse, reused
    (root / "vip.camp").write_text("segment vip_only = tagged \"vip\"\n", encoding="utf-8")  # another size
    (root / "tags.camp").unlink()
    third = check_root(root, {}, parsed, memo)
    assert "skincare_lover" not in third.index.tags and "complained" in third.index.tags  # pyright: ignore[reportAttributeAccessIssue]
    mods = {m.path: m for m in third.workspace.modules}  # pyright: ignore[reportAttributeAccessIssue]
    assert mods["vip.camp"] is not before["vip.camp"] and mods["segments.camp"] is before["segments.camp"]
    assert [d.name.name for d in mods["vip.camp"].decls] == ["vip_only"]
    assert root / "tags.camp" not in parsed and "tags.camp" not in mods


def test_any_position_of_any_file_and_any_half_typed_prefix_answers(index: Index, ws: Path):
    """Hover, definition and completion at every 11th position of every bundled file, and at the end of every 11th
    prefix (a file as it is being typed): an answer or nothing, never an exception."""
    for path in sorted(ws.glob("*.camp")):
        text = path.read_text(encoding="utf-8")
        for offset in range(0, len(text) + 1, 11):
            symbol_at(index, path, text, offset)
            complete_at(index, text, offset)
            symbol_at(index, path, text[:offset], offset)
            complete_at(index, text[:offset], offset)


def test_an_unsaved_new_file_is_checked_as_it_will_be_once_saved(tmp_path: Path):
    """A duplicate name is reported at the second declaration in camp_files' order; an unsaved file takes its
    place in that order (here before segments.camp), not the last one."""
    root = real(tmp_path / "campaigns")
    shutil.copytree(CAMPAIGNS, root, ignore=shutil.ignore_patterns("*.duckdb*"))
    text = 'segment sticky "again" = count(orders within 30d) >= 1\n'
    unsaved = check_root(root, {root / "a.camp": text})
    (root / "a.camp").write_text(text, encoding="utf-8")
    saved = check_root(root, {})
    assert hasattr(unsaved, "by_file") and hasattr(saved, "by_file")
    assert unsaved.by_file == saved.by_file  # pyright: ignore[reportAttributeAccessIssue]
    assert [d.code for d in saved.by_file[root / "segments.camp"]] == ["E205"]  # pyright: ignore[reportAttributeAccessIssue]
