"""Mutated and random campaign files only ever produce camp's own diagnostics, and every file that
`camp check` passes also compiles and dry-runs.

Check: no exception, no hang, every diagnostic with a registered code and a span inside the file.
Compile and dry run (for each check-clean file): the audience SQL for a compile-only dialect (each in
turn; all of them with CAMP_FUZZ=long), the DuckDB and PostgreSQL plan of each
step, and a dry run of each plan through the engine functions `camp run --dry-run` uses (without
Prefect) against a small DuckDB shop made once per session. Every example ends within 10 s.

Examples per run: 1,000 mutated + 600 value-mutated + 400 random-text + 300 random-byte (2,300);
`CAMP_FUZZ=long` multiplies them by 5 (11,500).
"""

from __future__ import annotations

import functools
import os
import re
import tempfile
import time
import zlib
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compiler.check import CheckResult, check_workspace
from compiler.workspace import Workspace, load_workspace
from dsl.codes import CODES
from dsl.parse import parse_source
from tests.conftest import CAMPAIGNS
from tests.profiles import examples

SEEDS = sorted(CAMPAIGNS.glob("*.camp"))
VOCAB = ["and", "or", "not", "(", ")", "{", "}", ":", ",", "=", ">=", "within", "7d", "30m", "between", "ago",
         "count(", "sum(", "orders", "orders.amount", "visits", "where", "if", "else", "otherwise", "step", "after",
         "since", "touch", "give what", "notify where", "who", "what", "when", "how", "how much", "cap", "per user",
         "100 CNY", "50%", "2026-02-30", "25:00", '"', '"x"', "#", "\n", "segment", "campaign", "tagged",
         "lifecycle", "silent", "template", '"nope.j2"', "exclusive", "budget", "-", "/", "0", "\x00", "é", "北京",
         "\\", "\t", "variant a 50%:", "cron", '"* * *"', "tz", '"Mars/Base"', "every", "mondy", "first", "delay"]
# values near and past the limits the checker knows (docs/language.md, "Limits"), for value mutations
VALUES = {
    "number": ["0", "1", "0.5", "999999.99", "1000000", "1000001", "99999999999999.9999", "100000000000000",
               "999999999999999999", "1" + "0" * 18, "1" + "0" * 40, "2147483647", "2147483648", "0.0001", "0.00001",
               "0.001", "1.0000000001", "1.00000000001", "١٠", "٣"],
    "duration": ["1m", "59m", "1h", "1d", "7d", "36524d", "36525d", "36526d", "99999999d", "1200mo", "1201mo",
                 "5217w", "5218w", "876600h", "876601h", "52596000m", "52596001m", "0d", "١d"],
    "date": ["1900-01-01", "1899-12-31", "2999-12-31", "3000-01-01", "0001-01-01", "9999-12-31", "2026-02-29",
             "2028-02-29", "2026-12-01", "٢٠٢٦-١٢-٠١"],
    "time": ["00:00", "23:59", "24:00", "9:30", "١٠:٠٠", "10:٠٠"],
    "cron": ['"0 0 30 2 *"', '"0 0 31 4 *"', '"0 0 29 2 *"', '"0 10 * * 1-5"', '"* * * * *"', '"0 0 1 1 *"',
             '"0 0 31 2,4 1"', '"61 0 * * *"', '"0 0 ١ * *"'],
    "string": ['"x"', '"\\u0000"', '"a\\u0000b"', '""', '"Asia/Shanghai"', '"vip"', '"北京"'],
}
TOKENS = re.compile(r'(?P<date>\b\d{4}-\d{2}-\d{2}\b)|(?P<time>\b\d{1,2}:\d{2}\b)|(?P<duration>\b\d+(mo|h|d|w|m)\b)'
                    r'|(?P<cron>cron\s+"[^"]*")|(?P<string>"[^"\n]*")|(?P<number>\b\d+(\.\d+)?\b)')
LONG = os.environ.get("CAMP_FUZZ") == "long"
SCALE = 5 if LONG else 1
AS_OF = datetime(2026, 12, 4, 15, 0, tzinfo=ZoneInfo("Asia/Shanghai"))  # a Friday, after the demo shop's day
EXAMPLE_SECONDS = 10  # CPU seconds of one example (_through): a hang or runaway guard, not a benchmark
DIALECTS = ("duckdb", "postgres", "snowflake", "bigquery", "spark", "trino")


@functools.lru_cache(maxsize=1)
def _base() -> Workspace:
    ws = load_workspace(CAMPAIGNS)
    assert isinstance(ws, Workspace)
    return ws


def _checked(data: bytes | str, name: str) -> tuple[Workspace, CheckResult]:
    base = _base()
    module, diags, text = parse_source(data, name)
    modules = [m for m in base.modules if m.path != name] + [module]
    sources = {k: v for k, v in base.sources.items() if k != name}
    if text is not None:
        sources[name] = text
    ws = Workspace(root=base.root, config=base.config, modules=modules, sources=sources)
    result = check_workspace(ws)
    raw = data if isinstance(data, bytes) else data.encode("utf-8", "surrogatepass")
    lines = raw.count(b"\n") + 1
    for d in diags + result.diagnostics:
        assert d.code in CODES, d
        assert d.message
        if d.file == name and d.span.known:
            assert 1 <= d.span.line <= lines + 1, (d, lines)
            assert d.span.column >= 1
    result.diagnostics = diags + result.diagnostics
    return ws, result


def _check_text(data: bytes | str, name: str) -> CheckResult:
    """Check one file in place of `name` in the bundled workspace; assert the diagnostics are camp's own."""
    return _checked(data, name)[1]


@functools.lru_cache(maxsize=1)
def _shop() -> tuple[str, object]:
    """A 300-user DuckDB shop and an empty ledger, made once per session (dry runs write nothing)."""
    from runtime.demo_data import make_shop
    from runtime.ledger import open_ledger

    tmp = Path(tempfile.mkdtemp(prefix="camp-fuzz-"))
    data_url = f"duckdb:///{tmp / 'shop.duckdb'}"
    make_shop(data_url, users=300)
    return data_url, open_ledger(f"duckdb:///{tmp / 'ledger.duckdb'}")


def compile_and_dry_run(ws: Workspace, result: CheckResult, name: str) -> int:
    """Compile every campaign declared in `name` (SQL for every dialect, each step's plan) and dry-run
    each plan as `camp run --dry-run` does, minus Prefect. Returns how many plans ran."""
    from compiler.sql import AudienceSQL
    from compiler.step_plan import build_plan
    from runtime.context import Run
    from tests.runtime.steps import run_engine

    program = result.program
    data_url, ledger = _shop()
    channels = {n: spec.model_dump() for n, spec in ws.config.channels.items()}
    ran = 0
    for c in program.campaigns.values():
        if c.file != name:
            continue
        # DuckDB and PostgreSQL below, in each plan; one compile-only dialect per campaign, in turn (all in
        # the long run), so a run covers each of them without paying for every one on every file
        turn = DIALECTS[2:] if LONG else [DIALECTS[2 + zlib.crc32(repr(c).encode()) % (len(DIALECTS) - 2)]]
        for dialect in turn:
            sql = AudienceSQL(program, AS_OF, dialect)
            sql.sql(sql.final(c))
        for s in c.steps:
            occurrence = None if s is c.steps[0] else "2026-12-04T07:00Z"
            build_plan(program, c, AS_OF, "postgres", ws.template_dir, s.name, ws.config.workspace.name,
                       occurrence=occurrence)
            plan = build_plan(program, c, AS_OF, "duckdb", ws.template_dir, s.name, ws.config.workspace.name,
                              occurrence=occurrence)
            assert len(plan.canonical()) < 1_000_000, "the plan is too large for Prefect's parameters"
            run = Run(plan, ledger, data_url, AS_OF, True, channels)
            run_engine(run, 100)
            ran += 1
    for seg in program.segments.values():
        if seg.file == name:
            for dialect in ("duckdb", "postgres"):
                sql = AudienceSQL(program, AS_OF, dialect)
                sql.sql(sql.condition(seg.expr))
    return ran


def seed_path(file_name: str) -> str:
    """The path the bundled workspace knows a seed file by, so a mutated copy replaces it (not a
    second copy beside it, whose every name would clash with the original's)."""
    return next(m.path for m in _base().modules if Path(m.path).name == file_name)


def _through(data: str, name: str) -> None:
    """Check, and when clean also compile and dry-run; the whole example within EXAMPLE_SECONDS."""
    t0 = time.process_time()  # CPU time: a hang guard that a busy machine's waiting does not trip
    ws, result = _checked(data.encode("utf-8", "surrogatepass"), name)
    if not result.errors:
        compile_and_dry_run(ws, result, name)
    took = time.process_time() - t0
    assert took < EXAMPLE_SECONDS, f"{took:.1f} s"


@st.composite
def mutated(draw):
    path = draw(st.sampled_from(SEEDS))
    text = path.read_text(encoding="utf-8")
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(text)))
        op = draw(st.sampled_from(["delete", "insert", "replace", "duplicate", "swap"]))
        if op == "delete":
            j = min(len(text), i + draw(st.integers(1, 40)))
            text = text[:i] + text[j:]
        elif op == "insert":
            text = text[:i] + " " + draw(st.sampled_from(VOCAB)) + " " + text[i:]
        elif op == "replace":
            j = min(len(text), i + draw(st.integers(1, 10)))
            text = text[:i] + draw(st.sampled_from(VOCAB)) + text[j:]
        elif op == "duplicate":
            j = min(len(text), i + draw(st.integers(1, 200)))
            text = text[:j] + text[i:j] + text[j:]
        elif len(text) > 2 and i < len(text) - 1:
            text = text[:i] + text[i + 1] + text[i] + text[i + 2:]
    return path.name, text


@st.composite
def value_mutated(draw):
    """A bundled file with 1-3 of its literals (numbers, durations, dates, times, cron, strings) replaced
    by values near or past the checker's limits: mostly still well-formed, so most reach compile and run."""
    path = draw(st.sampled_from(SEEDS))
    text = path.read_text(encoding="utf-8")
    found = [m for m in TOKENS.finditer(text) if not text[:m.start()].rsplit("\n", 1)[-1].lstrip().startswith("#")]
    if not found:
        return path.name, text
    picks = sorted(set(draw(st.lists(st.sampled_from(found), min_size=1, max_size=3))), key=lambda m: -m.start())
    for m in picks:
        kind = m.lastgroup
        new = draw(st.sampled_from(VALUES[kind]))
        if kind == "cron":
            new = "cron " + new
        text = text[:m.start()] + new + text[m.end():]
    return path.name, text


@settings(max_examples=examples(1000 * SCALE), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_campaigns(case):
    name, text = case
    _through(text, seed_path(name))


@settings(max_examples=examples(600 * SCALE), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value_mutated())
def test_value_mutations(case):
    name, text = case
    _through(text, seed_path(name))


@settings(max_examples=examples(400 * SCALE), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(st.sampled_from(VOCAB), st.text(max_size=5)), max_size=60).map(" ".join))
def test_random_token_soup(text):
    _check_text(text.encode("utf-8", "surrogatepass"), "soup.camp")


@settings(max_examples=examples(300 * SCALE), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400))
def test_random_bytes(data):
    _check_text(data, "bytes.camp")
