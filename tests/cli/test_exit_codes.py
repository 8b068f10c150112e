"""Exit codes as CI reads them (0 clean, 1 problems, 2 usage, 3 internal error) and inputs that used to crash
the checker: each gives a located diagnostic in every output format, never a traceback."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from dsl.diagnostics import Diagnostic, render_github, render_json, render_text
from dsl.span import Span
from tests.conftest import CODES_DIR, ROOT

ONE_LINE = ("camp: internal error: RuntimeError: boom second line "
            "(please report; rerun with CAMP_DEBUG=1 for the traceback)")


def camp(*args, cwd=ROOT, env=None):
    return subprocess.run([sys.executable, "-m", "camp", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, env=env)


def _ws(tmp_path, text: str | None = None, name: str | bytes = "a.camp"):
    ws = tmp_path / "ws"
    shutil.copytree(CODES_DIR / "base", ws)
    if text is not None:
        path = os.path.join(os.fsencode(ws), name) if isinstance(name, bytes) else ws / name
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    return ws


def _campaign(template: str) -> str:
    return ("campaign ex {\n  who city = \"x\"\n  when daily at 10:00\n"
            f"  where push template \"{template}\"\n  how\n    step touch: notify where\n}}\n")


CRASHES = {
    "lone surrogate": ('segment s = gender = "\\ud800"\n', [("E107", 1, 22)]),
    "5,000-digit duration": ("segment d = any(orders within " + "9" * 5000 + "d)\n", [("E109", 1, 31)]),
    "NUL in a template name": (_campaign("x\\u0000"), [("E410", 4, 23)]),  # NUL in any text: E410
    "300-character template name": (_campaign("a" * 300), [("E510", 4, 23)]),
}


@pytest.mark.parametrize("case", sorted(CRASHES))
def test_crash_inputs_give_located_diagnostics(tmp_path, case):
    text, expected = CRASHES[case]
    ws = _ws(tmp_path, text)
    r = camp("check", ".", "--format", "json", cwd=ws)
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr
    data = json.loads(r.stdout)
    assert [(d["code"], d["line"], d["column"]) for d in data] == expected
    assert all(d["file"] == "a.camp" and d["hints"] for d in data)
    for fmt in ("text", "github"):
        r = camp("check", ".", "--format", fmt, cwd=ws)
        assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
        assert f"a.camp:{expected[0][1]}:{expected[0][2]}: error[{expected[0][0]}]" in r.stdout if fmt == "text" \
            else f"file=a.camp,line={expected[0][1]},col={expected[0][2]}," in r.stdout


def test_a_template_that_links_to_itself(tmp_path):
    ws = _ws(tmp_path, _campaign("loop.j2"))
    (ws / "templates" / "loop.j2").symlink_to("loop.j2")
    r = camp("check", ".", "--format", "json", cwd=ws)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert [(d["code"], d["line"], d["column"]) for d in json.loads(r.stdout)] == [("E510", 4, 23)]


def test_a_file_name_that_is_not_utf8_does_not_crash_the_output(tmp_path):
    """Linux file names are bytes: an undecodable one reaches the diagnostics as a lone surrogate."""
    ws = _ws(tmp_path, 'segment s = gender = "female"\n', name=b"bad\xff.camp")
    r = camp("check", ".", "--format", "json", cwd=ws)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    data = json.loads(r.stdout)
    assert [(d["code"], d["file"]) for d in data] == [("E303", "bad\\udcff.camp")]
    for fmt in ("text", "github"):
        r = camp("check", ".", "--format", fmt, cwd=ws)
        assert r.returncode == 1 and "Traceback" not in r.stderr and "bad\\udcff.camp" in r.stdout, r.stderr


NASTY = ["\ud800 lone", "nul \x00 here", "two\nlines\r\nand CR\r", "100% sure", "a::b,c:d", "\udcff", "é 北京 😀"]


@pytest.mark.parametrize("s", NASTY)
def test_renderers_take_any_string(s):
    d = Diagnostic(code="E104", severity="error", message=s, file=s, span=Span.point(3, 4), hints=(s, "::x%"))
    data = json.loads(render_json([d]))
    json.dumps(data, ensure_ascii=False).encode("utf-8")  # strictly valid Unicode all the way
    assert data[0]["line"] == 3 and data[0]["hints"][1] == "::x%"
    gh = render_github([d])
    gh.encode("utf-8")
    assert "\n" not in gh and "\r" not in gh and "\x00" not in gh
    head, _, message = gh.partition("::")[2].partition("::")
    assert head.startswith("error file=") and "title=E104" in head
    assert head.count(":") == 0 and head.count(",") == 5  # file, line, col, endLine, endColumn, title
    if s.isprintable() or "\n" in s:  # the runner's unescaping gives the message back (`::` may stay in it)
        unescaped = message.replace("%0D", "\r").replace("%0A", "\n").replace("%25", "%")
        assert unescaped == f"{s}\nhint: {s}\nhint: ::x%"
    render_text([d], {s: s}).encode("utf-8")


def test_github_escapes_per_the_workflow_command_spec():
    d = Diagnostic(code="E104", severity="warning", message="50% off\r\nnext", file="a,b:c.camp", span=Span.unknown(),
                   hints=())
    assert render_github([d]) == "::warning file=a%2Cb%3Ac.camp,title=E104::50%25 off%0D%0Anext"


def test_exit_0_clean(tmp_path):
    r = camp("check", ".", cwd=_ws(tmp_path))
    assert r.returncode == 0, r.stdout + r.stderr


def test_exit_1_problems(tmp_path):
    assert camp("check", ".", cwd=_ws(tmp_path, 'segment s = gender = "female"\n')).returncode == 1


@pytest.mark.parametrize("args", [("check", "--format", "xml"), ("check", "no/such/path"), ("nonsense",),
                                  ("explain", "E999"), ("compile", "--dialect", "oracle", "x.camp")])
def test_exit_2_usage(tmp_path, args):
    r = camp(*args, cwd=_ws(tmp_path))
    assert r.returncode == 2, r.stdout + r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("command", [("check", "."), ("compile", "x.camp"), ("audience", "x.camp"), ("runs", ".")])
def test_exit_2_without_a_workspace(tmp_path, command):
    (tmp_path / "x.camp").write_text("segment s = city = \"x\"\n", encoding="utf-8")
    r = camp(*command, cwd=tmp_path)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "E001" in r.stdout + r.stderr


FORCE_INTERNAL_ERROR = """
import sys
import compiler.check

def boom(ws):
    raise RuntimeError("boom\\nsecond line")

compiler.check.check_workspace = boom
from camp.cli import main
sys.argv = ["camp", "check", "."]
main()
"""


def test_exit_3_internal_error_is_one_line(tmp_path):
    ws = _ws(tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "CAMP_DEBUG"}
    r = subprocess.run([sys.executable, "-c", FORCE_INTERNAL_ERROR], cwd=ws, capture_output=True, text=True,
                       timeout=120, env=env)
    assert r.returncode == 3
    assert r.stderr.strip() == ONE_LINE
    assert r.stdout == ""


def test_camp_debug_shows_the_traceback(tmp_path):
    r = subprocess.run([sys.executable, "-c", FORCE_INTERNAL_ERROR], cwd=_ws(tmp_path), capture_output=True,
                       text=True, timeout=120, env={**os.environ, "CAMP_DEBUG": "1"})
    assert r.returncode == 3
    assert "Traceback (most recent call last)" in r.stderr and "in boom" in r.stderr
    assert r.stderr.strip().splitlines()[-1] == ONE_LINE


def test_help_documents_the_exit_codes():
    for args in (("--help",), ("check", "--help")):
        out = camp(*args).stdout
        assert "3 internal error" in " ".join(out.split()) or "3  internal error" in out


def test_a_large_report_reaches_a_pipe_whole(tmp_path):
    """`camp check` leaves without Python's teardown (camp.cli.LeanExit): everything it printed must still arrive,
    through a pipe, in every format, with the exit code."""
    ws = _ws(tmp_path)
    for i in range(400):  # 400 files with one unknown field each: a report of some hundreds of KB
        (ws / f"bad{i:03d}.camp").write_text(f"segment odd{i} = unknown_field_{i} > 3\n", encoding="utf-8")
    as_json = camp("check", "--format", "json", str(ws), cwd=tmp_path)
    text = camp("check", str(ws), cwd=tmp_path)
    github = camp("check", "--format", "github", str(ws), cwd=tmp_path)
    assert as_json.returncode == text.returncode == github.returncode == 1
    report = json.loads(as_json.stdout)
    assert len(report) >= 400 and all(f"unknown_field_{i}" in as_json.stdout for i in range(400))
    assert len(as_json.stdout) > 150_000  # far more than a pipe holds (64 KB) and than Python buffers (8 KB)
    assert text.stderr.strip().splitlines()[-1].startswith("camp check: 40") and f"{len(report)} errors" in text.stderr
    assert len([line for line in github.stdout.splitlines() if line.startswith("::error")]) == len(report)
