"""One format for numbers, durations and missing values."""

from __future__ import annotations

from tunesmith.document import format_duration, format_length, format_value, plain


def test_number_and_duration_formatting():
    assert format_value(0.12345) == "0.1235"
    assert format_value(1234.56) == "1,234.6"
    assert format_value(4884480) == "4,884,480"
    assert format_value(-0.5, signed=True) == "-0.5000"
    assert format_value(0.25, signed=True) == "+0.2500"
    assert format_value(-1e-9, signed=True) == "+0.0000"  # float noise is no change
    assert format_value(3, signed=True) == "+3"
    assert [format_duration(s) for s in (12.34, 300.0, 3725.0)] == ["12.3s", "5m 00s", "1h 02m"]
    assert [format_length(v) for v in (38.0, 41.25, 1800)] == ["38", "41.2", "1,800"]


def test_plain_shows_any_json_value():
    assert [plain(v) for v in (None, True, [], ["a", 1], {"k": 1}, "x")] == [
        "not available", "yes", "none", "a, 1", '{"k": 1}', "x"]
