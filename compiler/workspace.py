"""A folder -> Workspace: camp.toml, every .camp file parsed, their texts kept for diagnostics.

Files parsed before with the same bytes come from the parse cache (dsl/parse_cache.py).
"""

from __future__ import annotations

import gc
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from compiler.config import WorkspaceConfig, load_config
from compiler.runconfig import check_run_config
from dsl.ast import Module
from dsl.diagnostics import Diagnostic, diagnostic
from dsl.parse import parse_file, parse_source
from dsl.parse_cache import parse_files_cached
from dsl.span import Span

SKIP_DIRS = {".git", ".venv", "venv", "node_modules", "__pycache__", ".hypothesis"}


@dataclass
class Workspace:
    root: Path
    config: WorkspaceConfig
    modules: list[Module] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)  # display path -> text
    diagnostics: list[Diagnostic] = field(default_factory=list)
    paths: dict[str, Path] = field(default_factory=dict)  # display path -> real path

    @property
    def template_dir(self) -> Path:
        return self.root / self.config.templates.dir


def find_root(start: Path) -> Path | None:
    start = start.resolve()
    here = start if start.is_dir() else start.parent
    for folder in (here, *here.parents):
        if (folder / "camp.toml").is_file():
            return folder
    return None


def display_path(p: Path) -> str:
    try:
        return os.path.relpath(p)
    except ValueError:
        return str(p)


def camp_files(root: Path) -> list[Path]:
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not d.startswith("."))
        found.extend(Path(dirpath) / f for f in sorted(filenames) if f.endswith(".camp"))
    return found


def _walked(root: Path, path: Path) -> bool:
    """Would `camp_files(root)` find a .camp file at `path` if it were saved?"""
    if path.suffix != ".camp" or root not in path.parents:
        return False
    folders = path.relative_to(root).parts[:-1]
    return not any(d in SKIP_DIRS or d.startswith(".") for d in folders)


def _walk_order(rel: Path) -> list[tuple[int, str]]:
    """camp_files' order: a folder's files (sorted) before its subfolders (sorted), top down."""
    return [(1, d) for d in rel.parts[:-1]] + [(0, rel.name)]


def load_workspace(path: Path, overlay: Mapping[Path, str] | None = None,
                   parsed: dict[Path, tuple] | None = None) -> Workspace | Diagnostic:
    """Load the workspace that contains `path`; a Diagnostic (E001) when there is none.

    `overlay` (resolved path -> text) replaces those .camp files' contents, and adds such files under the root
    that are not on disk yet: the language server checks what an editor holds, not what was last saved.
    `parsed`, kept by a caller between loads (the language server), holds each file's parse with its size and
    modification time; an unchanged file is not parsed again (parsing is most of a large workspace's check)."""
    root = find_root(path)
    if root is None:
        return diagnostic("E001", f"no camp.toml in {display_path(path)} or any folder above it",
                          Span.unknown(), display_path(path),
                          ["create one: `camp.toml` with a [workspace] table (see README)"])
    cfg_path = root / "camp.toml"
    config, diags, cfg_text = load_config(cfg_path, display_path(cfg_path))
    if cfg_text is not None and not diags:
        diags = check_run_config(config, cfg_text, root, display_path(cfg_path))
    ws = Workspace(root=root, config=config, diagnostics=list(diags))
    if cfg_text is not None:
        ws.sources[display_path(cfg_path)] = cfg_text
    gc_was_on = gc.isenabled()
    gc.disable()  # parsing allocates many small objects and frees none: collections are wasted work
    try:
        _parse_all(root, ws, overlay or {}, parsed)
    finally:
        gc.freeze()  # the parsed workspace lives as long as the run: keep later collections off it
        if gc_was_on:
            gc.enable()
    return ws


def _parse_all(root: Path, ws: Workspace, overlay: Mapping[Path, str], parsed: dict[Path, tuple] | None) -> None:
    files = camp_files(root)
    if overlay:
        on_disk = {f.resolve() for f in files}
        extra = [p for p in overlay if p not in on_disk and _walked(root, p)]
        if extra:  # in the order camp_files would give once saved: the first of two declarations is the same
            files = sorted(files + extra, key=lambda p: _walk_order(p.relative_to(root)))
    shown_files = [(f, display_path(f)) for f in files]
    if not overlay and parsed is None:  # camp check: the content-hash parse cache (dsl.parse_cache)
        results = parse_files_cached(shown_files)
    else:  # the language server: open files from the editor, the rest unless unchanged since its last check
        results = [_parse_one(f, shown, overlay, parsed) for f, shown in shown_files]
    for (f, shown), (module, mdiags, text) in zip(shown_files, results, strict=True):
        ws.modules.append(module)
        ws.diagnostics.extend(mdiags)
        ws.paths[shown] = f
        if text is not None:
            ws.sources[shown] = text


def _parse_one(f: Path, shown: str, overlay: Mapping[Path, str], parsed: dict[Path, tuple] | None) -> tuple:
    held = overlay.get(f.resolve()) if overlay else None
    if held is not None:
        return parse_source(held, shown)
    if parsed is not None:
        return _parse_unless_known(f, shown, parsed)
    return parse_file(f, shown)


def _parse_unless_known(f: Path, shown: str, parsed: dict[Path, tuple]) -> tuple:
    try:
        st = f.stat()
        stamp = (shown, st.st_mtime_ns, st.st_size)
    except OSError:
        return parse_file(f, shown)
    known = parsed.get(f)
    if known is None or known[0] != stamp:
        known = parsed[f] = (stamp, parse_file(f, shown))
    return known[1]
