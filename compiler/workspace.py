"""A folder -> Workspace: camp.toml, every .camp file parsed, their texts kept for diagnostics.

Files parsed before with the same bytes come from the parse cache (dsl/parse_cache.py).
"""

from __future__ import annotations

import gc
import os
from dataclasses import dataclass, field
from pathlib import Path

from compiler.config import WorkspaceConfig, load_config
from compiler.runconfig import check_run_config
from dsl.ast import Module
from dsl.diagnostics import Diagnostic, diagnostic
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


def load_workspace(path: Path) -> Workspace | Diagnostic:
    """Load the workspace that contains `path`; a Diagnostic (E001) when there is none."""
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
        _parse_all(root, ws)
    finally:
        gc.freeze()  # the parsed workspace lives as long as the run: keep later collections off it
        if gc_was_on:
            gc.enable()
    return ws


def _parse_all(root: Path, ws: Workspace) -> None:
    files = [(f, display_path(f)) for f in camp_files(root)]
    for (f, shown), (module, mdiags, text) in zip(files, parse_files_cached(files), strict=True):
        ws.modules.append(module)
        ws.diagnostics.extend(mdiags)
        ws.paths[shown] = f
        if text is not None:
            ws.sources[shown] = text
