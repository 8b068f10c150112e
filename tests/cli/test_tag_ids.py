"""The ids of a `camp tag --file` CSV: a header row is detected, not assumed."""

from __future__ import annotations

import click
import pytest

from camp.tag_ids import ids_from_csv, ids_from_text

KNOWN = {"1", "2", "3", "u7", "id"}


@pytest.mark.parametrize(("text", "ids"), [
    ("1\n2\n3\n", ["1", "2", "3"]),  # no header
    ("user_id\n1\n2\n", ["1", "2"]),  # a usual name
    ("USER_ID\r\n1\r\n", ["1"]),  # any case, CRLF
    ("customer_no\n1\n2\n", ["1", "2"]),  # no digit above rows that all have one
    ("name,user_id\nx,1\ny,2\n", ["1", "2"]),  # the id column by its header
    ("uid;note\n1;a\n", ["1"]),  # semicolons
    ("\ufeffuser_id\n3\n", ["3"]),  # a BOM
    ("id\nid\n1\n", ["id", "1"]),  # a known user whose id is `id` below the header
    ("u7\nu8\n", ["u7", "u8"]),  # a first row that is a known user is data
    ("abc\nu8\n", ["u8"]),  # no digit above ids that all have one: a header
    ("u9x\nu8\n", ["u9x", "u8"]),  # shaped like the ids below: data (`u9x` is then reported unknown)
    ("7\n1\n", ["7", "1"]),  # a number, even an unknown one, is data
    ("1\n\n1\n2,extra\n", ["1", "2"]),  # blank rows dropped, each id once, first column
    ("user_id\n", []),  # a header alone
])
def test_header_is_detected(tmp_path, text, ids):
    f = tmp_path / "ids.csv"
    f.write_text(text, encoding="utf-8", newline="")
    assert ids_from_csv(f, "user_id", KNOWN.__contains__) == ids


@pytest.mark.parametrize("data", [b"", b"\n\n", b"\xff\xfe1", b"1\x002"])
def test_unusable_files_are_usage_errors(tmp_path, data):
    f = tmp_path / "ids.csv"
    f.write_bytes(data)
    with pytest.raises(click.BadParameter):
        ids_from_csv(f, "user_id", KNOWN.__contains__)


def test_missing_file_is_a_usage_error(tmp_path):
    with pytest.raises(click.BadParameter, match="cannot read"):
        ids_from_csv(tmp_path / "nope.csv", "user_id", KNOWN.__contains__)


def test_users_option():
    assert ids_from_text(" 1, 2,,3 ,2") == ["1", "2", "3"]
    assert ids_from_text(" , ") == []
