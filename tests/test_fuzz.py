"""Mutated and random campaign files only ever produce camp's own diagnostics.

No exception, no hang, every diagnostic with a registered code and a span inside the
file. 1,500 mutated + 500 random-text + 300 random-byte examples per run.
"""

from __future__ import annotations

import functools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compiler.check import check_workspace
from compiler.workspace import Workspace, load_workspace
from dsl.codes import CODES
from dsl.parse import parse_source
from tests.conftest import CAMPAIGNS

SEEDS = sorted(CAMPAIGNS.glob("*.camp"))
VOCAB = ["and", "or", "not", "(", ")", "{", "}", ":", ",", "=", ">=", "within", "7d", "30m", "between", "ago",
         "count(", "sum(", "orders", "orders.amount", "visits", "where", "if", "else", "otherwise", "step", "after",
         "since", "touch", "give what", "notify where", "who", "what", "when", "how", "how much", "cap", "per user",
         "100 CNY", "50%", "2026-02-30", "25:00", '"', '"x"', "#", "\n", "segment", "campaign", "tagged",
         "lifecycle", "silent", "template", '"nope.j2"', "exclusive", "budget", "-", "/", "0", "\x00", "é", "北京",
         "\\", "\t", "variant a 50%:", "cron", '"* * *"', "tz", '"Mars/Base"', "every", "mondy", "first", "delay"]


@functools.lru_cache(maxsize=1)
def _base() -> Workspace:
    ws = load_workspace(CAMPAIGNS)
    assert isinstance(ws, Workspace)
    return ws


def _check_text(data: bytes | str, name: str) -> None:
    base = _base()
    module, diags, text = parse_source(data, name)
    modules = [m for m in base.modules if m.path != name] + [module]
    ws = Workspace(root=base.root, config=base.config, modules=modules, sources=dict(base.sources))
    result = check_workspace(ws)
    raw = data if isinstance(data, bytes) else data.encode("utf-8", "surrogatepass")
    lines = raw.count(b"\n") + 1
    for d in diags + result.diagnostics:
        assert d.code in CODES, d
        assert d.message
        if d.file == name and d.span.known:
            assert 1 <= d.span.line <= lines + 1, (d, lines)
            assert d.span.column >= 1


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


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_campaigns(case):
    name, text = case
    _check_text(text.encode("utf-8", "surrogatepass"), str(CAMPAIGNS / name))


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(st.sampled_from(VOCAB), st.text(max_size=5)), max_size=60).map(" ".join))
def test_random_token_soup(text):
    _check_text(text.encode("utf-8", "surrogatepass"), "soup.camp")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400))
def test_random_bytes(data):
    _check_text(data, "bytes.camp")
