"""`camp runs` and `camp ledger` print tables whose columns line up with Chinese names in them (each Chinese
character takes two columns on a terminal), issue 12."""

from __future__ import annotations

from rich.cells import cell_len

from camp.tables import new_table, print_table


def test_columns_line_up_with_chinese_text(capsys):
    table = new_table(["campaign", "step", "status", "sent"], right={3})
    table.add_row("双十一预热", "触达", "finished", "1,234")
    table.add_row("winback_high_value", "touch", "failed", "7")
    table.add_row("春节", "提醒", "interrupted", "12,000")
    print_table(table)
    lines = [line.rstrip() for line in capsys.readouterr().out.splitlines()]
    assert len(lines) == 4
    starts = [cell_len(line[: line.index(word)]) for line, word in zip(
        lines, ["status", "finished", "failed", "interrupted"], strict=True)]
    assert len(set(starts)) == 1, lines  # the status column starts at the same screen column on every line
    ends = {cell_len(line) for line in lines}
    assert len(ends) == 1, lines  # right-aligned numbers end together
