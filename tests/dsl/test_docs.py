"""Every code example in the docs and README parses; the full workspace examples check clean."""

import re

import pytest

from dsl.parse import parse_source
from tests.conftest import ROOT

DOCS = [ROOT / "docs" / "language.md", ROOT / "README.md"]


def _blocks():
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        for i, block in enumerate(re.findall(r"```\n(.*?)```", text, flags=re.S)):
            if re.match(r"\s*(users|events|tags|consent|segment|classify|policy|campaign)\b", block):
                yield pytest.param(block, id=f"{path.name}-{i}")


@pytest.mark.parametrize("block", list(_blocks()))
def test_doc_example_parses(block):
    _, diags, _ = parse_source(block, "doc.camp")
    assert diags == [], diags


def test_language_examples_type_check(tmp_path):
    """The reference's examples together form a workspace that checks clean (with the bundled templates)."""
    import shutil

    from compiler.check import check_workspace
    from compiler.workspace import load_workspace
    from tests.conftest import CAMPAIGNS

    ws = tmp_path / "ws"
    ws.mkdir()
    shutil.copy(CAMPAIGNS / "camp.toml", ws)
    shutil.copytree(CAMPAIGNS / "templates", ws / "templates")
    shutil.copy(CAMPAIGNS / "schema.camp", ws)
    text = (ROOT / "docs" / "language.md").read_text(encoding="utf-8")
    blocks = [b for b in re.findall(r"```\n(.*?)```", text, flags=re.S)
              if re.match(r"\s*(segment|classify|policy|campaign)\b", b)]
    (ws / "examples.camp").write_text("\n".join(blocks), encoding="utf-8")
    (ws / "engagement.camp").write_text(
        "classify engagement by first match {\n  highly_engaged = count(visits within 7d) >= 5\n"
        "  engaged = count(visits within 30d) >= 3\n  casual = otherwise\n}\n", encoding="utf-8")
    result = check_workspace(load_workspace(ws))
    assert [(d.code, d.span.line, d.message) for d in result.errors] == []
