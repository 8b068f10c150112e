"""`[report] margin` in camp.toml: a percentage from 0% to 100%, else E007 at its line (camp check)."""

from __future__ import annotations

from decimal import Decimal

from compiler.config import load_config, percent_fraction
from compiler.runconfig import check_run_config


def test_percentages():
    assert percent_fraction("30%") == Decimal("0.3")
    assert percent_fraction(" 12.5 % ") == Decimal("0.125")
    assert percent_fraction("0%") == 0 and percent_fraction("100%") == 1
    for bad in ("0.3", "30", "101%", "-5%", "30%%", "abc", "1e2%", "12.34567%"):
        assert percent_fraction(bad) is None, bad


def test_margin_is_checked_at_its_line(tmp_path):
    def diags(text: str):
        path = tmp_path / "camp.toml"
        path.write_text(text, encoding="utf-8")
        config, loaded, _ = load_config(path, "camp.toml")
        assert not loaded
        return config, check_run_config(config, text, tmp_path, "camp.toml")

    config, found = diags('[workspace]\nname = "x"\n')
    assert not found and config.report.margin_fraction is None  # no margin: no ROI, no error
    config, found = diags('[report]\nmargin = "30%"\n')
    assert not found and config.report.margin_fraction == Decimal("0.3")
    _, found = diags('[workspace]\nname = "x"\n\n[report]\nmargin = "0.3"\n')
    assert [(d.code, d.span.line) for d in found] == [("E007", 5)]
    assert "'0.3'" in found[0].message and '"30%"' in found[0].hints[0]
