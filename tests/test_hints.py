"""The README promises a hint with every diagnostic that has an obvious next step. Measured on a fixed fuzz
corpus (the seeds, vocabulary and mutation operators of tests/test_fuzz.py `mutated`, drawn from
`random.Random(0)`, so every run measures the same files): at least 90% of diagnostics carry one.

`python -m pytest tests/test_hints.py -s` prints the share and the codes that most often come without a hint.
"""

from __future__ import annotations

import random
from collections import Counter

from compiler.check import check_workspace
from compiler.workspace import Workspace, display_path
from dsl.diagnostics import Diagnostic
from dsl.parse import parse_source
from tests.test_fuzz import SEEDS, VOCAB, _base

CORPUS = 600
MIN_SHARE = 0.90


def _diagnostics(name: str, text: str) -> list[Diagnostic]:
    base = _base()
    module, diags, _ = parse_source(text.encode("utf-8", "surrogatepass"), name)
    ws = Workspace(root=base.root, config=base.config, sources=dict(base.sources),
                   modules=[m for m in base.modules if m.path != name] + [module])
    return diags + check_workspace(ws).diagnostics


def mutate(text: str, rng: random.Random) -> str:
    """One to four of the operators of tests/test_fuzz.py `mutated`, with the same ranges."""
    for _ in range(rng.randint(1, 4)):
        i = rng.randint(0, len(text))
        op = rng.choice(["delete", "insert", "replace", "duplicate", "swap"])
        if op == "delete":
            text = text[:i] + text[min(len(text), i + rng.randint(1, 40)):]
        elif op == "insert":
            text = text[:i] + " " + rng.choice(VOCAB) + " " + text[i:]
        elif op == "replace":
            text = text[:i] + rng.choice(VOCAB) + text[min(len(text), i + rng.randint(1, 10)):]
        elif op == "duplicate":
            j = min(len(text), i + rng.randint(1, 200))
            text = text[:j] + text[i:j] + text[j:]
        elif len(text) > 2 and i < len(text) - 1:
            text = text[:i] + text[i + 1] + text[i] + text[i + 2:]
    return text


def corpus_diagnostics() -> list[Diagnostic]:
    rng = random.Random(0)
    seeds = {path: path.read_text(encoding="utf-8") for path in SEEDS}
    found: list[Diagnostic] = []
    for _ in range(CORPUS):
        path = rng.choice(SEEDS)
        # the seed's own display path, so that the mutated file replaces it in the workspace
        found.extend(_diagnostics(display_path(path), mutate(seeds[path], rng)))
    return found


def test_at_least_90_percent_of_diagnostics_have_a_hint():
    diags = corpus_diagnostics()
    assert len(diags) > 500  # the corpus is big enough to measure
    with_hint = sum(1 for d in diags if d.hints)
    share = with_hint / len(diags)
    missing = Counter(d.code for d in diags if not d.hints)
    examples = {}
    for d in diags:
        if not d.hints:
            examples.setdefault(d.code, d.message)
    print(f"\nhints: {with_hint} of {len(diags)} diagnostics ({share:.1%}) over {CORPUS} mutated files")
    for code, n in missing.most_common(12):
        print(f"  {code}: {n} without a hint, e.g. {examples[code]!r}")
    assert share >= MIN_SHARE, f"{share:.1%} of diagnostics have a hint; top codes without: {missing.most_common(8)}"


SPECIFIC = [
    ("campain winback {\n}\n", "E104", "did you mean `campaign`?"),
    ('segment s city = "x"\n', "E104", "then `=` and the condition"),
    ("segment s = any(orders within 7)\n", "E104", "add a unit"),
    ('segment s = city = "x"\n}\n', "E104", "this `}` closes nothing"),
    ('segment s = count(orders within 7d) >= 2 and city = "x" @\n', "E105", "remove `@`"),
    ('segment s = any(order within 7d)\n', "E202", "did you mean `orders`?"),
    ('segment s = segment nope\n', "E203", "segments: `"),
    ('campaign c {\n  who city = "x"\n  when daily at 10:00\n  how\n    step touch: notify where\n}\n', "E214",
     "add `where push template"),
]


def test_specific_hints():
    for text, code, hint in SPECIFIC:
        diags = [d for d in _diagnostics("campaigns/zz_hint.camp", text) if d.file == "campaigns/zz_hint.camp"]
        hit = next((d for d in diags if d.code == code), None)
        assert hit is not None, (text, [(d.code, d.message) for d in diags])
        assert any(hint in h for h in hit.hints), (text, hit.hints)


def test_the_wrong_example_of_every_code_comes_with_a_hint(tmp_path):
    from dsl.codes import CODES
    from tests.codes.examples import run_example

    without = []
    for code in CODES:
        hits = [d for d in run_example(code, "bad", tmp_path) if d.code == code]
        without += [(code, d.message) for d in hits if not d.hints]
    assert without == []
