"""What the `camp` commands do; click wiring lives in camp.cli."""

from __future__ import annotations

import sys
from pathlib import Path

from dsl.diagnostics import Diagnostic, render_github, render_json, render_text


def _under(diag: Diagnostic, targets: list[Path], root: Path) -> bool:
    """Is the diagnostic about something the user asked to check?"""
    if not diag.file:
        return True
    path = Path(diag.file).resolve()
    if not path.suffix == ".camp":
        return True  # camp.toml and templates concern everything that uses them
    return any(t == path or t in path.parents or t == root for t in targets)


def run_check(paths: tuple[Path, ...], fmt: str, strict: bool, fix: bool = False) -> int:
    if fix:
        fixed = _fix(paths)
        if fixed is None:
            return 2
        for file, line, old, new in fixed:
            print(f"{file}:{line}: fixed `{old}` -> `{new}`", file=sys.stderr)
        print(f"camp check: fixed {len(fixed)}; checking again", file=sys.stderr)
    import gc

    gc.disable()  # a short-lived process that frees almost nothing: collections are pure overhead
    from compiler.check import check_workspace
    from compiler.workspace import load_workspace

    diags: list[Diagnostic] = []
    sources: dict[str, str] = {}
    files = 0
    roots: dict[Path, list[Path]] = {}
    for p in paths:
        ws = load_workspace(p)
        if isinstance(ws, Diagnostic):
            _emit([ws], {}, fmt)
            return 2
        roots.setdefault(ws.root, []).append(p.resolve())
        if len(roots[ws.root]) > 1:
            continue
        result = check_workspace(ws)
        targets = [t for t in roots[ws.root]]
        diags += [d for d in result.diagnostics if _under(d, targets, ws.root)]
        sources.update(ws.sources)
        files += sum(1 for m in ws.modules if any(t == Path(m.path).resolve() or t in Path(m.path).resolve().parents
                                                  for t in targets))
    _emit(diags, sources, fmt)
    sys.stdout.flush()
    errors = sum(1 for d in diags if d.is_error)
    warnings = len(diags) - errors
    if fmt == "text":
        print(f"camp check: {files} file{'s' if files != 1 else ''}, {errors} error{'s' if errors != 1 else ''}, "
              f"{warnings} warning{'s' if warnings != 1 else ''}", file=sys.stderr)
    return 1 if errors or (strict and warnings) else 0


def _fix(paths: tuple[Path, ...]) -> list[tuple[str, int, str, str]] | None:
    """Apply the certain fixes of each workspace once (camp.fix); None when a path has no workspace."""
    from camp.fix import apply_fixes
    from compiler.check import check_workspace
    from compiler.workspace import load_workspace

    done: list[tuple[str, int, str, str]] = []
    seen: set[Path] = set()
    for p in paths:
        ws = load_workspace(p)
        if isinstance(ws, Diagnostic):
            _emit([ws], {}, "text")
            return None
        if ws.root in seen:
            continue
        seen.add(ws.root)
        done += apply_fixes(check_workspace(ws).diagnostics, ws.paths)
    return done


def _emit(diags: list[Diagnostic], sources: dict[str, str], fmt: str) -> None:
    if fmt == "json":
        print(render_json(diags))
    elif fmt == "github":
        if diags:
            print(render_github(diags))
    elif diags:
        print(render_text(diags, sources, color=sys.stdout.isatty()))


def run_parse(file: Path, spans: bool) -> int:
    from dsl.ast import without_spans
    from dsl.parse import parse_file

    module, diags, text = parse_file(file)
    if diags:
        print(render_text(diags, {module.path: text or ""}), file=sys.stderr)
        return 1
    if spans:
        print(module.model_dump_json(indent=2))
    else:
        import json

        print(json.dumps(without_spans(module), ensure_ascii=False, indent=2, default=str))
    return 0


def run_fmt(paths: tuple[Path, ...], check_only: bool, diff: bool = False) -> int:
    """`--check`: exit 1 when a file would change; `--diff`: print the unified diff of what would change (and
    exit 1 then), writing nothing."""
    from compiler.workspace import camp_files, display_path
    from dsl.format import format_module
    from dsl.parse import parse_file

    files: list[Path] = []
    for p in paths:
        files += [p] if p.is_file() else camp_files(p)
    changed, failed = [], False
    for f in files:
        shown = display_path(f)
        module, diags, text = parse_file(f, shown)
        if diags:
            print(render_text(diags, {shown: text or ""}), file=sys.stderr)
            failed = True
            continue
        out = format_module(module)
        if out != text:
            changed.append(shown)
            if diff:
                import difflib

                sys.stdout.writelines(difflib.unified_diff((text or "").splitlines(keepends=True),
                                                           out.splitlines(keepends=True), shown, shown))
            elif not check_only:
                f.write_text(out, encoding="utf-8")
    dry = check_only or diff
    if not diff:
        for shown in changed:
            print(("would reformat " if check_only else "reformatted ") + shown)
    if dry:
        print(f"camp fmt: {len(changed)} of {len(files)} files would change", file=sys.stderr)
    return 1 if failed or (dry and changed) else 0


def run_explain(code: str | None) -> int:
    from dsl.codes import CODES

    if code is None:
        for c, info in CODES.items():
            print(f"{c}  {info.severity:7}  {info.title}")
        return 0
    info = CODES.get(code.upper())
    if info is None:
        print(f"unknown code {code}; `camp explain` lists them", file=sys.stderr)
        return 2
    print(f"{code.upper()} ({info.severity}): {info.title}\n\n{info.explanation}\n\nExamples: docs/diagnostics.md#{code.lower()}")
    return 0
