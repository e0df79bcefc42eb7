"""The shared text helpers."""

from __future__ import annotations

from tunesmith.text import count_of, normalize_text, preview, shorten


def test_one_normalizer_with_or_without_punctuation():
    assert normalize_text("  Hello,\tWORLD!  ") == "hello, world!"
    assert normalize_text("  Hello,\tWORLD!  ", keep_punctuation=False) == "hello world"
    assert normalize_text("Straße") == "strasse"  # case-folded, not just lower-cased


def test_preview_shorten_and_counts():
    assert preview(list(range(100))) == repr(list(range(100)))[:57] + "..."
    assert shorten("a  b\n c", 10) == "a b c"
    assert shorten("abcdefghijkl", 5) == "abcd\u2026"
    assert (count_of(1, "row"), count_of(3, "row")) == ("1 row", "3 rows")
    assert (count_of(1, "breach"), count_of(2, "breach"), count_of(0, "box")) == ("1 breach", "2 breaches", "0 boxes")
