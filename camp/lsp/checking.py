"""Open documents + disk -> checked workspaces, their diagnostics per file and the editor index.

Each check runs `compiler.check.check_workspace` on the workspace the file belongs to (its camp.toml, its schema,
every .camp file of it), with the texts the editor holds for open files; so the diagnostics are those
`camp check` prints for the same text, code, span and message alike. The process works in the workspace's root
while checking, as `camp check` run there would, so paths in messages and hints read the same.
"""

from __future__ import annotations

import gc
import os
from dataclasses import dataclass, field
from pathlib import Path

from compiler.check import check_workspace
from compiler.editor.index import Index, index_workspace
from compiler.workspace import Workspace, find_root, load_workspace
from dsl.diagnostics import Diagnostic


@dataclass
class Checked:
    root: Path
    workspace: Workspace
    index: Index
    by_file: dict[Path, list[Diagnostic]] = field(default_factory=dict)  # absolute path -> its diagnostics
    texts: dict[Path, str] = field(default_factory=dict)  # absolute path -> the text the spans refer to


def real(path: Path) -> Path:
    """One spelling per file, whatever path the editor opened it by."""
    return Path(os.path.realpath(path))


def check_root(root: Path, open_texts: dict[Path, str], parsed: dict[Path, tuple] | None = None,
               memo: dict[int, tuple] | None = None) -> Checked | Diagnostic:
    """Check the workspace at `root`; `open_texts` maps the real paths of open documents to their text; `parsed`
    keeps the parse of files on disk from one check to the next (compiler.workspace.load_workspace), `memo` what
    the index learnt from them (compiler.editor.index.index_workspace)."""
    cwd = os.getcwd()
    os.chdir(root)  # display paths (in diagnostics, messages, hints) relative to the root, as `camp check` there
    try:
        overlay = {p: t for p, t in open_texts.items() if root in p.parents}
        ws = load_workspace(root, overlay, parsed)
        gc.unfreeze()  # load_workspace freezes what it parsed for a one-shot run; a server lets old workspaces go
        if isinstance(ws, Diagnostic):
            return ws
        if parsed is not None:
            for gone in set(parsed) - set(ws.paths.values()):  # deleted or renamed files
                del parsed[gone]
        result = check_workspace(ws)
    finally:
        os.chdir(cwd)
    checked = Checked(root, ws, index_workspace(ws, memo))
    for shown, text in ws.sources.items():
        checked.texts[real(ws.paths.get(shown, root / shown))] = text
    for d in result.diagnostics:
        path = real(root / d.file) if d.file else root / "camp.toml"
        checked.by_file.setdefault(path, []).append(d)
    return checked


def root_of(path: Path) -> Path | None:
    found = find_root(path)
    return real(found) if found is not None else None
