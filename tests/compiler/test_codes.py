"""Every diagnostic code has a wrong example that produces it and a right one that is clean."""

import pytest

from dsl.codes import CODES
from tests.codes.examples import SPECIAL, example_path, run_example
from tests.codes.gen_docs import DOC, render


@pytest.mark.parametrize("code", sorted(CODES))
def test_bad_example_produces_the_code(code, tmp_path):
    diags = run_example(code, "bad", tmp_path)
    codes = [d.code for d in diags]
    assert code in codes, f"{code}: got {[(d.code, d.message) for d in diags]}"
    hit = next(d for d in diags if d.code == code)
    assert hit.message and hit.file
    if code != "E001":
        assert hit.span.line >= 1 and hit.span.column >= 1, hit


@pytest.mark.parametrize("code", sorted(CODES))
def test_good_example_is_clean(code, tmp_path):
    diags = run_example(code, "good", tmp_path)
    assert diags == [], [(d.code, d.file, d.span.line, d.message) for d in diags]


def test_every_code_has_examples():
    for code in CODES:
        if code in SPECIAL:
            continue
        assert example_path(code, "bad") and example_path(code, "good"), code


def test_docs_are_in_sync():
    assert DOC.read_text(encoding="utf-8") == render(), "run: python -m tests.codes.gen_docs"
