"""`camp lsp` driven by a real LSP client (pytest-lsp) over stdio, on a copy of the bundled workspace.

Diagnostics are compared with what `camp check --format json` prints for the same text on disk; hover,
completion, definition and formatting are asserted at concrete positions of the bundled files.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types as L
from pytest_lsp import ClientServerConfig, LanguageClient

from tests.conftest import CAMPAIGNS

CAMP = Path(sys.executable).with_name("camp")
WORK = Path(tempfile.mkdtemp(prefix="camp-lsp-"))  # the workspace the server sees (a copy: edits stay here)
WS = WORK / "campaigns"
shutil.copytree(CAMPAIGNS, WS, ignore=shutil.ignore_patterns("*.duckdb*", "*.wal"))

pytestmark = pytest.mark.asyncio(loop_scope="module")
REGISTERED: list[L.Registration] = []  # what the server asked the client to register


@pytest.fixture(scope="module", autouse=True)
def _remove_the_copy():
    yield
    shutil.rmtree(WORK, ignore_errors=True)


@pytest_lsp.fixture(scope="module", config=ClientServerConfig(server_command=[str(CAMP), "lsp", "--stdio"]))
async def client(lsp_client: LanguageClient):
    @lsp_client.feature(L.CLIENT_REGISTER_CAPABILITY)
    def register(params: L.RegistrationParams) -> None:  # as VS Code does: the server asks to watch files
        REGISTERED.extend(params.registrations)

    await lsp_client.initialize_session(L.InitializeParams(
        capabilities=pytest_lsp.client_capabilities("visual-studio-code"),
        root_uri=WS.as_uri(), workspace_folders=[L.WorkspaceFolder(uri=WS.as_uri(), name="campaigns")]))
    yield
    await lsp_client.shutdown_session()


def uri(name: str) -> str:
    return (WS / name).as_uri()


def open_doc(client: LanguageClient, name: str, text: str | None = None, version: int = 1) -> str:
    text = (WS / name).read_text(encoding="utf-8") if text is None else text
    client.text_document_did_open(L.DidOpenTextDocumentParams(
        L.TextDocumentItem(uri=uri(name), language_id="camp", version=version, text=text)))
    return text


async def diagnostics_of(client: LanguageClient, u: str, ok, timeout: float = 60) -> list[L.Diagnostic]:
    """Wait until the diagnostics published for `u` satisfy `ok`."""
    async def wait():
        while not (u in client.diagnostics and ok(client.diagnostics[u])):
            await client.wait_for_notification(L.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
        return list(client.diagnostics[u])
    return await asyncio.wait_for(wait(), timeout)


def position(text: str, needle: str, delta: int = 0) -> L.Position:
    """The position (UTF-16 units, as the client negotiated by default) of `needle` + delta characters."""
    i = text.index(needle) + delta
    line = text.count("\n", 0, i)
    start = text.rfind("\n", 0, i) + 1
    return L.Position(line=line, character=len(text[start:i].encode("utf-16-le")) // 2)


async def test_diagnostics_as_you_type_equal_camp_check(client: LanguageClient, tmp_path: Path):
    text = open_doc(client, "winback.camp")
    assert await diagnostics_of(client, uri("winback.camp"), lambda ds: True) == []  # the bundled file is clean
    # a broken edit, not saved: a label that does not exist after an emoji (UTF-16 columns differ from
    # characters there), and a misspelt field of orders
    broken = text.replace("who lifecycle = churned", 'who city != "🎯🎯" and lifecycle = dormant') \
                 .replace("sum(orders.amount within 365d)", "sum(orders.amout within 365d)")
    assert broken != text
    client.text_document_did_change(L.DidChangeTextDocumentParams(
        text_document=L.VersionedTextDocumentIdentifier(uri=uri("winback.camp"), version=2),
        content_changes=[L.TextDocumentContentChangeWholeDocument(text=broken)]))
    got = await diagnostics_of(client, uri("winback.camp"), lambda ds: len(ds) >= 2)
    assert (WS / "winback.camp").read_text(encoding="utf-8") == text  # from memory, not from disk

    # the same text on disk in another copy, checked by the command line
    other = tmp_path / "campaigns"
    shutil.copytree(WS, other)
    (other / "winback.camp").write_text(broken, encoding="utf-8")
    r = subprocess.run([str(CAMP), "check", "--format", "json", "."], cwd=other, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 1, r.stderr
    expected = [d for d in json.loads(r.stdout) if d["file"] == "winback.camp"]
    assert {d["code"] for d in expected} >= {"E204"}, expected
    lines = broken.split("\n")

    def units(line: int, col: int) -> int:
        return len(lines[line - 1][:col - 1].encode("utf-16-le")) // 2

    want = sorted((d["code"], d["severity"], d["message"] + "".join(f"\nhint: {h}" for h in d["hints"]),
                   (d["line"] - 1, units(d["line"], d["column"]), d["end_line"] - 1, units(d["end_line"], d["end_column"])))
                  for d in expected)
    have = sorted((d.code, "error" if d.severity == L.DiagnosticSeverity.Error else "warning", d.message,
                   (d.range.start.line, d.range.start.character, d.range.end.line, d.range.end.character))
                  for d in got)
    assert have == want
    e204 = next(d for d in got if d.code == "E204")
    assert broken.split("\n")[e204.range.start.line].encode("utf-16-le")[
        2 * e204.range.start.character:2 * e204.range.end.character].decode("utf-16-le") == "dormant"

    # typing the fix clears them
    client.text_document_did_change(L.DidChangeTextDocumentParams(
        text_document=L.VersionedTextDocumentIdentifier(uri=uri("winback.camp"), version=3),
        content_changes=[L.TextDocumentContentChangeWholeDocument(text=text)]))
    assert await diagnostics_of(client, uri("winback.camp"), lambda ds: not ds) == []


async def hover_text(client: LanguageClient, name: str, text: str, needle: str, delta: int) -> str:
    h = await client.text_document_hover_async(L.HoverParams(
        text_document=L.TextDocumentIdentifier(uri=uri(name)), position=position(text, needle, delta)))
    assert h is not None, (name, needle)
    assert isinstance(h.contents, L.MarkupContent)
    return h.contents.value


async def test_hover(client: LanguageClient):
    winback = open_doc(client, "winback.camp")
    # a classification: its rules and labels
    doc = await hover_text(client, "winback.camp", winback, "lifecycle = churned", 3)
    assert "**classification** `lifecycle`" in doc and "potential = otherwise" in doc
    assert "labels: `new`, `mature`, `declining`, `silent`, `churned`, `potential`" in doc
    # a label of it
    doc = await hover_text(client, "winback.camp", winback, "lifecycle = churned", 15)
    assert doc.startswith("**label** `churned`") and "none(orders within 180d) and any(orders)" in doc
    # an event field after `orders.`, and one inside `none(orders where …)`
    assert (await hover_text(client, "winback.camp", winback, "orders.amount", 9)).startswith(
        "**orders field** `amount`: `money(CNY)`")
    assert (await hover_text(client, "winback.camp", winback, 'brand = "Shiseido"', 2)).startswith(
        "**orders field** `brand`: `text`")
    # users fields
    birthday = open_doc(client, "birthday.camp")
    assert (await hover_text(client, "birthday.camp", birthday, "birthday is today", 1)).startswith(
        "**users field** `birthday`: `date`")
    feedback = open_doc(client, "feedback.camp")
    assert (await hover_text(client, "feedback.camp", feedback, 'city = "北京"', 0)).startswith(
        "**users field** `city`: `text`")
    # a segment: its definition
    vip = open_doc(client, "vip.camp")
    doc = await hover_text(client, "vip.camp", vip, "segment important_value", 12)
    assert doc.startswith("**segment** `important_value`: 重要价值客户")
    assert 'segment important_value "重要价值客户" = sticky and recent_buyer' in doc


async def test_definition(client: LanguageClient):
    vip = open_doc(client, "vip.camp")
    segments = (WS / "segments.camp").read_text(encoding="utf-8")
    loc = await client.text_document_definition_async(L.DefinitionParams(
        text_document=L.TextDocumentIdentifier(uri=uri("vip.camp")),
        position=position(vip, "segment important_value", 10)))
    assert isinstance(loc, L.Location)
    assert loc.uri == uri("segments.camp")
    assert loc.range.start == position(segments, "important_value \"")

    winback = open_doc(client, "winback.camp")
    loc = await client.text_document_definition_async(L.DefinitionParams(
        text_document=L.TextDocumentIdentifier(uri=uri("winback.camp")),
        position=position(winback, "lifecycle = churned", 2)))
    assert isinstance(loc, L.Location) and loc.uri == uri("segments.camp")
    assert loc.range.start == position(segments, "lifecycle \"生命周期\"")

    loc = await client.text_document_definition_async(L.DefinitionParams(
        text_document=L.TextDocumentIdentifier(uri=uri("winback.camp")),
        position=position(winback, "winback/push.j2", 4)))
    assert isinstance(loc, L.Location)
    assert loc.uri == (WS / "templates" / "winback" / "push.j2").as_uri()


async def complete(client: LanguageClient, name: str, text: str) -> list[L.CompletionItem]:
    """Open (or replace) `name` with `text` and complete at its end."""
    open_doc(client, name, text)
    end = L.Position(line=text.count("\n"), character=len(text.rsplit("\n", 1)[-1].encode("utf-16-le")) // 2)
    got = await client.text_document_completion_async(L.CompletionParams(
        text_document=L.TextDocumentIdentifier(uri=uri(name)), position=end))
    assert isinstance(got, L.CompletionList)
    client.text_document_did_close(L.DidCloseTextDocumentParams(L.TextDocumentIdentifier(uri=uri(name))))
    return got.items


async def test_completion(client: LanguageClient):
    # an unsaved scratch file of the workspace: half-typed text that does not parse
    labels = [i.label for i in await complete(client, "scratch.camp", "segment s = sum(orders.")]
    assert labels == ["amount", "brand", "category", "shop", "coupon_used", "coupon_id", "time"]
    labels = [i.label for i in await complete(client, "scratch.camp", "segment s = count(visits where ")]
    assert labels[:3] == ["source", "seconds", "time"]  # the event's fields first, then the rest
    assert {"city", "orders", "sticky", "lifecycle", "within", "tagged", "much"} <= set(labels)
    labels = [i.label for i in await complete(client, "scratch.camp", "segment s = lifecycle = ")]
    assert labels == ["new", "mature", "declining", "silent", "churned", "potential"]
    labels = [i.label for i in await complete(client, "scratch.camp", 'segment s = tagged "')]
    assert labels == ["complained", "employee", "fragrance_fan", "makeup_fan", "skincare_lover"]
    labels = [i.label for i in await complete(client, "scratch.camp",
                                              'campaign c {\n  where push template "')]
    assert "winback/push.j2" in labels and "birthday/push.j2" in labels and len(labels) == 16
    items = await complete(client, "scratch.camp", "segment s = not segment ")
    assert [i.label for i in items] == ["sticky", "recent_buyer", "important_value", "high_spender", "top_spenders",
                                        "above_median_spend", "rfm_champions"]
    assert all(i.kind == L.CompletionItemKind.Variable for i in items)


async def test_formatting_is_camp_fmt(client: LanguageClient, tmp_path: Path):
    messy = 'segment   s "标题"   =   count(orders within 7d)>=1   and city="北京"  # why\n\n\n\nsegment t=sticky\n'
    open_doc(client, "messy.camp", messy)
    edits = await client.text_document_formatting_async(L.DocumentFormattingParams(
        text_document=L.TextDocumentIdentifier(uri=uri("messy.camp")),
        options=L.FormattingOptions(tab_size=2, insert_spaces=True)))
    assert edits is not None and len(edits) == 1
    on_disk = tmp_path / "messy.camp"
    on_disk.write_text(messy, encoding="utf-8")
    r = subprocess.run([str(CAMP), "fmt", str(on_disk)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert edits[0].new_text == on_disk.read_text(encoding="utf-8") != messy
    assert edits[0].range.start == L.Position(line=0, character=0)
    assert edits[0].range.end == L.Position(line=messy.count("\n"), character=0)
    # text that does not parse is left alone
    client.text_document_did_change(L.DidChangeTextDocumentParams(
        text_document=L.VersionedTextDocumentIdentifier(uri=uri("messy.camp"), version=2),
        content_changes=[L.TextDocumentContentChangeWholeDocument(text="segment s = (")]))
    assert await client.text_document_formatting_async(L.DocumentFormattingParams(
        text_document=L.TextDocumentIdentifier(uri=uri("messy.camp")),
        options=L.FormattingOptions(tab_size=2, insert_spaces=True))) is None
    client.text_document_did_close(L.DidCloseTextDocumentParams(L.TextDocumentIdentifier(uri=uri("messy.camp"))))


async def test_a_file_outside_any_workspace_says_so(client: LanguageClient, tmp_path: Path):
    stray = (tmp_path / "stray.camp").as_uri()
    client.text_document_did_open(L.DidOpenTextDocumentParams(
        L.TextDocumentItem(uri=stray, language_id="camp", version=1, text="segment s = sticky\n")))
    (d,) = await diagnostics_of(client, stray, lambda ds: bool(ds))
    assert d.code == "E001" and d.message.startswith("no camp.toml")


async def test_incremental_edits_are_what_is_checked_and_completed(client: LanguageClient):
    """Editors send ranges, not whole texts: type `orders.` into a line after a Chinese title."""
    name = "typing.camp"
    text = 'segment s "近期" = sum(\n'
    open_doc(client, name, text)
    assert await diagnostics_of(client, uri(name), lambda ds: bool(ds))  # half a declaration: E108
    at = L.Position(line=0, character=len('segment s "近期" = sum('))
    client.text_document_did_change(L.DidChangeTextDocumentParams(
        text_document=L.VersionedTextDocumentIdentifier(uri=uri(name), version=2),
        content_changes=[L.TextDocumentContentChangePartial(range=L.Range(start=at, end=at), text="orders.")]))
    at = L.Position(line=0, character=at.character + len("orders."))
    got = await client.text_document_completion_async(L.CompletionParams(
        text_document=L.TextDocumentIdentifier(uri=uri(name)), position=at))
    assert isinstance(got, L.CompletionList) and [i.label for i in got.items][:2] == ["amount", "brand"]
    client.text_document_did_change(L.DidChangeTextDocumentParams(
        text_document=L.VersionedTextDocumentIdentifier(uri=uri(name), version=3),
        content_changes=[L.TextDocumentContentChangePartial(range=L.Range(start=at, end=at),
                                                            text="amount within 30d) >= 100 CNY")]))
    assert await diagnostics_of(client, uri(name), lambda ds: not ds) == []
    client.text_document_did_close(L.DidCloseTextDocumentParams(L.TextDocumentIdentifier(uri=uri(name))))


async def test_a_template_changed_on_disk_is_checked_again(client: LanguageClient):
    """Templates are not edited as camp documents: the server hears of them through watched files."""
    (watch,) = [r for r in REGISTERED if r.method == L.WORKSPACE_DID_CHANGE_WATCHED_FILES]
    options = watch.register_options  # the client gets it as plain JSON data
    assert isinstance(options, dict)
    assert {w["globPattern"] for w in options["watchers"]} >= {"**/*.camp", "**/templates/**"}
    open_doc(client, "birthday.camp")
    template = WS / "templates" / "birthday" / "push.j2"
    before = template.read_text(encoding="utf-8")
    template.write_text(before + "{{ user.shoe_size }}\n", encoding="utf-8")
    try:
        client.workspace_did_change_watched_files(L.DidChangeWatchedFilesParams(
            changes=[L.FileEvent(uri=template.as_uri(), type=L.FileChangeType.Changed)]))
        (d,) = await diagnostics_of(client, template.as_uri(), lambda ds: bool(ds))
        assert d.code == "E503" and "user.shoe_size" in d.message
    finally:
        template.write_text(before, encoding="utf-8")
    client.workspace_did_change_watched_files(L.DidChangeWatchedFilesParams(
        changes=[L.FileEvent(uri=template.as_uri(), type=L.FileChangeType.Changed)]))
    assert await diagnostics_of(client, template.as_uri(), lambda ds: not ds) == []
