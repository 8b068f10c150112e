"""Run a diagnostic code's wrong/right example in a copy of tests/codes/base."""

from __future__ import annotations

import shutil
from pathlib import Path

from compiler.check import check_workspace
from compiler.workspace import load_workspace
from dsl.diagnostics import Diagnostic

HERE = Path(__file__).resolve().parent
BASE = HERE / "base"

# Codes whose examples cannot be a plain file in the repo; the test builds them.
SPECIAL = {
    "E001": ("a folder with no camp.toml in it or above it", "a folder with camp.toml"),
    "E100": ("a .camp file that cannot be read (here: a link to nothing)", "a readable file"),
    "E103": ("a 3 MiB .camp file", "a file under 2 MiB"),
}


def example_path(code: str, kind: str) -> Path | None:
    for ext in (".camp", ".toml"):
        p = HERE / f"{code}.{kind}{ext}"
        if p.exists():
            return p
    return None


def run_example(code: str, kind: str, tmp: Path) -> list[Diagnostic]:
    ws_dir = tmp / f"{code}-{kind}"
    shutil.copytree(BASE, ws_dir)
    if code == "E001":
        if kind == "bad":
            (ws_dir / "camp.toml").unlink()
            ws = load_workspace(ws_dir)
            return [ws] if isinstance(ws, Diagnostic) else check_workspace(ws).diagnostics
    elif code == "E100":
        if kind == "bad":
            (ws_dir / "broken.camp").symlink_to(ws_dir / "does-not-exist.camp")
    elif code == "E103":
        if kind == "bad":
            line = 'segment s{} = city = "北京"\n'
            (ws_dir / "huge.camp").write_text("".join(line.format(i) for i in range(110_000)), encoding="utf-8")
    else:
        src = example_path(code, kind)
        if src.suffix == ".toml":
            shutil.copy(src, ws_dir / "camp.toml")
        else:
            data = src.read_bytes()
            first = data.split(b"\n", 1)[0].decode("utf-8", "replace")
            if first.startswith("# replaces: "):
                (ws_dir / first.removeprefix("# replaces: ").strip()).unlink()
            (ws_dir / "example.camp").write_bytes(data)
    ws = load_workspace(ws_dir)
    assert not isinstance(ws, Diagnostic)
    return check_workspace(ws).diagnostics
