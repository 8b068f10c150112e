"""The language server's wiring: LSP requests -> camp.lsp.checking and compiler.editor, positions converted
between camp's spans (1-based lines, columns in characters) and the client's units (UTF-16 unless it offers
another encoding; pygls negotiates it).

Diagnostics are published for every file of the workspace a document belongs to (templates and camp.toml too),
after each open, save and close, 0.2 s after the last change while typing (one check per pause, not per key),
and when a watched file changes on disk (.camp files, camp.toml, templates).
"""

from __future__ import annotations

import asyncio
import traceback
from pathlib import Path

from lsprotocol import types as L
from pygls import uris
from pygls.lsp.server import LanguageServer
from pygls.workspace.position_codec import PositionCodec

from camp.lsp.checking import Checked, check_root, real, root_of
from compiler.editor.complete import complete_at
from compiler.editor.index import Symbol
from compiler.editor.locate import symbol_at
from dsl.diagnostics import Diagnostic
from dsl.format import format_module
from dsl.parse import normalize_text, parse_source
from dsl.span import Span

DELAY = 0.2  # seconds of quiet after a change before the workspace is checked again
KINDS = {"field": L.CompletionItemKind.Field, "event_field": L.CompletionItemKind.Field,
         "event": L.CompletionItemKind.Event, "segment": L.CompletionItemKind.Variable,
         "classification": L.CompletionItemKind.Enum, "label": L.CompletionItemKind.EnumMember,
         "campaign": L.CompletionItemKind.Module, "tag": L.CompletionItemKind.Value,
         "value": L.CompletionItemKind.Value, "template": L.CompletionItemKind.File,
         "keyword": L.CompletionItemKind.Keyword}


class CampServer(LanguageServer):
    def __init__(self) -> None:
        from importlib.metadata import version

        super().__init__("camp", version("camp"), text_document_sync_kind=L.TextDocumentSyncKind.Incremental)
        self.checked: dict[Path, Checked] = {}
        self.published: dict[Path, set[str]] = {}  # root -> URIs with diagnostics
        self.pending: dict[Path, asyncio.TimerHandle] = {}
        self.parsed: dict[Path, dict[Path, tuple]] = {}  # root -> the parse of each file on disk, while unchanged
        self.memo: dict[Path, dict[int, tuple]] = {}  # root -> what the index learnt from each unchanged parse
        self.sent: dict[str, list[L.Diagnostic]] = {}  # URI -> what it was last told: unchanged news is not sent

    # ------------------------------------------------------------ documents

    def open_texts(self) -> dict[Path, str]:
        out = {}
        for uri, doc in self.workspace.text_documents.items():
            path = uris.to_fs_path(uri)
            if path is not None:
                out[real(Path(path))] = doc.source
        return out

    def uri_of(self, path: Path) -> str:
        for uri in self.workspace.text_documents:
            fs = uris.to_fs_path(uri)
            if fs is not None and real(Path(fs)) == path:
                return uri
        return uris.from_fs_path(str(path)) or path.as_uri()

    def schedule(self, uri: str, delay: float) -> None:
        path = uris.to_fs_path(uri)
        if path is None:
            return
        root = root_of(Path(path))
        if root is None:
            self.text_document_publish_diagnostics(L.PublishDiagnosticsParams(uri=uri, diagnostics=[_no_workspace()]))
            return
        old = self.pending.pop(root, None)
        if old is not None:
            old.cancel()
        if delay <= 0:
            self.check(root)
        else:
            self.pending[root] = asyncio.get_running_loop().call_later(delay, self.check, root)

    def check(self, root: Path) -> Checked | None:
        waiting = self.pending.pop(root, None)
        if waiting is not None:
            waiting.cancel()  # checked now (a hover came first): the timer has nothing left to do
        try:
            checked = check_root(root, self.open_texts(), self.parsed.setdefault(root, {}), self.memo.setdefault(root, {}))
        except Exception as exc:  # noqa: BLE001 - a bug in camp must not take the editor's server down
            self.window_log_message(L.LogMessageParams(type=L.MessageType.Error, message="camp: internal error: "
                                                       + "".join(traceback.format_exception(exc))))
            return None
        if isinstance(checked, Diagnostic):
            return None
        self.checked[root] = checked
        sent: set[str] = set()
        for path, diags in checked.by_file.items():
            uri = self.uri_of(path)
            sent.add(uri)
            lines = checked.texts.get(path, "").split("\n")
            self.publish(uri, [self.diagnostic(d, lines) for d in diags])
        for uri, doc in self.workspace.text_documents.items():  # an open file without problems hears so too
            if uri not in sent and doc.path is not None and root in real(Path(doc.path)).parents:
                sent.add(uri)
                self.publish(uri, [])
        for uri in self.published.get(root, set()) - sent:
            self.publish(uri, [])
        self.published[root] = sent
        return checked

    def publish(self, uri: str, diagnostics: list[L.Diagnostic]) -> None:
        """Tell the client, unless it was told exactly this already (a big workspace has many files with
        warnings, and an edit changes the diagnostics of few). An open document always hears: it may be new."""
        if self.sent.get(uri) == diagnostics and uri not in self.workspace.text_documents:
            return
        self.sent[uri] = diagnostics
        self.text_document_publish_diagnostics(L.PublishDiagnosticsParams(uri=uri, diagnostics=diagnostics))

    def current(self, uri: str) -> tuple[Checked, Path, str] | None:
        """The checked workspace of a document (checked now if a change is waiting), its real path, its text."""
        fs = uris.to_fs_path(uri)
        if fs is None:
            return None
        path = real(Path(fs))
        root = root_of(path)
        if root is None:
            return None
        checked = self.check(root) if root in self.pending or root not in self.checked else self.checked[root]
        if checked is None:
            return None
        return checked, path, normalize_text(self.workspace.get_text_document(uri).source)

    # ------------------------------------------------------------ positions

    @property
    def codec(self) -> PositionCodec:
        return self.workspace.position_codec

    def position(self, lines: list[str], line: int, column: int) -> L.Position:
        """camp's 1-based (line, column in characters) -> the client's 0-based position in its units."""
        if line <= 0 or not lines:
            return L.Position(line=0, character=0)
        row = min(line, len(lines)) - 1
        return L.Position(line=row, character=self.codec.client_num_units(lines[row][:max(0, column - 1)]))

    def range(self, lines: list[str], span: Span) -> L.Range:
        return L.Range(start=self.position(lines, span.line, span.column),
                       end=self.position(lines, span.end_line, span.end_column))

    def offset(self, text: str, pos: L.Position) -> int:
        """The client's position -> an offset into camp's (normalised) text."""
        lines = text.split("\n")
        row = min(pos.line, len(lines) - 1)
        units = 0
        col = 0
        for ch in lines[row]:
            if units >= pos.character:
                break
            units += self.codec.client_num_units(ch)
            col += 1
        return sum(len(x) + 1 for x in lines[:row]) + col

    def diagnostic(self, d: Diagnostic, lines: list[str]) -> L.Diagnostic:
        return L.Diagnostic(
            range=self.range(lines, d.span), message=d.message + "".join(f"\nhint: {h}" for h in d.hints),
            severity=L.DiagnosticSeverity.Error if d.is_error else L.DiagnosticSeverity.Warning,
            code=d.code, source="camp")

    def location(self, checked: Checked, symbol: Symbol) -> L.Location | None:
        if symbol.place is None:
            return None
        lines = checked.texts.get(symbol.place.path, "").split("\n")
        return L.Location(uri=self.uri_of(symbol.place.path), range=self.range(lines, symbol.place.span))


def _no_workspace() -> L.Diagnostic:
    return L.Diagnostic(range=L.Range(start=L.Position(line=0, character=0), end=L.Position(line=0, character=0)),
                        message="no camp.toml in this file's folder or any folder above it\nhint: create one: "
                                "`camp.toml` with a [workspace] table (see README)",
                        severity=L.DiagnosticSeverity.Error, code="E001", source="camp")


server = CampServer()


@server.feature(L.TEXT_DOCUMENT_DID_OPEN)
def did_open(ls: CampServer, params: L.DidOpenTextDocumentParams) -> None:
    ls.schedule(params.text_document.uri, 0)


@server.feature(L.TEXT_DOCUMENT_DID_CHANGE)
def did_change(ls: CampServer, params: L.DidChangeTextDocumentParams) -> None:
    ls.schedule(params.text_document.uri, DELAY)


@server.feature(L.TEXT_DOCUMENT_DID_SAVE)
def did_save(ls: CampServer, params: L.DidSaveTextDocumentParams) -> None:
    ls.schedule(params.text_document.uri, 0)


@server.feature(L.TEXT_DOCUMENT_DID_CLOSE)
def did_close(ls: CampServer, params: L.DidCloseTextDocumentParams) -> None:
    ls.schedule(params.text_document.uri, 0)  # the file is read from disk again


@server.feature(L.INITIALIZED)
async def initialized(ls: CampServer, params: L.InitializedParams) -> None:
    """Ask to hear of files changed outside the editor (a git checkout, a template or camp.toml saved), which
    change the diagnostics of the open workspace; clients that cannot watch files simply answer no."""
    caps = ls.client_capabilities.workspace
    watch = caps.did_change_watched_files if caps is not None else None
    if watch is None or not watch.dynamic_registration:
        return
    watchers = [L.FileSystemWatcher(glob_pattern=g) for g in ("**/*.camp", "**/camp.toml", "**/templates/**")]
    try:
        await ls.client_register_capability_async(L.RegistrationParams(registrations=[L.Registration(
            id="camp-watch", method=L.WORKSPACE_DID_CHANGE_WATCHED_FILES,
            register_options=L.DidChangeWatchedFilesRegistrationOptions(watchers=watchers))]))
    except Exception as exc:  # noqa: BLE001 - without watching, open, change, save and close still check
        ls.window_log_message(L.LogMessageParams(type=L.MessageType.Info, message=f"camp: no file watching: {exc}"))


@server.feature(L.WORKSPACE_DID_CHANGE_WATCHED_FILES)
def watched_files_changed(ls: CampServer, params: L.DidChangeWatchedFilesParams) -> None:
    """Re-check each workspace a changed file belongs to (and that the editor has a document of)."""
    roots = set()
    for change in params.changes:
        fs = uris.to_fs_path(change.uri)
        root = root_of(Path(fs)) if fs is not None else None
        if root is not None and root in ls.checked:
            roots.add(root)
    for root in roots:
        ls.check(root)


@server.feature(L.TEXT_DOCUMENT_HOVER)
def hover(ls: CampServer, params: L.HoverParams) -> L.Hover | None:
    got = ls.current(params.text_document.uri)
    if got is None:
        return None
    checked, path, text = got
    symbol = symbol_at(checked.index, path, text, ls.offset(text, params.position))
    if symbol is None or not symbol.doc:
        return None
    return L.Hover(contents=L.MarkupContent(kind=L.MarkupKind.Markdown, value=symbol.doc))


@server.feature(L.TEXT_DOCUMENT_DEFINITION)
def definition(ls: CampServer, params: L.DefinitionParams) -> L.Location | None:
    got = ls.current(params.text_document.uri)
    if got is None:
        return None
    checked, path, text = got
    symbol = symbol_at(checked.index, path, text, ls.offset(text, params.position))
    return ls.location(checked, symbol) if symbol is not None else None


@server.feature(L.TEXT_DOCUMENT_COMPLETION, L.CompletionOptions(trigger_characters=[".", '"', " ", "("]))
def completion(ls: CampServer, params: L.CompletionParams) -> L.CompletionList:
    got = ls.current(params.text_document.uri)
    if got is None:
        return L.CompletionList(is_incomplete=False, items=[])
    checked, _, text = got
    items = [L.CompletionItem(label=s.name, kind=KINDS.get(s.kind), detail=s.detail,
                              documentation=L.MarkupContent(kind=L.MarkupKind.Markdown, value=s.doc) if s.doc else None,
                              sort_text=f"{i:04d}")
             for i, s in enumerate(complete_at(checked.index, text, ls.offset(text, params.position)))]
    return L.CompletionList(is_incomplete=False, items=items)


@server.feature(L.TEXT_DOCUMENT_FORMATTING)
def formatting(ls: CampServer, params: L.DocumentFormattingParams) -> list[L.TextEdit] | None:
    """`camp fmt` on the editor's text; nothing when the text does not parse (fix the errors first)."""
    doc = ls.workspace.get_text_document(params.text_document.uri)
    module, diags, text = parse_source(doc.source, doc.path or "<input>")
    if diags or text is None:
        return None
    out = format_module(module)
    if out == text and doc.source == text:
        return []
    lines = doc.source.split("\n")
    end = L.Position(line=len(lines) - 1, character=ls.codec.client_num_units(lines[-1]))
    return [L.TextEdit(range=L.Range(start=L.Position(line=0, character=0), end=end), new_text=out)]


def serve() -> None:
    server.start_io()
