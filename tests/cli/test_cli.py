"""The `camp` command as CI and people use it: real processes, exit codes, output formats."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

from tests.conftest import CAMPAIGNS, CODES_DIR, ROOT


def camp(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "camp", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120)


def test_help():
    r = camp("--help")
    assert r.returncode == 0
    for command in ("check", "fmt", "parse", "explain"):
        assert command in r.stdout


def test_bundled_campaigns_are_clean():
    r = camp("check", "campaigns/", "--strict")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "0 errors, 0 warnings" in r.stderr


def _broken(tmp_path):
    ws = tmp_path / "ws"
    shutil.copytree(CODES_DIR / "base", ws)
    (ws / "bad.camp").write_text('segment s = gender = "female"\nsegment t = count(orders within 30d)\n',
                                 encoding="utf-8")
    return ws


def test_errors_exit_1_with_located_text(tmp_path):
    ws = _broken(tmp_path)
    r = camp("check", ".", cwd=ws)
    assert r.returncode == 1
    assert "bad.camp:1:22: error[E303]" in r.stdout
    assert "bad.camp:2:13: error[E306]" in r.stdout
    assert "^^^^^^^^" in r.stdout
    assert "Traceback" not in r.stdout + r.stderr


def test_json_format(tmp_path):
    r = camp("check", ".", "--format", "json", cwd=_broken(tmp_path))
    data = json.loads(r.stdout)
    assert [(d["code"], d["line"], d["column"]) for d in data] == [("E303", 1, 22), ("E306", 2, 13)]
    assert data[0]["hints"] and data[0]["severity"] == "error" and data[0]["file"] == "bad.camp"


def test_github_format(tmp_path):
    r = camp("check", ".", "--format", "github", cwd=_broken(tmp_path))
    lines = r.stdout.splitlines()
    assert lines[0].startswith("::error file=bad.camp,line=1,col=22,")
    assert "title=E303::" in lines[0]


def test_warnings_pass_unless_strict(tmp_path):
    ws = tmp_path / "ws"
    shutil.copytree(CODES_DIR / "base", ws)
    shutil.copy(CODES_DIR / "W103.bad.camp", ws / "w.camp")
    assert camp("check", ".", cwd=ws).returncode == 0
    assert camp("check", ".", "--strict", cwd=ws).returncode == 1


def test_usage_errors_exit_2(tmp_path):
    assert camp("check", "--format", "xml").returncode == 2
    assert camp("check", str(tmp_path / "missing")).returncode == 2
    r = camp("check", str(tmp_path))  # exists, but no camp.toml anywhere above a tmp dir
    assert r.returncode == 2 and "E001" in r.stdout


def test_check_one_file_reports_that_file(tmp_path):
    ws = _broken(tmp_path)
    (ws / "fine.camp").write_text('segment ok = city = "北京"\n', encoding="utf-8")
    r = camp("check", "fine.camp", cwd=ws)
    assert r.returncode == 0, r.stdout
    assert camp("check", "bad.camp", cwd=ws).returncode == 1


def test_parse_json():
    r = camp("parse", "campaigns/winback.camp", "--json")
    assert r.returncode == 0
    module = json.loads(r.stdout)
    campaign = module["decls"][0]
    assert campaign["kind"] == "campaign" and campaign["name"]["name"] == "winback_high_value"
    assert campaign["span"]["line"] == 3


def test_parse_reports_syntax_errors(tmp_path):
    f = tmp_path / "x.camp"
    f.write_bytes(b"segment a = count(orders within 7) > 1\n")
    r = camp("parse", str(f))
    assert r.returncode == 1 and "E104" in r.stderr and "duration like `7d`" in r.stderr


def test_fmt_check_and_write(tmp_path):
    assert camp("fmt", "--check", "campaigns/").returncode == 0
    f = tmp_path / "messy.camp"
    f.write_text("segment   a=x  and(y)   # keep me\n", encoding="utf-8")
    r = camp("fmt", "--check", str(f))
    assert r.returncode == 1 and "would reformat" in r.stdout
    assert f.read_text(encoding="utf-8") == "segment   a=x  and(y)   # keep me\n"
    assert camp("fmt", str(f)).returncode == 0
    assert f.read_text(encoding="utf-8") == "segment a = x and y  # keep me\n"
    assert camp("fmt", "--check", str(f)).returncode == 0


def test_explain():
    r = camp("explain", "E303")
    assert r.returncode == 0 and "unknown enum value" in r.stdout
    assert camp("explain", "E999").returncode == 2


def test_check_does_not_import_prefect():
    """CI validation must stay fast and Prefect-free, although Prefect is installed."""
    code = (
        "import importlib.util, sys\n"
        "assert importlib.util.find_spec('prefect') is not None, 'prefect should be installed'\n"
        "from camp.commands import run_check\n"
        "from pathlib import Path\n"
        f"rc = run_check((Path({str(CAMPAIGNS)!r}),), 'json', False)\n"
        "assert rc == 0, rc\n"
        "bad = sorted(m for m in sys.modules if m == 'prefect' or m.startswith('prefect.'))\n"
        "assert not bad, bad\n"
        "print('ok')\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), r.stdout + r.stderr
