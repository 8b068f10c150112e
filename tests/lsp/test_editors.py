"""The editor kit: the TextMate grammar is valid, highlights every keyword of dsl/grammar.lark, and the VS Code
extension folder points at files that exist."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

from compiler.editor.complete import keywords
from tests.conftest import ROOT

VSCODE = ROOT / "editors" / "vscode"
GRAMMAR = VSCODE / "syntaxes" / "camp.tmLanguage.json"


def _patterns(node) -> list[dict]:
    out = []
    if isinstance(node, dict):
        if "match" in node or "begin" in node:
            out.append(node)
        for value in node.values():
            out += _patterns(value)
    elif isinstance(node, list):
        for value in node:
            out += _patterns(value)
    return out


def test_the_grammar_is_valid_json_and_every_regex_compiles():
    g = json.loads(GRAMMAR.read_text(encoding="utf-8"))
    assert g["scopeName"] == "source.camp" and g["fileTypes"] == ["camp"]
    for p in _patterns(g):
        for key in ("match", "begin", "end"):
            if key in p:
                re.compile(p[key])  # the grammar keeps to the part of Oniguruma that Python's re also reads
    includes = {p["include"].lstrip("#") for p in g["patterns"]}
    assert includes <= set(g["repository"])


def test_every_keyword_of_the_language_is_highlighted_as_one():
    lark_words = set(re.findall(r'"([a-z_]+)"', re.sub(r"//[^\n]*", "", (ROOT / "dsl" / "grammar.lark")
                                                             .read_text(encoding="utf-8"))))
    assert lark_words and lark_words <= set(keywords())  # completion offers them all too
    g = json.loads(GRAMMAR.read_text(encoding="utf-8"))
    words = [p for p in _patterns(g["repository"]["keyword"]) + _patterns(g["repository"]["literal"])
             if "match" in p and "name" in p]
    missing = [w for w in sorted(lark_words | {"much"}) if not any(re.fullmatch(p["match"], w) for p in words)]
    assert not missing, f"keywords of dsl/grammar.lark the TextMate grammar does not know: {missing}"
    assert re.fullmatch(g["repository"]["how-much"]["match"], "how   much")
    # and a name is not a keyword
    assert not any(re.fullmatch(p["match"], "lifecycle") for p in words)


def test_the_vscode_extension_points_at_its_files():
    pkg = json.loads((VSCODE / "package.json").read_text(encoding="utf-8"))
    (lang,) = pkg["contributes"]["languages"]
    (grammar,) = pkg["contributes"]["grammars"]
    assert lang["id"] == grammar["language"] == "camp" and lang["extensions"] == [".camp"]
    assert (VSCODE / grammar["path"]).resolve() == GRAMMAR.resolve()
    json.loads((VSCODE / lang["configuration"]).read_text(encoding="utf-8"))
    assert (VSCODE / pkg["main"]).is_file()
    assert pkg["contributes"]["configuration"]["properties"]["camp.server.command"]["default"] == ["camp", "lsp"]


def test_the_extension_script_parses():
    """Node.js is on every machine of this project (pyright runs on it); the script it would run must parse."""
    node = shutil.which("node")
    assert node is not None, "node is needed (pyright runs on it too)"
    r = subprocess.run([node, "--check", str(VSCODE / "extension.js")], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
