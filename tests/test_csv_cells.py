"""Formula-safe CSV cells: text a spreadsheet would run gets a leading apostrophe; numbers stay numbers."""

from __future__ import annotations

import csv
import io

import pytest

from tunesmith.csv_cells import FORMULA_STARTS, spreadsheet_cell, spreadsheet_csv


@pytest.mark.parametrize("text", ["=1+1", "+1", "-1", "@A1", "\t=1", "\r=1", "=", "-"])
def test_text_a_spreadsheet_would_run_is_escaped(text):
    assert spreadsheet_cell(text) == "'" + text


@pytest.mark.parametrize("value", ["plain", "", " =1", "a-b", "'=1", "\n=1", 0, -1, -2.5, None, True])
def test_other_cells_are_as_they_are(value):
    assert spreadsheet_cell(value) == value


def test_the_csv_reads_back_whole_with_crlf_lines():
    text = spreadsheet_csv(["a", "b"], [{"a": "one\rtwo", "b": -3}, {"a": "=x"}])
    assert text.endswith("\r\n") and text.count("\r\n") == 3
    assert list(csv.reader(io.StringIO(text, newline=""))) == [["a", "b"], ["one\rtwo", "-3"], ["'=x", ""]]
    assert FORMULA_STARTS == ("=", "+", "-", "@", "\t", "\r")
