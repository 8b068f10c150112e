"""LF, CRLF, CR-only and a UTF-8 BOM read the same, in .camp files and in camp.toml: the same AST and the same
diagnostics (codes, lines, columns) as the LF file."""

from __future__ import annotations

import shutil
import subprocess
import sys

from hypothesis import HealthCheck, given, settings

from compiler.check import check_workspace
from compiler.config import load_config
from compiler.workspace import Workspace, display_path, load_workspace
from dsl.format import format_module
from dsl.parse import parse_source
from tests.conftest import CAMPAIGNS, CODES_DIR
from tests.dsl import strategies as S
from tests.profiles import examples
from tests.test_fuzz import _base, mutated

BOM = b"\xef\xbb\xbf"
VARIANTS = {
    "crlf": lambda b: b.replace(b"\n", b"\r\n"),
    "cr": lambda b: b.replace(b"\n", b"\r"),
    "bom": lambda b: BOM + b,
    "bom+crlf": lambda b: BOM + b.replace(b"\n", b"\r\n"),
}


def _read(data: bytes, name: str):
    """The module and every diagnostic about this file, as `camp check` sees them in the bundled workspace."""
    base = _base()
    module, diags, _ = parse_source(data, name)
    ws = Workspace(root=base.root, config=base.config, sources=dict(base.sources),
                   modules=[m for m in base.modules if m.path != name] + [module])
    found = diags + [d for d in check_workspace(ws).diagnostics if d.file == name]
    return module, sorted((d.code, d.span.line, d.span.column, d.span.end_line, d.span.end_column, d.message)
                          for d in found)


def _same_for_every_line_ending(text: str, name: str) -> None:
    lf = text.encode("utf-8", "surrogatepass")
    module, diags = _read(lf, name)
    for kind, convert in VARIANTS.items():
        other_module, other_diags = _read(convert(lf), name)
        assert other_diags == diags, kind
        assert other_module == module, kind


def test_cr_only_file_keeps_its_campaign():
    """The first comment used to run to the end of a CR-only file: the campaign vanished with a W106 warning."""
    text = (CAMPAIGNS / "winback.camp").read_text(encoding="utf-8")
    assert text.startswith("#")
    module, diags, _ = parse_source(text.replace("\n", "\r").encode("utf-8"), "winback.camp")
    assert diags == []
    assert [d.name.name for d in module.decls] == ["winback_high_value"]
    lf_module, _, _ = parse_source(text.encode("utf-8"), "winback.camp")
    assert module == lf_module


def test_every_seed_reads_the_same():
    for path in sorted(CAMPAIGNS.glob("*.camp")):
        _same_for_every_line_ending(path.read_text(encoding="utf-8"), display_path(path))


def test_positions_of_bad_bytes_count_cr_lines():
    for bad, code in ((b"\x00", "E102"), (b"\xff", "E101")):
        lf = b"# one\nsegment s = city = \"a" + bad + b"\"\n"
        expected = [(d.code, d.span.line, d.span.column) for d in parse_source(lf, "x.camp")[1]]
        assert expected == [(code, 2, 22)]
        for convert in VARIANTS.values():
            assert [(d.code, d.span.line, d.span.column) for d in parse_source(convert(lf), "x.camp")[1]] == expected


def test_text_sources_are_normalized_too():
    lf, _, _ = parse_source('segment s = city = "a"\nsegment t = city = "b"\n')
    for text in ('\ufeffsegment s = city = "a"\r\nsegment t = city = "b"\r\n',
                 'segment s = city = "a"\rsegment t = city = "b"\r'):
        assert parse_source(text)[0] == lf


@settings(max_examples=examples(150), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_files_read_the_same_with_any_line_ending(case):
    name, text = case
    _same_for_every_line_ending(text, display_path(CAMPAIGNS / name))  # replaces the seed in the workspace


@settings(max_examples=examples(60), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(S.module)
def test_generated_files_read_the_same_with_any_line_ending(module):
    _same_for_every_line_ending(format_module(module), "campaigns/zz_generated.camp")


def test_camp_toml_with_bom_and_crlf(tmp_path):
    lf = (CODES_DIR / "base" / "camp.toml").read_bytes()
    expected = load_config_from(tmp_path, lf)
    assert expected[1] == []
    for kind, convert in VARIANTS.items():
        assert load_config_from(tmp_path, convert(lf)) == expected, kind


def test_camp_toml_errors_are_located_the_same(tmp_path):
    lf = b'[workspace]\ntimezone = "Asia/Shanghai"\n\ncurrency = "cny"\ncolour = 1\n'
    config, diags, _ = load_config_from(tmp_path, lf)
    where = [(d.span.line, d.message) for d in diags]
    assert [line for line, _ in where] == [4, 5]
    assert all(d.hints for d in diags)
    for kind, convert in VARIANTS.items():
        assert [(d.span.line, d.message) for d in load_config_from(tmp_path, convert(lf))[1]] == where, kind


def load_config_from(tmp_path, data: bytes):
    path = tmp_path / "camp.toml"
    path.write_bytes(data)
    config, diags, text = load_config(path, "camp.toml")
    return config, diags, text


def test_check_a_crlf_and_bom_workspace_as_a_process(tmp_path):
    ws = tmp_path / "ws"
    shutil.copytree(CODES_DIR / "base", ws)
    for f in ws.rglob("*"):
        if f.is_file() and f.suffix in (".camp", ".toml"):
            f.write_bytes(BOM + f.read_bytes().replace(b"\n", b"\r\n"))
    (ws / "cr.camp").write_bytes(b'# a comment first\rsegment s = gender = "female"\r')
    r = subprocess.run([sys.executable, "-m", "camp", "check", "."], cwd=ws, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "cr.camp:2:22: error[E303]" in r.stdout
    assert "W106" not in r.stdout and "E002" not in r.stdout
    assert isinstance(load_workspace(ws), Workspace)
