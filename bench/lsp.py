"""Benchmark: the language server as an editor feels it. `camp lsp` runs as a real subprocess, driven over stdio
by an LSP client (pytest-lsp's, as in tests/lsp), on a copy of the bundled workspace and on one with 1,000
campaign files (bench/check.py's). Median of N.

    python bench/lsp.py [--runs 10] [--files 1000]

- diagnostics: from a didChange (alternately breaking and fixing winback.camp) to the publishDiagnostics that
  reflects it; includes the server's 0.2 s pause after the last change (camp/lsp/server.py DELAY).
- hover, completion: one request each on a workspace already checked.
- the peer: `camp check --format json` on the same workspace in a fresh process (what CI or a save hook would
  run), median of 3 in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lsprotocol import types as L
from pytest_lsp import LanguageClient, client_capabilities, make_test_lsp_client

sys.path.insert(0, str(Path(__file__).resolve().parent))
from check import CAMPAIGNS, build  # noqa: E402  (bench/check.py: the 1,000-file workspace)

CAMP = Path(sys.executable).with_name("camp")


async def measure(ws: Path, runs: int) -> dict[str, list[float]]:
    client: LanguageClient = make_test_lsp_client()
    await client.start_io(str(CAMP), "lsp")
    await client.initialize_session(L.InitializeParams(capabilities=client_capabilities("visual-studio-code"),
                                                       root_uri=ws.as_uri()))
    target = ws / "winback.camp"
    if not target.exists():  # the large workspace: a generated campaign that reads orders
        target = next(p for p in sorted((ws / "generated").glob("*.camp")) if "orders" in p.read_text(encoding="utf-8"))
    uri = target.as_uri()
    text = target.read_text(encoding="utf-8")
    broken = text.replace("orders", "ordrs", 1)
    out: dict[str, list[float]] = {"diagnostics": [], "hover": [], "completion": []}

    async def published(ok) -> None:
        while not (uri in client.diagnostics and ok(client.diagnostics[uri])):
            await client.wait_for_notification(L.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)

    t = time.perf_counter()
    client.text_document_did_open(L.DidOpenTextDocumentParams(L.TextDocumentItem(uri, "camp", 1, text)))
    await asyncio.wait_for(published(lambda ds: True), 600)
    out["open"] = [time.perf_counter() - t]
    where = L.Position(line=text[:text.index("orders")].count("\n"), character=0)
    where.character = text.split("\n")[where.line].index("orders") + 2
    for i in range(runs):
        new = broken if i % 2 == 0 else text
        client.diagnostics.pop(uri, None)
        t = time.perf_counter()
        client.text_document_did_change(L.DidChangeTextDocumentParams(
            L.VersionedTextDocumentIdentifier(uri=uri, version=i + 2),
            [L.TextDocumentContentChangeWholeDocument(text=new)]))
        await asyncio.wait_for(published((lambda ds: bool(ds)) if new is broken else (lambda ds: not ds)), 600)
        out["diagnostics"].append(time.perf_counter() - t)
    for _ in range(runs):
        t = time.perf_counter()
        await client.text_document_hover_async(L.HoverParams(L.TextDocumentIdentifier(uri), where))
        out["hover"].append(time.perf_counter() - t)
        t = time.perf_counter()
        await client.text_document_completion_async(L.CompletionParams(L.TextDocumentIdentifier(uri), where))
        out["completion"].append(time.perf_counter() - t)
    await client.shutdown_session()
    await client.stop()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--files", type=int, default=1000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        small = Path(tmp) / "bundled"
        shutil.copytree(CAMPAIGNS, small, ignore=shutil.ignore_patterns("*.duckdb*"))
        large = Path(tmp) / "large"
        build(large, args.files)
        print("| workspace | files | open -> diagnostics (s) | edit -> diagnostics, median (s) | hover, median (ms) "
              "| completion, median (ms) | peer: `camp check`, median (s) | edit / peer |\n"
              "| --- | --- | --- | --- | --- | --- | --- | --- |")
        for name, ws in (("bundled", small), (f"{args.files} campaigns", large)):
            r = asyncio.run(measure(ws.resolve(), args.runs))
            files = sum(1 for _ in ws.rglob("*.camp"))
            peer = statistics.median(_camp_check(ws) for _ in range(3))
            edit = statistics.median(r["diagnostics"])
            print(f"| {name} | {files} | {r['open'][0]:.2f} | {edit:.2f} (max {max(r['diagnostics']):.2f}) "
                  f"| {1000 * statistics.median(r['hover']):.1f} | {1000 * statistics.median(r['completion']):.1f} "
                  f"| {peer:.2f} | {edit / peer:.2f} |", flush=True)


def _camp_check(ws: Path) -> float:
    t = time.perf_counter()
    subprocess.run([str(CAMP), "check", "--format", "json", "."], cwd=ws, capture_output=True, timeout=600)
    return time.perf_counter() - t


if __name__ == "__main__":
    main()
